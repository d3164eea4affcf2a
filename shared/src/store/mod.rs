//! The store port: what functions read and write in the single table (README, "The table"),
//! and the items themselves. [`DynamoStore`] is the DynamoDB adapter.
//!
//! | PK | SK | item |
//! |---|---|---|
//! | `WORKLOAD#<id>` | `SPEC` | [`WorkloadSpec`], conditional on `version` |
//! | `WORKLOAD#<id>` | `HEALTH#<region>` | [`HealthRecord`] |
//! | `WORKLOAD#<id>` | `LEASE` | [`Lease`] with fencing `epoch` |
//! | `WORKLOAD#<id>` | `EVENT#<time>#<id>` | [`AuditEvent`], append-only |
//! | `WORKLOAD#<id>` | `RUN#<time>#<id>` | [`RunRecord`] |
//! | `WORKLOAD#<id>` | `SWITCH#<region>` | [`SwitchPosition`], fenced |

use std::fmt;
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::WorkloadSpec;
use crate::time::UnixMillis;

mod dynamo;
pub use dynamo::DynamoStore;

/// Partition key of a workload's items.
pub fn workload_pk(workload: &str) -> String {
    format!("WORKLOAD#{workload}")
}

/// Sort key of the spec item.
pub const SPEC_SK: &str = "SPEC";
/// Sort key of the lease item.
pub const LEASE_SK: &str = "LEASE";

/// Sort key of a Region's health item.
pub fn health_sk(region: &str) -> String {
    format!("HEALTH#{region}")
}

/// Sort key of the position Lifeboat last set a Region's routing switch to.
pub fn switch_sk(region: &str) -> String {
    format!("SWITCH#{region}")
}

/// Sort key of an audit event: time first, so a query returns them in order.
pub fn event_sk(at: UnixMillis, id: &str) -> String {
    format!("EVENT#{}#{id}", at.rfc3339())
}

/// Sort key of a run record.
pub fn run_sk(started_at: UnixMillis, id: &str) -> String {
    format!("RUN#{}#{id}", started_at.rfc3339())
}

/// What a lease is taken for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeasePurpose {
    /// Failing over to another Region.
    Failover,
    /// Returning to the original primary.
    Failback,
    /// A DR drill.
    Drill,
    /// A Region-by-Region deploy.
    Deploy,
    /// Taking a failed serving secondary out of traffic, or bringing it back: seconds
    /// long, inside one failover-executor invocation.
    Drain,
}

impl fmt::Display for LeasePurpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeasePurpose::Failover => "failover",
            LeasePurpose::Failback => "failback",
            LeasePurpose::Drill => "drill",
            LeasePurpose::Deploy => "deploy",
            LeasePurpose::Drain => "drain",
        })
    }
}

/// A held lease. The `epoch` grows by one at every acquisition and never goes back:
/// every write a holder makes presents it (a [`Fence`]), so a holder whose lease was
/// taken over cannot write any more.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Workload id.
    pub workload: String,
    /// Who holds it, e.g. a Step Functions execution ARN.
    pub holder: String,
    /// What for.
    pub purpose: LeasePurpose,
    /// Fencing epoch.
    pub epoch: u64,
    /// When it was acquired.
    pub acquired_at: UnixMillis,
    /// When it lapses unless renewed.
    pub expires_at: UnixMillis,
}

impl Lease {
    /// Whether it has lapsed at `now`.
    pub fn is_expired(&self, now: UnixMillis) -> bool {
        now >= self.expires_at
    }

    /// The refusal of any other would-be holder while it is held:
    /// [`crate::Error::LeaseHeld`], naming the holder, purpose, epoch and expiry.
    pub fn held(self) -> crate::Error {
        crate::Error::LeaseHeld {
            workload: self.workload,
            holder: self.holder,
            purpose: self.purpose.to_string(),
            epoch: self.epoch,
            expires_at: self.expires_at,
        }
    }

    /// The fence its holder presents on writes.
    pub fn fence(&self) -> Fence {
        Fence {
            epoch: self.epoch,
            holder: self.holder.clone(),
        }
    }
}

