//! Every input the executor accepts, and the dispatch that tells them apart.
//!
//! One handler takes a `serde_json::Value` and recognises, in this order:
//!
//! | input | recognised by |
//! |---|---|
//! | state-machine step | a `"step"` field (`decide`, `acquire`, `finalize`, `release`) |
//! | CloudWatch alarm action (Lambda target) | an `"alarmData"` field |
//! | EventBridge "CloudWatch Alarm State Change" | a `"detail-type"` field |
//! | operator request | a `"workload"` field |
//!
//! Anything else is `InvalidInput` saying what was expected.

use aws_lambda_events::event::cloudwatch_alarms::{
    CloudWatchAlarm, CloudWatchAlarmData, CloudWatchAlarmStateValue,
};
use aws_lambda_events::event::eventbridge::EventBridgeEvent;
use lifeboat::store::{Lease, TimelineEntry};
use lifeboat::{Error, Result, UnixMillis};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decide::Decision;
pub use crate::drill::{DrillRequest, ReportInput};
pub use crate::failback::FailbackRequest;

/// The EventBridge `detail-type` of an alarm state change.
pub const ALARM_STATE_CHANGE: &str = "CloudWatch Alarm State Change";
/// The EventBridge `source` of an alarm state change.
pub const CLOUDWATCH_SOURCE: &str = "aws.cloudwatch";

/// Planned (both Regions up, RPO 0 expected) or unplanned (the primary is failing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A planned move: the data tier switches over without loss.
    Planned,
    /// The primary is failing: promote what is there.
    Unplanned,
}

/// The alarm that started an automatic failover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trigger {
    /// Alarm name.
    pub alarm_name: String,
    /// Alarm ARN, when the payload carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_arn: Option<String>,
    /// When the alarm entered ALARM (the state timestamp).
    pub state_changed_at: UnixMillis,
}

/// A failover request: what an operator sends, what an alarm turns into, and the
/// input of every `failover` execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverRequest {
    /// Workload id.
    pub workload: String,
    /// The Region being failed away from; the current primary when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_region: Option<String>,
    /// Where to fail over to; the decision picks the best candidate when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_region: Option<String>,
    /// Planned or unplanned.
    pub mode: Mode,
    /// Return the plan and change nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Unplanned only: go ahead even if the target's replication lag exceeds the RPO.
    #[serde(default)]
    pub accept_data_loss: bool,
    /// Why, for the audit trail.
    pub reason: String,
    /// Who: a person, or `alarm:<name>`.
    pub requested_by: String,
    /// Optional idempotency key for operator requests: the same key starts one execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Set when an alarm started the failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The `failover` state machine's waits; the machine uses 15 s polls and 40 verify
    /// polls when absent. Local drills shorten them here, never by editing the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
    /// Part of a DR drill (the `drill` machine sets it): the lease is taken for `drill`,
    /// the run is recorded as kind `drill` and starts no failover cooldown.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
    /// Break the glass: an operator's failover takes the lease over from whatever run
    /// holds it (a failback, a drill, even another failover), with a new epoch and an
    /// audit event (`lease_taken_over`, `forced: true`). Operators only (no `trigger`,
    /// not a drill); `reason` and `requested_by` say why and who.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

/// Wait settings of the `failover` state machine (read by the machine, not by the steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Seconds between status polls (promotion, verification).
    pub poll_seconds: u32,
    /// Verification polls before the target counts as not serving.
    pub verify_max_polls: u32,
    /// The lease's time-to-live, renewed by every poll loop (default
    /// [`crate::steps::DEFAULT_LEASE_TTL_SECONDS`]): at least
    /// [`MIN_TTL_POLLS`] polls and [`MIN_LEASE_TTL_SECONDS`], at most a day.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_ttl_seconds: Option<u64>,
}

/// The shortest lease a `timing` may ask for.
pub const MIN_LEASE_TTL_SECONDS: u64 = 3;
/// A lease lives at least this many polls: a renewal can be late by a poll and a step.
pub const MIN_TTL_POLLS: u64 = 3;
/// The longest lease a `timing` may ask for (a day).
pub const MAX_LEASE_TTL_SECONDS: u64 = 86_400;

