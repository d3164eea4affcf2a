//! The decision: which Region takes over, what every Region's role and weight become,
//! where the lease is arbitrated, and the full plan of AWS calls. Pure: the spec, the
//! health items and the clock come in, a [`Decision`] or a named error comes out.

use lifeboat::model::{DatabaseRef, Role};
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
    /// Whether the lag is within the RPO objective (unmeasured counts as within).
    pub within_rpo: bool,
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
    /// True when the target is over the RPO and the operator accepted data loss.
    pub data_loss_accepted: bool,
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
            let within_rpo = lag.is_none_or(|l| l <= rpo as f64);
            (
                i,
                Candidate {
                    region: r.region.clone(),
                    role: r.role,
                    weight: r.weight,
                    verdict,
                    lag_seconds: lag,
                    within_rpo,
                    refused,
                },
            )
        })
        .collect();
    candidates.sort_by(|(ia, a), (ib, b)| {
        (a.refused.is_some(), role_rank(a.role))
            .cmp(&(b.refused.is_some(), role_rank(b.role)))
            .then_with(|| {
                let (la, lb) = (a.lag_seconds.unwrap_or(0.0), b.lag_seconds.unwrap_or(0.0));
                la.total_cmp(&lb)
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
                return Err(Error::ReplicaLagTooHigh {
                    region: best.region.clone(),
                    lag_seconds: best.lag_seconds.unwrap_or(0.0),
                    budget_seconds: rpo,
                });
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
        &changes,
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
        changes,
        candidates,
        request: req.clone(),
        decided_at: now,
        plan,
        operation: Operation::Failover,
        failback: None,
    })
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

struct Calls<'a> {
    to: &'a str,
    calls: Vec<PlannedCall>,
}

impl Calls<'_> {
    fn add(&mut self, service: &str, operation: &str, region: &str, resource: String, cp: bool) {
        self.calls.push(PlannedCall {
            service: service.to_owned(),
            operation: operation.to_owned(),
            region: region.to_owned(),
            resource,
            control_plane: cp,
            outside_surviving_region: region != self.to,
        });
    }
}

