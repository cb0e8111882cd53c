//! Kendall's τ-b against `scipy.stats.kendalltau` and the preference-evaluation aggregates
//! against torch's soft-label cross-entropy + scipy (`fixtures/rank_reference.json`, written
//! by `fixtures/rank_reference.py`).

use lambda_dpo_math::prefeval::{DimensionScores, PrefEval};
use lambda_dpo_math::rank::kendall_tau_b;
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    kendall: Vec<KendallCase>,
    prefeval: Vec<PrefCase>,
}

#[derive(Deserialize)]
struct KendallCase {
    name: String,
    x: Vec<f64>,
    y: Vec<f64>,
    tau: Option<f64>,
}

#[derive(Deserialize)]
struct PrefCase {
    name: String,
    temperature: f64,
    lists: Vec<PrefList>,
    dimensions: Vec<DimensionScores>,
}

#[derive(Deserialize)]
struct PrefList {
    rewards: Vec<f64>,
    ratings: Vec<Vec<Option<f64>>>,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/rank_reference.json"
    ))
    .expect("fixture");
    serde_json::from_str(&text).expect("fixture parses")
}

fn close(a: Option<f64>, b: Option<f64>, what: &str) {
    match (a, b) {
        (Some(a), Some(b)) => assert!((a - b).abs() < 1e-12, "{what}: {a} vs {b}"),
        (a, b) => assert_eq!(a, b, "{what}"),
    }
}

#[test]
fn kendall_tau_b_matches_scipy() {
    let f = fixture();
    assert!(f.kendall.len() >= 8);
    assert!(f.kendall.iter().any(|c| c.tau.is_none()));
    for c in &f.kendall {
        close(kendall_tau_b(&c.x, &c.y), c.tau, &c.name);
        // Symmetric in its arguments.
        close(kendall_tau_b(&c.y, &c.x), c.tau, &c.name);
    }
}

#[test]
fn prefeval_matches_torch_and_scipy() {
    let f = fixture();
    assert!(!f.prefeval.is_empty());
    // The fixture exercises lists left out for a missing rating.
    assert!(f
        .prefeval
        .iter()
        .flat_map(|c| &c.dimensions)
        .any(|d| d.skipped > 0));
    for case in &f.prefeval {
        let mut e = PrefEval::new(case.dimensions.len(), case.temperature);
        for l in &case.lists {
            e.add(&l.rewards, &l.ratings, None).unwrap();
        }
        let got = e.dimensions();
        for (k, (g, want)) in got.iter().zip(&case.dimensions).enumerate() {
            let what = format!("{} dim {k}", case.name);
            assert_eq!(
                (g.lists, g.skipped, g.pairs, g.tau_lists),
                (want.lists, want.skipped, want.pairs, want.tau_lists),
                "{what}"
            );
            close(g.cross_entropy, want.cross_entropy, &format!("{what} CE"));
            close(g.top1, want.top1, &format!("{what} top-1"));
            close(
                g.pairwise_accuracy,
                want.pairwise_accuracy,
                &format!("{what} pairwise"),
            );
            close(g.kendall_tau, want.kendall_tau, &format!("{what} τ"));
        }
    }
}
