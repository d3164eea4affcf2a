//! The lease-holding steps of the `failover` state machine, over the [`Store`] port of
//! the arbiter Region's table. Each is idempotent: Step Functions may run it again
//! with the same input and it ends in the same state.

use std::time::Duration;

use lifeboat::model::DrPattern;
use lifeboat::store::{
    AuditEvent, Lease, LeasePurpose, LeaseRequest, RunKind, RunOutcome, RunRecord, TimelineEntry,
};
use lifeboat::{Error, ErrorName, Result, Store, UnixMillis, WorkloadSpec};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::NAME;
use crate::decide::{Decision, Operation, apply_changes, is_applied, is_unchanged};
use crate::moved::{self, Continued, Moved};
use crate::request::{
    AcquireInput, FailoverRequest, FinalizeInput, ReleaseInput, RenewInput, Timing,
};

/// Lease time-to-live when neither the step's input nor the execution's `timing` says.
/// Every wait and every long task of the machines is preceded by a `renew`, so it
/// bounds the longest stretch between two renewals, not the run: `tests/tests/lease.rs`
/// reads the machines and checks that no renewal-free path can outlast it, counting
/// every attempt of a task to its `TimeoutSeconds` plus the retries' backoff (a
/// 310-s traffic-shifter task retried six times is 36 min). The price: a run that dies
/// without releasing holds the lease up to this long (an operator's `force` ends that).
pub const DEFAULT_LEASE_TTL_SECONDS: u64 = 3600;

/// What a run that wants the lease does about the run holding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contest {
    /// Take it over with the next epoch: the holder's next fenced step is `StaleEpoch`.
    TakeOver,
    /// Wait (the machine retries `LeaseBusy` with backoff, bounded), then refuse.
    Wait,
    /// Refuse at once (`LeaseHeld`).
    Refuse,
}

/// Failover comes first: a failover (automatic or operator, not a drill's) takes the
/// lease over from a deploy, waits for a failback, a drill or a drain (minutes or
/// seconds of planned work), and refuses against another failover. An operator's
/// `force` takes it over from anyone. Everything else (failbacks, drills) refuses.
pub fn contest(wanted: LeasePurpose, force: bool, held: LeasePurpose) -> Contest {
    if wanted != LeasePurpose::Failover {
        return Contest::Refuse;
    }
    if force {
        return Contest::TakeOver;
    }
    match held {
        LeasePurpose::Deploy => Contest::TakeOver,
        LeasePurpose::Failback | LeasePurpose::Drill | LeasePurpose::Drain => Contest::Wait,
        LeasePurpose::Failover => Contest::Refuse,
    }
}

/// The lease TTL a step asks for: its own `ttl_seconds`, else the execution's
/// `timing.lease_ttl_seconds`, else [`DEFAULT_LEASE_TTL_SECONDS`].
pub fn lease_ttl(ttl_seconds: Option<u64>, timing: Option<&Timing>) -> Result<Duration> {
    if let Some(t) = timing {
        t.check()?;
    }
    let ttl = ttl_seconds
        .or_else(|| timing.and_then(|t| t.lease_ttl_seconds))
        .unwrap_or(DEFAULT_LEASE_TTL_SECONDS);
    if ttl == 0 {
        return Err(Error::InvalidInput(
            "ttl_seconds: must be at least 1".into(),
        ));
    }
    Ok(Duration::from_secs(ttl))
}

/// The end of the cooldown after the last successful failover or failback, if any.
pub fn cooldown_until(runs: &[RunRecord], cooldown_seconds: u64) -> Option<UnixMillis> {
    runs.iter()
        .filter(|r| matches!(r.kind, RunKind::Failover | RunKind::Failback))
        .filter(|r| r.outcome == RunOutcome::Succeeded)
        .map(|r| r.finished_at.unwrap_or(r.started_at))
        .max()
        .map(|t| t.plus(Duration::from_secs(cooldown_seconds)))
}

/// `CooldownActive` while inside the cooldown.
pub fn check_cooldown(spec: &WorkloadSpec, runs: &[RunRecord], now: UnixMillis) -> Result<()> {
    match cooldown_until(runs, spec.policy.cooldown_seconds) {
        Some(until) if now < until => Err(Error::CooldownActive {
            workload: spec.workload.clone(),
            until,
        }),
        _ => Ok(()),
    }
}

