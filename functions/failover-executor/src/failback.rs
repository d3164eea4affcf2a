//! The failback decision: return the writer and the traffic to the Region a failover
//! left, restoring the roles and weights that failover changed. Pure: the spec, the
//! `RUN#` records, the health items and the clock come in, a [`Decision`] (with
//! `operation: failback`) or a named error comes out.
//!
//! **What is restored.** A successful failover run records every Region's role and
//! weight before and after (`details.changes`). The failback restores the *before* side
//! of the most recent successful failover run (kind `failover`, or the failover of a
//! drill) whose target is the spec's primary now — or of the run named by `from_run`.
//! It refuses (`InvalidInput`) when the spec's roles or weights moved since that run
//! (someone changed them by hand: restoring the old values would undo that silently).

use std::collections::BTreeMap;

use lifeboat::model::{DatabaseRef, Role, RoutingSwitch};
use lifeboat::store::{HealthRecord, RunKind, RunOutcome, RunRecord, Verdict};
use lifeboat::{Error, Result, UnixMillis, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::decide::{
    Calls, Candidate, Decision, LagVerdict, Operation, Places, Plan, ROUTE53_REGION, RoleChange,
    apply_changes, arbiter, catch_up_budget_seconds, compute_call, finish, is_applied, lag_gate,
    probe_round, stale_after_ms,
};
use crate::request::{FailoverRequest, Mode};

/// The default traffic schedule: percent of the way back at each stage.
pub const DEFAULT_SCHEDULE: [u32; 4] = [10, 25, 50, 100];

/// A failback request: the `failback` state machine's input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailbackRequest {
    /// Workload id.
    pub workload: String,
    /// The Region to return to; when given it must be the one the failover left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_region: Option<String>,
    /// The failover run (its id: the execution name) to undo; the latest successful
    /// failover into the current primary when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_run: Option<String>,
    /// Traffic stages, percent of the way back: strictly increasing, ending at 100
    /// (default `[10, 25, 50, 100]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<u32>>,
    /// Part of a drill (the `drill` machine sets it): lease `drill`, run kind `drill`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub drill: bool,
    /// Return the plan and change nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
    /// Why, for the audit trail.
    pub reason: String,
    /// Who.
    pub requested_by: String,
    /// Optional idempotency key, recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The machine's waits (read by the machine, not by the steps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<FailbackTiming>,
}

/// Wait settings of the `failback` state machine. Defaults (in the machine): 15 s polls,
/// 40 verification polls per stage, 80 replication-lag polls, 300 s soaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailbackTiming {
    /// Seconds between polls (data tier, lag, verification).
    pub poll_seconds: u32,
    /// Verification polls per traffic stage before `VerificationFailed`.
    pub verify_max_polls: u32,
    /// Replication-lag polls before `ReplicaLagTooHigh`.
    pub lag_max_polls: u32,
    /// Seconds each traffic stage soaks before the next, its gates (deploy-wave
    /// `soak`: error rate, latency, alarms) read over that window (machine default 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_seconds: Option<u32>,
}

impl FailbackRequest {
    /// Checks what serde cannot: non-empty names, known Regions, a valid schedule.
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
        if let Some(soak) = self.timing.and_then(|t| t.soak_seconds)
            && !(1..=86_400).contains(&soak)
        {
            return Err(Error::InvalidInput(format!(
                "timing.soak_seconds: {soak} is not between 1 and 86400"
            )));
        }
        if let Some(code) = &self.home_region
            && !lifeboat::regions::is_known(code)
        {
            return Err(Error::InvalidInput(format!(
                "home_region: `{code}` is not an AWS Region code"
            )));
        }
        if let Some(s) = &self.schedule {
            check_schedule(s)?;
        }
        Ok(())
    }

    /// The schedule, defaulted.
    pub fn schedule(&self) -> Vec<u32> {
        self.schedule
            .clone()
            .unwrap_or_else(|| DEFAULT_SCHEDULE.to_vec())
    }
}

/// A schedule is 1..=100 percent, strictly increasing, ending at 100.
pub fn check_schedule(s: &[u32]) -> Result<()> {
    let increasing = s.windows(2).all(|w| w[0] < w[1]);
    let in_range = s.iter().all(|p| (1..=100).contains(p));
    if s.is_empty() || !increasing || !in_range || s.last() != Some(&100) {
        return Err(Error::InvalidInput(format!(
            "schedule: {s:?} must be percentages in 1..=100, strictly increasing, ending at 100"
        )));
    }
    Ok(())
}

/// What a failback restores and how traffic returns (in the decision).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailbackInfo {
    /// The failover run undone (its id).
    pub source_run: String,
    /// The Region returned to.
    pub home_region: String,
    /// Traffic stages, percent of the way back.
    pub schedule: Vec<u32>,
    /// Weights now (traffic-shifter `from_weights`).
    pub from_weights: BTreeMap<String, u32>,
    /// Weights restored (traffic-shifter `weights`).
    pub weights: BTreeMap<String, u32>,
    /// The Region whose compute returns to its standby size once the last stage has
    /// moved its traffic home (replica-promoter `compute_standby`, best effort):
    /// [`standby_region`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby_region: Option<String>,
}

