//! What a state machine sends and what it gets back.

use serde::{Deserialize, Serialize};

/// One step of the data-tier failover. The state machine names it in `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// PromoteReadReplica on every RDS instance of the target Region.
    RdsPromote,
    /// Whether every RDS instance of the target Region is a standalone, available writer.
    RdsStatus,
    /// New cross-Region read replicas of the target Region's instances in every other
    /// Region (with `mode: unplanned`, every other *surviving* Region: never the Region
    /// failed away from), recorded in the spec under the epoch fence; the replicas they
    /// replace in the spec are reported for cleanup, never deleted. Done once every
    /// replica is available and replicating.
    RdsReprotect,
    /// Planned Aurora global move: SwitchoverGlobalCluster (RPO 0).
    AuroraSwitchover,
    /// Unplanned Aurora global move: FailoverGlobalCluster with AllowDataLoss.
    AuroraFailover,
    /// Whether the target Region's cluster is the global cluster's writer.
    AuroraStatus,
    /// After an Aurora move: whether every other member of the global cluster follows
    /// the target's cluster (DescribeGlobalClusters in the target Region; nothing to
    /// create: Aurora's secondaries follow the new writer by themselves).
    AuroraReprotect,
    /// Make the target Region's buckets replicate to the other Regions. Unplanned (the
    /// default): through the target Region alone — the rules a suspended earlier flip
    /// left on the bucket, enabled again, or rules built from the spec. Planned: the old
    /// primary's rules mirrored (read in the old Region, best effort). Never touches the
    /// old primary's rules: see [`Step::S3SuspendOld`].
    S3Flip,
    /// Whether the target Region's DynamoDB (global) tables are ACTIVE there.
    DynamodbVerify,
    /// Best effort, after traffic has moved: suspend the old primary buckets' rules in
    /// the old Region (short timeouts, one retry), and when this epoch's `s3_flip` had to
    /// build the target's rules from the spec, replace them with the old rules' exact
    /// mirror. A Region that does not answer is reported (and an audit event), never an
    /// error.
    S3SuspendOld,
    /// Scale the target Region's compute (Auto Scaling groups, ECS services) to what
    /// `policy.compute` says, in parallel with the data tier and before traffic moves;
    /// never scales down. Records the targets and the start of the bounded wait (audit
    /// event `compute_scale_requested`). Done once every resource is in service.
    ComputeScale,
    /// Whether the target's compute is in service (instances `InService`, tasks
    /// running) at the targets `compute_scale` recorded. After
    /// `policy.compute.max_wait_seconds`: `VerificationFailed`, except that an
    /// `unplanned` move goes on (`below_target`, audit event `compute_below_target`)
    /// when every resource has `min_success_percent` of its target. Absent `mode`: planned.
    ComputeStatus,
    /// After a failback's traffic has left it: the target Region (the former standby the
    /// failover scaled up) back to its standby size, `policy.compute.standby` (pilot
    /// light: each resource's minimum, Auto Scaling `MinSize` or 0 tasks; warm standby:
    /// that percent of `full_capacity`, never below `MinSize`). Never scales up. Records
    /// audit event `compute_standby_requested`; done at once (capacity drains by itself).
    ComputeStandby,
}

impl Step {
    /// Every step, in the order a failover runs them.
    pub const ALL: [Step; 13] = [
        Step::RdsPromote,
        Step::RdsStatus,
        Step::RdsReprotect,
        Step::AuroraSwitchover,
        Step::AuroraFailover,
        Step::AuroraStatus,
        Step::AuroraReprotect,
        Step::S3Flip,
        Step::DynamodbVerify,
        Step::S3SuspendOld,
        Step::ComputeScale,
        Step::ComputeStatus,
        Step::ComputeStandby,
    ];

