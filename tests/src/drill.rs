//! The local failover drill: the whole chain in the twin, shared by `scripts/drill` (the
//! `lifeboat-drill` binary) and the CI test `tests/tests/drill.rs`.
//!
//! 1. moto with the twin (`scripts/twin/`: alarms that evaluate themselves and fire their
//!    actions, EventBridge that delivers, Route 53 health checks and a DNS server, RDS
//!    that takes time and breaks, Regions that hang) and `cargo lambda watch` with our
//!    binaries;
//! 2. the world built from `template.yaml` (one stack per Region: alarms, health checks,
//!    schedules, rules, permissions; [`crate::stacks`]), a workload endpoint per Region
//!    on its own loopback address, the hosted zone with weighted records, the RDS writer
//!    and its cross-Region replicas, S3 buckets with replication, the table with the spec;
//! 3. the scheduled probes (the prober stack's EventBridge schedule) see every Region
//!    healthy and DNS answers every Region;
//! 4. us-east-1 breaks as a Region does: its endpoint and every AWS API signed for it
//!    hang, Route 53's control plane (served from us-east-1) too;
//! 5. nothing else is done by the harness until traffic has moved: the probes call the
//!    primary unhealthy, the primary's health alarm (as the template defines it) goes to
//!    ALARM by itself, its action starts the `failover` execution;
//! 6. the RTO as a client sees it (from the break to the first DNS answer without the
//!    failed Region plus a request served by the survivor it names), beside the internal
//!    one (break to `finalize`), and the failed Region stays out of DNS for five
//!    switch-alarm periods;
//! 7. the Region is repaired, the failback runs from the operator's console input, and
//!    DNS answers the home Region again.
//!
//! Everything the functions do runs in the surviving Region (`eu-west-1`). What the
//! harness still stands in for is listed in the report ([`STAND_INS`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use aws_sdk_sfn::types::{ExecutionStatus, HistoryEvent};
use aws_types::SdkConfig;
use lifeboat::model::Role;
use lifeboat::store::Verdict;
use lifeboat::{DynamoStore, Store, UnixMillis, WorkloadSpec};
use serde_json::{Value, json};

use crate::data::{self, DataTier};
use crate::lambda::{LambdaWatch, free_port};
use crate::machines;
use crate::moto::{MotoOptions, MotoServer};
use crate::stacks::{Deployed, StackInputs};
use crate::twin::{self, Twin, TwinRow, WorkloadEndpoint};

/// The Region that fails.
pub const FAILED: &str = "us-east-1";
/// The Region the drill runs in, and the one the decision should pick (secondary, the
/// larger weight of the two survivors).
pub const SURVIVOR: &str = "eu-west-1";
/// The workload.
pub const WORKLOAD: &str = "checkout";

/// What the harness still does itself, with why (README, "What the harness stands in for").
pub const STAND_INS: [&str; 2] = [
    "global-table replication between Regions: moto's tables are independent; the harness copies newer items (spec by version, lease by epoch, health by observed_at, switch positions by set_at, runs and events when absent) after the failover, and every second while the failback runs",
    "S3 object replication: moto keeps replication configuration but copies no object; the drill checks the configuration, and the failover reads no object",
];

/// What can go wrong on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The survivor's read replica named by the spec does not exist when the failover
    /// promotes it: the promotion is refused (`ResourceNotFound`) after the lease is
    /// taken, while the other data-tier branches run.
    PromotionRefused,
}

/// How to run the drill. Every field is a named local input, printed in the timeline.
#[derive(Debug, Clone)]
pub struct DrillOptions {
    /// The failover machine's `timing.poll_seconds` for an alarm-started failover
    /// (failover-executor's `FAILOVER_ALARM_TIMING`) and the failback's input.
    pub poll_seconds: u32,
    /// The failover machine's `timing.verify_max_polls`.
    pub verify_max_polls: u32,
    /// How many real seconds a CloudWatch/EventBridge minute lasts in the twin
    /// (`twin.minute_seconds`): the template's 60 s alarm periods and `rate(1 minute)`
    /// schedules run at this pace, so a drill takes minutes, not an hour.
    pub minute_seconds: f64,
    /// The spec's `policy.probe_interval_seconds` here: the example's 10 s compressed as
    /// the twin compresses a minute (10 s is a sixth of a minute: 1 s of a 6-s minute),
    /// so the rounds keep pace with the 10-s failover alarms.
    pub probe_interval_seconds: u32,
    /// The stack's `ProbeWindowSeconds` (and the function's window) here: 55 s of a
    /// minute compressed, rounded down so an invocation ends before the next starts.
    pub probe_window_seconds: u32,
    /// How long an RDS promotion takes (`rds.promote_seconds`).
    pub promote_seconds: f64,
    /// How long creating an RDS read replica takes (`rds.replica_create_seconds`).
    pub replica_create_seconds: f64,
    /// The failback's `timing.soak_seconds` (each traffic stage soaks this long before the
    /// next; 300 s on AWS).
    pub soak_seconds: u32,
    /// Switch-alarm periods to watch after the failover (at least five).
    pub hold_periods: u32,
    /// A fault to inject.
    pub fault: Option<Fault>,
    /// The spec's `policy.cooldown_seconds`, when not the example's (an hour): tests of
    /// failovers in a row shorten it.
    pub cooldown_seconds: Option<u64>,
    /// Print progress as it goes.
    pub verbose: bool,
}

