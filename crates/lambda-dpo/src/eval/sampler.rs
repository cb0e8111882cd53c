//! lm-eval's default few-shot sampler: Python's `random.Random(seed).sample(pool, k)`,
//! bit for bit (MT19937 seeded by `init_by_array`, `_randbelow` by rejection on
//! `getrandbits`, and `sample`'s two selection strategies).
//!
//! lm-eval keeps one `Random(fewshot_random_seed = 1234)` per task and calls `sample(pool, k)`
//! once per evaluated document, in document order, so the state carries across documents.

/// Python's `random.Random` (the parts `sample` needs).
#[derive(Debug, Clone)]
pub struct PyRandom {
    mt: Box<[u32; 624]>,
    index: usize,
}

impl PyRandom {
    /// `random.Random(seed)` for a non-negative integer seed below 2³².
    pub fn new(seed: u32) -> Self {
        let mut r = PyRandom {
            mt: Box::new([0; 624]),
            index: 624,
        };
        r.init_by_array(&[seed]);
        r
    }

    fn init_genrand(&mut self, s: u32) {
        self.mt[0] = s;
        for i in 1..624 {
            let prev = self.mt[i - 1];
            self.mt[i] = 1_812_433_253u32
                .wrapping_mul(prev ^ (prev >> 30))
                .wrapping_add(i as u32);
        }
        self.index = 624;
    }

    fn init_by_array(&mut self, key: &[u32]) {
        self.init_genrand(19_650_218);
        let (mut i, mut j) = (1usize, 0usize);
        for _ in 0..624.max(key.len()) {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_664_525))
                .wrapping_add(key[j])
                .wrapping_add(j as u32);
            i += 1;
            j += 1;
            if i >= 624 {
                self.mt[0] = self.mt[623];
                i = 1;
            }
            if j >= key.len() {
                j = 0;
            }
        }
        for _ in 0..623 {
            let prev = self.mt[i - 1];
            self.mt[i] = (self.mt[i] ^ (prev ^ (prev >> 30)).wrapping_mul(1_566_083_941))
                .wrapping_sub(i as u32);
            i += 1;
            if i >= 624 {
                self.mt[0] = self.mt[623];
                i = 1;
            }
        }
        self.mt[0] = 0x8000_0000;
    }

    fn genrand_u32(&mut self) -> u32 {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        if self.index >= 624 {
            for k in 0..624 {
                let y = (self.mt[k] & UPPER) | (self.mt[(k + 1) % 624] & LOWER);
                let mag = if y & 1 == 1 { 0x9908_b0df } else { 0 };
                self.mt[k] = self.mt[(k + 397) % 624] ^ (y >> 1) ^ mag;
            }
            self.index = 0;
        }
        let mut y = self.mt[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// `getrandbits(k)` for `k ≤ 32`.
    fn getrandbits(&mut self, k: u32) -> u32 {
        if k == 0 {
            return 0;
        }
        self.genrand_u32() >> (32 - k)
    }

    /// `_randbelow(n)`: rejection sampling on `n.bit_length()` bits.
    fn randbelow(&mut self, n: usize) -> usize {
        let k = usize::BITS - n.leading_zeros();
        loop {
            let r = self.getrandbits(k) as usize;
            if r < n {
                return r;
            }
        }
    }

    /// The indices `random.sample(range(n), k)` returns, in order.
    ///
    /// ```text
    /// setsize = 21 (+ 4^⌈log₄(3k)⌉ if k > 5)
    /// n ≤ setsize: partial Fisher–Yates on a copy;   else: redraw until unseen
    /// ```
    pub fn sample(&mut self, n: usize, k: usize) -> Vec<usize> {
        assert!(k <= n, "sample larger than population");
        let mut setsize = 21usize;
        if k > 5 {
            let mut p = 1usize;
            // 4 ** ceil(log(3k, 4))
            while p < 3 * k {
                p *= 4;
            }
            setsize += p;
        }
        if n <= setsize {
            let mut pool: Vec<usize> = (0..n).collect();
            (0..k)
                .map(|i| {
                    let j = self.randbelow(n - i);
                    let picked = pool[j];
                    pool[j] = pool[n - i - 1];
                    picked
                })
                .collect()
        } else {
            let mut selected = std::collections::HashSet::new();
            (0..k)
                .map(|_| {
                    let mut j = self.randbelow(n);
                    while selected.contains(&j) {
                        j = self.randbelow(n);
                    }
                    selected.insert(j);
                    j
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_cpython() {
        // r = random.Random(1234); r.getrandbits(32); [r.sample(range(200), 3) for _ in 0..3];
        // r.sample(range(10), 4); r.sample(range(100), 8)   (CPython 3.11)
        let mut r = PyRandom::new(1234);
        assert_eq!(r.getrandbits(32), 4_150_886_329);
        assert_eq!(r.sample(200, 3), [199, 112, 29]);
        assert_eq!(r.sample(200, 3), [1, 23, 149]);
        assert_eq!(r.sample(200, 3), [8, 171, 177]);
        assert_eq!(r.sample(10, 4), [1, 9, 5, 8]);
        assert_eq!(r.sample(100, 8), [2, 3, 44, 82, 79, 61, 78, 59]);
    }
}
