//! Property tests of the losses (DESIGN.md §1 invariants): L = ln N at θ = ref for any target;
//! N = 2 with a one-hot target is DPO; λ-DPO's gradient is β(P − p^λ); λ-DPO is linear in the
//! target (Σ_k λ_k L_k); and every loss's analytic gradient matches central finite differences.

use lambda_dpo_math::special::softmax;
use lambda_dpo_math::{
    preference_distribution, LogpMode, Loss, LossInput, MathError, Objective, SftTerm, Target,
};
use proptest::prelude::*;

/// A random listwise example: N responses with plausible sums, lengths and a target.
#[derive(Debug, Clone)]
struct Example {
    policy: Vec<f64>,
    reference: Vec<f64>,
    lengths: Vec<usize>,
    target: Target,
}

/// Strategy: N in 2..=8, per-token means in [-3, -0.05] (ORPO needs p(y) < 1), reference within
/// a few nats, a target from random ratings with a strict best (pairwise losses need one).
fn example() -> impl Strategy<Value = Example> {
    (2usize..=8).prop_flat_map(|n| {
        (
            prop::collection::vec(3usize..150, n),
            prop::collection::vec(0.05f64..3.0, n),
            prop::collection::vec(-6.0f64..6.0, n),
            prop::collection::vec(1u8..=5, n),
            0.3f64..3.0,
        )
            .prop_map(|(lengths, per_token, shift, ratings, temp)| {
                let policy: Vec<f64> = lengths
                    .iter()
                    .zip(&per_token)
                    .map(|(&l, &m)| -m * l as f64)
                    .collect();
                let reference = policy.iter().zip(&shift).map(|(p, s)| p + s).collect();
                let mut r: Vec<f64> = ratings.iter().map(|&x| x as f64).collect();
                r[0] = 6.0; // a strict best, so the target is never constant
                let probs = preference_distribution(&r, temp).unwrap();
                let target = Target::with_grades(probs, r).unwrap();
                Example {
                    policy,
                    reference,
                    lengths,
                    target,
                }
            })
    })
}

fn all_losses() -> Vec<Loss> {
    vec![
        Loss::lambda_dpo(),
        Loss::LambdaDpo {
            beta: 0.7,
            mode: LogpMode::Mean,
        },
        Loss::dpo(),
        Loss::Dpo {
            beta: 0.3,
            label_smoothing: 0.2,
            mode: LogpMode::Mean,
        },
        Loss::robust_dpo(),
        Loss::ipo(),
        Loss::simpo(),
        Loss::orpo(),
        Loss::list_mle(),
        Loss::ListMle {
            beta: 0.5,
            mode: LogpMode::Mean,
        },
        Loss::lipo_lambda(),
    ]
}

fn input(e: &Example) -> LossInput<'_> {
    LossInput {
        policy_logps: &e.policy,
        reference_logps: Some(&e.reference),
        lengths: &e.lengths,
        target: &e.target,
    }
}

/// Central differences in each ℓ_θ(y_i), Richardson-extrapolated (`(4 D(h/2) − D(h)) / 3`, error
/// O(h⁴)). Step `h = 1e-3 · min(1, |ℓ_i|)`: the losses vary on a scale of 1/β ≥ 1 nat, except
/// ORPO, whose `log(1 − e^ℓ̄)` is singular at ℓ = 0, so the step shrinks with the distance to it.
/// Rounding error is ~ε|L|/h ≈ 1e-12.
fn finite_difference(obj: &Objective, e: &Example) -> Vec<f64> {
    let loss_at = |i: usize, delta: f64| {
        let mut moved = e.clone();
        moved.policy[i] += delta;
        obj.compute(&input(&moved)).unwrap().loss
    };
    (0..e.policy.len())
        .map(|i| {
            let h = 1e-3 * e.policy[i].abs().min(1.0);
            let d = |h: f64| (loss_at(i, h) - loss_at(i, -h)) / (2.0 * h);
            (4.0 * d(h / 2.0) - d(h)) / 3.0
        })
        .collect()
}

