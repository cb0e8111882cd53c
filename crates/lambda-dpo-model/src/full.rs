//! Full fine-tuning: every base weight becomes a trainable variable (needed to train a small
//! model from scratch, as the demo does), and the trained weights are written back as a plain
//! Hugging Face folder. LoRA training never goes through here: there the base stays frozen by
//! construction.

use std::path::Path;

use candle_core::{DType, Tensor, Var};

use crate::decoder::Model;
use crate::error::{ModelError, Result};
use crate::lora::Target;

impl Model {
    /// Turns every weight (embeddings, norms, projections, biases, untied lm_head) into a `Var`
    /// and returns them with their Hugging Face names. Only for f32 models: training bf16
    /// weights in place would need f32 master copies, which this path does not keep.
    pub fn make_trainable(&mut self) -> Result<Vec<(String, Var)>> {
        if self.dtype != DType::F32 {
            return Err(ModelError::Input(format!(
                "full fine-tuning needs dtype f32 (found {:?})\nhint: LoRA training supports bf16",
                self.dtype
            )));
        }
        let mut vars = Vec::new();
        let mut var = |name: String, t: &mut Tensor| -> Result<()> {
            let v = Var::from_tensor(t)?;
            *t = v.as_tensor().clone();
            vars.push((name, v));
            Ok(())
        };
        var("model.embed_tokens.weight".into(), &mut self.embed_tokens)?;
        for (i, layer) in self.layers.iter_mut().enumerate() {
            var(
                format!("model.layers.{i}.input_layernorm.weight"),
                &mut layer.input_norm,
            )?;
            var(
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                &mut layer.post_attention_norm,
            )?;
            for t in Target::ALL {
                let lin = &mut layer.proj[t.index()];
                var(format!("{}.weight", t.module_path(i)), &mut lin.weight)?;
                if let Some(b) = &mut lin.bias {
                    var(format!("{}.bias", t.module_path(i)), b)?;
                }
            }
        }
        var("model.norm.weight".into(), &mut self.norm)?;
        if self.config.tie_word_embeddings {
            // Tied: the head *is* the embedding variable, so both uses train one tensor.
            self.lm_head = self.embed_tokens.clone();
        } else {
            var("lm_head.weight".into(), &mut self.lm_head)?;
        }
        Ok(vars)
    }

    /// Every weight with its Hugging Face name (no `lm_head.weight` when tied).
    pub fn named_weights(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(
            "model.embed_tokens.weight".to_string(),
            self.embed_tokens.clone(),
        )];
        for (i, layer) in self.layers.iter().enumerate() {
            out.push((
                format!("model.layers.{i}.input_layernorm.weight"),
                layer.input_norm.clone(),
            ));
            out.push((
                format!("model.layers.{i}.post_attention_layernorm.weight"),
                layer.post_attention_norm.clone(),
            ));
            for t in Target::ALL {
                let lin = &layer.proj[t.index()];
                out.push((format!("{}.weight", t.module_path(i)), lin.weight.clone()));
                if let Some(b) = &lin.bias {
                    out.push((format!("{}.bias", t.module_path(i)), b.clone()));
                }
            }
        }
        out.push(("model.norm.weight".into(), self.norm.clone()));
        if !self.config.tie_word_embeddings {
            out.push(("lm_head.weight".into(), self.lm_head.clone()));
        }
        out
    }

    /// Writes the current weights as `<dir>/model.safetensors` and copies the non-weight files
    /// (config, tokenizer, templates) from `source_dir`, giving a folder transformers loads.
    pub fn save_pretrained(&self, source_dir: &Path, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ModelError::io(dir, e))?;
        let tensors: Vec<(String, Tensor)> = self
            .named_weights()
            .into_iter()
            .map(|(k, t)| (k, t.detach()))
            .collect();
        crate::io::write_safetensors(&dir.join("model.safetensors"), &tensors, None)?;
        crate::export::copy_model_files(source_dir, dir)?;
        Ok(())
    }
}
