//! The input formats and their recognition from the first record's keys.
//!
//! Detection looks at one record only (the first that parses), so it is cheap and never
//! reads ahead; `--format` overrides it. The rules, in order (first match wins):
//!
//! ```text
//! responses | prompt_ids                     → listwise      (canonical, DESIGN.md §4)
//! completions                                → ultrafeedback (raw openbmb/UltraFeedback)
//! conversations + chosen + rejected          → sharegpt-pairwise (LLaMA-Factory)
//! chosen + rejected + (chosen-rating|chosen_rating) → argilla
//! chosen + rejected + prompt | message lists → trl           (TRL / H4)
//! chosen + rejected (transcript strings)     → hh            (Anthropic HH-RLHF)
//! response + helpfulness|correctness         → helpsteer     (rows grouped by prompt)
//! messages + label (bool)                    → kto           (unpaired: inspect only)
//! messages                                   → messages      (SFT, UltraChat-200k)
//! instruction + output                       → alpaca        (SFT)
//! conversations                              → sharegpt      (SFT)
//! ```

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

/// A supported input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// `{"prompt"|"messages"|"prompt_ids", "responses": [{"text"|"ids", "scores"}]}`.
    Listwise,
    /// Raw UltraFeedback: `instruction`, `completions[].{response, annotations}`.
    UltraFeedback,
    /// TRL / H4 pairwise: `prompt` + `chosen`/`rejected` (strings or message lists).
    Trl,
    /// argilla pairwise: like TRL with `chosen-rating`/`rejected-rating`.
    Argilla,
    /// LLaMA-Factory ShareGPT pairwise: `conversations` + `chosen`/`rejected` turns.
    ShareGptPairwise,
    /// Anthropic HH-RLHF: `chosen`/`rejected` full `\n\nHuman: … \n\nAssistant: …` transcripts.
    Hh,
    /// HelpSteer / HelpSteer2: one row per (prompt, response) with 0–4 attribute scores.
    HelpSteer,
    /// SFT chat messages (UltraChat-200k, H4 `*_sft`).
    Messages,
    /// SFT Alpaca: `instruction`, `input`, `output` (+ optional `system`, `history`).
    Alpaca,
    /// SFT ShareGPT: `conversations` of `{from, value}` turns.
    ShareGpt,
    /// Unpaired KTO examples: `messages` + boolean `label`.
    Kto,
}

/// What a format's records are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// Lists of rated responses (listwise and pairwise training).
    Preference,
    /// Conversations for supervised fine-tuning.
    Sft,
    /// Unpaired labelled examples (KTO).
    Unpaired,
}

impl Format {
    pub const ALL: [Format; 11] = [
        Format::Listwise,
        Format::UltraFeedback,
        Format::Trl,
        Format::Argilla,
        Format::ShareGptPairwise,
        Format::Hh,
        Format::HelpSteer,
        Format::Messages,
        Format::Alpaca,
        Format::ShareGpt,
        Format::Kto,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Listwise => "listwise",
            Self::UltraFeedback => "ultrafeedback",
            Self::Trl => "trl",
            Self::Argilla => "argilla",
            Self::ShareGptPairwise => "sharegpt-pairwise",
            Self::Hh => "hh",
            Self::HelpSteer => "helpsteer",
            Self::Messages => "messages",
            Self::Alpaca => "alpaca",
            Self::ShareGpt => "sharegpt",
            Self::Kto => "kto",
        }
    }

    /// One line describing the layout, for `--help` and error hints.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Listwise => {
                "canonical listwise: prompt|messages|prompt_ids + responses[{text|ids, scores}]"
            }
            Self::UltraFeedback => {
                "UltraFeedback raw: instruction + completions[{response, annotations}]"
            }
            Self::Trl => {
                "TRL/H4 pairwise: prompt + chosen/rejected (+ score_chosen/score_rejected)"
            }
            Self::Argilla => {
                "argilla pairwise: prompt + chosen/rejected + chosen-rating/rejected-rating"
            }
            Self::ShareGptPairwise => {
                "LLaMA-Factory sharegpt pairwise: conversations + chosen/rejected turns"
            }
            Self::Hh => "Anthropic HH-RLHF: chosen/rejected transcripts",
            Self::HelpSteer => {
                "HelpSteer: prompt + response + helpfulness/correctness/… (rows grouped by prompt)"
            }
            Self::Messages => "SFT messages (UltraChat-200k)",
            Self::Alpaca => "SFT Alpaca: instruction + input + output",
            Self::ShareGpt => "SFT sharegpt: conversations[{from, value}]",
            Self::Kto => "KTO unpaired: messages + label",
        }
    }

    pub fn kind(self) -> DataKind {
        match self {
            Self::Messages | Self::Alpaca | Self::ShareGpt => DataKind::Sft,
            Self::Kto => DataKind::Unpaired,
            _ => DataKind::Preference,
        }
    }

    /// All format names, comma-separated (for messages).
    pub fn names() -> String {
        Self::ALL.map(Format::name).join(", ")
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('_', "-");
        let alias = match norm.as_str() {
            "uf" | "ultrafeedback-raw" => "ultrafeedback",
            "h4" | "pairwise" => "trl",
            "llamafactory" | "llama-factory" => "sharegpt-pairwise",
            "anthropic-hh" | "hh-rlhf" => "hh",
            "helpsteer2" => "helpsteer",
            "ultrachat" | "sft" => "messages",
            other => other,
        };
        Self::ALL
            .into_iter()
            .find(|f| f.name() == alias)
            .ok_or_else(|| format!("unknown format {s:?}; known formats: {}", Self::names()))
    }
}

