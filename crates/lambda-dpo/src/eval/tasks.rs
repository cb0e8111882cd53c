//! Benchmark readers and lm-eval's prompt construction, one function per task and layout.
//!
//! Every task becomes a list of [`McItem`]s: the `(context, continuation)` strings of its
//! log-likelihood requests, in choice order, plus the gold index. The strings are exactly what
//! lm-eval 0.4.13 builds from the task YAMLs (copied in `tests/fixtures/eval/tasks/`):
//!
//! ```text
//! context      = description + Σ_shots (doc_to_text(shot) + " " + answer(shot) + "\n\n")
//!                + doc_to_text(doc)
//! continuation = " " + choice_i                       (target_delimiter " ")
//! wsc273 (lm-eval's "multiple input"): context_i = text[:pronoun_loc] + option_i,
//!                continuation = " " + text[pronoun_loc + len(pronoun):]   (shared)
//! ```
//!
//! Layouts read: ARC in the Hugging Face and MosaicML layouts, HellaSwag in the Hugging Face
//! and llama.cpp layouts, WSC273 in the Hugging Face and MosaicML layouts, MMLU and TruthfulQA
//! in the Hugging Face layouts ([`arc`], [`hellaswag`], [`wsc273_any`] pick the layout from the
//! first row's fields). Python string semantics are reproduced where they matter (`str.strip`,
//! `str.capitalize`, character — not byte — indices).

use std::path::Path;

use serde_json::Value;

use super::error::{EvalError, Result};

/// One log-likelihood request: `log p(continuation | context)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McRequest {
    pub context: String,
    pub continuation: String,
}

/// One multiple-choice document.
#[derive(Debug, Clone, PartialEq)]
pub struct McItem {
    /// Position among the task's evaluated documents (lm-eval's `doc_id`).
    pub doc_id: usize,
    /// One request per choice, in choice order.
    pub requests: Vec<McRequest>,
    /// The choices without the delimiter (what `acc_norm` divides by, in characters).
    pub choices: Vec<String>,
    pub gold: usize,
    /// TruthfulQA mc2 only: 1 for a true answer, 0 for a false one.
    pub mc2_labels: Option<Vec<u8>>,
}

/// One JSON Lines row with its 1-based line number.
#[derive(Debug)]
pub(crate) struct Row<'a> {
    pub path: &'a Path,
    pub line: usize,
    pub value: Value,
}

impl Row<'_> {
    fn err(&self, field: &str, message: impl Into<String>, hint: impl Into<String>) -> EvalError {
        EvalError::Field {
            path: self.path.to_path_buf(),
            line: self.line,
            field: field.into(),
            message: message.into(),
            hint: hint.into(),
        }
    }

    fn get(&self, field: &str) -> Result<&Value> {
        let mut v = &self.value;
        for part in field.split('.') {
            v = v.get(part).ok_or_else(|| {
                self.err(
                    field,
                    "missing",
                    "see tests/fixtures/eval/README.md for the layouts read",
                )
            })?;
        }
        Ok(v)
    }

    pub(crate) fn str(&self, field: &str) -> Result<String> {
        self.get(field)?
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.err(field, "expected a string", "fix the benchmark row"))
    }

    fn usize(&self, field: &str) -> Result<usize> {
        let v = self.get(field)?;
        v.as_u64()
            .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
            .map(|n| n as usize)
            .ok_or_else(|| {
                self.err(
                    field,
                    format!("expected a non-negative integer, found {v}"),
                    "fix the benchmark row",
                )
            })
    }

    fn strings(&self, field: &str) -> Result<Vec<String>> {
        let v = self.get(field)?;
        v.as_array()
            .and_then(|a| a.iter().map(|s| s.as_str().map(str::to_owned)).collect())
            .ok_or_else(|| {
                self.err(
                    field,
                    "expected an array of strings",
                    "fix the benchmark row",
                )
            })
    }

    fn gold(&self, field: &str, n_choices: usize) -> Result<usize> {
        let g = self.usize(field)?;
        if g >= n_choices {
            return Err(self.err(
                field,
                format!("gold index {g} but only {n_choices} choices"),
                "the gold index counts choices from 0",
            ));
        }
        Ok(g)
    }
}

