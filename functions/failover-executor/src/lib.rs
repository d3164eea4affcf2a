//! # failover-executor
//!
//! The Lifeboat Lambda that turns alarms and operator requests into failovers, and runs
//! the `failover` state machine's own steps:
//!
//! - [`request`]: every input and the dispatch that tells them apart;
//! - [`alarm`]: alarm → workload Region → a deterministically named execution;
//! - [`decide`]: the pure decision (target, roles and weights, arbiter, plan);
//! - [`failback`]: the pure failback decision (what to restore, from which failover run,
//!   in which traffic stages) and the readiness of the Region returned to;
//! - [`drill`]: the drill's plan (nested failover and failback), RTO/RPO measurement and
//!   the report (JSON + Markdown);
//! - [`moved`]: what a stopped run had moved (`partial`), and the run a new request
//!   continues;
//! - [`steps`]: `acquire`, `finalize` and `release` over the store, idempotent, for
//!   failovers, failbacks and drills alike;
//! - [`notices`]: what each step and request tells people (`lifeboat::notify`).
//!
//! [`Executor`] holds the clients built once in `main`; [`Executor::handle_at`] is the
//! whole handler with the clock passed in.

pub mod alarm;
pub mod decide;
pub mod drain;
pub mod drill;
pub mod failback;
pub mod moved;
pub mod notices;
pub mod request;
pub mod steps;

use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_types::SdkConfig;
use lambda_runtime::LambdaEvent;
use lifeboat::aws::RegionalClients;
use lifeboat::store::{LeasePurpose, LeaseRequest, SwitchPosition};
use lifeboat::{DynamoStore, Error, ErrorName, Result, Store, UnixMillis, WorkloadSpec};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::alarm::{Admitted, AlarmKind, Ignored};
use crate::request::{AlarmSignal, FailoverRequest, Input, RestoreRequest, Step};

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "failover-executor";

/// Environment variable naming the Lifeboat table.
pub const ENV_TABLE: &str = "LIFEBOAT_TABLE";
/// Environment variable with the `failover` state machine's ARN.
pub const ENV_STATE_MACHINE: &str = "FAILOVER_STATE_MACHINE_ARN";
/// Optional environment variable: the `timing` (`<poll_seconds>,<verify_max_polls>`)
/// that executions started by alarms carry; the machine's defaults when unset. Local
/// drills shorten the machine's waits with it, never by editing the machine.
pub const ENV_ALARM_TIMING: &str = "FAILOVER_ALARM_TIMING";
/// Optional environment variable: the deployed configuration the dry run projects the
/// RTO for ([`lifeboat::rto::Deployed`] as JSON, any part; the rest is the template's
/// defaults). The template sets it from the stack's parameters.
pub const ENV_DEPLOYED: &str = "LIFEBOAT_DEPLOYED";
/// Environment variable naming the S3 bucket drill reports go to (optional: only the
/// `report` step needs it, and fails with `ResourceNotFound` saying so without it).
pub const ENV_REPORT_BUCKET: &str = "LIFEBOAT_REPORT_BUCKET";

/// How long writing a failover's or failback's report may take (after the run is
/// recorded; the step's result does not wait longer).
pub const REPORT_WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(8);

/// What happened to one workload Region an alarm names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmAction {
    /// Workload id.
    pub workload: String,
    /// The Region the alarm is about.
    pub region: String,
    /// How the spec names the alarm.
    pub alarm_kind: AlarmKind,
    /// `started` (this call started the execution, or joined the running one with the
    /// same name and input), `already_exists` (an execution of that name exists) or
    /// `ignored`.
    pub outcome: String,
    /// Why it was ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignored: Option<Ignored>,
    /// The execution's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_name: Option<String>,
    /// The execution's ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
    /// What a drain or restore did, or why it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Who moves a Region and why, and the idempotency key of the move.
struct RegionMoveBy<'a> {
    by: &'a str,
    why: &'a str,
    key: &'a str,
}

/// What [`Executor::move_region`] did.
struct RegionMoved {
    outcome: String,
    detail: Option<String>,
    error: Option<Error>,
}

impl RegionMoved {
    fn no(outcome: &str, e: Error) -> RegionMoved {
        RegionMoved {
            outcome: outcome.into(),
            detail: Some(e.to_string()),
            error: Some(e),
        }
    }
}

