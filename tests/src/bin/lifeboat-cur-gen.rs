//! Writes a seeded month (the `checkout` world) for benchmarks and prints the generator's
//! own expected sums as JSON on stdout.
//!
//! One CUR 2.0 csv.gz: `lifeboat-cur-gen --rows 1000000 --seed 7 --out target/bench/cur.csv.gz`
//!
//! A month in one of the four shapes, as `--parts` data files in a directory (plus the
//! manifest Data Exports would write beside them):
//! `lifeboat-cur-gen --rows 1000000 --seed 7 --shape focus-parquet --parts 4 --dir DIR`

use std::io::BufWriter;

use anyhow::{Context, bail};
use harness::cur::{Expected, GenSpec, Shape, generate, generate_gz, manifest_json, write_parts};

/// Row group size of the Parquet parts: Data Exports' files hold row groups of about
/// this many rows.
const GROUP_ROWS: usize = 100_000;

fn main() -> anyhow::Result<()> {
    let mut rows = 1_000_000u64;
    let mut seed = 7u64;
    let (mut out, mut dir, mut shape) = (None, None, None);
    let mut parts = 1usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().with_context(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--rows" => rows = value()?.parse().context("--rows")?,
            "--seed" => seed = value()?.parse().context("--seed")?,
            "--out" => out = Some(value()?),
            "--dir" => dir = Some(value()?),
            "--parts" => parts = value()?.parse().context("--parts")?,
            "--shape" => {
                let name = value()?;
                shape = Some(
                    Shape::ALL
                        .into_iter()
                        .find(|s| s.name() == name)
                        .with_context(|| format!("--shape {name}: one of cur2-csv, cur2-parquet, focus-csv, focus-parquet"))?,
                );
            }
            other => bail!(
                "unknown argument {other}; usage: --rows N --seed S (--out FILE[.gz] | --shape SHAPE --parts N --dir DIR)"
            ),
        }
    }
    let mut spec = GenSpec::checkout(seed, rows);
    // Plain decimals: the DuckDB side of the benchmark casts the text to DECIMAL.
    spec.scientific = false;
    let (expected, file) = match (shape, dir, out) {
        (Some(shape), Some(dir), None) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
            let name = |i: usize| format!("{dir}/part-{i:05}.{}", shape.ext());
            let e = write_parts(&spec, shape, parts, GROUP_ROWS, |i| {
                Ok(BufWriter::with_capacity(
                    1 << 20,
                    std::fs::File::create(name(i))?,
                ))
            })
            .with_context(|| format!("writing {dir}"))?;
            let files: Vec<String> = (0..parts).map(name).collect();
            std::fs::write(
                format!("{dir}/bench-Manifest.json"),
                manifest_json(shape, "bench", "bench", &files),
            )?;
            (e, dir)
        }
        (None, None, Some(out)) => {
            let file = BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(&out).with_context(|| format!("creating {out}"))?,
            );
            let e = if out.ends_with(".gz") {
                generate_gz(&spec, file)?
            } else {
                generate(&spec, file)?
            };
            (e, out)
        }
        _ => bail!("give either --out FILE, or --shape SHAPE and --dir DIR"),
    };
    println!("{}", summary(&expected, &file));
    Ok(())
}

fn summary(expected: &Expected, file: &str) -> serde_json::Value {
    let by_region: serde_json::Map<String, serde_json::Value> = expected
        .bill_by_region
        .iter()
        .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
        .collect();
    serde_json::json!({
        "file": file,
        "rows": expected.rows,
        "bill_total": expected.bill_total.to_string(),
        "bill_by_region": by_region,
        "workload_total": expected.total.to_string(),
    })
}