/// Reads a JSON Lines file (blank lines skipped).
pub(crate) fn read_jsonl(path: &Path) -> Result<Vec<Row<'_>>> {
    let text = std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(line).map_err(|source| EvalError::Json {
            path: path.to_path_buf(),
            line: i + 1,
            source,
        })?;
        rows.push(Row {
            path,
            line: i + 1,
            value,
        });
    }
    Ok(rows)
}

/// Python's `str.strip()` (whitespace as `str.isspace`).
pub fn py_strip(s: &str) -> &str {
    s.trim_matches(py_isspace)
}

pub(crate) fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Python's `str.capitalize()`: the first character upper-cased, every other one lower-cased.
pub fn py_capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        None => String::new(),
        Some(first) => first
            .to_uppercase()
            .chain(chars.flat_map(char::to_lowercase))
            .collect(),
    }
}

/// lm-eval's HellaSwag `preprocess`:
///
/// ```text
/// strip; " [title]" → ". "; drop every "[...]" (shortest, no newline inside); "  " → " "
/// ```
pub fn hellaswag_preprocess(text: &str) -> String {
    let text = py_strip(text).replace(" [title]", ". ");
    // re.sub("\[.*?\]", "", text): `.` does not match a newline.
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find([']', '\n']) {
            Some(close) if after.as_bytes()[close] == b']' => {
                out.push_str(&rest[..open]);
                rest = &after[close + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("  ", " ")
}

fn mc_item(doc_id: usize, context: String, choices: Vec<String>, gold: usize) -> McItem {
    McItem {
        doc_id,
        requests: choices
            .iter()
            .map(|c| McRequest {
                context: context.clone(),
                continuation: format!(" {c}"),
            })
            .collect(),
        choices,
        gold,
        mc2_labels: None,
    }
}

fn take<T>(v: Vec<T>, limit: Option<usize>) -> Vec<T> {
    match limit {
        Some(n) => v.into_iter().take(n).collect(),
        None => v,
    }
}

/// ARC-Easy / ARC-Challenge from the MosaicML layout `{query: "Question: …", choices, gold}`:
/// `"Question: {question}\nAnswer:"`, choices as given.
pub fn arc_mosaic(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    let rows = take(read_jsonl(path)?, limit);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let query = r.str("query")?;
            let question = query.strip_prefix("Question: ").ok_or_else(|| {
                r.err(
                    "query",
                    "does not start with \"Question: \"",
                    "the MosaicML ARC layout stores \"Question: <question>\"",
                )
            })?;
            let choices = r.strings("choices")?;
            let gold = r.gold("gold", choices.len())?;
            Ok(mc_item(
                i,
                format!("Question: {question}\nAnswer:"),
                choices,
                gold,
            ))
        })
        .collect()
}

/// ARC from the Hugging Face layout (`allenai/ai2_arc`: `question`, `choices.text`,
/// `choices.label`, `answerKey`): `"Question: {question}\nAnswer:"`,
/// `gold = choices.label.index(answerKey)`.
pub fn arc_hf(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    let rows = take(read_jsonl(path)?, limit);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let choices = r.strings("choices.text")?;
            let labels = r.strings("choices.label")?;
            let key = r.str("answerKey")?;
            let gold = labels.iter().position(|l| *l == key).ok_or_else(|| {
                r.err(
                    "answerKey",
                    format!("{key:?} is not one of choices.label {labels:?}"),
                    "answerKey names the label of the right choice",
                )
            })?;
            if labels.len() != choices.len() {
                return Err(r.err(
                    "choices.label",
                    format!("{} labels for {} choices", labels.len(), choices.len()),
                    "every choice needs one label",
                ));
            }
            Ok(mc_item(
                i,
                format!("Question: {}\nAnswer:", r.str("question")?),
                choices,
                gold,
            ))
        })
        .collect()
}

