//! Writes a seeded CUR 2.0 csv.gz (the `checkout` world) for benchmarks and prints the
//! generator's own expected sums as JSON on stdout.
//!
//! `lifeboat-cur-gen --rows 1000000 --seed 7 --out target/bench/cur.csv.gz`

use std::io::BufWriter;

use anyhow::{Context, bail};
use harness::cur::{GenSpec, generate, generate_gz};

fn main() -> anyhow::Result<()> {
    let mut rows = 1_000_000u64;
    let mut seed = 7u64;
    let mut out = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rows" => rows = value()?.parse().context("--rows")?,
            "--seed" => seed = value()?.parse().context("--seed")?,
            "--out" => out = Some(value()?),
            other => bail!("unknown argument {other}; usage: --rows N --seed S --out FILE[.gz]"),
        }
    }
    let out = out.context("--out FILE is required")?;
    let mut spec = GenSpec::checkout(seed, rows);
    // Plain decimals: the DuckDB side of the benchmark casts the text to DECIMAL.
    spec.scientific = false;
    let file = BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(&out).with_context(|| format!("creating {out}"))?,
    );
    let expected = if out.ends_with(".gz") {
        generate_gz(&spec, file)?
    } else {
        generate(&spec, file)?
    };
    let by_region: serde_json::Map<String, serde_json::Value> = expected
        .bill_by_region
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
        .collect();
    let summary = serde_json::json!({
        "file": out,
        "rows": expected.rows,
        "bill_total": expected.bill_total.to_string(),
        "bill_by_region": by_region,
        "workload_total": expected.total.to_string(),
    });
    println!("{summary}");
    Ok(())
}