/// Checks that a step presenting `fence` runs under the lease as it is now: held, at
/// exactly that epoch, by that holder. Otherwise [`crate::Error::StaleEpoch`] saying
/// what the lease is. An expired lease nobody took over still counts as held, as it
/// does for fenced writes: only a take-over (a higher epoch) or a release makes the
/// caller stale. The holder is checked as well as the epoch because epochs grow by one
/// in each replica: when the lease Region moved with the primary (see [`lease_region`]),
/// two runs can have held the same epoch in two replicas, and only the holder tells
/// them apart. An empty holder is bad input ([`crate::Error::InvalidInput`]).
pub fn check_fence(workload: &str, fence: &Fence, lease: Option<&Lease>) -> Result<()> {
    if fence.holder.is_empty() {
        return Err(crate::Error::InvalidInput(
            "holder: a fenced step must name the lease holder beside the epoch".into(),
        ));
    }
    let stale = |current: String| crate::Error::StaleEpoch {
        workload: workload.to_owned(),
        presented: fence.epoch,
        current,
    };
    match lease {
        Some(l) if l.epoch == fence.epoch && l.holder == fence.holder => Ok(()),
        Some(l) if l.epoch == fence.epoch => Err(stale(format!(
            "lease is at epoch {} held by `{}` for {}, not by `{}`",
            l.epoch, l.holder, l.purpose, fence.holder
        ))),
        Some(l) => Err(stale(format!(
            "lease is at epoch {} held by `{}` for {}",
            l.epoch, l.holder, l.purpose
        ))),
        None => Err(stale("the lease is not held".to_owned())),
    }
}

/// The **lease Region** (the arbiter): the one replica of the table where every mover
/// — failover, failback, drill, deploy, drain and restore — takes, renews and checks
/// the lease and makes its fenced writes, whichever Region it runs in.
///
/// The rule: the first Region in the spec's order that is not the current primary.
/// A failover always moves away from the primary, so its lease never lives in the
/// Region that failed; every other mover names the same Region from the same spec.
/// When the workload's Regions are all in one MRSC Region set, every replica is
/// strongly consistent and the caller's own `home` Region (when it is a Region of the
/// workload and not the primary) serves as well: no cross-Region call.
///
/// When the lease Region is itself the Region in trouble (a drained secondary, or the
/// old primary after a failover, until a failback): the movers still lease there, and
/// a replica that does not answer makes the step fail `TransientDependency` with
/// nothing changed, retried by the machine or the alarm's redelivery; no mover ever
/// falls back to another replica, which would be a second lock.
pub fn lease_region(spec: &WorkloadSpec, home: &str) -> String {
    let primary = spec.primary().map(|p| p.region.as_str()).unwrap_or("");
    let first_other = spec
        .regions
        .iter()
        .map(|r| r.region.as_str())
        .find(|r| *r != primary)
        .unwrap_or(home);
    let strong = crate::regions::mrsc_set(spec.regions.iter().map(|r| r.region.as_str())).is_some();
    if strong && home != primary && spec.region(home).is_some() {
        home.to_owned()
    } else {
        first_other.to_owned()
    }
}

/// A lease request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRequest {
    /// Workload id.
    pub workload: String,
    /// The would-be holder.
    pub holder: String,
    /// What for.
    pub purpose: LeasePurpose,
    /// How long it lasts unless renewed.
    pub ttl: Duration,
}

/// Proof of holding the lease: a fenced write succeeds only while the lease is held at
/// exactly this epoch by exactly this holder ([`check_fence`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fence {
    /// The lease epoch.
    pub epoch: u64,
    /// The lease holder (the Step Functions execution ARN that took it).
    pub holder: String,
}

/// A Region's health verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Serving.
    Healthy,
    /// Failed `failure_threshold` rounds in a row.
    Unhealthy,
    /// Not yet probed enough to say.
    Unknown,
}

/// Replication-lag grade against the policy's levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LagGrade {
    /// Under the warning level.
    Ok,
    /// At or over warning, under critical.
    Warning,
    /// At or over critical.
    Critical,
}

/// The `HEALTH#<region>` item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthRecord {
    /// Region code.
    pub region: String,
    /// Current verdict (after hysteresis).
    pub verdict: Verdict,
    /// Failed rounds in a row.
    pub consecutive_failures: u32,
    /// Good rounds in a row.
    pub consecutive_successes: u32,
    /// Latency of the last round's slowest endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_latency_ms: Option<u64>,
    /// Worst replication lag into this Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_lag_seconds: Option<f64>,
    /// Its grade.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_grade: Option<LagGrade>,
    /// When the round was observed.
    pub observed_at: UnixMillis,
    /// Why, in a few words (e.g. the failing endpoint).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An append-only audit event: who did what, why, and what changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When.
    pub at: UnixMillis,
    /// Unique id; writing the same event twice records it once.
    pub id: String,
    /// Who: an execution ARN, a function, an operator.
    pub actor: String,
    /// What, e.g. `verdict_changed`, `failover_finalized`.
    pub action: String,
    /// Why.
    pub reason: String,
    /// State before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<serde_json::Value>,
    /// State after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<serde_json::Value>,
}