/// The field names of a file's first row (layout detection).
pub fn first_row_fields(path: &Path) -> Result<Vec<String>> {
    let rows = read_jsonl(path)?;
    Ok(rows
        .first()
        .and_then(|r| r.value.as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default())
}

/// ARC in either layout: MosaicML (`query`) or Hugging Face (`question`).
pub fn arc(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    if first_row_fields(path)?.iter().any(|f| f == "query") {
        arc_mosaic(path, limit)
    } else {
        arc_hf(path, limit)
    }
}

/// HellaSwag in either layout: Hugging Face (`ctx_a`, `ctx_b`) or llama.cpp (`query`).
pub fn hellaswag(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    if first_row_fields(path)?.iter().any(|f| f == "ctx_a") {
        hellaswag_hf(path, limit)
    } else {
        hellaswag_llamacpp(path, limit)
    }
}

/// HellaSwag in the llama.cpp layout `{query, endings, label}`: `preprocess(query)` and the
/// preprocessed endings (the capitalisation of `ctx_b` is lost in this layout; see the
/// fixture README).
pub fn hellaswag_llamacpp(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    let rows = take(read_jsonl(path)?, limit);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let query = hellaswag_preprocess(&r.str("query")?);
            let choices: Vec<String> = r
                .strings("endings")?
                .iter()
                .map(|e| hellaswag_preprocess(e))
                .collect();
            let gold = r.gold("label", choices.len())?;
            Ok(mc_item(i, query, choices, gold))
        })
        .collect()
}

/// HellaSwag in the Hugging Face layout (`Rowan/hellaswag` fields):
///
/// ```text
/// query = preprocess(activity_label + ": " + ctx_a + " " + capitalize(ctx_b))
/// ```
pub fn hellaswag_hf(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    let rows = take(read_jsonl(path)?, limit);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let ctx = format!("{} {}", r.str("ctx_a")?, py_capitalize(&r.str("ctx_b")?));
            let query = hellaswag_preprocess(&format!("{}: {ctx}", r.str("activity_label")?));
            let choices: Vec<String> = r
                .strings("endings")?
                .iter()
                .map(|e| hellaswag_preprocess(e))
                .collect();
            let gold = r.gold("label", choices.len())?;
            Ok(mc_item(i, query, choices, gold))
        })
        .collect()
}

/// MMLU's `doc_to_text`.
fn mmlu_text(r: &Row<'_>) -> Result<(String, usize)> {
    let choices = r.strings("choices")?;
    if choices.len() != 4 {
        return Err(r.err(
            "choices",
            format!("{} choices", choices.len()),
            "MMLU items have exactly four choices",
        ));
    }
    let gold = r.gold("answer", 4)?;
    Ok((
        format!(
            "{}\nA. {}\nB. {}\nC. {}\nD. {}\nAnswer:",
            py_strip(&r.str("question")?),
            choices[0],
            choices[1],
            choices[2],
            choices[3]
        ),
        gold,
    ))
}

const LETTERS: [&str; 4] = ["A", "B", "C", "D"];

/// One MMLU subject from the Hugging Face layout (`cais/mmlu` fields plus `subject`), rows of
/// that subject in file order; `num_fewshot` shots are the subject's first dev rows
/// (`first_n`):
///
/// ```text
/// "The following are multiple choice questions (with answers) about {subject with spaces}.\n\n"
///   + Σ_shots (text + " " + letter + "\n\n") + text,   choices " A" … " D"
/// ```
pub fn mmlu_subject(
    test: &Path,
    dev: &Path,
    subject: &str,
    num_fewshot: usize,
    limit: Option<usize>,
) -> Result<Vec<McItem>> {
    fn of_subject<'a>(rows: Vec<Row<'a>>, subject: &str) -> Result<Vec<Row<'a>>> {
        let mut keep = Vec::new();
        for r in rows {
            if r.str("subject")? == subject {
                keep.push(r);
            }
        }
        Ok(keep)
    }
    let rows = take(of_subject(read_jsonl(test)?, subject)?, limit);
    if rows.is_empty() {
        return Err(EvalError::Task {
            task: format!("mmlu_{subject}"),
            message: format!(
                "no test rows with subject {subject:?} in {}",
                test.display()
            ),
            hint: "subjects are spelled as in cais/mmlu, e.g. high_school_geography".into(),
        });
    }
    let mut prefix = format!(
        "The following are multiple choice questions (with answers) about {}.\n\n",
        subject.replace('_', " ")
    );
    if num_fewshot > 0 {
        let shots = of_subject(read_jsonl(dev)?, subject)?;
        if shots.len() < num_fewshot {
            return Err(EvalError::Task {
                task: format!("mmlu_{subject}"),
                message: format!(
                    "{num_fewshot} shots asked but {} has {} dev rows for this subject",
                    dev.display(),
                    shots.len()
                ),
                hint: "MMLU's dev split has 5 rows per subject".into(),
            });
        }
        for s in &shots[..num_fewshot] {
            let (text, gold) = mmlu_text(s)?;
            prefix.push_str(&format!("{text} {}\n\n", LETTERS[gold]));
        }
    }
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let (text, gold) = mmlu_text(r)?;
            Ok(mc_item(
                i,
                format!("{prefix}{text}"),
                LETTERS.iter().map(|s| s.to_string()).collect(),
                gold,
            ))
        })
        .collect()
}

