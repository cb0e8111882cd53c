//! The model's tokenizer (`tokenizer.json` through the `tokenizers` crate) and the special
//! tokens and chat template declared beside it (`tokenizer_config.json`, or
//! `chat_template.jinja`, which transformers ≥ 4.43 writes instead).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::chat::{ChatTemplate, Message};
use crate::error::{ModelError, Result};

/// Tokenizer plus the metadata needed to render and tokenize conversations as HF does.
pub struct Tokenizer {
    pub path: PathBuf,
    inner: tokenizers::Tokenizer,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
    pub unk_token: Option<String>,
    pub pad_token: Option<String>,
    pub chat_template: Option<ChatTemplate>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("path", &self.path)
            .field("bos_token", &self.bos_token)
            .field("eos_token", &self.eos_token)
            .field("has_chat_template", &self.chat_template.is_some())
            .finish()
    }
}

impl Tokenizer {
    /// Loads the tokenizer files of a model folder.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path,
                hint: "lambda-dpo reads fast tokenizers (tokenizer.json); slow-only tokenizers (tokenizer.model) can be converted with `AutoTokenizer.from_pretrained(dir).save_pretrained(dir)`".into(),
            });
        }
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| ModelError::Tokenizer {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: Value = if cfg_path.is_file() {
            let text =
                std::fs::read_to_string(&cfg_path).map_err(|e| ModelError::io(&cfg_path, e))?;
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: cfg_path.clone(),
                source,
            })?
        } else {
            Value::Null
        };
        let token = |key: &str| -> Option<String> {
            match cfg.get(key)? {
                Value::String(s) => Some(s.clone()),
                // An AddedToken serialised as a dict.
                Value::Object(o) => o.get("content").and_then(Value::as_str).map(str::to_string),
                _ => None,
            }
        };
        let jinja_path = dir.join("chat_template.jinja");
        let template_source = if jinja_path.is_file() {
            Some(std::fs::read_to_string(&jinja_path).map_err(|e| ModelError::io(&jinja_path, e))?)
        } else {
            match cfg.get("chat_template") {
                Some(Value::String(s)) => Some(s.clone()),
                // A list of named templates: use "default", as transformers does.
                Some(Value::Array(list)) => list
                    .iter()
                    .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(Value::as_str)
                    .map(str::to_string),
                _ => None,
            }
        };
        let mut tok = Self {
            path,
            inner,
            bos_token: token("bos_token"),
            eos_token: token("eos_token"),
            unk_token: token("unk_token"),
            pad_token: token("pad_token"),
            chat_template: None,
        };
        if let Some(src) = template_source {
            tok.chat_template = Some(ChatTemplate::new(&src, tok.special_tokens())?);
        }
        Ok(tok)
    }

    /// The special-token strings a chat template may refer to.
    pub fn special_tokens(&self) -> Vec<(&'static str, String)> {
        [
            ("bos_token", &self.bos_token),
            ("eos_token", &self.eos_token),
            ("unk_token", &self.unk_token),
            ("pad_token", &self.pad_token),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.clone().map(|v| (k, v)))
        .collect()
    }

    /// Token ids of `text`. `add_special_tokens = true` is `tokenizer(text)` in Python (the
    /// post-processor adds e.g. Llama's BOS); `false` is what `apply_chat_template` uses.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc =
            self.inner
                .encode(text, add_special_tokens)
                .map_err(|e| ModelError::Tokenizer {
                    path: self.path.clone(),
                    message: e.to_string(),
                })?;
        Ok(enc.get_ids().to_vec())
    }

    pub fn decode(&self, ids: &[u32], skip_special_tokens: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special_tokens)
            .map_err(|e| ModelError::Tokenizer {
                path: self.path.clone(),
                message: e.to_string(),
            })
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Renders `messages` with the chat template (`add_generation_prompt` as in HF).
    pub fn render_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, Value>,
    ) -> Result<String> {
        let tpl = self.chat_template.as_ref().ok_or_else(|| ModelError::ChatTemplate {
            message: format!(
                "{} has no chat template (no `chat_template` in tokenizer_config.json, no chat_template.jinja)\nhint: use a plain `prompt` instead of `messages`, or add the model's template",
                self.path.parent().unwrap_or(Path::new(".")).display()
            ),
        })?;
        tpl.render(messages, add_generation_prompt, extra)
    }

    /// `apply_chat_template(messages, tokenize=True)`: render, then encode without adding
    /// special tokens (the template already contains them).
    pub fn encode_chat(
        &self,
        messages: &[Message],
        add_generation_prompt: bool,
        extra: &serde_json::Map<String, Value>,
    ) -> Result<Vec<u32>> {
        let text = self.render_chat(messages, add_generation_prompt, extra)?;
        self.encode(&text, false)
    }
}