/// What kind of run a [`RunRecord`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunKind {
    /// A failover.
    Failover,
    /// A failback.
    Failback,
    /// A DR drill.
    Drill,
    /// A deploy.
    Deploy,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Still going.
    Running,
    /// Done as planned.
    Succeeded,
    /// Stopped by an error; the compensating path ran.
    Failed,
    /// Undone on purpose (e.g. a failed deploy gate).
    RolledBack,
    /// Stopped by an error after it had changed something (a promoted database, a
    /// flipped bucket or switch, moved weights, the spec): the record's
    /// `details.moved` says exactly what. Re-running the same request continues it
    /// forward to the same target.
    Partial,
    /// Stopped because another mover took its lease over (a failover superseding a
    /// deploy, or an operator's `force`): it changed nothing after that, and left what
    /// it had done for the new holder. `details.superseded` names the new holder.
    Superseded,
}

/// One step of a run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineEntry {
    /// When the step started.
    pub at: UnixMillis,
    /// Step name.
    pub step: String,
    /// How long it took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The `RUN#` item: a drill, failover or deploy report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// Unique id, e.g. the execution name.
    pub id: String,
    /// What ran.
    pub kind: RunKind,
    /// When it started.
    pub started_at: UnixMillis,
    /// When it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    /// How it ended.
    pub outcome: RunOutcome,
    /// Steps in order.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// Measured recovery time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_rto_ms: Option<u64>,
    /// Measured (or simulated, see `rpo_simulated`) recovery point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_rpo_ms: Option<u64>,
    /// True when RPO comes from a harness that copied data itself (no real replication).
    #[serde(default)]
    pub rpo_simulated: bool,
    /// Anything else the run reports.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub details: serde_json::Value,
}

/// The position Lifeboat last set a Region's routing switch to. traffic-shifter writes
/// it (fenced) before it writes the switch's metric; health-probe re-asserts it every
/// round, so a switch holds on AWS, where an alarm's metric with no new data would
/// otherwise decide the switch (README, "Routing switches"). No item means on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SwitchPosition {
    /// The Region whose traffic the switch controls.
    pub region: String,
    /// On (the Region may take traffic) or off.
    pub on: bool,
    /// The lease epoch of the run that set it.
    pub epoch: u64,
    /// When.
    pub set_at: UnixMillis,
    /// Who (an execution ARN, or an operator).
    pub set_by: String,
}

