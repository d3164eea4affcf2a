//! What the `deploy-waves` state machine (or an operator) sends, and what it gets back.

use lifeboat::UnixMillis;
use lifeboat::model::{GateValues, Slot};
use serde::{Deserialize, Serialize};

/// One step. The state machine names it in `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Dry run: the waves, the Regions skipped and why, the resolved gates. Changes nothing.
    Plan {
        /// The deploy request (the execution input).
        request: DeployRequest,
    },
    /// Validate, check the lease and pre-existing alarms, take the lease (purpose
    /// `deploy`), measure every Region's baseline, record the rollouts in the spec.
    Start {
        /// The deploy request (the execution input).
        request: DeployRequest,
        /// The deploy's id (the execution name).
        deploy_id: String,
        /// Lease holder (the execution ARN).
        holder: String,
    },
    /// Extends the deploy's lease by [`crate::lease_ttl_seconds`] from now, as the
    /// machine does before every wait: `StaleEpoch` (recorded `deploy_superseded`) once
    /// a failover took it over. Idempotent: a retry extends it again.
    Renew {
        /// The deploy, as `start` returned it.
        deploy: Deploy,
    },
    /// A Region's next stage: what to shift (or that it is done, or halted).
    Advance {
        /// The deploy, as `start` returned it.
        deploy: Deploy,
        /// The Region.
        region: String,
    },
    /// After a bake: read the new slot's metrics and alarms, compare, decide.
    Gate {
        /// The deploy, as `start` returned it.
        deploy: Deploy,
        /// The Region.
        region: String,
        /// The stage baked.
        stage: usize,
        /// The bake round of that stage (0 first).
        #[serde(default)]
        round: u32,
    },
    /// Every stage passed: the new slot is live, the Region's version is the new one.
    PromoteRegion {
        /// The deploy, as `start` returned it.
        deploy: Deploy,
        /// The Region.
        region: String,
    },
    /// Traffic is back on the old slot: record the Region as rolled back.
    RollbackRegion {
        /// The deploy, as `start` returned it.
        deploy: Deploy,
        /// The Region.
        region: String,
        /// Why (gate reasons or an error), as the machine has it.
        #[serde(default)]
        reason: Option<serde_json::Value>,
    },
    /// A failback's soak after a traffic stage (read-only, no lease): the Region's own
    /// gates over the last `window_seconds` — its live slot's error rate and latency
    /// (the `deploy` section's metrics) and its alarms — say whether the next stage
    /// may go on (`promote`), needs another soak (`extend`), or must stop (`rollback`).
    Soak {
        /// Workload id.
        workload: String,
        /// The Region being returned to.
        region: String,
        /// The soak window the metrics are read over (s).
        window_seconds: u64,
        /// The soak round of this stage (0 first): `extend` is bounded by
        /// `gates.max_extensions`.
        #[serde(default)]
        round: u32,
        /// Thresholds, as a deploy's (`gates`); absent: the defaults.
        #[serde(default)]
        gates: Option<GateOverrides>,
    },
    /// After the waves: the Regions still to roll back, or the run record and the
    /// lease released.
    Finish {
        /// The deploy, as `start` returned it.
        deploy: Deploy,
        /// An error that stopped the waves, if any (the run is then `failed`).
        #[serde(default)]
        error: Option<serde_json::Value>,
        /// The machine rolled back what the last `finish` asked: finish now, and report
        /// whatever is still on the new version as an incomplete rollback.
        #[serde(default)]
        rollback_done: bool,
    },
}

impl Request {
    /// The step's name.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Plan { .. } => "plan",
            Request::Start { .. } => "start",
            Request::Renew { .. } => "renew",
            Request::Advance { .. } => "advance",
            Request::Gate { .. } => "gate",
            Request::PromoteRegion { .. } => "promote_region",
            Request::RollbackRegion { .. } => "rollback_region",
            Request::Finish { .. } => "finish",
            Request::Soak { .. } => "soak",
        }
    }

    /// The workload it acts on.
    pub fn workload(&self) -> &str {
        match self {
            Request::Plan { request } | Request::Start { request, .. } => &request.workload,
            Request::Renew { deploy }
            | Request::Advance { deploy, .. }
            | Request::Gate { deploy, .. }
            | Request::PromoteRegion { deploy, .. }
            | Request::RollbackRegion { deploy, .. }
            | Request::Finish { deploy, .. } => &deploy.workload,
            Request::Soak { workload, .. } => workload,
        }
    }
}

