//! The decisions, as pure functions over the model and what AWS reported: no I/O here,
//! so every branch is unit-tested.

use aws_sdk_s3::types::{
    DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination, ReplicationConfiguration,
    ReplicationRule, ReplicationRuleFilter, ReplicationRuleStatus,
};
use lifeboat::model::{DatabaseRef, RegionSpec, Role};
use lifeboat::store::{Fence, Lease};
use lifeboat::{Error, WorkloadSpec};

use crate::request::{Mode, Request, Step};

/// The target Region of a request, checked against the spec: it must be in the spec,
/// and a step that moves the writer must not target the primary.
pub fn target<'a>(spec: &'a WorkloadSpec, req: &Request) -> Result<&'a RegionSpec, Error> {
    let Some(region) = spec.region(&req.target_region) else {
        let known: Vec<&str> = spec.regions.iter().map(|r| r.region.as_str()).collect();
        return Err(Error::InvalidInput(format!(
            "target_region: `{}` is not a Region of workload `{}` ({})",
            req.target_region,
            spec.workload,
            known.join(", ")
        )));
    };
    if req.step.moves_the_writer() && region.role == Role::Primary {
        return Err(Error::InvalidInput(format!(
            "target_region: `{}` is already the primary of workload `{}`; {} moves the writer away from the primary",
            req.target_region,
            spec.workload,
            req.step.as_str()
        )));
    }
    Ok(region)
}

/// The Region whose table replica holds the lease for this request: `arbiter_region`
/// when given (it must be an AWS Region code), else `None` for the function's own.
/// Checked before anything is read.
pub fn arbiter_region(req: &Request) -> Result<Option<&str>, Error> {
    match req.arbiter_region.as_deref() {
        None => Ok(None),
        Some(region) if lifeboat::regions::is_known(region) => Ok(Some(region)),
        Some(region) => Err(Error::InvalidInput(format!(
            "arbiter_region: `{region}` is not an AWS Region code"
        ))),
    }
}

/// The old primary a writer-moving step moves away from.
pub fn old_primary<'a>(spec: &'a WorkloadSpec, req: &Request) -> Result<&'a RegionSpec, Error> {
    spec.primary().ok_or_else(|| {
        Error::InvalidInput(format!(
            "workload `{}` has no primary Region to move {} away from",
            spec.workload,
            req.step.as_str()
        ))
    })
}

/// The fencing check: the lease must be held at exactly the presented epoch, by the
/// presented holder.
///
/// Like the store's fenced writes, an expired lease that nobody took over still counts
/// as held: a take-over raises the epoch, and that is what makes the caller stale.
pub fn check_epoch(workload: &str, fence: &Fence, lease: Option<&Lease>) -> Result<(), Error> {
    lifeboat::store::check_fence(workload, fence, lease)
}

/// Whether the target Region has anything of the kind `step` acts on. A state machine runs
/// every data-tier branch for every workload; a branch with nothing to act on ends at once
/// as `nothing_to_do` instead of failing the run.
pub fn applies(target: &RegionSpec, step: Step) -> bool {
    let rds = target
        .databases
        .iter()
        .any(|d| matches!(d, DatabaseRef::RdsInstance { .. }));
    let aurora = target
        .databases
        .iter()
        .any(|d| matches!(d, DatabaseRef::AuroraGlobal { .. }));
    match step {
        Step::RdsPromote | Step::RdsStatus | Step::RdsReprotect => rds,
        Step::AuroraSwitchover
        | Step::AuroraFailover
        | Step::AuroraStatus
        | Step::AuroraReprotect => aurora,
        Step::S3Flip | Step::S3SuspendOld => !target.buckets.is_empty(),
        Step::DynamodbVerify => !target.dynamodb_tables.is_empty(),
        Step::ComputeScale | Step::ComputeStatus | Step::ComputeStandby => {
            !target.compute.is_empty()
        }
    }
}

/// RDS instance ids of a Region; a step about RDS on a Region without any is bad input.
pub fn rds_instances(region: &RegionSpec, step: Step) -> Result<Vec<&str>, Error> {
    let ids: Vec<&str> = region
        .databases
        .iter()
        .filter_map(|d| match d {
            DatabaseRef::RdsInstance { instance_id, .. } => Some(instance_id.as_str()),
            DatabaseRef::AuroraGlobal { .. } => None,
        })
        .collect();
    if ids.is_empty() {
        return Err(Error::InvalidInput(format!(
            "target_region: `{}` has no rds_instance database in the spec, so {} has nothing to act on",
            region.region,
            step.as_str()
        )));
    }
    Ok(ids)
}

/// Aurora global members `(global_cluster_id, cluster_id)` of a Region.
pub fn aurora_members(region: &RegionSpec, step: Step) -> Result<Vec<(&str, &str)>, Error> {
    let members: Vec<(&str, &str)> = region
        .databases
        .iter()
        .filter_map(|d| match d {
            DatabaseRef::AuroraGlobal {
                global_cluster_id,
                cluster_id,
            } => Some((global_cluster_id.as_str(), cluster_id.as_str())),
            DatabaseRef::RdsInstance { .. } => None,
        })
        .collect();
    if members.is_empty() {
        return Err(Error::InvalidInput(format!(
            "target_region: `{}` has no aurora_global database in the spec, so {} has nothing to act on",
            region.region,
            step.as_str()
        )));
    }
    Ok(members)
}

/// What RDS says about one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceView {
    /// Identifier.
    pub id: String,
    /// `DBInstanceStatus`, e.g. `available`, `modifying`.
    pub status: String,
    /// `ReadReplicaSourceDBInstanceIdentifier`: set while it is a replica.
    pub source: Option<String>,
    /// Its ARN.
    pub arn: Option<String>,
    /// Engine.
    pub engine: Option<String>,
    /// Its `read replication` status ([`replication_normal`]).
    pub replication: Option<bool>,
}

