//! `lambda-dpo demo --quick` end to end: the world, SFT from scratch, the three preference
//! methods, sampling over the λ grid and the report. Checks the invariants a run must show
//! (first-step losses ln 2 and ln 4, SFT learning, complete results for every method and λ,
//! the plots and the page), not the quality figures, which a quick budget cannot promise.

use std::process::Command;

/// `results.json` of a finished demo, without its wall-clock time.
fn results(out: &std::path::Path) -> serde_json::Value {
    let mut r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    r.as_object_mut().unwrap().remove("seconds");
    r
}

#[test]
fn quick_demo_writes_results_report_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    // The same demo with its jobs run one at a time and three at a time, both processes at
    // once: every job seeds its own randomness, so the results must not differ.
    let demo = |jobs: &str| {
        let out = dir.path().join(format!("demo-jobs{jobs}"));
        let child = Command::new(env!("CARGO_BIN_EXE_lambda-dpo"))
            .args(["demo", "--quick", "--seed", "1", "--jobs", jobs, "--out"])
            .arg(&out)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("binary runs");
        (out, child)
    };
    let (serial, serial_child) = demo("1");
    let (out, child) = demo("3");
    let o = child.wait_with_output().unwrap();
    let serial_o = serial_child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(stderr.contains("Report:"), "{stderr}");
    assert!(
        serial_o.status.success(),
        "{}",
        String::from_utf8_lossy(&serial_o.stderr)
    );
    let r = results(&out);
    assert!(r == results(&serial), "--jobs 3 and --jobs 1 differ");

    let dims = r["dimensions"].as_array().unwrap().len();
    assert!((3..=4).contains(&dims));
    let curves = r["training_curves"].as_array().unwrap();
    let curve = |name: &str| -> Vec<f64> {
        curves
            .iter()
            .find(|c| c[0] == name)
            .unwrap_or_else(|| panic!("no curve {name}"))[1]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_f64().unwrap())
            .collect()
    };
    // From the SFT model, policy = reference at step 0: DPO ln 2, λ-DPO ln N (N = 4).
    assert!((curve("dpo")[0] - 2f64.ln()).abs() < 1e-9);
    assert!((curve("lambda-dpo")[0] - 4f64.ln()).abs() < 1e-9);
    assert!((curve("lambda-dpo-prompt")[0] - 4f64.ln()).abs() < 1e-9);
    // A fresh SVD-LoRA adapter is a no-op at every λ, so it starts at ln N as well.
    assert!((curve("lambda-dpo-svd")[0] - 4f64.ln()).abs() < 1e-9);
    // SFT from random weights (≈ ln V per token) learns the language.
    let sft = curve("sft");
    assert!(sft[0] > 5.0, "random init starts near ln V: {}", sft[0]);
    assert!(
        sft[sft.len() - 1] < sft[0] / 2.0,
        "SFT did not learn: {sft:?}"
    );

    let methods = r["methods"].as_array().unwrap();
    let keys: Vec<&str> = methods
        .iter()
        .map(|m| m["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "sft",
            "sft-prompt",
            "dpo",
            "lambda-dpo",
            "lambda-dpo-prompt",
            "lambda-dpo-svd"
        ]
    );
    for m in methods {
        let lambdas = m["lambdas"].as_array().unwrap();
        let rewards = m["rewards"].as_array().unwrap();
        assert_eq!(lambdas.len(), rewards.len());
        for (l, rw) in lambdas.iter().zip(rewards) {
            let l: Vec<f64> = l
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            assert!((l.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            for v in rw.as_array().unwrap() {
                let v = v.as_f64().unwrap();
                assert!((0.0..=1.0).contains(&v), "reward {v} outside [0, 1]");
            }
        }
        assert!(m["hypervolume"].as_f64().unwrap() >= 0.0);
        assert!((0.0..=1.0).contains(&m["accuracy"].as_f64().unwrap()));
        assert_eq!(m["controllability"].as_array().unwrap().len(), dims);
        let mix = m["uniform_mix_reward"].as_f64().unwrap();
        let per: Vec<f64> = m["uniform_rewards"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!((mix - per.iter().sum::<f64>() / dims as f64).abs() < 1e-12);
        // λ never reaches an unconditioned model: its rewards are the same at every λ.
        if m["conditioned"] == false {
            assert!(rewards.windows(2).all(|w| w[0] == w[1]));
            assert!(m["controllability"]
                .as_array()
                .unwrap()
                .iter()
                .all(|c| c.is_null()));
        }
    }

    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("controllability"));
    for f in ["training-sft.svg", "uniform-mix.svg"] {
        assert!(out.join("plots").join(f).is_file(), "missing plot {f}");
    }
    let fronts = std::fs::read_dir(out.join("plots"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("front-")
        })
        .count();
    assert_eq!(fronts, dims * (dims - 1) / 2);
    // Every run can be repeated by hand: its config is in the folder, and the SFT product is
    // a Hugging Face folder the loaders accept.
    assert!(out.join("configs/lambda-dpo-prompt.toml").is_file());
    assert!(out.join("runs/sft/model/config.json").is_file());
    for key in ["lambda-dpo-prompt", "lambda-dpo-svd"] {
        assert!(out
            .join(format!("runs/{key}/adapter/lambda_conditioning.json"))
            .is_file());
    }
}
