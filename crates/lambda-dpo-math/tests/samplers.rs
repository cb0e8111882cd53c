//! λ samplers: every draw is on the simplex, Dirichlet(1) marginals have Beta(1, m−1) moments,
//! and a sampler serialised mid-stream resumes with exactly the draws of an uninterrupted run.

use lambda_dpo_math::sampler::{LambdaSampler, LambdaSource, TableRow};
use lambda_dpo_math::special::{check_simplex, SIMPLEX_TOLERANCE};
use proptest::prelude::*;

fn sources(dim: usize, alpha: f64) -> Vec<LambdaSource> {
    let mut fixed = vec![0.0; dim];
    fixed[0] = 0.25;
    fixed[dim - 1] += 0.75;
    vec![
        LambdaSource::Fixed { lambda: fixed },
        LambdaSource::OneHotCycle { dim },
        LambdaSource::dirichlet_symmetric(dim, alpha),
        LambdaSource::Table {
            rows: vec![
                TableRow {
                    lambda: vec![1.0; dim],
                    prob: 2.0,
                },
                TableRow {
                    lambda: (0..dim).map(|k| k as f64 + 1.0).collect(),
                    prob: 1.0,
                },
            ],
        },
        LambdaSource::Grid { dim, step: 0.125 },
        LambdaSource::authors_table(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_draw_is_on_the_simplex(dim in 1usize..7, alpha in 0.02f64..20.0, seed in any::<u64>()) {
        for source in sources(dim, alpha) {
            let mut s = LambdaSampler::new(source, seed).unwrap();
            for _ in 0..50 {
                let l = s.sample();
                prop_assert_eq!(l.len(), s.dim());
                prop_assert!(check_simplex("draw", &l, SIMPLEX_TOLERANCE).is_ok(), "{:?}", l);
            }
        }
    }

    #[test]
    fn resumed_sampler_draws_the_same_sequence(dim in 2usize..6, alpha in 0.1f64..5.0, seed in any::<u64>(), k in 0usize..40) {
        for source in sources(dim, alpha) {
            let mut straight = LambdaSampler::new(source.clone(), seed).unwrap();
            let expected: Vec<Vec<f64>> = (0..k + 20).map(|_| straight.sample()).collect();

            let mut first = LambdaSampler::new(source, seed).unwrap();
            let mut got: Vec<Vec<f64>> = (0..k).map(|_| first.sample()).collect();
            // Checkpoint: JSON round trip, as the trainer stores it.
            let saved = serde_json::to_string(&first).unwrap();
            let mut resumed: LambdaSampler = serde_json::from_str(&saved).unwrap();
            prop_assert_eq!(resumed.draws(), k as u64);
            got.extend((0..20).map(|_| resumed.sample()));
            prop_assert_eq!(got, expected);
        }
    }
}

/// Raw moment E[X^k] of Beta(a, b).
fn beta_raw_moment(a: f64, b: f64, k: u32) -> f64 {
    (0..k)
        .map(|r| (a + r as f64) / (a + b + r as f64))
        .product()
}

#[test]
fn dirichlet_one_marginals_match_beta_moments() {
    // λ ~ Dirichlet(1,…,1) ⇒ λ_k ~ Beta(1, m−1). Check mean and variance within 5 standard errors.
    let n = 40_000;
    for m in [2usize, 3, 4, 6] {
        let mut s =
            LambdaSampler::new(LambdaSource::dirichlet_symmetric(m, 1.0), 1234 + m as u64).unwrap();
        let draws: Vec<Vec<f64>> = (0..n).map(|_| s.sample()).collect();
        let (a, b) = (1.0, m as f64 - 1.0);
        let mean = beta_raw_moment(a, b, 1);
        let (m2, m3, m4) = (
            beta_raw_moment(a, b, 2),
            beta_raw_moment(a, b, 3),
            beta_raw_moment(a, b, 4),
        );
        let var = m2 - mean * mean;
        let mu4 = m4 - 4.0 * mean * m3 + 6.0 * mean * mean * m2 - 3.0 * mean.powi(4);
        let se_mean = (var / n as f64).sqrt();
        let se_var = ((mu4 - var * var) / n as f64).sqrt();
        for k in 0..m {
            let xs: Vec<f64> = draws.iter().map(|d| d[k]).collect();
            let sample_mean = xs.iter().sum::<f64>() / n as f64;
            let sample_var =
                xs.iter().map(|x| (x - sample_mean).powi(2)).sum::<f64>() / (n - 1) as f64;
            assert!(
                (sample_mean - mean).abs() < 5.0 * se_mean,
                "m={m} k={k}: mean {sample_mean} vs {mean}"
            );
            assert!(
                (sample_var - var).abs() < 5.0 * se_var,
                "m={m} k={k}: var {sample_var} vs {var}"
            );
        }
    }
}

#[test]
fn table_sampler_follows_its_probabilities() {
    let mut s = LambdaSampler::new(LambdaSource::authors_table(), 42).unwrap();
    let LambdaSource::Table { rows } = s.source().clone() else {
        unreachable!()
    };
    let n = 50_000;
    let mut counts = vec![0usize; rows.len()];
    for _ in 0..n {
        let l = s.sample();
        counts[rows.iter().position(|r| r.lambda == l).unwrap()] += 1;
    }
    for (c, r) in counts.iter().zip(&rows) {
        let se = (r.prob * (1.0 - r.prob) / n as f64).sqrt();
        assert!((*c as f64 / n as f64 - r.prob).abs() < 5.0 * se);
    }
}

#[test]
fn seeds_are_stable_across_versions() {
    // Pinned: a change here silently changes every seeded run's λ sequence.
    let mut s = LambdaSampler::new(LambdaSource::dirichlet_symmetric(4, 1.0), 42).unwrap();
    // (Dirichlet goes through libm's exp/ln, which may differ by an ulp between platforms.)
    let pinned = [
        0.04636419582619198,
        0.35146279446561784,
        0.5481338550836553,
        0.054039154624534964,
    ];
    for (a, b) in s.sample().iter().zip(pinned) {
        assert!((a - b).abs() < 1e-14, "{a} vs {b}");
    }
    let mut t = LambdaSampler::new(LambdaSource::authors_table(), 42).unwrap();
    let firsts: Vec<f64> = (0..5).map(|_| t.sample()[0]).collect();
    assert_eq!(firsts, vec![0.212, 0.23323323323323325, 0.236, 0.09, 0.09]);
    let json = serde_json::to_string(
        &LambdaSampler::new(LambdaSource::OneHotCycle { dim: 2 }, 0).unwrap(),
    )
    .unwrap();
    assert!(
        json.contains("\"kind\":\"one-hot-cycle\"") && json.contains("\"draws\":0"),
        "{json}"
    );
}

#[test]
fn invalid_sources_are_refused() {
    assert!(LambdaSampler::new(LambdaSource::dirichlet_symmetric(3, 0.0), 0).is_err());
    assert!(LambdaSampler::new(LambdaSource::Grid { dim: 3, step: 0.3 }, 0).is_err());
    assert!(LambdaSampler::new(LambdaSource::Table { rows: vec![] }, 0).is_err());
    let bad: Result<LambdaSampler, _> = serde_json::from_str(
        r#"{"source":{"kind":"fixed","lambda":[0.9,0.3]},"rng":{"s":[1,2,3,4]},"draws":0}"#,
    );
    assert!(bad.is_err(), "deserialisation validates the source");
}
