//! Independent demo jobs (the preference runs, the evaluations) spread over worker threads.
//!
//! The demo's model is too small for two compute threads to pay inside one job (its matmuls
//! are a few hundred rows), so a 2-core machine is used by running two jobs at once, each on
//! one core. Results keep the input order and do not depend on the number of workers: every
//! job seeds its own randomness.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `f` on every item with at most `workers` at a time; returns the results in item
/// order, or the error of the earliest failed item (no new item starts after a failure).
pub fn map_parallel<T, R, E, F>(workers: usize, items: Vec<T>, f: F) -> Result<Vec<R>, E>
where
    T: Send,
    R: Send,
    E: Send,
    F: Fn(T) -> Result<R, E> + Sync,
{
    let n = items.len();
    let workers = workers.clamp(1, n.max(1));
    if workers == 1 {
        return items.into_iter().map(f).collect();
    }
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<Result<R, E>>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                if failed.load(Ordering::SeqCst) {
                    break;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let item = lock(&slots[i]).take().expect("each item is taken once");
                let r = f(item);
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                *lock(&results[i]) = Some(r);
            });
        }
    });
    let mut out = Vec::with_capacity(n);
    for r in results {
        match r.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(Ok(v)) => out.push(v),
            Some(Err(e)) => return Err(e),
            // Not started because an earlier-started item failed; that error comes later in
            // order, so keep looking for it.
            None => continue,
        }
    }
    Ok(out)
}

/// A poisoned lock only means another job panicked; the data (an `Option`) is still whole.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
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
