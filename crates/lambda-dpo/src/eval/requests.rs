//! Context/continuation strings → token ids, exactly as lm-eval's Hugging Face backend does it
//! (`HFLM._encode_pair` and `_loglikelihood_tokens`).
//!
//! ```text
//! k            = len(context) − len(context.rstrip())       (trailing whitespace moves right)
//! context'     = context[:−k],   continuation' = context[−k:] + continuation
//! context_enc  = tok(context')                              (default special tokens: BOS for Llama)
//! whole        = tok(context' + continuation')
//! cont_enc     = whole[len(context_enc):]
//! model input  = (context_enc + cont_enc)[−(max_length+1):] (left truncation, BOS included)
//! scored       = the last len(cont_enc) tokens of that input
//! ```

use lambda_dpo_model::Tokenizer;

use super::error::{EvalError, Result};
use super::tasks::py_isspace;

/// One request's token ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedRequest {
    pub context_enc: Vec<u32>,
    pub continuation_enc: Vec<u32>,
}

/// Byte length of Python's `s.rstrip()`.
fn trailing_ws_start(s: &str) -> usize {
    s.trim_end_matches(py_isspace).len()
}

/// lm-eval's `_encode_pair`.
pub fn encode_pair(tok: &Tokenizer, context: &str, continuation: &str) -> Result<EncodedRequest> {
    let cut = trailing_ws_start(context);
    let (context, moved) = context.split_at(cut);
    let continuation = format!("{moved}{continuation}");
    let whole = tok.encode(&format!("{context}{continuation}"), true)?;
    let context_enc = tok.encode(context, true)?;
    // lm-eval slices by length even where tok(context) is not a prefix of tok(whole).
    let continuation_enc = whole.get(context_enc.len()..).unwrap_or(&[]).to_vec();
    Ok(EncodedRequest {
        context_enc,
        continuation_enc,
    })
}

impl EncodedRequest {
    /// The ids the model sees plus the scored token (`[-(max_length+1):]`), the index of the
    /// first scored token, and how many tokens were cut on the left.
    pub fn model_input(&self, max_length: usize) -> Result<(Vec<u32>, usize, usize)> {
        let n_cont = self.continuation_enc.len();
        if n_cont == 0 || n_cont > max_length {
            return Err(EvalError::Task {
                task: "loglikelihood".into(),
                message: format!(
                    "the continuation has {n_cont} tokens; lm-eval scores 1 ..= max_length ({max_length})"
                ),
                hint: "an empty continuation cannot be scored; a longer one does not fit the model".into(),
            });
        }
        let all: Vec<u32> = self
            .context_enc
            .iter()
            .chain(&self.continuation_enc)
            .copied()
            .collect();
        let cut = all.len().saturating_sub(max_length + 1);
        let ids = all[cut..].to_vec();
        let start = ids.len() - n_cont;
        if start == 0 {
            return Err(EvalError::Task {
                task: "loglikelihood".into(),
                message: "the request has no context token".into(),
                hint: "lm-eval puts the prefix (BOS/EOS) token before an empty context; give a non-empty context".into(),
            });
        }
        Ok((ids, start, cut))
    }
}