impl Timing {
    /// Parses `<poll_seconds>,<verify_max_polls>` (both at least 1), e.g. `1,10`.
    pub fn parse(text: &str) -> Result<Timing> {
        let bad = || {
            Error::InvalidInput(format!(
                "timing: `{text}` is not `<poll_seconds>,<verify_max_polls>` with both at least 1"
            ))
        };
        let (poll, polls) = text.split_once(',').ok_or_else(bad)?;
        let poll_seconds: u32 = poll.trim().parse().map_err(|_| bad())?;
        let verify_max_polls: u32 = polls.trim().parse().map_err(|_| bad())?;
        if poll_seconds == 0 || verify_max_polls == 0 {
            return Err(bad());
        }
        Ok(Timing {
            poll_seconds,
            verify_max_polls,
            lease_ttl_seconds: None,
        })
    }

    /// Checks the numbers: polls at least 1, a lease TTL (when given) within
    /// [`MIN_LEASE_TTL_SECONDS`]..=[`MAX_LEASE_TTL_SECONDS`] and at least
    /// [`MIN_TTL_POLLS`] polls long, so a renewal every poll keeps it.
    pub fn check(&self) -> Result<()> {
        if self.poll_seconds == 0 || self.verify_max_polls == 0 {
            return Err(Error::InvalidInput(
                "timing: poll_seconds and verify_max_polls must be at least 1".into(),
            ));
        }
        if let Some(ttl) = self.lease_ttl_seconds {
            let min = (u64::from(self.poll_seconds) * MIN_TTL_POLLS).max(MIN_LEASE_TTL_SECONDS);
            if !(min..=MAX_LEASE_TTL_SECONDS).contains(&ttl) {
                return Err(Error::InvalidInput(format!(
                    "timing.lease_ttl_seconds: {ttl} is outside {min}..={MAX_LEASE_TTL_SECONDS} (at least {MIN_TTL_POLLS} polls of {} s and {MIN_LEASE_TTL_SECONDS} s)",
                    self.poll_seconds
                )));
            }
        }
        Ok(())
    }
}