/// The Region a failback leaves for good, when its compute goes back to standby: the
/// interim primary, when the pattern is active/passive, the Region names compute, and
/// the restored spec (`after`) gives it neither the writer nor any traffic. Active/active
/// Regions, and a Region that keeps serving, keep what they run.
pub fn standby_region(spec: &WorkloadSpec, after: &WorkloadSpec, interim: &str) -> Option<String> {
    let now = spec.region(interim)?;
    let then = after.region(interim)?;
    (spec.pattern.is_active_passive()
        && !now.compute.is_empty()
        && then.role != Role::Primary
        && then.weight == 0)
        .then(|| interim.to_owned())
}

/// The failover run a failback undoes: successful, a failover (or a drill's failover),
/// into `primary`, with its role changes; `from_run` picks one by id.
pub fn source_run<'a>(
    runs: &'a [RunRecord],
    primary: &str,
    from_run: Option<&str>,
) -> Result<(&'a RunRecord, Vec<RoleChange>)> {
    let is_failover = |r: &RunRecord| match r.kind {
        RunKind::Failover => true,
        RunKind::Drill => r.details.get("operation").and_then(|o| o.as_str()) == Some("failover"),
        _ => false,
    };
    let usable = |r: &'a RunRecord| -> Option<(&'a RunRecord, Vec<RoleChange>)> {
        if r.outcome != RunOutcome::Succeeded || !is_failover(r) {
            return None;
        }
        if r.details.get("to_region").and_then(|t| t.as_str()) != Some(primary) {
            return None;
        }
        let changes: Vec<RoleChange> =
            serde_json::from_value(r.details.get("changes")?.clone()).ok()?;
        Some((r, changes))
    };
    match from_run {
        Some(id) => {
            let run = runs.iter().find(|r| r.id == id).ok_or_else(|| {
                Error::InvalidInput(format!("from_run: no run `{id}` is recorded"))
            })?;
            usable(run).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "from_run: run `{id}` is not a successful failover into the current primary {primary} with recorded role changes"
                ))
            })
        }
        None => runs
            .iter()
            .filter_map(usable)
            .max_by_key(|(r, _)| (r.finished_at.unwrap_or(r.started_at), r.started_at))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "nothing to fail back: no successful failover run moved the writer to the current primary {primary}"
                ))
            }),
    }
}

/// One record per run id, read from two replicas: the one that has ended (its
/// `finished_at` set) over one a replica still holds as running; otherwise the first.
pub fn one_per_id(runs: Vec<RunRecord>) -> Vec<RunRecord> {
    let mut out: Vec<RunRecord> = Vec::new();
    for r in runs {
        match out.iter_mut().find(|x| x.id == r.id) {
            Some(x) if x.finished_at.is_none() && r.finished_at.is_some() => *x = r,
            Some(_) => {}
            None => out.push(r),
        }
    }
    out
}

/// The changes that undo `done`: every Region back to its role and weight before.
pub fn reverse(done: &[RoleChange]) -> Vec<RoleChange> {
    done.iter()
        .map(|c| RoleChange {
            region: c.region.clone(),
            role_before: c.role_after,
            role_after: c.role_before,
            weight_before: c.weight_after,
            weight_after: c.weight_before,
        })
        .collect()
}

