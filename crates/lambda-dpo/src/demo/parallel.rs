//! Independent demo jobs (the preference runs, the evaluations) spread over worker threads.
//!
//! The demo's model is too small for two compute threads to pay inside one job (its matmuls
//! are a few hundred rows), so a 2-core machine is used by running two jobs at once, each on
//! one core. Results keep the input order and do not depend on the number of workers: every
//! job seeds its own randomness.

use rayon::prelude::*;

/// Runs `f` on every item with at most `workers` at a time; returns the results in item
/// order, or an error of a failed item (no new item starts after a failure).
///
/// The jobs run in a rayon pool of `workers` threads, so the row-parallel kernels inside a
/// job run in that pool too: on the job's own thread, or on an idle worker, instead of
/// queueing behind the other jobs on the global pool (sized to one thread for the demo).
pub fn map_parallel<T, R, E, F>(workers: usize, items: Vec<T>, f: F) -> Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
    F: Fn(T) -> Result<R, E> + Sync,
{
    let workers = workers.clamp(1, items.len().max(1));
    let pool = (workers > 1)
        .then(|| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .build()
                .ok()
        })
        .flatten();
    match pool {
        // One item per task, so a long job never holds a queue of others behind it.
        Some(pool) => pool.install(|| items.into_par_iter().with_max_len(1).map(&f).collect()),
        // One worker, or no threads to be had: one at a time on this thread.
        None => items.into_iter().map(f).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_matches_serial() {
        let items: Vec<u64> = (0..23).collect();
        let f = |x: u64| -> Result<u64, String> {
            // Uneven work so that workers finish out of order.
            let mut acc = x;
            for i in 0..(x % 5) * 20_000 {
                acc = acc.wrapping_mul(6364136223846793005).wrapping_add(i);
            }
            Ok(acc ^ x)
        };
        let serial = map_parallel(1, items.clone(), f).unwrap();
        for workers in [2, 3, 8, 100] {
            assert_eq!(map_parallel(workers, items.clone(), f).unwrap(), serial);
        }
    }

    #[test]
    fn reports_an_error_and_stops_starting_jobs() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let started = AtomicUsize::new(0);
        let r = map_parallel(2, (0..50).collect::<Vec<u32>>(), |x| {
            started.fetch_add(1, Ordering::SeqCst);
            if x == 3 {
                Err(format!("item {x} failed"))
            } else {
                std::thread::sleep(std::time::Duration::from_millis(2));
                Ok(x)
            }
        });
        assert_eq!(r.unwrap_err(), "item 3 failed");
        assert!(started.load(Ordering::SeqCst) < 50);
    }

    #[test]
    fn empty_input() {
        let r: Result<Vec<u8>, ()> = map_parallel(4, Vec::<u8>::new(), Ok);
        assert!(r.unwrap().is_empty());
    }
}
