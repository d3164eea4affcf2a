//! cost-reporter against moto S3, DynamoDB and CloudWatch: the report's figures are the
//! generator's own sums to the last decimal; bad files name the file and line and write
//! nothing; the scheduled event reports the last complete month.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::str::FromStr;

use aws_sdk_s3::primitives::ByteStream;
use aws_types::SdkConfig;
use cost_reporter::Reporter;
use cost_reporter::request::{CurLocation, Defaults, OutputLocation, Period};
use harness::cur::{
    Expected, GenDrill, GenSpec, Shape, generate, generate_gz, manifest_json, write_parts,
};
use harness::moto::MotoServer;
use lambda_runtime::{Context, LambdaEvent};
use lifeboat::store::{RunKind, RunOutcome, RunRecord};
use lifeboat::{ErrorName, Store, UnixMillis};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const CUR_PREFIX: &str = "cur2/lifeboat";

fn dec(v: &Value) -> Decimal {
    Decimal::from_str(
        v.as_str()
            .unwrap_or_else(|| panic!("not a decimal string: {v}")),
    )
    .unwrap()
}

/// `[{key: k, value: v}, …]` as a map `k → v`.
fn keyed(list: &Value, key: &str, value: &str) -> BTreeMap<String, Decimal> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|x| (x[key].as_str().unwrap().to_owned(), dec(&x[value])))
        .collect()
}

struct Env {
    config: SdkConfig,
    s3: aws_sdk_s3::Client,
    cur_bucket: String,
    out_bucket: String,
    reporter: Reporter,
    world: harness::world::World,
}

async fn env() -> Env {
    let moto = MotoServer::shared();
    let table = harness::table::unique_name("cost");
    let world = harness::world::seed(moto, &table).await.unwrap();
    let config = world.config.clone();
    let s3 = cost_reporter::s3_client(&config, false);
    let cur_bucket = harness::table::unique_name("cur").to_lowercase();
    let out_bucket = harness::table::unique_name("reports").to_lowercase();
    for b in [&cur_bucket, &out_bucket] {
        s3.create_bucket().bucket(b).send().await.unwrap();
    }
    let reporter = Reporter {
        s3: s3.clone(),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        store: Some(lifeboat::DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&config),
            &table,
        )),
        defaults: Defaults {
            cur: Some(CurLocation {
                bucket: cur_bucket.clone(),
                prefix: CUR_PREFIX.into(),
            }),
            output: Some(OutputLocation {
                bucket: out_bucket.clone(),
                prefix: "cost".into(),
            }),
            workload: None,
            skip_bad_rows: false,
        },
        tag_key: cost_reporter::DEFAULT_TAG_KEY.into(),
        memory_bytes: None,
    };
    Env {
        config,
        s3,
        cur_bucket,
        out_bucket,
        reporter,
        world,
    }
}

impl Env {
    async fn put(&self, period: &str, name: &str, body: Vec<u8>) {
        self.s3
            .put_object()
            .bucket(&self.cur_bucket)
            .key(format!("{CUR_PREFIX}/data/BILLING_PERIOD={period}/{name}"))
            .body(ByteStream::from(body))
            .send()
            .await
            .unwrap();
    }

    /// The period's manifest, listing `names` (under its data prefix) in that order.
    async fn put_manifest(&self, period: &str, shape: Shape, execution: &str, names: &[&str]) {
        let files: Vec<String> = names
            .iter()
            .map(|n| {
                format!(
                    "s3://{}/{CUR_PREFIX}/data/BILLING_PERIOD={period}/{n}",
                    self.cur_bucket
                )
            })
            .collect();
        self.s3
            .put_object()
            .bucket(&self.cur_bucket)
            .key(format!(
                "{CUR_PREFIX}/metadata/BILLING_PERIOD={period}/lifeboat-Manifest.json"
            ))
            .body(ByteStream::from(
                manifest_json(shape, execution, "lifeboat", &files).into_bytes(),
            ))
            .send()
            .await
            .unwrap();
    }

    async fn get_json(&self, key: &str) -> Value {
        serde_json::from_str(&self.get_text(key).await).unwrap()
    }

