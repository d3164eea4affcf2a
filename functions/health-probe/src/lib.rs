//! # health-probe
//!
//! The Lifeboat Lambda that watches every Region of every workload (README, "health-probe — detection"):
//!
//! 1. probes every endpoint of every Region concurrently over HTTP(S) ([`http`]), and
//!    reads Route 53 health-check status, the Region's CloudWatch alarms and the
//!    replication lag into it ([`signals`]);
//! 2. turns the round into a verdict with hysteresis ([`hysteresis`], pure);
//! 3. writes the `HEALTH#<region>` items, an audit event for each verdict change, and
//!    one PutMetricData per round with `RegionHealthy`, `ProbeLatencyMs` and
//!    `ReplicationLagSeconds` ([`metrics`]) — what the failover alarms watch.
//!
//! Input: the EventBridge scheduled event (every workload) or `{"workload": "<id>"}`
//! ([`request`]). With a probe window, one invocation runs several rounds at the
//! policy's `probe_interval_seconds`, never past the Lambda deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::future::{join_all, try_join_all};
use lambda_runtime::LambdaEvent;
use lifeboat::aws::RegionalClients;
use lifeboat::model::{RegionSpec, WorkloadSpec};
use lifeboat::store::{HealthRecord, SwitchPosition, Verdict};
use lifeboat::{Error, ErrorName, Store, UnixMillis};
use serde::Serialize;
use serde_json::Value;

pub mod http;
pub mod hysteresis;
#[cfg(feature = "test-util")]
pub mod loopback;
pub mod metrics;
pub mod request;
pub mod signals;

pub use http::{HttpProber, ProbeOutcome};
pub use hysteresis::Observation;
pub use request::Request;

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "health-probe";

/// How long a round waits for AWS's view of a Region (Route 53 health checks, the
/// Region's alarms, replication lag) before it goes on without it.
pub const SIGNAL_TIMEOUT: Duration = Duration::from_secs(2);

/// A round's replication lag into one Region: databases and S3, read apart.
struct Lag {
    db: signals::LagSeen,
    s3: signals::LagSeen,
}

/// `fut`, or `late()` when it takes longer than [`SIGNAL_TIMEOUT`].
async fn bounded<T>(fut: impl std::future::Future<Output = T>, late: impl FnOnce() -> T) -> T {
    tokio::time::timeout(SIGNAL_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| late())
}

/// How long re-asserting one routing switch may take (best effort, beside the round):
/// a switch hosted in a Region that hangs must not hold up the round.
pub const SWITCH_WRITE_TIMEOUT: Duration = Duration::from_secs(4);

/// Time kept free before the Lambda deadline after the last round.
const DEADLINE_MARGIN: Duration = Duration::from_secs(2);

/// What one invocation did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// One report per workload probed.
    pub workloads: Vec<WorkloadReport>,
}

/// What happened to one workload.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WorkloadReport {
    /// Workload id.
    pub workload: String,
    /// Rounds run.
    pub rounds: u32,
    /// The health of each Region after the last round.
    pub regions: Vec<HealthRecord>,
    /// Verdict changes, in order.
    pub changes: Vec<Change>,
    /// Set when probing this workload failed (the schedule carries on with the others).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorReport>,
}

/// A verdict change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Region.
    pub region: String,
    /// Verdict before.
    pub from: Verdict,
    /// Verdict after.
    pub to: Verdict,
    /// When observed.
    pub at: UnixMillis,
}

/// An error kept in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorReport {
    /// Its stable name.
    pub name: ErrorName,
    /// Its message with the source chain.
    pub message: String,
}

/// What one Region's round tells people: `Lifeboat Verdict Changed` when the verdict
/// changed (after hysteresis), `Lifeboat Lag Critical` when the lag grade became
/// critical. Transitions only: a Region that stays unhealthy or critical tells no one
/// again. Pure.
pub fn notifications(
    spec: &WorkloadSpec,
    previous: Option<&HealthRecord>,
    step: &hysteresis::Step,
) -> Vec<lifeboat::notify::Notification> {
    let r = &step.record;
    let verdict = step.change.map(|(from, to)| {
        let reason = r.detail.clone().unwrap_or_else(|| match to {
            Verdict::Healthy => "every check passed".to_owned(),
            _ => "checks failed".to_owned(),
        });
        lifeboat::notify::verdict_changed(
            &spec.workload,
            &r.region,
            from,
            to,
            r.observed_at,
            &reason,
        )
    });
    // Lag levels are whole seconds; u64 -> f64 is exact far beyond any real lag.
    #[allow(clippy::cast_precision_loss)]
    let critical = spec.policy.replication_lag.critical_seconds as f64;
    let lag = lifeboat::notify::lag_critical(
        &spec.workload,
        &r.region,
        previous.and_then(|p| p.lag_grade),
        r.lag_grade,
        r.replication_lag_seconds,
        critical,
        r.observed_at,
    );
    verdict.into_iter().chain(lag).collect()
}

