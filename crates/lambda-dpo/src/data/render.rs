//! Records → token ids, with the model's own chat template and tokenizer, and truncation.
//!
//! **Preference lists.** The prompt is rendered with `add_generation_prompt = true` and
//! tokenized without adding special tokens (the template has them). Each response is the
//! text the template adds when the assistant message is appended:
//!
//! ```text
//! prompt_text = render(prompt, add_generation_prompt = true)
//! full_text   = render(prompt + [assistant: y], add_generation_prompt = false)
//! response    = full_text[len(prompt_text)..]   (cut after the last end-of-turn token
//!                                                when only whitespace follows it)
//! ```
//!
//! so the response tokens carry exactly what the template does to the content (Llama-3 trims
//! it) plus the end-of-turn token (`<|eot_id|>`, `<|im_end|>`), and the prompt/response
//! boundary is exact: both parts are tokenized separately. A template for which `prompt_text`
//! is not a prefix of `full_text` is refused with a clear error. Without a chat template (or
//! with it turned off), a text prompt is `tokenizer(prompt)` (with BOS) and a response is its
//! text plus the EOS token; pre-tokenized ids are used as they are.
//!
//! **SFT.** Assistant masks come from prefixes: for every assistant turn `j`, the rendering of
//! turns `..j` with the generation prompt must be a prefix of the rendering of turns `..=j`,
//! which must be a prefix of the whole conversation; the text in between is that turn's
//! (trained) span. Segments are tokenized separately so the mask falls on token boundaries.
//!
//! **Truncation** follows LLaMA-Factory's `infer_seqlen` budget split, so a long prompt does
//! not starve the responses (and vice versa): see [`infer_seqlen`] and [`truncate_list`].

use lambda_dpo_model::{Message, Tokenizer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::{DataError, ErrorKind};
use super::fields::Ctx;
use super::record::{Content, Prompt};

/// Which end of an over-long prompt is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Truncation {
    /// Keep the start, cut the end (LLaMA-Factory, the authors' code). The generation header
    /// at the end of the prompt is lost when a cut happens.
    KeepStart,
    /// Keep the end, cut the start (TRL's default): the question nearest the answer and the
    /// generation header survive.
    #[default]
    KeepEnd,
}

/// A rendered prompt, with what responses need to be rendered after it.
#[derive(Debug, Clone)]
pub struct RenderedPrompt {
    pub ids: Vec<u32>,
    mode: Mode,
}

impl RenderedPrompt {
    /// The chat messages this prompt was rendered from (only when the template was used).
    pub fn messages(&self) -> Option<&[Message]> {
        match &self.mode {
            Mode::Template { messages, .. } => Some(messages),
            Mode::Plain | Mode::Ids => None,
        }
    }
}

#[derive(Debug, Clone)]
enum Mode {
    /// Rendered with the chat template: the messages and the prompt text.
    Template {
        messages: Vec<Message>,
        text: String,
    },
    /// Plain text, no template: responses are text + EOS.
    Plain,
    /// Pre-tokenized: responses are ids as given.
    Ids,
}

/// Renders records with one tokenizer.
pub struct Renderer<'t> {
    tok: &'t Tokenizer,
    template: bool,
    eos: Option<(String, u32)>,
    kwargs: Map<String, Value>,
}

impl std::fmt::Debug for Renderer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer")
            .field("template", &self.template)
            .field("eos", &self.eos)
            .finish_non_exhaustive()
    }
}

impl<'t> Renderer<'t> {
    /// `use_template = false` renders text as plain text even when the model has a template.
    /// `kwargs` go to the template (e.g. Llama-3's `date_string`).
    pub fn new(tok: &'t Tokenizer, use_template: bool, kwargs: Map<String, Value>) -> Self {
        let eos = tok
            .eos_token
            .clone()
            .and_then(|t| tok.token_to_id(&t).map(|id| (t, id)));
        Self {
            tok,
            template: use_template && tok.chat_template.is_some(),
            eos,
            kwargs,
        }
    }