    async fn get_text(&self, key: &str) -> String {
        let obj = self
            .s3
            .get_object()
            .bucket(&self.out_bucket)
            .key(key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {e:?}"));
        String::from_utf8(obj.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
    }

    async fn outputs(&self) -> Vec<String> {
        let listed = self
            .s3
            .list_objects_v2()
            .bucket(&self.out_bucket)
            .send()
            .await
            .unwrap();
        listed
            .contents()
            .iter()
            .filter_map(|o| o.key().map(str::to_owned))
            .collect()
    }

    fn request(&self, workload: Option<&str>, skip_bad_rows: bool) -> Value {
        let mut req = json!({
            "cur": { "bucket": self.cur_bucket, "prefix": CUR_PREFIX },
            "period": "2026-10",
            "skip_bad_rows": skip_bad_rows,
        });
        if let Some(w) = workload {
            req["workload"] = json!(w);
        }
        req
    }

    async fn handle(&self, payload: Value) -> Result<Value, lifeboat::Error> {
        self.reporter
            .handle(LambdaEvent::new(payload, Context::default()))
            .await
    }
}

fn add_expected(a: &mut Expected, b: Expected) {
    a.rows += b.rows;
    a.matched_rows += b.matched_rows;
    a.total += b.total;
    a.total_unblended += b.total_unblended;
    a.bill_total += b.bill_total;
    a.out_of_scope += b.out_of_scope;
    for (k, v) in b.by_region {
        *a.by_region.entry(k).or_default() += v;
    }
    for (k, v) in b.bill_by_region {
        *a.bill_by_region.entry(k).or_default() += v;
    }
    for (k, v) in b.by_region_category {
        *a.by_region_category.entry(k).or_default() += v;
    }
    for (k, v) in b.transfers {
        *a.transfers.entry(k).or_default() += v;
    }
    for (k, v) in b.global_services {
        *a.global_services.entry(k).or_default() += v;
    }
    for (k, v) in b.drills {
        *a.drills.entry(k).or_default() += v;
    }
}

fn drill_run(id: &str, first_hour: u32, end_hour: u32, resources: &[&str]) -> RunRecord {
    let start = Period::from_str("2026-10").unwrap().start_ms();
    RunRecord {
        id: id.into(),
        kind: RunKind::Drill,
        started_at: UnixMillis(start + u64::from(first_hour) * 3_600_000 + 600_000),
        finished_at: Some(UnixMillis(
            start + u64::from(end_hour) * 3_600_000 - 300_000,
        )),
        outcome: RunOutcome::Succeeded,
        timeline: vec![],
        measured_rto_ms: Some(240_000),
        measured_rpo_ms: None,
        rpo_simulated: true,
        details: if resources.is_empty() {
            Value::Null
        } else {
            json!({ "resources": resources })
        },
    }
}

#[tokio::test]
async fn report_totals_equal_the_generators_own_sums() {
    let env = env().await;
    let drills = vec![
        GenDrill {
            id: "drill-all".into(),
            first_hour: 100,
            end_hour: 103,
            resources: vec![],
        },
        GenDrill {
            id: "drill-db".into(),
            first_hour: 200,
            end_hour: 230,
            resources: vec!["checkout-db-replica-euw1".into()],
        },
    ];
    for d in &drills {
        let names: Vec<&str> = d.resources.iter().map(String::as_str).collect();
        let run = drill_run(&d.id, d.first_hour, d.end_hour, &names);
        env.world
            .store
            .put_run("checkout", &run, None)
            .await
            .unwrap();
    }
    // Two files of one billing period, plus one of another period that must be ignored.
    let mut expected = Expected::default();
    for (i, seed) in [11u64, 12].into_iter().enumerate() {
        let mut spec = GenSpec::checkout(seed, 2_000);
        spec.drills = drills.clone();
        let mut body = Vec::new();
        add_expected(&mut expected, generate_gz(&spec, &mut body).unwrap());
        env.put("2026-10", &format!("lifeboat-0000{}.csv.gz", i + 1), body)
            .await;
    }
    let mut other = Vec::new();
    generate_gz(&GenSpec::checkout(99, 500), &mut other).unwrap();
    env.put("2026-09", "lifeboat-00001.csv.gz", other.clone())
        .await;
    // A file of the period the manifest does not list (an older execution's): ignored.
    env.put("2026-10", "stale-00001.csv.gz", other).await;
    env.put_manifest(
        "2026-10",
        Shape::Cur2Csv,
        "exec-1",
        &["lifeboat-00001.csv.gz", "lifeboat-00002.csv.gz"],
    )
    .await;

    let outcome = env
        .handle(env.request(Some("checkout"), false))
        .await
        .unwrap();
    assert_eq!(outcome["rows"], json!(4_000));
    assert_eq!(dec(&outcome["total"]), expected.total);
    let r = env.get_json("cost/checkout/2026-10/report.json").await;

    assert_eq!(r["rows"], json!(expected.rows));
    assert_eq!(r["matched_rows"], json!(expected.matched_rows));
    assert_eq!(dec(&r["total"]), expected.total);
    assert_eq!(dec(&r["total_unblended"]), expected.total_unblended);
    assert_eq!(dec(&r["out_of_scope"]), expected.out_of_scope);
    assert_eq!(expected.total + expected.out_of_scope, expected.bill_total);

    assert_eq!(keyed(&r["regions"], "region", "total"), expected.by_region);
    let mut by_cat: BTreeMap<(String, String), Decimal> = BTreeMap::new();
    for x in r["regions"].as_array().unwrap() {
        for (cat, v) in x["by_category"].as_object().unwrap() {
            if !dec(v).is_zero() {
                by_cat.insert((x["region"].as_str().unwrap().into(), cat.clone()), dec(v));
            }
        }
    }
    let expected_cats: BTreeMap<_, _> = expected
        .by_region_category
        .iter()
        .filter(|(_, v)| !v.is_zero())
        .map(|(k, v)| (k.clone(), *v))
        .collect();
    assert_eq!(by_cat, expected_cats);
    let transfers: BTreeMap<(String, String), Decimal> = r["transfers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                (
                    t["from_region"].as_str().unwrap().to_owned(),
                    t["to_region"].as_str().unwrap().to_owned(),
                ),
                dec(&t["cost"]),
            )
        })
        .collect();
    assert_eq!(transfers, expected.transfers);
    let globals: BTreeMap<String, Decimal> = r["global_services"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), dec(v)))
        .collect();
    assert_eq!(globals, expected.global_services);
    let drill_costs = keyed(&r["drills"], "id", "cost");
    assert_eq!(drill_costs, expected.drills);
    assert_eq!(drill_costs.len(), 2);
    // Both drills' windows hold rows at this size: the comparison is not of zeros.
    assert!(
        drill_costs.values().all(|c| !c.is_zero()),
        "{drill_costs:?}"
    );
    assert!(!expected.transfers.is_empty());

    // The resilience view: measured RTO from the drills, ROI = avoided − premium.
    let res = &r["resilience"];
    assert_eq!(res["rto_source"], json!("measured_by_drills"));
    assert_eq!(dec(&res["rto_hours"]), Decimal::from_str("0.0667").unwrap());
    let premium = dec(&res["monthly_premium"]);
    let non_primary = expected.by_region["eu-west-1"] + expected.by_region["ap-southeast-1"];
    let from_primary: Decimal = expected
        .transfers
        .iter()
        .filter(|((from, _), _)| from == "us-east-1")
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(premium, non_primary + from_primary);
    assert_eq!(
        dec(&res["roi"]),
        dec(&res["downtime_cost_avoided"]) - premium
    );

    // CSV and a self-contained HTML report with its three charts.
    let csv = env.get_text("cost/checkout/2026-10/report.csv").await;
    assert!(csv.starts_with("section,region,service,category,from_region,to_region,cost\n"));
    assert!(csv.contains(&format!("total,,,,,,{}\n", expected.total)));
    let html = env.get_text("cost/checkout/2026-10/report.html").await;
    assert_eq!(html.matches("<svg").count(), 3);
    assert!(!html.contains("<script") && !html.contains("src=") && !html.contains("href="));

    // One MonthlyCost metric per Region, in the function's Region.
    let cw = aws_sdk_cloudwatch::Client::new(&env.config);
    let metrics = cw
        .list_metrics()
        .namespace("Lifeboat")
        .metric_name("MonthlyCost")
        .send()
        .await
        .unwrap();
    let mut published: Vec<String> = metrics
        .metrics()
        .iter()
        .filter(|m| {
            m.dimensions()
                .iter()
                .any(|d| d.name() == Some("Workload") && d.value() == Some("checkout"))
        })
        .filter_map(|m| {
            m.dimensions()
                .iter()
                .find(|d| d.name() == Some("Region"))
                .and_then(|d| d.value().map(str::to_owned))
        })
        .collect();
    published.sort();
    published.dedup();
    let mut want: Vec<String> = expected.by_region.keys().cloned().collect();
    want.sort();
    assert_eq!(published, want);

    // Idempotent: the same request again writes the same report.
    env.handle(env.request(Some("checkout"), false))
        .await
        .unwrap();
    assert_eq!(env.get_json("cost/checkout/2026-10/report.json").await, r);
}