impl Default for DrillOptions {
    fn default() -> Self {
        DrillOptions {
            poll_seconds: 1,
            verify_max_polls: 20,
            minute_seconds: 6.0,
            probe_interval_seconds: 1,
            probe_window_seconds: 5,
            soak_seconds: 2,
            promote_seconds: 3.0,
            replica_create_seconds: 2.0,
            hold_periods: 5,
            fault: None,
            cooldown_seconds: None,
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
    /// Every step: harness, twin and machine.
    pub timeline: Vec<Row>,
    /// Every check.
    pub checks: Vec<Check>,
    /// The named local inputs (settings, stack parameters, timing).
    pub local_inputs: Vec<String>,
    /// The failover execution's final status.
    pub execution_status: Option<String>,
    /// The failover execution's error, when it failed.
    pub execution_error: Option<(String, String)>,
    /// The failback execution's final status.
    pub failback_status: Option<String>,
    /// Break → the failover's `finalize` (the machine saw the target serving).
    pub rto_ms: Option<u64>,
    /// Break → a client's DNS answer no longer names the failed Region and the survivor
    /// it names serves.
    pub client_rto_ms: Option<u64>,
    /// Break → the probes call the primary unhealthy.
    pub detection_ms: Option<u64>,
    /// Break → the primary's health alarm in ALARM.
    pub alarm_ms: Option<u64>,
    /// The objective.
    pub rto_objective_ms: u64,
    /// The errors of the failover's Lambda tasks that failed (and were retried or
    /// caught), in order.
    pub failover_task_errors: Vec<String>,
    /// What the functions asked of the failed Region (and of Route 53's control plane)
    /// from the break to the end of the failover, from the twin's call log.
    pub calls_to_failed: Vec<twin::ApiCall>,
    /// What the same automatic failover takes on AWS with `template.yaml`'s settings
    /// (not the twin's compressed minute), term by term: `lifeboat::rto`.
    pub rto_budget: Option<lifeboat::rto::RtoBudget>,
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
            "\nLocal inputs (named overrides of the twin and the stacks):"
        );
        for i in &self.local_inputs {
            let _ = writeln!(out, "  {i}");
        }
        let _ = writeln!(out, "Stand-ins (what the harness still does itself):");
        for s in STAND_INS {
            let _ = writeln!(out, "  {s}");
        }
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
            "Alarm (break → the primary's health alarm in ALARM): {}",
            ms(self.alarm_ms)
        );
        let _ = writeln!(
            out,
            "RTO as a client sees it (break → DNS without {FAILED} and {SURVIVOR} serving): {} (objective {} ms)",
            ms(self.client_rto_ms),
            self.rto_objective_ms
        );
        let _ = writeln!(
            out,
            "Internal RTO (break → the failover's finalize): {}",
            ms(self.rto_ms)
        );
        if let Some(b) = &self.rto_budget {
            let _ = writeln!(
                out,
                "\nProjected on AWS for template.yaml's settings (the twin's minute is compressed, so the figures above are not AWS's; these are):\n{b}"
            );
        }
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
    /// moto with the twin.
    pub moto: MotoServer,
    /// The twin's controls.
    pub twin: Twin,
    /// `cargo lambda watch` with our binaries.
    pub watch: LambdaWatch,
    /// The environment the survivor stack's functions run with (beside what
    /// [`LambdaWatch::start_stack`] sets): what [`World::restart_watch`] starts again.
    watch_env: Vec<(&'static str, String)>,
    /// The workload endpoint of each Region (served by the twin).
    pub endpoints: BTreeMap<String, WorkloadEndpoint>,
    /// The twin's DNS server.
    pub dns: SocketAddr,
    /// The record a client resolves.
    pub record_name: String,
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
    /// The stacks deployed from `template.yaml`.
    pub stacks: Deployed,
    /// The `failover` machine's ARN.
    pub failover_machine: String,
    /// The `failback` machine's ARN.
    pub failback_machine: String,
    /// The spec as seeded, before any failover: what the failback must restore.
    pub original: WorkloadSpec,
    /// The primary's health alarm (in the survivor), as the template names it.
    pub alarm_name: String,
    /// The named local inputs.
    pub local_inputs: Vec<String>,
    /// How long a CloudWatch minute lasts in this twin (`twin.minute_seconds`).
    pub minute_seconds: f64,
    /// The example spec's `policy.probe_interval_seconds`, before the twin's pace
    /// replaced it (what the projection on AWS uses).
    pub original_probe_interval: u32,
    http: reqwest::Client,
}

/// The name the template gives the primary's health alarm in a Region's stack.
pub fn health_alarm_name(workload: &str, primary: &str, seen_from: &str) -> String {
    format!("lifeboat-{workload}-{primary}-unhealthy-seen-from-{seen_from}")
}

/// The survivor stack's functions that `cargo lambda watch` runs.
const WATCHED: [&str; 5] = [
    "health-probe",
    "failover-executor",
    "replica-promoter",
    "traffic-shifter",
    "deploy-wave",
];

impl World {
    /// Starts `cargo lambda watch` again on the same port, with the world's environment
    /// plus `extra` (a test's named local inputs, e.g. a report bucket).
    pub fn restart_watch(&mut self, extra: &[(&'static str, String)]) -> anyhow::Result<()> {
        let endpoint = self.watch.endpoint();
        let port: u16 = endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .with_context(|| format!("no port in {endpoint}"))?;
        let mut env = self.watch_env.clone();
        for (k, v) in extra {
            env.retain(|(key, _)| key != k);
            env.push((k, v.clone()));
        }
        // The old watch must let go of the port first (stopped, its port free again): a
        // stand-in holds the field meanwhile.
        let stand_in = LambdaWatch::start(free_port()?, &[], &[])?;
        std::mem::replace(&mut self.watch, stand_in).stop()?;
        self.watch =
            LambdaWatch::start_stack(port, &self.moto, SURVIVOR, &self.table, &env, &WATCHED)?;
        self.watch_env = env;
        Ok(())
    }

    /// Starts the emulators and the functions, and builds the world.
    pub async fn start(opts: &DrillOptions) -> anyhow::Result<World> {
        let watch_port = free_port()?;
        let settings: Vec<(String, Value)> = vec![
            ("twin.minute_seconds".into(), json!(opts.minute_seconds)),
            ("rds.promote_seconds".into(), json!(opts.promote_seconds)),
            (
                "rds.replica_create_seconds".into(),
                json!(opts.replica_create_seconds),
            ),
            // One cargo lambda watch runs one stack's functions: the survivor's.
            ("lambda.regions".into(), json!([SURVIVOR])),
            // As many invocations of a function as watch runs instances: the router
            // holds the rest, synchronous ones first (scripts/moto_server.py).
            ("lambda.instances".into(), json!(crate::lambda::CONCURRENCY)),
            // Caught-up replicas (the twin's default is 1 s): a planned move (the
            // failback, a planned failover) needs lag at or under
            // policy.planned_max_lag_seconds, 0 by default, and nothing here writes.
            ("rds.replica_lag_seconds".into(), json!(0)),
        ];
        let mut local_inputs: Vec<String> = settings
            .iter()
            .map(|(k, v)| format!("twin setting {k} = {v}"))
            .collect();
        let moto = MotoServer::start_with(&MotoOptions {
            lambda_endpoint: Some(format!("http://127.0.0.1:{watch_port}")),
            execute_state_machines: true,
            settings,
        })?;
        let twin = Twin::new(&moto);
        let config = moto.sdk_config(SURVIVOR).await;
        let table = crate::table::unique_name("drill");

        // A workload endpoint per Region, each on its own loopback address.
        let mut spec = crate::world::example_spec()?;
        let original_probe_interval = spec.policy.probe_interval_seconds;
        spec.policy.probe_interval_seconds = opts.probe_interval_seconds;
        local_inputs.push(format!(
            "spec policy.probe_interval_seconds = {} (the example's 10 s at the twin's pace)",
            opts.probe_interval_seconds
        ));
        if let Some(cooldown) = opts.cooldown_seconds {
            spec.policy.cooldown_seconds = cooldown;
            local_inputs.push(format!("spec policy.cooldown_seconds = {cooldown}"));
        }
        let mut endpoints = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for r in &mut spec.regions {
            let endpoint = twin.workload(&r.region).await?;
            for e in &mut r.endpoints {
                e.url.clone_from(&endpoint.url);
                e.timeout_ms = 500;
                e.body_contains = Some("ok".into());
            }
            // The example's application alarms do not exist in this world; the failover
            // alarm is not in the spec either: failover-executor maps it by its metric's
            // `Workload` and `Region` dimensions, as for a deployed stack.
            r.alarms.clear();
            // Nor its deploy gates' alarms (the failback's soak reads them).
            if let Some(d) = &mut r.deploy {
                d.alarms.clear();
            }
            addresses.insert(r.region.clone(), endpoint.address.clone());
            endpoints.insert(r.region.clone(), endpoint);
        }
        let record_name = spec
            .regions
            .first()
            .and_then(|r| r.dns.first())
            .map(|d| d.record_name.clone())
            .context("the example spec has no DNS record")?;

        // The stacks, as `sam deploy` would create them in every Region.
        let parameters = vec![
            // The template's 55-s window at the twin's pace: rounds every
            // probe_interval_seconds for most of each (compressed) minute.
            (
                "ProbeWindowSeconds".to_owned(),
                opts.probe_window_seconds.to_string(),
            ),
        ];
        for (k, v) in &parameters {
            local_inputs.push(format!("stack parameter {k} = {v}"));
        }
        local_inputs.push(format!(
            "failover-executor FAILOVER_ALARM_TIMING = {},{} (poll s, verify polls)",
            opts.poll_seconds, opts.verify_max_polls
        ));
        local_inputs.push(format!(
            "failback timing.soak_seconds = {} (300 on AWS)",
            opts.soak_seconds
        ));
        let inputs = StackInputs {
            table: table.clone(),
            probe_region: Some(SURVIVOR.to_owned()),
            parameters,
            ..StackInputs::default()
        };
        let (spec, stacks) =
            crate::route53::seed_world(&moto, &spec, "", &inputs, &addresses).await?;
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

        let sfn = aws_sdk_sfn::Client::new(&config);
        let failover_machine = machines::create(&sfn, "failover", SURVIVOR).await?;
        let failback_machine = machines::create(&sfn, "failback", SURVIVOR).await?;
        let dns = twin.dns_addr().await?;
        // The survivor stack's notification topic, as the template hands it to the
        // functions (`LIFEBOAT_NOTIFICATION_TOPIC_ARN: !Ref NotificationTopic`).
        let topic = stacks
            .stacks
            .get(SURVIVOR)
            .and_then(|s| s["resources"]["NotificationTopic"]["physical_id"].as_str())
            .context("the survivor's stack has no NotificationTopic")?
            .to_owned();
        let watch_env: Vec<(&'static str, String)> = vec![
            ("FAILOVER_STATE_MACHINE_ARN", failover_machine.clone()),
            (
                "FAILOVER_ALARM_TIMING",
                format!("{},{}", opts.poll_seconds, opts.verify_max_polls),
            ),
            (
                "LIFEBOAT_PROBE_WINDOW_SECONDS",
                opts.probe_window_seconds.to_string(),
            ),
            // traffic-shifter's `resolve` asks the twin's DNS server, as a client
            // (on AWS: the Lambda's resolver, from /etc/resolv.conf).
            ("LIFEBOAT_DNS_RESOLVER", dns.to_string()),
            (lifeboat::notify::ENV_TOPIC, topic),
        ];
        let watch =
            LambdaWatch::start_stack(watch_port, &moto, SURVIVOR, &table, &watch_env, &WATCHED)?;
        let original = spec.clone();
        Ok(World {
            moto,
            twin,
            watch,
            watch_env,
            endpoints,
            dns,
            record_name,
            config,
            table,
            store,
            spec,
            data,
            stacks,
            failover_machine,
            failback_machine,
            original,
            alarm_name: health_alarm_name(WORKLOAD, FAILED, SURVIVOR),
            local_inputs,
            minute_seconds: opts.minute_seconds,
            original_probe_interval,
            http: reqwest::Client::builder()
                .timeout(Duration::from_millis(500))
                .build()
                .context("an HTTP client")?,
        })
    }

    /// Invokes `function` through `cargo lambda watch`'s Invoke API: `Ok(payload)`, or
    /// `Err` with the function's `errorType` and message.
    pub async fn invoke(&self, function: &str, payload: &Value) -> anyhow::Result<Value> {
        let url = format!(
            "{}/2015-03-31/functions/{function}/invocations",
            self.watch.endpoint()
        );
        let response = reqwest::Client::new()
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

    /// The workload's Region codes, in the spec's order.
    pub fn region_codes(&self) -> Vec<String> {
        self.spec.regions.iter().map(|r| r.region.clone()).collect()
    }

    /// The verdict the probes last wrote for each Region (in the survivor's table).
    pub async fn verdicts(&self) -> anyhow::Result<BTreeMap<String, Verdict>> {
        Ok(self
            .store
            .get_health(WORKLOAD)
            .await?
            .into_iter()
            .map(|h| (h.region, h.verdict))
            .collect())
    }

    /// The Regions whose addresses `queries` DNS answers for the workload's record
    /// name through the twin's resolver (weighted: one record per answer).
    pub async fn dns_regions(&self, queries: u32) -> anyhow::Result<BTreeMap<String, u32>> {
        ClientView::of(self).named(queries).await
    }

    /// Whether the workload endpoint of `region`, reached at its DNS address, serves.
    pub async fn serves(&self, region: &str) -> bool {
        let Some(e) = self.endpoints.get(region) else {
            return false;
        };
        match self.http.get(&e.url).send().await {
            Ok(r) => r.status().is_success(),
            Err(_) => false,
        }
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

    /// The primary's health alarm state.
    pub async fn alarm_state(&self) -> anyhow::Result<String> {
        Ok(
            crate::route53::alarm(&self.config, SURVIVOR, &self.alarm_name)
                .await?
                .0,
        )
    }
}

/// What a client of the workload sees: the twin's DNS answers and the endpoints they
/// name. Cloned into the task that measures the client's RTO while the failover runs.
#[derive(Debug, Clone)]
struct ClientView {
    dns: SocketAddr,
    record_name: String,
    endpoints: BTreeMap<String, WorkloadEndpoint>,
    http: reqwest::Client,
}

impl ClientView {
    fn of(world: &World) -> ClientView {
        ClientView {
            dns: world.dns,
            record_name: world.record_name.clone(),
            endpoints: world.endpoints.clone(),
            http: world.http.clone(),
        }
    }

    /// The Regions `queries` DNS answers name (weighted routing answers one record at a
    /// time), by the workload endpoints' addresses.
    async fn named(&self, queries: u32) -> anyhow::Result<BTreeMap<String, u32>> {
        let mut named: BTreeMap<String, u32> = BTreeMap::new();
        for _ in 0..queries {
            let answer = twin::resolve_a(self.dns, &self.record_name).await?;
            for a in answer.addresses {
                let region = self
                    .endpoints
                    .iter()
                    .find(|(_, e)| e.address == a.to_string())
                    .map_or_else(|| a.to_string(), |(r, _)| r.clone());
                *named.entry(region).or_insert(0) += 1;
            }
        }
        Ok(named)
    }

    /// One look as a client: the Regions `queries` answers name, and whether each of
    /// them served a request.
    async fn look(&self, queries: u32) -> (BTreeMap<String, u32>, bool) {
        let named = self.named(queries).await.unwrap_or_default();
        let mut all_serve = !named.is_empty();
        for region in named.keys() {
            let served = match self.endpoints.get(region) {
                Some(e) => self
                    .http
                    .get(&e.url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success()),
                None => false,
            };
            all_serve &= served;
        }
        (named, all_serve)
    }

    /// Polls until the answers no longer name `failed` and what they name serves;
    /// when that first held (bounded by `limit`). Weighted routing answers one record
    /// at random per query, so one look is 40 queries (a Region of weight 50 is missing
    /// from all of them once in 10^12), and it counts only when the next look agrees.
    async fn until_recovered(&self, failed: &str, limit: Duration) -> Option<UnixMillis> {
        let deadline = Instant::now() + limit;
        let mut clear_since: Option<UnixMillis> = None;
        while Instant::now() < deadline {
            let at = UnixMillis::now();
            let (named, serves) = self.look(CLIENT_QUERIES).await;
            if !named.is_empty() && !named.contains_key(failed) && serves {
                match clear_since {
                    Some(first) => return Some(first),
                    None => clear_since = Some(at),
                }
            } else {
                clear_since = None;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        None
    }
}

/// DNS queries in one look of a client: see [`ClientView::until_recovered`].
const CLIENT_QUERIES: u32 = 40;

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
    twin_seen: u64,
    client: Option<tokio::task::JoinHandle<Option<UnixMillis>>>,
    replicator: Option<tokio::task::JoinHandle<()>>,
    replicated: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// Twin timeline kinds the drill's timeline shows (the rest is in `GET /_twin/timeline`).
const TWIN_KINDS: [&str; 9] = [
    "cloudwatch.alarm",
    "cloudwatch.action",
    "events.delivery",
    "fault.set",
    "fault.cleared",
    "rds.status",
    "rds.replication",
    "route53.health",
    "lambda.timeout",
];

/// The failover machine's tasks in one verification round (failover.asl.json).
const VERIFY_TASKS_PER_POLL: u64 = 4;
impl Drill {
    /// Starts the emulators and the functions and builds the world.
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
        // On AWS: the spec's own policy, not the twin's compressed probe interval.
        let mut on_aws = world.spec.clone();
        on_aws.policy.probe_interval_seconds = world.original_probe_interval;
        report.rto_budget = Some(lifeboat::rto::budget_for(
            &on_aws,
            &lifeboat::rto::Deployed::default(),
            &lifeboat::rto::Scenario {
                from_region: FAILED.to_owned(),
                to_region: SURVIVOR.to_owned(),
                start: lifeboat::rto::Start::Alarm,
                planned: false,
            },
        ));
        report.local_inputs.clone_from(&world.local_inputs);
        let resources: usize = world
            .stacks
            .stacks
            .values()
            .map(|s| s["resources"].as_object().map_or(0, |r| r.len()))
            .sum();
        clock.row(
            &mut report,
            began,
            "start twin + deploy template.yaml",
            format!(
                "moto {} · cargo lambda watch {} · {} stacks, {resources} resources from template.yaml · endpoints {} · DNS {} · RDS writer + {} replicas · table {}",
                world.moto.endpoint(),
                world.watch.endpoint(),
                world.stacks.stacks.len(),
                world
                    .endpoints
                    .iter()
                    .map(|(r, e)| format!("{r}={}", e.address))
                    .collect::<Vec<_>>()
                    .join(" "),
                world.dns,
                world.data.replicas.len(),
                world.table,
            ),
        );
        // The world is the template's: every deployed property as template.yaml (with
        // the named inputs) says.
        let mut drift = Vec::new();
        for region in world.stacks.stacks.keys() {
            drift.extend(world.twin.drift(region).await?);
        }
        check(
            &mut report,
            "the twin's alarms, health checks, rules and permissions are template.yaml's (no drift)",
            drift.is_empty(),
            format!("{drift:?}"),
        );
        Ok(Drill {
            world,
            report,
            opts: opts.clone(),
            clock,
            broke_at: None,
            twin_seen: 0,
            client: None,
            replicator: None,
            replicated: std::sync::Arc::default(),
        })
    }

    fn row(&mut self, began: Instant, step: &str, detail: String) {
        self.clock.row(&mut self.report, began, step, detail);
    }

    fn check(&mut self, what: &str, ok: bool, seen: impl Into<String>) {
        check(&mut self.report, what, ok, seen);
    }

    /// A CloudWatch minute in the twin.
    fn minute(&self) -> Duration {
        Duration::from_secs_f64(self.opts.minute_seconds.max(0.1))
    }

    /// Adds what the twin did since the last call to the timeline.
    pub async fn twin_rows(&mut self) -> anyhow::Result<Vec<TwinRow>> {
        let rows = self.world.twin.timeline(self.twin_seen).await?;
        if let Some(last) = rows.last() {
            self.twin_seen = last.seq + 1;
        }
        for r in &rows {
            if !TWIN_KINDS.contains(&r.kind.as_str()) || is_noise(r) {
                continue;
            }
            let at = UnixMillis((r.at * 1000.0) as u64);
            self.report.timeline.push(Row {
                at_ms: self.clock.at_ms(at),
                took_ms: 0.0,
                step: format!("  twin: {}", r.kind),
                detail: r.detail.clone(),
            });
        }
        Ok(rows)
    }

    /// Waits (bounded by `limit`) until the probes' verdicts satisfy `done`; when.
    async fn until_verdicts(
        &mut self,
        limit: Duration,
        done: impl Fn(&BTreeMap<String, Verdict>) -> bool,
    ) -> anyhow::Result<(Option<UnixMillis>, BTreeMap<String, Verdict>)> {
        let deadline = Instant::now() + limit;
        loop {
            let verdicts = self.world.verdicts().await?;
            if done(&verdicts) {
                return Ok((Some(UnixMillis::now()), verdicts));
            }
            if Instant::now() > deadline {
                return Ok((None, verdicts));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The scheduled probes see every Region healthy and DNS answers every Region.
    pub async fn baseline(&mut self) -> anyhow::Result<()> {
        let began = Instant::now();
        let regions = self.world.spec.regions.len();
        let limit = self.minute() * 6;
        let (at, verdicts) = self
            .until_verdicts(limit, |v| {
                v.len() == regions && v.values().all(|v| *v == Verdict::Healthy)
            })
            .await?;
        self.row(
            began,
            "scheduled probes (EventBridge)",
            format!("{verdicts:?}"),
        );
        self.check(
            "the prober's schedule probes every Region healthy before the break",
            at.is_some(),
            format!("{verdicts:?}"),
        );
        let began = Instant::now();
        // 100 queries: a Region of weight 20 is missing from all of them once in 10^9.
        let named = self.world.dns_regions(100).await?;
        self.row(began, "DNS answers (100 queries)", format!("{named:?}"));
        self.check(
            "DNS answers every Region before the break",
            named.len() == regions,
            format!("{named:?}"),
        );
        self.twin_rows().await?;
        Ok(())
    }

    /// Breaks the primary as a Region breaks (its endpoint and its AWS APIs hang, and
    /// Route 53's control plane, served from it, too), starts the client's RTO watch,
    /// and waits for the probes to call it unhealthy; `true` when they did.
    pub async fn break_and_detect(&mut self) -> anyhow::Result<bool> {
        let began = Instant::now();
        let broke_at = UnixMillis::now();
        self.broke_at = Some(broke_at);
        self.world
            .twin
            .fault(json!({
                "region": FAILED,
                "mode": "hang",
                "targets": ["aws", "workload"],
                "route53_control_plane": true,
            }))
            .await?;
        self.row(
            began,
            &format!("break {FAILED}"),
            "its endpoint and its AWS APIs hang; Route 53's control plane too".into(),
        );
        let view = ClientView::of(&self.world);
        let limit = Duration::from_secs(600);
        self.client = Some(tokio::spawn(async move {
            view.until_recovered(FAILED, limit).await
        }));

        let k = self.world.spec.policy.failure_threshold;
        let limit = self.minute() * (k + 4);
        let (at, verdicts) = self
            .until_verdicts(limit, |v| v.get(FAILED) == Some(&Verdict::Unhealthy))
            .await?;
        self.report.detection_ms = at.map(|t| t.since(broke_at));
        self.row(began, "probes call it unhealthy", format!("{verdicts:?}"));
        let seen = self
            .report
            .detection_ms
            .map_or("never".into(), |ms| format!("after {ms} ms"));
        self.check(
            &format!("the scheduled probes call {FAILED} unhealthy (failure_threshold = {k})"),
            at.is_some(),
            seen,
        );
        // The hanging Region's APIs hold up nobody else's health: every other Region
        // was observed (and published) after the break.
        let health = self.world.store.get_health(WORKLOAD).await?;
        let stale: Vec<String> = health
            .iter()
            .filter(|h| h.region != FAILED && h.observed_at <= broke_at)
            .map(|h| format!("{} observed at {}", h.region, h.observed_at))
            .collect();
        self.check(
            &format!("the other Regions' health is still observed while {FAILED} hangs"),
            stale.is_empty() && health.len() == self.world.spec.regions.len(),
            format!("{stale:?}"),
        );
        self.twin_rows().await?;
        Ok(at.is_some())
    }

    /// The chain up to the end of the failover: baseline, break, the alarm firing by
    /// itself, the execution it starts, followed to its end (the tests' common start);
    /// that execution.
    pub async fn fail_over(&mut self) -> anyhow::Result<String> {
        self.baseline().await?;
        anyhow::ensure!(
            self.break_and_detect().await?,
            "the probes never called {FAILED} unhealthy:\n{}",
            self.report.render()
        );
        let execution = self
            .await_alarm_execution()
            .await?
            .context("the alarm starts no failover")?;
        self.await_failover(&execution).await?;
        Ok(execution)
    }

    /// Waits for the primary's health alarm to go to ALARM by itself and for the
    /// failover execution its action (or the EventBridge rule) starts; that execution.
    pub async fn await_alarm_execution(&mut self) -> anyhow::Result<Option<String>> {
        let began = Instant::now();
        let periods = self
            .world
            .stacks
            .parameters
            .get(SURVIVOR)
            .and_then(|p| p.get("FailoverEvaluationPeriods"))
            .and_then(|v| v.as_str().and_then(|s| s.parse::<u32>().ok()))
            .unwrap_or(3);
        let deadline = Instant::now() + self.minute() * (periods + 6);
        let mut alarm_at = None;
        let mut execution = None;
        while Instant::now() < deadline {
            if alarm_at.is_none() && self.world.alarm_state().await? == "ALARM" {
                alarm_at = Some(UnixMillis::now());
            }
            if let Some(e) = self.world.failover_executions().await?.first() {
                execution = Some(e.clone());
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if alarm_at.is_none() && self.world.alarm_state().await? == "ALARM" {
            alarm_at = Some(UnixMillis::now());
        }
        if let (Some(b), Some(a)) = (self.broke_at, alarm_at) {
            self.report.alarm_ms = Some(a.since(b));
        }
        self.row(
            began,
            "alarm fires, failover starts",
            format!(
                "{} → {} · execution {}",
                self.world.alarm_name,
                self.world.alarm_state().await?,
                execution.as_deref().unwrap_or("none")
            ),
        );
        self.check(
            "the primary's health alarm (template.yaml) goes to ALARM by itself",
            alarm_at.is_some(),
            self.world.alarm_state().await?,
        );
        self.check(
            "its action starts one failover execution",
            execution.is_some(),
            execution.clone().unwrap_or_else(|| "none".into()),
        );
        self.twin_rows().await?;
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
        // A run that does not end in time is a failed check with its history shown,
        // not a harness error that hides where it got stuck.
        let end = match machines::wait(&sfn, execution, limit).await {
            Ok(end) => end,
            Err(e) => machines::Finished {
                status: ExecutionStatus::Running,
                output: None,
                error: Some(("DrillTimeout".into(), format!("{e:#}"))),
            },
        };
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
        // A bound, not a pace: a minute, then per poll its wait and a second for each of
        // the four tasks of a verification round (RenewBeforeProbe, Probe, ResolveDns,
        // RenewVerify), for the verification's polls and twenty more for the data tier.
        // A run whose DNS never follows makes every verification poll; on two loaded
        // cores one second per round (the bound before) was not enough.
        let per_poll = u64::from(self.opts.poll_seconds) + VERIFY_TASKS_PER_POLL;
        let limit =
            Duration::from_secs(60 + per_poll * (20 + u64::from(self.opts.verify_max_polls)));
        let (end, events) = self.follow("failover", execution, limit).await?;
        self.report.execution_status = Some(end.status.as_str().to_owned());
        self.report.execution_error = end.error;
        self.report.failover_task_errors = events
            .iter()
            .filter_map(|e| e.lambda_function_failed_event_details())
            .map(|d| d.error().unwrap_or("?").to_owned())
            .collect();
        // Serving when verification passed: re-protection's mark (after traffic has
        // moved), or finalize's in a run without re-protection.
        let marks = states(&events);
        let serving_at = ["MarkReprotect", "MarkFinalize"].iter().find_map(|mark| {
            marks
                .iter()
                .find(|(name, _, _)| name == mark)
                .map(|(_, entered, _)| *entered)
        });
        if let (Some(broke), Some(serving)) = (self.broke_at, serving_at) {
            self.report.rto_ms = Some(serving.since(broke));
        }
        Ok(())
    }

    /// Checks in the emulator what the failover must have done.
    pub async fn verify_failover(&mut self) -> anyhow::Result<()> {
        verify_failover(&self.world, &mut self.report).await
    }

    /// The client's RTO: waits for the watch started at the break (bounded) and checks
    /// it against the objective.
    pub async fn client_rto(&mut self) -> anyhow::Result<()> {
        let began = Instant::now();
        let seen = match self.client.take() {
            Some(task) => tokio::time::timeout(Duration::from_secs(120), task)
                .await
                .ok()
                .and_then(Result::ok)
                .flatten(),
            None => None,
        };
        self.report.client_rto_ms = match (self.broke_at, seen) {
            (Some(b), Some(s)) => Some(s.since(b)),
            _ => None,
        };
        self.row(
            began,
            "client sees the failover",
            self.report
                .client_rto_ms
                .map_or("never".into(), |ms| format!("{ms} ms after the break")),
        );
        self.check(
            &format!("a client's DNS answers leave {FAILED} and the survivor they name serves, within the RTO objective"),
            self.report
                .client_rto_ms
                .is_some_and(|ms| ms <= self.report.rto_objective_ms),
            format!("{:?} ms", self.report.client_rto_ms),
        );
        Ok(())
    }

    /// Watches DNS for `hold_periods` switch-alarm periods after the failover: the
    /// failed Region must stay out of every answer (on AWS an alarm whose metric stops
    /// would otherwise bring it back), and its switch must stay off.
    pub async fn hold_out(&mut self) -> anyhow::Result<()> {
        let began = Instant::now();
        let until = Instant::now() + self.minute() * self.opts.hold_periods;
        let mut answers: BTreeMap<String, u32> = BTreeMap::new();
        let mut looks = 0;
        while Instant::now() < until {
            for (r, n) in self.world.dns_regions(8).await? {
                *answers.entry(r).or_insert(0) += n;
            }
            looks += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        self.row(
            began,
            &format!("hold: {} switch periods", self.opts.hold_periods),
            format!("{looks} looks, DNS named {answers:?}"),
        );
        self.check(
            &format!(
                "{FAILED} stays out of DNS for {} switch-alarm periods after the failover",
                self.opts.hold_periods
            ),
            looks > 0 && !answers.contains_key(FAILED) && !answers.is_empty(),
            format!("{answers:?}"),
        );
        let spec = self.world.store.get_spec(WORKLOAD).await?;
        check_switch(&self.world, &mut self.report, &spec, "ALARM").await?;
        self.twin_rows().await?;
        Ok(())
    }

    /// What the functions asked of the failed Region after the break, from the twin's
    /// call log (Route 53's control plane counted apart), as a timeline row.
    pub async fn calls_to_failed(&mut self) -> anyhow::Result<Vec<twin::ApiCall>> {
        let Some(broke) = self.broke_at else {
            return Ok(Vec::new());
        };
        let since = broke.0 as f64 / 1000.0;
        let calls: Vec<twin::ApiCall> = self
            .world
            .twin
            .calls(0)
            .await?
            .into_iter()
            .filter(|c| c.at >= since)
            .filter(|c| {
                c.region.as_deref() == Some(FAILED) || c.plane.as_deref() == Some("control")
            })
            .filter(|c| !matches!(c.caller.as_deref(), Some("aws") | Some("harness") | None))
            .collect();
        let mut by: BTreeMap<String, u32> = BTreeMap::new();
        for c in &calls {
            *by.entry(format!(
                "{} {}:{}{}",
                c.caller.as_deref().unwrap_or("?"),
                c.service.as_deref().unwrap_or("?"),
                c.operation.as_deref().unwrap_or("?"),
                c.fault
                    .as_deref()
                    .map_or(String::new(), |f| format!(" ({f})"))
            ))
            .or_insert(0) += 1;
        }
        self.report.timeline.push(Row {
            at_ms: self.clock.at_ms(UnixMillis::now()),
            took_ms: 0.0,
            step: format!("calls to {FAILED} after the break"),
            detail: format!("{by:?}"),
        });
        self.report.calls_to_failed.clone_from(&calls);
        Ok(calls)
    }

    /// Repairs the failed Region (every fault cleared) and waits for the scheduled
    /// probes to call it healthy again; `true` when they did.
    pub async fn recover(&mut self) -> anyhow::Result<bool> {
        let began = Instant::now();
        self.world.twin.clear_faults().await?;
        self.row(
            began,
            &format!("repair {FAILED}"),
            "every fault cleared".into(),
        );
        let m = self.world.spec.policy.recovery_threshold;
        let limit = self.minute() * (m + 4);
        let (at, verdicts) = self
            .until_verdicts(limit, |v| v.get(FAILED) == Some(&Verdict::Healthy))
            .await?;
        self.row(began, "probes call it healthy", format!("{verdicts:?}"));
        self.check(
            &format!("the scheduled probes call {FAILED} healthy again (recovery_threshold = {m})"),
            at.is_some(),
            format!("{verdicts:?}"),
        );
        self.twin_rows().await?;
        Ok(at.is_some())
    }

    /// After the failback, DNS answers the home Region again (bounded: its switch alarm
    /// and health check follow the metric within a few periods).
    pub async fn dns_back(&mut self) -> anyhow::Result<()> {
        let began = Instant::now();
        let deadline = Instant::now() + self.minute() * 6;
        let mut named = BTreeMap::new();
        while Instant::now() < deadline {
            named = self.world.dns_regions(20).await?;
            if named.contains_key(FAILED) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        let serves = self.world.serves(FAILED).await;
        self.row(began, "DNS after the failback", format!("{named:?}"));
        self.check(
            &format!("DNS answers {FAILED} again after the failback, and it serves"),
            named.contains_key(FAILED) && serves,
            format!("{named:?}, serves: {serves}"),
        );
        self.twin_rows().await?;
        Ok(())
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

    /// Stands in for the global table's replication while every Region is up (after
    /// the repair): a background task copies newer items between every pair of Regions
    /// about once a second, as eventual replication does, so a write in the failback's
    /// arbiter (a switch position, the lease) reaches the prober's replica while the
    /// failback runs, not only at its end. Stopped by [`Drill::stop_replication`].
    pub fn start_replication(&mut self) {
        let config = self.world.config.clone();
        let table = self.world.table.clone();
        let regions = self.world.region_codes();
        let copied = self.replicated.clone();
        self.replicator = Some(tokio::spawn(async move {
            loop {
                for from in &regions {
                    let to: Vec<&str> = regions
                        .iter()
                        .map(String::as_str)
                        .filter(|r| r != from)
                        .collect();
                    if let Ok(n) = crate::table::replicate(&config, &table, from, &to).await {
                        copied.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }));
        self.report.timeline.push(Row {
            at_ms: self.clock.at_ms(UnixMillis::now()),
            took_ms: 0.0,
            step: "global-table replication (harness)".into(),
            detail: "started: newer items copied between every pair of Regions each second".into(),
        });
    }

    /// Stops the replication stand-in after one last pass, and says what it copied.
    pub async fn stop_replication(&mut self) -> anyhow::Result<()> {
        if let Some(task) = self.replicator.take() {
            task.abort();
        }
        let regions = self.world.region_codes();
        for from in &regions {
            self.replicate(from).await?;
        }
        let n = self.replicated.load(std::sync::atomic::Ordering::Relaxed);
        self.report.timeline.push(Row {
            at_ms: self.clock.at_ms(UnixMillis::now()),
            took_ms: 0.0,
            step: "global-table replication (harness)".into(),
            detail: format!("stopped after {n} item(s) copied in the background"),
        });
        Ok(())
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
            "soak_seconds": self.opts.soak_seconds,
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

/// Twin rows too frequent to be worth a timeline line: the probe schedule's deliveries
/// (one per twin minute), and the retried deliveries to the stacks whose functions this
/// twin does not run (`lambda.regions`).
fn is_noise(row: &TwinRow) -> bool {
    row.kind == "events.delivery"
        && (row.detail.contains("function:lifeboat-health-probe")
            || row.detail.contains("not run by this twin"))
}

/// Runs the whole chain and returns its report (an `Err` only when the harness itself
/// could not run; a failover that did not happen is a report with failed checks).
pub async fn run(opts: &DrillOptions) -> anyhow::Result<DrillReport> {
    let mut drill = Drill::start(opts).await?;
    drill.baseline().await?;
    if !drill.break_and_detect().await? {
        return Ok(drill.report);
    }
    let Some(execution) = drill.await_alarm_execution().await? else {
        return Ok(drill.report);
    };
    drill.await_failover(&execution).await?;
    drill.client_rto().await?;
    drill.verify_failover().await?;
    drill.hold_out().await?;
    drill.calls_to_failed().await?;
    if !drill.report.ok() || !drill.recover().await? {
        drill.twin_rows().await?;
        return Ok(drill.report);
    }
    drill.replicate(SURVIVOR).await?;
    // Every Region is up again: the global table replicates (stood in for) while the
    // failback runs in its arbiter's replica; the checks read the survivor's.
    drill.start_replication();
    let failback = drill.failback().await;
    drill.stop_replication().await?;
    failback?;
    drill.verify_failback().await?;
    drill.dns_back().await?;
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
    // A switch turned on holds a one-minute alarm on `Minimum < 1`: the minute in which
    // it was turned on still holds the off datapoints, so the alarm is OK from the next
    // whole minute of on datapoints (health-probe re-asserts them). Off is at once: any
    // off datapoint makes the minute's minimum 0. Wait up to three twin minutes.
    let deadline = Instant::now() + Duration::from_secs_f64(world.minute_seconds * 3.0);
    let mut seen;
    loop {
        seen = crate::route53::alarm(&world.config, &switch.region, &switch.alarm_name)
            .await?
            .0;
        if seen == state || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
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

/// Polls `what` every 200 ms until it returns `Some`, at most `limit`.
pub async fn until<T, F, Fut>(limit: Duration, mut what: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(v) = what().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
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

/// Every event of an execution's history, in order.
pub async fn history(
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