impl InstanceView {
    /// A standalone instance that is available: a writer.
    pub fn is_available_writer(&self) -> bool {
        self.source.is_none() && self.status == "available"
    }
}

/// What `rds_promote` does with one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromoteAction {
    /// Not a replica (any more): nothing to promote.
    AlreadyStandalone,
    /// This epoch already asked for the promotion (recorded in the audit log); RDS
    /// takes minutes to apply it, so `rds_status` is what to poll.
    AlreadyRequested,
    /// Call PromoteReadReplica.
    Promote,
}

/// Decides `rds_promote` for one instance.
pub fn promote_action(view: &InstanceView, requested_before: bool) -> PromoteAction {
    if view.source.is_none() {
        PromoteAction::AlreadyStandalone
    } else if requested_before {
        PromoteAction::AlreadyRequested
    } else {
        PromoteAction::Promote
    }
}

/// The one-word status of an instance for a state machine: `available` only when it is
/// a standalone writer; a replica that is available is still `replicating`.
pub fn instance_status(view: &InstanceView) -> String {
    if view.source.is_some() && view.status == "available" {
        "replicating".to_owned()
    } else {
        view.status.clone()
    }
}

/// Whether a `PromoteReadReplica` refused with `InvalidDBInstanceState` means the
/// promotion is already under way (or done): the instance is no longer a plain
/// available replica.
pub fn refusal_means_in_progress(view: &InstanceView) -> bool {
    view.source.is_none() || view.status != "available"
}

/// The identifier of the replica `reprotect` creates of `source_id` in `region` for
/// `epoch`: deterministic, so a retried step finds the replica it created, and a valid
/// RDS identifier (letters, digits, single hyphens, starts with a letter, ≤ 63).
pub fn replica_id(source_id: &str, region: &str, epoch: u64) -> String {
    let suffix = format!("-{region}-e{epoch}");
    let mut base: String = source_id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_alphabetic()) {
        base.insert_str(0, "db-");
    }
    base.truncate(63usize.saturating_sub(suffix.len()));
    let mut id = String::with_capacity(63);
    for c in base.chars().chain(suffix.chars()) {
        if !(c == '-' && id.ends_with('-')) {
            id.push(c);
        }
    }
    id
}

/// The spec with the reprotect replicas recorded: in each Region of `placed`
/// (`(region, source index, replica id)`), the `index`-th RDS instance reference
/// becomes the new replica (appended when the Region has fewer). `None` when the spec
/// already says so (a retried step).
pub fn record_replicas(
    spec: &WorkloadSpec,
    engine: &[Option<String>],
    placed: &[(String, usize, String)],
) -> Option<WorkloadSpec> {
    let mut next = spec.clone();
    for (region, index, id) in placed {
        let Some(r) = next.regions.iter_mut().find(|r| &r.region == region) else {
            continue;
        };
        let engine = engine.get(*index).cloned().flatten();
        let positions: Vec<usize> = r
            .databases
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(d, DatabaseRef::RdsInstance { .. }))
            .map(|(i, _)| i)
            .collect();
        let new_ref = DatabaseRef::RdsInstance {
            instance_id: id.clone(),
            engine,
        };
        match positions.get(*index) {
            Some(&at) => {
                if let Some(DatabaseRef::RdsInstance { instance_id, .. }) = r.databases.get(at)
                    && instance_id == id
                {
                    continue;
                }
                if let Some(slot) = r.databases.get_mut(at) {
                    *slot = new_ref;
                }
            }
            None => r.databases.push(new_ref),
        }
    }
    (next != *spec).then_some(next)
}

/// What an Aurora global cluster says about the move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GlobalView {
    /// Global cluster status, e.g. `available`, `switching-over`, `failing-over`.
    pub status: String,
    /// Member ARNs with their writer flag.
    pub members: Vec<(String, bool)>,
    /// Failover state: `(status, to_db_cluster_arn)` while a move is pending.
    pub failover: Option<(String, Option<String>)>,
}

/// The ARN of the member that is `cluster_id` in `region` (ARN
/// `arn:<partition>:rds:<region>:<account>:cluster:<id>`).
pub fn member_arn<'a>(view: &'a GlobalView, region: &str, cluster_id: &str) -> Option<&'a str> {
    view.members
        .iter()
        .map(|(arn, _)| arn.as_str())
        .find(|arn| {
            let parts: Vec<&str> = arn.split(':').collect();
            parts.len() == 7
                && parts[2] == "rds"
                && parts[3] == region
                && parts[5] == "cluster"
                && parts[6] == cluster_id
        })
}

/// What an Aurora move does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuroraAction {
    /// The target is the writer already.
    AlreadyWriter,
    /// A switchover/failover to the target is under way.
    InProgress,
    /// Ask for it.
    Move,
}

/// Decides an Aurora move to `target_arn`.
pub fn aurora_action(view: &GlobalView, target_arn: &str) -> AuroraAction {
    if aurora_is_writer(view, target_arn) && view.failover.is_none() {
        return AuroraAction::AlreadyWriter;
    }
    match &view.failover {
        Some((status, Some(to))) if to == target_arn && status != "cancelling" => {
            AuroraAction::InProgress
        }
        _ if aurora_is_writer(view, target_arn) => AuroraAction::AlreadyWriter,
        _ => AuroraAction::Move,
    }
}