/// Recognises the format of a record from its keys (see the module table).
pub fn detect(obj: &Map<String, Value>) -> Option<Format> {
    let has = |k: &str| obj.contains_key(k);
    let is_str = |k: &str| obj.get(k).is_some_and(Value::is_string);
    let is_list = |k: &str| obj.get(k).is_some_and(Value::is_array);
    if has("responses") || has("prompt_ids") {
        return Some(Format::Listwise);
    }
    if has("completions") {
        return Some(Format::UltraFeedback);
    }
    let pair = has("chosen") && has("rejected");
    if pair && has("conversations") {
        return Some(Format::ShareGptPairwise);
    }
    if pair && ["chosen-rating", "chosen_rating"].iter().any(|k| has(k)) {
        return Some(Format::Argilla);
    }
    if pair && (has("prompt") || is_list("chosen") || has("prompt_input_ids")) {
        return Some(Format::Trl);
    }
    if pair && is_str("chosen") {
        return Some(Format::Hh);
    }
    if has("chosen_input_ids") {
        return Some(Format::Trl);
    }
    if has("response") && (has("helpfulness") || has("correctness")) {
        return Some(Format::HelpSteer);
    }
    if has("messages") && obj.get("label").is_some_and(Value::is_boolean) {
        return Some(Format::Kto);
    }
    if has("messages") {
        return Some(Format::Messages);
    }
    if has("instruction") && has("output") {
        return Some(Format::Alpaca);
    }
    if has("conversations") {
        return Some(Format::ShareGpt);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(v: Value) -> Option<Format> {
        detect(v.as_object().unwrap())
    }

    #[test]
    fn recognises_each_layout() {
        assert_eq!(
            d(json!({"prompt": "p", "responses": []})),
            Some(Format::Listwise)
        );
        assert_eq!(
            d(json!({"instruction": "p", "completions": []})),
            Some(Format::UltraFeedback)
        );
        assert_eq!(
            d(json!({"prompt": "p", "chosen": "a", "rejected": "b"})),
            Some(Format::Trl)
        );
        assert_eq!(d(json!({"chosen": [], "rejected": []})), Some(Format::Trl));
        assert_eq!(
            d(json!({"prompt": "p", "chosen": [], "rejected": [], "chosen-rating": 5})),
            Some(Format::Argilla)
        );
        assert_eq!(
            d(json!({"conversations": [], "chosen": {}, "rejected": {}})),
            Some(Format::ShareGptPairwise)
        );
        assert_eq!(
            d(json!({"chosen": "\n\nHuman: a", "rejected": "x"})),
            Some(Format::Hh)
        );
        assert_eq!(
            d(json!({"prompt": "p", "response": "r", "helpfulness": 3})),
            Some(Format::HelpSteer)
        );
        assert_eq!(d(json!({"messages": [], "label": true})), Some(Format::Kto));
        assert_eq!(d(json!({"messages": []})), Some(Format::Messages));
        assert_eq!(
            d(json!({"instruction": "i", "input": "", "output": "o"})),
            Some(Format::Alpaca)
        );
        assert_eq!(d(json!({"conversations": []})), Some(Format::ShareGpt));
        assert_eq!(d(json!({"text": "x"})), None);
    }

    #[test]
    fn names_round_trip() {
        for f in Format::ALL {
            assert_eq!(f.name().parse::<Format>().unwrap(), f);
        }
        assert_eq!("UltraChat".parse::<Format>().unwrap(), Format::Messages);
        assert!("csv"
            .parse::<Format>()
            .unwrap_err()
            .contains("known formats"));
    }
}
