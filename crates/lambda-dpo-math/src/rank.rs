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

/// Whether the response the model scores highest is one of the target's best responses.
pub fn top1_agreement(scores: &[f64], target: &[f64]) -> bool {
    // Compare against the set of best target responses, not one argmax: with tied best
    // responses any of them is a correct top-1, and an index tie-break would be arbitrary.
    let best_score = order_desc(scores)[0];
    let max_target = target.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    target[best_score] == max_target
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
    fn agreement_metrics() {
        assert!(top1_agreement(&[0.0, 2.0, 1.0], &[0.2, 0.5, 0.3]));
        assert!(!top1_agreement(&[3.0, 2.0, 1.0], &[0.2, 0.5, 0.3]));
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
}
