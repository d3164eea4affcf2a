//! The decision: which Region takes over, what every Region's role and weight become,
//! where the lease is arbitrated, and the full plan of AWS calls. Pure: the spec, the
//! health items and the clock come in, a [`Decision`] or a named error comes out.

use lifeboat::model::{ComputeResource, DatabaseRef, Role, RoutingSwitch};
use lifeboat::store::{HealthRecord, Verdict};
use lifeboat::{Error, Result, UnixMillis, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::request::{FailoverRequest, Mode};

/// One Region considered as the target, with why it was or was not eligible.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    /// Region code.
    pub region: String,
    /// Its role now.
    pub role: Role,
    /// Its weight now.
    pub weight: u32,
    /// Its health verdict (`unknown` when never probed or stale).
    pub verdict: Verdict,
    /// Replication lag into it, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Whether the lag is known to be within the RPO ([`lag_gate`]); a planned move is
    /// held to `policy.planned_max_lag_seconds` later, after its writer is drained.
    /// Unknown, negative or stale lag is not.
    pub within_rpo: bool,
    /// Why the lag is not within the budget, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_refused: Option<String>,
    /// Why it cannot be the target, if it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// A Region's role and weight before and after.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoleChange {
    /// Region code.
    pub region: String,
    /// Role now.
    pub role_before: Role,
    /// Role after the failover.
    pub role_after: Role,
    /// Weight now.
    pub weight_before: u32,
    /// Weight after the failover.
    pub weight_after: u32,
}

/// How strongly the lease is arbitrated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaseConsistency {
    /// All Regions in one MRSC set: the table is strongly consistent everywhere.
    Strong,
    /// Regions span MRSC sets: the lease lives in the arbiter Region only.
    Eventual,
}

/// One AWS call the failover will make.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedCall {
    /// Service, e.g. `rds`.
    pub service: String,
    /// Operation, e.g. `PromoteReadReplica`.
    pub operation: String,
    /// Region the call goes to.
    pub region: String,
    /// What it acts on.
    pub resource: String,
    /// Whether it is a control-plane call (slower, less available during events).
    pub control_plane: bool,
    /// Whether the call goes outside the surviving (target) Region.
    pub outside_surviving_region: bool,
    /// Best effort after a call into a Region that may not answer: the call is made
    /// only once an earlier call of its step into this Region was answered (a run
    /// whose call there got no answer skips it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub needs_answer_from: Option<String>,
    /// Made only when this happens during the step (e.g. "a verdict changes"): a run in
    /// which it did not happen lacks the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub only_when: Option<String>,
}

/// One step of the failover and the calls it makes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// Step name, as the state machine names it.
    pub step: String,
    /// The Lambda that runs it.
    pub function: String,
    /// What it does.
    pub summary: String,
    /// Every AWS call, in order.
    pub calls: Vec<PlannedCall>,
}

/// The whole failover, step by step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Steps in order.
    pub steps: Vec<PlanStep>,
    /// Whether any control-plane call goes outside the surviving Region.
    pub touches_control_plane_outside_surviving_region: bool,
    /// Whether any call goes to the Region being failed away from.
    pub touches_failed_region: bool,
}

/// The `decide` step's output and the input of every later step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Workload id.
    pub workload: String,
    /// The spec version decided on.
    pub spec_version: u64,
    /// Planned or unplanned.
    pub mode: Mode,
    /// The Region failed away from.
    pub from_region: String,
    /// The Region taking over.
    pub to_region: String,
    /// Where the lease and every fenced write live (README "arbiter Region").
    pub arbiter_region: String,
    /// Whether the lease is strongly consistent or arbitrated.
    pub lease_consistency: LeaseConsistency,
    /// The target's replication lag, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// The RPO objective.
    pub rpo_seconds: u64,
    /// True when the target's lag is not within the RPO (over it, unknown, negative or
    /// stale) and the request accepted data loss (`accept_data_loss`).
    pub data_loss_accepted: bool,
    /// Why data loss was accepted: the RPO gate's reason for the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_loss_reason: Option<String>,
    /// Every Region considered, best first.
    pub candidates: Vec<Candidate>,
    /// Every Region's role and weight before and after.
    pub changes: Vec<RoleChange>,
    /// The request decided on.
    pub request: FailoverRequest,
    /// When.
    pub decided_at: UnixMillis,
    /// Every step and AWS call.
    pub plan: Plan,
    /// Failover (the default, and what decisions made before failback existed are; not
    /// written then) or failback.
    #[serde(default, skip_serializing_if = "Operation::is_failover")]
    pub operation: Operation,
    /// Failback only: what is restored, from which failover run, in which stages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<crate::failback::FailbackInfo>,
}

/// What a decision moves the writer for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Away from the primary (`failover` machine).
    #[default]
    Failover,
    /// Back to the Region a failover left (`failback` machine).
    Failback,
}

impl Operation {
    /// Whether it is a failover.
    pub fn is_failover(&self) -> bool {
        *self == Operation::Failover
    }

    /// As the audit log and the run details spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Operation::Failover => "failover",
            Operation::Failback => "failback",
        }
    }
}

impl Decision {
    /// The lease purpose of the run: `drill` for any part of a drill, else the operation.
    pub fn purpose(&self) -> lifeboat::store::LeasePurpose {
        use lifeboat::store::LeasePurpose;
        match (self.request.drill, self.operation) {
            (true, _) => LeasePurpose::Drill,
            (false, Operation::Failover) => LeasePurpose::Failover,
            (false, Operation::Failback) => LeasePurpose::Failback,
        }
    }

    /// The kind its `RUN#` record has: `drill` for any part of a drill (so it starts no
    /// failover cooldown), else the operation.
    pub fn run_kind(&self) -> lifeboat::store::RunKind {
        use lifeboat::store::RunKind;
        match (self.request.drill, self.operation) {
            (true, _) => RunKind::Drill,
            (false, Operation::Failover) => RunKind::Failover,
            (false, Operation::Failback) => RunKind::Failback,
        }
    }
}

/// The Route 53 control plane's Region.
pub const ROUTE53_REGION: &str = "us-east-1";

/// Health older than this is not trusted: three detection windows, at least 5 minutes.
pub fn stale_after_ms(spec: &WorkloadSpec) -> u64 {
    let p = &spec.policy;
    let window = u64::from(p.failure_threshold) * u64::from(p.probe_interval_seconds) * 1000;
    (3 * window).max(300_000)
}

/// How fresh the observation behind an automatic failover must be: two detection
/// windows of the Region being left, at least two minutes. Older, the prober is not
/// running (or not writing), and its silence is no evidence against the Region.
pub fn fresh_within_ms(spec: &WorkloadSpec) -> u64 {
    let p = &spec.policy;
    let window = u64::from(p.failure_threshold) * u64::from(p.probe_interval_seconds) * 1000;
    (2 * window).max(120_000)
}

/// How fresh a lag observation must be to count: the probe round that recorded it at
/// most [`fresh_within_ms`] old (two detection windows, at least two minutes). The probe
/// itself keeps a lag only when its CloudWatch datapoint was at most three minutes old
/// (health-probe `signals::LAG_DATAPOINT_MAX_AGE`; RDS publishes its metrics every
/// minute), so a lag that counts was measured at most `3 min + fresh_within` before
/// the decision: 5 minutes for the example spec.
pub fn lag_fresh_within_ms(spec: &WorkloadSpec) -> u64 {
    fresh_within_ms(spec)
}

/// The lag a planned move may promote with, once its writer is drained:
/// `policy.planned_max_lag_seconds` (default 0, an RPO-0 switchover: caught up). The
/// decision itself holds both modes to the RPO: lag measured while the old writer still
/// takes writes says little about what the switchover will lose, so the planned bound is
/// checked where it means something, after the drain (the machine's `check_lag`, by
/// [`crate::failback::readiness`]; a failback's wait for replication too).
pub fn catch_up_budget_seconds(spec: &WorkloadSpec) -> u64 {
    spec.policy.planned_max_lag_seconds
}

/// Why a lag does not count against a budget.
#[derive(Debug, Clone, PartialEq)]
pub enum LagVerdict {
    /// Known, fresh, and at or under the budget.
    Within,
    /// Known and fresh, over the budget.
    Over {
        /// The lag.
        lag_seconds: f64,
        /// The budget.
        budget_seconds: u64,
    },
    /// Unknown, negative or stale: not within the budget (the gate fails closed).
    Unknown(String),
}

impl LagVerdict {
    /// Why it is not within, in a few words (`None` when within).
    pub fn reason(&self) -> Option<String> {
        match self {
            LagVerdict::Within => None,
            LagVerdict::Over {
                lag_seconds,
                budget_seconds,
            } => Some(format!(
                "{lag_seconds} s behind, over the budget of {budget_seconds} s"
            )),
            LagVerdict::Unknown(why) => Some(why.clone()),
        }
    }

    /// The refusal of a move into `region`.
    pub fn error(&self, region: &str) -> Option<Error> {
        match self {
            LagVerdict::Within => None,
            LagVerdict::Over {
                lag_seconds,
                budget_seconds,
            } => Some(Error::ReplicaLagTooHigh {
                region: region.to_owned(),
                lag_seconds: *lag_seconds,
                budget_seconds: *budget_seconds,
            }),
            LagVerdict::Unknown(why) => Some(Error::ReplicaLagUnknown {
                region: region.to_owned(),
                reason: why.clone(),
            }),
        }
    }
}