    /// The step's name as it appears in `step`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Step::RdsPromote => "rds_promote",
            Step::RdsStatus => "rds_status",
            Step::RdsReprotect => "rds_reprotect",
            Step::AuroraSwitchover => "aurora_switchover",
            Step::AuroraFailover => "aurora_failover",
            Step::AuroraStatus => "aurora_status",
            Step::AuroraReprotect => "aurora_reprotect",
            Step::S3Flip => "s3_flip",
            Step::DynamodbVerify => "dynamodb_verify",
            Step::S3SuspendOld => "s3_suspend_old",
            Step::ComputeScale => "compute_scale",
            Step::ComputeStatus => "compute_status",
            Step::ComputeStandby => "compute_standby",
        }
    }

    /// Steps that move the writer away from the primary: their target must not be the
    /// primary already.
    pub const fn moves_the_writer(self) -> bool {
        matches!(
            self,
            Step::RdsPromote
                | Step::AuroraSwitchover
                | Step::AuroraFailover
                | Step::S3Flip
                | Step::S3SuspendOld
        )
    }
}

/// How `s3_flip` may reach the old primary (failover-executor's `decision.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Both Regions are up (a planned failover, a failback): the old primary's rules are
    /// read there and mirrored.
    Planned,
    /// The old primary is failing: nothing outside the target Region is called.
    Unplanned,
}

/// The input of every step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// Workload id.
    pub workload: String,
    /// Which step.
    pub step: Step,
    /// The Region that becomes (or became) the writer.
    pub target_region: String,
    /// The fencing epoch of the lease the caller holds.
    pub epoch: u64,
    /// The lease's holder (the machine passes its `$$.Execution.Id`): the fence checks
    /// it beside the epoch.
    pub holder: String,
    /// The arbiter Region (failover-executor's `decision.arbiter_region`): the lease is
    /// checked, and the spec read and written and the audit events appended, in this
    /// Region's table replica. Absent: the function's own Region's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arbiter_region: Option<String>,
    /// `s3_flip`: `planned` or `unplanned` (absent: `unplanned`, nothing outside the
    /// target Region). `rds_reprotect` / `aurora_reprotect`: `unplanned` means the
    /// spec's primary, when it is not the target (the Region failed away from, before
    /// finalize), is never called and is reported `skipped_failed_region`; absent or
    /// `planned`: every other Region (a failback's re-protection).
    /// `compute_scale`: `planned` reads what the left Region runs there (best effort);
    /// `unplanned` uses its declared `full_capacity`. `compute_status`: only `unplanned`
    /// may go on below target (absent: planned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
}

impl Request {
    /// The fence this request presents: its epoch and holder.
    pub fn fence(&self) -> lifeboat::store::Fence {
        lifeboat::store::Fence {
            epoch: self.epoch,
            holder: self.holder.clone(),
        }
    }
}

/// What happened to one resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceOutcome {
    /// `rds_instance`, `aurora_cluster`, `s3_bucket` or `dynamodb_table`.
    pub kind: String,
    /// Its identifier.
    pub id: String,
    /// Its Region.
    pub region: String,
    /// What the step did: e.g. `promotion_requested`, `already_standalone`,
    /// `replica_created`, `replica_exists`, `unreachable`, `checked`.
    pub action: String,
    /// The state AWS reports (e.g. `available`, `modifying`, `ACTIVE`).
    pub status: String,
    /// Anything else worth routing on or reading.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The output of every step: a state machine routes on `done` (Wait and loop while
/// false) and logs the rest.
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
    /// Whether the step's end state is reached (e.g. the promoted instance is available).
    pub done: bool,
    /// One word for the whole step (e.g. `promoting`, `available`, `flipped`).
    pub status: String,
    /// True when the step had nothing left to do: the same input ran before (or the
    /// world was already so). Read-only steps (`rds_status`, `aurora_status`,
    /// `dynamodb_verify`) change nothing and report `true`.
    pub already_done: bool,
    /// Per resource.
    pub resources: Vec<ResourceOutcome>,
    /// Aurora only: whether the move may lose data (FailoverGlobalCluster with
    /// AllowDataLoss). Also stated in the audit event the step writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_loss_allowed: Option<bool>,
    /// `s3_suspend_old` only: whether the old primary's rules are suspended (or it has
    /// none); `false` when the old Region did not answer or refused (then
    /// `resources[].detail` says why, and a `s3_old_rules_not_suspended` audit event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_rules_suspended: Option<bool>,
    /// RDS reprotect only: the spec version after recording the new replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<u64>,
    /// Compute steps only: milliseconds since the scale request (`compute_status`; 0
    /// when `compute_scale` found the capacity already in service). Once `done`, how
    /// long the target's compute took to come into service, to within a status poll.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
}