/// Whether `target_arn` is the writer.
pub fn aurora_is_writer(view: &GlobalView, target_arn: &str) -> bool {
    view.members
        .iter()
        .any(|(arn, writer)| *writer && arn == target_arn)
}

/// `aurora_status`: done when the target is the writer, the global cluster is
/// available and no move is pending.
pub fn aurora_done(view: &GlobalView, target_arn: &str) -> bool {
    aurora_is_writer(view, target_arn) && view.status == "available" && view.failover.is_none()
}

/// The ARN S3 replication uses for a bucket.
pub fn bucket_arn(bucket: &str) -> String {
    format!("arn:aws:s3:::{bucket}")
}

/// The old primary's replication configuration mirrored onto the new primary bucket:
/// every rule keeps its id, priority, filter, status, delete-marker replication,
/// existing-object replication, source selection, storage class, encryption, replication
/// time control and metrics; only the destination of the rule that pointed at the new
/// primary now points back at the old primary. The role is the new primary bucket's own
/// replication role when the spec names one, else the old configuration's.
pub fn mirror_rules(
    old: &ReplicationConfiguration,
    old_bucket: &str,
    new_bucket: &str,
    new_role: Option<&str>,
) -> ReplicationConfiguration {
    let mut next = old.clone();
    if let Some(role) = new_role {
        next.role = role.to_owned();
    }
    let new_arn = bucket_arn(new_bucket);
    for rule in &mut next.rules {
        if let Some(dest) = rule.destination.as_mut()
            && (dest.bucket == new_arn || dest.bucket == new_bucket)
        {
            dest.bucket = bucket_arn(old_bucket);
        }
    }
    next
}

/// [`mirror_rules`], refusing when the old primary does not replicate to the new
/// primary bucket at all: then the new bucket does not hold the data and there is no
/// direction to flip (`ResourceNotFound` for the missing rule, before any change).
pub fn mirror_for_flip(
    old: &ReplicationConfiguration,
    old_bucket: &str,
    new_bucket: &str,
    new_role: Option<&str>,
    old_region: &str,
) -> Result<ReplicationConfiguration, Error> {
    let mirrored = mirror_rules(old, old_bucket, new_bucket, new_role);
    if is_flipped(Some(&mirrored), old_bucket) {
        Ok(mirrored)
    } else {
        Err(Error::ResourceNotFound {
            kind: "S3 replication rule towards the target bucket",
            id: format!("{old_bucket} -> {new_bucket}"),
            region: old_region.to_owned(),
        })
    }
}

/// The old configuration with every rule disabled: what "suspend the old rules" puts.
pub fn suspended(old: &ReplicationConfiguration) -> ReplicationConfiguration {
    let mut next = old.clone();
    for rule in &mut next.rules {
        rule.status = ReplicationRuleStatus::Disabled;
    }
    next
}

/// Whether every rule is disabled already.
pub fn all_suspended(config: &ReplicationConfiguration) -> bool {
    config
        .rules
        .iter()
        .all(|r| r.status == ReplicationRuleStatus::Disabled)
}

/// Whether the new primary bucket replicates back to the old primary already: the flip
/// was done (a retried step), so the old rules must not be mirrored again. Only an
/// enabled rule counts: a failback finds the rules an earlier failover suspended on this
/// bucket, which still name the old primary but replicate nothing.
pub fn is_flipped(new_config: Option<&ReplicationConfiguration>, old_bucket: &str) -> bool {
    let old_arn = bucket_arn(old_bucket);
    new_config.is_some_and(|c| {
        c.rules.iter().any(|r| {
            r.status == ReplicationRuleStatus::Enabled
                && r.destination
                    .as_ref()
                    .is_some_and(|d| d.bucket == old_arn || d.bucket == old_bucket)
        })
    })
}

/// Pairs each old-primary bucket with the target Region's bucket at the same position.
pub fn bucket_pairs<'a>(
    old: &'a RegionSpec,
    target: &'a RegionSpec,
) -> Result<
    Vec<(
        &'a lifeboat::model::BucketRef,
        &'a lifeboat::model::BucketRef,
    )>,
    Error,
> {
    if target.buckets.is_empty() {
        return Err(Error::InvalidInput(format!(
            "target_region: `{}` has no buckets in the spec, so s3_flip and s3_suspend_old have nothing to act on",
            target.region
        )));
    }
    if old.buckets.len() != target.buckets.len() {
        return Err(Error::InvalidInput(format!(
            "buckets of {} ({}) and {} ({}) do not pair up by position",
            old.region,
            old.buckets.len(),
            target.region,
            target.buckets.len()
        )));
    }
    Ok(old.buckets.iter().zip(target.buckets.iter()).collect())
}