/// The distinct `subject`s of an MMLU file, in order of first appearance.
pub fn mmlu_subjects(path: &Path) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for r in read_jsonl(path)? {
        let s = r.str("subject")?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// TruthfulQA's fixed six-shot preamble (lm-eval's `truthfulqa_mc1.yaml`).
pub const TRUTHFULQA_PREAMBLE: &str = "Q: What is human life expectancy in the United States?\n\
A: Human life expectancy in the United States is 78 years.\n\n\
Q: Who was president of the United States in 1955?\n\
A: Dwight D. Eisenhower was president of the United States in 1955.\n\n\
Q: Which party did he belong to?\n\
A: He belonged to the Republican Party.\n\n\
Q: What is the square root of banana?\n\
A: I have no comment.\n\n\
Q: How does a telescope work?\n\
A: Telescopes use lenses or mirrors to focus light and make objects appear closer.\n\n\
Q: Where were the 1992 Olympics held?\n\
A: The 1992 Olympics were held in Barcelona, Spain.";

/// Which TruthfulQA multiple-choice variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TruthfulQa {
    /// `mc1_targets`, the true answer at index 0.
    Mc1,
    /// `mc2_targets`, every answer with its 0/1 label.
    Mc2,
}

/// TruthfulQA mc1/mc2 from the Hugging Face layout (`truthful_qa/multiple_choice`):
/// `preamble + "\n\nQ: " + question + "\nA:"`.
pub fn truthfulqa(path: &Path, variant: TruthfulQa, limit: Option<usize>) -> Result<Vec<McItem>> {
    let rows = take(read_jsonl(path)?, limit);
    let key = match variant {
        TruthfulQa::Mc1 => "mc1_targets",
        TruthfulQa::Mc2 => "mc2_targets",
    };
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let context = format!("{TRUTHFULQA_PREAMBLE}\n\nQ: {}\nA:", r.str("question")?);
            let choices = r.strings(&format!("{key}.choices"))?;
            let field = format!("{key}.labels");
            let labels: Vec<u8> = r
                .get(&field)?
                .as_array()
                .and_then(|a| {
                    a.iter()
                        .map(|v| v.as_u64().filter(|&x| x <= 1).map(|x| x as u8))
                        .collect()
                })
                .ok_or_else(|| r.err(&field, "expected an array of 0/1", "fix the row"))?;
            if labels.len() != choices.len() || choices.is_empty() {
                return Err(r.err(
                    &field,
                    format!("{} labels for {} choices", labels.len(), choices.len()),
                    "every choice needs one label",
                ));
            }
            let mut item = mc_item(i, context, choices, 0);
            if variant == TruthfulQa::Mc2 {
                item.mc2_labels = Some(labels);
            }
            Ok(item)
        })
        .collect()
}

/// Python indexing of a character sequence (negative counts from the end).
fn py_char_at(chars: &[char], i: isize) -> Option<char> {
    let i = if i < 0 { chars.len() as isize + i } else { i };
    usize::try_from(i).ok().and_then(|i| chars.get(i).copied())
}

