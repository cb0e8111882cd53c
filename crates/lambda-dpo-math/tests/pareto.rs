//! Evaluation of a λ sweep: hypervolumes and fronts computed by hand (2D staircases, 3D and 4D
//! boxes), Spearman's ρ against `scipy.stats.spearmanr` (`fixtures/pareto_reference.json`,
//! produced by `fixtures/pareto_reference.py`), and properties: the hypervolume equals an
//! independent inclusion–exclusion sum, grows when points are added, ignores their order, is the
//! maximum in 1D and is carried by the front alone; the front of the front is the front.

use lambda_dpo_math::pareto::{dominates, hypervolume, pareto_front, spearman};
use lambda_dpo_math::MathError;
use proptest::prelude::*;
use serde::Deserialize;

fn pts(v: &[&[f64]]) -> Vec<Vec<f64>> {
    v.iter().map(|p| p.to_vec()).collect()
}

fn close(a: f64, b: f64, tol: f64) -> bool {
    (a - b).abs() <= tol * a.abs().max(b.abs()).max(1.0)
}

// ------------------------------------------------------------------ hypervolume by hand

#[test]
fn hypervolume_2d_staircase() {
    // Boxes [0,1]×[0,3] ∪ [0,2]×[0,2] ∪ [0,3]×[0,1]: 3 + 1·2 + 1·1 = 6.
    let stairs = pts(&[&[1.0, 3.0], &[2.0, 2.0], &[3.0, 1.0]]);
    assert_eq!(hypervolume(&stairs, &[0.0, 0.0]).unwrap(), 6.0);
    // Shifting the reference to (0.5, 0.5): 0.5·2.5 + 1·1.5 + 1·0.5 = 3.25.
    assert_eq!(hypervolume(&stairs, &[0.5, 0.5]).unwrap(), 3.25);
    // A dominated point, a duplicate and a point below the reference add nothing.
    let mut more = stairs.clone();
    more.extend(pts(&[&[1.0, 1.0], &[2.0, 2.0], &[10.0, -1.0], &[0.0, 7.0]]));
    assert_eq!(hypervolume(&more, &[0.0, 0.0]).unwrap(), 6.0);
}

#[test]
fn hypervolume_3d_and_4d_boxes() {
    let origin3 = [0.0; 3];
    assert_eq!(
        hypervolume(&pts(&[&[1.0, 2.0, 3.0]]), &origin3).unwrap(),
        6.0
    );
    // 4 + 3 − overlap 1·1·1.
    let two = pts(&[&[2.0, 2.0, 1.0], &[1.0, 1.0, 3.0]]);
    assert_eq!(hypervolume(&two, &origin3).unwrap(), 6.0);
    // Three 3×1×1 bars along the axes: 3·3 − 3·1 + 1 = 7.
    let bars = pts(&[&[3.0, 1.0, 1.0], &[1.0, 3.0, 1.0], &[1.0, 1.0, 3.0]]);
    assert_eq!(hypervolume(&bars, &origin3).unwrap(), 7.0);
    // With the reference at (1, 0, 0) only the first bar keeps volume: 2·1·1.
    assert_eq!(hypervolume(&bars, &[1.0, 0.0, 0.0]).unwrap(), 2.0);

    let origin4 = [0.0; 4];
    let four = pts(&[&[2.0, 1.0, 1.0, 1.0], &[1.0, 2.0, 1.0, 1.0]]);
    assert_eq!(hypervolume(&four, &origin4).unwrap(), 3.0);
    let cube = pts(&[&[0.5, 0.5, 0.5, 0.5]]);
    assert_eq!(hypervolume(&cube, &origin4).unwrap(), 0.0625);
}

#[test]
fn hypervolume_edge_cases_and_errors() {
    assert_eq!(hypervolume(&[], &[0.0, 0.0]).unwrap(), 0.0);
    assert_eq!(
        hypervolume(&pts(&[&[3.0], &[5.0], &[-2.0]]), &[1.0]).unwrap(),
        4.0
    );
    assert!(matches!(
        hypervolume(&pts(&[&[1.0]]), &[]),
        Err(MathError::Empty { .. })
    ));
    assert!(matches!(
        hypervolume(&pts(&[&[1.0, 2.0], &[1.0]]), &[0.0, 0.0]),
        Err(MathError::LengthMismatch {
            expected: 2,
            found: 1,
            ..
        })
    ));
    assert!(matches!(
        hypervolume(&pts(&[&[1.0, f64::NAN]]), &[0.0, 0.0]),
        Err(MathError::NonFinite { index: 0, .. })
    ));
    assert!(matches!(
        hypervolume(&pts(&[&[1.0, 1.0]]), &[0.0, f64::NEG_INFINITY]),
        Err(MathError::NonFinite { .. })
    ));
}

