//! Every preset in configs/ parses and validates, and config errors name the field.

use std::path::PathBuf;

use lambda_dpo::train::TrainConfig;

fn configs() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../configs")
}

#[test]
fn every_preset_parses_and_validates() {
    let mut n = 0;
    for entry in std::fs::read_dir(configs()).unwrap() {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "toml") {
            TrainConfig::load(&p, &[]).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            n += 1;
        }
    }
    assert!(n >= 9, "{n} presets");
}

#[test]
fn defaults_are_the_paper_recipe_and_overrides_apply() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.toml");
    std::fs::write(&p, "[model]\npath = \"m\"\n[data]\ntrain = \"d.jsonl\"\n").unwrap();
    let c = TrainConfig::load(&p, &[]).unwrap();
    assert_eq!(
        (
            c.lora.r,
            c.train.learning_rate,
            c.train.batch_size,
            c.train.grad_accum,
            c.train.epochs
        ),
        (8, 5e-6, 1, 8, 5)
    );
    assert_eq!(c.train.warmup_ratio, 0.1);
    assert_eq!(c.loss.loss, lambda_dpo_math::Loss::lambda_dpo());
    assert_eq!(c.data.max_length, 2048);
    let c = TrainConfig::load(
        &p,
        &[
            "train.learning_rate=1e-4".into(),
            "loss.type=dpo".into(),
            "train.output_dir=runs/x".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.train.learning_rate, 1e-4);
    assert_eq!(c.loss.loss, lambda_dpo_math::Loss::dpo());
    assert!(c.train.output_dir.ends_with("runs/x"));
    // The loader's prompt-side options: TRL's keep-end by default, LLaMA-Factory's keep-start
    // on request; UltraFeedback's custom system prompt off unless asked for.
    assert_eq!(c.data.truncation, lambda_dpo::data::Truncation::KeepEnd);
    assert!(!c.data.use_custom_system_prompt);
    let c = TrainConfig::load(
        &p,
        &[
            "data.truncation=keep-start".into(),
            "data.use_custom_system_prompt=true".into(),
        ],
    )
    .unwrap();
    assert_eq!(c.data.truncation, lambda_dpo::data::Truncation::KeepStart);
    assert!(c.data.use_custom_system_prompt);
    let e = TrainConfig::load(&p, &["data.truncation=middle".into()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("middle") && e.contains("keep-start"), "{e}");
}

#[test]
fn config_errors_name_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.toml");
    let cases = [
        ("[train]\nlearning_rate = -1.0", "train.learning_rate"),
        ("[train]\nlearnin_rate = 1.0", "learnin_rate"),
        ("[lora]\ntargets = [\"qkv\"]", "lora.targets"),
        ("[loss]\ntype = \"dpo\"\nbta = 0.1", "loss.bta"),
        ("[reference]\nmode = \"model\"", "reference.path"),
        ("[loss]\ntype = \"lambda-dpo\"\nbeta = -0.1", "beta"),
        // The λ sampler is validated at load, naming `lambda`, not as a math error at step 0.
        (
            "[lambda]\nkind = \"fixed\"\nlambda = [-0.5, 1.5]",
            "field `lambda`",
        ),
        (
            "[lambda]\nkind = \"dirichlet\"\nalpha = [1.0, 0.0]",
            "field `lambda`",
        ),
        (
            "[lambda]\nkind = \"grid\"\ndim = 2\nstep = 0.3",
            "field `lambda`",
        ),
        // A reference path outside modes "model"/"cache" would be ignored (LLaMA-Factory #8459:
        // with a continued adapter it would even pass the disabled-adapter check).
        ("[reference]\npath = \"ref\"", "field `reference.path`"),
        (
            "[reference]\nmode = \"none\"\npath = \"ref\"",
            "field `reference.path`",
        ),
    ];
    for (extra, field) in cases {
        std::fs::write(
            &p,
            format!("[model]\npath = \"m\"\n[data]\ntrain = \"d.jsonl\"\n{extra}\n"),
        )
        .unwrap();
        let e = TrainConfig::load(&p, &[]).unwrap_err().to_string();
        assert!(e.contains(field) && e.contains("bad.toml"), "{extra}: {e}");
    }
    // The #8459 bypass: a continued adapter with a disabled-adapter reference was let through
    // when an (unused) reference.path was set.
    std::fs::write(
        &p,
        "[model]\npath = \"m\"\nadapter = \"a\"\n[data]\ntrain = \"d.jsonl\"\n[reference]\npath = \"ref\"\n",
    )
    .unwrap();
    let e = TrainConfig::load(&p, &[]).unwrap_err().to_string();
    assert!(e.contains("reference.path") && e.contains("hint:"), "{e}");
    // Still accepted: a path with mode "model" or "cache", and a valid λ source.
    for extra in [
        "[reference]\nmode = \"model\"\npath = \"ref\"",
        "[reference]\nmode = \"cache\"\npath = \"ref\"",
        "[lambda]\nkind = \"fixed\"\nlambda = [0.25, 0.75]",
    ] {
        std::fs::write(
            &p,
            format!("[model]\npath = \"m\"\n[data]\ntrain = \"d.jsonl\"\n{extra}\n"),
        )
        .unwrap();
        TrainConfig::load(&p, &[]).unwrap_or_else(|e| panic!("{extra}: {e}"));
    }
}

