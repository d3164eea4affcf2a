//! The deployment model: one workload's Regions, what runs in each, and the policy that
//! governs failover. Stored as the `SPEC` item (README, "The table"), read by every function.
//!
//! [`WorkloadSpec::validate`] returns every problem at once, so an operator fixes a spec
//! in one pass; [`WorkloadSpec::check`] turns problems into [`Error::InvalidModel`].

use std::collections::HashSet;
use std::fmt;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::regions;
use crate::time::UnixMillis;

/// One workload: the unit Lifeboat fails over.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadSpec {
    /// Stable id; the table key is `WORKLOAD#<workload>`.
    pub workload: String,
    /// Free text for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The disaster-recovery pattern.
    pub pattern: DrPattern,
    /// Every Region the workload uses.
    pub regions: Vec<RegionSpec>,
    /// How failover is governed.
    pub policy: Policy,
    /// Optimistic-concurrency version; the store sets it, every write is conditional on it.
    #[serde(default)]
    pub version: u64,
}

/// Disaster-recovery pattern, from cheapest to fastest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DrPattern {
    /// Data backed up to other Regions; infrastructure built on failover.
    BackupRestore,
    /// Data replicated; core infrastructure off or scaled to zero elsewhere.
    PilotLight,
    /// A scaled-down full copy running elsewhere.
    WarmStandby,
    /// Every Region serves traffic.
    ActiveActive,
}

impl DrPattern {
    /// Active/passive patterns have exactly one primary that serves writes.
    pub fn is_active_passive(self) -> bool {
        !matches!(self, DrPattern::ActiveActive)
    }
}

/// A Region's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Holds the writer; at most one.
    Primary,
    /// Serves (reads or traffic share) and is first in line for failover.
    Secondary,
    /// Takes no traffic until promoted.
    Standby,
}

/// One Region of a workload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionSpec {
    /// Region code, e.g. `eu-west-1`.
    pub region: String,
    /// Role in the workload.
    pub role: Role,
    /// Share of traffic in percent (0–100).
    #[serde(default)]
    pub weight: u32,
    /// Endpoints the health probe checks.
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Route 53 records that send traffic here.
    #[serde(default)]
    pub dns: Vec<DnsRecord>,
    /// The CloudWatch metric and alarm a Route 53 health check watches (README, "traffic-shifter — traffic").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_switch: Option<RoutingSwitch>,
    /// Databases of the workload in this Region.
    #[serde(default)]
    pub databases: Vec<DatabaseRef>,
    /// S3 buckets of the workload in this Region.
    #[serde(default)]
    pub buckets: Vec<BucketRef>,
    /// DynamoDB (global) tables of the workload in this Region.
    #[serde(default)]
    pub dynamodb_tables: Vec<String>,
    /// CloudWatch alarms whose state counts toward this Region's health.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// Compute of the workload in this Region (issue #15): what a failover into this
    /// Region scales out before traffic moves (replica-promoter `compute_scale`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub compute: Vec<ComputeRef>,
    /// How deploy-wave rolls a version out here (blue/green records, gate metrics) and
    /// the version serving; absent when the Region is not deployed in waves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeploySpec>,
    /// Set while a failed serving secondary is out of traffic (its switch off, weight 0):
    /// the weight it had, to restore. Written by failover-executor's drain and restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drained: Option<Drained>,
}

/// A serving secondary taken out of traffic because Lifeboat's probes saw it fail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Drained {
    /// Its weight before the drain: what a restore gives back (and takes, in the same
    /// proportion, from the Regions that received it).
    pub weight: u32,
    /// When it was drained.
    pub since: crate::UnixMillis,
    /// Why: the alarm and the verdict behind it.
    pub reason: String,
}

/// A Region's blue/green deploy wiring (deploy-wave): a pair of weighted records, one
/// per slot, the CloudWatch metrics the gates read, and which version serves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploySpec {
    /// Hosted zone of the weighted record pair.
    pub hosted_zone_id: String,
    /// Name of the weighted record pair, e.g. `use1.api.checkout.example.com`.
    pub record_name: String,
    /// The blue target.
    pub blue: DeploySlot,
    /// The green target.
    pub green: DeploySlot,
    /// The slot that serves `version` (default `blue`); a deploy goes to the other one.
    #[serde(default)]
    pub live: Slot,
    /// The version serving in this Region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// The version before the last finished deploy (what a rollback returns to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_version: Option<String>,
    /// The metrics the gates read.
    pub metrics: DeployMetrics,
    /// Alarms (in this Region) that fail a gate when in `ALARM`.
    #[serde(default)]
    pub alarms: Vec<String>,
    /// The rollout in progress, or the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<Rollout>,
}

impl DeploySpec {
    /// The slot's wiring.
    pub fn slot(&self, slot: Slot) -> &DeploySlot {
        match slot {
            Slot::Blue => &self.blue,
            Slot::Green => &self.green,
        }
    }
}

/// One of a Region's two deploy targets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploySlot {
    /// Set identifier of its weighted record.
    pub set_identifier: String,
    /// Dimensions that select this slot's metrics, added to every gate metric's own.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
}

/// Blue or green.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    /// Blue.
    #[default]
    Blue,
    /// Green.
    Green,
}

impl Slot {
    /// The other slot.
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    /// `blue` or `green`.
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }
}

/// The CloudWatch metrics deploy gates read (latency values in milliseconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployMetrics {
    /// Failed requests (statistic default `Sum`).
    pub errors: MetricQuery,
    /// All requests (statistic default `Sum`); error rate = errors / requests.
    pub requests: MetricQuery,
    /// p95 latency (statistic default `p95`).
    pub latency_p95: MetricQuery,
    /// p99 latency (statistic default `p99`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99: Option<MetricQuery>,
}

/// A CloudWatch metric and the statistic to read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricQuery {
    /// Namespace.
    pub namespace: String,
    /// Metric name.
    pub metric_name: String,
    /// Dimensions (the slot's are added).
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// Statistic (`Sum`, `Average`, `Maximum`, `p95`, ...); absent: the metric's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
}

/// Where a Region's rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Planned, no traffic moved yet.
    Pending,
    /// Traffic moving to the new slot stage by stage.
    Shifting,
    /// Every stage passed: the new slot is live.
    Promoted,
    /// Traffic returned to the old slot.
    RolledBack,
    /// Not deployed (drained Region).
    Skipped,
}

/// Metric values a gate measured (or a baseline).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GateValues {
    /// Requests in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<f64>,
    /// Failed requests in the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<f64>,
    /// errors / requests (0.001 = 0.1 %).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// p95 latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_ms: Option<f64>,
    /// p99 latency, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// Gate alarms in `ALARM`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alarms_in_alarm: Vec<String>,
}

/// One gate evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateRecord {
    /// Stage index.
    pub stage: usize,
    /// Traffic percent on the new slot during the bake.
    pub percent: u32,
    /// Bake round of the stage (0 first; more when inconclusive).
    pub round: u32,
    /// When evaluated.
    pub at: UnixMillis,
    /// Seconds of metrics read (the bake).
    pub window_seconds: u64,
    /// `promote`, `extend` or `rollback`.
    pub verdict: String,
    /// What was measured.
    pub values: GateValues,
    /// Why, one line per finding.
    #[serde(default)]
    pub reasons: Vec<String>,
}