/// A run's id: the execution name (the last `:` segment of the holder ARN).
pub fn run_id(holder: &str) -> String {
    holder.rsplit(':').next().unwrap_or(holder).to_owned()
}

fn refuse_dry_run(decision: &Decision, step: &str) -> Result<()> {
    if decision.request.dry_run {
        return Err(Error::InvalidInput(format!(
            "decision.request.dry_run: a dry run changes nothing; `{step}` is not run for it"
        )));
    }
    Ok(())
}

fn check_lease(decision: &Decision, lease: &Lease) -> Result<()> {
    if lease.workload != decision.workload {
        return Err(Error::InvalidInput(format!(
            "lease.workload: `{}` but the decision is for `{}`",
            lease.workload, decision.workload
        )));
    }
    if lease.purpose != decision.purpose() {
        return Err(Error::InvalidInput(format!(
            "lease.purpose: `{}`, expected {}",
            lease.purpose,
            decision.purpose()
        )));
    }
    Ok(())
}

/// `acquire`: a failover (drill or not) is refused inside the cooldown; then the lease is
/// taken for the decision's purpose (`failover`, `failback` or `drill`) with a new
/// fencing epoch (`LeaseHeld` if another run holds it). A failback is not held back by
/// the cooldown: it is planned and started by an operator or a drill, and the cooldown
/// exists to stop alarm-driven flapping. A retry by the same holder gets its lease back
/// unchanged.
pub async fn acquire<S: Store>(store: &S, input: &AcquireInput, now: UnixMillis) -> Result<Lease> {
    let d = &input.decision;
    refuse_dry_run(d, "acquire")?;
    if input.holder.trim().is_empty() {
        return Err(Error::InvalidInput("holder: must not be empty".into()));
    }
    let ttl = lease_ttl(input.ttl_seconds, input.timing.as_ref())?;
    let req = LeaseRequest {
        workload: d.workload.clone(),
        holder: input.holder.clone(),
        purpose: d.purpose(),
        ttl,
    };
    // A retried step: we already hold it, so the cooldown was checked before.
    if let Some(l) = store.get_lease(&d.workload).await?
        && l.holder == input.holder
        && !l.is_expired(now)
    {
        return Ok(l);
    }
    if d.operation == Operation::Failover {
        let spec = store.get_spec(&d.workload).await?;
        let runs = store.list_runs(&d.workload).await?;
        check_cooldown(&spec, &runs, now)?;
    }
    match store.acquire_lease(&req, now).await {
        Err(Error::LeaseHeld { .. }) => {}
        other => return other,
    }
    let Some(held) = store.get_lease(&d.workload).await? else {
        // Released meanwhile.
        return store.acquire_lease(&req, now).await;
    };
    match contest(req.purpose, d.request.force, held.purpose) {
        Contest::TakeOver => {
            let lease = store.take_over_lease(&req, &held, now).await?;
            store
                .append_event(&d.workload, &taken_over_event(d, &held, &lease))
                .await?;
            tracing::warn!(
                workload = %d.workload,
                from = %held.holder,
                from_purpose = %held.purpose,
                epoch = lease.epoch,
                forced = d.request.force,
                "Lease taken over"
            );
            Ok(lease)
        }
        Contest::Wait => Err(Error::LeaseBusy {
            workload: held.workload,
            holder: held.holder,
            purpose: held.purpose.to_string(),
            epoch: held.epoch,
            expires_at: held.expires_at,
        }),
        Contest::Refuse => Err(held.held()),
    }
}