    /// Whether the chat template is used.
    pub fn uses_template(&self) -> bool {
        self.template
    }

    fn render(
        &self,
        ctx: &Ctx<'_>,
        msgs: &[Message],
        gen: bool,
        field: &str,
    ) -> Result<String, DataError> {
        self.tok.render_chat(msgs, gen, &self.kwargs).map_err(|e| {
            ctx.err(
                ErrorKind::Template,
                field,
                "a conversation the chat template can render",
                e.to_string(),
            )
            .hint("check the roles and their order (system first, then user/assistant turns)")
        })
    }

    fn encode(
        &self,
        ctx: &Ctx<'_>,
        text: &str,
        special: bool,
        field: &str,
    ) -> Result<Vec<u32>, DataError> {
        self.tok.encode(text, special).map_err(|e| {
            ctx.err(
                ErrorKind::Tokenizer,
                field,
                "text the tokenizer can encode",
                e.to_string(),
            )
        })
    }

    fn no_template(&self, ctx: &Ctx<'_>, field: &str) -> DataError {
        ctx.err(
            ErrorKind::Template,
            field,
            "a model with a chat template (this record is a conversation)",
            format!(
                "no chat template for {}",
                self.tok.path.parent().unwrap_or(&self.tok.path).display()
            ),
        )
        .hint("use an instruct model (tokenizer_config.json with `chat_template`, or chat_template.jinja), or plain `prompt` text")
    }

    /// Renders a prompt.
    pub fn prompt(&self, ctx: &Ctx<'_>, prompt: &Prompt) -> Result<RenderedPrompt, DataError> {
        match prompt {
            Prompt::Ids(ids) => Ok(RenderedPrompt {
                ids: ids.clone(),
                mode: Mode::Ids,
            }),
            Prompt::Text(t) if !self.template => Ok(RenderedPrompt {
                ids: self.encode(ctx, t, true, "prompt")?,
                mode: Mode::Plain,
            }),
            Prompt::Messages(_) if !self.template => Err(self.no_template(ctx, "prompt")),
            _ => {
                let messages = prompt.to_messages().expect("text or messages");
                let text = self.render(ctx, &messages, true, "prompt")?;
                let ids = self.encode(ctx, &text, false, "prompt")?;
                Ok(RenderedPrompt {
                    ids,
                    mode: Mode::Template { messages, text },
                })
            }
        }
    }

    /// Renders one response after its prompt: its tokens including the end-of-turn token.
    pub fn response(
        &self,
        ctx: &Ctx<'_>,
        prompt: &RenderedPrompt,
        content: &Content,
        field: &str,
    ) -> Result<Vec<u32>, DataError> {
        let text = match content {
            Content::Ids(ids) => return Ok(ids.clone()),
            Content::Text(t) => t,
        };
        match &prompt.mode {
            Mode::Template {
                messages,
                text: prompt_text,
            } => {
                let mut msgs = messages.clone();
                msgs.push(Message::new("assistant", text));
                let full = self.render(ctx, &msgs, false, field)?;
                let Some(suffix) = full.strip_prefix(prompt_text.as_str()) else {
                    return Err(self.not_prefix(ctx, field));
                };
                let end = self.end_of_turn(suffix);
                self.encode(ctx, &suffix[..end], false, field)
            }
            Mode::Plain | Mode::Ids => {
                let mut ids = self.encode(ctx, text, false, field)?;
                ids.extend(self.eos.as_ref().map(|(_, id)| *id));
                Ok(ids)
            }
        }
    }

    fn not_prefix(&self, ctx: &Ctx<'_>, field: &str) -> DataError {
        ctx.err(
            ErrorKind::Template,
            field,
            "a chat template whose rendering of the prompt (with add_generation_prompt) is a prefix of the rendering with the response",
            "a template that renders the earlier turns differently once a response follows",
        )
        .hint("such templates (e.g. ones that drop earlier reasoning) cannot give an exact prompt/response boundary; use a different template or pre-tokenize (`prompt_ids` + `ids`)")
    }

