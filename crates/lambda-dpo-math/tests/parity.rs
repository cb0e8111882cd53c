//! Parity with an independent implementation: `fixtures/losses.json` holds torch float64 losses
//! and autograd gradients (TRL 1.16's own code where TRL has the loss), produced by
//! `fixtures/gen_losses.py` from fixed inputs. Every loss and gradient must match to 1e-9
//! (relative to max(1, |value|)), and our targets must reproduce the fixture's `p^λ` and grades.

use lambda_dpo_math::{
    mixed_target, LogpMode, Loss, LossInput, MissingPolicy, Objective, SftTerm, Target,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    ratings: Vec<Vec<f64>>,
    lambda: Vec<f64>,
    temperature: f64,
    policy_logps: Vec<f64>,
    reference_logps: Option<Vec<f64>>,
    lengths: Vec<usize>,
    probs: Vec<f64>,
    grades: Vec<f64>,
    results: Vec<Expected>,
}

#[derive(Deserialize)]
struct Expected {
    loss_spec: serde_json::Value,
    loss: f64,
    grad: Vec<f64>,
}

const TOL: f64 = 1e-9;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= TOL * a.abs().max(b.abs()).max(1.0)
}

fn fixture() -> Fixture {
    serde_json::from_str(include_str!("fixtures/losses.json")).expect("valid fixture JSON")
}

#[test]
fn targets_match_torch() {
    for case in fixture().cases {
        let ratings: Vec<Vec<Option<f64>>> = case
            .ratings
            .iter()
            .map(|r| r.iter().copied().map(Some).collect())
            .collect();
        let m = mixed_target(
            &ratings,
            &case.lambda,
            case.temperature,
            MissingPolicy::Error,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        for (i, (&ours, &theirs)) in m.target.probs.iter().zip(&case.probs).enumerate() {
            assert!(
                (ours - theirs).abs() < 1e-12,
                "{} p[{i}]: {ours} vs {theirs}",
                case.name
            );
        }
        for (i, (&ours, &theirs)) in m.target.grades.iter().zip(&case.grades).enumerate() {
            assert!(
                (ours - theirs).abs() < 1e-12,
                "{} ψ[{i}]: {ours} vs {theirs}",
                case.name
            );
        }
    }
}

#[test]
fn losses_and_gradients_match_torch() {
    let mut checked = 0;
    for case in fixture().cases {
        let target = Target::with_grades(case.probs.clone(), case.grades.clone()).unwrap();
        let input = LossInput {
            policy_logps: &case.policy_logps,
            reference_logps: case.reference_logps.as_deref(),
            lengths: &case.lengths,
            target: &target,
        };
        for exp in &case.results {
            // The fixture's spec is our serde form of `Loss` (plus an optional sft_weight).
            let loss: Loss = serde_json::from_value(exp.loss_spec.clone()).unwrap();
            let sft_weight = exp
                .loss_spec
                .get("sft_weight")
                .and_then(|v| v.as_f64())
                .unwrap_or(0.0);
            let objective = Objective {
                loss,
                sft: SftTerm {
                    weight: sft_weight,
                    mode: LogpMode::Mean,
                },
            };
            let label = format!("{} / {}", case.name, exp.loss_spec);
            let out = objective
                .compute(&input)
                .unwrap_or_else(|e| panic!("{label}: {e}"));
            assert!(
                close(out.loss, exp.loss),
                "{label}: loss {} vs torch {}",
                out.loss,
                exp.loss
            );
            for (i, (&g, &t)) in out.grad.iter().zip(&exp.grad).enumerate() {
                assert!(close(g, t), "{label}: grad[{i}] {g} vs torch {t}");
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * 16, "every fixture result was compared");
}
