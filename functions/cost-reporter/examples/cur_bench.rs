//! Benchmarks the parse/aggregate core on a CUR csv.gz, from a local file or from S3
//! (endpoint from `AWS_ENDPOINT_URL`), and prints one JSON line: rows, seconds, rows/s,
//! peak RSS (VmHWM) and the totals, for `scripts/bench-cost` to compare with DuckDB.
//!
//! ```sh
//! cargo run --release -p cost-reporter --example cur_bench -- --file cur.csv.gz [--workload checkout]
//! cargo run --release -p cost-reporter --example cur_bench -- --s3 bucket/key.csv.gz
//! ```

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

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let (mut file, mut s3, mut workload) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--file" => file = args.next(),
            "--s3" => s3 = args.next(),
            "--workload" => workload = args.next(),
            other => return Err(format!("unknown argument {other}").into()),
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
        let f = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
        let c = Compression::of_key(&path).ok_or("--file must end in .csv or .csv.gz")?;
        agg.read(&path, f, c)?;
        name = path;
    } else if let Some(loc) = s3 {
        let (bucket, key) = loc.split_once('/').ok_or("--s3 takes BUCKET/KEY")?;
        let c = Compression::of_key(key).ok_or("--s3 key must end in .csv or .csv.gz")?;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        agg = rt.block_on(async {
            let config = lifeboat::aws::load().await;
            let s3 = cost_reporter::s3_client(&config, false);
            let obj = s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .map_err(|e| format!("GetObject s3://{loc}: {e}"))?;
            let body = tokio_util::io::SyncIoBridge::new(obj.body.into_async_read());
            let file = format!("s3://{loc}");
            tokio::task::spawn_blocking(move || -> Result<Aggregator, BoxError> {
                agg.read(&file, body, c)?;
                Ok(agg)
            })
            .await?
        })?;
        name = format!("s3://{loc}");
    } else {
        return Err("usage: cur_bench --file PATH | --s3 BUCKET/KEY [--workload ID]".into());
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
    Ok(())
}
