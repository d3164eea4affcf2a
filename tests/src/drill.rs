//! The local failover drill: the whole chain against the emulators, shared by
//! `scripts/drill` (the `lifeboat-drill` binary) and the CI test `tests/tests/drill.rs`.
//!
//! 1. moto (Step Functions executing ASL, Lambda Invoke routed to `cargo lambda watch`,
//!    RDS promotions completing as on AWS) and `cargo lambda watch` with our binaries;
//! 2. a three-Region world: a local HTTP endpoint per Region, the hosted zone, weighted
//!    records, `CLOUDWATCH_METRIC` health checks and routing switches, the RDS writer and
//!    its cross-Region replicas, S3 buckets with replication, the table with the spec;
//! 3. the primary's health alarm, as the template defines it (with a shorter period);
//! 4. probe rounds (the EventBridge schedule's exact payload to health-probe), the
//!    primary broken, rounds until the probes call it unhealthy;
//! 5. the alarm evaluated from the metric data health-probe put into CloudWatch, set to
//!    ALARM, and its action delivered to failover-executor with the payload CloudWatch
//!    sends — the two hops moto cannot do, stood in for by this module;
//! 6. the `failover` execution that delivery starts, to its end; then checks of what it
//!    must have done (writer promoted, switch flipped, roles in the spec, lease released,
//!    run recorded) and the measured RTO, from the break to the target seen serving by
//!    the machine's own probe.
//!
//! Everything runs in the surviving Region (`eu-west-1`): moto replicates nothing
//! between Regions, and a failover must not need the failed one.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_cloudwatch as cw;
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use aws_types::SdkConfig;
use health_probe::loopback::LoopbackServer;
use lifeboat::model::Role;
use lifeboat::{DynamoStore, Store, UnixMillis, WorkloadSpec};
use serde_json::{Value, json};

use crate::data::{self, DataTier};
use crate::lambda::{LambdaWatch, free_port};
use crate::machines::{self, ACCOUNT};
use crate::moto::{MotoOptions, MotoServer};

/// The Region that fails.
pub const FAILED: &str = "us-east-1";
/// The Region the drill runs in, and the one the decision should pick (secondary, the
/// larger weight of the two survivors).
pub const SURVIVOR: &str = "eu-west-1";
/// The workload.
pub const WORKLOAD: &str = "checkout";
/// The EventBridge scheduled event health-probe gets every minute.
pub const SCHEDULED_PROBE: &str = include_str!("../../events/health-probe/scheduled-event.json");

/// What can go wrong on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The survivor's read replica named by the spec does not exist when the failover
    /// promotes it: the promotion is refused (`ResourceNotFound`) after the lease is
    /// taken, while the other data-tier branches run.
    PromotionRefused,
}

/// How to run the drill.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The failover machine's `timing.poll_seconds` (status and verification polls).
    pub poll_seconds: u32,
    /// The failover machine's `timing.verify_max_polls`.
    pub verify_max_polls: u32,
    /// The alarm's period. The template's alarm uses 60 s and three periods; the local
    /// alarm uses this period and one, so a drill takes seconds, not minutes.
    pub alarm_period_seconds: i32,
    /// A fault to inject.
    pub fault: Option<Fault>,
    /// Print progress as it goes.
    pub verbose: bool,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            poll_seconds: 1,
            verify_max_polls: 10,
            alarm_period_seconds: 10,
            fault: None,
            verbose: false,
        }
    }
}

/// One row of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// When it began, ms after the drill started.
    pub at_ms: f64,
    /// How long it took, ms.
    pub took_ms: f64,
    /// What.
    pub step: String,
    /// Detail.
    pub detail: String,
}

/// One thing the drill checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What must hold.
    pub what: String,
    /// Whether it held.
    pub ok: bool,
    /// What was seen.
    pub seen: String,
}

/// The drill's result.
#[derive(Debug, Clone, Default)]
pub struct DrillReport {
    /// Every step, harness and machine.
    pub timeline: Vec<Row>,
    /// Every check.
    pub checks: Vec<Check>,
    /// The failover execution's final status.
    pub execution_status: Option<String>,
    /// The failover execution's error, when it failed.
    pub execution_error: Option<(String, String)>,
    /// The failback execution's final status.
    pub failback_status: Option<String>,
    /// Break → the target seen serving by the machine's probe.
    pub rto_ms: Option<u64>,
    /// Break → the probes call the primary unhealthy.
    pub detection_ms: Option<u64>,
    /// The objective.
    pub rto_objective_ms: u64,
}