/// A Region's rollout of one deploy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    /// The deploy (execution name).
    pub deploy_id: String,
    /// The version rolled out.
    pub version: String,
    /// The version it replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_version: Option<String>,
    /// The slot receiving the new version.
    pub slot: Slot,
    /// Where it stands.
    pub state: RolloutState,
    /// Traffic percent on the new slot at each stage, ending at 100.
    pub steps: Vec<u32>,
    /// Index of the stage in progress (or next).
    #[serde(default)]
    pub stage: usize,
    /// Traffic percent on the new slot as last set.
    #[serde(default)]
    pub percent: u32,
    /// The Region's pre-deploy baseline (the live slot before the deploy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<GateValues>,
    /// Alarms already in ALARM at the start, allowed by the operator: reported, not gated on.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored_alarms: Vec<String>,
    /// Every gate evaluation, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gates: Vec<GateRecord>,
    /// When the rollout was planned.
    pub started_at: UnixMillis,
    /// When traffic first moved.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_started_at: Option<UnixMillis>,
    /// When it was promoted, rolled back or skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<UnixMillis>,
    /// Why it ended as it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// An HTTP(S) endpoint to probe.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Absolute http or https URL.
    pub url: String,
    /// Status that means healthy.
    #[serde(default = "default_status")]
    pub expected_status: u16,
    /// Text the body must contain, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// Per-probe timeout.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

/// A Route 53 record that routes to a Region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// Hosted zone id.
    pub hosted_zone_id: String,
    /// Record name, e.g. `api.example.com`.
    pub record_name: String,
    /// Set identifier of the failover/weighted record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    /// Health check attached to the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_id: Option<String>,
}

/// The data-plane switch of a Region: a metric whose alarm a Route 53 health check of
/// type `CLOUDWATCH_METRIC` watches. Flipping the metric moves DNS with no Route 53 call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoutingSwitch {
    /// Region where the metric and alarm live. For the primary it should be another
    /// Region, so the switch can be flipped while the primary is down.
    pub region: String,
    /// Metric namespace.
    #[serde(default = "default_switch_namespace")]
    pub namespace: String,
    /// Metric name.
    pub metric_name: String,
    /// Metric dimensions.
    #[serde(default)]
    pub dimensions: Vec<Dimension>,
    /// Alarm on the metric that the health check watches.
    pub alarm_name: String,
}

/// A CloudWatch dimension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dimension {
    /// Dimension name.
    pub name: String,
    /// Dimension value.
    pub value: String,
}

/// A database of the workload in one Region.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DatabaseRef {
    /// An RDS DB instance: the primary, or a cross-Region read replica.
    RdsInstance {
        /// DB instance identifier in this Region.
        instance_id: String,
        /// Engine, e.g. `postgres`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        engine: Option<String>,
    },
    /// A member cluster of an Aurora global database.
    AuroraGlobal {
        /// Global cluster identifier (the same in every Region).
        global_cluster_id: String,
        /// This Region's DB cluster identifier.
        cluster_id: String,
    },
}

/// An S3 bucket of the workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketRef {
    /// Bucket name.
    pub name: String,
    /// IAM role S3 replication assumes when this bucket is the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_role_arn: Option<String>,
}

// ----------------------------------------------------------------------------- compute
/// One piece of a Region's compute: a tier (the same `tier` in every Region names the
/// same capacity, so a failover knows what the Region it leaves ran) and the resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputeRef {
    /// The tier, e.g. `web`: pairs this resource with the same tier in other Regions.
    pub tier: String,
    /// The resource in this Region.
    #[serde(flatten)]
    pub resource: ComputeResource,
    /// The capacity (instances or tasks) this tier runs here when the Region carries the
    /// whole load: what a failover away from this Region reads as "what it ran" when the
    /// Region cannot be asked (an unplanned failover never calls the failed Region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_capacity: Option<u32>,
}

/// A resource whose capacity a failover scales.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ComputeResource {
    /// An EC2 Auto Scaling group: capacity = instances `InService`.
    AutoScalingGroup {
        /// Auto Scaling group name in this Region.
        name: String,
    },
    /// An ECS service: capacity = running tasks.
    EcsService {
        /// Cluster name or ARN.
        cluster: String,
        /// Service name.
        service: String,
    },
}

impl ComputeResource {
    /// `auto_scaling_group` or `ecs_service`.
    pub fn kind(&self) -> &'static str {
        match self {
            ComputeResource::AutoScalingGroup { .. } => "auto_scaling_group",
            ComputeResource::EcsService { .. } => "ecs_service",
        }
    }

    /// The resource's id as the audit log and outcomes name it (`cluster/service` for ECS).
    pub fn id(&self) -> String {
        match self {
            ComputeResource::AutoScalingGroup { name } => name.clone(),
            ComputeResource::EcsService { cluster, service } => format!("{cluster}/{service}"),
        }
    }
}

/// How big standby compute is and what a failover scales it to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComputePolicy {
    /// The size a standby Region keeps (pilot light: its minimum; warm standby: a share).
    #[serde(default)]
    pub standby: StandbySize,
    /// What a failover scales the target's compute to before traffic moves.
    #[serde(default)]
    pub failover_to: ScaleTarget,
    /// An unplanned failover whose compute has not reached its target after
    /// `max_wait_seconds` proceeds when every resource has at least this percent of its
    /// target in service (recorded and warned); below it the run fails. Default 80, as
    /// ARC Region switch's ungraceful minimum. Planned moves always wait for 100 %.
    #[serde(default = "default_min_success_percent")]
    pub min_success_percent: u32,
    /// How long the failover waits for capacity, counted from the scale request.
    #[serde(default = "default_compute_wait")]
    pub max_wait_seconds: u64,
}

impl Default for ComputePolicy {
    fn default() -> Self {
        ComputePolicy {
            standby: StandbySize::default(),
            failover_to: ScaleTarget::default(),
            min_success_percent: default_min_success_percent(),
            max_wait_seconds: default_compute_wait(),
        }
    }
}

impl ComputePolicy {
    /// Whether every field has its default (then the spec leaves it out).
    pub fn is_default(&self) -> bool {
        *self == ComputePolicy::default()
    }
}

fn default_min_success_percent() -> u32 {
    80
}
fn default_compute_wait() -> u64 {
    900
}

/// The size a standby Region's compute keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StandbySize {
    /// Pilot light: the resource's own minimum (Auto Scaling `MinSize`, often 0).
    #[default]
    Minimum,
    /// Warm standby: this percent of `full_capacity`.
    Percent(u32),
}

/// What a failover scales the target's compute to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleTarget {
    /// `ceil(percent × what the Region being left ran)`, as ARC Region switch's
    /// execution blocks do; never below what the target already runs.
    LeftRegion {
        /// Percent of the left Region's capacity (default 100).
        percent: u32,
    },
    /// A fixed capacity per resource.
    Fixed {
        /// Instances or tasks.
        capacity: u32,
    },
}

impl Default for ScaleTarget {
    fn default() -> Self {
        ScaleTarget::LeftRegion { percent: 100 }
    }
}

