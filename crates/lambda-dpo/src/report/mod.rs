//! The demo's human-readable output: [`svg`] draws line, scatter and bar charts as standalone
//! SVG, [`html`] assembles title, paragraphs, tables and those charts into one self-contained
//! page. Both are pure string builders (only [`html::Report::write`] touches the disk) with no
//! dependencies, and deterministic, so the same results always give the same bytes.
//!
//! What does not live here: computing what is reported (the demo's evaluation, and the front
//! and hypervolume math in [`lambda_dpo_math::pareto`]) and `results.json`, which is serde.

pub mod html;
pub mod svg;

pub use html::Report;
pub use svg::{BarChart, Connect, LineChart, ScatterChart};
