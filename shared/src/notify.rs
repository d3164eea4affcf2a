//! Notifications: what Lifeboat tells people and other systems (docs/notifications.md).
//!
//! Every run start and end (succeeded, refused, partial, failed), every verdict change
//! and every replication lag going critical is one [`Notification`]: an EventBridge
//! event with source [`SOURCE`], one of the [`DetailType`]s and a versioned `detail`
//! ([`SCHEMA_VERSION`]), published on the default bus of the function's own Region and,
//! when the stack has a topic, to SNS with the same JSON as the message.
//!
//! The builders are pure. The sender ([`Notifier`], feature `notify`) is best effort:
//! short deadlines ([`crate::aws::best_effort`]), every failure logged, never an error
//! of the run. Delivery is at least once (a retried step notifies again): `detail.id`
//! is stable across retries, so a consumer deduplicates on it.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::Error;
use crate::store::{LagGrade, RunKind, RunOutcome, RunRecord, Verdict};
use crate::time::UnixMillis;

/// The EventBridge `source` of every Lifeboat event. A rule matches them all with
/// `{"source": ["lifeboat"]}`.
pub const SOURCE: &str = "lifeboat";

/// The version of the `detail` schema. A consumer reads `detail.schema_version`; fields
/// are only ever added within a version.
pub const SCHEMA_VERSION: u32 = 1;

/// Environment variable naming the SNS topic notifications go to (optional: without it
/// only EventBridge is told).
pub const ENV_TOPIC: &str = "LIFEBOAT_NOTIFICATION_TOPIC_ARN";

/// What happened: an event's `detail-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DetailType {
    /// A failover, failback or drill took the lease and started moving.
    #[serde(rename = "Lifeboat Run Started")]
    RunStarted,
    /// A run ended as planned.
    #[serde(rename = "Lifeboat Run Succeeded")]
    RunSucceeded,
    /// A request was refused before anything moved (a named error: unhealthy target,
    /// lag over the RPO budget, cooldown, lease held...).
    #[serde(rename = "Lifeboat Run Refused")]
    RunRefused,
    /// A run stopped after it had moved something: `detail.moved` says what.
    #[serde(rename = "Lifeboat Run Partial")]
    RunPartial,
    /// A run stopped with nothing moved.
    #[serde(rename = "Lifeboat Run Failed")]
    RunFailed,
    /// A Region's health verdict changed (after hysteresis).
    #[serde(rename = "Lifeboat Verdict Changed")]
    VerdictChanged,
    /// Replication lag into a Region reached the policy's critical level.
    #[serde(rename = "Lifeboat Lag Critical")]
    LagCritical,
}

impl DetailType {
    /// Every detail type, in documentation order.
    pub const ALL: [DetailType; 7] = [
        DetailType::RunStarted,
        DetailType::RunSucceeded,
        DetailType::RunRefused,
        DetailType::RunPartial,
        DetailType::RunFailed,
        DetailType::VerdictChanged,
        DetailType::LagCritical,
    ];

    /// The `detail-type` string.
    pub fn as_str(self) -> &'static str {
        match self {
            DetailType::RunStarted => "Lifeboat Run Started",
            DetailType::RunSucceeded => "Lifeboat Run Succeeded",
            DetailType::RunRefused => "Lifeboat Run Refused",
            DetailType::RunPartial => "Lifeboat Run Partial",
            DetailType::RunFailed => "Lifeboat Run Failed",
            DetailType::VerdictChanged => "Lifeboat Verdict Changed",
            DetailType::LagCritical => "Lifeboat Lag Critical",
        }
    }

    /// The detail type of a run that ended with `outcome` (`None`: still running).
    pub fn of_outcome(outcome: RunOutcome) -> Option<DetailType> {
        match outcome {
            RunOutcome::Running => None,
            RunOutcome::Succeeded => Some(DetailType::RunSucceeded),
            // A deploy its gates rolled back, or a failover superseded, did not go out:
            // people hear it as failed (`detail.outcome` says `rolled_back` or
            // `superseded`).
            RunOutcome::Failed | RunOutcome::RolledBack | RunOutcome::Superseded => {
                Some(DetailType::RunFailed)
            }
            RunOutcome::Partial => Some(DetailType::RunPartial),
        }
    }
}