impl DrillReport {
    /// Whether every check held.
    pub fn ok(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.ok)
    }

    /// The failed checks.
    pub fn failures(&self) -> Vec<&Check> {
        self.checks.iter().filter(|c| !c.ok).collect()
    }

    /// The timeline, the checks and the measured RTO, as printed by `scripts/drill`.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n{:>9}  {:>9}  {:<34} detail",
            "t+ms", "took ms", "step"
        );
        let mut rows: Vec<&Row> = self.timeline.iter().collect();
        rows.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        for r in rows {
            let _ = writeln!(
                out,
                "{:>9.1}  {:>9.1}  {:<34} {}",
                r.at_ms, r.took_ms, r.step, r.detail
            );
        }
        let _ = writeln!(out, "\nChecks:");
        for c in &self.checks {
            let _ = writeln!(
                out,
                "  [{}] {} — {}",
                if c.ok { "ok" } else { "FAILED" },
                c.what,
                c.seen
            );
        }
        let ms = |v: Option<u64>| v.map_or("not measured".to_owned(), |v| format!("{v} ms"));
        let _ = writeln!(
            out,
            "\nDetection (break → probes call {FAILED} unhealthy): {}",
            ms(self.detection_ms)
        );
        let _ = writeln!(
            out,
            "Measured RTO (break → {SURVIVOR} seen serving by the failover's probe): {} (objective {} ms)",
            ms(self.rto_ms),
            self.rto_objective_ms
        );
        out
    }
}

/// Elapsed-time bookkeeping for the timeline.
#[derive(Debug)]
struct Clock {
    start: Instant,
    start_unix: UnixMillis,
    verbose: bool,
}

impl Clock {
    fn row(&self, report: &mut DrillReport, began: Instant, step: &str, detail: String) {
        let row = Row {
            at_ms: began.duration_since(self.start).as_secs_f64() * 1e3,
            took_ms: began.elapsed().as_secs_f64() * 1e3,
            step: step.to_owned(),
            detail,
        };
        if self.verbose {
            eprintln!("{:>9.1}  {:<34} {}", row.at_ms, row.step, row.detail);
        }
        report.timeline.push(row);
    }

    fn at_ms(&self, t: UnixMillis) -> f64 {
        t.0.saturating_sub(self.start_unix.0) as f64
    }
}

/// The running world: emulators, functions, endpoints and what was seeded.
#[derive(Debug)]
pub struct World {
    /// moto.
    pub moto: MotoServer,
    /// `cargo lambda watch` with our binaries.
    pub watch: LambdaWatch,
    /// The local HTTP endpoint of each Region.
    pub endpoints: BTreeMap<String, LoopbackServer>,
    /// Configuration for the survivor, pointed at moto.
    pub config: SdkConfig,
    /// The table name.
    pub table: String,
    /// The store over the survivor's table (the arbiter's replica).
    pub store: DynamoStore,
    /// The spec as stored.
    pub spec: WorkloadSpec,
    /// The RDS and S3 seeded.
    pub data: DataTier,
    /// The `failover` machine's ARN.
    pub failover_machine: String,
    /// The `failback` machine's ARN.
    pub failback_machine: String,
    /// The spec as seeded, before any failover: what the failback must restore.
    pub original: WorkloadSpec,
    /// The primary's health alarm (in the survivor).
    pub alarm_name: String,
    http: reqwest::Client,
}

/// The name the template gives the primary's health alarm in a Region's stack.
pub fn health_alarm_name(workload: &str, primary: &str, seen_from: &str) -> String {
    format!("lifeboat-{workload}-{primary}-unhealthy-seen-from-{seen_from}")
}

impl World {
    /// Starts the emulators and the functions, and seeds the world.
    pub async fn start(opts: &DrillOptions) -> anyhow::Result<World> {
        let watch_port = free_port()?;
        let moto = MotoServer::start_with(&MotoOptions {
            lambda_endpoint: Some(format!("http://127.0.0.1:{watch_port}")),
            execute_state_machines: true,
            complete_rds_promotion: true,
        })?;
        let config = moto.sdk_config(SURVIVOR).await;
        let table = crate::table::unique_name("drill");

        // One local endpoint per Region, and the spec pointing at them.
        let mut spec = crate::world::example_spec()?;
        let mut endpoints = BTreeMap::new();
        let alarm_name = health_alarm_name(WORKLOAD, FAILED, SURVIVOR);
        for r in &mut spec.regions {
            let server = LoopbackServer::start()
                .await
                .context("starting a local endpoint")?;
            for e in &mut r.endpoints {
                e.url = server.url("/health");
                e.timeout_ms = 500;
            }
            // The example's application alarms do not exist in this world; the failover
            // alarm is not in the spec either: failover-executor maps it by its metric's
            // `Workload` and `Region` dimensions, as for a deployed stack.
            r.alarms.clear();
            endpoints.insert(r.region.clone(), server);
        }
        spec.policy.probe_interval_seconds = 1;
        let spec = crate::route53::seed(&moto, &spec, "drill").await?;
        let data = data::seed(&config, &spec).await?;
        let mut spec = spec;
        if opts.fault == Some(Fault::PromotionRefused) {
            // The spec names a replica the survivor does not have (deleted, or never
            // created): RDS refuses the promotion with DBInstanceNotFound.
            let r = spec
                .regions
                .iter_mut()
                .find(|r| r.region == SURVIVOR)
                .context("no survivor in the spec")?;
            for db in &mut r.databases {
                if let lifeboat::model::DatabaseRef::RdsInstance { instance_id, .. } = db {
                    instance_id.push_str("-gone");
                }
            }
        }

        let replicas: Vec<&str> = spec
            .regions
            .iter()
            .map(|r| r.region.as_str())
            .filter(|r| *r != SURVIVOR)
            .collect();
        crate::table::create(&config, &table, &replicas).await?;
        let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &table);
        let spec = store.create_spec(&spec).await.context("storing the spec")?;