/// Whether no two rewards are within 1e-3 of each other (a finite-difference step moves a
/// reward by at most β·1e-3 ≤ 1e-4, so ranks cannot swap).
fn ranks_are_stable(rewards: &[f64]) -> bool {
    rewards
        .iter()
        .enumerate()
        .all(|(i, a)| rewards[i + 1..].iter().all(|b| (a - b).abs() > 1e-3))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn loss_is_ln_n_when_policy_equals_reference(e in example(), beta in 0.01f64..5.0, mean in any::<bool>()) {
        let mode = if mean { LogpMode::Mean } else { LogpMode::Sum };
        let input = LossInput { policy_logps: &e.policy, reference_logps: Some(&e.policy), lengths: &e.lengths, target: &e.target };
        let out = Loss::LambdaDpo { beta, mode }.compute(&input).unwrap();
        let n = e.policy.len() as f64;
        prop_assert!((out.loss - n.ln()).abs() < 1e-12, "L = {} vs ln N = {}", out.loss, n.ln());
        // …and the gradient is β·(1/N − p^λ_i) (÷|y_i| in mean mode): from the uniform start it
        // pushes every response toward its target probability.
        for (i, (g, p)) in out.grad.iter().zip(&e.target.probs).enumerate() {
            let scale = if mean { 1.0 / e.lengths[i] as f64 } else { 1.0 };
            let expected = beta * scale * (1.0 / n - p);
            prop_assert!((g - expected).abs() < 1e-12 * beta * scale, "{g} vs {expected}");
        }
    }

    #[test]
    fn two_responses_one_hot_is_dpo(pw in -300.0f64..-1.0, pl in -300.0f64..-1.0, rw in -300.0f64..-1.0,
                                     rl in -300.0f64..-1.0, beta in 0.01f64..2.0) {
        let target = Target::one_hot(2, 0).unwrap();
        let policy = [pw, pl];
        let reference = [rw, rl];
        let input = LossInput { policy_logps: &policy, reference_logps: Some(&reference), lengths: &[10, 20], target: &target };
        let ours = Loss::LambdaDpo { beta, mode: LogpMode::Sum }.compute(&input).unwrap();
        let dpo = Loss::Dpo { beta, label_smoothing: 0.0, mode: LogpMode::Sum }.compute(&input).unwrap();
        prop_assert!((ours.loss - dpo.loss).abs() <= 1e-12 * dpo.loss.abs().max(1.0));
        // λ-DPO forms P_w − 1 (cancellation when P_w ≈ 1) where DPO forms σ(−z) directly, so
        // compare relative to the component, floored at 1e-3·β.
        for (a, b) in ours.grad.iter().zip(&dpo.grad) {
            prop_assert!((a - b).abs() <= 1e-12 * b.abs().max(1e-3 * beta), "{a} vs {b}");
        }
    }

    #[test]
    fn lambda_dpo_gradient_is_beta_p_minus_target(e in example(), beta in 0.01f64..5.0) {
        for mode in [LogpMode::Sum, LogpMode::Mean] {
            let out = Loss::LambdaDpo { beta, mode }.compute(&input(&e)).unwrap();
            let s: Vec<f64> = (0..e.policy.len()).map(|i| {
                let lr = e.policy[i] - e.reference[i];
                beta * if mode == LogpMode::Mean { lr / e.lengths[i] as f64 } else { lr }
            }).collect();
            let model = softmax(&s);
            for (i, pm) in model.iter().enumerate() {
                let scale = if mode == LogpMode::Mean { 1.0 / e.lengths[i] as f64 } else { 1.0 };
                let expected = beta * scale * (pm - e.target.probs[i]);
                // The naive β(P − p) here loses digits when P ≈ p; the crate's does not, so the
                // tolerance is absolute at the scale of the gradient (β·scale).
                prop_assert!((out.grad[i] - expected).abs() < 1e-12 * beta * scale, "{} vs {expected}", out.grad[i]);
            }
        }
    }

    #[test]
    fn lambda_dpo_is_the_lambda_weighted_sum_of_per_dimension_losses(
        e in example(), r2 in prop::collection::vec(1.0f64..5.0, 8), l1 in 0.0f64..1.0,
    ) {
        // Eq. 22–28: L(p^λ) = Σ_k λ_k L(p*(k)) because the loss is linear in the target.
        let n = e.policy.len();
        let p1 = e.target.probs.clone();
        let p2 = preference_distribution(&r2[..n], 1.0).unwrap();
        let mix: Vec<f64> = p1.iter().zip(&p2).map(|(a, b)| l1 * a + (1.0 - l1) * b).collect();
        let eval = |p: Vec<f64>| {
            let t = Target::from_probs(p).unwrap();
            Loss::lambda_dpo().compute(&LossInput { target: &t, ..input(&e) }).unwrap().loss
        };
        let lhs = eval(mix);
        let rhs = l1 * eval(p1) + (1.0 - l1) * eval(p2);
        prop_assert!((lhs - rhs).abs() < 1e-12 * lhs.abs().max(1.0));
    }

    #[test]
    fn analytic_gradients_match_finite_differences(e in example(), sft in prop_oneof![Just(0.0), 0.0f64..1.0]) {
        for loss in all_losses() {
            let obj = Objective { loss, sft: SftTerm { weight: sft, mode: LogpMode::Mean } };
            let out = obj.compute(&input(&e)).unwrap();
            if matches!(loss, Loss::LipoLambda { .. }) && !ranks_are_stable(&out.stats.rewards) {
                // LiPO-λ's weights jump when two rewards swap rank: only smooth away from ties.
                continue;
            }
            let analytic = out.grad;
            let numeric = finite_difference(&obj, &e);
            let gmax = analytic.iter().fold(0.0f64, |m, g| m.max(g.abs()));
            for (i, (a, f)) in analytic.iter().zip(&numeric).enumerate() {
                // 1e-6 relative to the component, floored at 1e-3 of the largest component so
                // components that are zero (responses a pairwise loss ignores) are checked too.
                let tol = 1e-6 * a.abs().max(1e-3 * gmax) + 1e-13;
                prop_assert!((a - f).abs() <= tol, "{}: grad[{i}] analytic {a} vs numeric {f}", loss.name());
            }
        }
    }
}