impl std::fmt::Display for DetailType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One notification: an EventBridge entry and an SNS message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// `detail-type`.
    pub detail_type: DetailType,
    /// `resources`: ARNs the event is about (an execution), possibly none.
    pub resources: Vec<String>,
    /// `detail`: always `schema_version`, `id`, `workload`, `at`, `summary`, then the
    /// fields of its type (docs/notifications.md).
    pub detail: Value,
}

impl Notification {
    fn new(
        detail_type: DetailType,
        id: String,
        workload: &str,
        at: UnixMillis,
        summary: String,
        fields: Value,
    ) -> Notification {
        let mut detail = json!({
            "schema_version": SCHEMA_VERSION,
            "id": id,
            "workload": workload,
            "at": at.rfc3339(),
            "summary": summary,
        });
        if let (Some(d), Value::Object(extra)) = (detail.as_object_mut(), fields) {
            d.extend(extra);
        }
        Notification {
            detail_type,
            resources: Vec::new(),
            detail,
        }
    }

    /// The detail's stable id (the same for every retry of the same fact).
    pub fn id(&self) -> &str {
        self.detail["id"].as_str().unwrap_or_default()
    }

    /// The SNS subject: the summary, one line, under 100 characters (SNS Publish:
    /// "UTF-8 text with no line breaks or control characters, and less than 100
    /// characters long", https://docs.aws.amazon.com/sns/latest/api/API_Publish.html).
    pub fn subject(&self) -> String {
        let summary = self.detail["summary"].as_str().unwrap_or_default();
        let clean: String = summary
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let text = format!("{}: {clean}", self.detail_type.as_str());
        if text.chars().count() <= 99 {
            return text;
        }
        let mut cut: String = text.chars().take(98).collect();
        cut.push('…');
        cut
    }

    /// The SNS message: the event as EventBridge would carry it (`source`,
    /// `detail-type`, `resources`, `detail`), as JSON.
    pub fn message(&self) -> String {
        json!({
            "source": SOURCE,
            "detail-type": self.detail_type.as_str(),
            "resources": self.resources,
            "detail": self.detail,
        })
        .to_string()
    }
}

fn kind_str(kind: RunKind) -> &'static str {
    match kind {
        RunKind::Failover => "failover",
        RunKind::Failback => "failback",
        RunKind::Drill => "drill",
        RunKind::Deploy => "deploy",
    }
}

/// A run that started: it holds the lease at `epoch` from `at`.
pub struct Started<'a> {
    /// Workload id.
    pub workload: &'a str,
    /// The run's id (its execution name).
    pub run_id: &'a str,
    /// The execution ARN (the lease holder).
    pub execution: &'a str,
    /// What kind of run it is recorded as (a drill's nested runs are `drill`).
    pub kind: RunKind,
    /// What it does: `failover` or `failback`.
    pub operation: &'a str,
    /// Whether it is a drill's nested run.
    pub drill: bool,
    /// The Region it moves away from (empty for a deploy).
    pub from_region: &'a str,
    /// The Region it moves to (empty for a deploy).
    pub to_region: &'a str,
    /// The lease epoch.
    pub epoch: u64,
    /// Who asked, and why.
    pub requested_by: &'a str,
    /// Why.
    pub reason: &'a str,
    /// When the lease was taken.
    pub at: UnixMillis,
}

/// `Lifeboat Run Started`.
pub fn run_started(s: &Started<'_>) -> Notification {
    let kind = kind_str(s.kind);
    let mut n = Notification::new(
        DetailType::RunStarted,
        format!("{}-started-{}", s.run_id, s.epoch),
        s.workload,
        s.at,
        format!(
            "{} of {}{} started{}",
            s.operation,
            s.workload,
            if s.drill { " (drill)" } else { "" },
            if s.from_region.is_empty() && s.to_region.is_empty() {
                String::new()
            } else {
                format!(": {} -> {}", s.from_region, s.to_region)
            }
        ),
        json!({
            "run_id": s.run_id,
            "kind": kind,
            "operation": s.operation,
            "drill": s.drill,
            "from_region": s.from_region,
            "to_region": s.to_region,
            "epoch": s.epoch,
            "requested_by": s.requested_by,
            "reason": s.reason,
        }),
    );
    if s.execution.starts_with("arn:") {
        n.resources.push(s.execution.to_owned());
    }
    n
}

