//! `lambda-dpo`: the library between the model crate and the binary — data formats and their
//! rendering into token lists ([`data`]) and the trainer ([`train`]); evaluation arrives with
//! its issue.

pub mod data;
pub mod train;
