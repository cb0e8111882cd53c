//! Loss + gradient cost per prompt at N ∈ {2, 4, 8, 16} responses, for every loss. This is the
//! whole per-step math the trainer adds to a model forward/backward, so it only has to be
//! negligible next to one (microseconds against tens of milliseconds or more).
//!
//! Run: `cargo bench -p lambda-dpo-math` (numbers go into BENCHMARKS.md).

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use lambda_dpo_math::{mixed_target, Loss, LossInput, MissingPolicy, Objective};

/// A deterministic example with N responses and four rating dimensions.
fn example(n: usize) -> (Vec<f64>, Vec<f64>, Vec<usize>, lambda_dpo_math::Target) {
    let lengths: Vec<usize> = (0..n).map(|i| 50 + 37 * i % 200).collect();
    let policy: Vec<f64> = lengths
        .iter()
        .enumerate()
        .map(|(i, &l)| -(0.5 + 0.1 * i as f64) * l as f64)
        .collect();
    let reference: Vec<f64> = policy
        .iter()
        .enumerate()
        .map(|(i, p)| p + (i as f64 * 0.7).sin())
        .collect();
    let ratings: Vec<Vec<Option<f64>>> = (0..4)
        .map(|k| {
            (0..n)
                .map(|i| Some(1.0 + ((i * 7 + k * 3) % 5) as f64))
                .collect()
        })
        .collect();
    let target = mixed_target(
        &ratings,
        &[0.4, 0.3, 0.2, 0.1],
        1.0,
        MissingPolicy::Default(1.0),
    )
    .unwrap()
    .target;
    (policy, reference, lengths, target)
}

fn bench_losses(c: &mut Criterion) {
    let losses = [
        Loss::lambda_dpo(),
        Loss::dpo(),
        Loss::robust_dpo(),
        Loss::ipo(),
        Loss::simpo(),
        Loss::orpo(),
        Loss::list_mle(),
        Loss::lipo_lambda(),
    ];
    for loss in losses {
        let mut group = c.benchmark_group(loss.name());
        for n in [2usize, 4, 8, 16] {
            let (policy, reference, lengths, target) = example(n);
            let objective = Objective::new(loss);
            group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
                b.iter(|| {
                    let input = LossInput {
                        policy_logps: black_box(&policy),
                        reference_logps: Some(black_box(&reference)),
                        lengths: &lengths,
                        target: &target,
                    };
                    black_box(objective.compute(&input).unwrap())
                })
            });
        }
        group.finish();
    }
}

/// The target construction the data pipeline runs once per prompt and λ.
fn bench_target(c: &mut Criterion) {
    let mut group = c.benchmark_group("mixed-target");
    for n in [2usize, 4, 8, 16] {
        let ratings: Vec<Vec<Option<f64>>> = (0..4)
            .map(|k| (0..n).map(|i| Some(1.0 + ((i + k) % 5) as f64)).collect())
            .collect();
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                mixed_target(
                    black_box(&ratings),
                    &[0.25; 4],
                    1.0,
                    MissingPolicy::Default(1.0),
                )
                .unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench_losses, bench_target);
criterion_main!(benches);
