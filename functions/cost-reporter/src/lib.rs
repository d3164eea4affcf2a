//! # cost-reporter
//!
//! The Lifeboat Lambda that reports the cost of resilience per Region from the CUR 2.0
//! export (Data Exports, gzip CSV) in S3: it streams each file of the billing period
//! through a gzip decoder and a csv reader without holding it in memory ([`cur`]),
//! aggregates per Region × service × category, inter-Region transfer, global services and
//! drills, builds the resilience view ([`report`]), and writes report.json, report.csv and
//! a self-contained report.html ([`render`]) to S3 and `Lifeboat/MonthlyCost` per Region to
//! CloudWatch — only after every file parsed, so a bad file leaves no partial report.
//!
//! Inputs ([`request`]): the EventBridge scheduled event (the last complete month) or
//! `{ workload?, cur: { bucket, prefix }, period: "YYYY-MM", skip_bad_rows?, output?, assumptions? }`.

pub mod cur;
pub mod manifest;
mod pages;
pub mod parallel;
pub mod pq;
pub mod render;
pub mod report;
pub mod request;
pub mod s3io;

use std::collections::HashSet;

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_sdk_s3::primitives::ByteStream;
use aws_types::SdkConfig;
use lambda_runtime::LambdaEvent;
use lifeboat::model::DatabaseRef;
use lifeboat::store::RunRecord;
use lifeboat::{DynamoStore, Error, Store, WorkloadSpec};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::cur::{Aggregates, Aggregator, Compression, DrillWindow, ParseError, Scope, Table};
use crate::manifest::{Format, Manifest, Part};
use crate::report::{Context, ExportSource, PreviousMonth, Report};
use crate::request::{Defaults, OutputLocation, Period, Request};
use crate::s3io::{FetchError, S3Object};

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "cost-reporter";

/// CloudWatch namespace of the published metric.
pub const METRIC_NAMESPACE: &str = lifeboat::metrics::NAMESPACE;
/// The metric: one datum per Region, dimensions `Workload` and `Region`.
pub const METRIC_NAME: &str = lifeboat::metrics::MONTHLY_COST;
/// Default `resource_tags` key that marks a workload's resources.
pub const DEFAULT_TAG_KEY: &str = "user_lifeboat_workload";

/// An S3 client for `config`. Path-style addressing (`http://host/bucket/key`) when a
/// custom endpoint is configured (`AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`): a custom
/// endpoint such as a loopback emulator has no wildcard DNS for `bucket.host`, while
/// path style works with every S3-compatible endpoint. AWS itself keeps the default
/// virtual-hosted style. Decided from the endpoint configuration, not an "is local" flag.
pub fn s3_client(config: &SdkConfig, custom_endpoint: bool) -> aws_sdk_s3::Client {
    let s3 = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom_endpoint || config.endpoint_url().is_some())
        .build();
    aws_sdk_s3::Client::from_conf(s3)
}

/// Everything the handler needs, built once in `main`.
#[derive(Debug, Clone)]
pub struct Reporter {
    /// S3 (CUR in, reports out).
    pub s3: aws_sdk_s3::Client,
    /// CloudWatch (metrics out).
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// The Lifeboat table (specs and run records); needed only with a workload.
    pub store: Option<DynamoStore>,
    /// Environment defaults.
    pub defaults: Defaults,
    /// `resource_tags` key marking a workload's resources.
    pub tag_key: String,
    /// The function's memory (bytes), which bounds how many parts are read at once
    /// (with the cores); `None`: the cores alone.
    pub memory_bytes: Option<u64>,
}

/// The handler's answer: where the report is and its headline figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// Workload, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Billing month.
    pub period: String,
    /// Output bucket.
    pub bucket: String,
    /// Keys written: json, csv, html.
    pub keys: Vec<String>,
    /// Total cost.
    pub total: Decimal,
    /// Rows read.
    pub rows: u64,
    /// Bad rows skipped.
    pub bad_rows: u64,
    /// Metrics published.
    pub metrics: usize,
}