/// The deploy request: the `deploy-waves` execution input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployRequest {
    /// Workload id.
    pub workload: String,
    /// The version to roll out (already deployed to each Region's idle slot).
    pub version: String,
    /// Waves of Regions, in order; default: the lowest-traffic Region alone, then
    /// growing waves, the primary last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waves: Option<Vec<Vec<String>>>,
    /// Percent of a Region's traffic on the new version at each stage: strictly
    /// increasing, ending at 100 (default `[10, 50, 100]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_steps: Option<Vec<u32>>,
    /// Bake time after each shift, before the gate (1 s to 24 h).
    pub bake_seconds: u64,
    /// Gate thresholds; every field optional (defaults: the operators' runbook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gates: Option<GateOverrides>,
    /// `all` (default): a failed Region rolls back every Region already finished too;
    /// `region`: only the failing Region rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_scope: Option<RollbackScope>,
    /// Deploy although gate alarms are already in ALARM (a hotfix): those alarms are
    /// reported and not gated on. Needs a reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_preexisting_alarms: Option<AllowAlarms>,
    /// Who asked (pipeline or operator), for the audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Why, for the audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Permission to start while alarms fire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowAlarms {
    /// Why (e.g. the incident the hotfix is for). Must not be empty.
    pub reason: String,
}

/// Which Regions roll back when one fails.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollbackScope {
    /// The failing Region and every Region already finished.
    #[default]
    All,
    /// The failing Region only.
    Region,
}

/// Gate thresholds as requested; absent fields take [`Gates::default`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateOverrides {
    /// Error rate below which a stage may go on (fraction: 0.001 = 0.1 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_ok: Option<f64>,
    /// Error rate above which the Region rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate_rollback: Option<f64>,
    /// p95 latency (ms) below which a stage may go on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ok_ms: Option<f64>,
    /// p95 latency (ms) above which the Region rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_rollback_ms: Option<f64>,
    /// p99 latency (ms) below which a stage may go on (default: no p99 bound).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ok_ms: Option<f64>,
    /// p99 latency (ms) above which the Region rolls back (default: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_rollback_ms: Option<f64>,
    /// Roll back when the error rate is over this many times the Region's baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_error_factor: Option<f64>,
    /// Roll back when p95/p99 latency is over this many times the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_latency_factor: Option<f64>,
    /// Seconds of metrics before the start that make the baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_seconds: Option<u64>,
    /// Fewer requests than this in a bake: inconclusive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_requests: Option<f64>,
    /// Extra bakes of an inconclusive stage before it rolls back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_extensions: Option<u32>,
    /// More alarms (in every Region of the deploy) that fail a gate in ALARM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alarms: Option<Vec<String>>,
}

/// Resolved gate thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gates {
    /// Go on below this error rate (fraction).
    pub error_rate_ok: f64,
    /// Roll back above this error rate.
    pub error_rate_rollback: f64,
    /// Go on below this p95 (ms).
    pub p95_ok_ms: f64,
    /// Roll back above this p95 (ms).
    pub p95_rollback_ms: f64,
    /// Go on below this p99 (ms), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ok_ms: Option<f64>,
    /// Roll back above this p99 (ms), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_rollback_ms: Option<f64>,
    /// Error-rate regression factor against the baseline.
    pub baseline_error_factor: f64,
    /// Latency regression factor against the baseline.
    pub baseline_latency_factor: f64,
    /// Baseline window (s).
    pub baseline_seconds: u64,
    /// Minimum requests in a bake for a verdict.
    pub min_requests: f64,
    /// Extra bakes of an inconclusive stage.
    pub max_extensions: u32,
    /// Extra alarms.
    #[serde(default)]
    pub alarms: Vec<String>,
}

impl Default for Gates {
    /// The operators' runbook: go on while the error rate is under 0.1 % and p95 under
    /// 200 ms; roll back over 1 % or 500 ms; or over 2× the baseline error rate or
    /// 1.5× its latency; an hour of baseline; 100 requests for a verdict; two extra
    /// bakes when inconclusive.
    fn default() -> Self {
        Gates {
            error_rate_ok: 0.001,
            error_rate_rollback: 0.01,
            p95_ok_ms: 200.0,
            p95_rollback_ms: 500.0,
            p99_ok_ms: None,
            p99_rollback_ms: None,
            baseline_error_factor: 2.0,
            baseline_latency_factor: 1.5,
            baseline_seconds: 3600,
            min_requests: 100.0,
            max_extensions: 2,
            alarms: Vec::new(),
        }
    }
}