    /// Length of the trained part of an assistant span: up to and including the last
    /// end-of-turn (EOS) token when only whitespace follows it (Qwen's `<|im_end|>\n`), else
    /// the whole span.
    fn end_of_turn(&self, span: &str) -> usize {
        if let Some((eos, _)) = &self.eos {
            if let Some(p) = span.rfind(eos.as_str()) {
                let end = p + eos.len();
                if span[end..].trim().is_empty() {
                    return end;
                }
            }
        }
        span.len()
    }

    /// An SFT conversation: token ids and the mask of trained positions (assistant tokens,
    /// end-of-turn included).
    pub fn sft(
        &self,
        ctx: &Ctx<'_>,
        messages: &[Message],
    ) -> Result<(Vec<u32>, Vec<bool>), DataError> {
        if !self.template {
            return self.sft_plain(ctx, messages);
        }
        let full = self.render(ctx, messages, false, "messages")?;
        // (text, trained) segments covering `full`.
        let mut segments: Vec<(usize, usize, bool)> = Vec::new();
        let mut cursor = 0;
        for (j, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let field = format!("messages[{j}]");
            if j == 0 {
                return Err(ctx.err(
                    ErrorKind::Field,
                    &field,
                    "a conversation that starts with a user (or system) turn",
                    "an assistant turn first",
                ));
            }
            let before = self.render(ctx, &messages[..j], true, &field)?;
            let with = self.render(ctx, &messages[..=j], false, &field)?;
            if !with.starts_with(&before) || !full.starts_with(&with) || before.len() < cursor {
                return Err(self.not_prefix(ctx, &field));
            }
            let end = before.len() + self.end_of_turn(&with[before.len()..]);
            segments.push((cursor, before.len(), false));
            segments.push((before.len(), end, true));
            cursor = end;
        }
        segments.push((cursor, full.len(), false));
        let mut ids = Vec::new();
        let mut mask = Vec::new();
        for (a, b, train) in segments {
            if a == b {
                continue;
            }
            let seg = self.encode(ctx, &full[a..b], false, "messages")?;
            mask.extend(std::iter::repeat_n(train, seg.len()));
            ids.extend(seg);
        }
        Ok((ids, mask))
    }

    /// Without a template only a single exchange can be rendered: `[system?] user assistant`
    /// becomes `tokenizer(user)` + `response + EOS` (trained), the system text prefixed.
    fn sft_plain(
        &self,
        ctx: &Ctx<'_>,
        messages: &[Message],
    ) -> Result<(Vec<u32>, Vec<bool>), DataError> {
        let text = |m: &Message| m.content.as_str().unwrap_or("").to_string();
        let (prompt, answer) = match messages {
            [u, a] if u.role == "user" && a.role == "assistant" => (text(u), text(a)),
            [s, u, a] if s.role == "system" && u.role == "user" && a.role == "assistant" => {
                (format!("{}\n\n{}", text(s), text(u)), text(a))
            }
            _ => return Err(self.no_template(ctx, "messages")),
        };
        let mut ids = self.encode(ctx, &prompt, true, "messages")?;
        let mut mask = vec![false; ids.len()];
        let mut resp = self.encode(ctx, &answer, false, "messages")?;
        resp.extend(self.eos.as_ref().map(|(_, id)| *id));
        mask.extend(std::iter::repeat_n(true, resp.len()));
        ids.extend(resp);
        Ok((ids, mask))
    }
}

/// LLaMA-Factory's `infer_seqlen`: how many prompt (source) and response (target) tokens fit
/// in `cutoff`, so that neither starves the other.
///
/// ```text
/// if 2·T < cutoff:      max_T = cutoff          (short responses: cut only the prompt)
/// elif 2·S < cutoff:    max_T = cutoff − S      (short prompt: cut only the responses)
/// else:                 max_T = ⌊cutoff · T / (S + T)⌋   (both long: proportional split)
/// T' = min(max_T, T);   S' = min(cutoff − T', S)
/// ```
pub fn infer_seqlen(source: usize, target: usize, cutoff: usize) -> (usize, usize) {
    let max_target = if target * 2 < cutoff {
        cutoff
    } else if source * 2 < cutoff {
        cutoff - source
    } else {
        // Python's int() of the float product; the exact rational is the same for any
        // realistic length (< 2^52).
        (cutoff as f64 * (target as f64 / (source + target) as f64)) as usize
    };
    let new_target = max_target.min(target);
    let new_source = cutoff.saturating_sub(new_target).min(source);
    (new_source, new_target)
}

