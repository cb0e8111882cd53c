//! The world's data files: UltraFeedback-layout preference JSONL and `messages`-layout SFT
//! JSONL, built in memory and written atomically (temp file + rename, the model crate's
//! `io::write_atomic`), byte-identical for the same configuration.
//!
//! ```text
//! {"source": "lambda_dpo_world", "prompt_id": "capital/varnia/0", "instruction": "…",
//!  "models": [...], "completions": [{"model": "right-bare-polite0-detail0", "response": "Olm.",
//!   "annotations": {"correctness": {"Rating": "5", "Rationale": "…"}, …}}, …]}
//! {"prompt_id": "…", "messages": [{"role": "user", …}, {"role": "assistant", …}]}
//! ```
//!
//! Ratings are `1 + round(4·reward)` as strings, as in the real release. What does not live
//! here: choosing the candidates (`grammar`, [`World::candidates`]).

use std::path::Path;

use lambda_dpo_math::rng::Rng;
use serde_json::{json, Map, Value};

use super::error::WorldError;
use super::rewards::rating;
use super::{grammar, Split, World};

/// The `source` field of every preference row.
pub const SOURCE: &str = "lambda_dpo_world";

/// Writes `lines` as JSONL to `path` atomically, creating the parent folder.
pub(crate) fn write_text(path: &Path, text: &str) -> Result<(), WorldError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| WorldError::io(dir, e))?;
    }
    lambda_dpo_model::io::write_atomic(path, text.as_bytes())?;
    Ok(())
}

fn jsonl(rows: &[Value]) -> String {
    let mut out = String::new();
    for r in rows {
        out.push_str(&serde_json::to_string(r).expect("plain JSON values"));
        out.push('\n');
    }
    out
}

impl World {
    /// Raw UltraFeedback JSONL for `split`: one row per prompt with the N candidates of
    /// [`World::candidates`], each rated 1–5 on every dimension with a rationale. Returns the
    /// number of rows.
    pub fn write_ultrafeedback(&self, path: &Path, split: Split) -> Result<usize, WorldError> {
        let prompts = self.prompts(split);
        let mut rows = Vec::with_capacity(prompts.len());
        for p in prompts {
            let cands = self.candidates(p);
            let mut completions = Vec::with_capacity(cands.len());
            for (profile, text) in &cands {
                let (r, why) = self.rewards_explained(p, text);
                let mut ann = Map::new();
                for (k, dim) in self.dimensions().iter().enumerate() {
                    ann.insert(
                        (*dim).to_string(),
                        json!({
                            "Rating": rating(r[k]).to_string(),
                            "Rationale": format!("reward {:.3}: {}", r[k], why[k]),
                        }),
                    );
                }
                completions.push(json!({
                    "model": profile.label(),
                    "response": text,
                    "annotations": ann,
                }));
            }
            let models: Vec<String> = cands.iter().map(|(p, _)| p.label()).collect();
            rows.push(json!({
                "source": SOURCE,
                "prompt_id": p.id,
                "instruction": p.text,
                "models": models,
                "completions": completions,
            }));
        }
        write_text(path, &jsonl(&rows))?;
        Ok(rows.len())
    }

    /// SFT JSONL for `split` in the `messages` layout: `per_prompt` responses per prompt with
    /// distinct profiles (the whole attribute space, a share of them wrong); `sft_conditioned`
    /// λ-conditioned demonstrations per prompt (the λ line as the system message, the best
    /// response under λ as the answer); and — for the train split when `sft_fact_statements`
    /// is on — "Tell me about X." for every country (`sft_fact_repeats` copies of each).
    /// Rows are shuffled (seeded). Returns the number of rows.
    pub fn write_sft(
        &self,
        path: &Path,
        split: Split,
        per_prompt: usize,
    ) -> Result<usize, WorldError> {
        let conv = |id: &str, user: &str, assistant: &str| {
            json!({
                "prompt_id": id,
                "messages": [
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": assistant},
                ],
            })
        };
        let mut rows = Vec::new();
        for p in self.prompts(split) {
            for (_, text) in self.sft_responses(p, per_prompt) {
                rows.push(conv(&p.id, &p.text, &text));
            }
            for (lambda, text) in self.conditioned_demos(p, self.config().sft_conditioned) {
                rows.push(json!({
                    "prompt_id": p.id,
                    "messages": [
                        {"role": "system", "content": super::render_lambda(self.dimensions(), &lambda)},
                        {"role": "user", "content": p.text},
                        {"role": "assistant", "content": text},
                    ],
                }));
            }
        }
        if split == Split::Train && self.config().sft_fact_statements {
            for (i, (q, a)) in self.fact_statements().into_iter().enumerate() {
                for _ in 0..self.config().sft_fact_repeats.max(1) {
                    rows.push(conv(&format!("facts/{i}"), &q, &a));
                }
            }
        }
        let salt = match split {
            Split::Train => 0x7A11,
            Split::Eval => 0xE7A1,
        };
        grammar::shuffle(
            &mut rows,
            &mut Rng::seed_from_u64(self.config().seed ^ (salt << 40)),
        );
        write_text(path, &jsonl(&rows))?;
        Ok(rows.len())
    }
}