/// `Lifeboat Run Succeeded`, `Partial` or `Failed`, from the recorded run (`None` for a
/// run still running). `execution`: the execution ARN when known.
pub fn run_ended(workload: &str, run: &RunRecord, execution: Option<&str>) -> Option<Notification> {
    let detail_type = DetailType::of_outcome(run.outcome)?;
    let kind = kind_str(run.kind);
    let d = &run.details;
    let text = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
    let outcome = d.get("outcome");
    let error = outcome
        .and_then(|o| o.get("error"))
        .filter(|e| !e.is_null())
        .or_else(|| d.get("error").filter(|e| !e.is_null()))
        .cloned();
    let moved = outcome.and_then(|o| o.get("moved")).cloned();
    let (from, to) = (
        text("from_region").or_else(|| text("primary_region")),
        text("to_region").or_else(|| text("target_region")),
    );
    let verb = match run.outcome {
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::Partial => "stopped partway",
        RunOutcome::RolledBack => "rolled back",
        _ => "failed",
    };
    let route = match (&from, &to) {
        (Some(f), Some(t)) => format!(": {f} -> {t}"),
        _ => String::new(),
    };
    let mut summary = format!("{kind} of {workload} {verb}{route}");
    if let Some(rto) = run.measured_rto_ms {
        summary.push_str(&format!(", RTO {:.1} s", rto as f64 / 1000.0));
    }
    let mut n = Notification::new(
        detail_type,
        format!("{}-{}", run.id, serde_plain(&run.outcome)),
        workload,
        run.finished_at.unwrap_or(run.started_at),
        summary,
        json!({
            "run_id": run.id,
            "kind": kind,
            "outcome": run.outcome,
            "from_region": from,
            "to_region": to,
            "started_at": run.started_at.rfc3339(),
            "finished_at": run.finished_at.map(|t| t.rfc3339()),
            "measured_rto_ms": run.measured_rto_ms,
            "measured_rpo_ms": run.measured_rpo_ms,
            "rpo_simulated": run.rpo_simulated,
            "error": error,
            "moved": moved,
            "report": d.get("report").filter(|r| !r.is_null()),
        }),
    );
    if let Some(arn) = execution.filter(|a| a.starts_with("arn:")) {
        n.resources.push(arn.to_owned());
    }
    Some(n)
}

fn serde_plain<T: Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(Value::String(s)) => s,
        _ => String::new(),
    }
}

/// `Lifeboat Run Refused`: a request for `operation` (`failover`, `failback`, `drill`)
/// refused with `error` before anything moved. `key` identifies the request (an
/// execution name, an alarm state change) so retries share an id.
pub fn run_refused(
    workload: &str,
    operation: &str,
    key: &str,
    error: &Error,
    at: UnixMillis,
) -> Notification {
    Notification::new(
        DetailType::RunRefused,
        format!("{key}-refused-{}", error.name()),
        workload,
        at,
        format!("{operation} of {workload} refused: {}", error.name()),
        json!({
            "operation": operation,
            "request": key,
            "error": error.name(),
            "message": error.to_string(),
        }),
    )
}

/// Whether a refusal of a request is worth telling: named refusals, not a transient
/// dependency or a busy lease the machine retries.
pub fn is_refusal(error: &Error) -> bool {
    use crate::ErrorName::*;
    !matches!(
        error.name(),
        TransientDependency | LeaseBusy | ConcurrentModification
    )
}

