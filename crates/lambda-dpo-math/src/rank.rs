//! Rankings and rank metrics over one prompt's responses: orderings with a fixed tie rule, tie
//! groups (ListMLE), rank positions (LiPO-λ's discounts), and the agreement measures logged next
//! to a loss. Everything is deterministic: ties are broken by response index, never by chance.

/// Response indices sorted by `values` descending; equal values keep index order (stable sort).
pub fn order_desc(values: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    // total_cmp gives a total order even for -0.0/+0.0; inputs are validated finite upstream.
    idx.sort_by(|&a, &b| values[b].total_cmp(&values[a]));
    idx
}

/// 1-based rank position of every response when sorted by `values` descending (ties by index).
pub fn ranks_desc(values: &[f64]) -> Vec<usize> {
    let mut ranks = vec![0; values.len()];
    for (pos, i) in order_desc(values).into_iter().enumerate() {
        ranks[i] = pos + 1;
    }
    ranks
}

/// Groups of tied responses, best group first. Two responses are tied when their values differ
/// by at most `tolerance` from the first member of the group (so grouping is well defined even
/// though "within tolerance" is not transitive).
pub fn tie_groups_desc(values: &[f64], tolerance: f64) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for i in order_desc(values) {
        match groups.last_mut() {
            Some(g) if (values[g[0]] - values[i]).abs() <= tolerance => g.push(i),
            _ => groups.push(vec![i]),
        }
    }
    groups
}

/// Top-1 agreement: how much of the model's pick is one of the target's best responses, with
/// ties at the top of `scores` broken uniformly at random, in expectation:
///
/// ```text
/// M = { i : scores_i ≥ max(scores) − 1e-12 }   the model's (tied) maxima, k = |M|
/// B = { i : target_i = max(target) }           the target's best responses
/// top1 = |M ∩ B| / k                            ∈ [0, 1]
/// ```
///
/// So a model that cannot yet tell the responses apart (all scores equal, as every implicit
/// reward is at step 0) scores `|B| / N`, exactly the chance level of a random pick, and not 1
/// or 0 depending on where the best response happens to sit (an index tie-break would report
/// 1.0 on pairwise data written chosen-first). Without ties it is 1 or 0 as usual.
pub fn top1_agreement(scores: &[f64], target: &[f64]) -> f64 {
    let max_score = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let max_target = target.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    // The tolerance absorbs float noise between two ways of computing the same log-prob.
    let tops: Vec<usize> = (0..scores.len())
        .filter(|&i| scores[i] >= max_score - 1e-12)
        .collect();
    let hits = tops.iter().filter(|&&i| target[i] == max_target).count();
    hits as f64 / tops.len() as f64
}

/// Fraction of strictly ordered target pairs (`target_i > target_j`) that the scores order the
/// same way (`score_i > score_j`); `None` when the target orders no pair.
pub fn pairwise_accuracy(scores: &[f64], target: &[f64]) -> Option<f64> {
    // Tied target pairs are left out (they state no preference), and a tie in the scores counts
    // as a miss: the model has to separate what the target separates.
    let (mut agree, mut total) = (0usize, 0usize);
    for i in 0..target.len() {
        for j in 0..target.len() {
            if target[i] > target[j] {
                total += 1;
                if scores[i] > scores[j] {
                    agree += 1;
                }
            }
        }
    }
    (total > 0).then(|| agree as f64 / total as f64)
}

