//! The performance-driven scheduler (paper App. D): exact interpolation when the points'
//! feature rows are independent, minimum-norm behaviour, ridge, candidates and probabilities.

use lambda_dpo_math::rng::Rng;
use lambda_dpo_math::sampler::LambdaSource;
use lambda_dpo_math::scheduler::{
    features, num_features, selection_probs, CandidateSource, PolyFit, Schedule,
};
use lambda_dpo_math::simplex::binomial;
use proptest::prelude::*;

fn random_points(rng: &mut Rng, n: usize, dim: usize, on_simplex: bool) -> Vec<Vec<f64>> {
    (0..n)
        .map(|_| {
            if on_simplex {
                rng.dirichlet(&vec![1.0; dim])
            } else {
                (0..dim).map(|_| 2.0 * rng.uniform() - 1.0).collect()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Generic points in ℝ^d: as many as there are features (C(d+p, p)) are interpolated exactly.
    #[test]
    fn interpolates_exactly_when_points_do_not_exceed_features(
        dim in 1usize..5, degree in 0usize..4, seed in any::<u64>(), frac in 0.1f64..=1.0,
    ) {
        let nf = num_features(dim, degree);
        let n = ((nf as f64 * frac).ceil() as usize).clamp(1, nf);
        let mut rng = Rng::seed_from_u64(seed);
        let points = random_points(&mut rng, n, dim, false);
        let scores: Vec<f64> = (0..n).map(|_| rng.uniform()).collect();
        let fit = PolyFit::fit(&points, &scores, degree, 0.0).unwrap();
        prop_assert_eq!(fit.coefficients.len(), nf);
        prop_assert_eq!(fit.rank, n);
        for (p, y) in points.iter().zip(&scores) {
            let f = fit.predict(p).unwrap();
            prop_assert!((f - y).abs() < 1e-9, "f = {f}, y = {y}");
        }
    }

    /// On the simplex the features are dependent: C(d−1+p, p) generic points are still exact.
    #[test]
    fn interpolates_exactly_on_the_simplex_up_to_its_polynomial_dimension(
        dim in 2usize..6, degree in 1usize..4, seed in any::<u64>(),
    ) {
        let n = binomial(dim - 1 + degree, degree) as usize;
        let mut rng = Rng::seed_from_u64(seed);
        let points = random_points(&mut rng, n, dim, true);
        let scores: Vec<f64> = (0..n).map(|_| 0.4 + 0.2 * rng.uniform()).collect();
        let fit = PolyFit::fit(&points, &scores, degree, 0.0).unwrap();
        prop_assert_eq!(fit.rank, n);
        for (p, y) in points.iter().zip(&scores) {
            prop_assert!((fit.predict(p).unwrap() - y).abs() < 1e-9);
        }
    }
}

#[test]
fn underdetermined_fit_is_the_minimum_norm_interpolant() {
    // Adding any null-space direction of the design matrix to c keeps the fit but grows ‖c‖.
    let mut rng = Rng::seed_from_u64(3);
    let points = random_points(&mut rng, 5, 4, true);
    let scores = [0.51, 0.47, 0.55, 0.49, 0.52];
    let fit = PolyFit::fit(&points, &scores, 2, 0.0).unwrap();
    let norm = |c: &[f64]| c.iter().map(|x| x * x).sum::<f64>();
    // A null direction on the simplex: φ(λ)·v = (Σλ − 1) = 0 for v = (−1, 1, 1, 1, 1, 0, …).
    let mut v = vec![0.0; fit.coefficients.len()];
    v[0] = -1.0;
    for vk in v.iter_mut().take(5).skip(1) {
        *vk = 1.0;
    }
    for p in &points {
        let f: f64 = features(p, 2).iter().zip(&v).map(|(a, b)| a * b).sum();
        assert!(f.abs() < 1e-12);
    }
    // The minimum-norm solution is orthogonal to every null direction.
    let dot: f64 = fit.coefficients.iter().zip(&v).map(|(a, b)| a * b).sum();
    assert!(dot.abs() < 1e-9, "c·v = {dot}");
    let moved: Vec<f64> = fit
        .coefficients
        .iter()
        .zip(&v)
        .map(|(c, v)| c + 0.1 * v)
        .collect();
    assert!(norm(&moved) > norm(&fit.coefficients));
}

#[test]
fn ridge_trades_fit_for_smaller_coefficients() {
    let mut rng = Rng::seed_from_u64(9);
    let points = random_points(&mut rng, 30, 3, true);
    let scores: Vec<f64> = points
        .iter()
        .map(|p| 0.5 + 0.1 * p[0] - 0.05 * p[1] * p[2])
        .collect();
    let exact = PolyFit::fit(&points, &scores, 2, 0.0).unwrap();
    let ridge = PolyFit::fit(&points, &scores, 2, 1e-2).unwrap();
    let norm = |c: &[f64]| c.iter().map(|x| x * x).sum::<f64>();
    assert!(norm(&ridge.coefficients) < norm(&exact.coefficients));
    // The generating polynomial is degree 2, so the exact fit recovers it everywhere on Δ.
    for p in &points {
        let truth = 0.5 + 0.1 * p[0] - 0.05 * p[1] * p[2];
        assert!((exact.predict(p).unwrap() - truth).abs() < 1e-12);
    }
}

/// The shape of the paper's App. D example — five points, degree 2, ten candidates, τ = 100 —
/// with the λ-DPO authors' ten-row table as candidates. The five points and their scores are
/// OURS (illustrative): the paper's own numbers could not be retrieved for this repository, so
/// they are not reproduced here. What is checked is what the paper's fit gets wrong: an exact
/// solver hits its training points (to 1e-9).
#[test]
fn app_d_shaped_example_hits_its_five_points() {
    let points = vec![
        vec![0.25, 0.25, 0.25, 0.25],
        vec![1.0, 0.0, 0.0, 0.0],
        vec![0.0, 1.0, 0.0, 0.0],
        vec![0.0, 0.0, 1.0, 0.0],
        vec![0.0, 0.0, 0.0, 1.0],
    ];
    let scores = vec![0.472, 0.455, 0.468, 0.461, 0.466];
    let LambdaSource::Table { rows } = LambdaSource::authors_table() else {
        unreachable!()
    };
    let candidates = CandidateSource::Given {
        candidates: rows.iter().map(|r| r.lambda.clone()).collect(),
    };
    let schedule = Schedule::build(&points, &scores, 2, 0.0, &candidates, 100.0).unwrap();
    assert_eq!(schedule.fit.coefficients.len(), 15);
    for (p, y) in points.iter().zip(&scores) {
        assert!((schedule.fit.predict(p).unwrap() - y).abs() < 1e-9);
    }
    assert_eq!(schedule.probs.len(), 10);
    assert!((schedule.probs.iter().sum::<f64>() - 1.0).abs() < 1e-12);
    let expected = selection_probs(&schedule.scores, 100.0).unwrap();
    assert_eq!(schedule.probs, expected);
    // The README's table (f(λ) and softmax(100·f) per candidate), pinned to its 4 decimals.
    let readme = [
        (0.4723, 0.1164),
        (0.4724, 0.1171),
        (0.4674, 0.0713),
        (0.4701, 0.0932),
        (0.4728, 0.1216),
        (0.4687, 0.0809),
        (0.4713, 0.1051),
        (0.4674, 0.0713),
        (0.4720, 0.1122),
        (0.4719, 0.1109),
    ];
    for (i, (f, p)) in readme.iter().enumerate() {
        assert!(
            (schedule.scores[i] - f).abs() < 5e-5,
            "row {i}: f {}",
            schedule.scores[i]
        );
        assert!(
            (schedule.probs[i] - p).abs() < 5e-5,
            "row {i}: p {}",
            schedule.probs[i]
        );
    }
    // The schedule is a λ table the samplers accept.
    assert!(lambda_dpo_math::LambdaSampler::new(schedule.to_source(), 0).is_ok());
}

#[test]
fn candidate_sources() {
    let grid = CandidateSource::Grid { step: 0.5 }.generate(3).unwrap();
    assert_eq!(grid.len(), 6);
    let d1 = CandidateSource::Dirichlet {
        count: 7,
        alpha: 1.0,
        seed: 1,
    }
    .generate(4)
    .unwrap();
    let d2 = CandidateSource::Dirichlet {
        count: 7,
        alpha: 1.0,
        seed: 1,
    }
    .generate(4)
    .unwrap();
    assert_eq!(d1.len(), 7);
    assert_eq!(d1, d2, "seeded candidates are reproducible");
    assert!(CandidateSource::Given {
        candidates: vec![vec![0.5, 0.5]]
    }
    .generate(3)
    .is_err());
}