#[test]
fn pairwise_losses_refuse_a_constant_target() {
    let target = Target::from_probs(vec![0.5, 0.5]).unwrap();
    let input = LossInput {
        policy_logps: &[-10.0, -12.0],
        reference_logps: None,
        lengths: &[5, 6],
        target: &target,
    };
    assert_eq!(
        Loss::dpo().compute(&input).unwrap_err(),
        MathError::NoPreference { n: 2 }
    );
    // λ-DPO is fine with it: the uniform target asks for equal rewards.
    assert!(Loss::lambda_dpo().compute(&input).is_ok());
}

#[test]
fn inputs_are_validated() {
    let target = Target::from_probs(vec![0.7, 0.3]).unwrap();
    let ok = LossInput {
        policy_logps: &[-10.0, -12.0],
        reference_logps: None,
        lengths: &[5, 6],
        target: &target,
    };
    let l = Loss::lambda_dpo();
    let err = |i: LossInput<'_>| l.compute(&i).unwrap_err();
    assert!(matches!(
        err(LossInput {
            policy_logps: &[-1.0],
            ..ok
        }),
        MathError::TooFewResponses { n: 1 }
    ));
    assert!(matches!(
        err(LossInput {
            reference_logps: Some(&[0.0]),
            ..ok
        }),
        MathError::LengthMismatch {
            what: "reference_logps",
            ..
        }
    ));
    assert!(matches!(
        err(LossInput {
            policy_logps: &[f64::NAN, -1.0],
            ..ok
        }),
        MathError::NonFinite {
            what: "policy_logps",
            index: 0,
            ..
        }
    ));
    let off = Target {
        probs: vec![0.7, 0.2],
        grades: vec![0.0, 0.0],
    };
    assert!(matches!(
        err(LossInput { target: &off, ..ok }),
        MathError::NotOnSimplex { .. }
    ));
    let bad_beta = Loss::LambdaDpo {
        beta: -1.0,
        mode: LogpMode::Sum,
    };
    assert!(matches!(
        bad_beta.compute(&ok).unwrap_err(),
        MathError::InvalidParameter { name: "beta", .. }
    ));
    let robust = Loss::RobustDpo {
        beta: 0.1,
        label_smoothing: 0.5,
        mode: LogpMode::Sum,
    };
    assert!(robust.compute(&ok).is_err());
    // Mean modes need at least one token; sum mode does not read lengths.
    let zero_len = LossInput {
        lengths: &[0, 6],
        ..ok
    };
    assert!(Loss::simpo().compute(&zero_len).is_err());
    assert!(Loss::lambda_dpo().compute(&zero_len).is_ok());
    // ORPO needs p(y) < 1.
    let certain = LossInput {
        policy_logps: &[0.0, -3.0],
        ..ok
    };
    assert!(matches!(
        Loss::orpo().compute(&certain).unwrap_err(),
        MathError::OutOfDomain { .. }
    ));
    // Messages say what was expected and found.
    let msg = err(LossInput {
        lengths: &[1, 2, 3],
        ..ok
    })
    .to_string();
    assert!(msg.contains("`lengths` has 3 entries, expected 2"), "{msg}");
}