/// The audit event of a take-over (`lease_taken_over`): who took it from whom, why,
/// whether by force. One per take-over, however often the step is retried.
pub fn taken_over_event(d: &Decision, from: &Lease, to: &Lease) -> AuditEvent {
    AuditEvent {
        at: to.acquired_at,
        id: format!("{}-took-over-{}", run_id(&to.holder), from.epoch),
        actor: to.holder.clone(),
        action: "lease_taken_over".to_owned(),
        reason: format!(
            "{} by {}: {}",
            if d.request.force {
                "forced take-over"
            } else {
                "a failover comes first"
            },
            d.request.requested_by,
            d.request.reason
        ),
        before: Some(json!({
            "holder": from.holder, "purpose": from.purpose, "epoch": from.epoch,
            "expires_at": from.expires_at,
        })),
        after: Some(json!({
            "holder": to.holder, "purpose": to.purpose, "epoch": to.epoch,
            "forced": d.request.force, "requested_by": d.request.requested_by,
        })),
    }
}

/// `renew`: extends the run's lease in the arbiter's table; `StaleEpoch` (and nothing
/// written) once another run has taken it over or it was released. Idempotent.
pub async fn renew<S: Store>(store: &S, input: &RenewInput, now: UnixMillis) -> Result<Lease> {
    let (d, lease) = (&input.decision, &input.lease);
    refuse_dry_run(d, "renew")?;
    check_lease(d, lease)?;
    let ttl = lease_ttl(input.ttl_seconds, input.timing.as_ref())?;
    store
        .renew_lease(&d.workload, &lease.holder, lease.epoch, ttl, now)
        .await
}

/// The `finalize` step's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinalizeOutput {
    /// The run as recorded.
    pub run: RunRecord,
    /// The spec's version after the failover.
    pub spec_version: u64,
    /// Whether this call released the lease (false: a retry found it released).
    pub released: bool,
}

/// The `release` step's output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseOutput {
    /// The run as recorded.
    pub run: RunRecord,
    /// Whether this call released the lease.
    pub released: bool,
}

fn timeline(
    d: &Decision,
    lease: &Lease,
    extra: &[TimelineEntry],
    last: TimelineEntry,
) -> Vec<TimelineEntry> {
    let mut t = vec![
        TimelineEntry {
            at: d.decided_at,
            step: "decide".into(),
            duration_ms: None,
            detail: Some(format!("{} -> {}", d.from_region, d.to_region)),
        },
        TimelineEntry {
            at: lease.acquired_at,
            step: "acquire".into(),
            duration_ms: None,
            detail: Some(format!("epoch {} in {}", lease.epoch, d.arbiter_region)),
        },
    ];
    t.extend(extra.iter().cloned());
    t.push(last);
    t.sort_by_key(|e| e.at);
    t
}

/// When the target was verified serving: re-protection starts right after verification
/// passes (its `reprotect` mark, failover.asl.json) and runs after traffic has moved, so
/// its wait is not part of the recovery time; without a mark (a machine that has none),
/// the end of the run.
fn served_at(timeline: &[TimelineEntry], now: UnixMillis) -> UnixMillis {
    timeline
        .iter()
        .filter(|e| e.step == "reprotect")
        .map(|e| e.at)
        .min()
        .unwrap_or(now)
}

/// What a run prepared in the target before traffic moved, from the data-tier
/// Parallel's branch outputs (replica-promoter outcomes): per step that had something to
/// do, its final status, how long it took when the step says (compute: from the scale
/// request until in service) and each resource's action, status and detail; with the
/// workload's DR pattern, which says what there was to prepare (pilot light and warm
/// standby scale compute; every pattern promotes its data tier). `None` when no branch
/// had anything to do. Pure.
pub fn prepared(pattern: DrPattern, data: &[serde_json::Value]) -> Option<serde_json::Value> {
    let steps: Vec<serde_json::Value> = data
        .iter()
        .filter(|o| o.get("status").and_then(serde_json::Value::as_str) != Some("nothing_to_do"))
        .filter_map(|o| {
            let resources: Vec<serde_json::Value> = o
                .get("resources")?
                .as_array()?
                .iter()
                .map(|r| {
                    json!({
                        "kind": r.get("kind"),
                        "id": r.get("id"),
                        "action": r.get("action"),
                        "status": r.get("status"),
                        "detail": r.get("detail"),
                    })
                })
                .collect();
            let mut step = json!({
                "step": o.get("step")?,
                "status": o.get("status")?,
                "resources": resources,
            });
            if let (Some(ms), Some(obj)) = (o.get("took_ms"), step.as_object_mut()) {
                obj.insert("took_ms".into(), ms.clone());
            }
            Some(step)
        })
        .collect();
    (!steps.is_empty()).then(|| json!({"pattern": pattern, "steps": steps}))
}