        // The primary's health alarm as template.yaml defines it, in the survivor's stack.
        let cw = cw::Client::new(&config);
        cw.put_metric_alarm()
            .alarm_name(&alarm_name)
            .alarm_description(format!(
                "The primary Region {FAILED} of {WORKLOAD} is unhealthy as probed from {SURVIVOR}."
            ))
            .namespace("Lifeboat")
            .metric_name("RegionHealthy")
            .dimensions(dimension("Workload", WORKLOAD))
            .dimensions(dimension("Region", FAILED))
            .statistic(cw::types::Statistic::Minimum)
            .period(opts.alarm_period_seconds)
            .evaluation_periods(1)
            .datapoints_to_alarm(1)
            .threshold(1.0)
            .comparison_operator(cw::types::ComparisonOperator::LessThanThreshold)
            .treat_missing_data("missing")
            .alarm_actions(machines::function_arn(SURVIVOR, "failover-executor"))
            .send()
            .await
            .context("PutMetricAlarm (the primary's health alarm)")?;

        let sfn = aws_sdk_sfn::Client::new(&config);
        let failover_machine = machines::create(&sfn, "failover", SURVIVOR).await?;
        let failback_machine = machines::create(&sfn, "failback", SURVIVOR).await?;
        let watch = LambdaWatch::start_stack(
            watch_port,
            &moto,
            SURVIVOR,
            &table,
            &[
                ("FAILOVER_STATE_MACHINE_ARN", failover_machine.clone()),
                (
                    "FAILOVER_ALARM_TIMING",
                    format!("{},{}", opts.poll_seconds, opts.verify_max_polls),
                ),
            ],
            &[
                "health-probe",
                "failover-executor",
                "replica-promoter",
                "traffic-shifter",
            ],
        )?;
        let original = spec.clone();
        Ok(World {
            moto,
            watch,
            endpoints,
            config,
            table,
            store,
            spec,
            data,
            failover_machine,
            failback_machine,
            original,
            alarm_name,
            http: reqwest::Client::new(),
        })
    }

    /// Invokes `function` through `cargo lambda watch`'s Invoke API: `Ok(payload)`, or
    /// `Err` with the function's `errorType` and message.
    pub async fn invoke(&self, function: &str, payload: &Value) -> anyhow::Result<Value> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.watch.endpoint()
        );
        let response = self
            .http
            .post(&url)
            .header("content-type", "application/json")
            .body(payload.to_string())
            .send()
            .await
            .with_context(|| format!("invoking {function}"))?;
        let status = response.status();
        let body = response
            .text()
            .await
            .with_context(|| format!("reading {function}'s answer"))?;
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        if !status.is_success() {
            bail!(
                "{function} failed ({status}): {} {}",
                value["errorType"].as_str().unwrap_or("?"),
                value["errorMessage"].as_str().unwrap_or("")
            );
        }
        Ok(value)
    }

    /// One probe round: the scheduled event EventBridge delivers every minute.
    pub async fn probe_round(&self) -> anyhow::Result<BTreeMap<String, String>> {
        let event: Value = serde_json::from_str(SCHEDULED_PROBE)?;
        let out = self.invoke("health-probe", &event).await?;
        let mut verdicts = BTreeMap::new();
        for w in out["workloads"].as_array().into_iter().flatten() {
            if w["workload"] != WORKLOAD {
                continue;
            }
            for r in w["regions"].as_array().into_iter().flatten() {
                verdicts.insert(
                    r["region"].as_str().unwrap_or("?").to_owned(),
                    r["verdict"].as_str().unwrap_or("?").to_owned(),
                );
            }
        }
        Ok(verdicts)
    }

    /// The alarm, evaluated as CloudWatch does from the data in moto: `Some(datapoints)`
    /// when the latest `datapoints_to_alarm` of `evaluation_periods` periods breach.
    pub async fn evaluate_alarm(&self) -> anyhow::Result<Option<Vec<(UnixMillis, f64)>>> {
        let cw = cw::Client::new(&self.config);
        let alarms = cw
            .describe_alarms()
            .alarm_names(&self.alarm_name)
            .send()
            .await
            .context("DescribeAlarms")?;
        let a = alarms
            .metric_alarms()
            .first()
            .context("the health alarm is gone")?;
        let period = a.period().unwrap_or(60);
        let periods = a.evaluation_periods().unwrap_or(1);
        let needed = a.datapoints_to_alarm().unwrap_or(periods);
        let threshold = a.threshold().unwrap_or(1.0);
        let now = i64::try_from(UnixMillis::now().0 / 1000).unwrap_or(i64::MAX);
        let start = now - i64::from(period) * i64::from(periods);
        let stats = cw
            .get_metric_statistics()
            .namespace(a.namespace().unwrap_or("Lifeboat"))
            .metric_name(a.metric_name().unwrap_or("RegionHealthy"))
            .set_dimensions(Some(a.dimensions().to_vec()))
            .start_time(cw::primitives::DateTime::from_secs(start))
            .end_time(cw::primitives::DateTime::from_secs(now + 1))
            .period(period)
            .statistics(cw::types::Statistic::Minimum)
            .send()
            .await
            .context("GetMetricStatistics")?;
        let mut points: Vec<(UnixMillis, f64)> = stats
            .datapoints()
            .iter()
            .filter_map(|d| {
                let t = d.timestamp()?.to_millis().ok()?;
                Some((UnixMillis(u64::try_from(t).ok()?), d.minimum()?))
            })
            .collect();
        points.sort_by_key(|(t, _)| std::cmp::Reverse(*t));
        points.truncate(usize::try_from(periods).unwrap_or(1));
        let breaching = points.iter().filter(|(_, v)| *v < threshold).count();
        Ok((breaching >= usize::try_from(needed).unwrap_or(1)).then_some(points))
    }

    /// Sets the alarm to ALARM in moto and returns the payload CloudWatch sends to a
    /// Lambda alarm action (the shape of `events/failover-executor/alarm-action.json`).
    pub async fn fire_alarm(&self, points: &[(UnixMillis, f64)]) -> anyhow::Result<Value> {
        let cw = cw::Client::new(&self.config);
        let before = cw
            .describe_alarms()
            .alarm_names(&self.alarm_name)
            .send()
            .await
            .context("DescribeAlarms")?;
        let a = before
            .metric_alarms()
            .first()
            .context("the health alarm is gone")?
            .clone();
        let stamp = |t: UnixMillis| t.rfc3339().replace('Z', "+0000");
        let values: Vec<String> = points.iter().map(|(_, v)| format!("{v:.1}")).collect();
        let reason = format!(
            "Threshold Crossed: {n} out of the last {n} datapoints [{}] were less than the threshold ({:.1}) (minimum {n} datapoint for OK -> ALARM transition).",
            values.join(", "),
            a.threshold().unwrap_or(1.0),
            n = points.len(),
        );
        let now = UnixMillis::now();
        let reason_data = json!({
            "version": "1.0",
            "queryDate": stamp(now),
            "statistic": "Minimum",
            "period": a.period().unwrap_or(60),
            "recentDatapoints": points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "threshold": a.threshold().unwrap_or(1.0),
        });
        cw.set_alarm_state()
            .alarm_name(&self.alarm_name)
            .state_value(cw::types::StateValue::Alarm)
            .state_reason(&reason)
            .state_reason_data(reason_data.to_string())
            .send()
            .await
            .context("SetAlarmState ALARM")?;
        let after = cw
            .describe_alarms()
            .alarm_names(&self.alarm_name)
            .send()
            .await
            .context("DescribeAlarms")?;
        let changed = after
            .metric_alarms()
            .first()
            .and_then(|a| a.state_updated_timestamp())
            .and_then(|t| t.to_millis().ok())
            .and_then(|t| u64::try_from(t).ok())
            .map_or(now, UnixMillis);
        let dimensions: serde_json::Map<String, Value> = a
            .dimensions()
            .iter()
            .filter_map(|d| Some((d.name()?.to_owned(), json!(d.value()?))))
            .collect();
        Ok(json!({
            "source": "aws.cloudwatch",
            "alarmArn": a.alarm_arn().map_or_else(
                || format!("arn:aws:cloudwatch:{SURVIVOR}:{ACCOUNT}:alarm:{}", self.alarm_name),
                str::to_owned,
            ),
            "accountId": ACCOUNT,
            "time": stamp(changed),
            "region": SURVIVOR,
            "alarmData": {
                "alarmName": self.alarm_name,
                "state": {
                    "value": "ALARM",
                    "reason": reason,
                    "reasonData": reason_data.to_string(),
                    "timestamp": stamp(changed),
                },
                "previousState": {
                    "value": a.state_value().map_or("INSUFFICIENT_DATA", |s| s.as_str()),
                    "reason": a.state_reason().unwrap_or_default(),
                    "timestamp": stamp(a.state_updated_timestamp()
                        .and_then(|t| t.to_millis().ok())
                        .and_then(|t| u64::try_from(t).ok())
                        .map_or(now, UnixMillis)),
                },
                "configuration": {
                    "description": a.alarm_description().unwrap_or_default(),
                    "metrics": [{
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": a.namespace().unwrap_or_default(),
                                "name": a.metric_name().unwrap_or_default(),
                                "dimensions": dimensions,
                            },
                            "period": a.period().unwrap_or(60),
                            "stat": "Minimum",
                        },
                        "returnData": true,
                    }],
                },
            },
        }))
    }

    /// The executions of the failover machine.
    pub async fn failover_executions(&self) -> anyhow::Result<Vec<String>> {
        let sfn = aws_sdk_sfn::Client::new(&self.config);
        let out = sfn
            .list_executions()
            .state_machine_arn(&self.failover_machine)
            .send()
            .await
            .context("ListExecutions")?;
        Ok(out
            .executions()
            .iter()
            .map(|e| e.execution_arn().to_owned())
            .collect())
    }
}