/// Decides a failback. Errors: `InvalidInput` (nothing to fail back, the spec moved
/// since the failover, a `home_region` that is not the one the failover left, a bad
/// schedule), `TargetUnhealthy` (the home Region is not healthy, or its health is
/// stale), `InvalidModel`. Replication lag is *not* refused here: re-protection has
/// just begun; the machine waits for it (`check_lag`).
pub fn decide_failback(
    spec: &WorkloadSpec,
    runs: &[RunRecord],
    health: &[HealthRecord],
    req: &FailbackRequest,
    executor_region: &str,
    now: UnixMillis,
) -> Result<Decision> {
    req.check()?;
    if req.workload != spec.workload {
        return Err(Error::InvalidInput(format!(
            "workload: request names `{}` but the spec is `{}`",
            req.workload, spec.workload
        )));
    }
    let primary = spec.primary().ok_or_else(|| {
        Error::InvalidInput(format!(
            "workload `{}` has no primary to fail back from",
            spec.workload
        ))
    })?;
    let (run, done) = source_run(runs, &primary.region, req.from_run.as_deref())?;
    if !is_applied(spec, &done) {
        return Err(Error::InvalidInput(format!(
            "the roles or weights of workload `{}` changed since failover run `{}`; restoring its `before` values would undo that: set them by hand",
            spec.workload, run.id
        )));
    }
    let home = done
        .iter()
        .find(|c| c.role_before == Role::Primary)
        .map(|c| c.region.clone())
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "failover run `{}` records no Region that was the primary",
                run.id
            ))
        })?;
    if let Some(h) = &req.home_region
        && *h != home
    {
        return Err(Error::InvalidInput(format!(
            "home_region: `{h}` but failover run `{}` left {home}",
            run.id
        )));
    }
    let changes = reverse(&done);
    let mut after = spec.clone();
    apply_changes(&mut after, &changes)?;
    after.check()?;

    let record = health.iter().find(|h| h.region == home);
    let ready = readiness(spec, record, now);
    if let Some(why) = &ready.refused {
        return Err(Error::TargetUnhealthy {
            workload: spec.workload.clone(),
            reason: format!("{home}: {why}"),
        });
    }
    let candidate = Candidate {
        region: home.clone(),
        role: spec.region(&home).map_or(Role::Standby, |r| r.role),
        weight: spec.region(&home).map_or(0, |r| r.weight),
        verdict: ready.verdict,
        lag_seconds: ready.lag_seconds,
        within_rpo: ready.within_rpo,
        lag_refused: ready.lag_refused.clone(),
        refused: None,
    };

    let (arbiter_region, lease_consistency) = arbiter(spec, &primary.region, executor_region);
    let standby = standby_region(spec, &after, &primary.region);
    let plan = plan(
        spec,
        &primary.region,
        &home,
        &arbiter_region,
        executor_region,
        standby.as_deref(),
    );
    let weights = |s: &WorkloadSpec| -> BTreeMap<String, u32> {
        s.regions
            .iter()
            .map(|r| (r.region.clone(), r.weight))
            .collect()
    };
    let request = FailoverRequest {
        workload: req.workload.clone(),
        failed_region: None,
        target_region: Some(home.clone()),
        mode: Mode::Planned,
        dry_run: req.dry_run,
        accept_data_loss: false,
        reason: req.reason.clone(),
        requested_by: req.requested_by.clone(),
        request_id: req.request_id.clone(),
        trigger: None,
        timing: None,
        drill: req.drill,
        force: false,
    };
    Ok(Decision {
        workload: spec.workload.clone(),
        spec_version: spec.version,
        mode: Mode::Planned,
        from_region: primary.region.clone(),
        to_region: home.clone(),
        arbiter_region,
        lease_consistency,
        lag_seconds: ready.lag_seconds,
        rpo_seconds: spec.policy.rpo_seconds,
        data_loss_accepted: false,
        data_loss_reason: None,
        candidates: vec![candidate],
        changes,
        request,
        decided_at: now,
        plan,
        operation: Operation::Failback,
        failback: Some(FailbackInfo {
            source_run: run.id.clone(),
            home_region: home,
            schedule: req.schedule(),
            from_weights: weights(spec),
            weights: weights(&after),
            standby_region: standby,
        }),
    })
}

/// Every step of the `failback` machine and every AWS call each makes (what a dry run
/// returns): the writer and the traffic move from `primary` back to `home`, the lease
/// and every fenced write in `arbiter`, the functions in `executor_region`; `standby`,
/// the Region whose compute then returns to its standby size ([`standby_region`]).
pub fn plan(
    spec: &WorkloadSpec,
    primary: &str,
    home: &str,
    arbiter: &str,
    executor_region: &str,
    standby: Option<&str>,
) -> Plan {
    let p = Places {
        spec,
        mode: Mode::Planned,
        from: primary,
        to: home,
        arbiter,
        home: executor_region,
    };
    let here = executor_region;
    let home_switch: Vec<&RoutingSwitch> = spec
        .region(home)
        .and_then(|r| r.routing_switch.as_ref())
        .into_iter()
        .collect();
    let mut steps = vec![
        p.step(
            "decide",
            crate::NAME,
            format!(
                "restore the roles and weights before the last failover into {primary}: back to {home}"
            ),
            |c| {
                c.spec_and_health(here);
                c.table("Query", arbiter, "RUN#");
                // And this Region's replica: the failover's run may still be replicating.
                if here != arbiter {
                    c.table("Query", here, "RUN#");
                }
            },
        ),
        p.step(
            "acquire",
            crate::NAME,
            format!("take the failback lease in {arbiter} with a new epoch"),
            |c| p.acquire(c, false),
        ),
        p.step(
            "reprotect",
            "replica-promoter",
            format!("read replicas of {primary}'s writer in every other Region"),
            |c| reprotect(&p, c),
        ),
        p.step(
            "wait_for_replication",
            "health-probe",
            format!("probe until {home} is healthy and its replication lag is within the RPO"),
            // Still switched off by the failover it undoes.
            |c| probe_round(&p, c, &[home], &[], &[]),
        ),
        p.step(
            "check_lag",
            crate::NAME,
            format!("read {home}'s health and lag after each probe (bounded polls)"),
            |c| c.spec_and_health(here),
        ),
        p.step(
            "promote_data",
            "replica-promoter",
            format!("move the writer back to {home} (planned: RDS promotion, Aurora switchover, S3 flip, DynamoDB check)"),
            |c| p.promote_data(c, false),
        ),
        p.step(
            "shift_traffic",
            "traffic-shifter",
            format!(
                "return traffic to {home} in stages (weighted records, GetChange until INSYNC), turn its routing switch on after the first, verify DNS and probe after each"
            ),
            |c| {
                shift_stage(&p, c);
                p.flip_switches(c, &home_switch);
                verify_dns(&p, c);
            },
        ),
        p.step(
            "verify_stage",
            "health-probe",
            format!("after each stage, probe until {home} is seen serving"),
            // Its switch is on again after the first stage.
            |c| probe_round(&p, c, &[], &[], &[]),
        ),
        p.step(
            "soak",
            "deploy-wave",
            format!(
                "between stages, soak under the stage's traffic: {home}'s deploy gates (its live slot's error rate and latency, its alarms) over timing.soak_seconds"
            ),
            |c| {
                c.table("GetItem", here, "SPEC");
                if let Some(r) = p.spec.region(home) {
                    if r.deploy.is_some() {
                        c.add(
                            "cloudwatch",
                            "GetMetricData",
                            home,
                            format!("{home}'s live slot: errors, requests, latency"),
                            false,
                        );
                    }
                    let named = !r.alarms.is_empty()
                        || r.deploy.as_ref().is_some_and(|d| !d.alarms.is_empty());
                    if named {
                        c.add("cloudwatch", "DescribeAlarms", home, format!("{home}'s alarms"), false);
                    }
                }
            },
        ),
        p.step(
            "suspend_old_rules",
            "replica-promoter",
            format!(
                "best effort, once no traffic is left in {primary}: suspend the replication rules of its buckets there; a failure is recorded and never fails the run"
            ),
            |c| p.suspend_old_rules(c),
        ),
    ];
    if let Some(region) = standby.and_then(|s| spec.region(s)) {
        steps.push(p.step(
            "compute_standby",
            "replica-promoter",
            format!(
                "best effort, once no traffic is left in {}: its compute back to its standby size (policy.compute.standby: {:?}); a failure is recorded and never fails the run",
                region.region, spec.policy.compute.standby
            ),
            |c| {
                p.promoter_checks(c);
                for r in &region.compute {
                    compute_call(c, &r.resource, &region.region, false);
                }
                p.promoter_records(c);
                for r in &region.compute {
                    compute_call(c, &r.resource, &region.region, true);
                }
            },
        ));
    }
    steps.push(p.step(
        "finalize",
        crate::NAME,
        format!(
            "restore the roles and weights fenced by the lease epoch in {arbiter}, record the run, release the lease"
        ),
        |c| p.finalize(c),
    ));
    finish(steps, primary)
}