fn details(d: &Decision, lease: &Lease, extra: serde_json::Value) -> serde_json::Value {
    json!({
        "operation": d.operation.as_str(),
        "drill": d.request.drill,
        "failback": d.failback,
        "from_region": d.from_region,
        "to_region": d.to_region,
        "mode": d.mode,
        "arbiter_region": d.arbiter_region,
        "lease_consistency": d.lease_consistency,
        "epoch": lease.epoch,
        "lag_seconds": d.lag_seconds,
        "rpo_seconds": d.rpo_seconds,
        "data_loss_accepted": d.data_loss_accepted,
        "reason": d.request.reason,
        "requested_by": d.request.requested_by,
        "trigger": d.request.trigger,
        "changes": d.changes,
        "outcome": extra,
    })
}

/// Releases, treating "already released at our epoch" and "superseded" as done: both
/// mean the lease is no longer ours.
async fn release_ours<S: Store>(store: &S, lease: &Lease, now: UnixMillis) -> Result<bool> {
    match store
        .release_lease(&lease.workload, &lease.holder, lease.epoch, now)
        .await
    {
        Ok(released) => Ok(released),
        Err(e) if e.name() == ErrorName::StaleEpoch => Ok(false),
        Err(e) => Err(e),
    }
}

/// `finalize`: writes the decided roles and weights fenced by the lease epoch, records
/// the run with its timeline, appends the audit event and releases the lease. A retry
/// after any of these finds them done and does the rest.
pub async fn finalize<S: Store>(
    store: &S,
    input: &FinalizeInput,
    now: UnixMillis,
) -> Result<FinalizeOutput> {
    let (d, lease) = (&input.decision, &input.lease);
    refuse_dry_run(d, "finalize")?;
    check_lease(d, lease)?;
    let id = run_id(&lease.holder);
    let runs = store.list_runs(&d.workload).await?;
    let existing = runs
        .iter()
        .find(|r| r.id == id && r.outcome == RunOutcome::Succeeded)
        .cloned();
    let (run, spec_version) = match existing {
        Some(run) => {
            let version = store.get_spec(&d.workload).await?.version;
            (run, version)
        }
        None => {
            let spec = store.get_spec(&d.workload).await?;
            let version = if is_applied(&spec, &d.changes) {
                spec.version
            } else {
                let mut next = spec.clone();
                apply_changes(&mut next, &d.changes)?;
                store.put_spec(&next, Some(lease.fence())).await?.version
            };
            let detected = d
                .request
                .trigger
                .as_ref()
                .map_or(d.decided_at, |t| t.state_changed_at);
            // RTO is a failover's: from the trigger to the target serving.
            let rto = (d.operation == Operation::Failover)
                .then(|| served_at(&input.timeline, now).since(detected));
            let run = RunRecord {
                id: id.clone(),
                kind: d.run_kind(),
                started_at: lease.acquired_at,
                finished_at: Some(now),
                outcome: RunOutcome::Succeeded,
                timeline: timeline(
                    d,
                    lease,
                    &input.timeline,
                    TimelineEntry {
                        at: now,
                        step: "finalize".into(),
                        duration_ms: None,
                        detail: Some(format!("spec version {version}")),
                    },
                ),
                measured_rto_ms: rto,
                measured_rpo_ms: None,
                rpo_simulated: false,
                details: with_prepared(
                    with_continued(
                        details(d, lease, json!({"spec_version": version})),
                        continued(&runs, d, lease, &id).as_ref(),
                    ),
                    prepared(spec.pattern, &input.data),
                ),
            };
            store
                .put_run(&d.workload, &run, Some(lease.fence()))
                .await?;
            (run, version)
        }
    };
    let event = AuditEvent {
        at: run.finished_at.unwrap_or(now),
        id: format!("{id}-finalized"),
        actor: lease.holder.clone(),
        action: format!("{}_finalized", d.operation.as_str()),
        reason: d.request.reason.clone(),
        before: Some(json!(
            d.changes
                .iter()
                .map(|c| json!({
                    "region": c.region, "role": c.role_before, "weight": c.weight_before
                }))
                .collect::<Vec<_>>()
        )),
        after: Some(json!({
            "regions": d.changes.iter().map(|c| json!({
                "region": c.region, "role": c.role_after, "weight": c.weight_after
            })).collect::<Vec<_>>(),
            "spec_version": spec_version,
            "data_loss_accepted": d.data_loss_accepted,
            "lag_seconds": d.lag_seconds,
        })),
    };
    store.append_event(&d.workload, &event).await?;
    let released = release_ours(store, lease, now).await?;
    Ok(FinalizeOutput {
        run,
        spec_version,
        released,
    })
}