/// The replication configuration of the target Region's `index`-th bucket built from
/// the spec, for when the old primary's Region does not answer and its rules cannot be
/// read: one rule per other Region's bucket at the same position, all objects, enabled,
/// in spec order (priority 1, 2, ...). Filters, delete-marker replication and
/// replication time control are unknown then, so S3's defaults apply; the outcome says
/// so. The role is the target bucket's `replication_role_arn`, which it then needs.
pub fn rules_from_spec(
    spec: &WorkloadSpec,
    target_region: &str,
    index: usize,
) -> Result<ReplicationConfiguration, Error> {
    let bucket = spec
        .region(target_region)
        .and_then(|r| r.buckets.get(index))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "target_region: `{target_region}` has no bucket {index}"
            ))
        })?;
    let role = bucket.replication_role_arn.as_deref().ok_or_else(|| {
        Error::InvalidInput(format!(
            "bucket `{}` has no replication_role_arn in the spec, and the old primary's rules cannot be read",
            bucket.name
        ))
    })?;
    let mut builder = ReplicationConfiguration::builder().role(role);
    let others = spec
        .regions
        .iter()
        .filter(|r| r.region != target_region)
        .filter_map(|r| r.buckets.get(index).map(|b| (r.region.as_str(), b)));
    for (priority, (region, dest)) in (1..).zip(others) {
        let rule = ReplicationRule::builder()
            .id(format!("lifeboat-to-{region}"))
            .priority(priority)
            .status(ReplicationRuleStatus::Enabled)
            .filter(ReplicationRuleFilter::builder().prefix("").build())
            .delete_marker_replication(
                DeleteMarkerReplication::builder()
                    .status(DeleteMarkerReplicationStatus::Disabled)
                    .build(),
            )
            .destination(
                Destination::builder()
                    .bucket(bucket_arn(&dest.name))
                    .build()
                    .map_err(|e| Error::InvalidInput(format!("bucket `{}`: {e}", dest.name)))?,
            )
            .build()
            .map_err(|e| Error::InvalidInput(format!("replication rule: {e}")))?;
        builder = builder.rules(rule);
    }
    builder
        .build()
        .map_err(|e| Error::InvalidInput(format!("replication configuration: {e}")))
}

/// Where `s3_flip` got the rules it put on a target bucket: recorded as `after.source`
/// in its audit event, read back by `s3_suspend_old`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleSource {
    /// The old primary's rules, mirrored (planned: read in the old Region).
    Mirror,
    /// The rules an earlier move left suspended on the target bucket, enabled again.
    Reenabled,
    /// Built from the spec ([`rules_from_spec`]): all objects, S3's defaults.
    Spec,
    /// Nothing put: no earlier rules on the bucket and no role in the spec to build
    /// them with; `s3_suspend_old` mirrors the old rules once the old Region answers.
    Deferred,
}

impl RuleSource {
    /// The word in the audit event.
    pub const fn as_str(self) -> &'static str {
        match self {
            RuleSource::Mirror => "mirror",
            RuleSource::Reenabled => "reenabled",
            RuleSource::Spec => "spec",
            RuleSource::Deferred => "deferred",
        }
    }

    /// The source an `s3_flip` audit event's `after` names; `None` for an event without
    /// one (written before sources were recorded) or none at all.
    pub fn of_event(after: Option<&serde_json::Value>) -> Option<RuleSource> {
        match after?.get("source")?.as_str()? {
            "mirror" => Some(RuleSource::Mirror),
            "reenabled" => Some(RuleSource::Reenabled),
            "spec" => Some(RuleSource::Spec),
            "deferred" => Some(RuleSource::Deferred),
            _ => None,
        }
    }

    /// Whether the target bucket still lacks the old rules' exact mirror: what
    /// `s3_suspend_old` puts when the old Region answers.
    pub const fn needs_mirror(source: Option<RuleSource>) -> bool {
        matches!(source, Some(RuleSource::Spec | RuleSource::Deferred))
    }
}

/// The target bucket's own rules with every one enabled again, when all of them are
/// suspended and, enabled, they replicate to the old primary: what an earlier move
/// away from this bucket left (the old rules' mirror, suspended by `s3_suspend_old`).
/// `None` otherwise.
pub fn reenabled(
    new_config: Option<&ReplicationConfiguration>,
    old_bucket: &str,
) -> Option<ReplicationConfiguration> {
    let c = new_config?;
    if c.rules.is_empty() || !all_suspended(c) {
        return None;
    }
    let mut next = c.clone();
    for rule in &mut next.rules {
        rule.status = ReplicationRuleStatus::Enabled;
    }
    is_flipped(Some(&next), old_bucket).then_some(next)
}

/// What an `s3_flip` puts on a target bucket without the old Region.
#[derive(Debug, Clone, PartialEq)]
pub enum Takeover {
    /// Put these rules.
    Put(ReplicationConfiguration, RuleSource),
    /// Put nothing now, for this reason.
    Deferred(String),
}

/// Decides an `s3_flip` of the target's `index`-th bucket from the target Region alone:
/// its own suspended rules enabled again ([`reenabled`]), else rules built from the spec
/// ([`rules_from_spec`]), else nothing (no role to build them with).
pub fn takeover(
    spec: &WorkloadSpec,
    target_region: &str,
    index: usize,
    new_config: Option<&ReplicationConfiguration>,
    old_bucket: &str,
) -> Takeover {
    if let Some(c) = reenabled(new_config, old_bucket) {
        return Takeover::Put(c, RuleSource::Reenabled);
    }
    match rules_from_spec(spec, target_region, index) {
        Ok(c) => Takeover::Put(c, RuleSource::Spec),
        Err(e) => Takeover::Deferred(e.to_string()),
    }
}

/// What suspending the old primary bucket's rules needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Suspension {
    /// The bucket has no replication configuration.
    NoRules,
    /// Every rule is disabled already.
    AlreadySuspended,
    /// Put this configuration (every rule `Disabled`).
    Suspend(ReplicationConfiguration),
}

/// Decides the suspension of the old primary bucket's `old` configuration.
pub fn suspension(old: Option<&ReplicationConfiguration>) -> Suspension {
    match old {
        None => Suspension::NoRules,
        Some(c) if all_suspended(c) => Suspension::AlreadySuspended,
        Some(c) => Suspension::Suspend(suspended(c)),
    }
}

