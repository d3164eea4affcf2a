//! Benchmarks the parse/aggregate core on a CUR csv.gz, from a local file or from S3
//! (endpoint from `AWS_ENDPOINT_URL`), or on a month's parts in a directory (any of the
//! four shapes, each part's format told by its first bytes as in the Lambda, parts read
//! on `--threads` threads and merged exactly), and prints one JSON line: rows, seconds,
//! rows/s, peak RSS (VmHWM) and the totals, for `scripts/bench-cost` to compare with
//! DuckDB.
//!
//! ```sh
//! cargo run --release -p cost-reporter --example cur_bench -- --dir DIR --threads 2
//! cargo run --release -p cost-reporter --example cur_bench -- --file cur.csv.gz [--workload checkout]
//! cargo run --release -p cost-reporter --example cur_bench -- --s3 bucket/key.csv.gz
//! ```

use std::collections::HashSet;
use std::time::Instant;

use cost_reporter::cur::{Aggregates, Aggregator, Compression, Scope};
use cost_reporter::manifest::Format;

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
    let (mut file, mut s3, mut workload, mut dir) = (None, None, None, None);
    let mut threads = 1usize;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--file" => file = args.next(),
            "--s3" => s3 = args.next(),
            "--workload" => workload = args.next(),
            "--dir" => dir = args.next(),
            "--threads" => {
                threads = args
                    .next()
                    .and_then(|t| t.parse().ok())
                    .ok_or("--threads takes a number")?;
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    let scope = workload.map(|w| Scope {
        tag_key: cost_reporter::DEFAULT_TAG_KEY.to_owned(),
        workload: w,
        resources: HashSet::from(["checkout-db".to_owned()]),
    });
    let mut agg = Aggregator::new(scope.clone(), vec![], false);
    let started = Instant::now();
    let name;
    let mut merged = None;
    if let Some(dir) = dir {
        let mut parts: Vec<String> = std::fs::read_dir(&dir)
            .map_err(|e| format!("{dir}: {e}"))?
            .filter_map(|e| e.ok())
            .map(|e| e.path().to_string_lossy().into_owned())
            .filter(|p| p.contains("/part-"))
            .collect();
        parts.sort();
        let read = |_: usize, path: &String| -> Result<Aggregates, BoxError> {
            let mut agg = Aggregator::new(scope.clone(), vec![], false);
            let mut f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
            let mut head = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut head).map_err(|e| format!("{path}: {e}"))?;
            let f = std::fs::File::open(path).map_err(|e| format!("{path}: {e}"))?;
            match Format::sniff(&head) {
                Format::Parquet => {
                    cost_reporter::pq::read(&mut agg, path, f, None)?;
                }
                Format::GzipCsv => {
                    agg.read(path, f, Compression::Gzip)?;
                }
                Format::Csv => {
                    agg.read(path, f, Compression::None)?;
                }
            }
            Ok(agg.finish())
        };
        let a = cost_reporter::parallel::run(&parts, threads, Aggregates::empty(&[]), read)
            .map_err(|(i, e)| format!("part {i}: {e}"))?
            .map_err(|_| "the sums overflow")?;
        merged = Some(a);
        name = dir;
    } else if let Some(path) = file {
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
        return Err(
            "usage: cur_bench --file PATH | --s3 BUCKET/KEY | --dir DIR [--threads N] [--workload ID]"
                .into(),
        );
    }
    let a = merged.unwrap_or_else(|| agg.finish());
    let secs = started.elapsed().as_secs_f64();
    let out = serde_json::json!({
        "engine": format!("lifeboat threads={threads}"),
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