fn dimension(name: &str, value: &str) -> cw::types::Dimension {
    cw::types::Dimension::builder()
        .name(name)
        .value(value)
        .build()
}

/// The last Lambda task error of an execution (`errorType: message`): what a Catch
/// turned into the machine's own Fail state.
pub fn last_task_error(history: &[HistoryEvent]) -> Option<String> {
    history.iter().rev().find_map(|e| {
        let d = e.lambda_function_failed_event_details()?;
        Some(format!(
            "{}: {}",
            d.error().unwrap_or("?"),
            d.cause().unwrap_or_default()
        ))
    })
}

/// Each state of an execution: `(name, entered, exited)`, in the order entered.
pub fn states(history: &[HistoryEvent]) -> Vec<(String, UnixMillis, Option<UnixMillis>)> {
    let millis = |e: &HistoryEvent| {
        e.timestamp()
            .to_millis()
            .ok()
            .and_then(|t| u64::try_from(t).ok())
            .map_or(UnixMillis(0), UnixMillis)
    };
    let mut out: Vec<(String, UnixMillis, Option<UnixMillis>)> = Vec::new();
    for e in history {
        if let Some(d) = e.state_entered_event_details() {
            out.push((d.name().to_owned(), millis(e), None));
        } else if let Some(d) = e.state_exited_event_details() {
            // The latest entry of that name still open (loops enter a state again).
            if let Some(row) = out
                .iter_mut()
                .rev()
                .find(|(n, _, exit)| n == d.name() && exit.is_none())
            {
                row.2 = Some(millis(e));
            }
        }
    }
    out
}