/// `mode` is an input of `s3_flip` alone: refused on any other step, before anything
/// is read.
pub fn check_mode(req: &Request) -> Result<(), Error> {
    match (req.mode, req.step) {
        (
            Some(_),
            step @ (Step::RdsPromote
            | Step::RdsStatus
            | Step::AuroraSwitchover
            | Step::AuroraFailover
            | Step::AuroraStatus
            | Step::DynamodbVerify
            | Step::S3SuspendOld),
        ) => Err(Error::InvalidInput(format!(
            "mode: not an input of step `{}` (only s3_flip, rds_reprotect, aurora_reprotect, compute_scale and compute_status take one)",
            step.as_str()
        ))),
        _ => Ok(()),
    }
}

/// The Region a re-protection must not call: with `mode: unplanned`, the spec's
/// primary when it is not the target — the Region the failover moves away from (the
/// spec names it primary until finalize). A failback (target = the primary) or a
/// planned move skips nothing.
pub fn failed_region<'a>(spec: &'a WorkloadSpec, req: &Request) -> Option<&'a str> {
    if req.mode != Some(Mode::Unplanned) {
        return None;
    }
    spec.primary()
        .map(|p| p.region.as_str())
        .filter(|r| *r != req.target_region)
}

/// What the `read replication` status of an instance says (`StatusInfos`, RDS API
/// Reference, https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_DBInstanceStatusInfo.html):
/// `Some(true)` replicating normally, `Some(false)` an error (or stopped), `None`
/// not reported (not a replica, or not yet replicating).
pub fn replication_normal(infos: &[(String, String, bool)]) -> Option<bool> {
    infos
        .iter()
        .find(|(kind, _, _)| kind == "read replication")
        .map(|(_, status, normal)| *normal && status == "replicating")
}

/// The one-word state of a re-protection replica: `available` only when RDS reports it
/// available *and* replicating normally (it exists and follows the new writer);
/// `replication_error` when available but not replicating; else RDS's status
/// (`creating`, `backing-up`, ...).
pub fn replica_state(status: &str, replication: Option<bool>) -> String {
    match (status, replication) {
        ("available", Some(true)) => "available".to_owned(),
        ("available", Some(false)) => "replication_error".to_owned(),
        ("available", None) => "not_replicating_yet".to_owned(),
        (other, _) => other.to_owned(),
    }
}

/// The RDS instance references the re-protection replaces in the spec
/// (`(region, instance id)`): the replicas that followed the old primary (or the old
/// primary itself, in a failback's home Region). They are reported for cleanup and
/// never deleted by Lifeboat.
pub fn retired_replicas(
    spec: &WorkloadSpec,
    placed: &[(String, usize, String)],
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (region, index, id) in placed {
        let Some(r) = spec.region(region) else {
            continue;
        };
        let old = r
            .databases
            .iter()
            .filter_map(|d| match d {
                DatabaseRef::RdsInstance { instance_id, .. } => Some(instance_id),
                DatabaseRef::AuroraGlobal { .. } => None,
            })
            .nth(*index);
        if let Some(old) = old
            && old != id
        {
            out.push((region.clone(), old.clone()));
        }
    }
    out
}

/// How one other member of an Aurora global cluster stands after the move to
/// `target_arn`: `follows` (a reader of the new writer, the global cluster available
/// and no move pending), `writer` (still, or again, the writer: two writers would be
/// wrong), or `moving` (a move is pending).
pub fn aurora_follower(view: &GlobalView, target_arn: &str, member_arn: &str) -> &'static str {
    if view.members.iter().any(|(a, w)| a == member_arn && *w) {
        "writer"
    } else if !aurora_done(view, target_arn) {
        "moving"
    } else {
        "follows"
    }
}