/// The RPO gate for a move into `region` (pure). The lag is the database replication
/// lag the probes recorded into it (RDS `ReplicaLag`, Aurora `AuroraGlobalDBRPOLag`).
/// A Region with no database has nothing whose lag is published (DynamoDB global
/// tables need no promotion; S3 latency is graded by its own levels, not gated):
/// within. Otherwise the lag counts only when it is recorded, a number, not negative
/// (RDS reports -1 when replication is not running: "Monitoring read replication",
/// https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Monitoring.html)
/// and fresh ([`lag_fresh_within_ms`]); then it must be at most `budget_seconds`.
pub fn lag_gate(
    spec: &WorkloadSpec,
    region: &str,
    record: Option<&HealthRecord>,
    budget_seconds: u64,
    now: UnixMillis,
) -> LagVerdict {
    let has_database = spec.region(region).is_some_and(|r| !r.databases.is_empty());
    let lag = record.and_then(|h| h.replication_lag_seconds);
    if !has_database && lag.is_none() {
        return LagVerdict::Within;
    }
    let Some(h) = record else {
        return LagVerdict::Unknown("no fresh replication lag: no health recorded".into());
    };
    let probe_said = || {
        h.detail
            .as_deref()
            .map_or_else(String::new, |d| format!(" (the probe: {d})"))
    };
    let lag = match lag {
        Some(l) if l.is_finite() => l,
        _ => {
            return LagVerdict::Unknown(format!(
                "no fresh replication lag recorded{}",
                probe_said()
            ));
        }
    };
    if lag < 0.0 {
        return LagVerdict::Unknown(format!(
            "replication is not running (the replica reports a lag of {lag})"
        ));
    }
    let age = now.since(h.observed_at);
    let fresh = lag_fresh_within_ms(spec);
    if age > fresh {
        return LagVerdict::Unknown(format!(
            "its lag of {lag} s was observed {} s ago, older than {} s",
            age / 1000,
            fresh / 1000
        ));
    }
    // Budgets are whole seconds; u64 -> f64 is exact far beyond any real lag.
    #[allow(clippy::cast_precision_loss)]
    let budget = budget_seconds as f64;
    if lag <= budget {
        LagVerdict::Within
    } else {
        LagVerdict::Over {
            lag_seconds: lag,
            budget_seconds,
        }
    }
}

/// Whether an automatic (alarm-started) failover away from `from` is warranted: only
/// when Lifeboat's own probes, freshly, call that Region unhealthy. An alarm can fire for
/// reasons that say nothing about the Region — a stalled or throttled prober, a stray
/// or hand-set alarm — and a promotion cannot be undone.
pub fn warranted(
    spec: &WorkloadSpec,
    health: &[HealthRecord],
    from: &str,
    now: UnixMillis,
) -> Result<()> {
    let fresh = fresh_within_ms(spec);
    let refuse = |reason: String| Error::FailoverUnwarranted {
        workload: spec.workload.clone(),
        region: from.to_owned(),
        reason,
    };
    match health.iter().find(|h| h.region == from) {
        None => Err(refuse(
            "Lifeboat's probes have never recorded it".to_owned(),
        )),
        Some(h) if now.since(h.observed_at) > fresh => Err(refuse(format!(
            "its last observation is {} s old (fresh within {} s): the prober is not running",
            now.since(h.observed_at) / 1000,
            fresh / 1000
        ))),
        Some(h) if h.verdict != Verdict::Unhealthy => Err(refuse(format!(
            "Lifeboat's probes see it {:?} as of {}",
            h.verdict, h.observed_at
        ))),
        Some(_) => Ok(()),
    }
}

/// The Region whose table holds the lease (README, "Consistency across Regions"): with
/// every Region in one MRSC set the table is strongly consistent, so the executor's own
/// Region (if it is one of the workload's and not the failing one); otherwise the first
/// Region in the spec's order that is not the one being failed away from.
pub fn arbiter(spec: &WorkloadSpec, from: &str, home: &str) -> (String, LeaseConsistency) {
    let first_other = spec
        .regions
        .iter()
        .map(|r| r.region.as_str())
        .find(|r| *r != from)
        .unwrap_or(home);
    let codes = spec.regions.iter().map(|r| r.region.as_str());
    if lifeboat::regions::mrsc_set(codes).is_some() {
        let local = home != from && spec.region(home).is_some();
        let region = if local { home } else { first_other };
        (region.to_owned(), LeaseConsistency::Strong)
    } else {
        (first_other.to_owned(), LeaseConsistency::Eventual)
    }
}

fn role_rank(role: Role) -> u8 {
    match role {
        Role::Secondary => 0,
        Role::Standby => 1,
        Role::Primary => 2,
    }
}

/// Decides a failover. Errors: `InvalidInput` (unknown Regions, target already primary,
/// nothing to fail away from), `FailoverUnwarranted` (an alarm-started failover whose
/// Region is not freshly unhealthy: [`warranted`]), `TargetUnhealthy`,
/// `ReplicaLagTooHigh`, `InvalidModel`.
pub fn decide(
    spec: &WorkloadSpec,
    health: &[HealthRecord],
    req: &FailoverRequest,
    home_region: &str,
    now: UnixMillis,
) -> Result<Decision> {
    decide_continuing(spec, health, req, home_region, now, None)
}

