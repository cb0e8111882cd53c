//! GSM8K as lm-eval 0.4.13's `gsm8k` task: prompts (seeded few-shot from the train pool),
//! greedy generation and cutting it at the stop strings, the two answer filters and `exact_match`.
//!
//! ```text
//! prompt   = Σ_shots ("Question: " + q + "\nAnswer:" + " " + answer + "\n\n")
//!            + "Question: " + q + "\nAnswer:"
//! strict   = first findall of  #### (\-?[0-9\.\,]+)          → its group, stripped
//! flexible = last findall of   (-?[$0-9.,]{2,})|(-?[0-9]+)   → first non-empty group, stripped
//!            (either: "[invalid]" when nothing matches)
//! exact_match: on prediction and target remove "," and "$", everything up to the last
//!            "#### ", a "." at the end (Python `\.$`: also before a final "\n"), lower-case,
//!            compare
//! ```
//!
//! The regexes are small enough to be matched by hand here, with Python `re` semantics
//! (leftmost match, first alternative first, greedy), so no regex engine is needed.

use std::path::Path;

use lambda_dpo_model::{generate, GenerateOptions, Model, Prompt, Tokenizer};

use super::error::Result;
use super::sampler::PyRandom;
use super::tasks::{py_strip, read_jsonl};

/// The fallback of lm-eval's `RegexFilter`.
pub const INVALID: &str = "[invalid]";

/// The task's stop strings (`generation_kwargs.until`); lm-eval adds the tokenizer's EOS text.
pub const UNTIL: [&str; 3] = ["Question:", "</s>", "<|im_end|>"];

/// [`UNTIL`] plus the tokenizer's EOS text where it is not already there (lm-eval's HF
/// `generate_until`).
pub fn stop_strings(eos_text: Option<&str>) -> Vec<String> {
    let mut until: Vec<String> = UNTIL.iter().map(|s| s.to_string()).collect();
    if let Some(eos) = eos_text {
        if !until.iter().any(|u| u == eos) {
            until.push(eos.to_owned());
        }
    }
    until
}

/// lm-eval's default `fewshot_random_seed`.
pub const FEWSHOT_SEED: u32 = 1234;

/// One GSM8K row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gsm8kDoc {
    pub question: String,
    /// The full worked answer, ending in `#### <number>`.
    pub answer: String,
}

/// Reads `{question, answer}` JSON Lines.
pub fn read_gsm8k(path: &Path, limit: Option<usize>) -> Result<Vec<Gsm8kDoc>> {
    let rows = read_jsonl(path)?;
    let n = limit.unwrap_or(rows.len()).min(rows.len());
    rows[..n]
        .iter()
        .map(|r| {
            Ok(Gsm8kDoc {
                question: r.str("question")?,
                answer: r.str("answer")?,
            })
        })
        .collect()
}

fn doc_to_text(d: &Gsm8kDoc) -> String {
    format!("Question: {}\nAnswer:", d.question)
}

/// Prompts of `docs` in order, with `num_fewshot` shots drawn from `pool` by one
/// `Random(seed)` shared across documents (lm-eval's default sampler; the eval doc is not
/// removed because the pool is another split). Returns each prompt and its shots' indices.
pub fn gsm8k_prompts(
    docs: &[Gsm8kDoc],
    pool: &[Gsm8kDoc],
    num_fewshot: usize,
    seed: u32,
) -> Vec<(String, Vec<usize>)> {
    let mut rnd = PyRandom::new(seed);
    docs.iter()
        .map(|d| {
            let shots = if num_fewshot > 0 {
                rnd.sample(pool.len(), num_fewshot)
            } else {
                Vec::new()
            };
            let mut ctx = String::new();
            for &s in &shots {
                ctx.push_str(&format!("{} {}\n\n", doc_to_text(&pool[s]), pool[s].answer));
            }
            ctx.push_str(&doc_to_text(d));
            (ctx, shots)
        })
        .collect()
}

/// lm-eval's `generate_until` post-processing: the text before the first occurrence of each
/// stop string, applied in turn.
pub fn cut_at_stops(text: &str, until: &[String]) -> String {
    let mut s = text;
    for u in until {
        if !u.is_empty() {
            if let Some(p) = s.find(u) {
                s = &s[..p];
            }
        }
    }
    s.to_owned()
}

/// One greedy generation as lm-eval's HF `generate_until` makes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GsmGeneration {
    /// The prompt ids that went into the model (after left truncation).
    pub input_ids: Vec<u32>,
    /// The new tokens, including a final stop token.
    pub generated_ids: Vec<u32>,
    /// The decoded new tokens (special tokens skipped), cut at the stop strings: what the
    /// filters see.
    pub resp: String,
}

