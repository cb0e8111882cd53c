//! Training metrics: one JSON line per optimizer step in `<output_dir>/metrics.jsonl`, with
//! TRL's names where they apply (`loss`, `grad_norm`, `learning_rate`, `rewards/chosen`, …) and
//! listwise ones per dimension (`listwise/ce/<dim>`, `listwise/top1/<dim>`,
//! `listwise/kendall/<dim>`, `lambda/<dim>`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use lambda_dpo_math::{preference_distribution, rank::top1_agreement, LossOutput};

use crate::train::error::{TrainError, TrainResult};

/// Running means over the lists of one optimizer step (or an evaluation pass).
#[derive(Debug, Default, Clone)]
pub struct Accumulator {
    sums: BTreeMap<String, f64>,
    counts: BTreeMap<String, f64>,
}

impl Accumulator {
    pub fn add(&mut self, key: &str, value: f64) {
        if value.is_finite() {
            *self.sums.entry(key.to_string()).or_default() += value;
            *self.counts.entry(key.to_string()).or_default() += 1.0;
        }
    }

    /// Adds one list's loss statistics (and, with ratings, the per-dimension listwise metrics).
    pub fn add_list(
        &mut self,
        out: &LossOutput,
        policy_logps: &[f64],
        dims: &[String],
        ratings: &[Vec<Option<f64>>],
        lambda: &[f64],
        temperature: f64,
    ) {
        let s = &out.stats;
        self.add("loss", out.loss);
        // The two parts of the objective (the SFT term is 0 unless `loss.sft_weight` > 0).
        self.add("loss/preference", s.preference_loss);
        self.add("loss/sft", s.sft_loss);
        self.add("rewards/chosen", s.chosen_reward);
        self.add("rewards/rejected", s.rejected_reward);
        self.add("rewards/margins", s.margin);
        self.add("rewards/accuracies", f64::from(u8::from(s.reward_accuracy)));
        self.add("logps/chosen", policy_logps[s.chosen]);
        self.add("logps/rejected", policy_logps[s.rejected]);
        self.add("listwise/top1", s.top1_agreement);
        self.add("listwise/kl", s.kl_target_model);
        for (k, dim) in dims.iter().enumerate() {
            if let Some(w) = lambda.get(k) {
                self.add(&format!("lambda/{dim}"), *w);
            }
            // Per-dimension metrics only where every response is rated on that dimension.
            let Some(r) = ratings
                .get(k)
                .and_then(|r| r.iter().copied().collect::<Option<Vec<f64>>>())
            else {
                continue;
            };
            if let Ok(p) = preference_distribution(&r, temperature) {
                let ce: f64 = -p
                    .iter()
                    .zip(&s.model_probs)
                    .map(|(p, q)| {
                        if *p > 0.0 {
                            p * q.max(1e-300).ln()
                        } else {
                            0.0
                        }
                    })
                    .sum::<f64>();
                self.add(&format!("listwise/ce/{dim}"), ce);
                // Ties at the top of the rewards (all of them at step 0) count fractionally.
                self.add(
                    &format!("listwise/top1/{dim}"),
                    top1_agreement(&s.rewards, &r),
                );
                if let Some(tau) = kendall_tau(&s.rewards, &r) {
                    self.add(&format!("listwise/kendall/{dim}"), tau);
                }
            }
        }
    }

    pub fn means(&self) -> BTreeMap<String, f64> {
        self.sums
            .iter()
            .map(|(k, v)| (k.clone(), v / self.counts[k]))
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.sums.is_empty()
    }
}

/// Kendall τ-b between two scorings; `None` when one of them is constant.
pub fn kendall_tau(a: &[f64], b: &[f64]) -> Option<f64> {
    let (mut conc, mut disc, mut ta, mut tb) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    for i in 0..a.len() {
        for j in i + 1..a.len() {
            let x = (a[i] - a[j]).signum() * f64::from(u8::from(a[i] != a[j]));
            let y = (b[i] - b[j]).signum() * f64::from(u8::from(b[i] != b[j]));
            if x == 0.0 && y == 0.0 {
                continue;
            } else if x == 0.0 {
                ta += 1.0;
            } else if y == 0.0 {
                tb += 1.0;
            } else if x == y {
                conc += 1.0;
            } else {
                disc += 1.0;
            }
        }
    }
    let denom = ((conc + disc + ta) * (conc + disc + tb)).sqrt();
    (denom > 0.0).then(|| (conc - disc) / denom)
}

/// Appends JSON lines to `metrics.jsonl` (flushed per line, so a crash loses nothing logged).
#[derive(Debug)]
pub struct MetricsLog {
    file: std::fs::File,
    path: String,
}

impl MetricsLog {
    pub fn open(path: &Path, truncate: bool) -> TrainResult<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(!truncate)
            .write(true)
            .truncate(truncate)
            .open(path)
            .map_err(|source| TrainError::Io {
                path: path.display().to_string(),
                source,
            })?;
        Ok(Self {
            file,
            path: path.display().to_string(),
        })
    }

    /// Opens the log of a run resumed from the checkpoint at `step`: records after that step
    /// (written before a crash that came after the checkpoint, and about to be written again)
    /// are removed first, atomically, so every step appears once. A torn last line goes too.
    pub fn open_resumed(path: &Path, step: u64) -> TrainResult<Self> {
        let io_err = |source| TrainError::Io {
            path: path.display().to_string(),
            source,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(io_err(e)),
        };
        let mut kept = String::with_capacity(text.len());
        for line in text.lines() {
            let at = serde_json::from_str::<serde_json::Value>(line)
                .ok()
                .and_then(|r| r.get("step").and_then(serde_json::Value::as_u64));
            if at.is_some_and(|s| s <= step) {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        if kept.len() != text.len() {
            lambda_dpo_model::io::write_atomic(path, kept.as_bytes())?;
        }
        Self::open(path, false)
    }

    pub fn write(&mut self, record: &serde_json::Value) -> TrainResult<()> {
        let mut line = serde_json::to_vec(record).expect("json");
        line.push(b'\n');
        self.file.write_all(&line).map_err(|source| TrainError::Io {
            path: self.path.clone(),
            source,
        })
    }
}

/// Peak resident set size of this process in MiB (Linux `VmHWM`; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::kendall_tau;

    #[test]
    fn kendall_tau_b_known_values() {
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]), Some(1.0));
        assert_eq!(kendall_tau(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
        // scipy.stats.kendalltau([1,2,3,4],[1,2,2,4]).statistic = 0.9128709291752769
        let t = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 2.0, 4.0]).unwrap();
        assert!((t - 0.912_870_929_175_276_9).abs() < 1e-12);
        assert_eq!(kendall_tau(&[1.0, 1.0], &[2.0, 3.0]), None);
    }
}
