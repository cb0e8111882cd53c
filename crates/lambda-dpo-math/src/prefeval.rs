//! Preference evaluation: how well a model's implicit rewards agree with each dimension's
//! ratings on held-out lists (what `lambda-dpo eval-prefs` reports).
//!
//! For one list with implicit rewards `z_i = β(ℓ_θ(y_i) − ℓ_ref(y_i))`, the model's list
//! distribution `P_θ = softmax(z)` (paper Eq. 7), and the ratings `r_k` of dimension k:
//!
//! ```text
//! cross-entropy   CE_k   = − Σ_i p*(k)_i log P_θ(i),   p*(k) = softmax(r_k / T)   (Eq. 10 at λ = e_k)
//! top-1           top1_k = [the highest reward is one of r_k's best]           (ties fractional)
//! pairwise        acc_k  = #{ i,j : r_k,i > r_k,j and z_i > z_j } / #{ r_k,i > r_k,j }
//! Kendall         τ_k    = τ-b(z, r_k)                                          (scipy's default)
//! ```
//!
//! Over lists: CE, top-1 and τ are means over the lists where they are defined (τ is undefined
//! when the list's ratings or rewards are all equal); pairwise accuracy pools the ordered pairs of
//! all lists (so a list of 8 weighs more than a pair, as in reward-model benchmarks). A list
//! counts for dimension k only when every response is rated on k; the others are counted as
//! skipped, never silently dropped. The mixed target p^λ gets the same CE and top-1.

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::rank::{kendall_tau_b, top1_agreement};
use crate::special::{check_finite, check_len, log_softmax};
use crate::targets::preference_distribution;

/// What one dimension (or the mixed target) scored over a set of lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DimensionScores {
    /// Lists rated on every response on this dimension (the ones that count).
    pub lists: usize,
    /// Lists left out because some response has no rating on this dimension.
    pub skipped: usize,
    /// Mean listwise cross-entropy `−Σ p* log P_θ` (ln N at θ = ref).
    pub cross_entropy: Option<f64>,
    /// Mean top-1 agreement.
    pub top1: Option<f64>,
    /// Pooled pairwise accuracy, `None` when no list orders any pair.
    pub pairwise_accuracy: Option<f64>,
    /// Ordered pairs behind `pairwise_accuracy`.
    pub pairs: usize,
    /// Mean Kendall τ-b over the lists where it is defined.
    pub kendall_tau: Option<f64>,
    /// Lists behind `kendall_tau`.
    pub tau_lists: usize,
}

/// Running sums for one dimension.
#[derive(Debug, Clone, Default)]
struct Sums {
    lists: usize,
    skipped: usize,
    ce: f64,
    top1: f64,
    agree: usize,
    pairs: usize,
    tau: f64,
    tau_lists: usize,
}

impl Sums {
    fn add(&mut self, rewards: &[f64], log_p: &[f64], target: &[f64], grades: Option<&[f64]>) {
        self.lists += 1;
        self.ce -= target.iter().zip(log_p).map(|(p, l)| p * l).sum::<f64>();
        self.top1 += top1_agreement(rewards, target);
        // Pairs and τ come from the grades (ratings); for the mixed target, from p^λ itself.
        let grades = grades.unwrap_or(target);
        for i in 0..grades.len() {
            for j in 0..grades.len() {
                if grades[i] > grades[j] {
                    self.pairs += 1;
                    if rewards[i] > rewards[j] {
                        self.agree += 1;
                    }
                }
            }
        }
        if let Some(t) = kendall_tau_b(rewards, grades) {
            self.tau += t;
            self.tau_lists += 1;
        }
    }

    fn finish(&self) -> DimensionScores {
        let mean = |s: f64, n: usize| (n > 0).then(|| s / n as f64);
        DimensionScores {
            lists: self.lists,
            skipped: self.skipped,
            cross_entropy: mean(self.ce, self.lists),
            top1: mean(self.top1, self.lists),
            pairwise_accuracy: (self.pairs > 0).then(|| self.agree as f64 / self.pairs as f64),
            pairs: self.pairs,
            kendall_tau: mean(self.tau, self.tau_lists),
            tau_lists: self.tau_lists,
        }
    }
}

/// Accumulates [`DimensionScores`] for every dimension and the mixed target over lists.
#[derive(Debug, Clone)]
pub struct PrefEval {
    temperature: f64,
    dims: Vec<Sums>,
    mixed: Sums,
}

impl PrefEval {
    /// `dims` preference dimensions; `temperature` is T of `p*(k) = softmax(r_k / T)` (0 = argmax).
    pub fn new(dims: usize, temperature: f64) -> Self {
        Self {
            temperature,
            dims: vec![Sums::default(); dims],
            mixed: Sums::default(),
        }
    }

