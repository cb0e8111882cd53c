//! A small, version-stable random number generator: xoshiro256** seeded through SplitMix64,
//! plus the few distributions the samplers need (uniform, normal, gamma, Dirichlet).
//!
//! Written here rather than taken from `rand` so that (a) the state is four `u64`s that serde
//! writes into a checkpoint and a resumed run continues the exact same stream, and (b) a
//! dependency upgrade can never change which λ a given seed draws. The algorithms are the
//! published reference ones (Blackman & Vigna 2018; Steele et al. 2014; Marsaglia & Tsang 2000),
//! and a test pins the first outputs for seed 0.

use serde::{Deserialize, Serialize};

/// SplitMix64 step: used only to expand a 64-bit seed into xoshiro's 256-bit state.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// xoshiro256** generator. `Clone` + serde: copying or serialising it captures the stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// Seed from one `u64` (any value, 0 included: SplitMix64 never yields the all-zero state
    /// in four consecutive outputs).
    pub fn seed_from_u64(seed: u64) -> Self {
        let mut sm = seed;
        Self {
            s: [
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
                splitmix64(&mut sm),
            ],
        }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in `[0, 1)` with 53 random bits.
    pub fn uniform(&mut self) -> f64 {
        // The top 53 bits: every representable multiple of 2^-53 in [0, 1) equally likely.
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `(0, 1)`: never 0, so `ln` of it is finite.
    pub fn uniform_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform integer in `[0, n)` (Lemire's multiply-shift with rejection, unbiased). `n > 0`.
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0, "Rng::below needs n > 0");
        let threshold = n.wrapping_neg() % n;
        loop {
            let m = (self.next_u64() as u128) * (n as u128);
            if (m as u64) >= threshold {
                return (m >> 64) as u64;
            }
        }
    }

    /// Standard normal by Marsaglia's polar method. The second variate is discarded so the state
    /// stays four integers (no cached spare to serialise).
    pub fn normal(&mut self) -> f64 {
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                return u * (-2.0 * s.ln() / s).sqrt();
            }
        }
    }

    /// `log X` for `X ~ Gamma(shape, 1)`, `shape > 0`.
    ///
    /// Marsaglia–Tsang for shape ≥ 1; for shape < 1 the boost `X = Y · U^{1/shape}` with
    /// `Y ~ Gamma(shape + 1)`, done in log space so tiny shapes (where X underflows to 0) still
    /// give a usable value. Returning the log lets Dirichlet normalise with a softmax.
    pub fn log_gamma_variate(&mut self, shape: f64) -> f64 {
        debug_assert!(shape > 0.0 && shape.is_finite());
        if shape < 1.0 {
            let log_y = self.log_gamma_variate(shape + 1.0);
            return log_y + self.uniform_open().ln() / shape;
        }
        let d = shape - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = 1.0 + c * x;
            if v <= 0.0 {
                continue;
            }
            let v = v * v * v;
            let u = self.uniform_open();
            // Squeeze first (cheap), then the exact log acceptance test.
            if u < 1.0 - 0.0331 * x * x * x * x || u.ln() < 0.5 * x * x + d * (1.0 - v + v.ln()) {
                return d.ln() + v.ln();
            }
        }
    }

    /// A draw from `Dirichlet(alpha)` (every `alpha_k > 0`): normalised gamma variates.
    pub fn dirichlet(&mut self, alpha: &[f64]) -> Vec<f64> {
        let logs: Vec<f64> = alpha.iter().map(|&a| self.log_gamma_variate(a)).collect();
        crate::special::softmax(&logs)
    }

    /// Index drawn with the given probabilities (inverse CDF; `probs` sums to 1). The last index
    /// absorbs rounding, as the authors' table sampler does.
    pub fn categorical(&mut self, probs: &[f64]) -> usize {
        let r = self.uniform();
        let mut cum = 0.0;
        for (i, &p) in probs.iter().enumerate() {
            cum += p;
            if r < cum {
                return i;
            }
        }
        probs.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_and_xoshiro_reference_values() {
        // SplitMix64 from seed 0: first output is the published 0xE220A8397B1DCDAF.
        let mut sm = 0u64;
        assert_eq!(splitmix64(&mut sm), 0xE220_A839_7B1D_CDAF);
        // Pin our stream: changing these values breaks every seeded run's reproducibility.
        let mut rng = Rng::seed_from_u64(0);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            first,
            vec![
                0x99EC_5F36_CB75_F2B4,
                0xBF6E_1F78_4956_452A,
                0x1A5F_849D_4933_E6E0
            ]
        );
        // Reference vector of the C implementation for the raw state [1, 2, 3, 4].
        let mut raw = Rng { s: [1, 2, 3, 4] };
        let got: Vec<u64> = (0..4).map(|_| raw.next_u64()).collect();
        assert_eq!(got, vec![11520, 0, 1509978240, 1215971899390074240]);
    }

    #[test]
    fn below_is_in_range_and_uniform_enough() {
        let mut rng = Rng::seed_from_u64(7);
        let mut counts = [0usize; 5];
        for _ in 0..50_000 {
            counts[rng.below(5) as usize] += 1;
        }
        for c in counts {
            assert!((c as f64 - 10_000.0).abs() < 500.0, "{counts:?}");
        }
    }

    #[test]
    fn gamma_mean_and_variance() {
        let mut rng = Rng::seed_from_u64(11);
        for &shape in &[0.3, 1.0, 2.5] {
            let n = 40_000;
            let xs: Vec<f64> = (0..n).map(|_| rng.log_gamma_variate(shape).exp()).collect();
            let mean = xs.iter().sum::<f64>() / n as f64;
            let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
            // Gamma(k, 1): mean k, variance k. 5 standard errors.
            let se_mean = (shape / n as f64).sqrt();
            assert!(
                (mean - shape).abs() < 5.0 * se_mean,
                "shape {shape}: mean {mean}"
            );
            assert!(
                (var - shape).abs() < 0.1 * shape.max(0.5),
                "shape {shape}: var {var}"
            );
        }
    }
}