/// `rds_reprotect` of the current primary: its writers described, then for each other
/// Region a replica looked for and created, the spec written (fenced) with them.
fn reprotect(p: &Places<'_>, c: &mut Calls<'_>) {
    p.promoter_checks(c);
    let Some(source) = p.spec.region(p.from) else {
        return;
    };
    for db in &source.databases {
        if let DatabaseRef::RdsInstance { instance_id, .. } = db {
            c.add(
                "rds",
                "DescribeDBInstances",
                p.from,
                instance_id.clone(),
                true,
            );
            for other in p.spec.regions.iter().filter(|r| r.region != p.from) {
                c.read_replica_of(instance_id, &other.region);
            }
            c.table("TransactWriteItems", p.arbiter, "SPEC + LEASE");
            p.promoter_records(c);
        }
    }
}

/// The record names the spec routes through, by zone, once each.
fn record_names(spec: &WorkloadSpec) -> Vec<(&str, &str)> {
    let mut names: Vec<(&str, &str)> = Vec::new();
    for d in spec.regions.iter().flat_map(|r| &r.dns) {
        let key = (d.hosted_zone_id.as_str(), d.record_name.as_str());
        if !names.contains(&key) {
            names.push(key);
        }
    }
    names
}

/// traffic-shifter `shift` (one stage): the spec and the lease in the arbiter's table,
/// each record read, each zone's weighted records changed and polled until INSYNC
/// (Route 53's control plane, us-east-1).
fn shift_stage(p: &Places<'_>, c: &mut Calls<'_>) {
    c.table("GetItem", p.arbiter, "SPEC");
    c.table("GetItem", p.arbiter, "LEASE");
    let names = record_names(p.spec);
    for (zone, name) in &names {
        c.add(
            "route53",
            "ListResourceRecordSets",
            ROUTE53_REGION,
            format!("{zone} {name}"),
            true,
        );
    }
    let mut zones: Vec<&str> = names.iter().map(|(z, _)| *z).collect();
    zones.dedup();
    for zone in zones {
        c.add(
            "route53",
            "ChangeResourceRecordSets",
            ROUTE53_REGION,
            zone.to_owned(),
            true,
        );
        c.add(
            "route53",
            "GetChange",
            ROUTE53_REGION,
            zone.to_owned(),
            true,
        );
    }
}