fn validate_compute(spec: &WorkloadSpec, p: &mut Vec<Problem>) {
    let pol = &spec.policy.compute;
    let left_region = matches!(pol.failover_to, ScaleTarget::LeftRegion { .. });
    let mut tiers: Vec<(usize, &str)> = Vec::new();
    for (i, r) in spec.regions.iter().enumerate() {
        let mut seen = HashSet::new();
        for (j, c) in r.compute.iter().enumerate() {
            let path = format!("regions[{i}].compute[{j}]");
            let mut empty = |field: &str, value: &str| {
                if value.trim().is_empty() {
                    p.push(Problem::Empty {
                        field: format!("{path}.{field}"),
                    });
                }
            };
            empty("tier", &c.tier);
            match &c.resource {
                ComputeResource::AutoScalingGroup { name } => empty("name", name),
                ComputeResource::EcsService { cluster, service } => {
                    empty("cluster", cluster);
                    empty("service", service);
                }
            }
            if !c.tier.trim().is_empty() && !seen.insert(c.tier.as_str()) {
                p.push(Problem::DuplicateComputeTier {
                    region: r.region.clone(),
                    tier: c.tier.clone(),
                });
            }
            if c.full_capacity == Some(0) {
                p.push(Problem::NotPositive {
                    field: format!("{path}.full_capacity"),
                });
            }
            if left_region && c.full_capacity.is_none() {
                p.push(Problem::ComputeCapacityUnknown { path: path.clone() });
            }
            tiers.push((i, c.tier.as_str()));
        }
    }
    // A tier in one Region with compute must be in every Region with compute: a
    // failover from any of them must find what it ran.
    let with_compute: Vec<usize> = (0..spec.regions.len())
        .filter(|&i| !spec.regions[i].compute.is_empty())
        .collect();
    let mut reported = HashSet::new();
    for &(_, tier) in &tiers {
        for &i in &with_compute {
            let r = &spec.regions[i];
            if !r.compute.iter().any(|c| c.tier == tier) && reported.insert((i, tier)) {
                p.push(Problem::ComputeTierMissing {
                    region: r.region.clone(),
                    tier: tier.to_owned(),
                });
            }
        }
    }
    for (field, value) in [
        (
            "policy.compute.min_success_percent",
            pol.min_success_percent,
        ),
        (
            "policy.compute.failover_to.percent",
            match pol.failover_to {
                ScaleTarget::LeftRegion { percent } => percent,
                ScaleTarget::Fixed { .. } => 1,
            },
        ),
        (
            "policy.compute.standby.percent",
            match pol.standby {
                StandbySize::Percent(n) => n,
                StandbySize::Minimum => 1,
            },
        ),
    ] {
        if !(1..=100).contains(&value) {
            p.push(Problem::PercentOutOfRange {
                field: field.to_owned(),
                value,
            });
        }
    }
    if pol.failover_to == (ScaleTarget::Fixed { capacity: 0 }) {
        p.push(Problem::NotPositive {
            field: "policy.compute.failover_to.capacity".to_owned(),
        });
    }
    if pol.max_wait_seconds == 0 {
        p.push(Problem::NotPositive {
            field: "policy.compute.max_wait_seconds".to_owned(),
        });
    }
}

/// How failover is governed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Whether an alarm may start a failover without an operator (and drain a failed
    /// serving secondary).
    pub auto_failover: bool,
    /// Whether a drained secondary comes back into traffic by itself once it is healthy
    /// again (`recovery_threshold` good rounds, its health alarm back to OK). Off: it
    /// stays out until an operator's `restore` request.
    #[serde(default)]
    pub auto_restore: bool,
    /// Consecutive failed probe rounds before a Region is unhealthy.
    #[serde(default = "default_threshold")]
    pub failure_threshold: u32,
    /// Consecutive good rounds before it is healthy again.
    #[serde(default = "default_recovery_threshold")]
    pub recovery_threshold: u32,
    /// Seconds between probe rounds.
    #[serde(default = "default_probe_interval")]
    pub probe_interval_seconds: u32,
    /// Seconds after a failover during which another is refused.
    #[serde(default = "default_cooldown")]
    pub cooldown_seconds: u64,
    /// Recovery time objective.
    pub rto_seconds: u64,
    /// Recovery point objective.
    pub rpo_seconds: u64,
    /// Replication-lag grading.
    #[serde(default)]
    pub replication_lag: LagLevels,
    /// S3 replication-latency grading (`ReplicationLatency` into a Region's buckets),
    /// its own levels: S3 replicates object by object, "most objects in seconds, and
    /// 99.99 percent of those objects within 15 minutes" with Replication Time Control
    /// (S3 User Guide, "Meeting compliance requirements using S3 Replication Time
    /// Control", https://docs.aws.amazon.com/AmazonS3/latest/userguide/replication-time-control.html),
    /// so database levels of seconds would call it critical all day. Default: warning at
    /// 1 hour (the e-commerce runbook's level), critical at 2 hours.
    #[serde(default = "default_s3_lag_levels")]
    pub s3_replication_lag: LagLevels,
    /// The most database replication lag (seconds) a *planned* move (a planned
    /// failover, a failback) may start with. Default 0: a planned move is an RPO-0
    /// switchover, it waits until the target has caught up. Unplanned failovers are
    /// held to `rpo_seconds` instead. At most `rpo_seconds`.
    #[serde(default)]
    pub planned_max_lag_seconds: u64,
    /// EventBridge schedule expression for DR drills, e.g. `cron(0 3 ? 1/3 SUN#1 *)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_schedule: Option<String>,
    /// What an hour of downtime costs, exact (never a float).
    pub downtime_cost_per_hour: Decimal,
    /// ISO 4217 currency of the money fields.
    #[serde(default = "default_currency")]
    pub currency: String,
    /// How big standby compute is and what a failover scales it to (issue #15).
    #[serde(default, skip_serializing_if = "ComputePolicy::is_default")]
    pub compute: ComputePolicy,
}

/// Replication-lag levels in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LagLevels {
    /// Lag at or above this is a warning.
    pub warning_seconds: u64,
    /// Lag at or above this is critical.
    pub critical_seconds: u64,
}

/// S3 replication-latency levels: warning at 1 hour, critical at 2.
pub fn default_s3_lag_levels() -> LagLevels {
    LagLevels {
        warning_seconds: 3_600,
        critical_seconds: 7_200,
    }
}

impl Default for LagLevels {
    fn default() -> Self {
        LagLevels {
            warning_seconds: 5,
            critical_seconds: 30,
        }
    }
}

fn default_status() -> u16 {
    200
}
fn default_timeout_ms() -> u64 {
    2_000
}
/// Three failed rounds in a row make a Region unhealthy. The DR runbook's rule is two
/// consecutive failures of one-minute checks: a failure seen twice, 60 s apart, so 60-120 s
/// before anything moves, which alone spends the 90-s budget for detection + decision +
/// traffic (docs/rto.md). Lifeboat asks for more evidence in less time: three rounds, 10 s
/// apart ([`default_probe_interval`]), each probing every endpoint of the Region and
/// reading its Route 53 health checks and alarms, so a failure must be seen three times
/// over at least 20 s. One blip (a dropped connection, a restart) never moves traffic, and
/// the failover decision still refuses unless the prober's own verdict is fresh.
fn default_threshold() -> u32 {
    3
}
/// Six good rounds in a row make an unhealthy Region healthy again: a full minute at 10-s
/// rounds, twice the evidence it took to fail. Coming back is never urgent (nothing waits
/// on it during a failover) and a Region just out of an outage often flaps, so recovery
/// is slower than failure.
fn default_recovery_threshold() -> u32 {
    6
}
/// One probe round every 10 s (within each scheduled run's probe window): with
/// [`default_threshold`] a hung Region is called unhealthy about 27 s after it breaks
/// (`lifeboat::rto`).
fn default_probe_interval() -> u32 {
    10
}
fn default_cooldown() -> u64 {
    3_600
}
fn default_currency() -> String {
    "USD".to_owned()
}
fn default_switch_namespace() -> String {
    "Lifeboat/RoutingSwitch".to_owned()
}