#[test]
fn stats_report_rewards_agreement_and_kl() {
    let target = Target::from_probs(vec![0.6, 0.3, 0.1]).unwrap();
    let input = LossInput {
        policy_logps: &[-10.0, -20.0, -30.0],
        reference_logps: Some(&[-20.0, -20.0, -20.0]),
        lengths: &[5, 5, 5],
        target: &target,
    };
    let out = Loss::lambda_dpo().compute(&input).unwrap();
    let s = &out.stats;
    assert_eq!(s.rewards, vec![1.0, 0.0, -1.0]);
    assert_eq!((s.chosen, s.rejected), (0, 2));
    assert!((s.margin - 2.0).abs() < 1e-15 && s.reward_accuracy && s.top1_agreement == 1.0);
    // λ-DPO's loss = H(p) + KL(p ‖ P).
    let entropy: f64 = target.probs.iter().map(|p| -p * p.ln()).sum();
    assert!((out.loss - entropy - s.kl_target_model).abs() < 1e-12);
    assert!((s.model_probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
}

#[test]
fn list_mle_without_ties_is_plackett_luce_and_ties_are_symmetric() {
    // No ties: L = −Σ_k [s_τ(k) − lse_{j≥k} s_τ(j)] with τ = (1, 0, 2).
    let target = Target::from_probs(vec![0.3, 0.5, 0.2]).unwrap();
    let policy = [-1.0, -2.0, -4.0];
    let input = LossInput {
        policy_logps: &policy,
        reference_logps: None,
        lengths: &[1, 1, 1],
        target: &target,
    };
    let beta = 1.0;
    let out = Loss::ListMle {
        beta,
        mode: LogpMode::Sum,
    }
    .compute(&input)
    .unwrap();
    let lse = |xs: &[f64]| xs.iter().map(|x| x.exp()).sum::<f64>().ln();
    let expected = -((-2.0 - lse(&[-2.0, -1.0, -4.0])) + (-1.0 - lse(&[-1.0, -4.0])));
    assert!((out.loss - expected).abs() < 1e-12);
    // Two tied best responses: swapping their log-probs swaps their gradients.
    let tied = Target::from_probs(vec![0.4, 0.4, 0.2]).unwrap();
    let a = Loss::list_mle()
        .compute(&LossInput {
            policy_logps: &[-1.0, -2.0, -4.0],
            target: &tied,
            ..input
        })
        .unwrap();
    let b = Loss::list_mle()
        .compute(&LossInput {
            policy_logps: &[-2.0, -1.0, -4.0],
            target: &tied,
            ..input
        })
        .unwrap();
    assert!((a.loss - b.loss).abs() < 1e-15);
    assert!((a.grad[0] - b.grad[1]).abs() < 1e-15 && (a.grad[1] - b.grad[0]).abs() < 1e-15);
}

#[test]
fn config_form_defaults_equal_the_constructors() {
    let parse = |s: &str| serde_json::from_str::<Loss>(s).unwrap();
    assert_eq!(parse(r#"{"type": "lambda-dpo"}"#), Loss::lambda_dpo());
    assert_eq!(parse(r#"{"type": "dpo"}"#), Loss::dpo());
    assert_eq!(parse(r#"{"type": "robust-dpo"}"#), Loss::robust_dpo());
    assert_eq!(parse(r#"{"type": "ipo"}"#), Loss::ipo());
    assert_eq!(parse(r#"{"type": "simpo"}"#), Loss::simpo());
    assert_eq!(parse(r#"{"type": "orpo"}"#), Loss::orpo());
    assert_eq!(parse(r#"{"type": "list-mle"}"#), Loss::list_mle());
    assert_eq!(parse(r#"{"type": "lipo-lambda"}"#), Loss::lipo_lambda());
    assert_eq!(
        parse(r#"{"type": "lambda-dpo", "beta": 0.2, "mode": "mean"}"#),
        Loss::LambdaDpo {
            beta: 0.2,
            mode: LogpMode::Mean
        }
    );
    let obj: Objective =
        serde_json::from_str(r#"{"loss": {"type": "dpo"}, "sft": {"weight": 0.5}}"#).unwrap();
    assert_eq!(
        obj.sft,
        SftTerm {
            weight: 0.5,
            mode: LogpMode::Mean
        }
    );
    assert!(serde_json::from_str::<Loss>(r#"{"type": "kto"}"#).is_err());
}