/// The spec's version when it already holds the decided roles and weights (and so no
/// longer what it was): `finalize` wrote it before the run stopped.
pub fn spec_written(spec: &WorkloadSpec, d: &Decision) -> Option<u64> {
    (!d.changes.is_empty() && is_applied(spec, &d.changes) && !is_unchanged(spec, &d.changes))
        .then_some(spec.version)
}

/// The earlier `partial` run this one continued (same kind, from and to), if any.
fn continued(runs: &[RunRecord], d: &Decision, lease: &Lease, id: &str) -> Option<Continued> {
    let earlier: Vec<RunRecord> = runs
        .iter()
        .filter(|r| r.id != id && r.started_at < lease.acquired_at)
        .cloned()
        .collect();
    moved::continues(&earlier, d.run_kind(), &d.from_region, Some(&d.to_region))
}

fn with_prepared(
    mut details: serde_json::Value,
    p: Option<serde_json::Value>,
) -> serde_json::Value {
    if let (Some(p), Some(obj)) = (p, details.as_object_mut()) {
        obj.insert("prepared".into(), p);
    }
    details
}

fn with_continued(mut details: serde_json::Value, c: Option<&Continued>) -> serde_json::Value {
    if let (Some(c), Some(obj)) = (c, details.as_object_mut()) {
        obj.insert("continues".into(), json!(c));
    }
    details
}

/// What a stopped run had moved: from the state the machine carried, the movers'
/// records in the arbiter's table at this epoch, and the spec. Reads only the
/// arbiter's table: compensation never needs the failed Region.
pub async fn what_moved<S: Store>(store: &S, input: &ReleaseInput) -> Result<Moved> {
    let (d, lease) = (&input.decision, &input.lease);
    let carried = input
        .carried
        .as_ref()
        .map(moved::from_state)
        .unwrap_or_default();
    let events = store.list_events(&d.workload).await?;
    let switches = store.get_switches(&d.workload).await?;
    let recorded =
        moved::from_records(&events, &switches, &d.to_region, lease.epoch, &lease.holder);
    let spec = store.get_spec(&d.workload).await?;
    let spec = Moved {
        spec_version: spec_written(&spec, d),
        ..Moved::default()
    };
    Ok(carried.merge(recorded).merge(spec))
}