/// One reason a spec is invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum Problem {
    /// The workload id is empty or has characters that break the key layout.
    BadWorkloadId {
        /// The id given.
        workload: String,
    },
    /// No Regions at all.
    NoRegions,
    /// A Region code that is not an AWS Region.
    UnknownRegion {
        /// Where, e.g. `regions[2].region`.
        path: String,
        /// The code given.
        region: String,
    },
    /// A Region listed twice.
    DuplicateRegion {
        /// The code.
        region: String,
    },
    /// Weights of serving Regions do not add up to 100.
    WeightsDoNotSumTo100 {
        /// The sum found.
        sum: u64,
    },
    /// A drained Region that is not a secondary of weight 0.
    DrainedServing {
        /// The Region.
        region: String,
    },
    /// A standby Region carries traffic.
    StandbyCarriesTraffic {
        /// The Region.
        region: String,
        /// Its weight.
        weight: u32,
    },
    /// Active/passive pattern without exactly one primary.
    PrimaryCount {
        /// The pattern.
        pattern: DrPattern,
        /// Primaries found.
        primaries: Vec<String>,
    },
    /// A threshold or interval below 1.
    BelowOne {
        /// Field path.
        field: String,
    },
    /// An objective that is not positive.
    NotPositive {
        /// Field path.
        field: String,
    },
    /// Warning level above the critical level.
    LagLevelsOutOfOrder {
        /// Warning level.
        warning_seconds: u64,
        /// Critical level.
        critical_seconds: u64,
    },
    /// S3 latency warning level above its critical level.
    S3LagLevelsOutOfOrder {
        /// Warning level.
        warning_seconds: u64,
        /// Critical level.
        critical_seconds: u64,
    },
    /// The planned-move lag bound is above the RPO: a planned move would accept more
    /// loss than an unplanned one.
    PlannedLagOverRpo {
        /// `policy.planned_max_lag_seconds`.
        planned_max_lag_seconds: u64,
        /// `policy.rpo_seconds`.
        rpo_seconds: u64,
    },
    /// Endpoint URL not an absolute http(s) URL.
    BadEndpointUrl {
        /// Where.
        path: String,
        /// The URL given.
        url: String,
    },
    /// Expected status outside 100–599.
    BadExpectedStatus {
        /// Where.
        path: String,
        /// The status given.
        status: u16,
    },
    /// A negative money amount.
    NegativeMoney {
        /// Field path.
        field: String,
    },
    /// Drill schedule is not an EventBridge `cron(...)` or `rate(...)` expression.
    BadSchedule {
        /// The expression given.
        expression: String,
    },
    /// A name that must not be empty is empty.
    Empty {
        /// Field path.
        field: String,
    },
    /// A deploy section whose blue and green records are the same record.
    DeploySlotsIdentical {
        /// Where, e.g. `regions[0].deploy`.
        path: String,
    },
    /// Two compute resources of one Region name the same tier.
    DuplicateComputeTier {
        /// The Region.
        region: String,
        /// The tier.
        tier: String,
    },
    /// A tier other Regions scale has no resource in this Region (a Region with compute).
    ComputeTierMissing {
        /// The Region.
        region: String,
        /// The tier.
        tier: String,
    },
    /// `failover_to: left_region` needs each resource's `full_capacity`: what an
    /// unplanned failover reads when the Region it leaves cannot be asked.
    ComputeCapacityUnknown {
        /// Where, e.g. `regions[0].compute[0]`.
        path: String,
    },
    /// A percentage outside 1-100.
    PercentOutOfRange {
        /// Field path.
        field: String,
        /// The value given.
        value: u32,
    },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::BadWorkloadId { workload } => write!(
                f,
                "workload id `{workload}` must be 1-128 characters of letters, digits, '-', '_' or '.'"
            ),
            Problem::NoRegions => f.write_str("no regions"),
            Problem::UnknownRegion { path, region } => {
                write!(f, "{path}: `{region}` is not an AWS Region code")
            }
            Problem::DuplicateRegion { region } => write!(f, "region {region} is listed twice"),
            Problem::WeightsDoNotSumTo100 { sum } => {
                write!(f, "weights of serving regions sum to {sum}, not 100")
            }
            Problem::DrainedServing { region } => write!(
                f,
                "region {region} is drained: it must be a secondary with weight 0 until restored"
            ),
            Problem::StandbyCarriesTraffic { region, weight } => {
                write!(
                    f,
                    "standby region {region} has weight {weight}; a standby takes no traffic"
                )
            }
            Problem::PrimaryCount { pattern, primaries } => write!(
                f,
                "pattern {pattern:?} needs exactly one primary, found {}: [{}]",
                primaries.len(),
                primaries.join(", ")
            ),
            Problem::BelowOne { field } => write!(f, "{field} must be at least 1"),
            Problem::NotPositive { field } => write!(f, "{field} must be greater than 0"),
            Problem::LagLevelsOutOfOrder {
                warning_seconds,
                critical_seconds,
            } => write!(
                f,
                "replication_lag.warning_seconds ({warning_seconds}) is above critical_seconds ({critical_seconds})"
            ),
            Problem::S3LagLevelsOutOfOrder {
                warning_seconds,
                critical_seconds,
            } => write!(
                f,
                "s3_replication_lag.warning_seconds ({warning_seconds}) is above critical_seconds ({critical_seconds})"
            ),
            Problem::PlannedLagOverRpo {
                planned_max_lag_seconds,
                rpo_seconds,
            } => write!(
                f,
                "planned_max_lag_seconds ({planned_max_lag_seconds}) is above rpo_seconds ({rpo_seconds}): a planned move would accept more loss than an unplanned one"
            ),
            Problem::BadEndpointUrl { path, url } => {
                write!(f, "{path}: `{url}` is not an absolute http(s) URL")
            }
            Problem::BadExpectedStatus { path, status } => {
                write!(f, "{path}: expected_status {status} is not an HTTP status")
            }
            Problem::NegativeMoney { field } => write!(f, "{field} must not be negative"),
            Problem::BadSchedule { expression } => write!(
                f,
                "drill_schedule `{expression}` is not an EventBridge cron(...) or rate(...) expression"
            ),
            Problem::Empty { field } => write!(f, "{field} must not be empty"),
            Problem::DeploySlotsIdentical { path } => write!(
                f,
                "{path}: blue and green name the same set identifier; a deploy needs two records"
            ),
            Problem::DuplicateComputeTier { region, tier } => {
                write!(f, "region {region} names compute tier `{tier}` twice")
            }
            Problem::ComputeTierMissing { region, tier } => write!(
                f,
                "region {region} has no compute of tier `{tier}`, which other regions scale"
            ),
            Problem::ComputeCapacityUnknown { path } => write!(
                f,
                "{path}: full_capacity is needed with policy.compute.failover_to left_region (what an unplanned failover away from this region scales to)"
            ),
            Problem::PercentOutOfRange { field, value } => {
                write!(f, "{field} is {value}; a percentage is 1-100")
            }
        }
    }
}