/// The handler's clients and configuration, built once in `main`.
pub struct Executor {
    home_region: String,
    table: String,
    dynamo: RegionalClients<aws_sdk_dynamodb::Client>,
    cloudwatch: RegionalClients<aws_sdk_cloudwatch::Client>,
    sfn: aws_sdk_sfn::Client,
    s3: aws_sdk_s3::Client,
    state_machine_arn: String,
    report_bucket: Option<String>,
    alarm_timing: Option<request::Timing>,
    deployed: lifeboat::rto::Deployed,
    notifier: lifeboat::notify::Notifier,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("home_region", &self.home_region)
            .field("table", &self.table)
            .field("state_machine_arn", &self.state_machine_arn)
            .field("report_bucket", &self.report_bucket)
            .field("alarm_timing", &self.alarm_timing)
            .finish()
    }
}

impl Executor {
    /// Builds the clients from the one shared configuration. `config` must carry a
    /// Region (the executor's home: where it reads the spec and health).
    pub fn new(
        config: &SdkConfig,
        table: impl Into<String>,
        state_machine_arn: impl Into<String>,
    ) -> Result<Executor> {
        let home_region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .ok_or_else(|| Error::InvalidInput("the SDK configuration has no Region".into()))?;
        Ok(Executor {
            home_region,
            table: table.into(),
            dynamo: RegionalClients::new(config, aws_sdk_dynamodb::Client::new),
            cloudwatch: RegionalClients::new(config, aws_sdk_cloudwatch::Client::new),
            sfn: aws_sdk_sfn::Client::new(config),
            s3: s3_client(config),
            state_machine_arn: state_machine_arn.into(),
            report_bucket: None,
            alarm_timing: None,
            deployed: lifeboat::rto::Deployed::default(),
            notifier: lifeboat::notify::Notifier::disabled(),
        })
    }

    /// The `timing` of executions started by alarms (see [`ENV_ALARM_TIMING`]).
    pub fn with_alarm_timing(mut self, timing: Option<request::Timing>) -> Executor {
        self.alarm_timing = timing;
        self
    }

    /// The deployed configuration dry runs project the RTO for ([`ENV_DEPLOYED`]).
    pub fn with_deployed(mut self, deployed: lifeboat::rto::Deployed) -> Executor {
        self.deployed = deployed;
        self
    }

    /// The bucket drill reports go to (`LIFEBOAT_REPORT_BUCKET`); without one the
    /// `report` step fails with `ResourceNotFound` naming the variable.
    pub fn with_report_bucket(mut self, bucket: Option<String>) -> Executor {
        self.report_bucket = bucket.filter(|b| !b.trim().is_empty());
        self
    }

    /// Where notifications go ([`lifeboat::notify::Notifier`]); none by default.
    pub fn with_notifier(mut self, notifier: lifeboat::notify::Notifier) -> Executor {
        self.notifier = notifier;
        self
    }

    /// The store over `region`'s replica of the table.
    pub fn store(&self, region: &str) -> DynamoStore {
        DynamoStore::new(self.dynamo.get(region), &self.table)
    }

    fn home(&self) -> DynamoStore {
        self.store(&self.home_region)
    }