#[test]
fn hundred_mutually_non_dominated_points_in_4d() {
    // The worst case for HSO at the size the demo uses: 100 points on the positive unit sphere,
    // none dominating another (deterministic quasi-random directions, no RNG needed).
    let p: Vec<Vec<f64>> = (1..=100)
        .map(|i| {
            let v: Vec<f64> = (1..=4)
                .map(|k| ((i * k) as f64 * 0.618_033_988_75).fract() + 0.05)
                .collect();
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            v.iter().map(|a| a / norm).collect()
        })
        .collect();
    let hv = hypervolume(&p, &[0.0; 4]).unwrap();
    let best_box = p
        .iter()
        .map(|q| q.iter().product::<f64>())
        .fold(0.0, f64::max);
    // More than the largest single box, less than the unit cube that contains every box.
    assert!(hv > best_box && hv < 1.0, "hv {hv}, best box {best_box}");
    assert_eq!(pareto_front(&p).unwrap().len(), 100);
}

// ------------------------------------------------------------------ front by hand

#[test]
fn front_keeps_duplicates_and_drops_dominated() {
    let p = pts(&[
        &[1.0, 3.0],
        &[2.0, 2.0],
        &[3.0, 1.0],
        &[1.0, 1.0],
        &[2.0, 2.0],
        &[1.0, 2.5],
    ]);
    assert_eq!(pareto_front(&p).unwrap(), vec![0, 1, 2, 4]);
    assert_eq!(pareto_front(&[]).unwrap(), Vec::<usize>::new());
    // Equal in one coordinate, better in the other: dominated.
    assert_eq!(
        pareto_front(&pts(&[&[1.0, 1.0], &[1.0, 2.0]])).unwrap(),
        vec![1]
    );
    assert!(matches!(
        pareto_front(&pts(&[&[1.0, 2.0], &[1.0, 2.0, 3.0]])),
        Err(MathError::LengthMismatch { .. })
    ));
    assert!(matches!(
        pareto_front(&pts(&[&[1.0], &[f64::NAN]])),
        Err(MathError::NonFinite { index: 1, .. })
    ));
}

// ------------------------------------------------------------------ spearman vs scipy

#[derive(Deserialize)]
struct Fixture {
    spearman: Vec<SpearmanCase>,
}

#[derive(Deserialize)]
struct SpearmanCase {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    rho: Option<f64>,
}

#[test]
fn spearman_matches_scipy() {
    let fixture: Fixture = serde_json::from_str(include_str!("fixtures/pareto_reference.json"))
        .expect("valid fixture JSON");
    assert!(fixture.spearman.len() >= 10);
    for case in fixture.spearman {
        let got = spearman(&case.x, &case.y).unwrap();
        match (got, case.rho) {
            (Some(g), Some(e)) => assert!(close(g, e, 1e-12), "{}: {g} vs scipy {e}", case.name),
            (None, None) => {}
            (g, e) => panic!("{}: {g:?} vs scipy {e:?}", case.name),
        }
    }
}

#[test]
fn spearman_errors() {
    assert!(matches!(
        spearman(&[1.0, 2.0], &[1.0]),
        Err(MathError::LengthMismatch { .. })
    ));
    assert!(matches!(
        spearman(&[1.0], &[1.0]),
        Err(MathError::TooFewResponses { n: 1 })
    ));
    assert!(matches!(
        spearman(&[1.0, f64::INFINITY], &[1.0, 2.0]),
        Err(MathError::NonFinite { index: 1, .. })
    ));
}

// ------------------------------------------------------------------ properties

/// Inclusion–exclusion over all non-empty subsets: the volume of an intersection of boxes
/// `[r, p]` is the box `[r, min p]`. Exponential, independent of HSO: the oracle.
fn hv_inclusion_exclusion(points: &[Vec<f64>], r: &[f64]) -> f64 {
    let n = points.len();
    let mut total = 0.0;
    for mask in 1u32..(1 << n) {
        let mut vol = 1.0;
        for (k, rk) in r.iter().enumerate() {
            let m = (0..n)
                .filter(|i| mask & (1 << i) != 0)
                .map(|i| points[i][k])
                .fold(f64::INFINITY, f64::min);
            vol *= (m - rk).max(0.0);
        }
        total += if mask.count_ones() % 2 == 1 {
            vol
        } else {
            -vol
        };
    }
    total
}