/// The index of the `nth` entry of `regions` for `region` (0: its first).
fn region_index(spec: &WorkloadSpec, region: &str, nth: usize) -> Option<usize> {
    spec.regions
        .iter()
        .enumerate()
        .filter(|(_, r)| r.region == region)
        .nth(nth)
        .map(|(i, _)| i)
}

/// `regions[i]<field>` for the `nth` entry of `region`; `regions` when there is none.
fn in_region(spec: &WorkloadSpec, region: &str, nth: usize, field: &str) -> String {
    match region_index(spec, region, nth) {
        Some(i) => format!("regions[{i}]{field}"),
        None => "regions".into(),
    }
}

impl Problem {
    /// The JSON path in `spec` the problem is about (e.g. `regions[2].weight`), for a
    /// tool that points at the line to fix.
    pub fn path(&self, spec: &WorkloadSpec) -> String {
        match self {
            Problem::BadWorkloadId { .. } => "workload".into(),
            Problem::NoRegions
            | Problem::WeightsDoNotSumTo100 { .. }
            | Problem::PrimaryCount { .. } => "regions".into(),
            Problem::UnknownRegion { path, .. }
            | Problem::BadEndpointUrl { path, .. }
            | Problem::BadExpectedStatus { path, .. }
            | Problem::DeploySlotsIdentical { path }
            | Problem::ComputeCapacityUnknown { path } => path.clone(),
            Problem::DuplicateRegion { region } => in_region(spec, region, 1, ".region"),
            Problem::DrainedServing { region } => in_region(spec, region, 0, ".drained"),
            Problem::StandbyCarriesTraffic { region, .. } => in_region(spec, region, 0, ".weight"),
            Problem::DuplicateComputeTier { region, .. }
            | Problem::ComputeTierMissing { region, .. } => in_region(spec, region, 0, ".compute"),
            Problem::BelowOne { field }
            | Problem::NotPositive { field }
            | Problem::NegativeMoney { field }
            | Problem::Empty { field }
            | Problem::PercentOutOfRange { field, .. } => field.clone(),
            Problem::LagLevelsOutOfOrder { .. } => "policy.replication_lag".into(),
            Problem::S3LagLevelsOutOfOrder { .. } => "policy.s3_replication_lag".into(),
            Problem::PlannedLagOverRpo { .. } => "policy.planned_max_lag_seconds".into(),
            Problem::BadSchedule { .. } => "policy.drill_schedule".into(),
        }
    }
}

impl Warning {
    /// The JSON path in `spec` the warning is about.
    pub fn path(&self, spec: &WorkloadSpec) -> String {
        match self {
            Warning::EventualConsistency { .. } => "regions".into(),
            Warning::SwitchInOwnRegion { region } => {
                in_region(spec, region, 0, ".routing_switch.region")
            }
        }
    }
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::EventualConsistency { regions } => write!(
                f,
                "regions [{}] span Region sets: the table replicates eventually (last writer wins) and the lease relies on the arbiter Region",
                regions.join(", ")
            ),
            Warning::SwitchInOwnRegion { region } => write!(
                f,
                "the routing switch of {region} lives in {region}: it cannot be flipped while {region} is down"
            ),
        }
    }
}

/// A weaker guarantee worth telling the operator, that does not make the spec invalid.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "warning", rename_all = "snake_case")]
pub enum Warning {
    /// The Regions span MRSC Region sets: the global table replicates eventually,
    /// last writer wins, and the lease relies on the arbitration rule in the README.
    EventualConsistency {
        /// The Regions.
        regions: Vec<String>,
    },
    /// The primary's routing switch lives in the primary's own Region, so it cannot be
    /// flipped while that Region is down.
    SwitchInOwnRegion {
        /// The Region.
        region: String,
    },
}

fn validate_deploy(path: &str, d: &DeploySpec, p: &mut Vec<Problem>) {
    let mut empty = |field: &str, value: &str| {
        if value.trim().is_empty() {
            p.push(Problem::Empty {
                field: format!("{path}.{field}"),
            });
        }
    };
    empty("hosted_zone_id", &d.hosted_zone_id);
    empty("record_name", &d.record_name);
    empty("blue.set_identifier", &d.blue.set_identifier);
    empty("green.set_identifier", &d.green.set_identifier);
    let mut queries = vec![
        ("errors", &d.metrics.errors),
        ("requests", &d.metrics.requests),
        ("latency_p95", &d.metrics.latency_p95),
    ];
    if let Some(q) = &d.metrics.latency_p99 {
        queries.push(("latency_p99", q));
    }
    for (name, q) in queries {
        empty(&format!("metrics.{name}.namespace"), &q.namespace);
        empty(&format!("metrics.{name}.metric_name"), &q.metric_name);
        if let Some(stat) = &q.stat {
            empty(&format!("metrics.{name}.stat"), stat);
        }
    }
    for (j, a) in d.alarms.iter().enumerate() {
        empty(&format!("alarms[{j}]"), a);
    }
    if let Some(v) = &d.version {
        empty("version", v);
    }
    if !d.blue.set_identifier.is_empty() && d.blue.set_identifier == d.green.set_identifier {
        p.push(Problem::DeploySlotsIdentical {
            path: path.to_owned(),
        });
    }
}

/// The outcome of validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validation {
    /// Problems that make the spec unusable.
    pub problems: Vec<Problem>,
    /// Weaker guarantees to report.
    pub warnings: Vec<Warning>,
}