/// Kendall's τ-b of two paired samples, the tie-corrected rank correlation of
/// `scipy.stats.kendalltau` (its default, `variant="b"`):
///
/// ```text
/// over pairs i < j:  C = #{ (x_i − x_j)(y_i − y_j) > 0 },  D = #{ … < 0 }
///                    n_x = #{ x_i = x_j },  n_y = #{ y_i = y_j },  n_0 = n(n−1)/2
/// τ_b = (C − D) / sqrt( (n_0 − n_x)(n_0 − n_y) )
/// ```
///
/// `None` when either side is constant (or n < 2): the denominator is zero and τ is undefined
/// (scipy returns NaN). O(n²), which is what preference lists of a few responses need.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "kendall_tau_b needs paired samples");
    let n = x.len();
    let (mut concordant, mut discordant, mut ties_x, mut ties_y) = (0i64, 0i64, 0i64, 0i64);
    for i in 0..n {
        for j in i + 1..n {
            let dx = x[i] - x[j];
            let dy = y[i] - y[j];
            // Tied on both sides: counted in n_x and n_y, as scipy does.
            if dx == 0.0 {
                ties_x += 1;
            }
            if dy == 0.0 {
                ties_y += 1;
            }
            let s = dx * dy;
            if s > 0.0 {
                concordant += 1;
            } else if s < 0.0 {
                discordant += 1;
            }
        }
    }
    let pairs = (n * n.saturating_sub(1) / 2) as i64;
    let denominator = ((pairs - ties_x) as f64) * ((pairs - ties_y) as f64);
    (denominator > 0.0).then(|| (concordant - discordant) as f64 / denominator.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_ranks_and_groups() {
        let v = [0.1, 0.4, 0.4, 0.1, 0.0];
        assert_eq!(order_desc(&v), vec![1, 2, 0, 3, 4]);
        assert_eq!(ranks_desc(&v), vec![3, 1, 2, 4, 5]);
        assert_eq!(
            tie_groups_desc(&v, 1e-12),
            vec![vec![1, 2], vec![0, 3], vec![4]]
        );
    }

    #[test]
    fn top1_ties_count_fractionally_so_chance_is_chance() {
        // Step 0: every implicit reward is 0. Chosen-first pairs must not score 1.0.
        assert_eq!(top1_agreement(&[0.0, 0.0], &[1.0, 0.0]), 0.5);
        assert_eq!(top1_agreement(&[0.0; 4], &[0.1, 0.6, 0.2, 0.1]), 0.25);
        // Two tied target bests among four equal scores: 2/4.
        assert_eq!(top1_agreement(&[0.0; 4], &[0.4, 0.4, 0.1, 0.1]), 0.5);
        // Model torn between a best and a non-best response: 1/2; between two bests: 1.
        assert_eq!(top1_agreement(&[1.0, 1.0, 0.0], &[0.5, 0.3, 0.2]), 0.5);
        assert_eq!(top1_agreement(&[1.0, 1.0, 0.0], &[0.4, 0.4, 0.2]), 1.0);
        // A tie below the top does not matter.
        assert_eq!(top1_agreement(&[2.0, 1.0, 1.0], &[0.5, 0.3, 0.2]), 1.0);
        // Position carries no signal: the same list reversed gives the same value.
        assert_eq!(top1_agreement(&[0.0, 0.0], &[0.0, 1.0]), 0.5);
    }

    #[test]
    fn agreement_metrics() {
        assert_eq!(top1_agreement(&[0.0, 2.0, 1.0], &[0.2, 0.5, 0.3]), 1.0);
        assert_eq!(top1_agreement(&[3.0, 2.0, 1.0], &[0.2, 0.5, 0.3]), 0.0);
        assert_eq!(
            pairwise_accuracy(&[0.0, 2.0, 1.0], &[0.2, 0.5, 0.3]),
            Some(1.0)
        );
        assert_eq!(
            pairwise_accuracy(&[1.0, 2.0, 0.0], &[0.2, 0.5, 0.3]),
            Some(2.0 / 3.0)
        );
        assert_eq!(pairwise_accuracy(&[0.0, 1.0], &[0.5, 0.5]), None);
    }

    #[test]
    fn kendall_tau_b_small_cases() {
        assert_eq!(kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 5.0, 9.0]), Some(1.0));
        assert_eq!(
            kendall_tau_b(&[1.0, 2.0, 3.0], &[9.0, 5.0, 1.0]),
            Some(-1.0)
        );
        assert_eq!(kendall_tau_b(&[1.0, 1.0], &[0.0, 1.0]), None);
        assert_eq!(kendall_tau_b(&[1.0], &[1.0]), None);
        // One tie in y: C = 2, D = 0, n_0 = 3, n_y = 1 → 2 / sqrt(3·2).
        let t = kendall_tau_b(&[1.0, 2.0, 3.0], &[1.0, 2.0, 2.0]).unwrap();
        assert!((t - 2.0 / 6f64.sqrt()).abs() < 1e-15);
    }
}