    /// The Lambda handler.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value> {
        let (payload, context) = event.into_parts();
        self.handle_at(payload, &context.request_id, UnixMillis::now())
            .await
    }

    /// The handler with the Lambda request id and the clock passed in.
    pub async fn handle_at(
        &self,
        payload: Value,
        request_id: &str,
        now: UnixMillis,
    ) -> Result<Value> {
        let (result, notices) = match Input::parse(payload)? {
            Input::Alarm(alarm) => (self.on_alarm(&alarm, now).await, Vec::new()),
            Input::Operator(req) => {
                let r = self.on_operator(&req, request_id, now).await;
                let n = notices::for_operator(&req, &r, now);
                (r, n)
            }
            Input::Step(step) => {
                let copy = step.clone();
                let r = self.on_step(step, now).await;
                let n = notices::for_step(&copy, &r, now);
                (r, n)
            }
            Input::Restore(req) => (self.on_restore(&req, request_id, now).await, Vec::new()),
        };
        // Best effort, after the fact is recorded: never the run's error.
        self.notifier.send_all(&notices).await;
        if let Err(e) = &result {
            tracing::warn!(error = %e.chain(), error_type = %e.name(), "Request refused");
        }
        result
    }

    async fn specs(&self) -> Result<Vec<WorkloadSpec>> {
        let home = self.home();
        let mut specs = Vec::new();
        for id in home.list_workloads().await? {
            match home.get_spec(&id).await {
                Ok(spec) => specs.push(spec),
                // Deleted meanwhile, or one corrupt spec: it must not stop the
                // failover of every other workload.
                Err(e)
                    if matches!(
                        e.name(),
                        ErrorName::WorkloadNotFound | ErrorName::CorruptItem
                    ) =>
                {
                    tracing::error!(workload = %id, error = %e.chain(), "Spec skipped");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(specs)
    }

    async fn on_alarm(&self, alarm: &AlarmSignal, now: UnixMillis) -> Result<Value> {
        let mut out = json!({
            "kind": "alarm",
            "alarm": alarm.name,
            "state": alarm.state,
            "changed_at": alarm.changed_at,
        });
        let specs = self.specs().await?;
        let targets = alarm::map_signal(&specs, alarm);
        if targets.is_empty() {
            if !alarm.in_alarm {
                tracing::info!(alarm = %alarm.name, state = alarm.state, "Alarm acknowledged");
                out["ignored"] = json!(Ignored::NotInAlarm);
                out["actions"] = json!([]);
                return Ok(out);
            }
            return Err(Error::InvalidInput(format!(
                "alarmName: alarm `{}` is not named by any workload's spec (regions[].alarms or a routing switch) and does not watch a workload Region's Lifeboat/RegionHealthy",
                alarm.name
            )));
        }
        let mut actions = Vec::with_capacity(targets.len());
        for t in &targets {
            let mut action = AlarmAction {
                workload: t.spec.workload.clone(),
                region: t.region.to_owned(),
                alarm_kind: t.kind,
                outcome: "ignored".into(),
                ignored: None,
                execution_name: None,
                execution_arn: None,
                detail: None,
            };
            match alarm::admit(t, alarm.state) {
                Err(why) => {
                    if why == Ignored::AwaitingRestore {
                        self.home()
                            .append_event(
                                &t.spec.workload,
                                &drain::recovered_event(t.region, alarm, now),
                            )
                            .await?;
                    }
                    action.ignored = Some(why);
                }
                Ok(Admitted::Failover) => {
                    let arbiter = lifeboat::store::lease_region(t.spec, &self.home_region);
                    match self.store(&arbiter).get_lease(&t.spec.workload).await? {
                        Some(l) if l.purpose == LeasePurpose::Failover && !l.is_expired(now) => {
                            action.ignored = Some(Ignored::FailoverInProgress);
                        }
                        _ => {
                            let name = alarm::execution_name(
                                &t.spec.workload,
                                &alarm.name,
                                alarm.changed_at,
                            );
                            let mut input = alarm::failover_request(t, alarm);
                            input.timing = self.alarm_timing;
                            let (arn, new) = self.start(&name, &input).await?;
                            action.outcome = if new { "started" } else { "already_exists" }.into();
                            action.execution_name = Some(name);
                            action.execution_arn = Some(arn);
                        }
                    }
                }
                Ok(m @ (Admitted::Drain | Admitted::Restore)) => {
                    let by = format!("alarm:{}", alarm.name);
                    let why = format!(
                        "alarm {} entered {} at {}: {}",
                        alarm.name, alarm.state, alarm.changed_at, alarm.reason
                    );
                    let key = format!("{}-{}", alarm.changed_at.0, alarm::fnv1a(&[&alarm.name]));
                    let moved = self
                        .move_region(
                            t.spec,
                            t.region,
                            m,
                            &RegionMoveBy {
                                by: &by,
                                why: &why,
                                key: &key,
                            },
                            now,
                        )
                        .await?;
                    action.outcome = moved.outcome;
                    action.detail = moved.detail;
                }
            }
            tracing::info!(
                alarm = %alarm.name,
                workload = %action.workload,
                region = %action.region,
                outcome = %action.outcome,
                ignored = ?action.ignored,
                execution = ?action.execution_name,
                detail = ?action.detail,
                "Alarm handled"
            );
            actions.push(action);
        }
        out["actions"] = json!(actions);
        Ok(out)
    }

    async fn on_restore(
        &self,
        req: &RestoreRequest,
        request_id: &str,
        now: UnixMillis,
    ) -> Result<Value> {
        let spec = self.home().get_spec(&req.workload).await?;
        let key = format!(
            "operator-{}",
            alarm::fnv1a(&[request_id, &req.requested_by])
        );
        let why = format!("operator request: {}", req.reason);
        let moved = self
            .move_region(
                &spec,
                &req.region,
                Admitted::Restore,
                &RegionMoveBy {
                    by: &req.requested_by,
                    why: &why,
                    key: &key,
                },
                now,
            )
            .await?;
        match moved.outcome.as_str() {
            "restored" => Ok(
                json!({"kind": "restore", "workload": req.workload, "region": req.region, "outcome": moved.outcome, "detail": moved.detail}),
            ),
            // An operator hears a refusal as the named error it is.
            _ => Err(moved.error.unwrap_or_else(|| {
                Error::InvalidInput(moved.detail.unwrap_or_else(|| "nothing to restore".into()))
            })),
        }
    }

    /// Drains or restores one Region: the pure decision ([`drain`]) over the arbiter's
    /// spec and the health, then — under a short `drain` lease in the arbiter Region,
    /// every write fenced — the switch (recorded, then its metric in the switch's
    /// Region, bounded: health-probe re-asserts the recorded position every round),
    /// the spec, the audit event, the release. Idempotent: a retry or a duplicate
    /// delivery finds the spec moved already and changes nothing.
    async fn move_region(
        &self,
        spec: &WorkloadSpec,
        region: &str,
        m: Admitted,
        by: &RegionMoveBy<'_>,
        now: UnixMillis,
    ) -> Result<RegionMoved> {
        // The one lease Region of every mover (not one derived from the Region drained).
        let arbiter_region = lifeboat::store::lease_region(spec, &self.home_region);
        let arbiter = self.store(&arbiter_region);
        let current = arbiter.get_spec(&spec.workload).await?;
        let health = self.home().get_health(&spec.workload).await?;
        let holder = format!("{}:{region}:{}", drain::verb(m), by.key);
        let planned = match m {
            Admitted::Restore => drain::restore(&current, &health, region, now).map(|s| (s, None)),
            _ => drain::drain(&current, &health, region, by.why, now).map(|(s, sh)| (s, Some(sh))),
        };
        let (after, shares) = match planned {
            Ok(p) => p,
            Err(e) if e.name() == ErrorName::InvalidInput => {
                // Done already (a duplicate delivery, a retry after the spec write):
                // let go of our lease if a retry left it behind.
                if let Some(l) = arbiter.get_lease(&spec.workload).await?
                    && l.holder == holder
                {
                    arbiter
                        .release_lease(&spec.workload, &holder, l.epoch, now)
                        .await?;
                }
                return Ok(RegionMoved::no(drain::done_already(m), e));
            }
            Err(e)
                if matches!(
                    e.name(),
                    ErrorName::FailoverUnwarranted | ErrorName::TargetUnhealthy
                ) =>
            {
                self.home()
                    .append_event(
                        &spec.workload,
                        &drain::refused_event(region, m, (by.by, by.why, by.key), &e, now),
                    )
                    .await?;
                return Ok(RegionMoved::no("refused", e));
            }
            Err(e) => return Err(e),
        };
        // A mover holding the lease (a failover, a deploy): `LeaseHeld`, and the
        // asynchronous invocation is retried (alarm actions and EventBridge retry).
        let lease = arbiter
            .acquire_lease(
                &LeaseRequest {
                    workload: spec.workload.clone(),
                    holder: holder.clone(),
                    purpose: LeasePurpose::Drain,
                    ttl: drain::LEASE_TTL,
                },
                now,
            )
            .await?;
        let on = m == Admitted::Restore;
        if let Some(switch) = current
            .region(region)
            .and_then(|r| r.routing_switch.as_ref())
        {
            let position = SwitchPosition {
                region: region.to_owned(),
                on,
                epoch: lease.epoch,
                set_at: now,
                set_by: holder.clone(),
            };
            arbiter
                .put_switch(&spec.workload, &position, lease.fence())
                .await?;
            let client = self.cloudwatch.get(&switch.region);
            match tokio::time::timeout(
                drain::SWITCH_TIMEOUT,
                lifeboat::switch::put(&client, switch, on),
            )
            .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e.chain(), region, "Switch metric not written; health-probe re-asserts it next round")
                }
                Err(_) => tracing::warn!(
                    region,
                    "Switch metric timed out; health-probe re-asserts it next round"
                ),
            }
        }
        let written = arbiter.put_spec(&after, Some(lease.fence())).await?;
        arbiter
            .append_event(
                &spec.workload,
                &drain::moved_event(
                    &current,
                    &written,
                    region,
                    m,
                    (by.by, by.why, by.key),
                    shares.as_ref(),
                    now,
                ),
            )
            .await?;
        arbiter
            .release_lease(&spec.workload, &holder, lease.epoch, now)
            .await?;
        Ok(RegionMoved {
            outcome: drain::done(m).into(),
            detail: Some(format!("spec version {}", written.version)),
            error: None,
        })
    }

    async fn on_operator(
        &self,
        req: &FailoverRequest,
        request_id: &str,
        now: UnixMillis,
    ) -> Result<Value> {
        let home = self.home();
        let spec = home.get_spec(&req.workload).await?;
        let health = home.get_health(&req.workload).await?;
        let decision = decide::decide(&spec, &health, req, &self.home_region, now)?;
        // Refuse now what `acquire` would refuse at once, so the operator hears it:
        // another failover. A deploy is taken over and a failback or drill waited for
        // by the execution's `acquire`; `force` takes over from anyone.
        let arbiter = self.store(&decision.arbiter_region);
        if let Some(l) = arbiter.get_lease(&req.workload).await?
            && !l.is_expired(now)
            && steps::contest(decision.purpose(), req.force, l.purpose) == steps::Contest::Refuse
        {
            return Err(l.held());
        }
        let arbiter_spec = arbiter.get_spec(&req.workload).await?;
        steps::check_cooldown(&arbiter_spec, &arbiter.list_runs(&req.workload).await?, now)?;
        if req.dry_run {
            // What the same run takes on AWS, term by term, for this stack's settings.
            let rto = lifeboat::rto::budget_for(
                &spec,
                &self.deployed,
                &lifeboat::rto::Scenario {
                    from_region: decision.from_region.clone(),
                    to_region: decision.to_region.clone(),
                    start: lifeboat::rto::Start::Operator,
                    planned: req.mode == request::Mode::Planned,
                },
            );
            return Ok(json!({
                "kind": "operator",
                "dry_run": true,
                "decision": decision,
                "rto_budget": rto,
                "rto_budget_table": rto.to_string(),
            }));
        }
        let key = match (&req.request_id, request_id) {
            (Some(id), _) => id.clone(),
            (None, id) if !id.is_empty() => id.to_owned(),
            (None, _) => serde_json::to_string(req).unwrap_or_default(),
        };
        let name = alarm::operator_execution_name(req, &key);
        let (arn, new) = self.start(&name, req).await?;
        Ok(json!({
            "kind": "operator",
            "dry_run": false,
            "outcome": if new { "started" } else { "already_exists" },
            "execution_name": name,
            "execution_arn": arn,
            "decision": decision,
        }))
    }

    async fn on_step(&self, step: Step, now: UnixMillis) -> Result<Value> {
        match step {
            Step::Decide(input) => {
                input.request.check()?;
                let home = self.home();
                let spec = home.get_spec(&input.request.workload).await?;
                let health = home.get_health(&input.request.workload).await?;
                let (request, promoted) =
                    self.continuing(&spec, &health, &input.request, now).await?;
                let d = match decide::decide_continuing(
                    &spec,
                    &health,
                    &request,
                    &self.home_region,
                    now,
                    promoted.as_deref(),
                ) {
                    Err(e @ Error::FailoverUnwarranted { .. }) => {
                        // An alarm that Lifeboat's own probes do not bear out: nothing
                        // moves, and it is on the record for whoever is paged.
                        home.append_event(
                            &spec.workload,
                            &steps::unwarranted_event(&input.request, &e, now),
                        )
                        .await?;
                        return Err(e);
                    }
                    other => other?,
                };
                to_value(&d)
            }
            Step::Acquire(input) => {
                let store = self.arbiter_store(&input.decision)?;
                to_value(&steps::acquire(&store, &input, now).await?)
            }
            Step::Renew(input) => {
                let store = self.arbiter_store(&input.decision)?;
                to_value(&steps::renew(&store, &input, now).await?)
            }
            Step::Finalize(input) => {
                let store = self.arbiter_store(&input.decision)?;
                let out = steps::finalize(&store, &input, now).await?;
                self.write_run_report(&store, &input.decision, &out.run)
                    .await;
                to_value(&out)
            }
            Step::Release(input) => {
                let store = self.arbiter_store(&input.decision)?;
                let out = steps::release(&store, &input, now).await?;
                self.write_run_report(&store, &input.decision, &out.run)
                    .await;
                to_value(&out)
            }
            Step::DecideFailback(input) => {
                input.request.check()?;
                let home = self.home();
                let spec = home.get_spec(&input.request.workload).await?;
                let health = home.get_health(&input.request.workload).await?;
                // Runs are read in the table the failback leases in (its arbiter) and in
                // this Region's replica: the failover being undone recorded its run in
                // *its* arbiter, which is another Region once the primary has moved, so
                // the arbiter's copy may still be replicating (a drill starts its
                // failback seconds after its failover). One record per id, the ended one
                // first.
                let arbiter = lifeboat::store::lease_region(&spec, &self.home_region);
                let mut runs = self.store(&arbiter).list_runs(&spec.workload).await?;
                if arbiter != self.home_region {
                    runs.extend(home.list_runs(&spec.workload).await?);
                }
                let runs = failback::one_per_id(runs);
                let d = failback::decide_failback(
                    &spec,
                    &runs,
                    &health,
                    &input.request,
                    &self.home_region,
                    now,
                )?;
                to_value(&d)
            }
            Step::CheckLag(input) => {
                let d = &input.decision;
                let home = self.home();
                let spec = home.get_spec(&d.workload).await?;
                let health = home.get_health(&d.workload).await?;
                let record = health.iter().find(|h| h.region == d.to_region);
                let mut r = failback::readiness(&spec, record, now);
                r.region.clone_from(&d.to_region);
                tracing::info!(
                    workload = %d.workload,
                    region = %d.to_region,
                    ready = r.ready,
                    lag_seconds = ?r.lag_seconds,
                    "Replication checked"
                );
                to_value(&r)
            }
            Step::PrepareDrill(input) => {
                let home = self.home();
                let spec = home.get_spec(&input.request.workload).await?;
                let prepared = drill::prepare(&spec, &input.request, &input.holder)?;
                if input.request.dry_run {
                    // What the drill would do, and nothing done: the machine ends here.
                    let health = home.get_health(&input.request.workload).await?;
                    let plan = drill::plan(
                        &spec,
                        &health,
                        &input.request,
                        &input.holder,
                        &self.home_region,
                        now,
                    )?;
                    return Ok(json!({"dry_run": true, "plan": plan, "drill": prepared}));
                }
                let mut out = to_value(&prepared)?;
                out["dry_run"] = json!(false);
                Ok(out)
            }
            Step::Report(input) => to_value(&self.report(&input.state, now).await?),
        }
    }

    /// The `report` step: measures the drill, writes `drills/<workload>/<run id>.json`
    /// and `.md` to the report bucket, and the `RUN#` record (kind `drill`) to the home
    /// Region's table. Idempotent: the same state gives the same objects and record.
    async fn report(
        &self,
        state: &drill::DrillState,
        now: UnixMillis,
    ) -> Result<drill::DrillReport> {
        let bucket = self
            .report_bucket
            .clone()
            .ok_or_else(|| Error::ResourceNotFound {
                kind: "drill report bucket (environment variable LIFEBOAT_REPORT_BUCKET is not set)",
                id: ENV_REPORT_BUCKET.to_owned(),
                region: self.home_region.clone(),
            })?;
        let mut report = drill::build_report(state, now);
        let (json_key, markdown_key) = drill::report_keys(&report.workload, &report.run_id);
        let (_, html_key) = lifeboat::report::report_keys(
            lifeboat::store::RunKind::Drill,
            &report.workload,
            &report.run_id,
        );
        report.location = Some(drill::ReportLocation {
            bucket: bucket.clone(),
            json_key: json_key.clone(),
            markdown_key: markdown_key.clone(),
            html_key: Some(html_key.clone()),
        });
        let json = serde_json::to_vec_pretty(&report)
            .map_err(|e| Error::InvalidInput(format!("cannot encode the report: {e}")))?;
        let markdown = drill::render_markdown(&report);
        self.put_object(&bucket, &json_key, json, "application/json")
            .await?;
        self.put_object(
            &bucket,
            &markdown_key,
            markdown.into_bytes(),
            "text/markdown; charset=utf-8",
        )
        .await?;
        let run = lifeboat::store::RunRecord {
            id: report.run_id.clone(),
            kind: lifeboat::store::RunKind::Drill,
            started_at: report.started_at,
            finished_at: Some(report.finished_at),
            outcome: report.outcome,
            timeline: report.timeline.clone(),
            measured_rto_ms: report.rto.measured_ms,
            measured_rpo_ms: report.rpo.measured_ms,
            rpo_simulated: report.rpo.simulated,
            details: json!({
                "operation": "drill",
                "objectives_met": report.objectives_met,
                "rto": report.rto,
                "rpo": report.rpo,
                "failover": report.failover,
                "failback": report.failback,
                "prepared": report.prepared,
                "primary_region": report.primary_region,
                "target_region": report.target_region,
                "replication": report.replication,
                "error": report.error,
                "report": report.location,
            }),
        };
        // The page people read, beside the JSON and the Markdown.
        let ctx = lifeboat::report::Context {
            objectives: Some(lifeboat::report::Objectives {
                rto_seconds: state.prepare.rto_seconds,
                rpo_seconds: state.prepare.rpo_seconds,
            }),
            plan: Vec::new(),
        };
        let html = lifeboat::report::html(&report.workload, &run, &ctx);
        self.put_object(
            &bucket,
            &html_key,
            html.into_bytes(),
            "text/html; charset=utf-8",
        )
        .await?;
        // No lease is held between the nested runs: the record is its own item.
        self.home().put_run(&report.workload, &run, None).await?;
        if let Some(n) = lifeboat::notify::run_ended(&report.workload, &run, None) {
            self.notifier.send(&n).await;
        }
        tracing::info!(
            workload = %report.workload,
            run = %report.run_id,
            outcome = ?report.outcome,
            rto_ms = ?report.rto.measured_ms,
            rpo_ms = ?report.rpo.measured_ms,
            rpo_simulated = report.rpo.simulated,
            "Drill reported"
        );
        // EMF goes to stdout as a bare JSON line, beside the tracing log lines.
        if let Some(line) = drill::emf_line(&report) {
            println!("{line}");
        }
        Ok(report)
    }

    /// Writes a failover's or failback's report, `<run>.json` and `<run>.html`
    /// ([`lifeboat::report::report_keys`]), to the report bucket. Best effort and
    /// bounded: the run is recorded already and a report must not fail it (logged);
    /// without a bucket, nothing. Idempotent: the same run gives the same objects.
    async fn write_run_report(
        &self,
        store: &DynamoStore,
        d: &decide::Decision,
        run: &lifeboat::store::RunRecord,
    ) {
        let Some(bucket) = self.report_bucket.clone() else {
            return;
        };
        let objectives =
            store
                .get_spec(&d.workload)
                .await
                .ok()
                .map(|spec| lifeboat::report::Objectives {
                    rto_seconds: spec.policy.rto_seconds,
                    rpo_seconds: spec.policy.rpo_seconds,
                });
        let ctx = lifeboat::report::Context {
            objectives,
            plan: d
                .plan
                .steps
                .iter()
                .map(|p| lifeboat::report::PlanLine {
                    step: p.step.clone(),
                    summary: p.summary.clone(),
                })
                .collect(),
        };
        // A drill's nested failover and failback are filed under runs/ with the others:
        // drills/ holds the drills' own reports.
        let kind = match d.operation {
            decide::Operation::Failover => lifeboat::store::RunKind::Failover,
            decide::Operation::Failback => lifeboat::store::RunKind::Failback,
        };
        let (json_key, html_key) = lifeboat::report::report_keys(kind, &d.workload, &run.id);
        let html = lifeboat::report::html(&d.workload, run, &ctx);
        let json = match serde_json::to_vec_pretty(run) {
            Ok(j) => j,
            Err(e) => {
                tracing::warn!(run = %run.id, error = %e, "Run report not encoded");
                return;
            }
        };
        let write = async {
            self.put_object(&bucket, &json_key, json, "application/json")
                .await?;
            self.put_object(
                &bucket,
                &html_key,
                html.into_bytes(),
                "text/html; charset=utf-8",
            )
            .await
        };
        match tokio::time::timeout(REPORT_WRITE_TIMEOUT, write).await {
            Ok(Ok(())) => {
                tracing::info!(workload = %d.workload, run = %run.id, key = %html_key, "Run report written");
            }
            Ok(Err(e)) => {
                tracing::warn!(workload = %d.workload, run = %run.id, error = %e.chain(), "Run report not written");
            }
            Err(_) => {
                tracing::warn!(workload = %d.workload, run = %run.id, "Run report timed out");
            }
        }
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<()> {
        let res = self
            .s3
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(body.into())
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
                    == Some("NoSuchBucket") =>
            {
                Err(Error::ResourceNotFound {
                    kind: "S3 bucket",
                    id: bucket.to_owned(),
                    region: self.home_region.clone(),
                })
            }
            Err(e) => Err(Error::from_sdk("s3", "PutObject", e)),
        }
    }

    /// The request to decide: the same request as a run that ended `partial` (same
    /// workload and kind, failing away from the same Region, the same target if one is
    /// named) continues forward to that run's target, named as if the operator had,
    /// when the decision still takes it; else it is decided anew (`TargetUnhealthy`:
    /// the old target is no longer a valid choice). The runs are read in the
    /// arbiter's table, where the partial run was recorded.
    /// Also returns the Region whose data tier the partial run already promoted (its
    /// recorded `moved.databases`), which the decision does not gate on lag.
    async fn continuing(
        &self,
        spec: &WorkloadSpec,
        health: &[lifeboat::store::HealthRecord],
        req: &FailoverRequest,
        now: UnixMillis,
    ) -> Result<(FailoverRequest, Option<String>)> {
        let Some(from) = req
            .failed_region
            .clone()
            .or_else(|| spec.primary().map(|p| p.region.clone()))
        else {
            return Ok((req.clone(), None));
        };
        let (arbiter, _) = decide::arbiter(spec, &from, &self.home_region);
        if !lifeboat::regions::is_known(&arbiter) {
            return Ok((req.clone(), None));
        }
        let runs = self.store(&arbiter).list_runs(&req.workload).await?;
        let kind = if req.drill {
            lifeboat::store::RunKind::Drill
        } else {
            lifeboat::store::RunKind::Failover
        };
        let Some(c) = moved::continues(&runs, kind, &from, req.target_region.as_deref()) else {
            return Ok((req.clone(), None));
        };
        let mut pinned = req.clone();
        pinned.target_region = Some(c.to_region.clone());
        let promoted = c
            .moved
            .get("databases")
            .and_then(serde_json::Value::as_array)
            .is_some_and(|d| !d.is_empty())
            .then(|| c.to_region.clone());
        match decide::decide_continuing(
            spec,
            health,
            &pinned,
            &self.home_region,
            now,
            promoted.as_deref(),
        ) {
            Err(e) if e.name() == ErrorName::TargetUnhealthy && req.target_region.is_none() => {
                tracing::warn!(
                    workload = %req.workload,
                    run = %c.run,
                    target = %c.to_region,
                    error = %e,
                    "Partial run's target is no longer a valid choice: deciding anew"
                );
                Ok((req.clone(), None))
            }
            _ => {
                tracing::info!(
                    workload = %req.workload,
                    run = %c.run,
                    target = %c.to_region,
                    "Continuing a partial run to its target"
                );
                Ok((pinned, promoted))
            }
        }
    }

    fn arbiter_store(&self, d: &decide::Decision) -> Result<DynamoStore> {
        if !lifeboat::regions::is_known(&d.arbiter_region) {
            return Err(Error::InvalidInput(format!(
                "decision.arbiter_region: `{}` is not an AWS Region code",
                d.arbiter_region
            )));
        }
        Ok(self.store(&d.arbiter_region))
    }

    /// Starts the `failover` execution `name`; `(arn, false)` when one of that name
    /// already exists (`ExecutionAlreadyExists` counts as success).
    async fn start(&self, name: &str, input: &FailoverRequest) -> Result<(String, bool)> {
        let body = serde_json::to_string(input)
            .map_err(|e| Error::InvalidInput(format!("cannot encode execution input: {e}")))?;
        let res = self
            .sfn
            .start_execution()
            .state_machine_arn(&self.state_machine_arn)
            .name(name)
            .input(body)
            .send()
            .await;
        match res {
            Ok(out) => Ok((out.execution_arn().to_owned(), true)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(StartExecutionError::is_execution_already_exists) =>
            {
                Ok((alarm::execution_arn(&self.state_machine_arn, name), false))
            }
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    se.is_state_machine_does_not_exist() || se.is_state_machine_deleting()
                }) =>
            {
                Err(Error::ResourceNotFound {
                    kind: "state machine",
                    id: self.state_machine_arn.clone(),
                    region: self.home_region.clone(),
                })
            }
            Err(e) => Err(Error::from_sdk("sfn", "StartExecution", e)),
        }
    }
}

/// An S3 client with path-style addressing exactly when an endpoint URL is configured
/// (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`): an emulator or proxy answers at one
/// host, AWS's endpoints keep virtual-hosted addressing (as replica-promoter does).
fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let custom = config.endpoint_url().is_some()
        || aws_types::service_config::ServiceConfigKey::builder()
            .service_id("S3")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .ok()
            .and_then(|key| config.service_config().and_then(|sc| sc.load_config(key)))
            .is_some();
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(custom)
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Serializes a step's output (infallible for these types: string keys, finite numbers).
fn to_value<T: Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v)
        .map_err(|e| Error::InvalidInput(format!("cannot encode the output: {e}")))
}