impl Reporter {
    /// The handler: parse, stream, aggregate, then write everything.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        let (req, out) = request::resolve(event.payload, &self.defaults)?;
        let outcome = self.run(&req, &out).await?;
        serde_json::to_value(outcome).map_err(|e| Error::VerificationFailed(e.to_string()))
    }

    /// Runs one request.
    pub async fn run(&self, req: &Request, out: &OutputLocation) -> Result<Outcome, Error> {
        let (spec, runs) = match &req.workload {
            Some(w) => {
                let store = self.store.as_ref().ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "workload `{w}` given but no LIFEBOAT_TABLE is configured"
                    ))
                })?;
                (Some(store.get_spec(w).await?), store.list_runs(w).await?)
            }
            None => (None, Vec::new()),
        };
        let (manifest_key, manifest) = self.manifest(req).await?;
        let parts = manifest
            .parts(&manifest_key)
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        let table = manifest.table();
        let workers = parallel::workers(parts.len(), self.memory_bytes);
        let scope = spec.as_ref().map(|s| scope(s, &self.tag_key));
        let drills = drill_windows(&runs, req.period);
        let agg = self
            .read_parts(
                parts.clone(),
                table,
                scope,
                drills,
                req.skip_bad_rows,
                workers,
            )
            .await?;
        let mut formats: Vec<String> = Vec::new();
        for f in &agg.files {
            if !formats.iter().any(|x| x == f.format) {
                formats.push(f.format.to_owned());
            }
        }
        let source = ExportSource {
            manifest: format!("s3://{}/{manifest_key}", req.cur.bucket),
            export_arn: manifest.export_arn.clone(),
            execution_id: manifest.execution_id.clone(),
            table,
            formats,
            parts: parts.len(),
            workers,
        };
        let previous = self.previous_month(out, req).await;
        let mut report = report::build(
            agg,
            Context {
                period: req.period,
                spec: spec.as_ref(),
                runs: &runs,
                assumptions: req.assumptions,
                previous: previous.as_ref(),
            },
        );
        report.source = Some(source);
        self.write(&report, out).await
    }

    /// The period's manifest: the latest `*-Manifest.json` under its metadata prefix.
    async fn manifest(&self, req: &Request) -> Result<(String, Manifest), Error> {
        let prefix = req.cur.metadata_prefix(req.period);
        let mut pages = self
            .s3
            .list_objects_v2()
            .bucket(&req.cur.bucket)
            .prefix(&prefix)
            .into_paginator()
            .send();
        let mut found: Vec<(String, i64)> = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                if e.as_service_error().is_some_and(|s| s.is_no_such_bucket()) {
                    Error::ResourceNotFound {
                        kind: "S3 bucket",
                        id: req.cur.bucket.clone(),
                        region: self.region(),
                    }
                } else {
                    Error::from_sdk("s3", "ListObjectsV2", e)
                }
            })?;
            for obj in page.contents() {
                if let Some(key) = obj.key() {
                    let modified = obj
                        .last_modified()
                        .map_or(0, |t| t.to_millis().unwrap_or(0));
                    found.push((key.to_owned(), modified));
                }
            }
        }
        let Some(key) = manifest::latest(found.iter().map(|(k, m)| (k.as_str(), *m))) else {
            return Err(Error::ResourceNotFound {
                kind: "Data Exports manifest",
                id: format!("s3://{}/{prefix}*{}", req.cur.bucket, manifest::SUFFIX),
                region: self.region(),
            });
        };
        let key = key.to_owned();
        let obj = self
            .s3
            .get_object()
            .bucket(&req.cur.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| Error::from_sdk("s3", "GetObject", e))?;
        let body = obj
            .body
            .collect()
            .await
            .map_err(|e| Error::TransientDependency {
                service: "s3",
                operation: "GetObject",
                source: Box::new(e),
            })?;
        let m = Manifest::parse(&key, &body.into_bytes())
            .map_err(|e| Error::InvalidInput(e.to_string()))?;
        Ok((key, m))
    }

    fn region(&self) -> String {
        self.s3
            .config()
            .region()
            .map_or_else(String::new, |r| r.as_ref().to_owned())
    }

    /// Reads every part on `workers` blocking threads and merges them exactly; the first
    /// part (in manifest order) that fails names the error, and nothing is reported.
    async fn read_parts(
        &self,
        parts: Vec<Part>,
        table: Table,
        scope: Option<Scope>,
        drills: Vec<DrillWindow>,
        skip_bad_rows: bool,
        workers: usize,
    ) -> Result<Aggregates, Error> {
        let s3 = self.s3.clone();
        let handle = tokio::runtime::Handle::current();
        let region = self.region();
        let ids: Vec<String> = drills.iter().map(|d| d.id.clone()).collect();
        let joined = tokio::task::spawn_blocking(move || {
            parallel::run(
                &parts,
                workers,
                Aggregates::empty(&ids),
                |_, part: &Part| {
                    let mut agg = Aggregator::new(scope.clone(), drills.clone(), skip_bad_rows);
                    read_part(&mut agg, &s3, &handle, part, table)?;
                    Ok::<_, PartError>(agg.finish())
                },
            )
        })
        .await
        .map_err(|e| Error::DependencyFailure {
            service: "runtime",
            operation: "parse",
            source: Box::new(e),
        })?;
        match joined {
            Ok(Ok(agg)) => Ok(agg),
            Ok(Err(parallel::Overflow)) => Err(Error::InvalidInput(
                "the parts' cost sums overflow: the export cannot be a bill".into(),
            )),
            Err((_, PartError::Parse(e))) => Err(parse_error(e)),
            Err((_, PartError::Fetch(FetchError::NoSuchKey { bucket, key }))) => {
                Err(Error::ResourceNotFound {
                    kind: "CUR data file listed in the manifest",
                    id: format!("s3://{bucket}/{key}"),
                    region,
                })
            }
            Err((_, PartError::Fetch(e))) => Err(Error::TransientDependency {
                service: "s3",
                operation: "GetObject",
                source: Box::new(e),
            }),
        }
    }

    async fn previous_month(&self, out: &OutputLocation, req: &Request) -> Option<PreviousMonth> {
        let key = out.key(
            req.workload.as_deref(),
            req.period.previous(),
            "report.json",
        );
        let obj = self
            .s3
            .get_object()
            .bucket(&out.bucket)
            .key(&key)
            .send()
            .await
            .ok()?;
        let bytes = obj.body.collect().await.ok()?.into_bytes();
        match serde_json::from_slice::<StoredSummary>(&bytes) {
            Ok(s) => Some(PreviousMonth {
                period: s.period,
                total: s.total,
                regions: s.regions.into_iter().map(|r| (r.region, r.total)).collect(),
            }),
            Err(error) => {
                tracing::warn!(key, %error, "Previous report does not parse; month over month skipped");
                None
            }
        }
    }

    async fn write(&self, report: &Report, out: &OutputLocation) -> Result<Outcome, Error> {
        let json = serde_json::to_vec_pretty(report)
            .map_err(|e| Error::VerificationFailed(format!("serializing the report: {e}")))?;
        let files: [(&str, &str, Vec<u8>); 3] = [
            ("report.json", "application/json", json),
            (
                "report.csv",
                "text/csv; charset=utf-8",
                render::csv(report).into_bytes(),
            ),
            (
                "report.html",
                "text/html; charset=utf-8",
                render::html(report).into_bytes(),
            ),
        ];
        let mut keys = Vec::new();
        for (name, content_type, body) in files {
            let key = out.key(report.workload.as_deref(), report.period, name);
            self.s3
                .put_object()
                .bucket(&out.bucket)
                .key(&key)
                .content_type(content_type)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| Error::from_sdk("s3", "PutObject", e))?;
            keys.push(key);
        }
        let metrics = self.publish(report).await?;
        tracing::info!(
            period = %report.period,
            total = %report.total,
            rows = report.rows,
            bad_rows = report.bad_rows,
            "Cost report written"
        );
        Ok(Outcome {
            workload: report.workload.clone(),
            period: report.period.to_string(),
            bucket: out.bucket.clone(),
            keys,
            total: report.total,
            rows: report.rows,
            bad_rows: report.bad_rows,
            metrics,
        })
    }

    /// `Lifeboat/MonthlyCost` per Region. CloudWatch takes a double: the decimal is
    /// converted here, at the API boundary, and nowhere else.
    async fn publish(&self, report: &Report) -> Result<usize, Error> {
        let workload = report.workload.as_deref().unwrap_or("_account");
        let data: Vec<MetricDatum> = report
            .regions
            .iter()
            .map(|r| {
                MetricDatum::builder()
                    .metric_name(METRIC_NAME)
                    .dimensions(
                        Dimension::builder()
                            .name("Workload")
                            .value(workload)
                            .build(),
                    )
                    .dimensions(Dimension::builder().name("Region").value(&r.region).build())
                    .value(r.total.to_f64().unwrap_or(0.0))
                    .unit(StandardUnit::None)
                    .build()
            })
            .collect();
        for chunk in data.chunks(500) {
            self.cloudwatch
                .put_metric_data()
                .namespace(METRIC_NAMESPACE)
                .set_metric_data(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| Error::from_sdk("cloudwatch", "PutMetricData", e))?;
        }
        Ok(data.len())
    }
}