/// traffic-shifter `verify` (what DNS answers): the spec and the lease in the arbiter's
/// table, every routing switch read in its Region, every record and its health check
/// read (Route 53's API); a check that does not watch a switch (an endpoint check) is
/// asked for its status.
fn verify_dns(p: &Places<'_>, c: &mut Calls<'_>) {
    c.table("GetItem", p.arbiter, "SPEC");
    c.table("GetItem", p.arbiter, "LEASE");
    for r in &p.spec.regions {
        if let Some(s) = &r.routing_switch {
            c.read_switch(s, true);
        }
    }
    for (zone, name) in record_names(p.spec) {
        c.add(
            "route53",
            "ListResourceRecordSets",
            ROUTE53_REGION,
            format!("{zone} {name}"),
            true,
        );
    }
    for r in &p.spec.regions {
        for id in r.dns.iter().filter_map(|d| d.health_check_id.as_ref()) {
            c.add(
                "route53",
                "GetHealthCheck",
                ROUTE53_REGION,
                id.clone(),
                true,
            );
            if r.routing_switch.is_none() {
                c.add(
                    "route53",
                    "GetHealthCheckStatus",
                    ROUTE53_REGION,
                    id.clone(),
                    true,
                );
            }
        }
    }
}

/// Whether the Region returned to is ready: healthy, freshly observed, and caught up.
/// A failback is a planned move, so its lag is held to
/// `policy.planned_max_lag_seconds` (default 0: an RPO-0 switchover), by the same gate
/// as the failover decision ([`crate::decide::lag_gate`]): unknown, negative or stale
/// lag is not ready.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Readiness {
    /// The Region.
    #[serde(default)]
    pub region: String,
    /// Its verdict (`unknown` when never probed or stale).
    pub verdict: Verdict,
    /// Replication lag into it, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// The RPO objective.
    #[serde(default)]
    pub rpo_seconds: u64,
    /// The lag a planned move may start with (`policy.planned_max_lag_seconds`).
    #[serde(default)]
    pub budget_seconds: u64,
    /// Lag known, fresh and within `budget_seconds`.
    pub within_rpo: bool,
    /// Why the lag is not within the budget, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_refused: Option<String>,
    /// Healthy, fresh and within the RPO: the writer may move.
    pub ready: bool,
    /// Why it is not healthy, if it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// How ready the Region with health `record` is.
