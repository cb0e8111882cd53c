//! What loading did to the data, counted: nothing is dropped without a line here.
//!
//! [`LoadReport`] is filled by the loaders and shown by the CLI (human text on stderr, or
//! JSON); [`Skips`] keeps the count of skipped records by kind with the first few messages.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::error::DataError;

/// How many messages (skips, dropped lists) are kept as examples.
pub const EXAMPLES: usize = 5;

/// Records skipped under `--skip-invalid`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Skips {
    pub count: usize,
    /// Count by error kind (`json`, `rating`, `too-few-responses`, …).
    pub by_kind: BTreeMap<String, usize>,
    /// The first few errors, in full.
    pub first: Vec<String>,
}

impl Skips {
    pub fn add(&mut self, e: &DataError) {
        self.count += 1;
        *self.by_kind.entry(e.kind.name().to_string()).or_default() += 1;
        if self.first.len() < EXAMPLES {
            self.first.push(e.to_string());
        }
    }
}

/// Counts of one load.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LoadReport {
    /// Detected (or forced) format name.
    pub format: String,
    /// JSON records read.
    pub records: usize,
    /// Lists (or SFT conversations) kept.
    pub kept: usize,
    pub skipped: Skips,
    /// UltraFeedback rows left out by `drop_truthful_qa`.
    pub filtered_truthful_qa: usize,
    /// Responses removed because an identical one was in the same list (ratings averaged).
    pub duplicates_removed: usize,
    /// Lists that had at least one duplicate.
    pub lists_with_duplicates: usize,
    /// Lists left with fewer than 2 responses (after de-duplication, or HelpSteer prompts with
    /// one response): not trainable, dropped and listed.
    pub dropped_too_few: usize,
    /// Where the first few of those are (`file:line`).
    pub dropped_examples: Vec<String>,
    /// SFT conversations with no trained token left after truncation.
    pub dropped_no_target: usize,
    /// Lists (or conversations) cut by `max_length` / `max_prompt_length`.
    pub truncated: usize,
    /// Responses whose text is empty (kept: they are legitimate, if poor, answers).
    pub empty_responses: usize,
    /// Missing ratings replaced by the missing policy's default.
    pub missing_filled: usize,
    /// HelpSteer lists whose prompt already formed an earlier, non-adjacent list.
    pub helpsteer_repeats: usize,
}

impl LoadReport {
    pub fn drop_too_few(&mut self, source: &str) {
        self.dropped_too_few += 1;
        if self.dropped_examples.len() < EXAMPLES {
            self.dropped_examples.push(source.to_string());
        }
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "format {}: {} records read, {} kept",
            self.format, self.records, self.kept
        )?;
        let mut line = |label: &str, n: usize| -> fmt::Result {
            if n > 0 {
                writeln!(f, "  {label}: {n}")?;
            }
            Ok(())
        };
        line("filtered (source truthful_qa)", self.filtered_truthful_qa)?;
        line("duplicate responses merged", self.duplicates_removed)?;
        line("lists dropped with N < 2", self.dropped_too_few)?;
        line(
            "conversations with nothing to train after truncation",
            self.dropped_no_target,
        )?;
        line("truncated", self.truncated)?;
        line("empty responses (kept)", self.empty_responses)?;
        line(
            "missing ratings filled with the default",
            self.missing_filled,
        )?;
        line(
            "HelpSteer prompts repeated non-adjacently",
            self.helpsteer_repeats,
        )?;
        if !self.dropped_examples.is_empty() {
            writeln!(f, "  N < 2 at: {}", self.dropped_examples.join(", "))?;
        }
        if self.skipped.count > 0 {
            let kinds: Vec<String> = self
                .skipped
                .by_kind
                .iter()
                .map(|(k, n)| format!("{k} {n}"))
                .collect();
            writeln!(
                f,
                "  skipped (invalid): {} ({})",
                self.skipped.count,
                kinds.join(", ")
            )?;
            for m in &self.skipped.first {
                for (i, l) in m.lines().enumerate() {
                    writeln!(f, "    {}{l}", if i == 0 { "- " } else { "  " })?;
                }
            }
            if self.skipped.count > self.skipped.first.len() {
                writeln!(
                    f,
                    "    … and {} more",
                    self.skipped.count - self.skipped.first.len()
                )?;
            }
        }
        Ok(())
    }
}
