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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::cur::{Aggregator, Compression, Scope};

    fn part(seed: u64) -> String {
        let mut s = String::from(
            "line_item_usage_start_date,line_item_product_code,line_item_usage_type,line_item_line_item_type,line_item_unblended_cost,line_item_net_unblended_cost,product_region_code,product_from_region_code,product_to_region_code,line_item_resource_id,resource_tags\n",
        );
        let mut x = seed;
        for i in 0..300u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let region = ["us-east-1", "eu-west-1", "", "ap-southeast-1"][(x >> 60) as usize % 4];
            let usage = [
                "USE1-EUW1-AWS-Out-Bytes",
                "BoxUsage:m6g.large",
                "TimedStorage-ByteHrs",
            ][(x >> 50) as usize % 3];
            let tag = if x.is_multiple_of(3) {
                r#""{""user_lifeboat_workload"":""checkout""}""#
            } else {
                ""
            };
            let net = if i.is_multiple_of(4) {
                format!("{}.{:04}", x % 7, x % 9999)
            } else {
                String::new()
            };
            s.push_str(&format!(
                "2026-10-01T{:02}:00:00Z,AmazonEC2,{usage},Usage,{}.{:010},{net},{region},,,i-{},{tag}\n",
                i % 24,
                x % 200,
                x % 10_000_000_000,
                x % 40
            ));
        }
        s
    }

    #[test]
    fn same_aggregates_whatever_the_number_of_threads() {
        let parts: Vec<String> = (1..=7).map(part).collect();
        let scope = Scope {
            tag_key: "user_lifeboat_workload".into(),
            workload: "checkout".into(),
            resources: ["i-3".to_owned()].into_iter().collect(),
        };
        let read = |_: usize, p: &String| -> Result<Aggregates, crate::cur::ParseError> {
            let mut agg = Aggregator::new(Some(scope.clone()), vec![], false);
            agg.read("p.csv", p.as_bytes(), Compression::None)?;
            Ok(agg.finish())
        };
        let one = run(&parts, 1, Aggregates::empty(&[]), read)
            .ok()
            .unwrap()
            .unwrap();
        // One aggregator over every part in order: the reference.
        let mut whole = Aggregator::new(Some(scope.clone()), vec![], false);
        for p in &parts {
            whole
                .read("p.csv", p.as_bytes(), Compression::None)
                .unwrap();
        }
        let whole = whole.finish();
        assert_eq!(one.total, whole.total);
        assert_eq!(one.cells, whole.cells);
        assert_eq!(one.transfers, whole.transfers);
        assert_eq!(one.rows, 2_100);
        for threads in [2, 3, 4, 8] {
            let n = run(&parts, threads, Aggregates::empty(&[]), read)
                .ok()
                .unwrap()
                .unwrap();
            assert_eq!(n, one, "{threads} threads");
        }
        // The first failed part in manifest order is the one named.
        let failing = |i: usize, p: &String| {
            if i == 2 || i == 5 {
                Err(i)
            } else {
                read(i, p).map_err(|_| 99)
            }
        };
        for threads in [1, 2, 4] {
            assert_eq!(
                run(&parts, threads, Aggregates::empty(&[]), failing).err(),
                Some((2, 2))
            );
        }
    }
}