impl WorkloadSpec {
    /// Checks the whole spec and reports every problem at once.
    pub fn validate(&self) -> Validation {
        let mut v = Validation::default();
        let p = &mut v.problems;

        let id_ok = !self.workload.is_empty()
            && self.workload.len() <= 128
            && self
                .workload
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !id_ok {
            p.push(Problem::BadWorkloadId {
                workload: self.workload.clone(),
            });
        }

        if self.regions.is_empty() {
            p.push(Problem::NoRegions);
        }
        let mut seen = HashSet::new();
        let mut sum: u64 = 0;
        for (i, r) in self.regions.iter().enumerate() {
            if !regions::is_known(&r.region) {
                p.push(Problem::UnknownRegion {
                    path: format!("regions[{i}].region"),
                    region: r.region.clone(),
                });
            }
            if !seen.insert(r.region.as_str()) {
                p.push(Problem::DuplicateRegion {
                    region: r.region.clone(),
                });
            }
            if r.role == Role::Standby {
                if r.weight > 0 {
                    p.push(Problem::StandbyCarriesTraffic {
                        region: r.region.clone(),
                        weight: r.weight,
                    });
                }
            } else {
                sum += u64::from(r.weight);
            }
            if r.drained.is_some() && (r.role != Role::Secondary || r.weight > 0) {
                p.push(Problem::DrainedServing {
                    region: r.region.clone(),
                });
            }
            for (j, e) in r.endpoints.iter().enumerate() {
                let path = format!("regions[{i}].endpoints[{j}]");
                let url_ok = url::Url::parse(&e.url)
                    .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
                if !url_ok {
                    p.push(Problem::BadEndpointUrl {
                        path: path.clone(),
                        url: e.url.clone(),
                    });
                }
                if !(100..=599).contains(&e.expected_status) {
                    p.push(Problem::BadExpectedStatus {
                        path: path.clone(),
                        status: e.expected_status,
                    });
                }
                if e.timeout_ms == 0 {
                    p.push(Problem::BelowOne {
                        field: format!("{path}.timeout_ms"),
                    });
                }
            }
            if let Some(s) = &r.routing_switch {
                if !regions::is_known(&s.region) {
                    p.push(Problem::UnknownRegion {
                        path: format!("regions[{i}].routing_switch.region"),
                        region: s.region.clone(),
                    });
                }
                for (field, value) in [
                    ("metric_name", &s.metric_name),
                    ("alarm_name", &s.alarm_name),
                ] {
                    if value.is_empty() {
                        p.push(Problem::Empty {
                            field: format!("regions[{i}].routing_switch.{field}"),
                        });
                    }
                }
                if r.role == Role::Primary && s.region == r.region {
                    v.warnings.push(Warning::SwitchInOwnRegion {
                        region: r.region.clone(),
                    });
                }
            }
            if let Some(d) = &r.deploy {
                validate_deploy(&format!("regions[{i}].deploy"), d, p);
            }
        }
        validate_compute(self, p);
        if !self.regions.is_empty() && sum != 100 {
            p.push(Problem::WeightsDoNotSumTo100 { sum });
        }

        let primaries: Vec<String> = self
            .regions
            .iter()
            .filter(|r| r.role == Role::Primary)
            .map(|r| r.region.clone())
            .collect();
        let primaries_ok = if self.pattern.is_active_passive() {
            primaries.len() == 1
        } else {
            primaries.len() <= 1
        };
        if !primaries_ok {
            p.push(Problem::PrimaryCount {
                pattern: self.pattern,
                primaries,
            });
        }

        let pol = &self.policy;
        for (field, value) in [
            ("policy.failure_threshold", u64::from(pol.failure_threshold)),
            (
                "policy.recovery_threshold",
                u64::from(pol.recovery_threshold),
            ),
            (
                "policy.probe_interval_seconds",
                u64::from(pol.probe_interval_seconds),
            ),
        ] {
            if value < 1 {
                p.push(Problem::BelowOne {
                    field: field.to_owned(),
                });
            }
        }
        for (field, value) in [
            ("policy.rto_seconds", pol.rto_seconds),
            ("policy.rpo_seconds", pol.rpo_seconds),
            (
                "policy.replication_lag.warning_seconds",
                pol.replication_lag.warning_seconds,
            ),
            (
                "policy.replication_lag.critical_seconds",
                pol.replication_lag.critical_seconds,
            ),
            (
                "policy.s3_replication_lag.warning_seconds",
                pol.s3_replication_lag.warning_seconds,
            ),
            (
                "policy.s3_replication_lag.critical_seconds",
                pol.s3_replication_lag.critical_seconds,
            ),
        ] {
            if value == 0 {
                p.push(Problem::NotPositive {
                    field: field.to_owned(),
                });
            }
        }
        if pol.replication_lag.warning_seconds > pol.replication_lag.critical_seconds {
            p.push(Problem::LagLevelsOutOfOrder {
                warning_seconds: pol.replication_lag.warning_seconds,
                critical_seconds: pol.replication_lag.critical_seconds,
            });
        }
        let s3 = pol.s3_replication_lag;
        if s3.warning_seconds > s3.critical_seconds {
            p.push(Problem::S3LagLevelsOutOfOrder {
                warning_seconds: s3.warning_seconds,
                critical_seconds: s3.critical_seconds,
            });
        }
        if pol.planned_max_lag_seconds > pol.rpo_seconds {
            p.push(Problem::PlannedLagOverRpo {
                planned_max_lag_seconds: pol.planned_max_lag_seconds,
                rpo_seconds: pol.rpo_seconds,
            });
        }
        if pol.downtime_cost_per_hour.is_sign_negative() && !pol.downtime_cost_per_hour.is_zero() {
            p.push(Problem::NegativeMoney {
                field: "policy.downtime_cost_per_hour".to_owned(),
            });
        }
        if let Some(expr) = &pol.drill_schedule {
            let ok =
                (expr.starts_with("cron(") || expr.starts_with("rate(")) && expr.ends_with(')');
            if !ok {
                p.push(Problem::BadSchedule {
                    expression: expr.clone(),
                });
            }
        }

        let codes: Vec<&str> = self.regions.iter().map(|r| r.region.as_str()).collect();
        if codes.len() > 1 && regions::mrsc_set(codes.iter().copied()).is_none() {
            v.warnings.push(Warning::EventualConsistency {
                regions: codes.iter().map(|c| (*c).to_owned()).collect(),
            });
        }
        v
    }

    /// Validates, turning problems into [`Error::InvalidModel`]; returns the warnings.
    pub fn check(&self) -> Result<Vec<Warning>, Error> {
        let v = self.validate();
        if v.problems.is_empty() {
            Ok(v.warnings)
        } else {
            Err(Error::InvalidModel {
                workload: self.workload.clone(),
                problems: v.problems,
            })
        }
    }

    /// The Region with this code.
    pub fn region(&self, code: &str) -> Option<&RegionSpec> {
        self.regions.iter().find(|r| r.region == code)
    }