#[test]
fn data_train_is_one_path_or_a_list_and_resolves_as_written() {
    use lambda_dpo::train::config::DataFiles;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("run.toml");
    std::fs::write(&p, "[model]\npath = \"m\"\n[data]\ntrain = \"d.jsonl\"\n").unwrap();
    let one = TrainConfig::load(&p, &[]).unwrap();
    assert_eq!(one.data.train, DataFiles::One(dir.path().join("d.jsonl")));
    // The resolved config keeps the single-string form.
    let text = toml::to_string_pretty(&one).unwrap();
    assert!(
        text.contains(&format!(
            "train = {:?}",
            dir.path().join("d.jsonl").display().to_string()
        )),
        "{text}"
    );

    std::fs::write(
        &p,
        "[model]\npath = \"m\"\n[data]\ntrain = [\"a.json\", \"/abs/b.jsonl\"]\n",
    )
    .unwrap();
    let many = TrainConfig::load(&p, &[]).unwrap();
    assert_eq!(
        many.data.train.paths(),
        [dir.path().join("a.json"), PathBuf::from("/abs/b.jsonl")]
    );
    // Written back and read again: the same config.
    let resolved = dir.path().join("resolved.toml");
    std::fs::write(&resolved, toml::to_string_pretty(&many).unwrap()).unwrap();
    assert_eq!(TrainConfig::load(&resolved, &[]).unwrap(), many);
    // --set takes the list form too.
    let set = TrainConfig::load(&p, &["data.train=[\"x.jsonl\", \"y.jsonl\"]".into()]).unwrap();
    assert_eq!(set.data.train.paths().len(), 2);

    for (value, expect) in [("[]", "non-empty list"), ("3", "a file path or a list")] {
        std::fs::write(
            &p,
            format!("[model]\npath = \"m\"\n[data]\ntrain = {value}\n"),
        )
        .unwrap();
        let e = TrainConfig::load(&p, &[]).unwrap_err().to_string();
        assert!(e.contains(expect), "{value}: {e}");
    }
}

#[test]
fn a_scheduled_lambda_is_fitted_at_load_and_becomes_its_table() {
    let dir = tempfile::tempdir().unwrap();
    // The App. D shape on two dimensions: unimodal + uniform points, degree 1, the 0.5 grid.
    std::fs::write(
        dir.path().join("points.jsonl"),
        "{\"lambda\": [1, 0], \"score\": 0.40}\n{\"lambda\": [0, 1], \"score\": 0.50}\n{\"lambda\": [0.5, 0.5], \"score\": 0.45}\n",
    )
    .unwrap();
    let p = dir.path().join("run.toml");
    let base = "[model]\npath = \"m\"\n[data]\ntrain = \"d.jsonl\"\n[lambda]\nkind = \"scheduled\"\npoints = \"points.jsonl\"\ndegree = 1\ntau = 10.0\n";
    std::fs::write(&p, format!("{base}grid = 0.5\n")).unwrap();
    let c = TrainConfig::load(&p, &[]).unwrap();
    let Some(lambda_dpo_math::LambdaSource::Table { rows }) = &c.lambda.source else {
        panic!("{:?}", c.lambda.source)
    };
    assert_eq!(rows.len(), 3);
    // f is linear and exact here: f(λ) = 0.4 λ_1 + 0.5 λ_2, so P ∝ exp(10 f).
    let z: Vec<f64> = [0.40f64, 0.45, 0.50]
        .iter()
        .map(|f| (10.0 * f).exp())
        .collect();
    let total: f64 = z.iter().sum();
    for row in rows {
        let f = 0.4 * row.lambda[0] + 0.5 * row.lambda[1];
        assert!(
            (row.prob - (10.0 * f).exp() / total).abs() < 1e-9,
            "{row:?}"
        );
    }
    let record = c.lambda.schedule.as_ref().expect("the fit is recorded");
    // Round-1 runs of the README workflow: the whole [lambda] section replaced from the command line.
    let paper = configs().join("paper-llama-3.2-1b.toml");
    let c = TrainConfig::load(
        &paper,
        &["lambda={kind=\"fixed\", lambda=[1, 0, 0, 0]}".into()],
    )
    .unwrap();
    assert_eq!(
        c.lambda.source,
        Some(lambda_dpo_math::LambdaSource::Fixed {
            lambda: vec![1.0, 0.0, 0.0, 0.0]
        })
    );
    assert_eq!(record["points"].as_array().unwrap().len(), 3);

    // Errors name the field: an unknown key, no candidate set, a missing points file.
    for (extra, needle) in [
        ("grid = 0.5\nstep = 3\n", "step"),
        ("", "grid"),
        ("grid = 0.5\npoints = \"nope.jsonl\"\n", "nope.jsonl"),
    ] {
        let text = format!("{base}{extra}").replacen(
            "points = \"points.jsonl\"\n",
            if extra.contains("nope") {
                ""
            } else {
                "points = \"points.jsonl\"\n"
            },
            1,
        );
        std::fs::write(&p, text).unwrap();
        let e = TrainConfig::load(&p, &[]).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
}
