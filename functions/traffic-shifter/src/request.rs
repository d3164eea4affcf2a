//! What a state machine sends and what it gets back.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::dns::DnsAnswer;
use crate::plan::Call;

/// One step of the traffic tier. The state machine names it in `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Data plane only: turn the failed Region's routing switch off (PutMetricData 0,
    /// SetAlarmState ALARM) and the target's on where its switch is reachable, in the
    /// switches' Regions, never in the failed one. No Route 53 call.
    Failover,
    /// Data plane only: turn the target Region's routing switch on (PutMetricData 1,
    /// SetAlarmState OK): a recovered or added Region may take traffic again.
    Enable,
    /// Planned move: one stage of a weighted-record schedule (UPSERTs in one change
    /// batch per hosted zone, then GetChange until `INSYNC`, bounded).
    Shift,
    /// Read back records, health checks and switches; compute what Route 53 answers.
    Verify,
    /// Dry run: the exact calls `action` would make, each with its Region and plane.
    Plan,
    /// Planned move inside one Region: `percent` of its traffic to the deploy `slot`
    /// (blue/green weighted records of its `deploy` section), the rest to the other.
    ShiftVersion,
    /// Ask DNS, as a client does, what the workload's name answers: the target must be
    /// answered and the failed Region (if named) not ([`crate::resolve`]). Data plane
    /// only: a resolver, no AWS call.
    Resolve,
}

impl Step {
    /// Every step.
    pub const ALL: [Step; 7] = [
        Step::Failover,
        Step::Enable,
        Step::Shift,
        Step::Verify,
        Step::Plan,
        Step::ShiftVersion,
        Step::Resolve,
    ];

    /// The step's name as it appears in `step`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::Failover => "failover",
            Step::Enable => "enable",
            Step::Shift => "shift",
            Step::Verify => "verify",
            Step::Plan => "plan",
            Step::ShiftVersion => "shift_version",
            Step::Resolve => "resolve",
        }
    }
}

/// What a `plan` step plans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Plan a [`Step::Failover`].
    Failover,
    /// Plan a [`Step::Enable`].
    Enable,
    /// Plan a [`Step::Shift`] stage.
    Shift,
}

/// The input of every step. Fields a step does not use must be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Workload id.
    pub workload: String,
    /// Which step.
    pub step: Step,
    /// The Region that takes (or keeps) traffic.
    pub target_region: String,
    /// The fencing epoch of the lease the caller holds.
    pub epoch: u64,
    /// The lease's holder (the machine passes its `$$.Execution.Id`; a deploy its
    /// `deploy.holder`): every step checks the fence, holder beside epoch.
    pub holder: String,
    /// `failover`, `verify`, `plan`, `resolve`: the Region failed away from. Default for
    /// `failover`: the spec's primary. Nothing is sent to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_region: Option<String>,
    /// `failover`, `enable`: also move the alarm at once with SetAlarmState (default
    /// true); otherwise CloudWatch moves it at its next evaluation of the metric.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_alarm_state: Option<bool>,
    /// `shift`: the final weights per Region in percent, summing to 100. Regions of
    /// the spec left out get 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<BTreeMap<String, u32>>,
    /// `shift`: the weights the schedule starts from (default: the spec's weights).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_weights: Option<BTreeMap<String, u32>>,
    /// `shift`: percent of the way from `from_weights` to `weights` at each stage,
    /// strictly increasing, ending at 100 (default `[10, 25, 50, 100]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<u32>>,
    /// `shift`: which stage of the schedule to apply (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<usize>,
    /// `plan`: which step to plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
    /// `shift_version`: the deploy slot that gets `percent` of the Region's traffic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<lifeboat::model::Slot>,
    /// `shift_version`: percent of the Region's traffic on `slot` (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// `resolve`: how many DNS queries (1–200, default 20: a weighted record answers one
    /// record per query).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queries: Option<u32>,
    /// Every step: the arbiter Region (failover-executor's `decision.arbiter_region`),
    /// whose table replica holds the lease; the epoch is checked and the spec read
    /// there. Absent: the function's own Region's replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter_region: Option<String>,
}

/// The default planned-shift schedule.
pub const DEFAULT_SCHEDULE: [u32; 4] = [10, 25, 50, 100];

/// A routing switch as read (and, for `failover`/`enable`, as left).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SwitchOutcome {
    /// The Region whose traffic the switch controls.
    pub controls: String,
    /// Where the metric and alarm live.
    pub region: String,
    /// The alarm the health check watches.
    pub alarm_name: String,
    /// Desired: `on` (takes traffic) or `off`; absent for `verify`, which only reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired: Option<String>,
    /// `flipped`, `already_in_place`, `planned`, `read`, or `not_contacted` (its
    /// Region is the failed one: nothing was sent there).
    pub action: String,
    /// Alarm state read before acting (`OK`, `ALARM`, `INSUFFICIENT_DATA`), if read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarm_state_before: Option<String>,
    /// Latest metric value read before acting, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_value_before: Option<f64>,
}

/// One hosted zone's change of a `shift` stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ZoneChange {
    /// Hosted zone id.
    pub hosted_zone_id: String,
    /// Route 53 change id.
    pub change_id: String,
    /// `INSYNC` once done.
    pub status: String,
    /// How many GetChange calls it took.
    pub polls: u32,
    /// How many records the batch UPSERTed.
    pub records: usize,
}

/// What a `shift` stage did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShiftOutcome {
    /// The stage applied.
    pub stage: usize,
    /// The schedule.
    pub schedule: Vec<u32>,
    /// Percent of the way at this stage.
    pub percent: u32,
    /// The next stage to run, absent when this was the last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_stage: Option<usize>,
    /// The weights the records hold now, per Region.
    pub weights: BTreeMap<String, u32>,
    /// One change per hosted zone that needed one.
    pub changes: Vec<ZoneChange>,
}

/// The output of every step. A state machine routes on `done` (and, for `shift`,
/// `shift.next_stage`; for `verify`, `ok`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    /// Workload id.
    pub workload: String,
    /// The step that ran.
    pub step: Step,
    /// Target Region.
    pub target_region: String,
    /// The epoch it ran under.
    pub epoch: u64,
    /// Whether the step's end state is reached (`shift`: the whole schedule; `verify`:
    /// DNS answers as intended; `plan`: always).
    pub done: bool,
    /// True when the step had nothing left to do: the same input ran before (or the
    /// world was already so). Read-only steps (`verify`, `plan`) report `true`.
    pub already_done: bool,
    /// One word: `failed_over`, `enabled`, `shifted`, `verified`, `unverified`, `planned`.
    pub status: String,
    /// The mutating calls made (`plan`: that would be made), in order.
    pub calls: Vec<Call>,
    /// Whether every call is a data-plane call (the failover path must be).
    pub data_plane_only: bool,
    /// `failover`, `enable`: each switch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub switches: Vec<SwitchOutcome>,
    /// `shift`: the stage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<ShiftOutcome>,
    /// `verify`: what Route 53 answers for each record name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<DnsAnswer>,
    /// `verify`: Regions that receive traffic, in spec order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_regions: Option<Vec<String>>,
    /// `verify`: the target serves and the failed Region (if named) does not;
    /// `resolve`: DNS answers the target and not the failed Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ok: Option<bool>,
    /// `resolve`: what DNS answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved: Option<crate::resolve::Resolved>,
}