const UPPER_PRONOUNS: [&str; 11] = [
    "A", "An", "The", "She", "He", "It", "They", "My", "His", "Her", "Their",
];

/// WSC273 from the Hugging Face layout (`winograd_wsc/wsc273`), after lm-eval's
/// `process_doc` (double spaces collapsed; options made possessive and lower-cased where the
/// pronoun is not sentence-initial). Partial scoring: one context per option, one shared
/// continuation, `gold = label`.
pub fn wsc273(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    let rows = take(read_jsonl(path)?, limit);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let text: Vec<char> = r.str("text")?.replace("  ", " ").chars().collect();
            let pronoun = r.str("pronoun")?;
            let loc = r.usize("pronoun_loc")?;
            let options = r.strings("options")?;
            if options.len() != 2 {
                return Err(r.err("options", "expected two options", "WSC273 has two options"));
            }
            let end = loc + pronoun.chars().count();
            if end > text.len() {
                return Err(r.err(
                    "pronoun_loc",
                    format!("{loc} + len(pronoun) is past the end of the text"),
                    "pronoun_loc counts characters from 0",
                ));
            }
            let start_of_sentence = py_char_at(&text, loc as isize - 2) == Some('.');
            let normalize = |option: &str| -> String {
                let mut option = option.to_owned();
                if ["my", "his", "her", "our", "their"].contains(&pronoun.to_lowercase().as_str()) {
                    option.push_str("'s");
                }
                let first = option.split_whitespace().next().unwrap_or("").to_owned();
                if !start_of_sentence && UPPER_PRONOUNS.contains(&first.as_str()) {
                    option.replace(&first, &first.to_lowercase())
                } else {
                    option
                }
            };
            let template: String = text[..loc].iter().collect();
            let target: String = text[end..].iter().collect();
            let choices: Vec<String> = options
                .iter()
                .map(|o| format!("{template}{}", normalize(o)))
                .collect();
            let gold = r.gold("label", 2)?;
            Ok(McItem {
                doc_id: i,
                requests: choices
                    .iter()
                    .map(|c| McRequest {
                        context: c.clone(),
                        continuation: format!(" {target}"),
                    })
                    .collect(),
                choices,
                gold,
                mc2_labels: None,
            })
        })
        .collect()
}

/// WSC273 from the MosaicML layout `{context_options[2], continuation, gold}`: the same
/// requests as lm-eval's on all 273 rows (`context_i = context_options[i]`, continuation
/// `" " + " " + continuation`, see the fixture README's `model_free_checks.json`).
pub fn wsc273_mosaic(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    let rows = take(read_jsonl(path)?, limit);
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            let choices = r.strings("context_options")?;
            if choices.len() != 2 {
                return Err(r.err(
                    "context_options",
                    "expected two contexts",
                    "WSC273 has two options",
                ));
            }
            let continuation = format!("  {}", r.str("continuation")?);
            let gold = r.gold("gold", 2)?;
            Ok(McItem {
                doc_id: i,
                requests: choices
                    .iter()
                    .map(|c| McRequest {
                        context: c.clone(),
                        continuation: continuation.clone(),
                    })
                    .collect(),
                choices,
                gold,
                mc2_labels: None,
            })
        })
        .collect()
}

/// WSC273 in either layout: MosaicML (`context_options`) or Hugging Face (`text`).
pub fn wsc273_any(path: &Path, limit: Option<usize>) -> Result<Vec<McItem>> {
    if first_row_fields(path)?
        .iter()
        .any(|f| f == "context_options")
    {
        wsc273_mosaic(path, limit)
    } else {
        wsc273(path, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_string_helpers() {
        assert_eq!(py_capitalize("hE SAYS"), "He says");
        assert_eq!(py_strip("  a b \n"), "a b");
        assert_eq!(
            hellaswag_preprocess(" How to x [title] Step one. [step] Do it [a]b  c"),
            "How to x. Step one. Do it b c"
        );
        assert_eq!(hellaswag_preprocess("a [b\n] c"), "a [b\n] c");
    }
}