/// Cuts `ids` to `len` tokens, keeping the start or the end.
pub fn cut(ids: &mut Vec<u32>, len: usize, mode: Truncation) {
    if ids.len() <= len {
        return;
    }
    match mode {
        Truncation::KeepStart => ids.truncate(len),
        Truncation::KeepEnd => {
            ids.drain(..ids.len() - len);
        }
    }
}

/// Truncates one list in place; returns whether anything was cut. The prompt is first held to
/// `max_prompt_length`; if prompt + the longest response still exceed `max_length`, the budget
/// is split by [`infer_seqlen`] and every response keeps its start (the tokens right after
/// the prompt). Errors when `max_length` leaves a response no token at all.
pub fn truncate_list(
    prompt: &mut Vec<u32>,
    responses: &mut [Vec<u32>],
    max_length: usize,
    max_prompt_length: Option<usize>,
    mode: Truncation,
) -> Result<bool, String> {
    let mut truncated = false;
    if let Some(mp) = max_prompt_length {
        if prompt.len() > mp {
            cut(prompt, mp, mode);
            truncated = true;
        }
    }
    let longest = responses.iter().map(Vec::len).max().unwrap_or(0);
    if prompt.len() + longest > max_length {
        let (s, t) = infer_seqlen(prompt.len(), longest, max_length);
        if t == 0 {
            return Err(format!(
                "max_length {max_length} leaves no room for the responses after a {}-token prompt",
                prompt.len()
            ));
        }
        cut(prompt, s, mode);
        for r in responses.iter_mut() {
            cut(r, t, Truncation::KeepStart);
        }
        truncated = true;
    }
    Ok(truncated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn infer_seqlen_matches_llamafactory() {
        // Values computed with LLaMA-Factory's processor_utils.infer_seqlen.
        assert_eq!(infer_seqlen(100, 50, 1024), (100, 50)); // fits: unchanged
        assert_eq!(infer_seqlen(3000, 100, 1024), (924, 100)); // long prompt: cut source
        assert_eq!(infer_seqlen(100, 3000, 1024), (100, 924)); // long response: cut target
        assert_eq!(infer_seqlen(1500, 1500, 1024), (512, 512)); // both: proportional
        assert_eq!(infer_seqlen(2000, 1000, 1024), (683, 341));
    }

    #[test]
    fn truncation_keeps_the_chosen_end() {
        let mut p: Vec<u32> = (0..10).collect();
        let mut r = vec![vec![100; 3], vec![200; 8]];
        assert!(truncate_list(&mut p, &mut r, 12, Some(6), Truncation::KeepEnd).unwrap());
        // Prompt held to 6 (keep end) → 6 + 8 > 12: infer_seqlen(6, 8, 12) = (6, 6)?
        // 2·8 ≥ 12 and 2·6 ≥ 12 → T = ⌊12·8/14⌋ = 6, S = 6.
        assert_eq!(p, vec![4, 5, 6, 7, 8, 9]);
        assert_eq!(r[0].len(), 3);
        assert_eq!(r[1].len(), 6);
        let mut p: Vec<u32> = (0..10).collect();
        let mut r = vec![vec![1; 2]];
        assert!(truncate_list(&mut p, &mut r, 8, None, Truncation::KeepStart).unwrap());
        assert_eq!(p, vec![0, 1, 2, 3, 4, 5]);
        let mut p: Vec<u32> = (0..4).collect();
        let mut r = vec![vec![1; 2]];
        assert!(!truncate_list(&mut p, &mut r, 8, None, Truncation::KeepStart).unwrap());
    }
}
