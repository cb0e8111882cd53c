//! Collecting the gradients of a list of trainable vars: from one backward, summed over several
//! (chunks, checkpointed stages), and made dense for the optimizer. Every gradient is detached,
//! so no backward's graph outlives the step that produced it.
//!
//! What does not live here: the backward passes themselves (the trainer's surrogate,
//! [`crate::checkpoint`]).

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use crate::error::Result;

/// `∂loss/∂v` for every `v` in `vars` (in order; `None` where `loss` does not depend on it),
/// from one backward through `loss`'s whole graph.
pub fn backward_grads(loss: &Tensor, vars: &[Var]) -> Result<Vec<Option<Tensor>>> {
    let mut grads = vec![None; vars.len()];
    accumulate(&loss.backward()?, &mut grads, vars)?;
    Ok(grads)
}

/// `grads[k] += store[vars[k]]` where the store has one.
pub fn accumulate(store: &GradStore, grads: &mut [Option<Tensor>], vars: &[Var]) -> Result<()> {
    let add = vars
        .iter()
        .map(|v| store.get(v.as_tensor()).map(Tensor::detach))
        .collect();
    add_grads(grads, add)
}

/// `acc[k] += add[k]` where `add` has one.
pub fn add_grads(acc: &mut [Option<Tensor>], add: Vec<Option<Tensor>>) -> Result<()> {
    for (slot, g) in acc.iter_mut().zip(add) {
        if let Some(g) = g {
            *slot = Some(match slot.take() {
                Some(a) => (a + g)?,
                None => g,
            });
        }
    }
    Ok(())
}

/// One tensor per var: the gradient, or zeros where there is none (what AdamW takes).
pub fn dense_grads(grads: Vec<Option<Tensor>>, vars: &[Var]) -> Result<Vec<Tensor>> {
    Ok(grads
        .into_iter()
        .zip(vars)
        .map(|(g, v)| g.map_or_else(|| v.as_tensor().zeros_like(), Ok))
        .collect::<candle_core::Result<Vec<_>>>()?)
}