impl FailoverRequest {
    /// Checks what serde cannot: non-empty names, data loss only when unplanned, and a
    /// target that is not the failed Region.
    pub fn check(&self) -> Result<()> {
        for (field, value) in [
            ("workload", &self.workload),
            ("reason", &self.reason),
            ("requested_by", &self.requested_by),
        ] {
            if value.trim().is_empty() {
                return Err(Error::InvalidInput(format!("{field}: must not be empty")));
            }
        }
        for (field, value) in [
            ("failed_region", &self.failed_region),
            ("target_region", &self.target_region),
        ] {
            if let Some(code) = value
                && !lifeboat::regions::is_known(code)
            {
                return Err(Error::InvalidInput(format!(
                    "{field}: `{code}` is not an AWS Region code"
                )));
            }
        }
        if self.accept_data_loss && self.mode == Mode::Planned {
            return Err(Error::InvalidInput(
                "accept_data_loss: only an unplanned failover may accept data loss".into(),
            ));
        }
        if let (Some(from), Some(to)) = (&self.failed_region, &self.target_region)
            && from == to
        {
            return Err(Error::InvalidInput(format!(
                "target_region: `{to}` is the Region being failed away from"
            )));
        }
        if let Some(timing) = &self.timing {
            timing.check()?;
        }
        if self.force {
            if self.trigger.is_some() || self.requested_by.starts_with("alarm:") {
                return Err(Error::InvalidInput(
                    "force: only an operator may force a lease take-over, never an alarm".into(),
                ));
            }
            if self.drill {
                return Err(Error::InvalidInput(
                    "force: a drill never takes the lease by force".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Input of the `acquire` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcquireInput {
    /// The `decide` step's output.
    pub decision: Decision,
    /// The lease holder: the execution ARN (`$$.Execution.Id`).
    pub holder: String,
    /// How long the lease lasts unless renewed (default: `timing.lease_ttl_seconds`,
    /// else [`crate::steps::DEFAULT_LEASE_TTL_SECONDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// The execution's `timing` (its `lease_ttl_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// Input of the `renew` step: every wait of the machines renews the lease.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenewInput {
    /// The `decide` (or `decide_failback`) step's output.
    pub decision: Decision,
    /// The `acquire` step's output.
    pub lease: Lease,
    /// How long from now the lease lasts (default: `timing.lease_ttl_seconds`, else
    /// [`crate::steps::DEFAULT_LEASE_TTL_SECONDS`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
    /// The execution's `timing` (its `lease_ttl_seconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Timing>,
}

/// Input of the `finalize` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeInput {
    /// The `decide` step's output.
    pub decision: Decision,
    /// The `acquire` step's output.
    pub lease: Lease,
    /// Timeline entries of the steps between (promotion, traffic shift), if any. Arrays
    /// nest (ASL has no concatenation) and an object of marks counts as its entries:
    /// see [`flatten_timeline`].
    #[serde(default, deserialize_with = "flatten_timeline")]
    pub timeline: Vec<TimelineEntry>,
    /// The data-tier Parallel's branch outputs (`$.data`: replica-promoter's outcomes for
    /// RDS, Aurora, S3, DynamoDB and compute), recorded as what the run prepared in the
    /// target ([`crate::steps::prepared`]).
    #[serde(default)]
    pub data: Vec<serde_json::Value>,
}

/// Input of the `release` step: the compensating path after a failed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseInput {
    /// The `decide` step's output.
    pub decision: Decision,
    /// The `acquire` step's output.
    pub lease: Lease,
    /// Timeline entries so far (nested arrays and objects of marks are flattened).
    #[serde(default, deserialize_with = "flatten_timeline")]
    pub timeline: Vec<TimelineEntry>,
    /// What failed: the Catch's `{"Error", "Cause"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// The machine's whole state when it stopped (`"carried.$": "$"`): the step
    /// results it holds (`data`: the data tier's Parallel output; `shift`: the traffic
    /// step's) say what had moved. Absent: only the arbiter's records say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub carried: Option<Value>,
}

/// Input of the `decide` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideInput {
    /// The execution's input.
    pub request: FailoverRequest,
}

/// Input of the `decide_failback` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideFailbackInput {
    /// The `failback` execution's input.
    pub request: FailbackRequest,
}

/// Input of the `check_lag` step (the failback's wait for replication).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckLagInput {
    /// The `decide_failback` step's output.
    pub decision: Decision,
}

/// Input of the `prepare_drill` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrepareDrillInput {
    /// The `drill` execution's input.
    pub request: DrillRequest,
    /// The drill execution's ARN (`$$.Execution.Id`): names the run and the nested
    /// executions.
    pub holder: String,
}

/// A state-machine step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)]
pub enum Step {
    /// Pick the target and plan the failover.
    Decide(DecideInput),
    /// Take the lease with a new fencing epoch.
    Acquire(AcquireInput),
    /// Extend the lease (holder and epoch checked): `StaleEpoch` once taken over.
    Renew(RenewInput),
    /// Write the new roles and weights, record the run, release the lease.
    Finalize(FinalizeInput),
    /// Record a failed run and release the lease.
    Release(ReleaseInput),
    /// Plan a failback: what to restore, from which failover run, in which stages.
    DecideFailback(DecideFailbackInput),
    /// Whether the Region being returned to is healthy and within the RPO.
    CheckLag(CheckLagInput),
    /// Plan a drill: the nested failover and failback inputs, the canary.
    PrepareDrill(PrepareDrillInput),
    /// Measure the drill, write its report to S3 and its `RUN#` record.
    Report(ReportInput),
}

/// Reads a timeline as state machines can build it: entries (`{at, step, ...}`),
/// arrays of entries nested at any depth (ASL's `States.Array` nests; there is no
/// concatenation), objects whose values are entries (the `$.t` object of marks), and
/// `null` (nothing). Order is kept; the steps sort by time.
pub fn flatten_timeline<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Vec<TimelineEntry>, D::Error> {
    let value = Value::deserialize(d)?;
    let mut out = Vec::new();
    collect_entries(value, &mut out).map_err(serde::de::Error::custom)?;
    Ok(out)
}