/// Each bad file fails with `InvalidInput` naming the object and the line, and no report
/// is written; with `skip_bad_rows` the bad rows are counted instead.
#[tokio::test]
async fn bad_files_name_file_and_line_and_write_nothing() {
    let env = env().await;
    let mut text = Vec::new();
    let expected = generate(&GenSpec::checkout(5, 400), &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let gz = |s: &str| {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(s.as_bytes()).unwrap();
        e.finish().unwrap()
    };
    let key = format!(
        "s3://{}/{CUR_PREFIX}/data/BILLING_PERIOD=2026-10/lifeboat-00001.csv.gz",
        env.cur_bucket
    );
    env.put_manifest(
        "2026-10",
        Shape::Cur2Csv,
        "exec-1",
        &["lifeboat-00001.csv.gz"],
    )
    .await;

    // A cost that is not a number, on line 41.
    let mut bad_cost: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    let header: Vec<&str> = lines[0].split(',').collect();
    let cost_col = header
        .iter()
        .position(|h| *h == "line_item_unblended_cost")
        .unwrap();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(lines[40].as_bytes());
    let mut rec: Vec<String> = rdr
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    rec[cost_col] = "12,5".into();
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(&rec).unwrap();
    bad_cost[40] = String::from_utf8(w.into_inner().unwrap())
        .unwrap()
        .trim_end()
        .to_owned();
    // A row with a column too few, on line 101.
    let mut short = lines.iter().map(|l| (*l).to_owned()).collect::<Vec<_>>();
    let cut = short[100].rfind(',').unwrap();
    short[100].truncate(cut);

    let all_gz = gz(&(text.clone()));
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "not a number",
            gz(&(bad_cost.join("\n") + "\n")),
            format!("{key}: line 41: line_item_unblended_cost is not a number: `12,5`"),
        ),
        (
            "wrong column count",
            gz(&(short.join("\n") + "\n")),
            format!("{key}: line 101: expected 58 columns, found 57"),
        ),
        (
            "truncated gzip",
            all_gz[..all_gz.len() * 2 / 3].to_vec(),
            format!("{key}: line "),
        ),
    ];
    for (what, body, message) in cases {
        env.put("2026-10", "lifeboat-00001.csv.gz", body).await;
        let err = env
            .handle(env.request(Some("checkout"), false))
            .await
            .unwrap_err();
        assert_eq!(err.name(), ErrorName::InvalidInput, "{what}: {err}");
        assert!(err.to_string().contains(&message), "{what}: {err}");
        assert_eq!(env.outputs().await, Vec::<String>::new(), "{what}");
    }
    // The truncated one says so.
    let err = env.handle(env.request(None, true)).await.unwrap_err();
    assert!(err.to_string().contains("corrupt or truncated"), "{err}");
    assert_eq!(env.outputs().await, Vec::<String>::new());

    // skip_bad_rows: both bad rows counted, by line, and the rest reported.
    let mut both = bad_cost.clone();
    both[100] = short[100].clone();
    env.put(
        "2026-10",
        "lifeboat-00001.csv.gz",
        gz(&(both.join("\n") + "\n")),
    )
    .await;
    env.handle(env.request(None, true)).await.unwrap();
    let r = env.get_json("cost/_account/2026-10/report.json").await;
    assert_eq!(r["bad_rows"], json!(2));
    let lines_quoted: Vec<u64> = r["bad_row_samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines_quoted, [41, 101]);
    assert_eq!(r["rows"], json!(expected.rows));
    assert!(dec(&r["total"]) != expected.bill_total);

    // Missing columns are named, never guessed.
    let no_tags = text
        .replace("resource_tags,", "tags_of_resource,")
        .replace("product_region_code,", "region,");
    env.put("2026-10", "lifeboat-00001.csv.gz", gz(&no_tags))
        .await;
    let err = env
        .handle(env.request(Some("checkout"), true))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput);
    assert!(
        err.to_string()
            .ends_with("missing required column(s): product_region_code, resource_tags"),
        "{err}"
    );
}