/// `Lifeboat Verdict Changed`: `region` went from `from` to `to` at `at`.
pub fn verdict_changed(
    workload: &str,
    region: &str,
    from: Verdict,
    to: Verdict,
    at: UnixMillis,
    reason: &str,
) -> Notification {
    let (f, t) = (serde_plain(&from), serde_plain(&to));
    Notification::new(
        DetailType::VerdictChanged,
        format!("verdict-{region}-{}-{t}", at.0),
        workload,
        at,
        format!("{workload} {region}: {f} -> {t}"),
        json!({"region": region, "from": f, "to": t, "reason": reason}),
    )
}

/// `Lifeboat Lag Critical`, when the lag grade of `region` becomes critical (`None`
/// when it was critical already or is not now: transitions only).
pub fn lag_critical(
    workload: &str,
    region: &str,
    before: Option<LagGrade>,
    now: Option<LagGrade>,
    lag_seconds: Option<f64>,
    critical_seconds: f64,
    at: UnixMillis,
) -> Option<Notification> {
    if now != Some(LagGrade::Critical) || before == Some(LagGrade::Critical) {
        return None;
    }
    let lag = lag_seconds.map_or_else(|| "unknown".to_owned(), |l| format!("{l:.1} s"));
    Some(Notification::new(
        DetailType::LagCritical,
        format!("lag-critical-{region}-{}", at.0),
        workload,
        at,
        format!("{workload} {region}: replication lag {lag} (critical at {critical_seconds} s)"),
        json!({
            "region": region,
            "lag_seconds": lag_seconds,
            "critical_seconds": critical_seconds,
            "before": before,
        }),
    ))
}

#[cfg(feature = "notify")]
pub use sender::Notifier;

#[cfg(feature = "notify")]
mod sender {
    use super::{Notification, SOURCE};

    /// The most entries one PutEvents request takes (PutEvents, EventBridge API
    /// Reference: `Entries`, array members 1 to 10,
    /// https://docs.aws.amazon.com/eventbridge/latest/APIReference/API_PutEvents.html).
    pub const MAX_ENTRIES: usize = 10;
    use aws_types::SdkConfig;

    /// Sends notifications: EventBridge PutEvents on the default bus of the function's
    /// own Region, SNS Publish to the stack's topic. Clients are built once in `main`
    /// from [`crate::aws::best_effort`] (2 s attempts, one retry): a notification never
    /// waits long and never reaches into another Region.
    #[derive(Debug, Clone)]
    pub struct Notifier {
        events: Option<aws_sdk_eventbridge::Client>,
        sns: Option<(aws_sdk_sns::Client, String)>,
    }

    impl Notifier {
        /// A notifier in `config`'s Region; `topic_arn` the SNS topic (none: EventBridge
        /// only).
        pub fn new(config: &SdkConfig, topic_arn: Option<String>) -> Notifier {
            let quick = crate::aws::best_effort(config);
            Notifier {
                events: Some(aws_sdk_eventbridge::Client::new(&quick)),
                sns: topic_arn
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| (aws_sdk_sns::Client::new(&quick), t)),
            }
        }

        /// A notifier that tells no one (unit tests, tools).
        pub fn disabled() -> Notifier {
            Notifier {
                events: None,
                sns: None,
            }
        }

        /// Publishes `n` to both; logs every failure, returns whether both succeeded.
        /// Never an error: a notification must not fail the run it reports.
        pub async fn send(&self, n: &Notification) -> bool {
            self.send_all(std::slice::from_ref(n)).await
        }

        /// Publishes each of `ns`, all at once: the events in PutEvents requests of up
        /// to [`MAX_ENTRIES`] entries, the SNS messages side by side. A round that
        /// tells several changes waits for one best-effort deadline, not one each.
        pub async fn send_all(&self, ns: &[Notification]) -> bool {
            if ns.is_empty() {
                return true;
            }
            let (events, published) = tokio::join!(
                futures_util::future::join_all(ns.chunks(MAX_ENTRIES).map(|c| self.put_events(c))),
                futures_util::future::join_all(ns.iter().map(|n| self.publish(n)))
            );
            events.into_iter().chain(published).all(|ok| ok)
        }