#[derive(Deserialize)]
struct StoredSummary {
    period: Period,
    total: Decimal,
    regions: Vec<StoredRegion>,
}

#[derive(Deserialize)]
struct StoredRegion {
    region: String,
    total: Decimal,
}

/// Why one part could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PartError {
    /// Its data is bad.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// S3 said no.
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

/// Reads one part into `agg`, its format told by its first bytes (blocking thread).
pub fn read_part(
    agg: &mut Aggregator,
    s3: &aws_sdk_s3::Client,
    handle: &tokio::runtime::Handle,
    part: &Part,
    table: Table,
) -> Result<(), PartError> {
    let object = S3Object::open(s3.clone(), handle.clone(), &part.bucket, &part.key)?;
    let file = part.uri();
    match Format::sniff(&object.head()) {
        Format::Parquet => {
            pq::read(agg, &file, object, Some(table))?;
        }
        Format::GzipCsv => {
            agg.read_table(&file, object.stream()?, Compression::Gzip, Some(table))?;
        }
        Format::Csv => {
            agg.read_table(&file, object.stream()?, Compression::None, Some(table))?;
        }
    }
    Ok(())
}

/// A parse failure as the error contract names it: broken data is `InvalidInput`
/// (file and line in the message); a failed read of the body is transient.
pub fn parse_error(e: ParseError) -> Error {
    match e {
        ParseError::Source { .. } => Error::TransientDependency {
            service: "s3",
            operation: "GetObject",
            source: Box::new(e),
        },
        ParseError::Parquet {
            source: parquet::errors::ParquetError::External(ref inner),
            ..
        } if inner.is::<cur::SourceError>() => Error::TransientDependency {
            service: "s3",
            operation: "GetObject",
            source: Box::new(e),
        },
        other => Error::InvalidInput(other.to_string()),
    }
}