fn collect_entries(value: Value, out: &mut Vec<TimelineEntry>) -> std::result::Result<(), String> {
    match value {
        Value::Null => Ok(()),
        Value::Array(items) => items.into_iter().try_for_each(|v| collect_entries(v, out)),
        Value::Object(map) if map.contains_key("step") && map.contains_key("at") => {
            let entry = serde_json::from_value(Value::Object(map))
                .map_err(|e| format!("timeline entry: {e}"))?;
            out.push(entry);
            Ok(())
        }
        Value::Object(map) => map
            .into_iter()
            .try_for_each(|(_, v)| collect_entries(v, out)),
        other => Err(format!(
            "timeline: expected entries, arrays or objects of entries, got {}",
            kind_of(&other)
        )),
    }
}

/// An alarm state change, from either payload, reduced to what the executor uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmSignal {
    /// Alarm name.
    pub name: String,
    /// Alarm ARN, when given.
    pub arn: Option<String>,
    /// Region of the alarm, when given.
    pub region: Option<String>,
    /// Whether the new state is ALARM (OK and INSUFFICIENT_DATA are not).
    pub in_alarm: bool,
    /// The new state as AWS spells it.
    pub state: &'static str,
    /// When the state changed.
    pub changed_at: UnixMillis,
    /// CloudWatch's reason text.
    pub reason: String,
    /// The workload Region the alarm's metric is about, when the alarm watches
    /// health-probe's `Lifeboat/RegionHealthy` with `Workload` and `Region` dimensions
    /// (the template's failover alarms): `(workload, region)`.
    pub watches: Option<(String, String)>,
}

/// The workload Region of a `Lifeboat/RegionHealthy` metric in an alarm's configuration.
fn watched_region(configuration: &Value) -> Option<(String, String)> {
    configuration["metrics"]
        .as_array()?
        .iter()
        .filter_map(|m| {
            let metric = &m["metricStat"]["metric"];
            let is_health = metric["namespace"] == crate::alarm::HEALTH_NAMESPACE
                && metric["name"] == crate::alarm::HEALTH_METRIC;
            let dims = &metric["dimensions"];
            match (
                is_health,
                dims["Workload"].as_str(),
                dims["Region"].as_str(),
            ) {
                (true, Some(w), Some(r)) if !w.is_empty() && !r.is_empty() => {
                    Some((w.to_owned(), r.to_owned()))
                }
                _ => None,
            }
        })
        .next()
}

impl AlarmSignal {
    fn from_data(
        data: CloudWatchAlarmData,
        arn: Option<String>,
        region: Option<String>,
        field: &str,
    ) -> Result<AlarmSignal> {
        if data.alarm_name.trim().is_empty() {
            return Err(Error::InvalidInput(format!(
                "{field}.alarmName: must not be empty"
            )));
        }
        let state = data
            .state
            .ok_or_else(|| Error::InvalidInput(format!("{field}.state: missing")))?;
        let millis = u64::try_from(state.timestamp.timestamp_millis())
            .map_err(|_| Error::InvalidInput(format!("{field}.state.timestamp: before 1970")))?;
        let (in_alarm, name) = match state.value {
            CloudWatchAlarmStateValue::Alarm => (true, "ALARM"),
            CloudWatchAlarmStateValue::Ok => (false, "OK"),
            CloudWatchAlarmStateValue::InsufficientData => (false, "INSUFFICIENT_DATA"),
            // A state AWS adds later is not ALARM: acknowledge and do nothing.
            _ => (false, "UNKNOWN"),
        };
        let watches = watched_region(&data.configuration);
        Ok(AlarmSignal {
            watches,
            name: data.alarm_name,
            arn,
            region,
            in_alarm,
            state: name,
            changed_at: UnixMillis(millis),
            reason: state.reason,
        })
    }
}

/// Every input, recognised.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Input {
    /// An alarm state change (either payload).
    Alarm(AlarmSignal),
    /// An operator request.
    Operator(FailoverRequest),
    /// A state-machine step.
    Step(Step),
    /// An operator's request to bring a drained Region back (`{"restore": {..}}`).
    Restore(RestoreRequest),
}

/// An operator's request to bring a drained secondary back into traffic: refused
/// (`TargetUnhealthy`) until Lifeboat's probes call it healthy again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// Workload id.
    pub workload: String,
    /// The drained Region.
    pub region: String,
    /// Why, for the audit log.
    pub reason: String,
    /// Who asks.
    pub requested_by: String,
}

