//! The world's tokenizer: a byte-level BPE trained (with the `tokenizers` crate) on the world's
//! own text and λ system prompts, the Llama-3 special tokens, and a Llama-3-style chat template
//! with an optional system message.
//!
//! ```text
//! <|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>   (optional)
//! <|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>
//! <|start_header_id|>assistant<|end_header_id|>\n\n{assistant}<|eot_id|>
//! ```
//!
//! Files: `tokenizer.json`, `tokenizer_config.json` (special tokens, `chat_template`),
//! `generation_config.json` (`eos_token_id` = [`<|eot_id|>`, `<|end_of_text|>`]). Byte-level
//! BPE round-trips any text exactly. What does not live here: reading tokenizers (the model
//! crate's `Tokenizer`).

use std::path::Path;

use serde_json::json;
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::models::TrainerWrapper;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{AddedToken, Tokenizer};

use super::error::WorldError;
use super::files::write_text;
use super::World;

pub const BOS: &str = "<|begin_of_text|>";
pub const END_OF_TEXT: &str = "<|end_of_text|>";
pub const START_HEADER: &str = "<|start_header_id|>";
pub const END_HEADER: &str = "<|end_header_id|>";
pub const EOT: &str = "<|eot_id|>";
/// The special tokens, appended after the learned vocabulary in this order.
pub const SPECIALS: [&str; 5] = [BOS, END_OF_TEXT, START_HEADER, END_HEADER, EOT];

/// Size of the learned vocabulary (256 byte symbols + merges), before the special tokens. The
/// trainer stops earlier when no pair occurs twice.
pub const BPE_VOCAB: usize = 763;

/// The chat template: Llama-3's layout without its date/tools preamble; contents are trimmed.
pub const CHAT_TEMPLATE: &str = "{{- bos_token }}\n{%- for message in messages %}\n    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}\n{%- endfor %}\n{%- if add_generation_prompt %}\n    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}\n{%- endif %}\n";

/// A trained tokenizer and the ids the model config needs.
#[derive(Debug, Clone)]
pub struct Trained {
    pub tokenizer: Tokenizer,
    pub bos_id: u32,
    /// `<|eot_id|>` (end of turn) first, then `<|end_of_text|>`.
    pub eos_ids: Vec<u32>,
}

impl Trained {
    /// Vocabulary size including the special tokens (the model's `vocab_size`).
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }
}

/// Trains the byte-level BPE on `texts` (deterministic: the trainer breaks ties by pair id).
/// `path` only names errors.
pub fn train(texts: &[String], path: &Path) -> Result<Trained, WorldError> {
    let err = |e: tokenizers::Error| WorldError::Tokenizer {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    let mut trainer: TrainerWrapper = BpeTrainerBuilder::new()
        .vocab_size(BPE_VOCAB)
        .min_frequency(2)
        .show_progress(false)
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build()
        .into();
    // The template's role names and separators are text too.
    let mut all: Vec<&str> = texts.iter().map(String::as_str).collect();
    all.extend(["system\n\n", "user\n\n", "assistant\n\n"].repeat(8));
    tok.train(&mut trainer, all.into_iter()).map_err(err)?;
    let specials: Vec<AddedToken> = SPECIALS
        .iter()
        .map(|s| AddedToken::from(*s, true))
        .collect();
    tok.add_special_tokens(&specials);
    let id = |s: &str| {
        tok.token_to_id(s).ok_or_else(|| WorldError::Tokenizer {
            path: path.to_path_buf(),
            message: format!("special token {s} missing after training"),
        })
    };
    let bos_id = id(BOS)?;
    let eos_ids = vec![id(EOT)?, id(END_OF_TEXT)?];
    // `tokenizer(text)` adds BOS, as Llama-3's post-processor does.
    let post = TemplateProcessing::builder()
        .try_single(format!("{BOS} $A"))
        .and_then(|b| b.try_pair(format!("{BOS} $A {BOS}:1 $B:1")))
        .map_err(|e| WorldError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?
        .special_tokens(vec![(BOS.to_string(), bos_id)])
        .build()
        .map_err(|e| WorldError::Tokenizer {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    tok.with_post_processor(Some(post));
    Ok(Trained {
        tokenizer: tok,
        bos_id,
        eos_ids,
    })
}

/// Writes `tokenizer.json`, `tokenizer_config.json` and `generation_config.json` into `dir`.
pub fn write_files(dir: &Path, t: &Trained, model_max_length: usize) -> Result<(), WorldError> {
    std::fs::create_dir_all(dir).map_err(|e| WorldError::io(dir, e))?;
    let tok_path = dir.join("tokenizer.json");
    let text = t
        .tokenizer
        .to_string(true)
        .map_err(|e| WorldError::Tokenizer {
            path: tok_path.clone(),
            message: e.to_string(),
        })?;
    write_text(&tok_path, &(text + "\n"))?;
    let cfg = json!({
        "bos_token": BOS,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": false,
        "eos_token": EOT,
        "model_max_length": model_max_length,
        "pad_token": END_OF_TEXT,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    write_text(
        &dir.join("tokenizer_config.json"),
        &(serde_json::to_string_pretty(&cfg).expect("plain JSON") + "\n"),
    )?;
    let gen = json!({
        "bos_token_id": t.bos_id,
        "eos_token_id": t.eos_ids,
        "pad_token_id": t.eos_ids[1],
        "transformers_version": "5.25.0",
    });
    write_text(
        &dir.join("generation_config.json"),
        &(serde_json::to_string_pretty(&gen).expect("plain JSON") + "\n"),
    )
}

impl World {
    /// Trains the world's tokenizer on [`World::corpus`].
    pub fn train_tokenizer(&self) -> Result<Trained, WorldError> {
        train(&self.corpus(), Path::new("<world tokenizer>"))
    }

    /// Writes the tokenizer files (see the module docs) into `dir`.
    pub fn write_tokenizer(&self, dir: &Path) -> Result<(), WorldError> {
        let t = train(&self.corpus(), dir)?;
        write_files(dir, &t, super::TinyLlama::default().max_position)
    }
}