/// The EventBridge scheduled event (as AWS sends it, from `events/`) reports the last
/// complete month, for the whole bill when no workload is configured.
#[tokio::test]
async fn scheduled_event_reports_the_last_complete_month() {
    let env = env().await;
    let mut body = Vec::new();
    let expected = generate_gz(&GenSpec::checkout(21, 1_000), &mut body).unwrap();
    env.put("2026-10", "lifeboat-00001.csv.gz", body).await;
    env.put_manifest(
        "2026-10",
        Shape::Cur2Csv,
        "exec-1",
        &["lifeboat-00001.csv.gz"],
    )
    .await;
    let event: Value = serde_json::from_str(include_str!(
        "../../events/cost-reporter/scheduled-event.json"
    ))
    .unwrap();
    assert_eq!(event["time"], json!("2026-11-01T06:00:00Z"));
    let outcome = env.handle(event.clone()).await.unwrap();
    assert_eq!(outcome["period"], json!("2026-10"));
    let r = env.get_json("cost/_account/2026-10/report.json").await;
    assert_eq!(dec(&r["total"]), expected.bill_total);
    assert_eq!(dec(&r["out_of_scope"]), Decimal::ZERO);
    assert_eq!(
        keyed(&r["regions"], "region", "total"),
        expected.bill_by_region
    );
    assert!(r.get("resilience").is_none());

    // No export for the month: a named error, nothing written for it.
    let mut event = event;
    event["time"] = json!("2026-12-03T06:00:00Z");
    let err = env.handle(event).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
    assert!(err.to_string().contains("BILLING_PERIOD=2026-11/"), "{err}");
}

