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
}

/// Wait settings of the `failover` state machine (read by the machine, not by the steps).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timing {
    /// Seconds between status polls (promotion, verification).
    pub poll_seconds: u32,
    /// Verification polls before the target counts as not serving.
    pub verify_max_polls: u32,
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
    /// How long the lease lasts unless renewed (default 900 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_seconds: Option<u64>,
}

/// Input of the `finalize` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinalizeInput {
    /// The `decide` step's output.
    pub decision: Decision,
    /// The `acquire` step's output.
    pub lease: Lease,
    /// Timeline entries of the steps between (promotion, traffic shift), if any.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
}

/// Input of the `release` step: the compensating path after a failed step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseInput {
    /// The `decide` step's output.
    pub decision: Decision,
    /// The `acquire` step's output.
    pub lease: Lease,
    /// Timeline entries so far.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// What failed: the Catch's `{"Error", "Cause"}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// Input of the `decide` step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecideInput {
    /// The execution's input.
    pub request: FailoverRequest,
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
    /// Write the new roles and weights, record the run, release the lease.
    Finalize(FinalizeInput),
    /// Record a failed run and release the lease.
    Release(ReleaseInput),
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
        Ok(AlarmSignal {
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
            "unrecognised event: expected a CloudWatch alarm action (`alarmData`), an EventBridge alarm state change (`detail-type`), an operator request (`workload`) or a state-machine step (`step`)".into(),
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