        async fn put_events(&self, ns: &[Notification]) -> bool {
            let Some(events) = &self.events else {
                return true;
            };
            let entries = ns
                .iter()
                .map(|n| {
                    aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
                        .source(SOURCE)
                        .detail_type(n.detail_type.as_str())
                        .detail(n.detail.to_string())
                        .set_resources(Some(n.resources.clone()))
                        .build()
                })
                .collect();
            match events.put_events().set_entries(Some(entries)).send().await {
                // PutEvents answers 200 with per-entry failures: FailedEntryCount and an
                // ErrorCode on each failed entry, in the request's order ("Sending events
                // with PutEvents",
                // https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-putevents.html).
                Ok(out) if out.failed_entry_count() == 0 => true,
                Ok(out) => {
                    for (n, e) in ns.iter().zip(out.entries()) {
                        if let Some(code) = e.error_code() {
                            tracing::warn!(detail_type = %n.detail_type, id = %n.id(), error_code = %code, "Notification event not accepted");
                        }
                    }
                    false
                }
                Err(e) => {
                    let e = crate::Error::from_sdk("events", "PutEvents", e);
                    for n in ns {
                        tracing::warn!(detail_type = %n.detail_type, id = %n.id(), error = %e.chain(), "Notification event not sent");
                    }
                    false
                }
            }
        }

