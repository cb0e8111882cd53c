//! Every load error says what was expected and what was found, naming the file (and tensor or
//! field), with a hint where the user can act.

mod common;

use std::path::Path;

use candle_core::{DType, Device};
use common::fixture;
use lambda_dpo_model::{Adapter, Model, ModelConfig, ModelError, RopeScaling, Tokenizer};

/// A writable copy of a fixture model folder.
fn copy_model(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture(name).join("model")).unwrap() {
        let e = entry.unwrap();
        std::fs::copy(e.path(), dir.path().join(e.file_name())).unwrap();
    }
    dir
}

fn edit_config(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(p, v.to_string()).unwrap();
}

fn load_err(dir: &Path) -> String {
    Model::load(dir, DType::F32, &Device::Cpu)
        .unwrap_err()
        .to_string()
}

#[test]
fn unsupported_architecture_names_it_and_the_supported_list() {
    let dir = copy_model("llama");
    edit_config(dir.path(), |v| {
        v["architectures"] = serde_json::json!(["GPT2LMHeadModel"])
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("GPT2LMHeadModel")
            && e.contains("LlamaForCausalLM")
            && e.contains("Qwen2ForCausalLM"),
        "{e}"
    );
    assert!(e.contains("config.json"), "{e}");
}

#[test]
fn missing_folder_and_missing_weights_name_the_path() {
    let e = load_err(Path::new("/nonexistent/model-dir"));
    assert!(
        e.contains("/nonexistent/model-dir") && e.contains("not found"),
        "{e}"
    );
    let dir = copy_model("llama");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("model.safetensors") && e.contains("hint:"),
        "{e}"
    );
    let dir = copy_model("llama");
    std::fs::remove_file(dir.path().join("config.json")).unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("config.json") && e.contains("not found"), "{e}");
}

#[test]
fn pickle_only_folder_is_refused_with_a_conversion_hint() {
    let dir = copy_model("llama");
    std::fs::remove_file(dir.path().join("model.safetensors")).unwrap();
    std::fs::write(dir.path().join("pytorch_model.bin"), b"not unpickled").unwrap();
    let err = Model::load(dir.path(), DType::F32, &Device::Cpu).unwrap_err();
    assert!(matches!(err, ModelError::PickleOnly { .. }), "{err}");
    let e = err.to_string();
    assert!(
        e.contains("pytorch_model.bin")
            && e.contains("never unpickles")
            && e.contains("safe_serialization=True"),
        "{e}"
    );
}

#[test]
fn shape_mismatch_names_tensor_expected_and_found() {
    let dir = copy_model("llama");
    edit_config(dir.path(), |v| {
        v["intermediate_size"] = serde_json::json!(128)
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("model.layers.0.mlp.gate_proj.weight")
            && e.contains("[128, 64]")
            && e.contains("[160, 64]"),
        "{e}"
    );
}

#[test]
fn unsupported_rope_type_names_the_field() {
    let dir = copy_model("qwen2");
    edit_config(
        dir.path(),
        |v| {
            v["rope_parameters"] =
                serde_json::json!({"rope_type": "yarn", "rope_theta": 1e6, "factor": 4.0})
        },
    );
    let e = load_err(dir.path());
    assert!(
        e.contains("rope_parameters.rope_type") && e.contains("yarn") && e.contains("llama3"),
        "{e}"
    );
}

#[test]
fn both_rope_styles_parse_to_the_same_config() {
    let hub = r#"{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,
        "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,"rope_theta":500000.0,
        "rope_scaling":{"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
        "original_max_position_embeddings":8192},"tie_word_embeddings":true}"#;
    let v5 = r#"{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,
        "num_hidden_layers":1,"num_attention_heads":2,"num_key_value_heads":1,
        "rope_parameters":{"rope_theta":500000.0,"rope_type":"llama3","factor":32.0,"low_freq_factor":1.0,
        "high_freq_factor":4.0,"original_max_position_embeddings":8192},"tie_word_embeddings":true}"#;
    let a = ModelConfig::from_json_str(hub, Path::new("hub.json")).unwrap();
    let b = ModelConfig::from_json_str(v5, Path::new("v5.json")).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.rope_theta, 500000.0);
    assert!(matches!(a.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 32.0));
    assert_eq!((a.head_dim, a.num_kv_heads), (4, 1));
    // The fixtures themselves use one style each.
    let llama = ModelConfig::from_dir(&fixture("llama").join("model")).unwrap();
    let qwen = ModelConfig::from_dir(&fixture("qwen2").join("model")).unwrap();
    assert!(matches!(llama.rope_scaling, RopeScaling::Llama3 { .. }));
    assert_eq!(
        (qwen.rope_theta, qwen.qkv_bias, qwen.o_bias),
        (1e6, true, false)
    );
    assert_eq!(llama.head_dim, 32);
    assert!(llama.tie_word_embeddings && !qwen.tie_word_embeddings);
}

#[test]
fn llama_attention_bias_means_q_k_v_and_o() {
    let cfg = r#"{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,
        "num_hidden_layers":1,"num_attention_heads":2,"attention_bias":true}"#;
    let c = ModelConfig::from_json_str(cfg, Path::new("c.json")).unwrap();
    assert!(c.qkv_bias && c.o_bias);
    assert_eq!(c.num_kv_heads, 2);
}

#[test]
fn missing_bias_tensor_is_reported_by_name() {
    // The config claims attention_bias, the checkpoint has none.
    let dir = copy_model("llama");
    edit_config(dir.path(), |v| {
        v["attention_bias"] = serde_json::json!(true)
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("model.layers.0.self_attn.q_proj.bias") && e.contains("missing"),
        "{e}"
    );
}

#[test]
fn bad_adapters_are_refused_clearly() {
    let model = ModelConfig::from_dir(&fixture("llama").join("model")).unwrap();
    let copy = |edit: &dyn Fn(&mut serde_json::Value)| {
        let dir = tempfile::tempdir().unwrap();
        for f in ["adapter_config.json", "adapter_model.safetensors"] {
            std::fs::copy(fixture("llama").join("adapter").join(f), dir.path().join(f)).unwrap();
        }
        let p = dir.path().join("adapter_config.json");
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        edit(&mut v);
        std::fs::write(p, v.to_string()).unwrap();
        dir
    };
    let dora = copy(&|v| v["use_dora"] = true.into());
    let e = Adapter::load(dora.path(), &model, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("DoRA") && e.contains("adapter_config.json"),
        "{e}"
    );
    // An adapter trained for another model: qwen2's adapter on llama.
    let e = Adapter::load(&fixture("qwen2").join("adapter"), &model, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("q_proj.lora_{A,B}.weight")
            && e.contains("has shape [4, 64, 64, 4], expected [4, 64, 128, 4]"),
        "{e}"
    );
    let e = Adapter::load(Path::new("/nonexistent/adapter"), &model, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/adapter/adapter_config.json"),
        "{e}"
    );
}

#[test]
fn missing_tokenizer_and_missing_chat_template_explain_themselves() {
    let e = Tokenizer::from_dir(Path::new("/nonexistent"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("tokenizer.json") && e.contains("hint:"), "{e}");
    let dir = copy_model("qwen2");
    let p = dir.path().join("tokenizer_config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    v.as_object_mut().unwrap().remove("chat_template");
    std::fs::write(&p, v.to_string()).unwrap();
    let tok = Tokenizer::from_dir(dir.path()).unwrap();
    let e = tok
        .render_chat(
            &[lambda_dpo_model::Message::new("user", "hi")],
            true,
            &Default::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("no chat template") && e.contains("hint:"), "{e}");
}