/// A workload the table does not hold is named; nothing is read or written.
#[tokio::test]
async fn unknown_workload_is_named() {
    let env = env().await;
    let err = env
        .handle(env.request(Some("nope"), false))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::WorkloadNotFound);
    assert_eq!(env.outputs().await, Vec::<String>::new());
}

/// The same month in each of the four shapes (several parts, a manifest each) gives the
/// report the generator's own sums to the cent, read in parallel, and the report names
/// the export's table, format and execution.
#[tokio::test]
async fn every_shape_gives_the_generators_sums() {
    let env = env().await;
    let spec = GenSpec::checkout(31, 1_200);
    let mut first: Option<Value> = None;
    for shape in Shape::ALL {
        let mut bodies: Vec<Vec<u8>> = Vec::new();
        let mut buffers: Vec<std::sync::Arc<std::sync::Mutex<Vec<u8>>>> = Vec::new();
        // 3 parts of 400 rows, Parquet row groups of 150: several groups per part.
        let expected = write_parts(&spec, shape, 3, 150, |_| {
            let b = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
            buffers.push(b.clone());
            Ok(SharedBuf(b))
        })
        .unwrap();
        for b in buffers {
            bodies.push(std::mem::take(&mut *b.lock().unwrap()));
        }
        assert_eq!(bodies.len(), 3, "{shape:?}");
        let names: Vec<String> = (1..=bodies.len())
            .map(|i| format!("{}-lifeboat-0000{i}.{}", shape.name(), shape.ext()))
            .collect();
        for (name, body) in names.iter().zip(bodies) {
            env.put("2026-10", name, body).await;
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        env.put_manifest("2026-10", shape, shape.name(), &refs)
            .await;

        env.handle(env.request(Some("checkout"), false))
            .await
            .unwrap_or_else(|e| panic!("{shape:?}: {e}"));
        let r = env.get_json("cost/checkout/2026-10/report.json").await;
        let what = format!("{shape:?}");
        assert_eq!(r["source"]["execution_id"], json!(shape.name()), "{what}");
        assert_eq!(
            r["source"]["table"],
            json!(if shape.focus() {
                "FOCUS 1.2"
            } else {
                "CUR 2.0"
            }),
            "{what}"
        );
        assert_eq!(
            r["source"]["formats"],
            json!([if shape.parquet() {
                "Parquet"
            } else {
                "gzip CSV"
            }]),
            "{what}"
        );
        assert_eq!(r["source"]["parts"], json!(3), "{what}");
        assert_eq!(r["rows"], json!(expected.rows), "{what}");
        assert_eq!(r["matched_rows"], json!(expected.matched_rows), "{what}");
        assert_eq!(dec(&r["total"]), expected.total, "{what}");
        assert_eq!(
            dec(&r["total_unblended"]),
            expected.total_unblended,
            "{what}"
        );
        assert_eq!(dec(&r["out_of_scope"]), expected.out_of_scope, "{what}");
        assert_eq!(
            keyed(&r["regions"], "region", "total"),
            expected.by_region,
            "{what}"
        );
        let transfers: BTreeMap<(String, String), Decimal> = r["transfers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    (
                        t["from_region"].as_str().unwrap().to_owned(),
                        t["to_region"].as_str().unwrap().to_owned(),
                    ),
                    dec(&t["cost"]),
                )
            })
            .collect();
        assert_eq!(transfers, expected.transfers, "{what}");
        // Every shape, the same regions and cells.
        match &first {
            None => first = Some(r.clone()),
            Some(f) => {
                assert_eq!(r["regions"], f["regions"], "{what}");
                assert_eq!(r["total"], f["total"], "{what}");
            }
        }
    }
}

