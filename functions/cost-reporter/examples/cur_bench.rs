//! Benchmarks the parse/aggregate core on a CUR csv.gz, from a local file or from S3
//! (endpoint from `AWS_ENDPOINT_URL`), and prints one JSON line: rows, seconds, rows/s,
//! peak RSS (VmHWM) and the totals, for `scripts/bench-cost` to compare with DuckDB.
//!
//! ```sh
//! cargo run --release -p cost-reporter --example cur_bench -- --file cur.csv.gz [--workload checkout]
//! cargo run --release -p cost-reporter --example cur_bench -- --s3 bucket/key.csv.gz
//! ```

// A benchmark binary: failing loudly on a bad argument is what it should do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Instant;

use cost_reporter::cur::{Aggregator, Compression, Scope};

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (mut file, mut s3, mut workload) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--file" => file = args.next(),
            "--s3" => s3 = args.next(),
            "--workload" => workload = args.next(),
            other => panic!("unknown argument {other}"),
        }
    }
    let scope = workload.map(|w| Scope {
        tag_key: cost_reporter::DEFAULT_TAG_KEY.to_owned(),
        workload: w,
        resources: HashSet::from(["checkout-db".to_owned()]),
    });
    let mut agg = Aggregator::new(scope, vec![], false);
    let started = Instant::now();
    let name;
    if let Some(path) = file {
        let f = std::fs::File::open(&path).expect("open");
        let c = Compression::of_key(&path).expect(".csv or .csv.gz");
        agg.read(&path, f, c).expect("parse");
        name = path;
    } else if let Some(loc) = s3 {
        let (bucket, key) = loc.split_once('/').expect("--s3 bucket/key");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        agg = rt.block_on(async {
            let config = lifeboat::aws::load().await;
            let s3 = cost_reporter::s3_client(&config, false);
            let obj = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("GetObject");
            let body = tokio_util::io::SyncIoBridge::new(obj.body.into_async_read());
            let c = Compression::of_key(key).expect(".csv or .csv.gz");
            let file = format!("s3://{loc}");
            tokio::task::spawn_blocking(move || {
                agg.read(&file, body, c).expect("parse");
                agg
            })
            .await
            .expect("join")
        });
        name = format!("s3://{loc}");
    } else {
        panic!("--file PATH or --s3 BUCKET/KEY");
    }
    let a = agg.finish();
    let secs = started.elapsed().as_secs_f64();
    let out = serde_json::json!({
        "engine": "lifeboat",
        "source": name,
        "rows": a.rows,
        "seconds": secs,
        "rows_per_second": (a.rows as f64 / secs).round(),
        "peak_rss_mib": peak_rss_kib() as f64 / 1024.0,
        "total": a.total.to_string(),
        "out_of_scope": a.out_of_scope.to_string(),
        "groups": a.cells.len(),
    });
    println!("{out}");
}