/// A coordinate: often on a coarse grid (ties, duplicates, points on the reference), else free.
fn coord() -> impl Strategy<Value = f64> {
    prop_oneof![(0u8..5).prop_map(|v| f64::from(v) * 0.5), -0.5f64..2.5]
}

fn point_set(max: usize) -> impl Strategy<Value = (usize, Vec<Vec<f64>>)> {
    (1usize..=4).prop_flat_map(move |d| {
        (
            Just(d),
            prop::collection::vec(prop::collection::vec(coord(), d), 0..=max),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn hypervolume_equals_inclusion_exclusion((d, p) in point_set(7)) {
        let r = vec![0.0; d];
        let hv = hypervolume(&p, &r).unwrap();
        let oracle = hv_inclusion_exclusion(&p, &r);
        prop_assert!(close(hv, oracle, 1e-9), "HSO {hv} vs inclusion–exclusion {oracle}");
    }

    #[test]
    fn hypervolume_grows_when_points_are_added(
        (d, p) in point_set(12),
        extra in prop::collection::vec(coord(), 4),
    ) {
        let r = vec![0.0; d];
        let before = hypervolume(&p, &r).unwrap();
        let mut more = p.clone();
        more.push(extra[..d].to_vec());
        let after = hypervolume(&more, &r).unwrap();
        prop_assert!(after >= before - 1e-12 * before.max(1.0), "{before} → {after}");
    }

    #[test]
    fn hypervolume_ignores_order(
        shuffled in point_set(12).prop_flat_map(|(d, p)| (Just(d), Just(p.clone()), Just(p).prop_shuffle()))
    ) {
        let (d, p, q) = shuffled;
        let r = vec![-0.25; d];
        // Bit-identical, not merely close: HSO sorts by value with a total order first.
        prop_assert_eq!(hypervolume(&p, &r).unwrap(), hypervolume(&q, &r).unwrap());
    }

    #[test]
    fn hypervolume_in_1d_is_the_maximum(xs in prop::collection::vec(-3.0f64..3.0, 0..20), r in -1.0f64..1.0) {
        let p: Vec<Vec<f64>> = xs.iter().map(|&x| vec![x]).collect();
        let expected = xs.iter().map(|x| x - r).fold(0.0, f64::max);
        prop_assert_eq!(hypervolume(&p, &[r]).unwrap(), expected);
    }

    #[test]
    fn front_carries_the_hypervolume_and_is_idempotent((d, p) in point_set(15)) {
        let front = pareto_front(&p).unwrap();
        let fp: Vec<Vec<f64>> = front.iter().map(|&i| p[i].clone()).collect();
        // Front of the front is the whole front.
        prop_assert_eq!(pareto_front(&fp).unwrap(), (0..fp.len()).collect::<Vec<_>>());
        // Every dropped point is dominated by a kept one.
        for (i, q) in p.iter().enumerate() {
            if !front.contains(&i) {
                prop_assert!(fp.iter().any(|f| dominates(f, q)));
            }
        }
        let r = vec![0.0; d];
        let (all, kept) = (hypervolume(&p, &r).unwrap(), hypervolume(&fp, &r).unwrap());
        prop_assert!(close(all, kept, 1e-12), "{all} vs front {kept}");
    }

    #[test]
    fn spearman_is_a_bounded_symmetric_rank_statistic(
        xy in prop::collection::vec((coord(), coord()), 2..30)
    ) {
        let (x, y): (Vec<f64>, Vec<f64>) = xy.into_iter().unzip();
        let rho = spearman(&x, &y).unwrap();
        prop_assert_eq!(rho, spearman(&y, &x).unwrap());
        // Only ranks matter: a strictly increasing transform changes nothing.
        let x3: Vec<f64> = x.iter().map(|v| (3.0 * v + 1.0).exp()).collect();
        prop_assert_eq!(rho, spearman(&x3, &y).unwrap());
        if let Some(r) = rho {
            prop_assert!((-1.0..=1.0).contains(&r));
            prop_assert!(close(spearman(&x, &x).unwrap().unwrap(), 1.0, 1e-12));
        } else {
            let constant = |v: &[f64]| v.iter().all(|a| *a == v[0]);
            prop_assert!(constant(&x) || constant(&y));
        }
    }
}