impl RestoreRequest {
    /// Non-empty names and a known Region code.
    pub fn check(&self) -> Result<()> {
        for (field, value) in [
            ("restore.workload", &self.workload),
            ("restore.reason", &self.reason),
            ("restore.requested_by", &self.requested_by),
        ] {
            if value.trim().is_empty() {
                return Err(Error::InvalidInput(format!("{field}: must not be empty")));
            }
        }
        if !lifeboat::regions::is_known(&self.region) {
            return Err(Error::InvalidInput(format!(
                "restore.region: `{}` is not an AWS Region code",
                self.region
            )));
        }
        Ok(())
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoreEnvelope {
    restore: RestoreRequest,
}

impl Input {
    /// Recognises and parses an event; `InvalidInput` names the bad field.
    pub fn parse(event: Value) -> Result<Input> {
        let Value::Object(map) = &event else {
            return Err(Error::InvalidInput(format!(
                "expected a JSON object (alarm, EventBridge alarm state change, operator request or step), got {}",
                kind_of(&event)
            )));
        };
        if map.contains_key("step") {
            return lifeboat::input::parse::<Step>(event).map(Input::Step);
        }
        if map.contains_key("restore") {
            let req = lifeboat::input::parse::<RestoreEnvelope>(event)?.restore;
            req.check()?;
            return Ok(Input::Restore(req));
        }
        if map.contains_key("alarmData") {
            let alarm: CloudWatchAlarm = lifeboat::input::parse(event)?;
            let signal = AlarmSignal::from_data(
                alarm.alarm_data,
                alarm.alarm_arn,
                alarm.region,
                "alarmData",
            )?;
            return Ok(Input::Alarm(signal));
        }
        if let Some(detail_type) = map.get("detail-type") {
            let source = map.get("source").and_then(Value::as_str).unwrap_or("");
            if detail_type.as_str() != Some(ALARM_STATE_CHANGE) || source != CLOUDWATCH_SOURCE {
                return Err(Error::InvalidInput(format!(
                    "detail-type: expected `{ALARM_STATE_CHANGE}` from `{CLOUDWATCH_SOURCE}`, got {detail_type} from `{source}`"
                )));
            }
            let ev: EventBridgeEvent<CloudWatchAlarmData> = lifeboat::input::parse(event)?;
            let arn = ev.resources.and_then(|r| r.into_iter().next());
            let signal = AlarmSignal::from_data(ev.detail, arn, ev.region, "detail")?;
            return Ok(Input::Alarm(signal));
        }
        if map.contains_key("workload") {
            let req: FailoverRequest = lifeboat::input::parse(event)?;
            if req.failed_region.is_some() || req.trigger.is_some() {
                return Err(Error::InvalidInput(
                    "failed_region/trigger: set by alarms only; an operator names the target_region"
                        .into(),
                ));
            }
            req.check()?;
            return Ok(Input::Operator(req));
        }
        Err(Error::InvalidInput(
            "unrecognised event: expected a CloudWatch alarm action (`alarmData`), an EventBridge alarm state change (`detail-type`), an operator request (`workload`), a restore request (`restore`) or a state-machine step (`step`)".into(),
        ))
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_restore_request_is_recognised_and_bad_ones_are_named() {
        let ok = serde_json::json!({"restore": {"workload": "checkout", "region": "ap-southeast-1",
            "reason": "repaired", "requested_by": "alice"}});
        match super::Input::parse(ok).unwrap() {
            super::Input::Restore(r) => assert_eq!(r.region, "ap-southeast-1"),
            other => panic!("not a restore: {other:?}"),
        }
        for (bad, field) in [
            (
                serde_json::json!({"restore": {"workload": "checkout", "region": "mars-1",
                "reason": "r", "requested_by": "a"}}),
                "restore.region",
            ),
            (
                serde_json::json!({"restore": {"workload": "checkout", "region": "eu-west-1",
                "reason": " ", "requested_by": "a"}}),
                "restore.reason",
            ),
            (
                serde_json::json!({"restore": {"workload": "checkout", "region": "eu-west-1",
                "reason": "r", "requested_by": "a", "force": true}}),
                "force",
            ),
            (
                serde_json::json!({"restore": {"workload": "checkout"}}),
                "region",
            ),
        ] {
            let e = super::Input::parse(bad).unwrap_err();
            assert_eq!(e.name(), lifeboat::ErrorName::InvalidInput);
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
    }

    #[test]
    fn timing_parses_two_positive_numbers_and_names_anything_else() {
        assert_eq!(
            Timing::parse("1, 10").unwrap(),
            Timing {
                poll_seconds: 1,
                verify_max_polls: 10,
                lease_ttl_seconds: None
            }
        );
        for bad in ["", "1", "1,", "0,10", "1,0", "a,b", "1,2,3", "-1,5"] {
            let e = Timing::parse(bad).unwrap_err();
            assert_eq!(e.name(), lifeboat::ErrorName::InvalidInput, "{bad}");
            assert!(e.to_string().contains("timing"), "{bad}: {e}");
        }
    }

    use super::*;
    use serde_json::json;

    fn operator() -> Value {
        json!({"workload": "checkout", "mode": "planned", "reason": "maintenance",
               "requested_by": "alice"})
    }

    #[test]
    fn an_operator_request_parses_with_defaults() {
        let Input::Operator(req) = Input::parse(operator()).unwrap() else {
            panic!()
        };
        assert_eq!(req.mode, Mode::Planned);
        assert!(!req.dry_run && !req.accept_data_loss);
        assert_eq!(req.target_region, None);
    }

    #[test]
    fn a_missing_reason_is_named() {
        let mut v = operator();
        v.as_object_mut().unwrap().remove("reason");
        let err = Input::parse(v).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(err.to_string().contains("missing field `reason`"), "{err}");
        let mut v = operator();
        v["reason"] = json!("  ");
        let err = Input::parse(v).unwrap_err();
        assert_eq!(err.to_string(), "invalid input: reason: must not be empty");
    }

    #[test]
    fn typos_and_contradictions_are_refused() {
        let mut v = operator();
        v["target_regoin"] = json!("eu-west-1");
        let err = Input::parse(v).unwrap_err();
        assert!(err.to_string().contains("target_regoin"), "{err}");

        let mut v = operator();
        v["accept_data_loss"] = json!(true);
        let err = Input::parse(v).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("invalid input: accept_data_loss"),
            "{err}"
        );

        let mut v = operator();
        v["mode"] = json!("sideways");
        let err = Input::parse(v).unwrap_err();
        assert!(err.to_string().starts_with("invalid input: mode"), "{err}");

        let mut v = operator();
        v["target_region"] = json!("mars-1");
        let err = Input::parse(v).unwrap_err();
        assert!(err.to_string().contains("mars-1"), "{err}");
    }

    #[test]
    fn only_alarm_state_is_in_alarm() {
        let text = include_str!("../../../events/failover-executor/alarm-action.json");
        for (value, in_alarm) in [("ALARM", true), ("OK", false), ("INSUFFICIENT_DATA", false)] {
            let mut v: Value = serde_json::from_str(text).unwrap();
            v["alarmData"]["state"]["value"] = json!(value);
            let Input::Alarm(a) = Input::parse(v).unwrap() else {
                panic!()
            };
            assert_eq!((a.in_alarm, a.state), (in_alarm, value));
        }
        let mut v: Value = serde_json::from_str(text).unwrap();
        v["alarmData"]["state"]["value"] = json!("ON_FIRE");
        let err = Input::parse(v).unwrap_err();
        assert!(err.to_string().contains("alarmData.state.value"), "{err}");
    }

    #[test]
    fn unrecognised_events_say_what_was_expected() {
        for v in [json!({}), json!({"foo": 1})] {
            let err = Input::parse(v).unwrap_err();
            assert!(err.to_string().contains("unrecognised event"), "{err}");
        }
        let err = Input::parse(json!([1])).unwrap_err();
        assert!(err.to_string().contains("got an array"), "{err}");
        let err = Input::parse(json!({"step": "explode"})).unwrap_err();
        assert!(
            err.to_string().contains("unknown variant `explode`"),
            "{err}"
        );
        let err = Input::parse(
            json!({"detail-type": "Scheduled Event", "source": "aws.events",
                                      "detail": {}}),
        )
        .unwrap_err();
        assert!(err.to_string().contains("detail-type"), "{err}");
    }
}
