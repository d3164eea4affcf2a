//! The parts of a month read concurrently: a fixed pool of threads takes the parts in
//! manifest order from one counter, each part aggregated on its own, and the results
//! merged in manifest order with exact decimal sums ([`Aggregates::merge`]) — the same
//! aggregates whatever the number of threads. A failure stops further parts from being
//! started; the error reported is that of the first failed part in manifest order, so
//! it does not depend on timing either.

use std::num::NonZeroUsize;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::cur::Aggregates;

/// Memory one reader may hold: a ranged-GET buffer plus a few decoded pages per column.
pub const PER_WORKER_BYTES: u64 = 24 * 1024 * 1024;

/// How many parts to read at once: the cores available, no more than `parts`, and no
/// more than `memory_bytes` (half of it, the rest for the runtime and the report) holds.
pub fn workers(parts: usize, memory_bytes: Option<u64>) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let by_memory = memory_bytes.map_or(usize::MAX, |m| {
        usize::try_from(m / 2 / PER_WORKER_BYTES).unwrap_or(usize::MAX)
    });
    cores.min(parts).min(by_memory).max(1)
}

/// Why a merge failed: the sums overflow a decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// Reads every part with `read` on `workers` threads; `Ok` holds the merged aggregates
/// (`empty` when there are no parts), `Err` the first failed part's index and error.
pub fn run<P, E, F>(
    parts: &[P],
    workers: usize,
    empty: Aggregates,
    read: F,
) -> Result<Result<Aggregates, Overflow>, (usize, E)>
where
    P: Sync,
    E: Send,
    F: Fn(usize, &P) -> Result<Aggregates, E> + Sync,
{
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Result<Aggregates, E>>>> =
        Mutex::new((0..parts.len()).map(|_| None).collect());
    let work = || {
        loop {
            if failed.load(Ordering::Acquire) {
                return;
            }
            let i = next.fetch_add(1, Ordering::AcqRel);
            let Some(part) = parts.get(i) else { return };
            let r = read(i, part);
            if r.is_err() {
                failed.store(true, Ordering::Release);
            }
            if let Ok(mut all) = results.lock()
                && let Some(slot) = all.get_mut(i)
            {
                *slot = Some(r);
            }
        }
    };
    let threads = workers.clamp(1, parts.len().max(1));
    if threads == 1 {
        work();
    } else {
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(work);
            }
        });
    }
    let results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut merged = empty;
    let mut parts_ok = Vec::with_capacity(results.len());
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Some(Ok(a)) => parts_ok.push(a),
            Some(Err(e)) => return Err((i, e)),
            // Not started because an earlier-claimed part failed: that error is found
            // first only if its index is lower, and claims go in index order, so a
            // never-started part always comes after the failed one.
            None => {}
        }
    }
    for a in parts_ok {
        match merged.merge(a) {
            Some(m) => merged = m,
            None => return Ok(Err(Overflow)),
        }
    }
    Ok(Ok(merged))
}
