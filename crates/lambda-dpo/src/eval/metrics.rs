//! lm-eval's metrics and aggregations, in f64 and in lm-eval's order of operations, so that
//! the results agree to the last bits.
//!
//! ```text
//! acc       = [argmax_i ll_i = gold]                       (first maximum wins, as numpy)
//! acc_norm  = [argmax_i ll_i / len_chars(choice_i) = gold]
//! acc_bytes = [argmax_i ll_i / len_utf8_bytes(choice_i) = gold]
//! mc2       = Σ_{label_i=1} p_i / Σ_i p_i,   p_i = exp(ll_i)   (no max shift, as lm-eval)
//! mean      = Σx / n
//! stderr    = sqrt(Σ(x − mean)² / (n − 1)) / sqrt(n)
//! group     = Σ m_j n_j / Σ n_j  over the group's *leaf* tasks j (weight_by_size)
//! group se  = sqrt( Σ (n_j − 1) se_j² n_j / (Σ n_j − k) / Σ n_j ),   k = number of leaves
//! ```

/// numpy's `argmax` (first maximum; NaN counts as the maximum, as numpy).
fn argmax(xs: impl IntoIterator<Item = f64>) -> usize {
    let mut best = 0;
    let mut best_v = f64::NEG_INFINITY;
    for (i, v) in xs.into_iter().enumerate() {
        if v.is_nan() {
            return i;
        }
        if i == 0 || v > best_v {
            best = i;
            best_v = v;
        }
    }
    best
}

/// `acc` of one item: 1.0 when the highest log-likelihood is the gold choice's.
pub fn acc(lls: &[f64], gold: usize) -> f64 {
    f64::from(u8::from(argmax(lls.iter().copied()) == gold))
}

/// `acc_norm`: log-likelihoods divided by the choices' lengths in characters (not tokens,
/// not bytes, and without the leading delimiter).
pub fn acc_norm(lls: &[f64], choices: &[String], gold: usize) -> f64 {
    let normed = lls
        .iter()
        .zip(choices)
        .map(|(ll, c)| ll / c.chars().count() as f64);
    f64::from(u8::from(argmax(normed) == gold))
}

/// `acc_bytes`: log-likelihoods divided by the choices' UTF-8 lengths in bytes.
pub fn acc_bytes(lls: &[f64], choices: &[String], gold: usize) -> f64 {
    let normed = lls.iter().zip(choices).map(|(ll, c)| ll / c.len() as f64);
    f64::from(u8::from(argmax(normed) == gold))
}

/// TruthfulQA `mc2` (lm-eval's `process_results_mc2`): the normalised probability mass of the
/// true answers.
pub fn mc2(lls: &[f64], labels: &[u8]) -> f64 {
    let probs: Vec<f64> = lls.iter().map(|l| l.exp()).collect();
    let total = pairwise_sum(&probs);
    let normed: Vec<f64> = probs
        .iter()
        .zip(labels)
        .filter(|(_, &l)| l == 1)
        .map(|(p, _)| p / total)
        .collect();
    pairwise_sum(&normed)
}

/// numpy's `np.sum` over a contiguous f64 array (pairwise summation in blocks of 8 below 128
/// elements, as `pairwise_sum` in numpy's `loops_utils.h`).
fn pairwise_sum(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 8 {
        // numpy: res = 0.; for i: res += a[i]   (the -0.0 start does not matter here)
        return xs.iter().fold(0.0, |a, &x| a + x);
    }
    if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&xs[..8]);
        let mut i = 8;
        while i + 8 <= n {
            for (j, rj) in r.iter_mut().enumerate() {
                *rj += xs[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &xs[i..] {
            res += x;
        }
        return res;
    }
    let mut half = n / 2;
    half -= half % 8;
    pairwise_sum(&xs[..half]) + pairwise_sum(&xs[half..])
}

/// lm-eval's `mean`: Python's left-to-right `sum(arr) / len(arr)`.
pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().fold(0.0, |a, &x| a + x) / xs.len() as f64
}

/// lm-eval's `mean_stderr` (sample standard deviation, ddof = 1, over √n). `NaN` for n < 2,
/// where lm-eval divides by zero.
pub fn mean_stderr(xs: &[f64]) -> f64 {
    let n = xs.len();
    if n < 2 {
        return f64::NAN;
    }
    let mu = mean(xs);
    let ss = xs.iter().fold(0.0, |a, &x| a + (x - mu).powi(2));
    (ss / (n - 1) as f64).sqrt() / (n as f64).sqrt()
}

/// One leaf task's aggregated metric.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeafScore {
    pub value: f64,
    /// `None` where the leaf has no standard error (lm-eval then reports `"N/A"`).
    pub stderr: Option<f64>,
    /// Number of evaluated documents (`sample_len`).
    pub size: usize,
}

/// A group's metric over its leaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GroupScore {
    pub value: f64,
    pub stderr: Option<f64>,
    pub size: usize,
}

/// lm-eval 0.4.13's group aggregation with `weight_by_size: True`, over all leaf tasks of the
/// group (never over its subgroups).
pub fn aggregate_group(leaves: &[LeafScore]) -> GroupScore {
    let size: usize = leaves.iter().map(|l| l.size).sum();
    let value = leaves.iter().fold(0.0, |a, l| a + l.value * l.size as f64) / size as f64;
    let stderr = leaves
        .iter()
        .map(|l| l.stderr)
        .collect::<Option<Vec<f64>>>()
        .map(|ses| {
            let num = leaves.iter().zip(&ses).fold(0.0, |a, (l, se)| {
                a + (l.size as f64 - 1.0) * se.powi(2) * l.size as f64
            });
            let var = num / (size as f64 - leaves.len() as f64);
            (var / size as f64).sqrt()
        });
    GroupScore {
        value,
        stderr,
        size,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readme_pooled_stderr_example() {
        // mmlu_stem, llama 0-shot: sizes 10/8/6 → 0.10287 (fixture README).
        let leaf = |value, n: usize| {
            let xs: Vec<f64> = (0..n)
                .map(|i| f64::from(u8::from((i as f64) < value * n as f64)))
                .collect();
            LeafScore {
                value: mean(&xs),
                stderr: Some(mean_stderr(&xs)),
                size: n,
            }
        };
        let g = aggregate_group(&[leaf(0.5, 10), leaf(0.5, 8), leaf(1.0 / 6.0, 6)]);
        assert!((g.stderr.unwrap() - 0.10287).abs() < 1e-5, "{g:?}");
        assert!((g.value - 10.0 / 24.0).abs() < 1e-12);
    }

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(acc(&[-1.0, -1.0, -2.0], 0), 1.0);
        assert_eq!(acc(&[-1.0, -1.0, -2.0], 1), 0.0);
        assert_eq!(
            acc_norm(&[-4.0, -2.0], &["abcd".into(), "a".into()], 0),
            1.0
        );
    }
}