/// [`decide`] for a run that continues a `partial` one whose data tier was already
/// promoted in `promoted` (its recorded `moved.databases`): that Region's lag is not
/// gated, since its databases are writers now and publish no replica lag; the RPO was
/// the earlier run's decision, on its record.
pub fn decide_continuing(
    spec: &WorkloadSpec,
    health: &[HealthRecord],
    req: &FailoverRequest,
    home_region: &str,
    now: UnixMillis,
    promoted: Option<&str>,
) -> Result<Decision> {
    if req.workload != spec.workload {
        return Err(Error::InvalidInput(format!(
            "workload: request names `{}` but the spec is `{}`",
            req.workload, spec.workload
        )));
    }
    let primary = spec.primary();
    let from = match (&req.failed_region, primary) {
        (Some(failed), Some(p)) if *failed == p.region => p,
        (Some(failed), _) if spec.region(failed).is_none() => {
            return Err(Error::InvalidInput(format!(
                "failed_region: `{failed}` is not a Region of workload `{}`",
                spec.workload
            )));
        }
        (Some(failed), p) => {
            return Err(Error::InvalidInput(format!(
                "failed_region: `{failed}` is not the primary of workload `{}` (the primary is {})",
                spec.workload,
                p.map_or("none", |p| p.region.as_str())
            )));
        }
        (None, Some(p)) => p,
        (None, None) => {
            return Err(Error::InvalidInput(format!(
                "workload `{}` has no primary to fail away from",
                spec.workload
            )));
        }
    };
    if let Some(target) = &req.target_region {
        match spec.region(target) {
            None => {
                return Err(Error::InvalidInput(format!(
                    "target_region: `{target}` is not a Region of workload `{}`",
                    spec.workload
                )));
            }
            Some(r) if r.role == Role::Primary => {
                return Err(Error::InvalidInput(format!(
                    "target_region: `{target}` is already the primary of workload `{}`",
                    spec.workload
                )));
            }
            Some(_) => {}
        }
    }

    if req.trigger.is_some() {
        warranted(spec, health, &from.region, now)?;
    }

    let rpo = spec.policy.rpo_seconds;
    // Both modes are decided within the RPO; a planned move must then catch up to
    // `catch_up_budget_seconds` after its writer is drained, before it promotes.
    let budget = spec.policy.rpo_seconds;
    let stale = stale_after_ms(spec);
    let mut candidates: Vec<(usize, Candidate)> = spec
        .regions
        .iter()
        .enumerate()
        .filter(|(_, r)| r.region != from.region && r.role != Role::Primary)
        .filter(|(_, r)| req.target_region.as_ref().is_none_or(|t| *t == r.region))
        .map(|(i, r)| {
            let record = health.iter().find(|h| h.region == r.region);
            let (verdict, refused) = match record {
                None => (
                    Verdict::Unknown,
                    Some("no health verdict recorded".to_owned()),
                ),
                Some(h) if now.since(h.observed_at) > stale => (
                    Verdict::Unknown,
                    Some(format!("health observed at {} is stale", h.observed_at)),
                ),
                Some(h) if h.verdict == Verdict::Healthy => (Verdict::Healthy, None),
                Some(h) => (
                    h.verdict,
                    Some(match &h.detail {
                        Some(d) => format!("verdict is {:?}: {d}", h.verdict).to_lowercase(),
                        None => format!("verdict is {:?}", h.verdict).to_lowercase(),
                    }),
                ),
            };
            let lag = record.and_then(|h| h.replication_lag_seconds);
            let gate = if promoted == Some(r.region.as_str()) {
                LagVerdict::Within
            } else {
                lag_gate(spec, &r.region, record, budget, now)
            };
            (
                i,
                Candidate {
                    region: r.region.clone(),
                    role: r.role,
                    weight: r.weight,
                    verdict,
                    lag_seconds: lag,
                    within_rpo: gate == LagVerdict::Within,
                    lag_refused: gate.reason(),
                    refused,
                },
            )
        })
        .collect();
    refuse_unweighted(spec, &from.region, &mut candidates);
    candidates.sort_by(|(ia, a), (ib, b)| {
        (a.refused.is_some(), role_rank(a.role))
            .cmp(&(b.refused.is_some(), role_rank(b.role)))
            .then_with(|| {
                // Unknown lag ranks last: only a known lag is evidence of little loss.
                let key = |c: &Candidate| match c.lag_seconds {
                    Some(l) if l.is_finite() && l >= 0.0 => l,
                    _ => f64::INFINITY,
                };
                key(a).total_cmp(&key(b))
            })
            .then_with(|| b.weight.cmp(&a.weight))
            .then_with(|| ia.cmp(ib))
    });
    let candidates: Vec<Candidate> = candidates.into_iter().map(|(_, c)| c).collect();

    let healthy: Vec<&Candidate> = candidates.iter().filter(|c| c.refused.is_none()).collect();
    if healthy.is_empty() {
        let reason = if candidates.is_empty() {
            "no other Region to fail over to".to_owned()
        } else {
            candidates
                .iter()
                .map(|c| format!("{}: {}", c.region, c.refused.as_deref().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(Error::TargetUnhealthy {
            workload: spec.workload.clone(),
            reason,
        });
    }
    let (target, data_loss_accepted) = match healthy.iter().find(|c| c.within_rpo) {
        Some(c) => (*c, false),
        None => {
            let best = healthy[0];
            if req.mode == Mode::Unplanned && req.accept_data_loss {
                (best, true)
            } else {
                let record = health.iter().find(|h| h.region == best.region);
                let gate = lag_gate(spec, &best.region, record, budget, now);
                return Err(gate
                    .error(&best.region)
                    .unwrap_or_else(|| Error::ReplicaLagUnknown {
                        region: best.region.clone(),
                        reason: best.lag_refused.clone().unwrap_or_default(),
                    }));
            }
        }
    };

    let changes = transition(spec, &from.region, &target.region, &candidates);
    let mut after = spec.clone();
    apply_changes(&mut after, &changes)?;
    after.check()?;

    let (arbiter_region, lease_consistency) = arbiter(spec, &from.region, home_region);
    let plan = plan(
        spec,
        req.mode,
        &from.region,
        &target.region,
        &arbiter_region,
        home_region,
        data_loss_accepted,
    );
    Ok(Decision {
        workload: spec.workload.clone(),
        spec_version: spec.version,
        mode: req.mode,
        from_region: from.region.clone(),
        to_region: target.region.clone(),
        arbiter_region,
        lease_consistency,
        lag_seconds: target.lag_seconds,
        rpo_seconds: rpo,
        data_loss_accepted,
        data_loss_reason: data_loss_accepted
            .then(|| target.lag_refused.clone())
            .flatten(),
        changes,
        candidates,
        request: req.clone(),
        decided_at: now,
        plan,
        operation: Operation::Failover,
        failback: None,
    })
}

/// Active/active: refuses every candidate of weight 0 while another surviving Region
/// keeps a weight above 0. [`transition`] spreads the failed Region's weight over the
/// serving Regions in proportion to their weights, so such a target would become the
/// writer with weight 0, and Route 53 weighted routing sends a record of weight 0 no
/// traffic while any record in the group has a weight above 0 (Route 53 Developer Guide,
/// "Weighted routing"): verification would never see DNS answer it. In active/passive
/// the target takes the whole moved weight, so a standby of weight 0 is a fine target.
fn refuse_unweighted(spec: &WorkloadSpec, from: &str, candidates: &mut [(usize, Candidate)]) {
    if spec.pattern.is_active_passive() {
        return;
    }
    let weighted: Vec<&str> = spec
        .regions
        .iter()
        .filter(|r| r.region != from && r.weight > 0)
        .map(|r| r.region.as_str())
        .collect();
    if weighted.is_empty() {
        return;
    }
    for (_, c) in candidates.iter_mut() {
        if c.weight == 0 && c.refused.is_none() {
            c.refused = Some(format!(
                "weight 0: Route 53 weighted routing sends it no traffic while {} keep a weight above 0",
                weighted.join(", ")
            ));
        }
    }
}

/// Roles and weights after failing `from` over to `to`. The target becomes primary;
/// the failed Region takes no traffic (a secondary in active/active, a standby
/// otherwise). Its weight goes: active/passive, to the target; active/active, to the
/// healthy serving Regions in proportion to their weights (what Route 53 weighted
/// routing does once the failed Region's health check fails), remainder to the target.
pub fn transition(
    spec: &WorkloadSpec,
    from: &str,
    to: &str,
    candidates: &[Candidate],
) -> Vec<RoleChange> {
    let moved = spec.region(from).map_or(0, |r| r.weight);
    let mut weights: Vec<u32> = spec.regions.iter().map(|r| r.weight).collect();
    let active_active = !spec.pattern.is_active_passive();
    let receivers: Vec<usize> = spec
        .regions
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.region == to
                || (active_active
                    && r.region != from
                    && r.role != Role::Standby
                    && r.weight > 0
                    && candidates
                        .iter()
                        .any(|c| c.region == r.region && c.refused.is_none()))
        })
        .map(|(i, _)| i)
        .collect();
    let total: u64 = receivers
        .iter()
        .map(|&i| u64::from(spec.regions[i].weight))
        .sum();
    let mut given = 0u32;
    for &i in &receivers {
        // No receiver with weight (total 0): everything goes to the target below.
        let share = (u64::from(moved) * u64::from(spec.regions[i].weight))
            .checked_div(total)
            .unwrap_or(0);
        let share = u32::try_from(share).unwrap_or(0);
        weights[i] += share;
        given += share;
    }
    spec.regions
        .iter()
        .zip(weights)
        .map(|(r, mut w)| {
            let role_after = if r.region == to {
                w += moved - given;
                Role::Primary
            } else if r.region == from {
                w = 0;
                if active_active {
                    Role::Secondary
                } else {
                    Role::Standby
                }
            } else {
                r.role
            };
            RoleChange {
                region: r.region.clone(),
                role_before: r.role,
                role_after,
                weight_before: r.weight,
                weight_after: w,
            }
        })
        .collect()
}

/// Sets every Region's role and weight to the `after` side of `changes`.
pub fn apply_changes(spec: &mut WorkloadSpec, changes: &[RoleChange]) -> Result<()> {
    let same_regions = spec.regions.len() == changes.len()
        && spec
            .regions
            .iter()
            .all(|r| changes.iter().any(|c| c.region == r.region));
    if !same_regions {
        return Err(Error::InvalidInput(format!(
            "decision: the Regions of workload `{}` changed since the decision",
            spec.workload
        )));
    }
    for r in &mut spec.regions {
        if let Some(c) = changes.iter().find(|c| c.region == r.region) {
            r.role = c.role_after;
            r.weight = c.weight_after;
            // A drained Region the failover gives traffic (or the primary role) serves
            // again: nothing is left to restore.
            if r.weight > 0 || r.role != Role::Secondary {
                r.drained = None;
            }
        }
    }
    Ok(())
}

/// Whether `spec` already has every Region at its `after` role and weight.
pub fn is_applied(spec: &WorkloadSpec, changes: &[RoleChange]) -> bool {
    spec.regions.len() == changes.len()
        && changes.iter().all(|c| {
            spec.region(&c.region)
                .is_some_and(|r| r.role == c.role_after && r.weight == c.weight_after)
        })
}

/// Whether `spec` still has every Region at its `before` role and weight.
pub fn is_unchanged(spec: &WorkloadSpec, changes: &[RoleChange]) -> bool {
    spec.regions.len() == changes.len()
        && changes.iter().all(|c| {
            spec.region(&c.region)
                .is_some_and(|r| r.role == c.role_before && r.weight == c.weight_before)
        })
}

/// The Regions a run's calls go to, and what it moves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Places<'a> {
    /// The spec decided on.
    pub spec: &'a WorkloadSpec,
    /// Planned or unplanned.
    pub mode: Mode,
    /// The Region the writer leaves.
    pub from: &'a str,
    /// The Region the writer moves to (the surviving Region).
    pub to: &'a str,
    /// Where the lease and every fenced write live.
    pub arbiter: &'a str,
    /// Where the functions run (the executor's Region): their own table, their metrics.
    pub home: &'a str,
}

/// A compute resource described (`scale: false`) or scaled in `region` (Auto Scaling:
/// DescribeAutoScalingGroups / UpdateAutoScalingGroup; ECS: DescribeServices /
/// UpdateService), as replica-promoter's compute steps call them.
pub(crate) fn compute_call(c: &mut Calls<'_>, r: &ComputeResource, region: &str, scale: bool) {
    let (service, op) = match (r, scale) {
        (ComputeResource::AutoScalingGroup { .. }, false) => {
            ("autoscaling", "DescribeAutoScalingGroups")
        }
        (ComputeResource::AutoScalingGroup { .. }, true) => {
            ("autoscaling", "UpdateAutoScalingGroup")
        }
        (ComputeResource::EcsService { .. }, false) => ("ecs", "DescribeServices"),
        (ComputeResource::EcsService { .. }, true) => ("ecs", "UpdateService"),
    };
    c.add(service, op, region, r.id(), true);
}

/// The calls of one step, each marked outside the surviving Region or not.
pub(crate) struct Calls<'a> {
    to: &'a str,
    workload: &'a str,
    calls: Vec<PlannedCall>,
}

impl Calls<'_> {
    /// A call.
    pub(crate) fn add(
        &mut self,
        service: &str,
        operation: &str,
        region: &str,
        resource: String,
        cp: bool,
    ) {
        self.calls.push(PlannedCall {
            service: service.to_owned(),
            operation: operation.to_owned(),
            region: region.to_owned(),
            resource,
            control_plane: cp,
            outside_surviving_region: region != self.to,
            needs_answer_from: None,
            only_when: None,
        });
    }

    /// A notification (`lifeboat::notify`), sent from `region` (the function's own):
    /// PutEvents on its default event bus and Publish to the stack's NotificationTopic.
    /// Best effort: a failure is logged and never fails the step.
    pub(crate) fn notify(&mut self, region: &str) {
        self.add(
            "events",
            "PutEvents",
            region,
            "default event bus".into(),
            false,
        );
        self.add(
            "sns",
            "Publish",
            region,
            "the stack's NotificationTopic".into(),
            false,
        );
    }

    /// [`Calls::notify`], sent only `when` something happens during the step (a probe
    /// round tells a verdict change or lag turning critical, nothing else).
    pub(crate) fn notify_when(&mut self, region: &str, when: &str) {
        let from = self.calls.len();
        self.notify(region);
        for c in &mut self.calls[from..] {
            c.only_when = Some(when.to_owned());
        }
    }

    /// Reading a routing switch in its Region: its alarm's state (DescribeAlarms), and,
    /// with `metric`, its metric's latest value (GetMetricData), as traffic-shifter's
    /// `read_switch` does; health-probe reads the alarm only.
    pub(crate) fn read_switch(&mut self, s: &RoutingSwitch, metric: bool) {
        self.add(
            "cloudwatch",
            "DescribeAlarms",
            &s.region,
            s.alarm_name.clone(),
            false,
        );
        if metric {
            self.add(
                "cloudwatch",
                "GetMetricData",
                &s.region,
                format!("{}/{}", s.namespace, s.metric_name),
                false,
            );
        }
    }

    /// A call made only once an earlier call of the step into `region` was answered, or
    /// one into `region` that gets no answer when that Region does not answer (best
    /// effort, bounded): a run whose calls there got no answer may lack it.
    pub(crate) fn add_after_answer(
        &mut self,
        service: &str,
        operation: &str,
        call_region: &str,
        resource: String,
        cp: bool,
        region: &str,
    ) {
        self.add(service, operation, call_region, resource, cp);
        if let Some(last) = self.calls.last_mut() {
            last.needs_answer_from = Some(region.to_owned());
        }
    }

    /// Re-protection's calls for a read replica of `instance_id` in `region`: looked
    /// for first (a retry finds the one it made), created when missing (replica-promoter
    /// `rds_reprotect`).
    pub(crate) fn read_replica_of(&mut self, instance_id: &str, region: &str) {
        let replica = format!("replica of {instance_id}");
        self.add("rds", "DescribeDBInstances", region, replica.clone(), true);
        self.add("rds", "CreateDBInstanceReadReplica", region, replica, true);
    }

    /// A DynamoDB item call on the Lifeboat table's replica in `region`.
    pub(crate) fn table(&mut self, operation: &str, region: &str, sk: &str) {
        let resource = format!("WORKLOAD#{}/{sk}", self.workload);
        self.add("dynamodb", operation, region, resource, false);
    }

    /// The spec and every Region's health, read in the table's replica in `region`
    /// (the decision, and each `check_lag`).
    pub(crate) fn spec_and_health(&mut self, region: &str) {
        self.table("GetItem", region, "SPEC");
        self.table("Query", region, "HEALTH#");
    }
}