/// The prober: everything built once in `main` and reused by every invocation.
#[derive(Debug)]
pub struct Prober<S> {
    store: S,
    http: HttpProber,
    route53: aws_sdk_route53::Client,
    cloudwatch: RegionalClients<aws_sdk_cloudwatch::Client>,
    home_region: String,
    window: Duration,
    notifier: lifeboat::notify::Notifier,
    dashboard: Option<lifeboat::dashboard::Stack>,
    /// Per workload, the spec version this warm process last saw its dashboard carry
    /// (read or put): a round with the same version asks CloudWatch nothing.
    dashboard_kept: std::sync::Mutex<HashMap<String, u64>>,
}

impl<S: Store> Prober<S> {
    /// A prober. `home_region` is where metrics are published (where the function
    /// runs); `window` is how long one invocation keeps probing (zero: one round).
    pub fn new(
        store: S,
        http: HttpProber,
        route53: aws_sdk_route53::Client,
        cloudwatch: RegionalClients<aws_sdk_cloudwatch::Client>,
        home_region: impl Into<String>,
        window: Duration,
    ) -> Self {
        Prober {
            store,
            http,
            route53,
            cloudwatch,
            home_region: home_region.into(),
            window,
            notifier: lifeboat::notify::Notifier::disabled(),
            dashboard: None,
            dashboard_kept: std::sync::Mutex::default(),
        }
    }

    /// Keeps each workload's dashboard ([`lifeboat::dashboard`]) in the home Region in
    /// step with its spec, from the scheduled run; none by default.
    pub fn with_dashboard(mut self, stack: Option<lifeboat::dashboard::Stack>) -> Self {
        self.dashboard = stack;
        self
    }