/// Every step and AWS call of the failover, with the Region each goes to.
#[allow(clippy::too_many_arguments)]
pub fn plan(
    spec: &WorkloadSpec,
    mode: Mode,
    from: &str,
    to: &str,
    arbiter: &str,
    home: &str,
    changes: &[RoleChange],
    data_loss_accepted: bool,
) -> Plan {
    let w = &spec.workload;
    let table = |sk: &str| format!("WORKLOAD#{w}/{sk}");
    let mut steps = Vec::new();
    let mut step = |name: &str, function: &str, summary: String, f: &dyn Fn(&mut Calls<'_>)| {
        let mut c = Calls { to, calls: vec![] };
        f(&mut c);
        steps.push(PlanStep {
            step: name.to_owned(),
            function: function.to_owned(),
            summary,
            calls: c.calls,
        });
    };

    step(
        "decide",
        crate::NAME,
        format!("pick {to} to take over from {from}"),
        &|c| {
            c.add("dynamodb", "GetItem", home, table("SPEC"), false);
            c.add("dynamodb", "Query", home, table("HEALTH#"), false);
        },
    );
    step(
        "acquire",
        crate::NAME,
        format!("check the cooldown and take the failover lease in {arbiter} with a new epoch"),
        &|c| {
            c.add("dynamodb", "GetItem", arbiter, table("SPEC"), false);
            c.add("dynamodb", "Query", arbiter, table("RUN#"), false);
            c.add("dynamodb", "UpdateItem", arbiter, table("LEASE"), false);
        },
    );
    let target = spec.region(to);
    step(
        "promote_data",
        "replica-promoter",
        format!("make the data tier in {to} writable"),
        &|c| {
            let Some(t) = target else { return };
            for db in &t.databases {
                match db {
                    DatabaseRef::RdsInstance { instance_id, .. } => {
                        c.add("rds", "PromoteReadReplica", to, instance_id.clone(), true);
                        c.add("rds", "DescribeDBInstances", to, instance_id.clone(), true);
                    }
                    DatabaseRef::AuroraGlobal {
                        global_cluster_id,
                        cluster_id,
                    } => {
                        let op = match mode {
                            Mode::Planned => "SwitchoverGlobalCluster",
                            Mode::Unplanned => "FailoverGlobalCluster",
                        };
                        let res = if data_loss_accepted {
                            format!("{global_cluster_id} -> {cluster_id} (AllowDataLoss)")
                        } else {
                            format!("{global_cluster_id} -> {cluster_id}")
                        };
                        c.add("rds", op, to, res, true);
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
            // s3_flip: the target's buckets, read and written in the target Region;
            // planned, the old primary's rules read there too (best effort, short
            // timeouts). Unplanned, nothing outside the target Region: the rules are
            // the bucket's own suspended ones enabled again, or built from the spec
            // (which needs the bucket's role; without one nothing is put until
            // suspend_old_rules can mirror the old rules).
            let old_buckets = spec.region(from).map_or(&[][..], |r| r.buckets.as_slice());
            for (b, old) in t.buckets.iter().zip(old_buckets) {
                c.add("s3", "GetBucketReplication", to, b.name.clone(), true);
                if mode == Mode::Planned {
                    c.add("s3", "GetBucketReplication", from, old.name.clone(), true);
                }
                if mode == Mode::Planned || b.replication_role_arn.is_some() {
                    c.add("s3", "PutBucketReplication", to, b.name.clone(), true);
                }
            }
        },
    );
    let from_spec = spec.region(from);
    step(
        "shift_traffic",
        "traffic-shifter",
        match mode {
            Mode::Unplanned => format!("take {from} out of DNS through its routing switch"),
            Mode::Planned => "move the weighted records to the new weights".to_owned(),
        },
        &|c| {
            let switch = from_spec.and_then(|r| r.routing_switch.as_ref());
            match (mode, switch) {
                (Mode::Unplanned, Some(s)) => {
                    let metric = format!("{}/{}", s.namespace, s.metric_name);
                    c.add("cloudwatch", "PutMetricData", &s.region, metric, false);
                    c.add(
                        "cloudwatch",
                        "DescribeAlarms",
                        &s.region,
                        s.alarm_name.clone(),
                        false,
                    );
                }
                _ => {
                    for ch in changes
                        .iter()
                        .filter(|ch| ch.weight_before != ch.weight_after)
                    {
                        let Some(r) = spec.region(&ch.region) else {
                            continue;
                        };
                        for d in &r.dns {
                            let res = format!(
                                "{} {} {}",
                                d.hosted_zone_id,
                                d.record_name,
                                d.set_identifier.as_deref().unwrap_or("")
                            );
                            c.add(
                                "route53",
                                "ChangeResourceRecordSets",
                                ROUTE53_REGION,
                                res,
                                true,
                            );
                        }
                    }
                    c.add(
                        "route53",
                        "GetChange",
                        ROUTE53_REGION,
                        "change".into(),
                        true,
                    );
                }
            }
        },
    );
    let pairs: Vec<(&str, &str)> = match (from_spec, target) {
        (Some(f), Some(t)) => f
            .buckets
            .iter()
            .zip(&t.buckets)
            .map(|(o, n)| (o.name.as_str(), n.name.as_str()))
            .collect(),
        _ => Vec::new(),
    };
    if !pairs.is_empty() {
        step(
            "suspend_old_rules",
            "replica-promoter",
            format!(
                "best effort, after traffic has moved: suspend the replication rules of {from}'s buckets in {from} (2 s per attempt, 4 s per call, one retry); a failure is recorded and never fails the run"
            ),
            &|c| {
                for (old, new) in &pairs {
                    c.add("s3", "GetBucketReplication", from, (*old).to_owned(), true);
                    if mode == Mode::Unplanned {
                        c.add(
                            "s3",
                            "PutBucketReplication",
                            to,
                            format!(
                                "{new} (the old rules' mirror, when s3_flip could not read them)"
                            ),
                            true,
                        );
                    }
                    c.add(
                        "s3",
                        "PutBucketReplication",
                        from,
                        format!("{old} (every rule Disabled)"),
                        true,
                    );
                }
            },
        );
    }
    step(
        "finalize",
        crate::NAME,
        format!(
            "write the new roles and weights fenced by the lease epoch in {arbiter}, record the run, release the lease"
        ),
        &|c| {
            c.add("dynamodb", "GetItem", arbiter, table("SPEC"), false);
            c.add(
                "dynamodb",
                "TransactWriteItems",
                arbiter,
                table("SPEC + LEASE"),
                false,
            );
            c.add(
                "dynamodb",
                "TransactWriteItems",
                arbiter,
                table("RUN# + LEASE"),
                false,
            );
            c.add("dynamodb", "PutItem", arbiter, table("EVENT#"), false);
            c.add("dynamodb", "UpdateItem", arbiter, table("LEASE"), false);
        },
    );
    let all = || steps.iter().flat_map(|s| s.calls.iter());
    Plan {
        touches_control_plane_outside_surviving_region: all()
            .any(|c| c.control_plane && c.outside_surviving_region),
        touches_failed_region: all().any(|c| c.region == from),
        steps,
    }
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

    #[test]
    fn the_plan_lists_every_call_and_flags_control_planes_outside_the_survivor() {
        let mut r = req(Mode::Unplanned);
        r.target_region = Some("eu-west-1".into());
        let d = decide(&spec(), &all_healthy(), &r, "eu-west-1", NOW).unwrap();
        let steps: Vec<&str> = d.plan.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            steps,
            [
                "decide",
                "acquire",
                "promote_data",
                "shift_traffic",
                "suspend_old_rules",
                "finalize"
            ]
        );
        // Unplanned: the data-plane switch in eu-west-1, no Route 53 call.
        let shift = &d.plan.steps[3].calls;
        assert_eq!(shift[0].operation, "PutMetricData");
        assert_eq!(shift[0].region, "eu-west-1");
        let promote = &d.plan.steps[2].calls;
        assert_eq!(promote[0].operation, "PromoteReadReplica");
        assert_eq!(promote[0].resource, "checkout-db-replica-euw1");
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
        let s3: Vec<(&str, &str)> = promote
            .iter()
            .filter(|c| c.service == "s3")
            .map(|c| (c.operation.as_str(), c.region.as_str()))
            .collect();
        assert_eq!(
            s3,
            [
                ("GetBucketReplication", "eu-west-1"),
                ("PutBucketReplication", "eu-west-1")
            ]
        );
        // After it, best effort: the old bucket's rules suspended in the failed Region
        // (and the target's rules replaced by the old ones' mirror). The plan says so.
        let suspend = &d.plan.steps[4];
        assert_eq!(suspend.function, "replica-promoter");
        assert!(
            suspend.summary.contains("best effort"),
            "{}",
            suspend.summary
        );
        let ops: Vec<(&str, &str)> = suspend
            .calls
            .iter()
            .map(|c| (c.operation.as_str(), c.region.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                ("GetBucketReplication", "us-east-1"),
                ("PutBucketReplication", "eu-west-1"),
                ("PutBucketReplication", "us-east-1")
            ]
        );
        assert_eq!(suspend.calls[0].resource, "checkout-receipts-use1");
        assert!(d.plan.touches_failed_region);
        assert!(d.plan.touches_control_plane_outside_surviving_region);

        // Planned: weighted records through Route 53's control plane in us-east-1.
        let mut r = req(Mode::Planned);
        r.target_region = Some("eu-west-1".into());
        let d = decide(&spec(), &all_healthy(), &r, "eu-west-1", NOW).unwrap();
        let route53: Vec<&PlannedCall> = d
            .plan
            .steps
            .iter()
            .flat_map(|s| &s.calls)
            .filter(|c| c.service == "route53")
            .collect();
        assert!(
            route53
                .iter()
                .any(|c| c.operation == "ChangeResourceRecordSets"
                    && c.region == "us-east-1"
                    && c.control_plane
                    && c.outside_surviving_region)
        );
        assert!(d.plan.touches_control_plane_outside_surviving_region);
        assert!(d.plan.touches_failed_region);
        // Planned: both Regions are up, so s3_flip reads the old rules to mirror them.
        let promote = d
            .plan
            .steps
            .iter()
            .find(|s| s.step == "promote_data")
            .unwrap();
        let s3: Vec<(&str, &str)> = promote
            .calls
            .iter()
            .filter(|c| c.service == "s3")
            .map(|c| (c.operation.as_str(), c.region.as_str()))
            .collect();
        assert_eq!(
            s3,
            [
                ("GetBucketReplication", "eu-west-1"),
                ("GetBucketReplication", "us-east-1"),
                ("PutBucketReplication", "eu-west-1")
            ]
        );
        let suspend = d
            .plan
            .steps
            .iter()
            .find(|s| s.step == "suspend_old_rules")
            .unwrap();
        assert!(
            suspend.calls.iter().all(|c| c.region == "us-east-1"),
            "{:#?}",
            suspend.calls
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
}