impl Places<'_> {
    /// One step of `function` and the calls `f` adds.
    pub(crate) fn step(
        &self,
        name: &str,
        function: &str,
        summary: String,
        f: impl FnOnce(&mut Calls<'_>),
    ) -> PlanStep {
        let mut c = Calls {
            to: self.to,
            workload: &self.spec.workload,
            calls: Vec::new(),
        };
        f(&mut c);
        PlanStep {
            step: name.to_owned(),
            function: function.to_owned(),
            summary,
            calls: c.calls,
        }
    }

    /// Every replica-promoter step (its data-tier work aside): the spec and the lease
    /// read in the arbiter's table (the epoch is checked before anything changes).
    pub(crate) fn promoter_checks(&self, c: &mut Calls<'_>) {
        c.table("GetItem", self.arbiter, "SPEC");
        c.table("GetItem", self.arbiter, "LEASE");
    }

    /// A replica-promoter step's durable marker: the audit log read, the event appended.
    pub(crate) fn promoter_records(&self, c: &mut Calls<'_>) {
        c.table("Query", self.arbiter, "EVENT#");
        c.table("PutItem", self.arbiter, "EVENT#");
    }

    /// `acquire`: the lease in the arbiter's table; a failover reads the spec and the
    /// runs there first (the cooldown).
    pub(crate) fn acquire(&self, c: &mut Calls<'_>, failover: bool) {
        c.table("GetItem", self.arbiter, "LEASE");
        if failover {
            c.table("GetItem", self.arbiter, "SPEC");
            c.table("Query", self.arbiter, "RUN#");
        }
        c.table("UpdateItem", self.arbiter, "LEASE");
        // Run started.
        c.notify(self.home);
    }

    /// The data tier in `to` (the machine's Parallel: every branch runs, one with nothing
    /// of its kind in the Region ends after its checks). `planned`: the s3 flip reads
    /// the old rules in `from` (best effort) and Aurora switches over.
    pub(crate) fn promote_data(&self, c: &mut Calls<'_>, data_loss_accepted: bool) {
        let (to, from) = (self.to, self.from);
        let Some(target) = self.spec.region(to) else {
            return;
        };
        let planned = self.mode == Mode::Planned;
        // RDS: PromoteReadReplica, then DescribeDBInstances until a standalone writer.
        self.promoter_checks(c);
        for db in &target.databases {
            if let DatabaseRef::RdsInstance { instance_id, .. } = db {
                c.add("rds", "DescribeDBInstances", to, instance_id.clone(), true);
                c.add("rds", "PromoteReadReplica", to, instance_id.clone(), true);
                self.promoter_records(c);
            }
        }
        // Aurora global: switchover (planned, RPO 0) or failover, then polls.
        self.promoter_checks(c);
        for db in &target.databases {
            if let DatabaseRef::AuroraGlobal {
                global_cluster_id,
                cluster_id,
            } = db
            {
                let op = if planned {
                    "SwitchoverGlobalCluster"
                } else {
                    "FailoverGlobalCluster"
                };
                let res = if data_loss_accepted {
                    format!("{global_cluster_id} -> {cluster_id} (AllowDataLoss)")
                } else {
                    format!("{global_cluster_id} -> {cluster_id}")
                };
                c.add(
                    "rds",
                    "DescribeGlobalClusters",
                    to,
                    global_cluster_id.clone(),
                    true,
                );
                c.add("rds", op, to, res, true);
                self.promoter_records(c);
            }
        }
        // s3_flip: the target's buckets, read and written in the target Region;
        // planned, the old primary's rules read there too (best effort, short
        // timeouts). Unplanned, nothing outside the target Region: the rules are the
        // bucket's own suspended ones enabled again, or built from the spec (which
        // needs the bucket's role; without one nothing is put until suspend_old_rules
        // can mirror the old rules).
        self.promoter_checks(c);
        let old_buckets = self
            .spec
            .region(from)
            .map_or(&[][..], |r| r.buckets.as_slice());
        for (b, old) in target.buckets.iter().zip(old_buckets) {
            c.add("s3", "GetBucketReplication", to, b.name.clone(), true);
            if planned {
                c.add("s3", "GetBucketReplication", from, old.name.clone(), true);
            }
            if planned || b.replication_role_arn.is_some() {
                c.add("s3", "PutBucketReplication", to, b.name.clone(), true);
            }
            self.promoter_records(c);
        }
        // DynamoDB global tables: nothing to promote; the target's replica described.
        self.promoter_checks(c);
        for table in &target.dynamodb_tables {
            c.add("dynamodb", "DescribeTable", to, table.clone(), true);
        }
        // Compute (replica-promoter compute_scale, then compute_status until in
        // service): planned, what the left Region's resources run is read there (best
        // effort); the target's are described, the scale request recorded, and those
        // below their target scaled, all in the target Region.
        self.promoter_checks(c);
        if !target.compute.is_empty() {
            if planned && let Some(left) = self.spec.region(from).filter(|_| from != to) {
                for r in &left.compute {
                    compute_call(c, &r.resource, from, false);
                }
            }
            for r in &target.compute {
                compute_call(c, &r.resource, to, false);
            }
            self.promoter_records(c);
            for r in &target.compute {
                compute_call(c, &r.resource, to, true);
            }
        }
    }

    /// Flips routing switches (traffic-shifter `failover` and `enable`): the spec and
    /// the lease in the arbiter's table, each switch read in its Region, its position
    /// recorded (fenced) in the arbiter's table, then its metric and alarm state set.
    pub(crate) fn flip_switches(&self, c: &mut Calls<'_>, switches: &[&RoutingSwitch]) {
        c.table("GetItem", self.arbiter, "SPEC");
        c.table("GetItem", self.arbiter, "LEASE");
        for s in switches {
            let metric = format!("{}/{}", s.namespace, s.metric_name);
            c.read_switch(s, true);
            c.add(
                "dynamodb",
                "TransactWriteItems",
                self.arbiter,
                format!("WORKLOAD#{}/SWITCH# + LEASE", self.spec.workload),
                false,
            );
            c.add("cloudwatch", "PutMetricData", &s.region, metric, false);
            c.add(
                "cloudwatch",
                "SetAlarmState",
                &s.region,
                s.alarm_name.clone(),
                false,
            );
        }
    }

    /// `s3_suspend_old`, best effort after traffic has moved: the old primary's rules
    /// read in `from` (best-effort client); once read, unplanned, the target's rules
    /// replaced by their exact mirror, and the old rules suspended. A Region that does
    /// not answer gets no further call, and the outcome is recorded either way.
    pub(crate) fn suspend_old_rules(&self, c: &mut Calls<'_>) {
        let (to, from) = (self.to, self.from);
        self.promoter_checks(c);
        let (Some(old), Some(new)) = (self.spec.region(from), self.spec.region(to)) else {
            return;
        };
        if new.buckets.is_empty() {
            return;
        }
        c.table("Query", self.arbiter, "EVENT#");
        for (o, n) in old.buckets.iter().zip(&new.buckets) {
            c.add("s3", "GetBucketReplication", from, o.name.clone(), true);
            if self.mode == Mode::Unplanned {
                c.add_after_answer(
                    "s3",
                    "PutBucketReplication",
                    to,
                    format!(
                        "{} (the old rules' mirror, when s3_flip could not read them)",
                        n.name
                    ),
                    true,
                    from,
                );
            }
            c.add_after_answer(
                "s3",
                "PutBucketReplication",
                from,
                format!("{} (every rule Disabled)", o.name),
                true,
                from,
            );
            self.promoter_records(c);
        }
    }

    /// `reprotect`, once the target serves: `rds_reprotect` describes the new writers
    /// in `to`, then in every other Region — never `from` when unplanned (the Region
    /// failed away from) — looks for the replica it names and creates it
    /// (CreateDBInstanceReadReplica from the new writer's ARN), writes the spec
    /// (fenced) and its audit event; `aurora_reprotect` reads each global cluster in
    /// `to` (its secondaries follow the new writer by themselves).
    pub(crate) fn reprotect(&self, c: &mut Calls<'_>) {
        let (to, from) = (self.to, self.from);
        self.promoter_checks(c);
        let Some(target) = self.spec.region(to) else {
            return;
        };
        let mut rds = false;
        for db in &target.databases {
            if let DatabaseRef::RdsInstance { instance_id, .. } = db {
                rds = true;
                c.add("rds", "DescribeDBInstances", to, instance_id.clone(), true);
                for other in self.spec.regions.iter().filter(|r| {
                    r.region != to && !(self.mode == Mode::Unplanned && r.region == from)
                }) {
                    c.read_replica_of(instance_id, &other.region);
                }
            }
        }
        if rds {
            c.table("TransactWriteItems", self.arbiter, "SPEC + LEASE");
            self.promoter_records(c);
        }
        self.promoter_checks(c);
        for db in &target.databases {
            if let DatabaseRef::AuroraGlobal {
                global_cluster_id, ..
            } = db
            {
                c.add(
                    "rds",
                    "DescribeGlobalClusters",
                    to,
                    global_cluster_id.clone(),
                    true,
                );
            }
        }
    }

    /// `finalize`: the run's record read, the spec written fenced, the run recorded,
    /// the audit event appended and the lease released, all in the arbiter's table.
    pub(crate) fn finalize(&self, c: &mut Calls<'_>) {
        c.table("Query", self.arbiter, "RUN#");
        c.table("GetItem", self.arbiter, "SPEC");
        c.table("TransactWriteItems", self.arbiter, "SPEC + LEASE");
        c.table("TransactWriteItems", self.arbiter, "RUN# + LEASE");
        c.table("PutItem", self.arbiter, "EVENT#");
        c.table("UpdateItem", self.arbiter, "LEASE");
        // Run succeeded.
        c.notify(self.home);
    }
}