/// The deploy as `start` decided it; the machine passes it to every later step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Deploy id (execution name).
    pub deploy_id: String,
    /// Workload id.
    pub workload: String,
    /// Version rolled out.
    pub version: String,
    /// Lease epoch every step presents.
    pub epoch: u64,
    /// Lease holder.
    pub holder: String,
    /// Canary steps.
    pub steps: Vec<u32>,
    /// Bake seconds.
    pub bake_seconds: u64,
    /// Resolved gates.
    pub gates: Gates,
    /// Rollback scope.
    pub rollback_scope: RollbackScope,
    /// When it started.
    pub started_at: UnixMillis,
    /// The lease Region ([`lifeboat::store::lease_region`]) the deploy took its lease
    /// in, fixed at `start`: every later step checks the lease and writes fenced there
    /// (traffic-shifter's `arbiter_region`), wherever the step runs. Empty: the handler's
    /// own table (a one-table world).
    #[serde(default)]
    pub lease_region: String,
}

impl Deploy {
    /// The fence every step of the deploy presents: its epoch and holder.
    pub fn fence(&self) -> lifeboat::store::Fence {
        lifeboat::store::Fence {
            epoch: self.epoch,
            holder: self.holder.clone(),
        }
    }
}

/// A wave of the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wave {
    /// 0-based position.
    pub wave: usize,
    /// Its Regions.
    pub regions: Vec<String>,
}

/// A Region left out of the deploy, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Skipped {
    /// The Region.
    pub region: String,
    /// `drained` (no traffic), `already_on_version`, `no_deploy_section`.
    pub reason: String,
}

/// An alarm in ALARM before the deploy started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiringAlarm {
    /// Region of the alarm.
    pub region: String,
    /// Alarm name.
    pub alarm_name: String,
}

/// Output of `plan` and `start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Planned {
    /// The deploy (for `plan`: epoch 0, no holder).
    pub deploy: Deploy,
    /// The waves, in order.
    pub waves: Vec<Wave>,
    /// Regions left out.
    pub skipped: Vec<Skipped>,
    /// Gate alarms already in ALARM (`start`: allowed with the reason given).
    #[serde(default)]
    pub preexisting_alarms: Vec<FiringAlarm>,
    /// Longest the waves take if every stage passes at its first bake (s).
    pub estimated_seconds: u64,
    /// `start`: true when the same start ran before.
    #[serde(default)]
    pub already_done: bool,
}

/// What `advance` tells the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NextAction {
    /// Shift `percent` to `slot`, bake, gate.
    Shift,
    /// Every stage passed: promote the Region.
    Promote,
    /// Nothing left (promoted, rolled back or skipped).
    Done,
    /// Another Region of this deploy rolled back: roll this one back too.
    Halt,
}

/// Output of `advance`, `gate`, `promote_region`, `rollback_region`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionOutcome {
    /// The Region.
    pub region: String,
    /// `advance`: what to do next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<NextAction>,
    /// `gate`: `promote`, `extend` or `rollback`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<String>,
    /// The stage.
    pub stage: usize,
    /// `advance`: the bake round to gate (0); `gate`: the next round when extending.
    pub round: u32,
    /// The slot the new version is on.
    pub slot: Slot,
    /// The slot the old version is on (a rollback puts 100 % there).
    pub old_slot: Slot,
    /// Percent of traffic on `slot` for this stage.
    pub percent: u32,
    /// Seconds to bake.
    pub bake_seconds: u64,
    /// `gate`: what was measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<GateValues>,
    /// `gate`: why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
    /// The Region's rollout state after the step.
    pub state: lifeboat::model::RolloutState,
    /// True when the step had nothing left to do.
    pub already_done: bool,
}

/// A Region `finish` wants rolled back (traffic-shifter `shift_version` input parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RollbackItem {
    /// The Region.
    pub region: String,
    /// The old slot, which gets all traffic back.
    pub slot: Slot,
    /// Always 100.
    pub percent: u32,
}

/// Output of `finish`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finished {
    /// `rolling_back` (roll back `rollback`, then finish again), `succeeded`,
    /// `rolled_back` or `failed`.
    pub outcome: String,
    /// Regions to roll back before finishing.
    pub rollback: Vec<RollbackItem>,
    /// Per Region: its rollout state.
    pub regions: Vec<(String, lifeboat::model::RolloutState)>,
    /// The run record's id (when written).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// True when the same finish ran before.
    pub already_done: bool,
}