/// The store port. Every function talks to the table through this, so decisions can be
/// tested over a store without I/O and the DynamoDB adapter is tested against moto.
pub trait Store: Send + Sync {
    /// Records a switch position (fenced: only the lease holder at `fence` may move a
    /// switch). Writing the same position again is a no-op success.
    fn put_switch(
        &self,
        workload: &str,
        position: &SwitchPosition,
        fence: Fence,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Every switch position recorded for the workload.
    fn get_switches(
        &self,
        workload: &str,
    ) -> impl Future<Output = Result<Vec<SwitchPosition>>> + Send;

    /// Ids of every workload with a spec.
    fn list_workloads(&self) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The spec; [`crate::Error::WorkloadNotFound`] when absent.
    fn get_spec(&self, workload: &str) -> impl Future<Output = Result<WorkloadSpec>> + Send;

    /// Stores a new spec (its `version` must be 0); returns it at version 1.
    /// Validates first: an invalid spec is [`crate::Error::InvalidModel`] and writes
    /// nothing. An existing one is [`crate::Error::ConcurrentModification`].
    fn create_spec(&self, spec: &WorkloadSpec)
    -> impl Future<Output = Result<WorkloadSpec>> + Send;

    /// Replaces the spec if the table still holds `spec.version`; returns it at the next
    /// version. With a fence, also only while the lease is held at that epoch
    /// ([`crate::Error::StaleEpoch`] otherwise). Validates first.
    fn put_spec(
        &self,
        spec: &WorkloadSpec,
        fence: Option<Fence>,
    ) -> impl Future<Output = Result<WorkloadSpec>> + Send;

    /// The lease if held (expired or not).
    fn get_lease(&self, workload: &str) -> impl Future<Output = Result<Option<Lease>>> + Send;

    /// Takes the lease with the next epoch when it is free, released or expired (a
    /// take-over). The same holder asking again while it holds an unexpired lease gets
    /// that lease back unchanged (a retried step). Otherwise [`crate::Error::LeaseHeld`].
    fn acquire_lease(
        &self,
        req: &LeaseRequest,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Lease>> + Send;

    /// Takes the lease over from `from` (a run a failover preempts, or an operator's
    /// forced take-over) with the next epoch, whether or not it has expired: only if it
    /// is still exactly `from` (holder and epoch). The same holder asking again after
    /// taking it gets it back unchanged (a retried step). If the lease moved meanwhile,
    /// [`crate::Error::LeaseHeld`] naming the lease as it is now.
    fn take_over_lease(
        &self,
        req: &LeaseRequest,
        from: &Lease,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Lease>> + Send;

    /// Extends the lease; [`crate::Error::StaleEpoch`] unless `holder` holds it at `epoch`.
    fn renew_lease(
        &self,
        workload: &str,
        holder: &str,
        epoch: u64,
        ttl: Duration,
        now: UnixMillis,
    ) -> impl Future<Output = Result<Lease>> + Send;

    /// Releases the lease, keeping the epoch. Returns `false` if it was already released
    /// at this epoch (a retried step); [`crate::Error::StaleEpoch`] if someone else has
    /// it now.
    fn release_lease(
        &self,
        workload: &str,
        holder: &str,
        epoch: u64,
        now: UnixMillis,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Writes a Region's health unless a newer observation is already stored; returns
    /// whether it was written.
    fn put_health(
        &self,
        workload: &str,
        health: &HealthRecord,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Every Region's health item.
    fn get_health(&self, workload: &str) -> impl Future<Output = Result<Vec<HealthRecord>>> + Send;

    /// Appends an audit event; the same id at the same time again is a no-op (`false`).
    fn append_event(
        &self,
        workload: &str,
        event: &AuditEvent,
    ) -> impl Future<Output = Result<bool>> + Send;

    /// Audit events, oldest first.
    fn list_events(&self, workload: &str) -> impl Future<Output = Result<Vec<AuditEvent>>> + Send;

    /// Creates or replaces a run record; with a fence, only while the lease is held at
    /// that epoch.
    fn put_run(
        &self,
        workload: &str,
        run: &RunRecord,
        fence: Option<Fence>,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Run records, oldest first.
    fn list_runs(&self, workload: &str) -> impl Future<Output = Result<Vec<RunRecord>>> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_holds_only_at_the_current_epoch_of_a_held_lease() {
        let lease = Lease {
            workload: "w".into(),
            holder: "exec-b".into(),
            purpose: LeasePurpose::Failover,
            epoch: 4,
            acquired_at: UnixMillis(0),
            expires_at: UnixMillis(1),
        };
        let fence = |epoch: u64, holder: &str| Fence {
            epoch,
            holder: holder.into(),
        };
        assert!(
            check_fence("w", &fence(4, "exec-b"), Some(&lease)).is_ok(),
            "expired but not taken over"
        );
        let err = check_fence("w", &fence(3, "exec-b"), Some(&lease)).unwrap_err();
        assert_eq!(err.name(), crate::ErrorName::StaleEpoch);
        assert!(
            err.to_string()
                .contains("epoch 4 held by `exec-b` for failover"),
            "{err}"
        );
        let err = check_fence("w", &fence(4, "exec-b"), None).unwrap_err();
        assert!(err.to_string().contains("not held"), "{err}");
        // The same epoch taken in another replica by another run: stale all the same.
        let err = check_fence("w", &fence(4, "exec-a"), Some(&lease)).unwrap_err();
        assert_eq!(err.name(), crate::ErrorName::StaleEpoch);
        assert!(err.to_string().contains("not by `exec-a`"), "{err}");
        let err = check_fence("w", &fence(4, ""), Some(&lease)).unwrap_err();
        assert_eq!(err.name(), crate::ErrorName::InvalidInput, "{err}");
    }
}