async fn history(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> anyhow::Result<Vec<HistoryEvent>> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let out = sfn
            .get_execution_history()
            .execution_arn(execution_arn)
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .context("GetExecutionHistory")?;
        events.extend(out.events().iter().cloned());
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return Ok(events);
        }
    }
}

fn check(report: &mut DrillReport, what: &str, ok: bool, seen: impl Into<String>) {
    report.checks.push(Check {
        what: what.to_owned(),
        ok,
        seen: seen.into(),
    });
}

/// A drill in progress: the world, the clock and the report so far. [`run`] goes
/// through every stage; tests call the stages themselves to do something in between.
#[derive(Debug)]
pub struct Drill {
    /// The running world.
    pub world: World,
    /// The report so far.
    pub report: DrillReport,
    /// How it runs.
    pub opts: DrillOptions,
    clock: Clock,
    broke_at: Option<UnixMillis>,
}

impl Drill {
    /// Starts the emulators and the functions and seeds the world.
    pub async fn start(opts: &DrillOptions) -> anyhow::Result<Drill> {
        let clock = Clock {
            start: Instant::now(),
            start_unix: UnixMillis::now(),
            verbose: opts.verbose,
        };
        let mut report = DrillReport::default();
        let began = Instant::now();
        let world = World::start(opts).await?;
        report.rto_objective_ms = world.spec.policy.rto_seconds.saturating_mul(1000);
        clock.row(
            &mut report,
            began,
            "start emulators + seed world",
            format!(
                "moto {} · cargo lambda watch {} · endpoints {} · RDS writer + {} replicas · {} buckets · table {}",
                world.moto.endpoint(),
                world.watch.endpoint(),
                world
                    .endpoints
                    .iter()
                    .map(|(r, s)| format!("{r}={}", s.addr()))
                    .collect::<Vec<_>>()
                    .join(" "),
                world.data.replicas.len(),
                world.data.buckets.len(),
                world.table,
            ),
        );
        Ok(Drill {
            world,
            report,
            opts: opts.clone(),
            clock,
            broke_at: None,
        })
    }

    fn row(&mut self, began: Instant, step: &str, detail: String) {
        self.clock.row(&mut self.report, began, step, detail);
    }

    fn check(&mut self, what: &str, ok: bool, seen: impl Into<String>) {
        check(&mut self.report, what, ok, seen);
    }

    /// One probe round with every Region serving; checks they all are.
    pub async fn baseline(&mut self) -> anyhow::Result<()> {
        let began = Instant::now();
        let verdicts = self.world.probe_round().await?;
        let all_healthy = verdicts.len() == self.world.spec.regions.len()
            && verdicts.values().all(|v| v == "healthy");
        self.row(
            began,
            "probe round (scheduled event)",
            format!("{verdicts:?}"),
        );
        self.check(
            "every Region healthy before the break",
            all_healthy,
            format!("{verdicts:?}"),
        );
        Ok(())
    }