/// One health-probe round of `spec`'s workload, as a state machine's probe step invokes
/// it (`{"workload"}`: one round, no switch re-assertion; `"regions"`: only those,
/// `only` here, empty for every Region), running in `home`: the spec, the health and
/// the switch positions read in its table; for each Region probed, the Route 53 health
/// checks of its records (Route 53's API, us-east-1), its alarms, and for a replica its
/// databases' replication lag and the S3 replication latency into its buckets
/// (CloudWatch in that Region: S3 publishes `ReplicationLatency` in the destination
/// bucket's Region); the health written, an audit event on a verdict change, and one
/// PutMetricData in `home`. Each signal is bounded (2 s) and a late one is a note.
///
/// A Region's routing-switch alarm is read (DescribeAlarms in the switch's Region) unless
/// its switch is recorded off (`switched_off`, as the step before left it): an unhealthy
/// Route 53 check on a switch that is off is a decision, not the Region's health; nor
/// when the switch lives in a Region the probe avoids (`avoid`, health-probe's
/// `avoid_regions`: the failover's verification never calls the Region it leaves).
pub(crate) fn probe_round(
    p: &Places<'_>,
    c: &mut Calls<'_>,
    switched_off: &[&str],
    only: &[&str],
    avoid: &[&str],
) {
    let (spec, home) = (p.spec, p.home);
    c.spec_and_health(home);
    c.table("Query", home, "SWITCH#");
    let primary = spec.primary().map(|p| p.region.as_str());
    let probed = spec
        .regions
        .iter()
        .filter(|r| only.is_empty() || only.contains(&r.region.as_str()));
    for r in probed {
        let replica = primary != Some(r.region.as_str());
        if let Some(s) = &r.routing_switch
            && !switched_off.contains(&r.region.as_str())
            && !avoid.contains(&s.region.as_str())
        {
            c.read_switch(s, false);
        }
        for d in &r.dns {
            if let Some(id) = &d.health_check_id {
                // Route 53's API answers from us-east-1: when that does not answer
                // (bounded, 2 s), the probe notes it and the call has no answer.
                c.add_after_answer(
                    "route53",
                    "GetHealthCheckStatus",
                    ROUTE53_REGION,
                    id.clone(),
                    true,
                    ROUTE53_REGION,
                );
            }
        }
        if !r.alarms.is_empty() {
            c.add(
                "cloudwatch",
                "DescribeAlarms",
                &r.region,
                r.alarms.join(","),
                false,
            );
        }
        if replica && !r.databases.is_empty() {
            c.add(
                "cloudwatch",
                "GetMetricData",
                &r.region,
                format!("replication lag into {}", r.region),
                false,
            );
        }
        if replica && !r.buckets.is_empty() {
            let what = format!("AWS/S3 ReplicationLatency into {}", r.region);
            c.add("cloudwatch", "ListMetrics", &r.region, what.clone(), false);
            c.add("cloudwatch", "GetMetricData", &r.region, what, false);
        }
        c.table("PutItem", home, &format!("HEALTH#{}", r.region));
    }
    c.table("PutItem", home, "EVENT# (a verdict change)");
    c.add(
        "cloudwatch",
        "PutMetricData",
        home,
        "Lifeboat/RegionHealthy, ProbeLatencyMs, ReplicationLagSeconds".into(),
        false,
    );
    // health-probe tells transitions only (lifeboat::notify, beside the metric).
    c.notify_when(home, "a verdict changes or replication lag turns critical");
}

/// The plan of `steps`, with its summary flags.
pub(crate) fn finish(steps: Vec<PlanStep>, from: &str) -> Plan {
    let all = || steps.iter().flat_map(|s| s.calls.iter());
    Plan {
        touches_control_plane_outside_surviving_region: all()
            .any(|c| c.control_plane && c.outside_surviving_region),
        touches_failed_region: all().any(|c| c.region == from),
        steps,
    }
}

/// Every step of the `failover` machine and every AWS call each makes, with the Region
/// it goes to (what a dry run returns). The traffic moves through the routing switches
/// in both modes: no Route 53 record is changed.
pub fn plan(
    spec: &WorkloadSpec,
    mode: Mode,
    from: &str,
    to: &str,
    arbiter: &str,
    home: &str,
    data_loss_accepted: bool,
) -> Plan {
    let p = Places {
        spec,
        mode,
        from,
        to,
        arbiter,
        home,
    };
    let switches: Vec<&RoutingSwitch> = failover_switches(spec, from, to);
    let mut steps = vec![
        p.step(
            "decide",
            crate::NAME,
            format!("pick {to} to take over from {from}"),
            |c| c.spec_and_health(home),
        ),
        p.step(
            "acquire",
            crate::NAME,
            format!("check the cooldown and take the failover lease in {arbiter} with a new epoch"),
            |c| p.acquire(c, true),
        ),
    ];
    if mode == Mode::Planned {
        // The writer is drained before anything is promoted: its switch off, then the
        // target caught up, read by a probe after the drain.
        steps.extend([
            p.step(
                "drain_writer",
                "traffic-shifter",
                format!(
                    "planned: drain the writer first, {from} out of DNS through its routing switch (and {to}'s on), data plane only"
                ),
                |c| p.flip_switches(c, &switches),
            ),
            p.step(
                "wait_for_replication",
                "health-probe",
                format!(
                    "probe {to} until it is healthy and its replication lag is at or under policy.planned_max_lag_seconds ({} s), bounded by timing.verify_max_polls; else the drain is undone ({from}'s switch on again) and nothing is promoted",
                    spec.policy.planned_max_lag_seconds
                ),
                |c| probe_round(&p, c, &[from], &[to], &[from]),
            ),
            p.step(
                "check_lag",
                crate::NAME,
                format!("read {to}'s health and lag after each probe"),
                |c| c.spec_and_health(home),
            ),
        ]);
    }
    steps.extend([
        p.step(
            "promote_data",
            "replica-promoter",
            format!(
                "make the data tier in {to} writable (RDS, Aurora, S3 replication, DynamoDB: in parallel)"
            ),
            |c| p.promote_data(c, data_loss_accepted),
        ),
        p.step(
            "shift_traffic",
            "traffic-shifter",
            format!(
                "take {from} out of DNS through its routing switch (and {to}'s on), data plane only"
            ),
            |c| p.flip_switches(c, &switches),
        ),
        p.step(
            "suspend_old_rules",
            "replica-promoter",
            format!(
                "best effort, after traffic has moved: suspend the replication rules of {from}'s buckets in {from} (2 s per attempt, 4 s per call, one retry); a failure is recorded and never fails the run"
            ),
            |c| p.suspend_old_rules(c),
        ),
        p.step(
            "verify",
            "health-probe",
            format!(
                "probe rounds of {to} only (`regions`), until it is seen healthy: {from} is neither probed nor read, not even for a routing-switch alarm it hosts (`avoid_regions`; each signal bounded to 2 s)"
            ),
            |c| probe_round(&p, c, &[from], &[to], &[from]),
        ),
        p.step(
            "reprotect",
            "replica-promoter",
            match mode {
                Mode::Unplanned => format!(
                    "once {to} serves: read replicas of its RDS writers in every other surviving Region (not {from}), the replicas they replace reported for cleanup (never deleted); Aurora's followers checked; bounded, and never compensates the move"
                ),
                Mode::Planned => format!(
                    "once {to} serves: read replicas of its RDS writers in every other Region ({from} too), the replicas they replace reported for cleanup (never deleted); Aurora's followers checked; bounded, and never compensates the move"
                ),
            },
            |c| p.reprotect(c),
        ),
        p.step(
            "finalize",
            crate::NAME,
            format!(
                "write the new roles and weights fenced by the lease epoch in {arbiter}, record the run, release the lease"
            ),
            |c| p.finalize(c),
        ),
    ]);
    finish(steps, from)
}