/// A `Write` into a shared buffer (the generator's part sinks).
struct SharedBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bad Parquet months: a truncated part, a part without a column the manifest's table
/// requires, a manifest naming a part that is not there — each a named error naming the
/// object (and the column), and no report written.
#[tokio::test]
async fn bad_parquet_months_name_the_object_and_write_nothing() {
    let env = env().await;
    let spec = GenSpec::checkout(41, 1_200);
    let mut cur2 = Vec::new();
    let buf = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    write_parts(&spec, Shape::Cur2Parquet, 1, 400, |_| {
        Ok(SharedBuf(buf.clone()))
    })
    .unwrap();
    cur2.extend_from_slice(&buf.lock().unwrap());
    let uri = |name: &str| {
        format!(
            "s3://{}/{CUR_PREFIX}/data/BILLING_PERIOD=2026-10/{name}",
            env.cur_bucket
        )
    };

    // Truncated: the footer is gone.
    env.put(
        "2026-10",
        "a-00001.snappy.parquet",
        cur2[..cur2.len() / 2].to_vec(),
    )
    .await;
    env.put_manifest(
        "2026-10",
        Shape::Cur2Parquet,
        "e1",
        &["a-00001.snappy.parquet"],
    )
    .await;
    let err = env
        .handle(env.request(Some("checkout"), false))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput, "{err}");
    assert!(
        err.to_string().contains(&uri("a-00001.snappy.parquet")),
        "{err}"
    );
    assert!(err.to_string().contains("Parquet"), "{err}");
    assert_eq!(env.outputs().await, Vec::<String>::new());

    // The manifest says FOCUS; the part is CUR 2.0: FOCUS's columns are named.
    env.put("2026-10", "b-00001.snappy.parquet", cur2.clone())
        .await;
    env.put_manifest(
        "2026-10",
        Shape::FocusParquet,
        "e2",
        &["b-00001.snappy.parquet"],
    )
    .await;
    let err = env
        .handle(env.request(Some("checkout"), false))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput, "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "invalid input: {}: missing required column(s): ChargePeriodStart, x_ServiceCode",
            uri("b-00001.snappy.parquet")
        )) || err
            .to_string()
            .contains("missing required column(s): ChargePeriodStart, x_ServiceCode"),
        "{err}"
    );
    assert_eq!(env.outputs().await, Vec::<String>::new());

    // A part the manifest names is missing: named, nothing written, even though the
    // other part is fine.
    env.put_manifest(
        "2026-10",
        Shape::Cur2Parquet,
        "e3",
        &["b-00001.snappy.parquet", "c-00002.snappy.parquet"],
    )
    .await;
    let err = env
        .handle(env.request(Some("checkout"), false))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
    assert!(
        err.to_string().contains(&uri("c-00002.snappy.parquet")),
        "{err}"
    );
    assert_eq!(env.outputs().await, Vec::<String>::new());

    // And the good part alone reads.
    env.put_manifest(
        "2026-10",
        Shape::Cur2Parquet,
        "e4",
        &["b-00001.snappy.parquet"],
    )
    .await;
    env.handle(env.request(Some("checkout"), false))
        .await
        .unwrap();
}