    /// Breaks the primary's endpoint and probes until the probes call it unhealthy
    /// (`failure_threshold` rounds); `true` when they did.
    pub async fn break_and_detect(&mut self) -> anyhow::Result<bool> {
        let began = Instant::now();
        let broke_at = UnixMillis::now();
        self.broke_at = Some(broke_at);
        self.world
            .endpoints
            .get(FAILED)
            .context("no endpoint for the failed Region")?
            .set_answer(503, r#"{"status":"down"}"#);
        self.row(
            began,
            &format!("break {FAILED}"),
            "its endpoint answers 503".into(),
        );

        let k = self.world.spec.policy.failure_threshold;
        let unhealthy_at = self
            .probe_until("unhealthy", k + 3, "after the break")
            .await?;
        self.report.detection_ms = unhealthy_at.map(|t| t.since(broke_at));
        let seen = self
            .report
            .detection_ms
            .map_or("never".into(), |ms| format!("after {ms} ms"));
        self.check(
            &format!("probes call {FAILED} unhealthy after failure_threshold = {k} rounds"),
            unhealthy_at.is_some(),
            seen,
        );
        Ok(unhealthy_at.is_some())
    }

    /// Probe rounds, one every 200 ms, until the probes give the failed Region
    /// `verdict` (at most `rounds`); when they did.
    async fn probe_until(
        &mut self,
        verdict: &str,
        rounds: u32,
        label: &str,
    ) -> anyhow::Result<Option<UnixMillis>> {
        for round in 1..=rounds {
            tokio::time::sleep(Duration::from_millis(200)).await;
            let began = Instant::now();
            let verdicts = self.world.probe_round().await?;
            let seen = verdicts.get(FAILED).cloned().unwrap_or_default();
            self.row(
                began,
                &format!("probe round {round} {label}"),
                format!("{FAILED}: {seen}"),
            );
            if seen == verdict {
                return Ok(Some(UnixMillis::now()));
            }
        }
        Ok(None)
    }

    /// Evaluates the alarm from the metric data (bounded) and, when it breaches, sets it
    /// to ALARM and returns the payload its action delivers.
    pub async fn alarm(&mut self) -> anyhow::Result<Option<Value>> {
        let began = Instant::now();
        let mut points = None;
        for _ in 0..50 {
            points = self.world.evaluate_alarm().await?;
            if points.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let detail = format!(
            "{}: {}",
            self.world.alarm_name,
            points.as_ref().map_or("not breaching".into(), |p| format!(
                "breaching, datapoints {:?}",
                p.iter().map(|(_, v)| *v).collect::<Vec<_>>()
            ))
        );
        self.row(began, "alarm evaluated (harness)", detail);
        let Some(points) = points else {
            self.check("the health alarm goes to ALARM", false, "never breached");
            return Ok(None);
        };
        let began = Instant::now();
        let payload = self.world.fire_alarm(&points).await?;
        self.row(
            began,
            "alarm → ALARM (SetAlarmState)",
            format!("state change at {}", payload["time"]),
        );
        Ok(Some(payload))
    }

    /// Delivers the alarm action to failover-executor; the execution it started.
    pub async fn deliver(&mut self, payload: &Value) -> anyhow::Result<Option<String>> {
        let began = Instant::now();
        let answer = self.world.invoke("failover-executor", payload).await?;
        let action = answer["actions"][0].clone();
        self.row(
            began,
            "alarm action → failover-executor",
            format!(
                "{} {}",
                action["outcome"].as_str().unwrap_or("?"),
                action["execution_name"].as_str().unwrap_or("")
            ),
        );
        let execution = action["execution_arn"].as_str().map(str::to_owned);
        self.check(
            "the alarm action starts a failover execution",
            execution.is_some() && action["outcome"] == "started",
            if execution.is_some() {
                action["outcome"].to_string()
            } else {
                answer.to_string()
            },
        );
        Ok(execution)
    }

    /// Waits for an execution of `machine` (bounded by `limit`), adds its states to the
    /// timeline as `  <machine>: <state>`, checks it succeeded (naming the task error a
    /// Catch turned into the Fail state), and returns its end and history.
    async fn follow(
        &mut self,
        machine: &str,
        execution: &str,
        limit: Duration,
    ) -> anyhow::Result<(machines::Finished, Vec<HistoryEvent>)> {
        let sfn = aws_sdk_sfn::Client::new(&self.world.config);
        let began = Instant::now();
        let end = machines::wait(&sfn, execution, limit).await?;
        self.row(
            began,
            &format!("{machine} execution"),
            format!("{:?}", end.status),
        );
        let events = history(&sfn, execution).await?;
        for (name, entered, exited) in states(&events) {
            if name.starts_with("Mark") || name.contains("Timing") {
                continue;
            }
            self.report.timeline.push(Row {
                at_ms: self.clock.at_ms(entered),
                took_ms: exited.map_or(0, |x| x.since(entered)) as f64,
                step: format!("  {machine}: {name}"),
                detail: String::new(),
            });
        }
        let seen = match (&end.error, last_task_error(&events)) {
            (Some((error, _)), Some(task)) => format!("{error} after {task}"),
            (Some((error, cause)), None) => format!("{error}: {cause}"),
            (None, _) => end.status.as_str().to_owned(),
        };
        self.check(
            &format!("the {machine} execution succeeds"),
            end.status == ExecutionStatus::Succeeded,
            seen,
        );
        Ok((end, events))
    }

    /// Waits for the failover execution (see [`Drill::follow`]) and measures the RTO:
    /// from the break to `MarkFinalize`, entered right after the machine's own probe
    /// saw the target serving.
    pub async fn await_failover(&mut self, execution: &str) -> anyhow::Result<()> {
        let limit = Duration::from_secs(
            60 + u64::from(self.opts.poll_seconds) * (20 + u64::from(self.opts.verify_max_polls)),
        );
        let (end, events) = self.follow("failover", execution, limit).await?;
        self.report.execution_status = Some(end.status.as_str().to_owned());
        self.report.execution_error = end.error;
        let serving_at = states(&events)
            .into_iter()
            .find(|(name, _, _)| name == "MarkFinalize")
            .map(|(_, entered, _)| entered);
        if let (Some(broke), Some(serving)) = (self.broke_at, serving_at) {
            self.report.rto_ms = Some(serving.since(broke));
        }
        Ok(())
    }

    /// Checks in the emulator what the failover must have done.
    pub async fn verify_failover(&mut self) -> anyhow::Result<()> {
        verify_failover(&self.world, &mut self.report).await
    }

    /// Stands in for the global table's replication (moto replicates nothing): copies
    /// what `from`'s table holds to the other Regions' tables, newer items only.
    pub async fn replicate(&mut self, from: &str) -> anyhow::Result<()> {
        let began = Instant::now();
        let to: Vec<&str> = self
            .world
            .spec
            .regions
            .iter()
            .map(|r| r.region.as_str())
            .filter(|r| *r != from)
            .collect();
        let n = crate::table::replicate(&self.world.config, &self.world.table, from, &to).await?;
        self.row(
            began,
            "global-table replication (harness)",
            format!("{n} item(s) from {from} to {}", to.join(", ")),
        );
        Ok(())
    }

    /// Repairs the failed Region's endpoint and probes until the probes call it
    /// healthy again (`recovery_threshold` rounds); `true` when they did.
    pub async fn recover(&mut self) -> anyhow::Result<bool> {
        let began = Instant::now();
        self.world
            .endpoints
            .get(FAILED)
            .context("no endpoint for the failed Region")?
            .set_healthy();
        self.row(
            began,
            &format!("repair {FAILED}"),
            "its endpoint answers 200".into(),
        );
        let m = self.world.spec.policy.recovery_threshold;
        let healthy = self
            .probe_until("healthy", m + 3, "after the repair")
            .await?
            .is_some();
        self.check(
            &format!("probes call {FAILED} healthy again after recovery_threshold = {m} rounds"),
            healthy,
            if healthy {
                "healthy"
            } else {
                "still unhealthy"
            },
        );
        Ok(healthy)
    }

    /// Starts the `failback` machine with the operator's console input (and the
    /// drill's timing), waits for it and adds its states to the timeline; the Region
    /// whose table holds its lease and writes (its arbiter), when it finished.
    pub async fn failback(&mut self) -> anyhow::Result<Option<String>> {
        let mut input: Value = serde_json::from_str(FAILBACK_INPUT)?;
        input["timing"] = json!({
            "poll_seconds": self.opts.poll_seconds,
            "verify_max_polls": self.opts.verify_max_polls,
            "lag_max_polls": self.opts.verify_max_polls,
        });
        let sfn = aws_sdk_sfn::Client::new(&self.world.config);
        let began = Instant::now();
        let exec = sfn
            .start_execution()
            .state_machine_arn(&self.world.failback_machine)
            .name("drill-failback")
            .input(input.to_string())
            .send()
            .await
            .context("StartExecution (failback)")?;
        self.row(
            began,
            "operator starts failback",
            "input events/failback/operator-request.json + timing".into(),
        );
        let limit = Duration::from_secs(
            120 + u64::from(self.opts.poll_seconds)
                * (40 + 6 * u64::from(self.opts.verify_max_polls)),
        );
        let (end, _) = self.follow("failback", exec.execution_arn(), limit).await?;
        self.report.failback_status = Some(end.status.as_str().to_owned());
        // Where its lease and fenced writes went: the run records the decided arbiter.
        let output: Value = end
            .output
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default();
        Ok(output["run"]["details"]["arbiter_region"]
            .as_str()
            .map(str::to_owned))
    }

    /// Checks in the emulator what the failback must have done.
    pub async fn verify_failback(&mut self) -> anyhow::Result<()> {
        let world = &self.world;
        let report = &mut self.report;
        let spec = world.store.get_spec(WORKLOAD).await?;
        let roles = |s: &WorkloadSpec| {
            s.regions
                .iter()
                .map(|r| (r.region.clone(), r.role, r.weight))
                .collect::<Vec<_>>()
        };
        check(
            report,
            "the roles and weights from before the failover are back in the spec",
            roles(&spec) == roles(&world.original),
            format!("{:?}", roles(&spec)),
        );
        check_writer(world, report, &spec, FAILED).await;
        check_bucket(world, report, &spec, FAILED).await?;
        check_switch(world, report, &spec, "OK").await?;
        check_lease_released(world, report).await?;
        let runs = world.store.list_runs(WORKLOAD).await?;
        let failback = runs
            .iter()
            .rev()
            .find(|r| r.kind == lifeboat::store::RunKind::Failback);
        check(
            report,
            "the failback run is recorded as succeeded with its stages",
            failback.is_some_and(|r| {
                r.outcome == lifeboat::store::RunOutcome::Succeeded
                    && r.timeline.iter().any(|e| e.step == "shift_stage")
            }),
            failback.map_or("no failback run".into(), |r| {
                format!(
                    "{:?}, steps {:?}",
                    r.outcome,
                    r.timeline
                        .iter()
                        .map(|e| e.step.as_str())
                        .collect::<Vec<_>>()
                )
            }),
        );
        Ok(())
    }
}

/// The failback machine's console input the drill starts it with.
pub const FAILBACK_INPUT: &str = include_str!("../../events/failback/operator-request.json");

/// Runs the whole chain and returns its report (an `Err` only when the harness itself
/// could not run; a failover that did not happen is a report with failed checks).
pub async fn run(opts: &DrillOptions) -> anyhow::Result<DrillReport> {
    let mut drill = Drill::start(opts).await?;
    drill.baseline().await?;
    if !drill.break_and_detect().await? {
        return Ok(drill.report);
    }
    let Some(payload) = drill.alarm().await? else {
        return Ok(drill.report);
    };
    let Some(execution) = drill.deliver(&payload).await? else {
        return Ok(drill.report);
    };
    drill.await_failover(&execution).await?;
    drill.verify_failover().await?;
    if !drill.report.ok() || !drill.recover().await? {
        return Ok(drill.report);
    }
    drill.replicate(SURVIVOR).await?;
    // The failback's lease and writes are in its arbiter's table; the checks read the
    // survivor's.
    if let Some(arbiter) = drill.failback().await? {
        drill.replicate(&arbiter).await?;
    }
    drill.verify_failback().await?;
    Ok(drill.report)
}

/// What a failover must have done, checked in the emulator.
async fn verify_failover(world: &World, report: &mut DrillReport) -> anyhow::Result<()> {
    let spec = world.store.get_spec(WORKLOAD).await?;
    let role = |r: &str| spec.region(r).map(|r| (r.role, r.weight));
    check(
        report,
        &format!("{SURVIVOR} is the primary in the spec"),
        role(SURVIVOR).is_some_and(|(role, _)| role == Role::Primary),
        format!("{:?}", role(SURVIVOR)),
    );
    check(
        report,
        &format!("{FAILED} takes no traffic in the spec"),
        role(FAILED).is_some_and(|(role, weight)| role != Role::Primary && weight == 0),
        format!("{:?}", role(FAILED)),
    );

    check_writer(world, report, &spec, SURVIVOR).await;

    check_bucket(world, report, &spec, SURVIVOR).await?;
    check_switch(world, report, &spec, "ALARM").await?;
    check_lease_released(world, report).await?;
    let runs = world.store.list_runs(WORKLOAD).await?;
    let last = runs.last();
    check(
        report,
        "the run is recorded as succeeded with its timeline",
        last.is_some_and(|r| {
            r.outcome == lifeboat::store::RunOutcome::Succeeded && !r.timeline.is_empty()
        }),
        last.map_or("no run".into(), |r| {
            format!(
                "{:?}, {} timeline entries, measured RTO {:?} ms",
                r.outcome,
                r.timeline.len(),
                r.measured_rto_ms
            )
        }),
    );
    Ok(())
}

/// The Region's RDS database the spec names is a standalone writer (not a replica).
async fn check_writer(world: &World, report: &mut DrillReport, spec: &WorkloadSpec, region: &str) {
    let id = spec.region(region).and_then(|r| {
        r.databases.iter().find_map(|d| match d {
            lifeboat::model::DatabaseRef::RdsInstance { instance_id, .. } => {
                Some(instance_id.clone())
            }
            lifeboat::model::DatabaseRef::AuroraGlobal { .. } => None,
        })
    });
    let Some(id) = id else {
        check(
            report,
            &format!("{region} names its database"),
            false,
            "none",
        );
        return;
    };
    let source = data::replica_source(&world.config, region, &id).await;
    check(
        report,
        &format!("{id} in {region} is a standalone writer"),
        matches!(source, Ok(None)),
        match &source {
            Ok(None) => "standalone".into(),
            Ok(Some(s)) => format!("still a replica of {s}"),
            Err(e) => format!("{e:#}"),
        },
    );
}

/// The failed Region's routing-switch alarm is in `state` (`ALARM`: traffic off).
async fn check_switch(
    world: &World,
    report: &mut DrillReport,
    spec: &WorkloadSpec,
    state: &str,
) -> anyhow::Result<()> {
    let switch = spec
        .region(FAILED)
        .and_then(|r| r.routing_switch.clone())
        .context("the failed Region has no routing switch")?;
    let (seen, _) =
        crate::route53::alarm(&world.config, &switch.region, &switch.alarm_name).await?;
    let onoff = if state == "OK" { "on" } else { "off" };
    check(
        report,
        &format!(
            "{FAILED}'s routing switch {onoff} ({} in {} {state})",
            switch.alarm_name, switch.region
        ),
        seen == state,
        seen,
    );
    Ok(())
}

async fn check_lease_released(world: &World, report: &mut DrillReport) -> anyhow::Result<()> {
    let lease = world.store.get_lease(WORKLOAD).await?;
    check(
        report,
        "the lease is released",
        lease.is_none(),
        format!("{lease:?}"),
    );
    Ok(())
}

/// The Region's first bucket replicates to every other Region (it is the writer's).
async fn check_bucket(
    world: &World,
    report: &mut DrillReport,
    spec: &WorkloadSpec,
    region: &str,
) -> anyhow::Result<()> {
    let bucket = spec
        .region(region)
        .and_then(|r| r.buckets.first())
        .map(|b| b.name.clone())
        .unwrap_or_default();
    let to = data::replicates_to(&world.config, region, &bucket).await?;
    check(
        report,
        &format!("{bucket} replicates to the other Regions"),
        to.len() == spec.regions.len() - 1,
        format!("{to:?}"),
    );
    Ok(())
}