/// Greedy `generate_until` for each context, one at a time (no padding):
///
/// ```text
/// input  = tok(context)[−(max_length − max_gen_toks):]
/// output ≤ max_gen_toks new tokens, ending early at a stop id or a stop string
/// resp   = cut_at_stops(decode(output, skip_special_tokens), until)
/// ```
pub fn generate_until(
    model: &Model,
    tok: &Tokenizer,
    contexts: &[String],
    stop_token_ids: &[u32],
    until: &[String],
    max_gen_toks: usize,
    max_length: usize,
) -> Result<Vec<GsmGeneration>> {
    let keep = max_length.saturating_sub(max_gen_toks).max(1);
    let opts = GenerateOptions {
        max_new_tokens: max_gen_toks,
        stop_token_ids: stop_token_ids.to_vec(),
        stop_strings: until.to_vec(),
        ..GenerateOptions::default()
    };
    contexts
        .iter()
        .map(|c| {
            let enc = tok.encode(c, true)?;
            let input_ids = enc[enc.len().saturating_sub(keep)..].to_vec();
            let out = generate(
                model,
                tok,
                None,
                &[Prompt {
                    ids: &input_ids,
                    seed: 0,
                }],
                &opts,
            )?;
            let generated_ids = out.into_iter().next().map(|g| g.ids).unwrap_or_default();
            let raw = tok.decode(&generated_ids, true)?;
            Ok(GsmGeneration {
                input_ids,
                generated_ids,
                resp: cut_at_stops(&raw, until),
            })
        })
        .collect()
}

fn is_num(c: char) -> bool {
    c.is_ascii_digit() || c == '.' || c == ','
}

/// The `strict-match` filter.
pub fn strict_match(resp: &str) -> String {
    for (p, _) in resp.match_indices("#### ") {
        let rest = &resp[p + 5..];
        let body = rest.strip_prefix('-').unwrap_or(rest);
        let n = body.find(|c| !is_num(c)).unwrap_or(body.len());
        if n > 0 {
            let m = &rest[..(rest.len() - body.len()) + n];
            return py_strip(m).to_owned();
        }
    }
    INVALID.to_owned()
}

/// The `flexible-extract` filter: the last match of `(-?[$0-9.,]{2,})|(-?[0-9]+)`.
pub fn flexible_extract(resp: &str) -> String {
    let class = |c: char| is_num(c) || c == '$';
    // Length in bytes of the longest run of `pred` at the start of `s` (all ASCII).
    let run = |s: &str, pred: &dyn Fn(char) -> bool| s.find(|c| !pred(c)).unwrap_or(s.len());
    let mut last: Option<&str> = None;
    let mut i = 0;
    while i < resp.len() {
        let s = &resp[i..];
        let signed = usize::from(s.starts_with('-'));
        let found = if run(&s[signed..], &class) >= 2 {
            Some(signed + run(&s[signed..], &class))
        } else if run(&s[signed..], &|c: char| c.is_ascii_digit()) >= 1 {
            Some(signed + run(&s[signed..], &|c: char| c.is_ascii_digit()))
        } else {
            None
        };
        match found {
            Some(len) => {
                last = Some(&s[..len]);
                i += len;
            }
            None => i += s.chars().next().map_or(1, char::len_utf8),
        }
    }
    last.map_or_else(|| INVALID.to_owned(), |m| py_strip(m).to_owned())
}

/// The `regexes_to_ignore` and `ignore_case` of GSM8K's `exact_match`.
fn normalize(s: &str) -> String {
    let mut s = s.replace([',', '$'], "");
    if let Some(p) = s.rfind("#### ") {
        s = s[p + 5..].to_owned();
    }
    if s.ends_with(".\n") {
        s.remove(s.len() - 2);
    } else if s.ends_with('.') {
        s.pop();
    }
    s.to_lowercase()
}

/// GSM8K's `exact_match` of one filtered prediction against the doc's full answer.
pub fn exact_match(prediction: &str, target: &str) -> f64 {
    f64::from(u8::from(normalize(prediction) == normalize(target)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_follow_python_re() {
        assert_eq!(strict_match("#### -x #### -1,2.3 and"), "-1,2.3");
        assert_eq!(strict_match("##### 7"), "7");
        assert_eq!(strict_match("#### $18"), INVALID);
        assert_eq!(flexible_extract("a 5 b -3 c"), "-3");
        assert_eq!(flexible_extract("8,x"), "8,");
        assert_eq!(flexible_extract("no digits ."), INVALID);
        assert_eq!(flexible_extract("x $18"), "$18");
        assert_eq!(exact_match("18.", "so #### 18"), 1.0);
    }
}