/// `release`: the compensating path. Records the run (unless it was recorded
/// already) as `partial` when anything had moved, saying exactly what
/// (`details.outcome.moved`: promoted databases, flipped buckets, switches, weights,
/// the spec if `finalize` wrote it), else `failed`; appends the audit event and
/// releases the lease. Nothing is moved back: re-running the same request continues
/// forward to the same target (`decide`), and the record of that run names this one.
pub async fn release<S: Store>(
    store: &S,
    input: &ReleaseInput,
    now: UnixMillis,
) -> Result<ReleaseOutput> {
    let (d, lease) = (&input.decision, &input.lease);
    check_lease(d, lease)?;
    let id = run_id(&lease.holder);
    let runs = store.list_runs(&d.workload).await?;
    let existing = runs.iter().find(|r| r.id == id).cloned();
    let run = match existing {
        Some(run) => run,
        None => {
            let moved = what_moved(store, input).await?;
            let summary = moved.summary();
            let error = input.error.as_ref().map(ToString::to_string);
            let cont = continued(&runs, d, lease, &id);
            let run = RunRecord {
                id: id.clone(),
                kind: d.run_kind(),
                started_at: lease.acquired_at,
                finished_at: Some(now),
                outcome: moved.outcome(),
                timeline: timeline(
                    d,
                    lease,
                    &input.timeline,
                    TimelineEntry {
                        at: now,
                        step: "release".into(),
                        duration_ms: None,
                        detail: Some(match &error {
                            Some(e) => format!("{e}; {summary}"),
                            None => summary.clone(),
                        }),
                    },
                ),
                measured_rto_ms: None,
                measured_rpo_ms: None,
                rpo_simulated: false,
                details: with_continued(
                    details(
                        d,
                        lease,
                        json!({"error": input.error, "moved": moved, "summary": summary}),
                    ),
                    cont.as_ref(),
                ),
            };
            match store.put_run(&d.workload, &run, Some(lease.fence())).await {
                Ok(()) => {}
                // The lease is gone already: record the failure anyway (its own item).
                Err(e) if e.name() == ErrorName::StaleEpoch => {
                    store.put_run(&d.workload, &run, None).await?;
                }
                Err(e) => return Err(e),
            }
            run
        }
    };
    let partial = run.outcome == RunOutcome::Partial;
    let event = AuditEvent {
        at: run.finished_at.unwrap_or(now),
        id: format!("{id}-released"),
        actor: lease.holder.clone(),
        action: format!(
            "{}_{}",
            d.operation.as_str(),
            if partial { "partial" } else { "failed" }
        ),
        reason: d.request.reason.clone(),
        before: None,
        after: Some(json!({
            "outcome": run.outcome,
            "error": input.error,
            "moved": run.details.get("outcome").and_then(|o| o.get("moved")),
        })),
    };
    store.append_event(&d.workload, &event).await?;
    let released = release_ours(store, lease, now).await?;
    Ok(ReleaseOutput { run, released })
}