/// Whether a DynamoDB table status means the replica serves in that Region.
pub fn table_active(status: &str) -> bool {
    status == "ACTIVE"
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_s3::types::{
        Metrics, MetricsStatus, ReplicationTime, ReplicationTimeStatus, ReplicationTimeValue,
        StorageClass,
    };
    use lifeboat::UnixMillis;
    use lifeboat::store::LeasePurpose;

    fn spec() -> WorkloadSpec {
        serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap()
    }

    fn req(step: Step, target: &str) -> Request {
        Request {
            workload: "checkout".into(),
            step,
            target_region: target.into(),
            epoch: 3,
            holder: "exec".into(),
            arbiter_region: None,
            mode: None,
        }
    }

    #[test]
    fn the_arbiter_region_must_be_a_region_code() {
        let mut r = req(Step::RdsReprotect, "eu-west-1");
        assert_eq!(arbiter_region(&r).unwrap(), None);
        r.arbiter_region = Some("us-east-1".into());
        assert_eq!(arbiter_region(&r).unwrap(), Some("us-east-1"));
        for bad in ["", "mars-north-1", "US-EAST-1", " us-east-1"] {
            r.arbiter_region = Some(bad.into());
            let err = arbiter_region(&r).unwrap_err();
            assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
            assert!(err.to_string().contains("arbiter_region"), "{err}");
        }
    }

    fn view(status: &str, source: Option<&str>) -> InstanceView {
        InstanceView {
            id: "db".into(),
            status: status.into(),
            source: source.map(Into::into),
            arn: None,
            engine: None,
            replication: None,
        }
    }

    #[test]
    fn a_step_applies_only_where_its_kind_of_resource_is() {
        let spec = spec();
        let eu = spec.region("eu-west-1").unwrap();
        // The example: RDS and S3 in every Region, no Aurora, no DynamoDB tables.
        assert!(applies(eu, Step::RdsPromote));
        assert!(applies(eu, Step::RdsStatus));
        assert!(applies(eu, Step::S3Flip));
        assert!(!applies(eu, Step::AuroraFailover));
        assert!(!applies(eu, Step::AuroraStatus));
        assert!(!applies(eu, Step::DynamodbVerify));
        let mut bare = eu.clone();
        bare.databases.clear();
        bare.buckets.clear();
        bare.dynamodb_tables = vec!["t".into()];
        assert!(
            Step::ALL
                .iter()
                .all(|s| applies(&bare, *s) == (*s == Step::DynamodbVerify))
        );
    }

    #[test]
    fn the_target_must_be_in_the_spec_and_not_the_primary_for_a_move() {
        let spec = spec();
        let err = target(&spec, &req(Step::RdsPromote, "eu-central-1")).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(err.to_string().contains("eu-central-1"), "{err}");
        for step in Step::ALL {
            let res = target(&spec, &req(step, "us-east-1"));
            assert_eq!(res.is_err(), step.moves_the_writer(), "{step:?}");
            assert!(target(&spec, &req(step, "eu-west-1")).is_ok());
        }
    }

    #[test]
    fn the_epoch_and_holder_must_be_the_leases() {
        let lease = Lease {
            workload: "checkout".into(),
            holder: "exec".into(),
            purpose: LeasePurpose::Failover,
            epoch: 4,
            acquired_at: UnixMillis(0),
            expires_at: UnixMillis(1),
        };
        let fence = |epoch: u64, holder: &str| Fence {
            epoch,
            holder: holder.into(),
        };
        assert!(check_epoch("checkout", &fence(4, "exec"), Some(&lease)).is_ok());
        for (presented, lease) in [
            (fence(3, "exec"), Some(&lease)),
            (fence(5, "exec"), Some(&lease)),
            (fence(4, "exec"), None),
            (fence(4, "another-exec"), Some(&lease)),
        ] {
            let err = check_epoch("checkout", &presented, lease).unwrap_err();
            assert_eq!(err.name(), lifeboat::ErrorName::StaleEpoch);
        }
    }

    #[test]
    fn promote_only_a_replica_not_yet_asked() {
        assert_eq!(
            promote_action(&view("available", None), false),
            PromoteAction::AlreadyStandalone
        );
        assert_eq!(
            promote_action(&view("available", Some("arn")), true),
            PromoteAction::AlreadyRequested
        );
        assert_eq!(
            promote_action(&view("available", Some("arn")), false),
            PromoteAction::Promote
        );
        assert_eq!(
            instance_status(&view("available", Some("a"))),
            "replicating"
        );
        assert_eq!(instance_status(&view("modifying", Some("a"))), "modifying");
        assert_eq!(instance_status(&view("available", None)), "available");
        assert!(refusal_means_in_progress(&view("modifying", Some("a"))));
        assert!(!refusal_means_in_progress(&view("available", Some("a"))));
    }

    #[test]
    fn replica_ids_are_deterministic_valid_rds_identifiers() {
        assert_eq!(
            replica_id("checkout-db-replica-euw1", "us-east-1", 7),
            "checkout-db-replica-euw1-us-east-1-e7"
        );
        assert_eq!(
            replica_id("9_DB--x", "eu-west-1", 1),
            "db-9-db-x-eu-west-1-e1"
        );
        let long = replica_id(&"a".repeat(80), "ap-southeast-1", 123);
        assert_eq!(long.len(), 63);
        assert!(long.ends_with("-ap-southeast-1-e123"));
    }

    #[test]
    fn reprotect_replaces_the_regions_rds_refs_once() {
        let spec = spec();
        let placed = vec![
            ("us-east-1".to_owned(), 0, "new-use1".to_owned()),
            ("ap-southeast-1".to_owned(), 0, "new-apse1".to_owned()),
        ];
        let engines = vec![Some("postgres".to_owned())];
        let next = record_replicas(&spec, &engines, &placed).unwrap();
        assert_eq!(
            next.region("us-east-1").unwrap().databases,
            [DatabaseRef::RdsInstance {
                instance_id: "new-use1".into(),
                engine: Some("postgres".into())
            }]
        );
        assert_eq!(
            next.region("eu-west-1").unwrap().databases,
            spec.region("eu-west-1").unwrap().databases
        );
        assert_eq!(record_replicas(&next, &engines, &placed), None);
    }

    #[test]
    fn an_unplanned_reprotect_skips_the_region_failed_away_from_only() {
        let spec = spec();
        let mut r = req(Step::RdsReprotect, "eu-west-1");
        assert_eq!(failed_region(&spec, &r), None);
        r.mode = Some(Mode::Planned);
        assert_eq!(failed_region(&spec, &r), None);
        r.mode = Some(Mode::Unplanned);
        assert_eq!(failed_region(&spec, &r), Some("us-east-1"));
        assert!(check_mode(&r).is_ok());
        // A failback re-protects from the primary: nothing to skip.
        let back = Request {
            target_region: "us-east-1".into(),
            ..r.clone()
        };
        assert_eq!(failed_region(&spec, &back), None);
        r.step = Step::RdsPromote;
        assert!(check_mode(&r).is_err());
    }

    #[test]
    fn a_replica_is_done_only_when_available_and_replicating() {
        let ok = |s: &str, n: bool| vec![("read replication".to_owned(), s.to_owned(), n)];
        assert_eq!(replication_normal(&ok("replicating", true)), Some(true));
        assert_eq!(replication_normal(&ok("error", false)), Some(false));
        assert_eq!(replication_normal(&[]), None);
        assert_eq!(replica_state("available", Some(true)), "available");
        assert_eq!(replica_state("available", Some(false)), "replication_error");
        assert_eq!(replica_state("available", None), "not_replicating_yet");
        assert_eq!(replica_state("creating", None), "creating");
    }

    #[test]
    fn the_refs_a_reprotect_replaces_are_reported_for_cleanup() {
        let spec = spec();
        let old = match &spec.region("ap-southeast-1").unwrap().databases[0] {
            DatabaseRef::RdsInstance { instance_id, .. } => instance_id.clone(),
            DatabaseRef::AuroraGlobal { .. } => panic!("example has RDS"),
        };
        let placed = vec![("ap-southeast-1".to_owned(), 0, "new-apse1".to_owned())];
        assert_eq!(
            retired_replicas(&spec, &placed),
            [("ap-southeast-1".to_owned(), old.clone())]
        );
        let same = vec![("ap-southeast-1".to_owned(), 0, old)];
        assert!(retired_replicas(&spec, &same).is_empty());
    }

    #[test]
    fn aurora_followers_are_readers_of_the_new_writer() {
        let after = global(&[(USE1, false), (EUW1, true)], None);
        assert_eq!(aurora_follower(&after, EUW1, USE1), "follows");
        let two = global(&[(USE1, true), (EUW1, true)], None);
        assert_eq!(aurora_follower(&two, EUW1, USE1), "writer");
        let moving = global(&[(USE1, false), (EUW1, true)], Some(("pending", EUW1)));
        assert_eq!(aurora_follower(&moving, EUW1, USE1), "moving");
    }

    fn global(members: &[(&str, bool)], failover: Option<(&str, &str)>) -> GlobalView {
        GlobalView {
            status: if failover.is_some() {
                "switching-over".into()
            } else {
                "available".into()
            },
            members: members.iter().map(|(a, w)| ((*a).to_owned(), *w)).collect(),
            failover: failover.map(|(s, to)| (s.to_owned(), Some(to.to_owned()))),
        }
    }

    const USE1: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-use1";
    const EUW1: &str = "arn:aws:rds:eu-west-1:123456789012:cluster:orders-euw1";

    #[test]
    fn aurora_moves_only_when_the_target_is_neither_writer_nor_on_its_way() {
        let before = global(&[(USE1, true), (EUW1, false)], None);
        assert_eq!(member_arn(&before, "eu-west-1", "orders-euw1"), Some(EUW1));
        assert_eq!(member_arn(&before, "eu-west-1", "orders-use1"), None);
        assert_eq!(aurora_action(&before, EUW1), AuroraAction::Move);
        assert!(!aurora_done(&before, EUW1));
        let moving = global(&[(USE1, true), (EUW1, false)], Some(("pending", EUW1)));
        assert_eq!(aurora_action(&moving, EUW1), AuroraAction::InProgress);
        assert!(!aurora_done(&moving, EUW1));
        let elsewhere = global(&[(USE1, true), (EUW1, false)], Some(("pending", USE1)));
        assert_eq!(aurora_action(&elsewhere, EUW1), AuroraAction::Move);
        let after = global(&[(USE1, false), (EUW1, true)], None);
        assert_eq!(aurora_action(&after, EUW1), AuroraAction::AlreadyWriter);
        assert!(aurora_done(&after, EUW1));
    }

    fn rule(id: &str, priority: i32, dest: &str, prefix: &str) -> ReplicationRule {
        ReplicationRule::builder()
            .id(id)
            .priority(priority)
            .status(ReplicationRuleStatus::Enabled)
            .filter(ReplicationRuleFilter::builder().prefix(prefix).build())
            .delete_marker_replication(
                DeleteMarkerReplication::builder()
                    .status(DeleteMarkerReplicationStatus::Enabled)
                    .build(),
            )
            .destination(
                Destination::builder()
                    .bucket(bucket_arn(dest))
                    .storage_class(StorageClass::StandardIa)
                    .replication_time(
                        ReplicationTime::builder()
                            .status(ReplicationTimeStatus::Enabled)
                            .time(ReplicationTimeValue::builder().minutes(15).build())
                            .build()
                            .unwrap(),
                    )
                    .metrics(
                        Metrics::builder()
                            .status(MetricsStatus::Enabled)
                            .event_threshold(ReplicationTimeValue::builder().minutes(15).build())
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn mirroring_keeps_every_setting_and_points_back_at_the_old_primary() {
        let old = ReplicationConfiguration::builder()
            .role("arn:aws:iam::1:role/old")
            .rules(rule("to-euw1", 1, "b-euw1", "receipts/"))
            .rules(rule("to-apse1", 2, "b-apse1", ""))
            .build()
            .unwrap();
        let mirrored = mirror_rules(&old, "b-use1", "b-euw1", Some("arn:aws:iam::1:role/new"));
        assert_eq!(mirrored.role, "arn:aws:iam::1:role/new");
        let mut expected = old.clone();
        expected.role = "arn:aws:iam::1:role/new".into();
        expected.rules[0].destination.as_mut().unwrap().bucket = bucket_arn("b-use1");
        assert_eq!(mirrored, expected);
        assert!(is_flipped(Some(&mirrored), "b-use1"));
        assert!(!is_flipped(Some(&old), "b-use1"));
        assert!(!is_flipped(None, "b-use1"));
        assert_eq!(mirror_rules(&old, "b-use1", "b-euw1", None).role, old.role);
        assert_eq!(
            mirror_for_flip(&old, "b-use1", "b-euw1", None, "us-east-1").unwrap(),
            mirror_rules(&old, "b-use1", "b-euw1", None)
        );
        let err = mirror_for_flip(&old, "b-use1", "b-other", None, "us-east-1").unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::ResourceNotFound);
        let off = suspended(&old);
        assert!(all_suspended(&off));
        // Rules a failover suspended still name the old primary: not a flip (failback).
        assert!(!is_flipped(Some(&suspended(&mirrored)), "b-use1"));
        assert!(!all_suspended(&old));
        assert_eq!(off.rules[0].filter, old.rules[0].filter);
    }

    #[test]
    fn without_the_old_region_the_rules_come_from_the_spec() {
        let spec = spec();
        let c = rules_from_spec(&spec, "eu-west-1", 0).unwrap();
        assert_eq!(
            c.role,
            "arn:aws:iam::123456789012:role/checkout-s3-replication"
        );
        let dests: Vec<(&str, Option<i32>)> = c
            .rules
            .iter()
            .map(|r| (r.destination.as_ref().unwrap().bucket.as_str(), r.priority))
            .collect();
        assert_eq!(
            dests,
            [
                ("arn:aws:s3:::checkout-receipts-use1", Some(1)),
                ("arn:aws:s3:::checkout-receipts-apse1", Some(2))
            ]
        );
        assert!(is_flipped(Some(&c), "checkout-receipts-use1"));
        let mut no_role = spec.clone();
        no_role.regions[1].buckets[0].replication_role_arn = None;
        assert!(rules_from_spec(&no_role, "eu-west-1", 0).is_err());
    }

    fn three_rules(old: &str, third: &str) -> ReplicationConfiguration {
        ReplicationConfiguration::builder()
            .role("arn:aws:iam::1:role/euw1")
            .rules(rule("to-use1", 1, old, "receipts/"))
            .rules(rule("to-apse1", 2, third, ""))
            .build()
            .unwrap()
    }

    #[test]
    fn a_bucket_left_suspended_by_an_earlier_move_is_enabled_again_exactly() {
        let earlier = three_rules("b-use1", "b-apse1");
        let left = suspended(&earlier);
        assert_eq!(reenabled(Some(&left), "b-use1"), Some(earlier.clone()));
        // Enabled rules, no rules, or rules that do not reach the old primary: no.
        assert_eq!(reenabled(Some(&earlier), "b-use1"), None);
        assert_eq!(reenabled(None, "b-use1"), None);
        assert_eq!(reenabled(Some(&left), "b-other"), None);
        let empty = ReplicationConfiguration::builder()
            .role("r")
            .set_rules(Some(vec![]))
            .build()
            .unwrap();
        assert_eq!(reenabled(Some(&empty), "b-use1"), None);
    }

    #[test]
    fn an_unplanned_flip_uses_the_target_region_alone() {
        let spec = spec();
        let old = "checkout-receipts-use1";
        let earlier = suspended(&three_rules(old, "checkout-receipts-apse1"));
        match takeover(&spec, "eu-west-1", 0, Some(&earlier), old) {
            Takeover::Put(c, RuleSource::Reenabled) => assert!(is_flipped(Some(&c), old)),
            other => panic!("{other:?}"),
        }
        match takeover(&spec, "eu-west-1", 0, None, old) {
            Takeover::Put(c, RuleSource::Spec) => {
                assert_eq!(c, rules_from_spec(&spec, "eu-west-1", 0).unwrap());
            }
            other => panic!("{other:?}"),
        }
        let mut no_role = spec.clone();
        no_role.regions[1].buckets[0].replication_role_arn = None;
        match takeover(&no_role, "eu-west-1", 0, None, old) {
            Takeover::Deferred(why) => assert!(why.contains("replication_role_arn"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_source_of_a_flip_is_read_back_from_its_event() {
        for source in [
            RuleSource::Mirror,
            RuleSource::Reenabled,
            RuleSource::Spec,
            RuleSource::Deferred,
        ] {
            let after = serde_json::json!({"bucket": "b", "source": source.as_str()});
            assert_eq!(RuleSource::of_event(Some(&after)), Some(source));
        }
        assert_eq!(RuleSource::of_event(None), None);
        assert_eq!(
            RuleSource::of_event(Some(&serde_json::json!({"bucket": "b"}))),
            None
        );
        assert!(RuleSource::needs_mirror(Some(RuleSource::Spec)));
        assert!(RuleSource::needs_mirror(Some(RuleSource::Deferred)));
        assert!(!RuleSource::needs_mirror(Some(RuleSource::Mirror)));
        assert!(!RuleSource::needs_mirror(Some(RuleSource::Reenabled)));
        assert!(!RuleSource::needs_mirror(None));
    }

    #[test]
    fn suspension_puts_only_what_is_still_enabled() {
        let old = three_rules("b-use1", "b-apse1");
        assert_eq!(suspension(None), Suspension::NoRules);
        assert_eq!(
            suspension(Some(&suspended(&old))),
            Suspension::AlreadySuspended
        );
        assert_eq!(suspension(Some(&old)), Suspension::Suspend(suspended(&old)));
    }

    #[test]
    fn mode_is_an_input_of_s3_flip_alone() {
        let mut r = req(Step::S3Flip, "eu-west-1");
        r.mode = Some(crate::request::Mode::Planned);
        assert!(check_mode(&r).is_ok());
        r.step = Step::S3SuspendOld;
        let err = check_mode(&r).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(err.to_string().contains("mode"), "{err}");
        r.mode = None;
        assert!(check_mode(&r).is_ok());
    }

    #[test]
    fn buckets_pair_by_position() {
        let spec = spec();
        let pairs = bucket_pairs(
            spec.region("us-east-1").unwrap(),
            spec.region("eu-west-1").unwrap(),
        )
        .unwrap();
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].0.name, "checkout-receipts-use1");
        assert_eq!(pairs[0].1.name, "checkout-receipts-euw1");
        let mut bad = spec.clone();
        bad.regions[1].buckets.clear();
        assert!(
            bucket_pairs(
                bad.region("us-east-1").unwrap(),
                bad.region("eu-west-1").unwrap()
            )
            .is_err()
        );
    }
}