    /// Puts the workload's dashboard when it does not carry the spec's version yet: a
    /// GetDashboard the first time a warm process sees a version, a PutDashboard when
    /// the spec changed, nothing while the version stays the same. Best effort and
    /// bounded: never the round's error. Returns whether it put one.
    pub async fn sync_dashboard(&self, spec: &WorkloadSpec) -> bool {
        let Some(stack) = &self.dashboard else {
            return false;
        };
        let kept = || {
            self.dashboard_kept
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if kept().get(&spec.workload) == Some(&spec.version) {
            return false;
        }
        let client = self.cloudwatch.get(&self.home_region);
        let name = lifeboat::dashboard::name(&spec.workload, &self.home_region);
        let work = async {
            // GetDashboard answers ResourceNotFound for a dashboard that does not exist
            // (https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetDashboard.html).
            match client.get_dashboard().dashboard_name(&name).send().await {
                Ok(out)
                    if out
                        .dashboard_body()
                        .is_some_and(|b| lifeboat::dashboard::is_current(b, spec)) =>
                {
                    return Ok(false);
                }
                Ok(_) => {}
                Err(e)
                    if e.as_service_error().is_some_and(|se| {
                        matches!(
                            aws_sdk_cloudwatch::error::ProvideErrorMetadata::code(se),
                            Some("ResourceNotFound" | "DashboardNotFoundError")
                        )
                    }) => {}
                Err(e) => return Err(Error::from_sdk("cloudwatch", "GetDashboard", e)),
            }
            let body = lifeboat::dashboard::body(spec, stack).to_string();
            client
                .put_dashboard()
                .dashboard_name(&name)
                .dashboard_body(body)
                .send()
                .await
                .map_err(|e| Error::from_sdk("cloudwatch", "PutDashboard", e))?;
            Ok(true)
        };
        match tokio::time::timeout(SWITCH_WRITE_TIMEOUT, work).await {
            Ok(Ok(put)) => {
                kept().insert(spec.workload.clone(), spec.version);
                if put {
                    tracing::info!(workload = %spec.workload, dashboard = %name, version = spec.version, "Dashboard generated");
                }
                put
            }
            Ok(Err(e)) => {
                tracing::warn!(workload = %spec.workload, dashboard = %name, error = %e.chain(), "Dashboard not kept");
                false
            }
            Err(_) => {
                tracing::warn!(workload = %spec.workload, dashboard = %name, "Dashboard timed out");
                false
            }
        }
    }

    /// Where verdict changes and critical lag are told ([`lifeboat::notify`]); no one
    /// by default.
    pub fn with_notifier(mut self, notifier: lifeboat::notify::Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// The Lambda handler.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Output, Error> {
        let request = Request::parse(event.payload)?;
        let deadline = (event.context.deadline > 0).then_some(UnixMillis(event.context.deadline));
        self.run(&request, deadline).await
    }

    /// Probes what the request names until the window closes or the deadline nears.
    /// The window applies to the schedule's run over every workload; a one-workload
    /// request (a state machine's verification probe) is always one round.
    /// One workload: its error is the handler's error. Every workload: each error is
    /// in its report, and the others are probed regardless.
    pub async fn run(
        &self,
        request: &Request,
        deadline: Option<UnixMillis>,
    ) -> Result<Output, Error> {
        match request {
            Request::One {
                workload,
                regions,
                avoid_regions,
            } => {
                let mut spec = self.store.get_spec(workload).await?;
                all_of_workload(&spec, "avoid_regions", avoid_regions)?;
                if !regions.is_empty() {
                    all_of_workload(&spec, "regions", regions)?;
                    // Only those Regions are observed, recorded and reported; the
                    // others' records are left as they are.
                    spec.regions.retain(|s| regions.contains(&s.region));
                }
                // A state machine's probe step: one round, the machine does the waiting.
                let report = self
                    .probe_workload(&spec, Duration::ZERO, deadline, false, avoid_regions)
                    .await?;
                Ok(Output {
                    workloads: vec![report],
                })
            }
            Request::All => {
                let ids = self.store.list_workloads().await?;
                let reports = join_all(ids.iter().map(|id| async move {
                    let result = match self.store.get_spec(id).await {
                        Ok(spec) => {
                            let (report, _) = tokio::join!(
                                self.probe_workload(&spec, self.window, deadline, true, &[]),
                                self.sync_dashboard(&spec)
                            );
                            report
                        }
                        Err(e) => Err(e),
                    };
                    result.unwrap_or_else(|e| {
                        tracing::error!(workload = %id, error = %e.chain(), "Probing failed");
                        WorkloadReport {
                            workload: id.clone(),
                            rounds: 0,
                            regions: vec![],
                            changes: vec![],
                            error: Some(ErrorReport {
                                name: e.name(),
                                message: e.chain(),
                            }),
                        }
                    })
                }))
                .await;
                Ok(Output { workloads: reports })
            }
        }
    }

    async fn probe_workload(
        &self,
        spec: &WorkloadSpec,
        window: Duration,
        deadline: Option<UnixMillis>,
        hold_switches: bool,
        avoid: &[String],
    ) -> Result<WorkloadReport, Error> {
        let interval = Duration::from_secs(u64::from(spec.policy.probe_interval_seconds.max(1)));
        let longest_probe = spec
            .regions
            .iter()
            .flat_map(|r| r.endpoints.iter().map(|e| e.timeout_ms))
            .max()
            .map_or(Duration::ZERO, Duration::from_millis);
        let started = Instant::now();
        let mut previous = self.load_health(&spec.workload).await?;
        let mut report = WorkloadReport {
            workload: spec.workload.clone(),
            rounds: 0,
            regions: vec![],
            changes: vec![],
            error: None,
        };
        loop {
            let round_started = Instant::now();
            let positions = self.switch_positions(&spec.workload).await;
            let (stale, ()) = tokio::join!(
                self.round(spec, &positions, &mut previous, &mut report, avoid),
                async {
                    if hold_switches {
                        self.hold_switches(spec, &positions).await;
                    }
                }
            );
            let stale = stale?;
            if stale {
                previous = self.load_health(&spec.workload).await?;
            }
            let next_round = round_started + interval;
            if next_round.duration_since(started) >= window {
                break;
            }
            if let Some(deadline) = deadline {
                let until_next = next_round.saturating_duration_since(Instant::now());
                let needed = until_next + longest_probe + DEADLINE_MARGIN;
                let left = Duration::from_millis(deadline.since(UnixMillis::now()));
                if left < needed {
                    break;
                }
            }
            tokio::time::sleep_until(next_round.into()).await;
        }
        report.regions = spec
            .regions
            .iter()
            .filter_map(|r| previous.get(&r.region).cloned())
            .collect();
        Ok(report)
    }

    /// Re-asserts every routing-switch position recorded for the workload (the
    /// scheduled run only, once per round): each switch's metric is written again in
    /// its Region, so the switch alarm always has fresh data saying where Lifeboat put
    /// it (`lifeboat::switch`). Best effort and bounded: a switch Region that hangs
    /// (a failed Region hosting another's switch) costs at most [`SWITCH_WRITE_TIMEOUT`]
    /// and never holds up the round or fails it.
    async fn hold_switches(&self, spec: &WorkloadSpec, positions: &[SwitchPosition]) {
        join_all(positions.iter().filter_map(|p| {
            let switch = spec.region(&p.region)?.routing_switch.as_ref()?;
            let client = self.cloudwatch.get(&switch.region);
            Some(async move {
                let result = tokio::time::timeout(
                    SWITCH_WRITE_TIMEOUT,
                    lifeboat::switch::put(&client, switch, p.on),
                )
                .await;
                let error = match result {
                    Ok(Ok(())) => return,
                    Ok(Err(e)) => e.chain(),
                    Err(_) => format!("timed out after {SWITCH_WRITE_TIMEOUT:?}"),
                };
                tracing::warn!(
                    workload = %spec.workload,
                    region = %p.region,
                    switch_region = %switch.region,
                    on = p.on,
                    error = %error,
                    "Re-asserting a routing switch failed"
                );
            })
        }))
        .await;
    }

    /// The routing-switch positions Lifeboat recorded for the workload, from this
    /// Region's table (none when it cannot be read: then nothing is re-asserted and no
    /// switch excuses a Route 53 check this round).
    async fn switch_positions(&self, workload: &str) -> Vec<SwitchPosition> {
        match self.store.get_switches(workload).await {
            Ok(p) => p,
            Err(error) => {
                tracing::warn!(workload = %workload, error = %error.chain(), "Reading switch positions failed");
                Vec::new()
            }
        }
    }

    async fn load_health(&self, workload: &str) -> Result<HashMap<String, HealthRecord>, Error> {
        Ok(self
            .store
            .get_health(workload)
            .await?
            .into_iter()
            .map(|h| (h.region.clone(), h))
            .collect())
    }

    /// One round over every Region of the workload. Returns whether the store held a
    /// newer observation than ours for some Region (another prober ran meanwhile).
    async fn round(
        &self,
        spec: &WorkloadSpec,
        positions: &[SwitchPosition],
        previous: &mut HashMap<String, HealthRecord>,
        report: &mut WorkloadReport,
        avoid: &[String],
    ) -> Result<bool, Error> {
        let now = UnixMillis::now();
        let observations = join_all(spec.regions.iter().map(|r| {
            let switched_off = positions.iter().any(|p| p.region == r.region && !p.on);
            self.observe(spec, r, switched_off, avoid, now)
        }))
        .await;
        let steps: Vec<(Option<&HealthRecord>, hysteresis::Step)> = spec
            .regions
            .iter()
            .zip(&observations)
            .map(|(r, obs)| {
                let prev = previous.get(&r.region);
                (
                    prev,
                    hysteresis::next(prev, &r.region, obs, &spec.policy, now),
                )
            })
            .collect();
        let written = try_join_all(steps.iter().map(|(prev, step)| async move {
            // The event first: if the health write then fails, the retry sees the same
            // previous record, derives the same event id and records it once.
            if let Some(event) = hysteresis::audit_event(NAME, *prev, step) {
                self.store.append_event(&spec.workload, &event).await?;
                tracing::info!(
                    workload = %spec.workload,
                    region = %step.record.region,
                    from = ?event.before.as_ref().map(|b| b["verdict"].clone()),
                    to = ?step.record.verdict,
                    reason = %event.reason,
                    "Verdict changed"
                );
            }
            self.store.put_health(&spec.workload, &step.record).await
        }))
        .await?;
        // Told after the records are written, transitions only; best effort, and
        // beside the metric publication below: the failover alarms read RegionHealthy,
        // which must never wait on a notification.
        let notes: Vec<_> = steps
            .iter()
            .flat_map(|(prev, step)| notifications(spec, *prev, step))
            .collect();
        let records: Vec<HealthRecord> = steps.iter().map(|(_, s)| s.record.clone()).collect();
        for (_, step) in &steps {
            if let Some((from, to)) = step.change {
                report.changes.push(Change {
                    region: step.record.region.clone(),
                    from,
                    to,
                    at: step.record.observed_at,
                });
            }
        }
        drop(steps);
        let datums = metrics::datums(&spec.workload, &records);
        for record in records {
            previous.insert(record.region.clone(), record);
        }
        report.rounds += 1;
        let cloudwatch = self.cloudwatch.get(&self.home_region);
        let (published, _) = tokio::join!(
            metrics::publish(&cloudwatch, datums),
            self.notifier.send_all(&notes)
        );
        published?;
        Ok(written.iter().any(|w| !w))
    }

    /// Everything one round sees in one Region, read concurrently.
    /// Whether the Region's routing-switch alarm is in ALARM (its switch off), read in
    /// the switch's Region; `false` when there is none, it cannot be read, or the switch
    /// lives in a Region the probe must not call (`avoid`: a failover's verification
    /// never waits on the Region it failed away from; the recorded position stands).
    async fn switch_alarm_off(&self, region: &RegionSpec, avoid: &[String]) -> bool {
        let Some(switch) = &region.routing_switch else {
            return false;
        };
        if avoid.contains(&switch.region) {
            return false;
        }
        let client = self.cloudwatch.get(&switch.region);
        match client
            .describe_alarms()
            .alarm_names(&switch.alarm_name)
            .send()
            .await
        {
            Ok(out) => out.metric_alarms().iter().any(|a| {
                a.alarm_name() == Some(switch.alarm_name.as_str())
                    && a.state_value() == Some(&aws_sdk_cloudwatch::types::StateValue::Alarm)
            }),
            Err(e) => {
                let err = Error::from_sdk("cloudwatch", "DescribeAlarms", e);
                tracing::warn!(alarm = %switch.alarm_name, error = %err.chain(), "Cannot read the routing switch");
                false
            }
        }
    }

    async fn observe(
        &self,
        spec: &WorkloadSpec,
        region: &RegionSpec,
        switched_off: bool,
        avoid: &[String],
        now: UnixMillis,
    ) -> Observation {
        let endpoints = join_all(region.endpoints.iter().map(|e| self.http.probe(e)));
        // Off by Lifeboat's record, or by its alarm (an operator may have switched the
        // Region off by hand): either way an unhealthy check on the switch is a
        // decision, not the Region's health.
        let route53 = async {
            let off = switched_off || self.switch_alarm_off(region, avoid).await;
            signals::route53(&self.route53, region, off).await
        };
        let cloudwatch = self.cloudwatch.get(&region.region);
        let alarms = async {
            if region.alarms.is_empty() {
                signals::Seen::default()
            } else {
                signals::alarms(&cloudwatch, region).await
            }
        };
        let lag = self.lag(spec, region, now);
        // AWS's view of the Region is bounded: a Route 53 control plane or a Region's
        // CloudWatch that hangs must not hold up the round (the endpoints carry their
        // own timeouts). Late Route 53 or lag answers are notes; late alarms of the
        // Region are a failure, as an error from them is (a symptom of the Region).
        let route53 = bounded(route53, || signals::Seen {
            notes: vec![format!("Route 53 did not answer within {SIGNAL_TIMEOUT:?}")],
            ..signals::Seen::default()
        });
        let alarms = bounded(alarms, || signals::Seen {
            failures: vec![format!(
                "CloudWatch in {} did not answer within {SIGNAL_TIMEOUT:?}",
                region.region
            )],
            ..signals::Seen::default()
        });
        let lag = bounded(lag, || Lag {
            db: signals::LagSeen {
                seconds: None,
                notes: vec![format!(
                    "replication lag into {} did not answer within {SIGNAL_TIMEOUT:?}",
                    region.region
                )],
            },
            s3: signals::LagSeen::default(),
        });
        let (endpoints, route53, alarms, lag) = tokio::join!(endpoints, route53, alarms, lag);

        let mut obs = Observation::default();
        for outcome in &endpoints {
            if let Some(why) = &outcome.failure {
                obs.failures.push(why.clone());
            }
        }
        obs.latency_ms = endpoints
            .iter()
            .map(|o| u64::try_from(o.latency.as_millis()).unwrap_or(u64::MAX))
            .max();
        for seen in [route53, alarms] {
            obs.failures.extend(seen.failures);
            obs.notes.extend(seen.notes);
        }
        if let Some(switch) = &region.routing_switch
            && avoid.contains(&switch.region)
        {
            obs.notes.push(format!(
                "routing-switch alarm in {} not read (a Region this probe avoids); its recorded position stands",
                switch.region
            ));
        }
        obs.lag_seconds = lag.db.seconds;
        obs.s3_lag_seconds = lag.s3.seconds;
        obs.notes.extend(lag.db.notes);
        obs.notes.extend(lag.s3.notes);
        obs
    }

    /// The replication lag into the Region, both kinds read in the Region itself and
    /// independently (one failing never discards the other): its databases' lag
    /// metrics (replicas publish them; the primary's writer has none, so it is not
    /// read there) and S3 `ReplicationLatency` into its buckets (published in the
    /// destination's Region, [`signals::s3_lag_metrics`]). A read that fails is a note
    /// and, for the databases, an unknown lag (the RPO gate fails closed on it).
    async fn lag(&self, spec: &WorkloadSpec, region: &RegionSpec, now: UnixMillis) -> Lag {
        let client = self.cloudwatch.get(&region.region);
        let is_primary = spec.primary().is_some_and(|p| p.region == region.region);
        let db = async {
            let metrics = signals::database_lag_metrics(region);
            if is_primary || metrics.is_empty() {
                return signals::LagSeen::default();
            }
            signals::read_lag(&client, &metrics, now)
                .await
                .unwrap_or_else(|e| {
                    tracing::warn!(region = %region.region, error = %e.chain(), "Cannot read database replication lag");
                    signals::LagSeen {
                        seconds: None,
                        notes: vec![format!("cannot read database replication lag into {}", region.region)],
                    }
                })
        };
        let s3 = async {
            if is_primary || region.buckets.is_empty() {
                return signals::LagSeen::default();
            }
            let read = async {
                let metrics = signals::s3_lag_metrics(&client, region).await?;
                signals::read_lag(&client, &metrics, now).await
            };
            match read.await {
                // Not configured (no metrics) or not all fresh: S3 latency is graded,
                // not gated, so an unknown one is a note only.
                Ok(seen) => seen,
                Err(e) => {
                    tracing::warn!(region = %region.region, error = %e.chain(), "Cannot read S3 replication latency");
                    signals::LagSeen {
                        seconds: None,
                        notes: vec![format!(
                            "cannot read S3 replication latency into {}",
                            region.region
                        )],
                    }
                }
            }
        };
        let (db, s3) = tokio::join!(db, s3);
        Lag { db, s3 }
    }
}

/// `InvalidInput` naming the first of `names` (the request's `field`) that is not a
/// Region of `spec`'s workload.
fn all_of_workload(spec: &WorkloadSpec, field: &str, names: &[String]) -> Result<(), Error> {
    match names
        .iter()
        .enumerate()
        .find(|(_, r)| spec.region(r).is_none())
    {
        Some((i, r)) => Err(Error::InvalidInput(format!(
            "{field}[{i}]: `{r}` is not a Region of workload `{}`",
            spec.workload
        ))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use lifeboat::notify::DetailType;
    use lifeboat::store::LagGrade;

    fn record(verdict: Verdict, grade: Option<LagGrade>, at: u64) -> HealthRecord {
        HealthRecord {
            region: "eu-west-1".into(),
            verdict,
            consecutive_failures: 0,
            consecutive_successes: 0,
            probe_latency_ms: None,
            replication_lag_seconds: Some(400.0),
            lag_grade: grade,
            observed_at: UnixMillis(at),
            detail: None,
        }
    }

    #[test]
    fn a_round_tells_verdict_changes_and_lag_turning_critical_only() {
        let spec: WorkloadSpec =
            serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap();
        let prev = record(Verdict::Healthy, Some(LagGrade::Warning), 1);
        let step = hysteresis::Step {
            record: record(Verdict::Unhealthy, Some(LagGrade::Critical), 2),
            change: Some((Verdict::Healthy, Verdict::Unhealthy)),
        };
        let n = notifications(&spec, Some(&prev), &step);
        let types: Vec<_> = n.iter().map(|n| n.detail_type).collect();
        assert_eq!(types, [DetailType::VerdictChanged, DetailType::LagCritical]);
        assert_eq!(n[0].detail["from"], "healthy");
        assert_eq!(n[0].detail["to"], "unhealthy");
        assert_eq!(n[1].detail["lag_seconds"], 400.0);
        // The next round, still unhealthy and critical: nothing new.
        let again = hysteresis::Step {
            record: record(Verdict::Unhealthy, Some(LagGrade::Critical), 3),
            change: None,
        };
        assert!(notifications(&spec, Some(&step.record), &again).is_empty());
    }
}