    /// The primary Region, if any.
    pub fn primary(&self) -> Option<&RegionSpec> {
        self.regions.iter().find(|r| r.role == Role::Primary)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../events/model/example-spec.json");

    fn example() -> WorkloadSpec {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn problems(spec: &WorkloadSpec) -> Vec<Problem> {
        spec.validate().problems
    }

    #[test]
    fn the_example_is_valid_and_warns_about_eventual_consistency() {
        let spec = example();
        let v = spec.validate();
        assert_eq!(v.problems, []);
        assert_eq!(
            v.warnings,
            [Warning::EventualConsistency {
                regions: vec![
                    "us-east-1".into(),
                    "eu-west-1".into(),
                    "ap-southeast-1".into()
                ]
            }]
        );
        assert_eq!(spec.primary().map(|r| r.region.as_str()), Some("us-east-1"));
        let weights: Vec<u32> = spec.regions.iter().map(|r| r.weight).collect();
        assert_eq!(weights, [50, 30, 20]);
        assert_eq!(spec.policy.rto_seconds, 300);
        assert_eq!(spec.policy.rpo_seconds, 900);
        assert!(spec.check().is_ok());
    }

    #[test]
    fn json_round_trips_exactly() {
        let spec = example();
        let json = serde_json::to_string(&spec).unwrap();
        let back: WorkloadSpec = serde_json::from_str(&json).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn defaults_fill_what_is_left_out() {
        let spec: WorkloadSpec = serde_json::from_value(serde_json::json!({
            "workload": "w",
            "pattern": "warm_standby",
            "regions": [{"region": "us-east-1", "role": "primary", "weight": 100,
                          "endpoints": [{"url": "https://a.example/health"}]}],
            "policy": {"auto_failover": true, "rto_seconds": 60, "rpo_seconds": 60,
                       "downtime_cost_per_hour": "1000.50"}
        }))
        .unwrap();
        assert_eq!(spec.policy.failure_threshold, 3);
        assert_eq!(spec.policy.recovery_threshold, 6);
        assert_eq!(spec.policy.probe_interval_seconds, 10);
        assert_eq!(
            spec.policy.replication_lag,
            LagLevels {
                warning_seconds: 5,
                critical_seconds: 30
            }
        );
        assert_eq!(spec.policy.currency, "USD");
        assert_eq!(spec.policy.downtime_cost_per_hour, Decimal::new(100_050, 2));
        assert_eq!(spec.regions[0].endpoints[0].expected_status, 200);
        assert_eq!(spec.regions[0].endpoints[0].timeout_ms, 2000);
        assert_eq!(spec.version, 0);
        assert_eq!(problems(&spec), []);
    }

    #[test]
    fn weights_must_sum_to_100() {
        let mut spec = example();
        spec.regions[2].weight = 25;
        assert_eq!(
            problems(&spec),
            [Problem::WeightsDoNotSumTo100 { sum: 105 }]
        );
    }

    #[test]
    fn a_drained_region_is_a_secondary_of_weight_zero() {
        let mut spec = example();
        let drained = Drained {
            weight: 20,
            since: crate::UnixMillis(1),
            reason: "probes".into(),
        };
        spec.regions[2].drained = Some(drained.clone());
        assert_eq!(
            problems(&spec),
            [Problem::DrainedServing {
                region: "ap-southeast-1".into()
            }]
        );
        spec.regions[2].weight = 0;
        spec.regions[0].weight = 70;
        assert_eq!(problems(&spec), []);
        spec.regions[0].drained = Some(drained);
        spec.regions[0].weight = 0;
        spec.regions[1].weight = 100;
        assert!(problems(&spec).contains(&Problem::DrainedServing {
            region: "us-east-1".into()
        }));
    }

    #[test]
    fn a_standby_takes_no_traffic_and_is_not_counted() {
        let mut spec = example();
        spec.regions[2].role = Role::Standby;
        assert_eq!(
            problems(&spec),
            [
                Problem::StandbyCarriesTraffic {
                    region: "ap-southeast-1".into(),
                    weight: 20
                },
                Problem::WeightsDoNotSumTo100 { sum: 80 },
            ]
        );
    }

    #[test]
    fn active_passive_needs_exactly_one_primary() {
        let mut spec = example();
        spec.pattern = DrPattern::WarmStandby;
        spec.regions[1].role = Role::Primary;
        assert_eq!(
            problems(&spec),
            [Problem::PrimaryCount {
                pattern: DrPattern::WarmStandby,
                primaries: vec!["us-east-1".into(), "eu-west-1".into()],
            }]
        );
        for r in &mut spec.regions {
            r.role = Role::Secondary;
        }
        assert_eq!(
            problems(&spec),
            [Problem::PrimaryCount {
                pattern: DrPattern::WarmStandby,
                primaries: vec![],
            }]
        );
        spec.pattern = DrPattern::ActiveActive;
        assert_eq!(
            problems(&spec),
            [],
            "active/active may have no single primary"
        );
    }

    #[test]
    fn regions_must_be_real_and_unique() {
        let mut spec = example();
        spec.regions[1].region = "us-east-1".into();
        spec.regions[2].region = "mars-north-1".into();
        assert_eq!(
            problems(&spec),
            [
                Problem::DuplicateRegion {
                    region: "us-east-1".into()
                },
                Problem::UnknownRegion {
                    path: "regions[2].region".into(),
                    region: "mars-north-1".into()
                },
            ]
        );
        spec.regions.clear();
        assert_eq!(problems(&spec), [Problem::NoRegions]);
    }

    #[test]
    fn thresholds_at_least_one_and_objectives_positive() {
        let mut spec = example();
        spec.policy.failure_threshold = 0;
        spec.policy.recovery_threshold = 0;
        spec.policy.probe_interval_seconds = 0;
        spec.policy.rto_seconds = 0;
        spec.policy.rpo_seconds = 0;
        assert_eq!(
            problems(&spec),
            [
                Problem::BelowOne {
                    field: "policy.failure_threshold".into()
                },
                Problem::BelowOne {
                    field: "policy.recovery_threshold".into()
                },
                Problem::BelowOne {
                    field: "policy.probe_interval_seconds".into()
                },
                Problem::NotPositive {
                    field: "policy.rto_seconds".into()
                },
                Problem::NotPositive {
                    field: "policy.rpo_seconds".into()
                },
            ]
        );
    }

    #[test]
    fn lag_levels_money_schedule_and_endpoints_are_checked() {
        let mut spec = example();
        spec.policy.replication_lag = LagLevels {
            warning_seconds: 60,
            critical_seconds: 30,
        };
        spec.policy.downtime_cost_per_hour = Decimal::new(-1, 0);
        spec.policy.drill_schedule = Some("every sunday".into());
        spec.regions[0].endpoints[0].url = "ftp://x".into();
        spec.regions[0].endpoints[0].expected_status = 42;
        spec.regions[0].endpoints[0].timeout_ms = 0;
        assert_eq!(
            problems(&spec),
            [
                Problem::BadEndpointUrl {
                    path: "regions[0].endpoints[0]".into(),
                    url: "ftp://x".into()
                },
                Problem::BadExpectedStatus {
                    path: "regions[0].endpoints[0]".into(),
                    status: 42
                },
                Problem::BelowOne {
                    field: "regions[0].endpoints[0].timeout_ms".into()
                },
                Problem::LagLevelsOutOfOrder {
                    warning_seconds: 60,
                    critical_seconds: 30
                },
                Problem::NegativeMoney {
                    field: "policy.downtime_cost_per_hour".into()
                },
                Problem::BadSchedule {
                    expression: "every sunday".into()
                },
            ]
        );
    }

    #[test]
    fn the_rpo_gate_bounds_default_and_are_checked() {
        let spec = example();
        assert_eq!(spec.policy.planned_max_lag_seconds, 0, "RPO-0 switchover");
        assert_eq!(
            spec.policy.s3_replication_lag,
            LagLevels {
                warning_seconds: 3_600,
                critical_seconds: 7_200
            }
        );
        let mut spec = example();
        spec.policy.s3_replication_lag = LagLevels {
            warning_seconds: 0,
            critical_seconds: 0,
        };
        spec.policy.planned_max_lag_seconds = spec.policy.rpo_seconds + 1;
        assert_eq!(
            problems(&spec),
            [
                Problem::NotPositive {
                    field: "policy.s3_replication_lag.warning_seconds".into()
                },
                Problem::NotPositive {
                    field: "policy.s3_replication_lag.critical_seconds".into()
                },
                Problem::PlannedLagOverRpo {
                    planned_max_lag_seconds: 901,
                    rpo_seconds: 900
                },
            ]
        );
        spec.policy.s3_replication_lag = LagLevels {
            warning_seconds: 60,
            critical_seconds: 30,
        };
        spec.policy.planned_max_lag_seconds = 900;
        assert_eq!(
            problems(&spec),
            [Problem::S3LagLevelsOutOfOrder {
                warning_seconds: 60,
                critical_seconds: 30
            }]
        );
        let text = Problem::PlannedLagOverRpo {
            planned_max_lag_seconds: 901,
            rpo_seconds: 900,
        }
        .to_string();
        assert!(text.contains("planned_max_lag_seconds (901)"), "{text}");
    }

    #[test]
    fn every_problem_is_reported_at_once_and_check_names_the_error() {
        let mut spec = example();
        spec.workload = "has space".into();
        spec.regions[0].weight = 0;
        spec.regions[2].region = "nowhere".into();
        spec.policy.rpo_seconds = 0;
        let err = spec.check().unwrap_err();
        assert_eq!(err.name(), crate::ErrorName::InvalidModel);
        let Error::InvalidModel { problems, .. } = &err else {
            unreachable!()
        };
        assert_eq!(problems.len(), 4, "{problems:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("weights of serving regions sum to 50, not 100"),
            "{msg}"
        );
        assert!(msg.contains("`nowhere` is not an AWS Region code"), "{msg}");
    }

    #[test]
    fn a_primary_switch_in_its_own_region_is_a_warning() {
        let mut spec = example();
        if let Some(s) = spec.regions[0].routing_switch.as_mut() {
            s.region = "us-east-1".into();
        }
        let v = spec.validate();
        assert_eq!(v.problems, []);
        assert!(v.warnings.contains(&Warning::SwitchInOwnRegion {
            region: "us-east-1".into()
        }));
    }

    #[test]
    fn the_example_deploys_every_region_blue_green() {
        let spec = example();
        for r in &spec.regions {
            let d = r.deploy.as_ref().unwrap();
            assert_eq!(d.live, Slot::Blue, "{}", r.region);
            assert_ne!(d.blue.set_identifier, d.green.set_identifier);
            assert_eq!(d.metrics.latency_p95.stat.as_deref(), Some("p95"));
            assert!(d.version.is_some());
        }
        // Without a deploy section a Region parses as before and is not deployed.
        let mut bare = spec.clone();
        for r in &mut bare.regions {
            r.deploy = None;
        }
        let json = serde_json::to_value(&bare).unwrap();
        assert!(json["regions"][0].get("deploy").is_none());
        assert_eq!(problems(&bare), []);
    }

    #[test]
    fn deploy_sections_are_checked() {
        let mut spec = example();
        let d = spec.regions[1].deploy.as_mut().unwrap();
        d.green.set_identifier = d.blue.set_identifier.clone();
        d.record_name = String::new();
        d.metrics.errors.metric_name = " ".into();
        d.metrics.latency_p95.stat = Some(String::new());
        assert_eq!(
            problems(&spec),
            [
                Problem::Empty {
                    field: "regions[1].deploy.record_name".into()
                },
                Problem::Empty {
                    field: "regions[1].deploy.metrics.errors.metric_name".into()
                },
                Problem::Empty {
                    field: "regions[1].deploy.metrics.latency_p95.stat".into()
                },
                Problem::DeploySlotsIdentical {
                    path: "regions[1].deploy".into()
                },
            ]
        );
        assert!(
            spec.check()
                .unwrap_err()
                .to_string()
                .contains("blue and green name the same set identifier")
        );
    }

    const PILOT_LIGHT: &str = include_str!("../../events/model/pilot-light-spec.json");

    fn pilot_light() -> WorkloadSpec {
        serde_json::from_str(PILOT_LIGHT).unwrap()
    }

    #[test]
    fn compute_parses_with_defaults_and_old_specs_have_none() {
        let spec = pilot_light();
        assert_eq!(problems(&spec), []);
        let web = &spec.regions[1].compute[0];
        assert_eq!(web.tier, "web");
        assert_eq!(
            web.resource,
            ComputeResource::AutoScalingGroup {
                name: "orders-web-usw2".into()
            }
        );
        assert_eq!(web.full_capacity, Some(6));
        assert_eq!(spec.regions[1].compute[1].resource.id(), "orders/workers");
        assert_eq!(spec.policy.compute, ComputePolicy::default());
        // The example (no compute anywhere) parses as before and serializes without it.
        let old = example();
        assert!(old.regions.iter().all(|r| r.compute.is_empty()));
        let json = serde_json::to_value(&old).unwrap();
        assert!(json["regions"][0].get("compute").is_none());
        assert!(json["policy"].get("compute").is_none());
        // Every field of the policy has its default.
        let pol: ComputePolicy = serde_json::from_value(serde_json::json!({})).unwrap();
        assert_eq!(pol.failover_to, ScaleTarget::LeftRegion { percent: 100 });
        assert_eq!(pol.min_success_percent, 80);
        let pol: ComputePolicy = serde_json::from_value(serde_json::json!({
            "standby": {"percent": 25}, "failover_to": {"fixed": {"capacity": 3}}
        }))
        .unwrap();
        assert_eq!(pol.standby, StandbySize::Percent(25));
        assert_eq!(pol.failover_to, ScaleTarget::Fixed { capacity: 3 });
    }

    #[test]
    fn compute_round_trips_through_json_and_the_dynamodb_item() {
        let mut spec = pilot_light();
        spec.policy.compute.standby = StandbySize::Percent(30);
        spec.policy.compute.min_success_percent = 90;
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<WorkloadSpec>(&json).unwrap(), spec);
        let item: serde_dynamo::Item = serde_dynamo::to_item(&spec).unwrap();
        let back: WorkloadSpec = serde_dynamo::from_item(item).unwrap();
        assert_eq!(back, spec);
    }

    #[test]
    fn every_compute_problem_is_reported_at_once() {
        let mut spec = pilot_light();
        spec.regions[0].compute[0].full_capacity = None;
        spec.regions[0].compute[1].tier = "web".into();
        spec.regions[1].compute[1].resource = ComputeResource::EcsService {
            cluster: " ".into(),
            service: "workers".into(),
        };
        spec.regions[1].compute[1].full_capacity = Some(0);
        spec.policy.compute.min_success_percent = 0;
        spec.policy.compute.failover_to = ScaleTarget::LeftRegion { percent: 150 };
        spec.policy.compute.max_wait_seconds = 0;
        assert_eq!(
            problems(&spec),
            [
                Problem::ComputeCapacityUnknown {
                    path: "regions[0].compute[0]".into()
                },
                Problem::DuplicateComputeTier {
                    region: "us-east-1".into(),
                    tier: "web".into()
                },
                Problem::Empty {
                    field: "regions[1].compute[1].cluster".into()
                },
                Problem::NotPositive {
                    field: "regions[1].compute[1].full_capacity".into()
                },
                Problem::ComputeTierMissing {
                    region: "us-east-1".into(),
                    tier: "workers".into()
                },
                Problem::PercentOutOfRange {
                    field: "policy.compute.min_success_percent".into(),
                    value: 0
                },
                Problem::PercentOutOfRange {
                    field: "policy.compute.failover_to.percent".into(),
                    value: 150
                },
                Problem::NotPositive {
                    field: "policy.compute.max_wait_seconds".into()
                },
            ]
        );
        let err = spec.check().unwrap_err();
        assert_eq!(err.name(), crate::ErrorName::InvalidModel);
        assert!(
            err.to_string()
                .contains("full_capacity is needed with policy.compute.failover_to left_region"),
            "{err}"
        );
        // A fixed size needs no full_capacity.
        let mut fixed = pilot_light();
        fixed.policy.compute.failover_to = ScaleTarget::Fixed { capacity: 2 };
        for r in &mut fixed.regions {
            for c in &mut r.compute {
                c.full_capacity = None;
            }
        }
        assert_eq!(problems(&fixed), []);
    }

    #[test]
    fn one_mrsc_set_gives_no_consistency_warning() {
        let mut spec = example();
        spec.regions[1].region = "us-east-2".into();
        spec.regions[2].region = "us-west-2".into();
        for r in &mut spec.regions {
            r.routing_switch = None;
        }
        assert_eq!(spec.validate(), Validation::default());
    }
}