        async fn publish(&self, n: &Notification) -> bool {
            let Some((sns, topic)) = &self.sns else {
                return true;
            };
            match sns
                .publish()
                .topic_arn(topic)
                .subject(n.subject())
                .message(n.message())
                .send()
                .await
            {
                Ok(_) => true,
                Err(e) => {
                    let e = crate::Error::from_sdk("sns", "Publish", e);
                    tracing::warn!(detail_type = %n.detail_type, id = %n.id(), topic = %topic, error = %e.chain(), "Notification not published");
                    false
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::TimelineEntry;

    fn run(outcome: RunOutcome) -> RunRecord {
        RunRecord {
            id: "checkout-op-1".into(),
            kind: RunKind::Failover,
            started_at: UnixMillis(1_700_000_000_000),
            finished_at: Some(UnixMillis(1_700_000_042_000)),
            outcome,
            timeline: vec![TimelineEntry {
                at: UnixMillis(1_700_000_000_000),
                step: "decide".into(),
                duration_ms: None,
                detail: None,
            }],
            measured_rto_ms: Some(42_000),
            measured_rpo_ms: None,
            rpo_simulated: false,
            details: json!({
                "from_region": "us-east-1", "to_region": "eu-west-1",
                "outcome": {"error": null, "moved": {"databases": ["db"]}},
            }),
        }
    }

    #[test]
    fn detail_types_are_the_documented_strings_and_serialize_as_them() {
        for t in DetailType::ALL {
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
            assert!(t.as_str().starts_with("Lifeboat "), "{t}");
        }
        assert_eq!(DetailType::of_outcome(RunOutcome::Running), None);
        assert_eq!(
            DetailType::of_outcome(RunOutcome::Partial),
            Some(DetailType::RunPartial)
        );
    }

    #[test]
    fn a_run_end_carries_the_schema_outcome_and_what_moved() {
        let n = run_ended(
            "checkout",
            &run(RunOutcome::Partial),
            Some("arn:aws:states:eu-west-1:1:execution:failover:checkout-op-1"),
        )
        .unwrap();
        assert_eq!(n.detail_type, DetailType::RunPartial);
        assert_eq!(n.detail["schema_version"], 1);
        assert_eq!(n.detail["workload"], "checkout");
        assert_eq!(n.detail["outcome"], "partial");
        assert_eq!(n.detail["moved"]["databases"][0], "db");
        assert_eq!(n.detail["at"], "2023-11-14T22:14:02.000Z");
        assert_eq!(n.id(), "checkout-op-1-partial");
        assert_eq!(n.resources.len(), 1);
        let s = run_ended("checkout", &run(RunOutcome::Succeeded), None).unwrap();
        assert_eq!(s.detail_type, DetailType::RunSucceeded);
        assert!(s.resources.is_empty());
        assert_eq!(
            s.detail["summary"],
            "failover of checkout succeeded: us-east-1 -> eu-west-1, RTO 42.0 s"
        );
        assert!(run_ended("checkout", &run(RunOutcome::Running), None).is_none());
    }

    #[test]
    fn a_rolled_back_deploy_is_told_as_failed_and_a_deploy_start_has_no_route() {
        let mut r = run(RunOutcome::RolledBack);
        r.kind = RunKind::Deploy;
        r.details = json!({});
        r.measured_rto_ms = None;
        let n = run_ended("checkout", &r, None).unwrap();
        assert_eq!(n.detail_type, DetailType::RunFailed);
        assert_eq!(n.detail["outcome"], "rolled_back");
        assert_eq!(n.detail["summary"], "deploy of checkout rolled back");
        let s = run_started(&Started {
            workload: "checkout",
            run_id: "d-1",
            execution: "arn:aws:states:r:1:execution:deploy-waves:d-1",
            kind: RunKind::Deploy,
            operation: "deploy",
            drill: false,
            from_region: "",
            to_region: "",
            epoch: 2,
            requested_by: "pipeline",
            reason: "release 2024.12.1",
            at: UnixMillis(1),
        });
        assert_eq!(s.detail["summary"], "deploy of checkout started");
        assert_eq!(s.detail["kind"], "deploy");
    }

    #[test]
    fn the_sns_subject_is_one_line_under_100_characters() {
        let e = Error::InvalidInput("x".repeat(300));
        let mut n = run_refused("w\nx", "failover", "key", &e, UnixMillis(0));
        n.detail["summary"] = json!(format!("line\nbreak {}", "y".repeat(200)));
        let s = n.subject();
        assert!(s.chars().count() < 100, "{}", s.chars().count());
        assert!(!s.chars().any(char::is_control), "{s}");
        let m: Value = serde_json::from_str(&n.message()).unwrap();
        assert_eq!(m["source"], "lifeboat");
        assert_eq!(m["detail-type"], "Lifeboat Run Refused");
        assert_eq!(m["detail"]["error"], "InvalidInput");
    }

    #[test]
    fn lag_critical_is_told_on_the_transition_only() {
        use LagGrade::*;
        let at = UnixMillis(5);
        let n = lag_critical(
            "w",
            "eu-west-1",
            Some(Warning),
            Some(Critical),
            Some(301.0),
            300.0,
            at,
        )
        .unwrap();
        assert_eq!(n.detail_type, DetailType::LagCritical);
        assert_eq!(n.detail["lag_seconds"], 301.0);
        assert!(
            lag_critical("w", "r", Some(Critical), Some(Critical), Some(1.0), 1.0, at).is_none()
        );
        assert!(lag_critical("w", "r", Some(Critical), Some(Ok), Some(1.0), 1.0, at).is_none());
        assert!(lag_critical("w", "r", None, Some(Critical), None, 1.0, at).is_some());
    }

    #[test]
    fn retries_of_the_same_fact_share_an_id() {
        let a = verdict_changed(
            "w",
            "r",
            Verdict::Healthy,
            Verdict::Unhealthy,
            UnixMillis(9),
            "x",
        );
        let b = verdict_changed(
            "w",
            "r",
            Verdict::Healthy,
            Verdict::Unhealthy,
            UnixMillis(9),
            "y",
        );
        assert_eq!(a.id(), b.id());
        let s = Started {
            workload: "w",
            run_id: "run",
            execution: "arn:aws:states:r:1:execution:m:run",
            kind: RunKind::Drill,
            operation: "failover",
            drill: true,
            from_region: "a",
            to_region: "b",
            epoch: 3,
            requested_by: "op",
            reason: "why",
            at: UnixMillis(1),
        };
        assert_eq!(run_started(&s).id(), "run-started-3");
        assert_eq!(
            run_started(&s).detail["summary"],
            "failover of w (drill) started: a -> b"
        );
        assert!(is_refusal(&Error::InvalidInput("x".into())));
    }
}