/// The workload's scope: its tag, and every resource its spec names.
pub fn scope(spec: &WorkloadSpec, tag_key: &str) -> Scope {
    let mut resources = HashSet::new();
    for r in &spec.regions {
        for b in &r.buckets {
            resources.insert(b.name.clone());
        }
        for t in &r.dynamodb_tables {
            resources.insert(t.clone());
        }
        for db in &r.databases {
            match db {
                DatabaseRef::RdsInstance { instance_id, .. } => {
                    resources.insert(instance_id.clone());
                }
                DatabaseRef::AuroraGlobal {
                    global_cluster_id,
                    cluster_id,
                } => {
                    resources.insert(global_cluster_id.clone());
                    resources.insert(cluster_id.clone());
                }
            }
        }
    }
    Scope {
        tag_key: tag_key.to_owned(),
        workload: spec.workload.clone(),
        resources,
    }
}

/// The drills of the period as windows for the aggregator.
pub fn drill_windows(runs: &[RunRecord], period: Period) -> Vec<DrillWindow> {
    report::drills_in(runs, period)
        .into_iter()
        .map(|run| DrillWindow {
            id: run.id.clone(),
            start_ms: run.started_at.0,
            end_ms: run.finished_at.map_or(run.started_at.0, |f| f.0),
            resources: report::drill_resources(run).into_iter().collect(),
        })
        .collect()
}
