//! `lambda-dpo`: the library between the model crate and the binary — data formats and their
//! rendering into token lists ([`data`]), the trainer ([`train`]), a synthetic world with
//! known rewards ([`world`]), the report writer ([`report`]) and the demo that ties them
//! together ([`demo`]), benchmark evaluation as lm-eval-harness computes it ([`eval`]), and the performance-driven λ
//! scheduler fed by those evaluations ([`schedule`]).

pub mod data;
pub mod demo;
pub mod eval;
pub mod report;
pub mod schedule;
pub mod train;
pub mod world;