/// The audit event of an automatic failover refused as unwarranted
/// (`failover_unwarranted`): one per alarm state change, however many deliveries.
pub fn unwarranted_event(req: &FailoverRequest, error: &Error, now: UnixMillis) -> AuditEvent {
    let (alarm, changed) = req
        .trigger
        .as_ref()
        .map_or(("", now), |t| (t.alarm_name.as_str(), t.state_changed_at));
    AuditEvent {
        at: now,
        id: format!("unwarranted-{}-{alarm}", changed.0),
        actor: NAME.to_owned(),
        action: "failover_unwarranted".to_owned(),
        reason: error.to_string(),
        before: None,
        after: Some(json!({"alarm": alarm, "state_changed_at": changed, "error": error.name()})),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(step: &str, at: u64) -> TimelineEntry {
        TimelineEntry {
            at: UnixMillis(at),
            step: step.into(),
            duration_ms: None,
            detail: None,
        }
    }

    /// The RTO ends when verification passed (re-protection's start), not when the
    /// re-protection wait ends and finalize runs.
    #[test]
    fn the_rto_ends_when_the_target_is_verified_not_after_reprotection() {
        let t = [entry("verify", 5_000), entry("reprotect", 9_000)];
        assert_eq!(served_at(&t, UnixMillis(60_000)), UnixMillis(9_000));
        assert_eq!(
            served_at(&[entry("verify", 5_000)], UnixMillis(60_000)),
            UnixMillis(60_000)
        );
    }

    fn run(kind: RunKind, outcome: RunOutcome, finished: u64) -> RunRecord {
        RunRecord {
            id: format!("r{finished}"),
            kind,
            started_at: UnixMillis(finished - 10),
            finished_at: Some(UnixMillis(finished)),
            outcome,
            timeline: vec![],
            measured_rto_ms: None,
            measured_rpo_ms: None,
            rpo_simulated: false,
            details: serde_json::Value::Null,
        }
    }

    #[test]
    fn cooldown_runs_from_the_last_successful_failover_or_failback() {
        let runs = [
            run(RunKind::Failover, RunOutcome::Succeeded, 1_000),
            run(RunKind::Failback, RunOutcome::Succeeded, 5_000),
            run(RunKind::Failover, RunOutcome::Failed, 9_000),
            run(RunKind::Drill, RunOutcome::Succeeded, 9_500),
        ];
        assert_eq!(cooldown_until(&runs, 10), Some(UnixMillis(15_000)));
        assert_eq!(cooldown_until(&runs[2..], 10), None);
        assert_eq!(cooldown_until(&[], 10), None);
    }

    #[test]
    fn a_failover_takes_over_a_deploy_waits_for_planned_work_and_refuses_a_failover() {
        use LeasePurpose::*;
        assert_eq!(contest(Failover, false, Deploy), Contest::TakeOver);
        for held in [Failback, Drill, Drain] {
            assert_eq!(contest(Failover, false, held), Contest::Wait, "{held}");
        }
        assert_eq!(contest(Failover, false, Failover), Contest::Refuse);
        for held in [Deploy, Failback, Drill, Drain, Failover] {
            assert_eq!(contest(Failover, true, held), Contest::TakeOver, "{held}");
        }
        // Failbacks and drills never preempt anyone, forced or not.
        for wanted in [Failback, Drill] {
            for held in [Deploy, Failback, Drill, Drain, Failover] {
                assert_eq!(contest(wanted, true, held), Contest::Refuse);
            }
        }
    }

    #[test]
    fn the_lease_ttl_comes_from_the_step_then_the_timing_then_the_default() {
        let timing = Timing {
            poll_seconds: 1,
            verify_max_polls: 3,
            lease_ttl_seconds: Some(5),
        };
        assert_eq!(lease_ttl(Some(7), Some(&timing)).unwrap().as_secs(), 7);
        assert_eq!(lease_ttl(None, Some(&timing)).unwrap().as_secs(), 5);
        assert_eq!(
            lease_ttl(None, None).unwrap().as_secs(),
            DEFAULT_LEASE_TTL_SECONDS
        );
        let short = Timing {
            poll_seconds: 10,
            lease_ttl_seconds: Some(20),
            ..timing
        };
        let e = lease_ttl(None, Some(&short)).unwrap_err();
        assert!(e.to_string().contains("timing.lease_ttl_seconds"), "{e}");
        assert_eq!(
            lease_ttl(Some(0), None).unwrap_err().name(),
            ErrorName::InvalidInput
        );
    }

    /// Issue #15 item 5: finalize records what the data-tier Parallel prepared, leaving
    /// out the branches that had nothing to do.
    #[test]
    fn prepared_keeps_the_branches_that_did_something_with_their_timing() {
        let nothing = |step: &str| json!({"workload": "w", "step": step, "target_region": "eu-west-1", "epoch": 3, "done": true, "status": "nothing_to_do", "already_done": true, "resources": []});
        let compute = json!({"workload": "w", "step": "compute_status", "target_region": "eu-west-1", "epoch": 3, "done": true, "status": "below_target", "already_done": false, "took_ms": 901_000, "resources": [
            {"kind": "ecs_service", "id": "orders/workers", "region": "eu-west-1", "action": "checked", "status": "scaling", "detail": "3/4 in service"}]});
        let data = [
            nothing("rds_status"),
            nothing("aurora_status"),
            nothing("s3_flip"),
            nothing("dynamodb_verify"),
            compute,
        ];
        let p = prepared(DrPattern::WarmStandby, &data).unwrap();
        assert_eq!(p["pattern"], "warm_standby");
        assert_eq!(p["steps"].as_array().unwrap().len(), 1, "{p:#}");
        let step = &p["steps"][0];
        assert_eq!(
            (&step["step"], &step["status"], &step["took_ms"]),
            (
                &json!("compute_status"),
                &json!("below_target"),
                &json!(901_000)
            )
        );
        assert_eq!(step["resources"][0]["detail"], "3/4 in service");
        assert!(
            step["resources"][0].get("region").is_none(),
            "the step's target says where"
        );
        // Nothing done anywhere (or no data at all): nothing recorded.
        assert_eq!(prepared(DrPattern::ActiveActive, &data[..4]), None);
        assert_eq!(prepared(DrPattern::ActiveActive, &[]), None);
    }

    #[test]
    fn run_id_is_the_execution_name() {
        assert_eq!(
            run_id("arn:aws:states:eu-west-1:123456789012:execution:failover:checkout-x"),
            "checkout-x"
        );
        assert_eq!(run_id("plain"), "plain");
    }
}