/// The switches traffic-shifter's `failover` step flips: `from`'s off (it must live in
/// another Region), and `to`'s on unless it lives in `from`.
pub(crate) fn failover_switches<'a>(
    spec: &'a WorkloadSpec,
    from: &str,
    to: &str,
) -> Vec<&'a RoutingSwitch> {
    let off = spec
        .region(from)
        .and_then(|r| r.routing_switch.as_ref())
        .filter(|s| s.region != from);
    let on = spec
        .region(to)
        .and_then(|r| r.routing_switch.as_ref())
        .filter(|s| s.region != from);
    off.into_iter().chain(on).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../events/model/example-spec.json");
    const NOW: UnixMillis = UnixMillis(1_795_464_000_000);

    fn spec() -> WorkloadSpec {
        let mut s: WorkloadSpec = serde_json::from_str(EXAMPLE).unwrap();
        s.version = 7;
        s
    }

    fn health(region: &str, verdict: Verdict, lag: Option<f64>) -> HealthRecord {
        HealthRecord {
            region: region.into(),
            verdict,
            consecutive_failures: 0,
            consecutive_successes: 3,
            probe_latency_ms: Some(12),
            replication_lag_seconds: lag,
            lag_grade: None,
            observed_at: UnixMillis(NOW.0 - 5_000),
            detail: None,
        }
    }

    /// [`all_healthy`] with every replica caught up (what a planned move needs).
    fn caught_up() -> Vec<HealthRecord> {
        let mut h = all_healthy();
        for r in &mut h[1..] {
            r.replication_lag_seconds = Some(0.0);
        }
        h
    }

    fn all_healthy() -> Vec<HealthRecord> {
        vec![
            health("us-east-1", Verdict::Unhealthy, None),
            health("eu-west-1", Verdict::Healthy, Some(2.0)),
            health("ap-southeast-1", Verdict::Healthy, Some(1.0)),
        ]
    }

    fn req(mode: Mode) -> FailoverRequest {
        FailoverRequest {
            workload: "checkout".into(),
            failed_region: None,
            target_region: None,
            mode,
            dry_run: false,
            accept_data_loss: false,
            reason: "test".into(),
            requested_by: "alice".into(),
            request_id: None,
            trigger: None,
            timing: None,
            drill: false,
            force: false,
        }
    }

    fn weights(d: &Decision) -> Vec<(String, Role, u32)> {
        d.changes
            .iter()
            .map(|c| (c.region.clone(), c.role_after, c.weight_after))
            .collect()
    }

    fn alarm_req() -> FailoverRequest {
        FailoverRequest {
            trigger: Some(crate::request::Trigger {
                alarm_name: "lifeboat-checkout-us-east-1-unhealthy-seen-from-eu-west-1".into(),
                alarm_arn: None,
                state_changed_at: UnixMillis(NOW.0 - 1_000),
            }),
            ..req(Mode::Unplanned)
        }
    }

    #[test]
    fn an_alarm_fails_over_only_a_region_the_probes_freshly_call_unhealthy() {
        // Unhealthy, observed 5 s ago: warranted.
        assert!(decide(&spec(), &all_healthy(), &alarm_req(), "eu-west-1", NOW).is_ok());
        // The alarm fired but the probes see the primary healthy (a stray or hand-set
        // alarm, a prober whose metrics lie): refused, named, nothing decided.
        let mut h = all_healthy();
        h[0].verdict = Verdict::Healthy;
        let err = decide(&spec(), &h, &alarm_req(), "eu-west-1", NOW).unwrap_err();
        assert_eq!(
            err.name(),
            lifeboat::ErrorName::FailoverUnwarranted,
            "{err}"
        );
        assert!(err.to_string().contains("Healthy"), "{err}");
        // Unknown (never enough rounds) is not unhealthy either.
        h[0].verdict = Verdict::Unknown;
        let err = decide(&spec(), &h, &alarm_req(), "eu-west-1", NOW).unwrap_err();
        assert_eq!(
            err.name(),
            lifeboat::ErrorName::FailoverUnwarranted,
            "{err}"
        );
        // Unhealthy, but the prober stopped writing long ago: its silence is no evidence.
        let mut h = all_healthy();
        h[0].observed_at = UnixMillis(NOW.0 - fresh_within_ms(&spec()) - 1);
        let err = decide(&spec(), &h, &alarm_req(), "eu-west-1", NOW).unwrap_err();
        assert_eq!(
            err.name(),
            lifeboat::ErrorName::FailoverUnwarranted,
            "{err}"
        );
        assert!(err.to_string().contains("prober is not running"), "{err}");
        // Never probed at all.
        let err = decide(&spec(), &all_healthy()[1..], &alarm_req(), "eu-west-1", NOW).unwrap_err();
        assert_eq!(
            err.name(),
            lifeboat::ErrorName::FailoverUnwarranted,
            "{err}"
        );
        // An operator may still move a healthy primary (planned or not): no trigger.
        let mut h = all_healthy();
        h[0].verdict = Verdict::Healthy;
        assert!(decide(&spec(), &h, &req(Mode::Unplanned), "eu-west-1", NOW).is_ok());
        // Fresh means two detection windows, at least two minutes.
        assert_eq!(fresh_within_ms(&spec()), 120_000);
    }

    #[test]
    fn picks_the_least_lagged_healthy_secondary_and_spreads_weight_like_dns() {
        let d = decide(
            &spec(),
            &all_healthy(),
            &req(Mode::Unplanned),
            "us-east-1",
            NOW,
        )
        .unwrap();
        assert_eq!(d.from_region, "us-east-1");
        assert_eq!(d.to_region, "ap-southeast-1", "lag 1 s beats 2 s");
        assert_eq!(d.spec_version, 7);
        assert!(!d.data_loss_accepted);
        assert_eq!(
            weights(&d),
            [
                ("us-east-1".into(), Role::Secondary, 0),
                ("eu-west-1".into(), Role::Secondary, 60),
                ("ap-southeast-1".into(), Role::Primary, 40),
            ]
        );
        // Spans MRSC sets: the lease lives in the first Region that is not failing.
        assert_eq!(d.arbiter_region, "eu-west-1");
        assert_eq!(d.lease_consistency, LeaseConsistency::Eventual);
    }

    #[test]
    fn ties_on_lag_go_to_the_heavier_region() {
        let mut h = all_healthy();
        h[2].replication_lag_seconds = Some(2.0);
        let d = decide(&spec(), &h, &req(Mode::Unplanned), "us-east-1", NOW).unwrap();
        assert_eq!(d.to_region, "eu-west-1");
    }

    #[test]
    fn a_secondary_beats_a_standby_whatever_the_lag() {
        let mut s = spec();
        s.pattern = lifeboat::model::DrPattern::WarmStandby;
        s.regions[0].weight = 80;
        s.regions[2].role = Role::Standby;
        s.regions[2].weight = 0;
        s.regions[1].weight = 20;
        let d = decide(&s, &all_healthy(), &req(Mode::Unplanned), "us-east-1", NOW).unwrap();
        assert_eq!(d.to_region, "eu-west-1");
        assert_eq!(
            weights(&d),
            [
                ("us-east-1".into(), Role::Standby, 0),
                ("eu-west-1".into(), Role::Primary, 100),
                ("ap-southeast-1".into(), Role::Standby, 0),
            ]
        );
    }

    /// Active/active 50/50/0 (ap-southeast-1 drained, say): ap-southeast-1 has the
    /// lower lag but weight 0, so it would be a writer DNS never answers; the failover
    /// goes to eu-west-1, and naming ap-southeast-1 is refused, saying why. A standby of
    /// weight 0 in active/passive takes the whole moved weight and stays a target.
    #[test]
    fn an_unweighted_region_is_no_active_active_target_while_a_weighted_one_serves() {
        let mut s = spec();
        s.regions[0].weight = 50;
        s.regions[1].weight = 50;
        s.regions[2].weight = 0;
        let d = decide(&s, &all_healthy(), &req(Mode::Unplanned), "us-east-1", NOW).unwrap();
        assert_eq!(d.to_region, "eu-west-1", "{:?}", d.candidates);
        assert_eq!(
            weights(&d),
            [
                ("us-east-1".into(), Role::Secondary, 0),
                ("eu-west-1".into(), Role::Primary, 100),
                ("ap-southeast-1".into(), Role::Secondary, 0),
            ]
        );
        let mut r = req(Mode::Unplanned);
        r.target_region = Some("ap-southeast-1".into());
        let err = decide(&s, &all_healthy(), &r, "us-east-1", NOW).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::TargetUnhealthy, "{err}");
        assert!(
            err.to_string().contains("ap-southeast-1: weight 0"),
            "{err}"
        );
        assert!(err.to_string().contains("eu-west-1 keep"), "{err}");

        s.pattern = lifeboat::model::DrPattern::WarmStandby;
        s.regions[0].weight = 100;
        s.regions[1].weight = 0;
        s.regions[1].role = Role::Standby;
        s.regions[2].role = Role::Standby;
        let d = decide(&s, &all_healthy(), &req(Mode::Unplanned), "us-east-1", NOW).unwrap();
        assert_eq!(d.to_region, "ap-southeast-1", "{:?}", d.candidates);
        assert_eq!(
            weights(&d),
            [
                ("us-east-1".into(), Role::Standby, 0),
                ("eu-west-1".into(), Role::Standby, 0),
                ("ap-southeast-1".into(), Role::Primary, 100),
            ]
        );
    }

    #[test]
    fn never_into_an_unhealthy_unknown_or_stale_region() {
        let mut h = all_healthy();
        h[1].verdict = Verdict::Unhealthy;
        h[1].detail = Some("https://euw1 timed out".into());
        h[2].observed_at = UnixMillis(NOW.0 - 3_600_000);
        let err = decide(&spec(), &h, &req(Mode::Unplanned), "us-east-1", NOW).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::TargetUnhealthy);
        let msg = err.to_string();
        assert!(msg.contains("eu-west-1: verdict is unhealthy"), "{msg}");
        assert!(msg.contains("ap-southeast-1: health observed at"), "{msg}");

        let err = decide(&spec(), &h[..1], &req(Mode::Unplanned), "us-east-1", NOW).unwrap_err();
        assert!(err.to_string().contains("no health verdict"), "{err}");

        // An explicit target gets the same refusal.
        let mut r = req(Mode::Planned);
        r.target_region = Some("eu-west-1".into());
        let err = decide(&spec(), &h, &r, "us-east-1", NOW).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::TargetUnhealthy);
    }

    #[test]
    fn a_lagging_replica_is_refused_unless_unplanned_accepts_data_loss() {
        let mut h = all_healthy();
        h[1].replication_lag_seconds = Some(1200.0);
        h[2].replication_lag_seconds = Some(901.0);
        let err = decide(&spec(), &h, &req(Mode::Planned), "us-east-1", NOW).unwrap_err();
        let Error::ReplicaLagTooHigh {
            region,
            lag_seconds,
            budget_seconds,
        } = &err
        else {
            panic!("{err:?}")
        };
        // Planned too is decided within the RPO (the catch-up bound comes after the
        // drain).
        assert_eq!(
            (region.as_str(), *lag_seconds, *budget_seconds),
            ("ap-southeast-1", 901.0, 900)
        );
        let err = decide(&spec(), &h, &req(Mode::Unplanned), "us-east-1", NOW).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::ReplicaLagTooHigh);

        let mut r = req(Mode::Unplanned);
        r.accept_data_loss = true;
        let d = decide(&spec(), &h, &r, "us-east-1", NOW).unwrap();
        assert!(d.data_loss_accepted);
        assert_eq!(d.to_region, "ap-southeast-1");
        assert_eq!(d.lag_seconds, Some(901.0));

        // One replica within budget is preferred over accepting loss.
        h[1].replication_lag_seconds = Some(3.0);
        let d = decide(&spec(), &h, &r, "us-east-1", NOW).unwrap();
        assert_eq!(
            (d.to_region.as_str(), d.data_loss_accepted),
            ("eu-west-1", false)
        );
    }

    /// One candidate (eu-west-1) for an unplanned failover with `lag` into it, observed
    /// `age_ms` before the decision.
    fn to_eu(lag: Option<f64>, age_ms: u64) -> (Vec<HealthRecord>, FailoverRequest) {
        let mut h = all_healthy();
        h[1].replication_lag_seconds = lag;
        h[1].observed_at = UnixMillis(NOW.0 - age_ms);
        let mut r = req(Mode::Unplanned);
        r.target_region = Some("eu-west-1".into());
        (h, r)
    }

    #[test]
    fn unknown_negative_or_stale_lag_is_not_within_the_rpo() {
        for (case, lag, age_ms, needle) in [
            ("unknown", None, 5_000, "no fresh replication lag"),
            (
                "replication stopped",
                Some(-1.0),
                5_000,
                "replication is not running",
            ),
            (
                "not a number",
                Some(f64::NAN),
                5_000,
                "no fresh replication lag",
            ),
            // Healthy by the verdict's 5-minute bound, but a lag three minutes old
            // is not the lag now.
            ("stale", Some(1.0), 180_000, "observed 180 s ago"),
        ] {
            let (h, r) = to_eu(lag, age_ms);
            let err = decide(&spec(), &h, &r, "us-east-1", NOW).unwrap_err();
            assert_eq!(
                err.name(),
                lifeboat::ErrorName::ReplicaLagTooHigh,
                "{case}: {err}"
            );
            assert!(err.to_string().contains("eu-west-1"), "{case}: {err}");
            assert!(err.to_string().contains(needle), "{case}: {err}");
        }
        // Fresh and within: goes ahead, no loss accepted.
        let (h, r) = to_eu(Some(2.0), 5_000);
        let d = decide(&spec(), &h, &r, "us-east-1", NOW).unwrap();
        assert!(!d.data_loss_accepted);
        assert!(d.candidates[0].within_rpo);
    }

    /// Continuing a partial run whose data tier was promoted in the target: its
    /// databases are writers and publish no replica lag, so the gate that refused the
    /// unknown lag above does not hold the continuation back, and no loss is accepted
    /// on its account; any other target is still gated.
    #[test]
    fn a_continuation_past_the_promotion_is_not_gated_on_lag() {
        let (h, r) = to_eu(None, 5_000);
        let d = decide_continuing(&spec(), &h, &r, "us-east-1", NOW, Some("eu-west-1")).unwrap();
        assert_eq!(d.to_region, "eu-west-1");
        assert!(!d.data_loss_accepted);
        let err = decide_continuing(&spec(), &h, &r, "us-east-1", NOW, Some("ap-southeast-1"))
            .unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::ReplicaLagTooHigh, "{err}");
    }

    #[test]
    fn accepting_data_loss_passes_an_unknown_lag_and_records_why() {
        let (h, mut r) = to_eu(None, 5_000);
        r.accept_data_loss = true;
        let d = decide(&spec(), &h, &r, "us-east-1", NOW).unwrap();
        assert!(d.data_loss_accepted);
        assert_eq!(d.to_region, "eu-west-1");
        assert!(!d.candidates[0].within_rpo);
        let json = serde_json::to_value(&d).unwrap();
        let why = json["data_loss_reason"].as_str().unwrap_or_default();
        assert!(why.contains("no fresh replication lag"), "{json}");
    }

    #[test]
    fn an_unknown_lag_never_ranks_above_a_known_one() {
        let mut h = all_healthy();
        h[1].replication_lag_seconds = Some(30.0);
        h[2].replication_lag_seconds = None;
        let d = decide(&spec(), &h, &req(Mode::Unplanned), "us-east-1", NOW).unwrap();
        assert_eq!(d.to_region, "eu-west-1", "{:?}", d.candidates);
        assert_eq!(d.candidates[0].region, "eu-west-1");
    }

    #[test]
    fn a_planned_move_is_decided_within_the_rpo_and_promotes_only_caught_up() {
        let mut r = req(Mode::Planned);
        r.target_region = Some("eu-west-1".into());
        let mut h = all_healthy();
        // 2 s behind: within the 900-s RPO, so decided; the writer is drained next.
        let d = decide(&spec(), &h, &r, "us-east-1", NOW).unwrap();
        assert_eq!(d.to_region, "eu-west-1");
        assert!(!d.data_loss_accepted);
        // Unknown lag is refused at once, as for any move.
        h[1].replication_lag_seconds = None;
        let err = decide(&spec(), &h, &r, "us-east-1", NOW).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::ReplicaLagTooHigh, "{err}");
        // After the drain (`check_lag`): not caught up at 2 s (the default bound is 0),
        // caught up at 0, and the bound is the policy's.
        h[1].replication_lag_seconds = Some(2.0);
        let ready =
            |s: &WorkloadSpec, h: &HealthRecord| crate::failback::readiness(s, Some(h), NOW);
        let r2 = ready(&spec(), &h[1]);
        assert!(!r2.ready && r2.budget_seconds == 0, "{r2:?}");
        assert!(
            r2.lag_refused
                .as_deref()
                .unwrap_or("")
                .contains("budget of 0 s"),
            "{r2:?}"
        );
        h[1].replication_lag_seconds = Some(0.0);
        assert!(ready(&spec(), &h[1]).ready);
        let mut s = spec();
        s.policy.planned_max_lag_seconds = 5;
        h[1].replication_lag_seconds = Some(2.0);
        assert!(ready(&s, &h[1]).ready);
    }

    #[test]
    fn bad_targets_are_named() {
        let mut r = req(Mode::Planned);
        r.target_region = Some("us-east-1".into());
        let err = decide(&spec(), &all_healthy(), &r, "us-east-1", NOW).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid input: target_region: `us-east-1` is already the primary of workload `checkout`"
        );
        r.target_region = Some("us-west-2".into());
        let err = decide(&spec(), &all_healthy(), &r, "us-east-1", NOW).unwrap_err();
        assert!(
            err.to_string().contains("not a Region of workload"),
            "{err}"
        );
        let mut r = req(Mode::Unplanned);
        r.failed_region = Some("eu-west-1".into());
        let err = decide(&spec(), &all_healthy(), &r, "us-east-1", NOW).unwrap_err();
        assert!(err.to_string().contains("is not the primary"), "{err}");
    }

    fn ops<'a>(calls: impl IntoIterator<Item = &'a PlannedCall>) -> Vec<(&'a str, &'a str)> {
        calls
            .into_iter()
            .map(|c| (c.operation.as_str(), c.region.as_str()))
            .collect()
    }

    fn step<'a>(d: &'a Decision, name: &str) -> &'a PlanStep {
        d.plan
            .steps
            .iter()
            .find(|s| s.step == name)
            .unwrap_or_else(|| panic!("no step {name}"))
    }

    #[test]
    fn the_plan_reprotects_every_surviving_region_and_never_calls_the_failed_one() {
        let creates = |d: &Decision| -> Vec<String> {
            step(d, "reprotect")
                .calls
                .iter()
                .filter(|c| c.operation == "CreateDBInstanceReadReplica")
                .map(|c| c.region.clone())
                .collect()
        };
        let mut r = req(Mode::Unplanned);
        r.target_region = Some("eu-west-1".into());
        let d = decide(&spec(), &all_healthy(), &r, "eu-west-1", NOW).unwrap();
        assert_eq!(creates(&d), ["ap-southeast-1"]);
        let rp = step(&d, "reprotect");
        assert_eq!(rp.function, "replica-promoter");
        assert!(rp.calls.iter().all(|c| c.region != "us-east-1"), "{rp:?}");
        assert!(
            rp.calls
                .iter()
                .any(|c| c.operation == "TransactWriteItems" && c.region == "eu-west-1")
        );
        let mut planned = req(Mode::Planned);
        planned.target_region = Some("eu-west-1".into());
        let mut s = spec();
        s.policy.planned_max_lag_seconds = 5;
        let d = decide(&s, &all_healthy(), &planned, "eu-west-1", NOW).unwrap();
        assert_eq!(creates(&d), ["us-east-1", "ap-southeast-1"]);
    }

    #[test]
    fn the_plan_lists_every_call_and_flags_control_planes_outside_the_survivor() {
        let mut r = req(Mode::Unplanned);
        r.target_region = Some("eu-west-1".into());
        let d = decide(&spec(), &all_healthy(), &r, "eu-west-1", NOW).unwrap();
        let steps: Vec<&str> = d.plan.steps.iter().map(|s| s.step.as_str()).collect();
        // The failover machine's steps, in order, each with the function that runs it.
        assert_eq!(
            steps,
            [
                "decide",
                "acquire",
                "promote_data",
                "shift_traffic",
                "suspend_old_rules",
                "verify",
                "reprotect",
                "finalize"
            ]
        );
        // The traffic moves through the data plane: us-east-1's switch (it lives in
        // eu-west-1) off, its position recorded fenced in the arbiter; eu-west-1's
        // switch lives in us-east-1, which is being left: not touched.
        assert_eq!(
            ops(&step(&d, "shift_traffic").calls),
            [
                ("GetItem", "eu-west-1"),
                ("GetItem", "eu-west-1"),
                ("DescribeAlarms", "eu-west-1"),
                ("GetMetricData", "eu-west-1"),
                ("TransactWriteItems", "eu-west-1"),
                ("PutMetricData", "eu-west-1"),
                ("SetAlarmState", "eu-west-1"),
            ]
        );
        let promote = &step(&d, "promote_data").calls;
        let rds: Vec<(&str, &str)> = ops(promote.iter().filter(|c| c.service == "rds"));
        assert_eq!(
            rds,
            [
                ("DescribeDBInstances", "eu-west-1"),
                ("PromoteReadReplica", "eu-west-1")
            ]
        );
        assert!(
            promote
                .iter()
                .any(|c| c.resource == "checkout-db-replica-euw1")
        );
        // Up to the end of the traffic switch, nothing goes to the failed Region or to
        // Route 53: the S3 flip reads and writes the target's bucket only.
        let critical: Vec<&PlannedCall> = d.plan.steps[..4].iter().flat_map(|s| &s.calls).collect();
        assert!(
            critical.iter().all(|c| c.region != "us-east-1"),
            "{critical:#?}"
        );
        assert!(
            critical.iter().all(|c| c.service != "route53"),
            "{critical:#?}"
        );
        assert_eq!(
            ops(promote.iter().filter(|c| c.service == "s3")),
            [
                ("GetBucketReplication", "eu-west-1"),
                ("PutBucketReplication", "eu-west-1")
            ]
        );
        // After it, best effort: the old bucket's rules suspended in the failed Region
        // (and the target's rules replaced by the old ones' mirror), each put only once
        // us-east-1 has answered the read. The plan says so.
        let suspend = step(&d, "suspend_old_rules");
        assert_eq!(suspend.function, "replica-promoter");
        assert!(
            suspend.summary.contains("best effort"),
            "{}",
            suspend.summary
        );
        let s3: Vec<&PlannedCall> = suspend.calls.iter().filter(|c| c.service == "s3").collect();
        assert_eq!(
            ops(s3.iter().copied()),
            [
                ("GetBucketReplication", "us-east-1"),
                ("PutBucketReplication", "eu-west-1"),
                ("PutBucketReplication", "us-east-1")
            ]
        );
        assert_eq!(s3[0].resource, "checkout-receipts-use1");
        assert_eq!(s3[0].needs_answer_from, None);
        assert!(
            s3[1..]
                .iter()
                .all(|c| c.needs_answer_from.as_deref() == Some("us-east-1"))
        );
        // The verification probes the target only (`regions`): nothing of the other
        // Regions' own signals, and Route 53's health checks through its API in
        // us-east-1.
        let verify = step(&d, "verify");
        assert_eq!(verify.function, "health-probe");
        let calls = &verify.calls;
        assert!(
            calls.iter().all(|c| c.region != "ap-southeast-1"),
            "{calls:#?}"
        );
        assert!(calls.iter().any(|c| c.operation == "GetHealthCheckStatus"
            && c.region == ROUTE53_REGION
            && c.control_plane
            && c.outside_surviving_region));
        // S3 replication latency into the target is read in the target's Region, where
        // S3 publishes it (the destination's), never in the failed one.
        assert!(
            calls
                .iter()
                .any(|c| c.operation == "ListMetrics" && c.region == "eu-west-1")
        );
        // Not even eu-west-1's routing-switch alarm, which lives in the failed us-east-1
        // (`avoid_regions`): the only call signed for us-east-1 is Route 53's API.
        assert!(
            calls
                .iter()
                .all(|c| c.region != "us-east-1" || c.service == "route53"),
            "{calls:#?}"
        );
        assert!(d.plan.touches_failed_region);
        assert!(d.plan.touches_control_plane_outside_surviving_region);

        // Planned: the same data-plane switch, no Route 53 record change; both Regions
        // are up, so s3_flip reads the old rules to mirror them, and the suspension
        // only suspends (no mirror to put).
        let mut r = req(Mode::Planned);
        r.target_region = Some("eu-west-1".into());
        let d = decide(&spec(), &caught_up(), &r, "eu-west-1", NOW).unwrap();
        assert!(
            d.plan
                .steps
                .iter()
                .flat_map(|s| &s.calls)
                .all(|c| c.operation != "ChangeResourceRecordSets"),
            "{:#?}",
            d.plan
        );
        assert_eq!(
            ops(&step(&d, "shift_traffic").calls)[2..],
            [
                ("DescribeAlarms", "eu-west-1"),
                ("GetMetricData", "eu-west-1"),
                ("TransactWriteItems", "eu-west-1"),
                ("PutMetricData", "eu-west-1"),
                ("SetAlarmState", "eu-west-1"),
            ]
        );
        assert_eq!(
            ops(step(&d, "promote_data")
                .calls
                .iter()
                .filter(|c| c.service == "s3")),
            [
                ("GetBucketReplication", "eu-west-1"),
                ("GetBucketReplication", "us-east-1"),
                ("PutBucketReplication", "eu-west-1")
            ]
        );
        let suspend: Vec<&PlannedCall> = step(&d, "suspend_old_rules")
            .calls
            .iter()
            .filter(|c| c.service == "s3")
            .collect();
        assert!(
            suspend.iter().all(|c| c.region == "us-east-1"),
            "{suspend:#?}"
        );
        assert!(d.plan.touches_control_plane_outside_surviving_region);
        assert!(d.plan.touches_failed_region);
    }

    #[test]
    fn every_data_tier_branch_checks_the_lease_and_an_empty_one_stops_there() {
        // A target with no database, bucket, table or compute: every branch of the
        // Parallel (five: RDS, Aurora, S3, DynamoDB, compute) still runs and reads the
        // spec and the lease in the arbiter, nothing more.
        let mut s = spec();
        for r in &mut s.regions {
            r.databases.clear();
            r.buckets.clear();
            r.dynamodb_tables.clear();
        }
        let mut r = req(Mode::Unplanned);
        r.target_region = Some("eu-west-1".into());
        let d = decide(&s, &all_healthy(), &r, "eu-west-1", NOW).unwrap();
        let promote = &step(&d, "promote_data").calls;
        assert_eq!(promote.len(), 10, "{promote:#?}");
        assert!(
            promote
                .iter()
                .all(|c| c.service == "dynamodb" && c.operation == "GetItem"),
            "{promote:#?}"
        );
        // A workload whose first Region has an Aurora member: switchover when planned.
        let mut s = spec();
        s.regions[1].databases = vec![DatabaseRef::AuroraGlobal {
            global_cluster_id: "g".into(),
            cluster_id: "c-euw1".into(),
        }];
        let mut r = req(Mode::Planned);
        r.target_region = Some("eu-west-1".into());
        let d = decide(&s, &caught_up(), &r, "eu-west-1", NOW).unwrap();
        let rds = ops(step(&d, "promote_data")
            .calls
            .iter()
            .filter(|c| c.service == "rds"));
        assert_eq!(
            rds,
            [
                ("DescribeGlobalClusters", "eu-west-1"),
                ("SwitchoverGlobalCluster", "eu-west-1")
            ]
        );
    }

    #[test]
    fn one_mrsc_set_keeps_the_lease_local() {
        let mut s = spec();
        s.regions[1].region = "us-east-2".into();
        s.regions[2].region = "us-west-2".into();
        assert_eq!(
            arbiter(&s, "us-east-1", "us-west-2"),
            ("us-west-2".into(), LeaseConsistency::Strong)
        );
        assert_eq!(
            arbiter(&s, "us-east-1", "us-east-1"),
            ("us-east-2".into(), LeaseConsistency::Strong)
        );
        assert_eq!(
            arbiter(&spec(), "eu-west-1", "ap-southeast-1"),
            ("us-east-1".into(), LeaseConsistency::Eventual)
        );
    }

    #[test]
    fn applied_and_unchanged_are_told_apart() {
        let d = decide(
            &spec(),
            &all_healthy(),
            &req(Mode::Unplanned),
            "us-east-1",
            NOW,
        )
        .unwrap();
        let mut s = spec();
        assert!(is_unchanged(&s, &d.changes) && !is_applied(&s, &d.changes));
        apply_changes(&mut s, &d.changes).unwrap();
        assert!(is_applied(&s, &d.changes) && !is_unchanged(&s, &d.changes));
        assert!(s.check().is_ok());
        s.regions.pop();
        assert!(apply_changes(&mut s, &d.changes).is_err());
    }

    /// Issue #15: the target's compute is in the plan (replica-promoter's compute
    /// steps); unplanned, nothing of it outside the target Region; planned, what the
    /// left Region runs read there.
    #[test]
    fn the_plan_scales_the_targets_compute_in_the_target_region() {
        use lifeboat::model::{ComputeRef, ComputeResource};
        let mut s = spec();
        for r in &mut s.regions {
            r.compute = vec![
                ComputeRef {
                    tier: "web".into(),
                    resource: ComputeResource::AutoScalingGroup {
                        name: format!("web-{}", r.region),
                    },
                    full_capacity: Some(4),
                },
                ComputeRef {
                    tier: "workers".into(),
                    resource: ComputeResource::EcsService {
                        cluster: "checkout".into(),
                        service: "workers".into(),
                    },
                    full_capacity: Some(2),
                },
            ];
        }
        assert!(s.check().is_ok());
        let compute = |d: &Decision| -> Vec<(String, String, String)> {
            step(d, "promote_data")
                .calls
                .iter()
                .filter(|c| c.service == "autoscaling" || c.service == "ecs")
                .map(|c| (c.operation.clone(), c.region.clone(), c.resource.clone()))
                .collect()
        };
        let mut r = req(Mode::Unplanned);
        r.target_region = Some("eu-west-1".into());
        let d = decide(&s, &all_healthy(), &r, "eu-west-1", NOW).unwrap();
        let t =
            |op: &str, region: &str, res: &str| (op.to_owned(), region.to_owned(), res.to_owned());
        assert_eq!(
            compute(&d),
            [
                t("DescribeAutoScalingGroups", "eu-west-1", "web-eu-west-1"),
                t("DescribeServices", "eu-west-1", "checkout/workers"),
                t("UpdateAutoScalingGroup", "eu-west-1", "web-eu-west-1"),
                t("UpdateService", "eu-west-1", "checkout/workers"),
            ]
        );
        let mut planned = req(Mode::Planned);
        planned.target_region = Some("eu-west-1".into());
        s.policy.planned_max_lag_seconds = 5;
        let d = decide(&s, &all_healthy(), &planned, "eu-west-1", NOW).unwrap();
        let calls = compute(&d);
        assert_eq!(
            calls[..2],
            [
                t("DescribeAutoScalingGroups", "us-east-1", "web-us-east-1"),
                t("DescribeServices", "us-east-1", "checkout/workers"),
            ]
        );
        assert_eq!(calls.len(), 6);
    }
}