    /// One list: its implicit rewards, `ratings[k][i]` and, when the list has one, the mixed
    /// target p^λ it was evaluated with.
    ///
    /// # Errors
    /// Non-finite rewards or ratings, or lengths that do not match the list.
    pub fn add(
        &mut self,
        rewards: &[f64],
        ratings: &[Vec<Option<f64>>],
        mixed_target: Option<&[f64]>,
    ) -> Result<()> {
        check_finite("rewards", rewards)?;
        check_len("ratings", ratings.len(), self.dims.len(), "dimension")?;
        let log_p = log_softmax(rewards);
        for (sums, r) in self.dims.iter_mut().zip(ratings) {
            check_len("ratings", r.len(), rewards.len(), "response")?;
            let Some(grades) = r.iter().copied().collect::<Option<Vec<f64>>>() else {
                sums.skipped += 1;
                continue;
            };
            check_finite("ratings", &grades)?;
            let target = preference_distribution(&grades, self.temperature)?;
            sums.add(rewards, &log_p, &target, Some(&grades));
        }
        if let Some(target) = mixed_target {
            check_len("target", target.len(), rewards.len(), "response")?;
            self.mixed.add(rewards, &log_p, target, None);
        }
        Ok(())
    }

    /// Per-dimension scores, in the dimensions' order.
    pub fn dimensions(&self) -> Vec<DimensionScores> {
        self.dims.iter().map(Sums::finish).collect()
    }

    /// Scores against the mixed targets (`lists == 0` when none was given).
    pub fn mixed(&self) -> DimensionScores {
        self.mixed.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_rewards_score_chance() {
        // θ = ref: every implicit reward is 0, so CE = ln N and top-1 = |best| / N.
        let mut e = PrefEval::new(2, 1.0);
        let ratings = vec![
            vec![Some(5.0), Some(3.0), Some(1.0)],
            vec![Some(2.0), None, Some(2.0)],
        ];
        e.add(&[0.0; 3], &ratings, Some(&[0.5, 0.3, 0.2])).unwrap();
        let d = e.dimensions();
        assert!((d[0].cross_entropy.unwrap() - 3f64.ln()).abs() < 1e-12);
        assert!((d[0].top1.unwrap() - 1.0 / 3.0).abs() < 1e-12);
        // Ties in the rewards are misses, and τ is undefined for constant rewards.
        assert_eq!(d[0].pairwise_accuracy, Some(0.0));
        assert_eq!(d[0].pairs, 3);
        assert_eq!(d[0].kendall_tau, None);
        assert_eq!((d[1].lists, d[1].skipped), (0, 1));
        assert_eq!(d[1].cross_entropy, None);
        assert_eq!(e.mixed().lists, 1);
    }

    #[test]
    fn a_perfect_ranker_agrees_everywhere() {
        let mut e = PrefEval::new(1, 1.0);
        e.add(
            &[3.0, 2.0, 1.0],
            &[vec![Some(5.0), Some(4.0), Some(1.0)]],
            None,
        )
        .unwrap();
        e.add(&[-1.0, 1.0], &[vec![Some(1.0), Some(2.0)]], None)
            .unwrap();
        let d = &e.dimensions()[0];
        assert_eq!(d.top1, Some(1.0));
        assert_eq!(d.pairwise_accuracy, Some(1.0));
        assert_eq!(d.pairs, 4);
        assert_eq!(d.kendall_tau, Some(1.0));
        assert_eq!(e.mixed().lists, 0);
        // CE by hand for the pair: p* = softmax([1, 2]), P = softmax([−1, 1]).
        let ps = [1f64.exp(), 2f64.exp()];
        let ps = [ps[0] / (ps[0] + ps[1]), ps[1] / (ps[0] + ps[1])];
        let lz = (1f64.exp() + (-1f64).exp()).ln();
        let ce_pair = -(ps[0] * (-1.0 - lz) + ps[1] * (1.0 - lz));
        let p3 = preference_distribution(&[5.0, 4.0, 1.0], 1.0).unwrap();
        let l3 = log_softmax(&[3.0, 2.0, 1.0]);
        let ce3: f64 = -p3.iter().zip(&l3).map(|(p, l)| p * l).sum::<f64>();
        assert!((d.cross_entropy.unwrap() - (ce_pair + ce3) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn bad_lengths_are_errors() {
        let mut e = PrefEval::new(1, 1.0);
        assert!(e.add(&[0.0, 1.0], &[vec![Some(1.0)]], None).is_err());
        assert!(e.add(&[0.0, 1.0], &[], None).is_err());
        assert!(e
            .add(&[f64::NAN, 1.0], &[vec![Some(1.0), Some(2.0)]], None)
            .is_err());
    }
}