pub fn readiness(spec: &WorkloadSpec, record: Option<&HealthRecord>, now: UnixMillis) -> Readiness {
    let rpo = spec.policy.rpo_seconds;
    let (verdict, refused) = match record {
        None => (
            Verdict::Unknown,
            Some("no health verdict recorded".to_owned()),
        ),
        Some(h) if now.since(h.observed_at) > stale_after_ms(spec) => (
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
    let budget = catch_up_budget_seconds(spec);
    let gate = match record {
        Some(h) => lag_gate(spec, &h.region, record, budget, now),
        None => LagVerdict::Unknown("no health recorded".into()),
    };
    let within_rpo = gate == LagVerdict::Within;
    Readiness {
        region: record.map(|h| h.region.clone()).unwrap_or_default(),
        verdict,
        lag_seconds: lag,
        rpo_seconds: rpo,
        budget_seconds: budget,
        within_rpo,
        lag_refused: gate.reason(),
        ready: refused.is_none() && within_rpo,
        refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_soak_outside_one_second_to_a_day_is_refused() {
        let mut req: FailbackRequest = serde_json::from_str(include_str!(
            "../../../events/failback/operator-request.json"
        ))
        .unwrap();
        for (soak, ok) in [
            (Some(0), false),
            (Some(1), true),
            (Some(86_401), false),
            (None, true),
        ] {
            req.timing = Some(FailbackTiming {
                poll_seconds: 1,
                verify_max_polls: 1,
                lag_max_polls: 1,
                soak_seconds: soak,
            });
            assert_eq!(req.check().is_ok(), ok, "{soak:?}");
        }
    }
    use crate::decide::decide;
    use serde_json::json;

    const EXAMPLE: &str = include_str!("../../../events/model/example-spec.json");
    const NOW: UnixMillis = UnixMillis(1_795_464_000_000);

    fn spec() -> WorkloadSpec {
        let mut s: WorkloadSpec = serde_json::from_str(EXAMPLE).unwrap();
        s.version = 3;
        s
    }

    fn health(region: &str, verdict: Verdict, lag: Option<f64>) -> HealthRecord {
        HealthRecord {
            region: region.into(),
            verdict,
            consecutive_failures: 0,
            consecutive_successes: 3,
            probe_latency_ms: Some(5),
            replication_lag_seconds: lag,
            lag_grade: None,
            observed_at: UnixMillis(NOW.0 - 1_000),
            detail: None,
        }
    }

    fn healthy() -> Vec<HealthRecord> {
        vec![
            health("us-east-1", Verdict::Healthy, Some(3.0)),
            health("eu-west-1", Verdict::Healthy, Some(2.0)),
            health("ap-southeast-1", Verdict::Healthy, Some(1.0)),
        ]
    }

    /// The spec after failing us-east-1 over to eu-west-1, and that failover's run.
    fn after_failover() -> (WorkloadSpec, RunRecord) {
        let s = spec();
        let req = FailoverRequest {
            target_region: Some("eu-west-1".into()),
            ..req_failover()
        };
        let mut h = healthy();
        h[0].verdict = Verdict::Unhealthy;
        let d = decide(&s, &h, &req, "eu-west-1", NOW).unwrap();
        let mut after = s.clone();
        apply_changes(&mut after, &d.changes).unwrap();
        after.version = 4;
        let run = RunRecord {
            id: "checkout-op-1".into(),
            kind: RunKind::Failover,
            started_at: UnixMillis(NOW.0 - 600_000),
            finished_at: Some(UnixMillis(NOW.0 - 500_000)),
            outcome: RunOutcome::Succeeded,
            timeline: vec![],
            measured_rto_ms: Some(100),
            measured_rpo_ms: None,
            rpo_simulated: false,
            details: json!({"operation": "failover", "to_region": "eu-west-1",
                            "from_region": "us-east-1", "changes": d.changes}),
        };
        (after, run)
    }

    fn req_failover() -> FailoverRequest {
        FailoverRequest {
            workload: "checkout".into(),
            failed_region: None,
            target_region: None,
            mode: Mode::Unplanned,
            dry_run: false,
            accept_data_loss: false,
            reason: "outage".into(),
            requested_by: "alice".into(),
            request_id: None,
            trigger: None,
            timing: None,
            drill: false,
            force: false,
        }
    }

    fn req() -> FailbackRequest {
        FailbackRequest {
            workload: "checkout".into(),
            home_region: None,
            from_run: None,
            schedule: None,
            drill: false,
            dry_run: false,
            reason: "us-east-1 is back".into(),
            requested_by: "alice".into(),
            request_id: None,
            timing: None,
        }
    }

    /// Issue #15 item 2: after a failback the Region it leaves for good returns to its
    /// standby size; one that keeps serving, or an active/active one, keeps its compute.
    #[test]
    fn the_region_left_for_good_goes_back_to_standby_and_the_plan_says_so() {
        use lifeboat::model::{ComputeRef, ComputeResource, DrPattern};
        let (mut now, _) = after_failover();
        let web = ComputeRef {
            tier: "web".into(),
            resource: ComputeResource::AutoScalingGroup { name: "web".into() },
            full_capacity: Some(4),
        };
        now.pattern = DrPattern::PilotLight;
        let interim = now
            .regions
            .iter_mut()
            .find(|r| r.region == "eu-west-1")
            .unwrap();
        interim.compute = vec![web];
        let after = |weight: u32| {
            let mut a = now.clone();
            for r in &mut a.regions {
                if r.region == "eu-west-1" {
                    r.role = Role::Secondary;
                    r.weight = weight;
                }
            }
            a
        };
        assert_eq!(
            standby_region(&now, &after(0), "eu-west-1").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            standby_region(&now, &after(30), "eu-west-1"),
            None,
            "it keeps serving"
        );
        let mut aa = now.clone();
        aa.pattern = DrPattern::ActiveActive;
        assert_eq!(standby_region(&aa, &after(0), "eu-west-1"), None);
        assert_eq!(
            standby_region(&now, &after(0), "ap-southeast-1"),
            None,
            "no compute"
        );
        // The plan: described, recorded, scaled down, all in the Region left, after the
        // old rules are suspended and before finalize; absent without a standby.
        let names = |p: &Plan| p.steps.iter().map(|s| s.step.clone()).collect::<Vec<_>>();
        let with = plan(
            &now,
            "eu-west-1",
            "us-east-1",
            "us-east-1",
            "us-east-1",
            Some("eu-west-1"),
        );
        let n = names(&with);
        let at = n.iter().position(|s| s == "compute_standby").unwrap();
        assert_eq!(
            (n[at - 1].as_str(), n[at + 1].as_str()),
            ("suspend_old_rules", "finalize")
        );
        let calls: Vec<(String, String)> = with.steps[at]
            .calls
            .iter()
            .filter(|c| c.service == "autoscaling")
            .map(|c| (c.operation.clone(), c.region.clone()))
            .collect();
        assert_eq!(
            calls,
            [
                (
                    "DescribeAutoScalingGroups".to_owned(),
                    "eu-west-1".to_owned()
                ),
                ("UpdateAutoScalingGroup".to_owned(), "eu-west-1".to_owned())
            ]
        );
        let without = plan(
            &now,
            "eu-west-1",
            "us-east-1",
            "us-east-1",
            "us-east-1",
            None,
        );
        assert!(!names(&without).contains(&"compute_standby".to_owned()));
    }

    /// Two replicas' runs: the ended copy wins, each id once.
    #[test]
    fn runs_from_two_replicas_are_one_per_id_the_ended_copy_first() {
        let (_, run) = after_failover();
        let mut running = run.clone();
        running.finished_at = None;
        running.outcome = RunOutcome::Running;
        let other = RunRecord {
            id: "other".into(),
            ..run.clone()
        };
        let runs = one_per_id(vec![running.clone(), other.clone(), run.clone(), running]);
        assert_eq!(runs, vec![run, other]);
    }

    #[test]
    fn restores_the_roles_and_weights_before_the_failover() {
        let (s, run) = after_failover();
        let d = decide_failback(&s, &[run], &healthy(), &req(), "us-east-1", NOW).unwrap();
        assert_eq!(d.operation, Operation::Failback);
        assert_eq!(
            (d.from_region.as_str(), d.to_region.as_str()),
            ("eu-west-1", "us-east-1")
        );
        let mut restored = s.clone();
        apply_changes(&mut restored, &d.changes).unwrap();
        let original = spec();
        for (a, b) in restored.regions.iter().zip(&original.regions) {
            assert_eq!((a.role, a.weight), (b.role, b.weight), "{}", a.region);
        }
        let fb = d.failback.clone().unwrap();
        assert_eq!(fb.source_run, "checkout-op-1");
        assert_eq!(fb.schedule, DEFAULT_SCHEDULE);
        assert_eq!(fb.weights["us-east-1"], 50);
        assert_eq!(fb.from_weights["us-east-1"], 0);
        assert_eq!(fb.from_weights.values().sum::<u32>(), 100);
        // Spans MRSC sets: the same arbiter an alarm failover of eu-west-1 would use.
        assert_eq!(d.arbiter_region, "us-east-1");
        assert_eq!(d.request.target_region.as_deref(), Some("us-east-1"));
        assert_eq!(d.purpose(), lifeboat::store::LeasePurpose::Failback);
        assert_eq!(d.run_kind(), RunKind::Failback);
        let steps: Vec<&str> = d.plan.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(
            steps,
            [
                "decide",
                "acquire",
                "reprotect",
                "wait_for_replication",
                "check_lag",
                "promote_data",
                "shift_traffic",
                "verify_stage",
                "soak",
                "suspend_old_rules",
                "finalize"
            ]
        );
        // Re-protection: a replica of eu-west-1's writer in each other Region.
        let created: Vec<&str> = d.plan.steps[2]
            .calls
            .iter()
            .filter(|c| c.operation == "CreateDBInstanceReadReplica")
            .map(|c| c.region.as_str())
            .collect();
        assert_eq!(created, ["us-east-1", "ap-southeast-1"]);
        // Traffic returns through weighted records (Route 53's control plane), the
        // home Region's switch (hosted in eu-west-1) goes on, DNS and the probes verify.
        let shift = &d.plan.steps[6];
        assert_eq!(shift.step, "shift_traffic");
        let has = |op: &str, region: &str| {
            shift
                .calls
                .iter()
                .any(|c| c.operation == op && c.region == region)
        };
        for (op, region) in [
            ("ListResourceRecordSets", "us-east-1"),
            ("ChangeResourceRecordSets", "us-east-1"),
            ("GetChange", "us-east-1"),
            ("SetAlarmState", "eu-west-1"),
            ("GetHealthCheck", "us-east-1"),
            ("PutMetricData", "eu-west-1"),
        ] {
            assert!(has(op, region), "{op} in {region}: {:#?}", shift.calls);
        }
        // The lease and every fenced write in the arbiter's table; the functions' own
        // reads in the executor's.
        let decide = &d.plan.steps[0].calls;
        assert_eq!(
            decide
                .iter()
                .map(|c| (c.operation.as_str(), c.region.as_str()))
                .collect::<Vec<_>>(),
            [
                ("GetItem", "us-east-1"),
                ("Query", "us-east-1"),
                ("Query", "us-east-1")
            ]
        );
        // Each step's calls are its function's.
        assert_eq!(d.plan.steps[7].function, "health-probe");
        assert!(
            d.plan.steps[7]
                .calls
                .iter()
                .any(|c| c.operation == "GetHealthCheckStatus")
        );
        let suspend = &d.plan.steps[8];
        assert!(
            suspend
                .calls
                .iter()
                .filter(|c| c.service == "s3")
                .all(|c| c.region == "eu-west-1"),
            "{:#?}",
            suspend.calls
        );
    }

    #[test]
    fn a_decision_with_its_plan_fits_in_a_task_input_with_room_to_spare() {
        // The machines carry the decision (plan included) into every task: a task's
        // input is at most 262,144 bytes (Step Functions API reference,
        // TaskScheduledEventDetails, `parameters`,
        // https://docs.aws.amazon.com/step-functions/latest/apireference/API_TaskScheduledEventDetails.html).
        let (s, run) = after_failover();
        let d = decide_failback(&s, &[run], &healthy(), &req(), "us-east-1", NOW).unwrap();
        let failback = serde_json::to_vec(&d).unwrap().len();
        let mut r = req_failover();
        r.target_region = Some("eu-west-1".into());
        let mut h = healthy();
        h[0].verdict = Verdict::Unhealthy;
        let d = decide(&spec(), &h, &r, "eu-west-1", NOW).unwrap();
        let failover = serde_json::to_vec(&d).unwrap().len();
        println!("decision bytes: failover {failover}, failback {failback}");
        assert!(failover < 64 * 1024 && failback < 64 * 1024);
    }

    #[test]
    fn a_drill_failback_is_leased_and_recorded_as_a_drill() {
        let (s, mut run) = after_failover();
        run.kind = RunKind::Drill;
        let mut r = req();
        r.drill = true;
        let d = decide_failback(&s, &[run.clone()], &healthy(), &r, "us-east-1", NOW).unwrap();
        assert_eq!(d.purpose(), lifeboat::store::LeasePurpose::Drill);
        assert_eq!(d.run_kind(), RunKind::Drill);
        // A drill's failback run is not something to fail back from.
        run.details["operation"] = json!("failback");
        let err = decide_failback(&s, &[run], &healthy(), &r, "us-east-1", NOW).unwrap_err();
        assert!(err.to_string().contains("nothing to fail back"), "{err}");
    }

    #[test]
    fn picks_the_latest_matching_run_or_the_named_one() {
        let (_, run) = after_failover();
        let mut older = run.clone();
        older.id = "older".into();
        older.finished_at = Some(UnixMillis(NOW.0 - 900_000));
        let mut failed = run.clone();
        failed.id = "failed".into();
        failed.outcome = RunOutcome::Failed;
        failed.finished_at = Some(NOW);
        let runs = [older, run.clone(), failed];
        let (picked, _) = source_run(&runs, "eu-west-1", None).unwrap();
        assert_eq!(picked.id, "checkout-op-1");
        let (picked, _) = source_run(&runs, "eu-west-1", Some("older")).unwrap();
        assert_eq!(picked.id, "older");
        let err = source_run(&runs, "eu-west-1", Some("failed")).unwrap_err();
        assert!(
            err.to_string().contains("not a successful failover"),
            "{err}"
        );
        let err = source_run(&runs, "eu-west-1", Some("nope")).unwrap_err();
        assert!(err.to_string().contains("no run `nope`"), "{err}");
        let err = source_run(&runs, "ap-southeast-1", None).unwrap_err();
        assert!(err.to_string().contains("nothing to fail back"), "{err}");
    }

    #[test]
    fn refuses_a_moved_spec_an_unhealthy_home_and_a_wrong_home() {
        let (mut s, run) = after_failover();
        let mut h = healthy();
        h[0].verdict = Verdict::Unhealthy;
        let err = decide_failback(&s, std::slice::from_ref(&run), &h, &req(), "us-east-1", NOW)
            .unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::TargetUnhealthy);
        assert!(err.to_string().contains("us-east-1"), "{err}");

        let mut r = req();
        r.home_region = Some("ap-southeast-1".into());
        let err = decide_failback(
            &s,
            std::slice::from_ref(&run),
            &healthy(),
            &r,
            "us-east-1",
            NOW,
        )
        .unwrap_err();
        assert!(err.to_string().contains("home_region"), "{err}");

        let mut r = req();
        r.schedule = Some(vec![50, 25, 100]);
        let err = decide_failback(
            &s,
            std::slice::from_ref(&run),
            &healthy(),
            &r,
            "us-east-1",
            NOW,
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with("invalid input: schedule"),
            "{err}"
        );

        s.regions[1].weight -= 10;
        s.regions[2].weight += 10;
        let err = decide_failback(&s, &[run], &healthy(), &req(), "us-east-1", NOW).unwrap_err();
        assert!(
            err.to_string().contains("changed since failover run"),
            "{err}"
        );
    }

    #[test]
    fn readiness_needs_fresh_health_and_the_home_caught_up() {
        let s = spec();
        let at = |lag| readiness(&s, Some(&health("us-east-1", Verdict::Healthy, lag)), NOW);
        let ok = at(Some(0.0));
        assert!(ok.ready && ok.within_rpo && ok.refused.is_none());
        assert_eq!(ok.budget_seconds, 0, "a failback is an RPO-0 switchover");
        // 3 s behind: well within the 900-s RPO, but a planned move waits to catch up.
        let behind = at(Some(3.0));
        assert!(!behind.ready && !behind.within_rpo && behind.refused.is_none());
        assert!(
            behind
                .lag_refused
                .as_deref()
                .unwrap()
                .contains("over the budget of 0 s"),
            "{behind:?}"
        );
        // Unknown and negative lag are not caught up (fail closed).
        for lag in [None, Some(-1.0)] {
            let r = at(lag);
            assert!(
                !r.ready && !r.within_rpo && r.lag_refused.is_some(),
                "{r:?}"
            );
        }
        // The bound is the policy's.
        let mut loose = spec();
        loose.policy.planned_max_lag_seconds = 5;
        let r = readiness(
            &loose,
            Some(&health("us-east-1", Verdict::Healthy, Some(3.0))),
            NOW,
        );
        assert!(r.ready, "{r:?}");
        let mut stale = health("us-east-1", Verdict::Healthy, Some(0.0));
        stale.observed_at = UnixMillis(NOW.0 - 3_600_000);
        let stale = readiness(&s, Some(&stale), NOW);
        assert!(!stale.ready && stale.verdict == Verdict::Unknown);
        let none = readiness(&s, None, NOW);
        assert!(!none.ready);
        assert_eq!(none.refused.as_deref(), Some("no health verdict recorded"));
    }

    #[test]
    fn schedules_are_checked() {
        assert!(check_schedule(&[10, 25, 50, 100]).is_ok());
        assert!(check_schedule(&[100]).is_ok());
        for bad in [&[][..], &[10, 10, 100], &[10, 50], &[0, 100], &[50, 101]] {
            assert!(check_schedule(bad).is_err(), "{bad:?}");
        }
    }
}
