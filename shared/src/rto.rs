//! The RTO budget: how long a failover takes on AWS for the deployed configuration,
//! projected term by term from the spec's policy, the template's settings and AWS's
//! documented timings (docs/rto.md). Pure: no I/O, no clock.
//!
//! [`budget`] projects the automatic failover (the primary's failover alarm starts it),
//! [`budget_for`] any [`Scenario`] (the executor's dry run knows its target; a drill is
//! started by an operator or a schedule, so it has no detection terms). Every [`Term`]
//! carries its formula with the values put in and its sources: an AWS documentation URL,
//! a Lifeboat setting, or a stated assumption (`assumed`) where AWS documents no figure.
//!
//! Totals: detection + decision + traffic (the ≤ 90 s target, data tier and client
//! caches left out), traffic moved as the failover machine orders its steps (it promotes
//! the data tier first), and the full RTO with the record TTL, against
//! `policy.rto_seconds`.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::{DatabaseRef, RegionSpec, Role, WorkloadSpec};

/// The target for detection + decision + traffic on AWS: what Route 53's own failover
/// takes on 30-s endpoint checks (3 × 30 s).
pub const TARGET_SECONDS: u64 = 90;

/// An expected and a worst-case duration, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// What it usually takes.
    pub expected_seconds: f64,
    /// The longest it takes under the stated settings and assumptions.
    pub worst_seconds: f64,
}

impl Span {
    /// A span.
    pub const fn new(expected_seconds: f64, worst_seconds: f64) -> Span {
        Span {
            expected_seconds,
            worst_seconds,
        }
    }

    const ZERO: Span = Span::new(0.0, 0.0);

    fn plus(self, other: Span) -> Span {
        Span::new(
            self.expected_seconds + other.expected_seconds,
            self.worst_seconds + other.worst_seconds,
        )
    }

    fn max(self, other: Span) -> Span {
        Span::new(
            self.expected_seconds.max(other.expected_seconds),
            self.worst_seconds.max(other.worst_seconds),
        )
    }
}

/// A CloudWatch alarm's timing, as the template sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmTiming {
    /// `Period`, seconds: 10, 20 or 30 (high resolution) or a multiple of 60.
    pub period_seconds: u32,
    /// `EvaluationPeriods` (N).
    pub evaluation_periods: u32,
    /// `DatapointsToAlarm` (M); the metric stays breaching once it breaches, so M
    /// consecutive breaching periods make the alarm.
    pub datapoints_to_alarm: u32,
    /// Whether the metric is published with `StorageResolution` 1 (needed for periods
    /// under 60 s).
    pub high_resolution_metric: bool,
}

/// Route 53's endpoint health checks, for the comparison with Route 53's own failover
/// (Lifeboat's switch checks are `CLOUDWATCH_METRIC` and use neither setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointCheck {
    /// `RequestInterval`: 30 (default) or 10 seconds.
    pub request_interval_seconds: u32,
    /// `FailureThreshold`: 1-10, default 3.
    pub failure_threshold: u32,
}

/// Figures AWS does not document, stated so they can be replaced by what a drill on AWS
/// measures. Each term built from one is marked `assumed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Assumptions {
    /// From PutMetricData until an alarm evaluation sees the datum ("a few seconds").
    pub metric_delay: Span,
    /// Alarm action → Lambda asynchronous invocation → failover-executor →
    /// `StartExecution` (first delivery succeeds; Lambda's retries after a function error
    /// would add minutes).
    pub executor_start: Span,
    /// Lifeboat's `decide` and `acquire` steps and the machine's transitions between them
    /// (two Lambda invocations, table reads and the conditional lease write in the
    /// arbiter Region).
    pub decision: Span,
    /// traffic-shifter's `failover` step: the switch metric written in its Region.
    pub traffic_shifter: Span,
    /// From the switch's breaching period to DNS answers without the Region: Route 53
    /// reading the alarm's data stream and its name servers answering from the new status.
    pub route53_follow: Span,
    /// RDS `PromoteReadReplica` until the instance is `available` ("several minutes or
    /// longer, depending on the size of the read replica").
    pub rds_promotion: Span,
    /// Aurora global database failover or switchover ("in the order of minutes").
    pub aurora_global: Span,
    /// replica-promoter's S3 replication flip (a few S3 control-plane calls).
    pub s3_flip: Span,
    /// replica-promoter's DynamoDB global-table check (nothing to promote).
    pub dynamodb_verify: Span,
    /// The target's compute from the scale request until the wanted capacity is in
    /// service (EC2 instances launched and `InService`, ECS tasks running): pilot light
    /// and warm standby. The worst case is never beyond `policy.compute.max_wait_seconds`
    /// (then the run goes on below target, unplanned, or stops).
    pub compute_scale_out: Span,
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            metric_delay: Span::new(5.0, 10.0),
            executor_start: Span::new(1.0, 5.0),
            decision: Span::new(2.0, 8.0),
            traffic_shifter: Span::new(1.0, 5.0),
            route53_follow: Span::new(10.0, 30.0),
            rds_promotion: Span::new(180.0, 600.0),
            aurora_global: Span::new(60.0, 300.0),
            s3_flip: Span::new(2.0, 10.0),
            dynamodb_verify: Span::new(1.0, 5.0),
            compute_scale_out: Span::new(120.0, 300.0),
        }
    }
}

/// The deployed configuration the budget is projected for: what `template.yaml`'s
/// parameters and fixed properties set. [`Default`] is `template.yaml` with its defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Deployed {
    /// The probe schedule's period (`ProbeSchedule`, `rate(1 minute)`).
    pub probe_schedule_seconds: u32,
    /// How long one scheduled run keeps probing (`ProbeWindowSeconds`).
    pub probe_window_seconds: u32,
    /// The alarm that starts a failover (the health alarms (`HomeHealthAlarm`..)).
    pub failover_alarm: AlarmTiming,
    /// The routing-switch alarm a Route 53 `CLOUDWATCH_METRIC` check watches
    /// (`Switch1Alarm`..).
    pub switch_alarm: AlarmTiming,
    /// TTL of the workload's records (not in the template: the operator's records).
    pub record_ttl_seconds: u32,
    /// The failover machine's wait between data-tier status polls (`timing.poll_seconds`,
    /// `DefaultTiming` in `statemachines/failover.asl.json`).
    pub poll_seconds: u32,
    /// Whether traffic moves only after the data tier is promoted (today's failover
    /// machine: `PromoteData` → `ShiftTraffic`).
    pub traffic_waits_for_data_tier: bool,
    /// Route 53 endpoint checks, for the comparison with Route 53's own failover.
    pub route53_endpoint_check: EndpointCheck,
    /// What AWS does not document.
    pub assumptions: Assumptions,
}

impl Default for Deployed {
    /// `template.yaml` with its defaults: a 55-s probe window (six rounds a minute), the
    /// failover alarms at a 10-s period (high resolution: `RegionHealthy` is published
    /// at StorageResolution 1) alarming on 1 of 6 datapoints, one-minute switch alarms
    /// (Route 53 watches those, and supports nothing finer).
    fn default() -> Self {
        Deployed {
            probe_schedule_seconds: 60,
            probe_window_seconds: 55,
            failover_alarm: AlarmTiming {
                period_seconds: 10,
                evaluation_periods: 6,
                datapoints_to_alarm: 1,
                high_resolution_metric: true,
            },
            switch_alarm: AlarmTiming {
                period_seconds: 60,
                evaluation_periods: 1,
                datapoints_to_alarm: 1,
                high_resolution_metric: false,
            },
            record_ttl_seconds: 60,
            poll_seconds: 15,
            traffic_waits_for_data_tier: true,
            route53_endpoint_check: EndpointCheck {
                request_interval_seconds: 30,
                failure_threshold: 3,
            },
            assumptions: Assumptions::default(),
        }
    }
}

/// Where a term's time goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The probes and the failover alarm.
    Detection,
    /// The executor starting the machine, deciding and taking the lease.
    Decision,
    /// Promotion in the target Region (the machine's `PromoteData` Parallel: its
    /// branches run at once, so the phase takes its longest term).
    DataTier,
    /// The switch metric, its alarm, Route 53 and DNS.
    Traffic,
    /// Resolvers and clients holding the old answer for up to the record TTL.
    Clients,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Detection => "detection",
            Phase::Decision => "decision",
            Phase::DataTier => "data tier",
            Phase::Traffic => "traffic",
            Phase::Clients => "clients",
        }
    }
}

/// One term of the budget.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Term {
    /// Where its time goes.
    pub phase: Phase,
    /// What it is, e.g. `probe rounds`.
    pub name: String,
    /// How long it takes.
    #[serde(flatten)]
    pub seconds: Span,
    /// The formula with the values put in.
    pub formula: String,
    /// AWS documentation URLs, Lifeboat settings (`policy.x`, template parameters) and
    /// stated assumptions it rests on.
    pub sources: Vec<String>,
    /// Whether it rests on an assumption rather than a documented figure.
    pub assumed: bool,
}

/// How the run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Start {
    /// The failover alarm: every detection term applies.
    Alarm,
    /// An operator, a drill schedule or the console: the budget starts at
    /// `StartExecution`.
    Operator,
}

/// The failover projected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scenario {
    /// The Region being left.
    pub from_region: String,
    /// The Region taking over.
    pub to_region: String,
    /// How the run starts.
    pub start: Start,
    /// Planned (Aurora switchover) or unplanned (Aurora failover).
    pub planned: bool,
}

impl Scenario {
    /// The automatic failover: away from the primary, to the Region the decision takes
    /// when every Region is healthy (a secondary before a standby, then the larger
    /// weight, then the spec's order), started by the alarm, unplanned.
    pub fn automatic(spec: &WorkloadSpec) -> Scenario {
        let from = spec
            .primary()
            .or_else(|| spec.regions.first())
            .map(|r| r.region.clone())
            .unwrap_or_default();
        let mut others: Vec<(usize, &RegionSpec)> = spec
            .regions
            .iter()
            .enumerate()
            .filter(|(_, r)| r.region != from && r.role != Role::Primary)
            .collect();
        others.sort_by(|(ia, a), (ib, b)| {
            (a.role != Role::Secondary)
                .cmp(&(b.role != Role::Secondary))
                .then_with(|| b.weight.cmp(&a.weight))
                .then_with(|| ia.cmp(ib))
        });
        Scenario {
            from_region: from,
            to_region: others
                .first()
                .map(|(_, r)| r.region.clone())
                .unwrap_or_default(),
            start: Start::Alarm,
            planned: false,
        }
    }
}

/// Another way to fail over, for the comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// What it is.
    pub name: String,
    /// Its documented figure, if AWS documents one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    /// How the figure comes about, or why there is none.
    pub formula: String,
    /// AWS documentation.
    pub sources: Vec<String>,
}

/// The projected recovery time of one failover, term by term.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RtoBudget {
    /// The workload.
    pub workload: String,
    /// What is projected.
    pub scenario: Scenario,
    /// Every term, in the order the failover spends them.
    pub terms: Vec<Term>,
    /// Detection + decision + traffic: the ≤ [`TARGET_SECONDS`] target.
    pub detection_decision_traffic: Span,
    /// [`TARGET_SECONDS`].
    pub target_seconds: u64,
    /// Whether the expected detection + decision + traffic is within the target.
    pub meets_target: bool,
    /// When DNS stops answering the failed Region, as the failover machine orders its
    /// steps (after the data tier when `traffic_waits_for_data_tier`).
    pub traffic_moved: Span,
    /// Until clients reach the target: traffic moved, or the data tier if it ends later,
    /// plus the record TTL.
    pub full: Span,
    /// `policy.rto_seconds`.
    pub rto_seconds: u64,
    /// The expected full RTO is over `policy.rto_seconds`.
    pub over_budget: bool,
    /// The worst-case full RTO is over `policy.rto_seconds`.
    pub worst_over_budget: bool,
    /// Settings that AWS refuses or that make the figures wrong.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Route 53's own failover and ARC Region switch.
    pub comparisons: Vec<Comparison>,
}

/// The budget of the automatic failover of `spec` ([`Scenario::automatic`]).
pub fn budget(spec: &WorkloadSpec, deployed: &Deployed) -> RtoBudget {
    budget_for(spec, deployed, &Scenario::automatic(spec))
}

/// The budget of `scenario`.
pub fn budget_for(spec: &WorkloadSpec, deployed: &Deployed, scenario: &Scenario) -> RtoBudget {
    let mut warnings = check(deployed, spec, scenario);
    let a = &deployed.assumptions;
    let mut terms = Vec::new();
    if scenario.start == Start::Alarm {
        terms.push(probe_rounds(spec, deployed, scenario, &mut warnings));
        terms.push(failover_alarm(deployed));
        terms.push(Term {
            phase: Phase::Decision,
            name: "executor start".into(),
            seconds: a.executor_start,
            formula: format!(
                "alarm action → Lambda asynchronous invocation → failover-executor → StartExecution: {}",
                span_text(a.executor_start)
            ),
            sources: vec![
                LAMBDA_ASYNC.into(),
                SFN_START_EXECUTION.into(),
                format!(
                    "assumption: {} (at most {}) with the first delivery succeeding; AWS documents no latency for either hop",
                    secs(a.executor_start.expected_seconds),
                    secs(a.executor_start.worst_seconds)
                ),
            ],
            assumed: true,
        });
    }
    terms.push(Term {
        phase: Phase::Decision,
        name: "decide + lease".into(),
        seconds: a.decision,
        formula: format!(
            "Decide and Acquire: two Lambda invocations, the spec and HEALTH# reads, the conditional lease write in the arbiter Region: {}",
            span_text(a.decision)
        ),
        sources: vec![
            "Lifeboat step `Decide`, `Acquire` (statemachines/failover.asl.json)".into(),
            format!(
                "assumption: {} (at most {}, cold starts and a cross-Region lease write)",
                secs(a.decision.expected_seconds),
                secs(a.decision.worst_seconds)
            ),
        ],
        assumed: true,
    });
    terms.extend(data_tier(spec, deployed, scenario));
    terms.extend(traffic(spec, deployed, scenario));
    let ttl = f64::from(deployed.record_ttl_seconds);
    terms.push(Term {
        phase: Phase::Clients,
        name: "record TTL".into(),
        seconds: Span::new(ttl / 2.0, ttl),
        formula: format!(
            "a resolver holds the old answer for the rest of its TTL: TTL {} / 2 on average, {} at most",
            secs(ttl),
            secs(ttl)
        ),
        sources: vec![
            format!(
                "Lifeboat setting `record_ttl_seconds` ({}; the workload's records, advice: 60)",
                deployed.record_ttl_seconds
            ),
            R53_TTL_ADVICE.into(),
            R53_TTL_BEST_PRACTICES.into(),
        ],
        assumed: false,
    });
    totals(spec, deployed, scenario, terms, warnings)
}

fn totals(
    spec: &WorkloadSpec,
    deployed: &Deployed,
    scenario: &Scenario,
    terms: Vec<Term>,
    warnings: Vec<String>,
) -> RtoBudget {
    let phase = |p: Phase| {
        let spans = terms.iter().filter(|t| t.phase == p).map(|t| t.seconds);
        if p == Phase::DataTier {
            spans.fold(Span::ZERO, Span::max)
        } else {
            spans.fold(Span::ZERO, Span::plus)
        }
    };
    let before_data = phase(Phase::Detection).plus(phase(Phase::Decision));
    let ddt = before_data.plus(phase(Phase::Traffic));
    let data_ready = before_data.plus(phase(Phase::DataTier));
    let traffic_moved = if deployed.traffic_waits_for_data_tier {
        ddt.plus(phase(Phase::DataTier))
    } else {
        ddt
    };
    let full = traffic_moved.max(data_ready).plus(phase(Phase::Clients));
    // RTO objectives are whole seconds, far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let (target, rto) = (TARGET_SECONDS as f64, spec.policy.rto_seconds as f64);
    let r53 = deployed.route53_endpoint_check;
    RtoBudget {
        workload: spec.workload.clone(),
        scenario: scenario.clone(),
        terms,
        detection_decision_traffic: ddt,
        target_seconds: TARGET_SECONDS,
        meets_target: ddt.expected_seconds <= target,
        traffic_moved,
        full,
        rto_seconds: spec.policy.rto_seconds,
        over_budget: full.expected_seconds > rto,
        worst_over_budget: full.worst_seconds > rto,
        warnings,
        comparisons: vec![
            Comparison {
                name: "Route 53 endpoint health checks alone".into(),
                seconds: Some(f64::from(r53.failure_threshold) * f64::from(r53.request_interval_seconds)),
                formula: format!(
                    "FailureThreshold × RequestInterval = {} × {} s of consecutive failed checks before the record leaves DNS, then the record TTL",
                    r53.failure_threshold, r53.request_interval_seconds
                ),
                sources: vec![R53_HOW_HEALTH.into(), R53_HEALTH_CHECK_CONFIG.into()],
            },
            Comparison {
                name: "ARC Region switch".into(),
                seconds: None,
                formula: "a plan carries the RTO you set (recoveryTimeObjectiveMinutes) and each execution reports its actualRecoveryTime (the plan's run plus the time until its application health alarms are healthy again); its Route 53 health check block moves DNS through Route 53 health checks, so the record TTL still applies, and a trigger is a CloudWatch alarm, so alarm evaluation is in its path too".into(),
                sources: vec![
                    ARC_CREATE_PLAN.into(),
                    ARC_EXECUTION.into(),
                    ARC_ROUTE53_BLOCK.into(),
                ],
            },
        ],
    }
}

// AWS documentation each term rests on.
const CW_ALARM_EVALUATION: &str =
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html";
const CW_PUT_METRIC_ALARM: &str =
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricAlarm.html";
const LAMBDA_ASYNC: &str = "https://docs.aws.amazon.com/lambda/latest/dg/invocation-async.html";
const SFN_START_EXECUTION: &str =
    "https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html";
const RDS_PROMOTE: &str =
    "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/USER_ReadRepl.Promote.html";
const AURORA_DR: &str = "https://docs.aws.amazon.com/AmazonRDS/latest/AuroraUserGuide/aurora-global-database-disaster-recovery.html";
const S3_PUT_REPLICATION: &str =
    "https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketReplication.html";
const ASG_LIFECYCLE: &str =
    "https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-lifecycle.html";
const ECS_SERVICE: &str =
    "https://docs.aws.amazon.com/AmazonECS/latest/developerguide/ecs_services.html";
const DYNAMODB_GLOBAL: &str =
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GlobalTables.html";
const R53_HOW_HEALTH: &str = "https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/dns-failover-determining-health-of-endpoints.html";
const R53_ALARM_IDENTIFIER: &str =
    "https://docs.aws.amazon.com/Route53/latest/APIReference/API_AlarmIdentifier.html";
const R53_HEALTH_CHECK_CONFIG: &str =
    "https://docs.aws.amazon.com/Route53/latest/APIReference/API_HealthCheckConfig.html";
const R53_TTL_ADVICE: &str = "https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/resource-record-sets-values-failover.html";
const R53_TTL_BEST_PRACTICES: &str =
    "https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/best-practices-dns.html";
const ARC_CREATE_PLAN: &str =
    "https://docs.aws.amazon.com/arc-region-switch/latest/api/API_CreatePlan.html";
const ARC_EXECUTION: &str =
    "https://docs.aws.amazon.com/arc-region-switch/latest/api/API_AbbreviatedExecution.html";
const ARC_ROUTE53_BLOCK: &str =
    "https://docs.aws.amazon.com/r53recovery/latest/dg/route53-health-check-block.html";

/// Longest probe schedule the round arithmetic accepts (a day).
const MAX_SCHEDULE_SECONDS: u32 = 86_400;

/// When each round of a scheduled run starts, in seconds after the run starts: the first
/// at once, then one every `interval` while the window lasts (health-probe's loop), never
/// into the next run.
fn round_offsets(schedule: u32, window: u32, interval: u32) -> Vec<u32> {
    let interval = interval.max(1);
    let mut offsets = vec![0];
    let mut t = interval;
    while t < window && t < schedule {
        offsets.push(t);
        t = t.saturating_add(interval);
    }
    offsets
}

/// Detection: a Region breaks at a uniformly random moment of the schedule's cycle; the
/// next round is the first to fail, and `failure_threshold - 1` rounds later the verdict is
/// `unhealthy`, published when that round's probes time out.
fn probe_rounds(
    spec: &WorkloadSpec,
    deployed: &Deployed,
    scenario: &Scenario,
    warnings: &mut Vec<String>,
) -> Term {
    let policy = &spec.policy;
    let schedule = deployed
        .probe_schedule_seconds
        .clamp(1, MAX_SCHEDULE_SECONDS);
    let offsets = round_offsets(
        schedule,
        deployed.probe_window_seconds,
        policy.probe_interval_seconds,
    );
    let n = offsets.len();
    // gaps[j]: from round j to the next (the last to the next run's first).
    let gaps: Vec<u32> = (0..n)
        .map(|j| offsets.get(j + 1).copied().unwrap_or(schedule) - offsets[j])
        .collect();
    let k = u64::from(policy.failure_threshold.max(1));
    let more = k - 1;
    let full_cycles = more / n as u64;
    let rest = usize::try_from(more % n as u64).unwrap_or(0);
    let s = f64::from(schedule);
    // prefix[i]: the first i gaps of two cycles, so the `rest` gaps from round j are
    // prefix[j + rest] - prefix[j] (rest < n): linear in the rounds.
    let mut prefix = Vec::with_capacity(2 * n + 1);
    prefix.push(0_u64);
    for m in 0..2 * n {
        let last = prefix.last().copied().unwrap_or(0);
        prefix.push(last + u64::from(gaps[m % n]));
    }
    let (mut wait_mean, mut follow_mean, mut worst) = (0.0_f64, 0.0_f64, 0.0_f64);
    for j in 0..n {
        let before = f64::from(gaps[(j + n - 1) % n]);
        // Full cycles are a day at most each and there are at most 2^32 of them, and a
        // partial sum is under two days: exact.
        #[allow(clippy::cast_precision_loss)]
        let follow = full_cycles as f64 * s + (prefix[j + rest] - prefix[j]) as f64;
        wait_mean += before * before / (2.0 * s);
        follow_mean += before * follow / s;
        worst = worst.max(before + follow);
    }
    let timeout_ms = spec
        .region(&scenario.from_region)
        .and_then(|r| r.endpoints.iter().map(|e| e.timeout_ms).max())
        .unwrap_or(0);
    // Probe timeouts are milliseconds far below 2^53.
    #[allow(clippy::cast_precision_loss)]
    let timeout = timeout_ms as f64 / 1000.0;
    if policy.probe_interval_seconds > schedule {
        warnings.push(format!(
            "policy.probe_interval_seconds {} is longer than the {schedule}-s probe schedule: each scheduled run probes once, so rounds are {schedule} s apart",
            policy.probe_interval_seconds
        ));
    }
    let max_gap = gaps.iter().copied().max().unwrap_or(schedule);
    let uniform = gaps.iter().all(|g| *g == gaps[0]);
    let rounds = if uniform {
        format!("a round every {}", secs(f64::from(gaps[0])))
    } else {
        format!(
            "rounds at {} s of each {schedule}-s run (gaps {} s)",
            offsets
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            gaps.iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    let follow_text = if uniform {
        format!("({} − 1) × {}", k, secs(f64::from(gaps[0])))
    } else {
        format!("{} more rounds (mean {})", more, secs(follow_mean))
    };
    Term {
        phase: Phase::Detection,
        name: "probe rounds".into(),
        seconds: Span::new(wait_mean + follow_mean + timeout, worst + timeout),
        formula: format!(
            "next round (mean {}, ≤ {}) + {follow_text} + {} probe timeout; {rounds}",
            secs(wait_mean),
            secs(f64::from(max_gap)),
            secs(timeout)
        ),
        sources: vec![
            format!(
                "Lifeboat setting `policy.failure_threshold` ({})",
                policy.failure_threshold
            ),
            format!(
                "Lifeboat setting `policy.probe_interval_seconds` ({})",
                policy.probe_interval_seconds
            ),
            format!(
                "Lifeboat setting `ProbeSchedule` ({schedule} s) and `ProbeWindowSeconds` ({}) (template.yaml)",
                deployed.probe_window_seconds
            ),
            format!(
                "Lifeboat setting `regions[].endpoints[].timeout_ms` ({timeout_ms}, the slowest of {})",
                scenario.from_region
            ),
        ],
        assumed: false,
    }
}

/// An alarm on a metric that stays breaching: the period holding the first breaching
/// datum closes (half a period on average), `M - 1` more periods breach, and the next
/// evaluation sees the datum after its delivery delay. Evaluations cover whole periods
/// (alarm-evaluation: "at the end of minute 5 the alarm evaluates based on data from
/// minutes 1 to 5"); a datum that arrives after its period's evaluation is seen with the
/// next period's, which is breaching too.
fn alarm_span(alarm: &AlarmTiming, delay: Span) -> Span {
    let period = f64::from(alarm.period_seconds.max(1));
    let more = f64::from(alarm.datapoints_to_alarm.max(1) - 1) * period;
    Span::new(
        period / 2.0 + more + delay.expected_seconds,
        period + more + delay.worst_seconds,
    )
}

fn alarm_formula(alarm: &AlarmTiming, delay: Span) -> String {
    let period = f64::from(alarm.period_seconds.max(1));
    let m = alarm.datapoints_to_alarm.max(1);
    let cadence = if alarm.period_seconds < 60 {
        "evaluated every 10 s"
    } else {
        "evaluated every minute"
    };
    let more = if m > 1 {
        format!(" + ({m} − 1) × {}", secs(period))
    } else {
        String::new()
    };
    format!(
        "period closes (mean {}, ≤ {}){more} + datum delay {} (≤ {}); {m} of {} periods of {}, {cadence}",
        secs(period / 2.0),
        secs(period),
        secs(delay.expected_seconds),
        secs(delay.worst_seconds),
        alarm.evaluation_periods,
        secs(period)
    )
}

fn delay_assumption(delay: Span) -> String {
    format!(
        "assumption: a datum reaches the alarm's evaluation {} (at most {}) after PutMetricData; AWS documents no figure",
        secs(delay.expected_seconds),
        secs(delay.worst_seconds)
    )
}

fn failover_alarm(deployed: &Deployed) -> Term {
    let alarm = &deployed.failover_alarm;
    let delay = deployed.assumptions.metric_delay;
    Term {
        phase: Phase::Detection,
        name: "failover alarm".into(),
        seconds: alarm_span(alarm, delay),
        formula: alarm_formula(alarm, delay),
        sources: vec![
            format!(
                "Lifeboat setting the health alarms (`HomeHealthAlarm`..) Period {} s, DatapointsToAlarm {} of EvaluationPeriods {} (`FailoverEvaluationPeriods`), RegionHealthy {} (template.yaml, health-probe)",
                alarm.period_seconds,
                alarm.datapoints_to_alarm,
                alarm.evaluation_periods,
                if alarm.high_resolution_metric {
                    "with StorageResolution 1"
                } else {
                    "at standard resolution"
                }
            ),
            CW_ALARM_EVALUATION.into(),
            CW_PUT_METRIC_ALARM.into(),
            delay_assumption(delay),
        ],
        assumed: true,
    }
}

fn data_tier(spec: &WorkloadSpec, deployed: &Deployed, scenario: &Scenario) -> Vec<Term> {
    let Some(target) = spec.region(&scenario.to_region) else {
        return vec![];
    };
    let a = &deployed.assumptions;
    let poll = f64::from(deployed.poll_seconds);
    let polled = |promotion: Span| promotion.plus(Span::new(poll / 2.0, poll));
    let poll_source = format!(
        "Lifeboat setting `timing.poll_seconds` ({}, the failover machine's status polls)",
        deployed.poll_seconds
    );
    let mut terms = Vec::new();
    let rds: Vec<&str> = target
        .databases
        .iter()
        .filter_map(|d| match d {
            DatabaseRef::RdsInstance { instance_id, .. } => Some(instance_id.as_str()),
            DatabaseRef::AuroraGlobal { .. } => None,
        })
        .collect();
    if !rds.is_empty() {
        terms.push(Term {
            phase: Phase::DataTier,
            name: "RDS read-replica promotion".into(),
            seconds: polled(a.rds_promotion),
            formula: format!(
                "PromoteReadReplica of {} until available: {} + status poll (mean {}, ≤ {})",
                rds.join(", "),
                span_text(a.rds_promotion),
                secs(poll / 2.0),
                secs(poll)
            ),
            sources: vec![
                RDS_PROMOTE.into(),
                poll_source.clone(),
                format!(
                    "assumption: {} (at most {}) for AWS's \"several minutes or longer, depending on the size of the read replica\"; measure it in a drill",
                    secs(a.rds_promotion.expected_seconds),
                    secs(a.rds_promotion.worst_seconds)
                ),
            ],
            assumed: true,
        });
    }
    let aurora: Vec<&str> = target
        .databases
        .iter()
        .filter_map(|d| match d {
            DatabaseRef::AuroraGlobal {
                global_cluster_id, ..
            } => Some(global_cluster_id.as_str()),
            DatabaseRef::RdsInstance { .. } => None,
        })
        .collect();
    if !aurora.is_empty() {
        let (name, call) = if scenario.planned {
            (
                "Aurora global database switchover",
                "SwitchoverGlobalCluster",
            )
        } else {
            (
                "Aurora global database failover",
                "FailoverGlobalCluster (AllowDataLoss)",
            )
        };
        terms.push(Term {
            phase: Phase::DataTier,
            name: name.into(),
            seconds: polled(a.aurora_global),
            formula: format!(
                "{call} of {} until the target writes: {} + status poll (mean {}, ≤ {})",
                aurora.join(", "),
                span_text(a.aurora_global),
                secs(poll / 2.0),
                secs(poll)
            ),
            sources: vec![
                AURORA_DR.into(),
                poll_source.clone(),
                format!(
                    "assumption: {} (at most {}) for AWS's \"RTO can be in the order of minutes\"",
                    secs(a.aurora_global.expected_seconds),
                    secs(a.aurora_global.worst_seconds)
                ),
            ],
            assumed: true,
        });
    }
    if !target.buckets.is_empty() {
        terms.push(Term {
            phase: Phase::DataTier,
            name: "S3 replication flip".into(),
            seconds: a.s3_flip,
            formula: format!(
                "PutBucketReplication on {}: {}",
                target
                    .buckets
                    .iter()
                    .map(|b| b.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                span_text(a.s3_flip)
            ),
            sources: vec![
                S3_PUT_REPLICATION.into(),
                format!(
                    "assumption: {} (at most {}) for a few S3 control-plane calls",
                    secs(a.s3_flip.expected_seconds),
                    secs(a.s3_flip.worst_seconds)
                ),
            ],
            assumed: true,
        });
    }
    if !target.compute.is_empty() {
        // Bounded by the policy: compute_status stops waiting at max_wait_seconds.
        #[allow(clippy::cast_precision_loss)]
        let wait = spec.policy.compute.max_wait_seconds as f64;
        let scale = Span::new(
            a.compute_scale_out.expected_seconds.min(wait),
            a.compute_scale_out.worst_seconds.min(wait),
        );
        let ids: Vec<String> = target
            .compute
            .iter()
            .map(|c| format!("{} {}", c.resource.kind(), c.resource.id()))
            .collect();
        terms.push(Term {
            phase: Phase::DataTier,
            name: "compute scale-out".into(),
            seconds: polled(scale),
            formula: format!(
                "compute_scale of {} to what the Region being left ran (policy.compute.failover_to), beside the data tier, then compute_status until in service: {} (never past policy.compute.max_wait_seconds = {}) + status poll (mean {}, ≤ {})",
                ids.join(", "),
                span_text(scale),
                secs(wait),
                secs(poll / 2.0),
                secs(poll)
            ),
            sources: vec![
                ASG_LIFECYCLE.into(),
                ECS_SERVICE.into(),
                format!(
                    "Lifeboat setting `policy.compute.max_wait_seconds` ({})",
                    spec.policy.compute.max_wait_seconds
                ),
                poll_source.clone(),
                format!(
                    "assumption: {} (at most {}) for instances to launch and pass into InService or tasks to start; AWS documents no figure, measure it in a drill (the report's \"Prepared before traffic moved\")",
                    secs(a.compute_scale_out.expected_seconds),
                    secs(a.compute_scale_out.worst_seconds)
                ),
            ],
            assumed: true,
        });
    }
    if !target.dynamodb_tables.is_empty() {
        terms.push(Term {
            phase: Phase::DataTier,
            name: "DynamoDB global table check".into(),
            seconds: a.dynamodb_verify,
            formula: format!(
                "nothing to promote (every replica takes writes): the model's write Region changes; {} checked: {}",
                target.dynamodb_tables.join(", "),
                span_text(a.dynamodb_verify)
            ),
            sources: vec![
                DYNAMODB_GLOBAL.into(),
                format!(
                    "assumption: {} (at most {}) for a DescribeTable",
                    secs(a.dynamodb_verify.expected_seconds),
                    secs(a.dynamodb_verify.worst_seconds)
                ),
            ],
            assumed: true,
        });
    }
    terms
}

fn traffic(spec: &WorkloadSpec, deployed: &Deployed, scenario: &Scenario) -> Vec<Term> {
    let a = &deployed.assumptions;
    let switch = spec
        .region(&scenario.from_region)
        .and_then(|r| r.routing_switch.as_ref());
    let where_ = switch.map_or_else(
        || format!("{}'s routing switch", scenario.from_region),
        |s| format!("{} = 0 in {}", s.metric_name, s.region),
    );
    let alarm = &deployed.switch_alarm;
    let delay = a.metric_delay;
    vec![
        Term {
            phase: Phase::Traffic,
            name: "traffic-shifter".into(),
            seconds: a.traffic_shifter,
            formula: format!("PutMetricData {where_}: {}", span_text(a.traffic_shifter)),
            sources: vec![
                "Lifeboat step `ShiftTraffic` (traffic-shifter `failover`, lifeboat::switch)"
                    .into(),
                format!(
                    "assumption: {} (at most {}, bounded by the attempt timeouts)",
                    secs(a.traffic_shifter.expected_seconds),
                    secs(a.traffic_shifter.worst_seconds)
                ),
            ],
            assumed: true,
        },
        Term {
            phase: Phase::Traffic,
            name: "switch alarm".into(),
            seconds: alarm_span(alarm, delay),
            formula: alarm_formula(alarm, delay),
            sources: vec![
                format!(
                    "Lifeboat setting switch alarms (`Switch1Alarm`..) Period {} s, {} of {} (template.yaml)",
                    alarm.period_seconds, alarm.datapoints_to_alarm, alarm.evaluation_periods
                ),
                R53_HOW_HEALTH.into(),
                R53_ALARM_IDENTIFIER.into(),
                CW_ALARM_EVALUATION.into(),
                delay_assumption(delay),
            ],
            assumed: true,
        },
        Term {
            phase: Phase::Traffic,
            name: "Route 53 → DNS".into(),
            seconds: a.route53_follow,
            formula: format!(
                "the CLOUDWATCH_METRIC check follows the alarm's data stream (not its state; RequestInterval and FailureThreshold are endpoint-check settings) and DNS stops answering {}: {}",
                scenario.from_region,
                span_text(a.route53_follow)
            ),
            sources: vec![
                R53_HOW_HEALTH.into(),
                R53_HEALTH_CHECK_CONFIG.into(),
                format!(
                    "assumption: {} (at most {}); AWS documents neither how often the check reads the data stream nor how soon the name servers act on its status",
                    secs(a.route53_follow.expected_seconds),
                    secs(a.route53_follow.worst_seconds)
                ),
            ],
            assumed: true,
        },
    ]
}

/// Whether CloudWatch takes `period` for an alarm: 10, 20, 30 or a multiple of 60.
fn valid_period(period: u32) -> bool {
    matches!(period, 10 | 20 | 30) || (period >= 60 && period.is_multiple_of(60))
}

fn check(deployed: &Deployed, spec: &WorkloadSpec, scenario: &Scenario) -> Vec<String> {
    let mut w = Vec::new();
    for (name, alarm) in [
        ("failover alarm", &deployed.failover_alarm),
        ("switch alarm", &deployed.switch_alarm),
    ] {
        if !valid_period(alarm.period_seconds) {
            w.push(format!(
                "{name} Period {} s: CloudWatch takes 10, 20, 30 or a multiple of 60 ({CW_PUT_METRIC_ALARM})",
                alarm.period_seconds
            ));
        }
        if alarm.datapoints_to_alarm == 0 || alarm.datapoints_to_alarm > alarm.evaluation_periods {
            w.push(format!(
                "{name} DatapointsToAlarm {} must be 1 to EvaluationPeriods {}",
                alarm.datapoints_to_alarm, alarm.evaluation_periods
            ));
        }
    }
    let f = &deployed.failover_alarm;
    if f.period_seconds < 60 && !f.high_resolution_metric {
        w.push(format!(
            "failover alarm Period {} s needs RegionHealthy published with StorageResolution 1; on a standard-resolution metric the alarm lapses into INSUFFICIENT_DATA ({CW_PUT_METRIC_ALARM})",
            f.period_seconds
        ));
    }
    let s = &deployed.switch_alarm;
    if s.period_seconds < 60 || s.high_resolution_metric {
        w.push(format!(
            "switch alarm: Route 53 health checks support only alarms on standard-resolution metrics ({R53_ALARM_IDENTIFIER}); Period {} s",
            s.period_seconds
        ));
    }
    if deployed.record_ttl_seconds > 60 {
        w.push(format!(
            "record TTL {} s: Route 53 recommends 60 seconds or less for records with health checks ({R53_TTL_ADVICE})",
            deployed.record_ttl_seconds
        ));
    }
    if deployed.probe_schedule_seconds == 0
        || deployed.probe_schedule_seconds > MAX_SCHEDULE_SECONDS
    {
        w.push(format!(
            "probe schedule {} s is outside 1 s to a day; projected as {} s",
            deployed.probe_schedule_seconds,
            deployed
                .probe_schedule_seconds
                .clamp(1, MAX_SCHEDULE_SECONDS)
        ));
    }
    if deployed.probe_window_seconds >= deployed.probe_schedule_seconds {
        w.push(format!(
            "ProbeWindowSeconds {} is not shorter than the {}-s probe schedule: scheduled runs would overlap",
            deployed.probe_window_seconds, deployed.probe_schedule_seconds
        ));
    }
    if spec.region(&scenario.from_region).is_none() {
        w.push(format!(
            "`{}` is not a Region of {}: nothing to fail away from",
            scenario.from_region, spec.workload
        ));
    }
    if scenario.to_region == scenario.from_region || spec.region(&scenario.to_region).is_none() {
        w.push(format!(
            "no Region to fail over to (`{}`): the data tier is left out",
            scenario.to_region
        ));
    }
    w
}

/// Seconds for people: whole numbers bare, else one decimal.
fn secs(x: f64) -> String {
    let r = (x * 10.0).round() / 10.0;
    if (r - r.trunc()).abs() < 1e-9 {
        format!("{r:.0} s")
    } else {
        format!("{r:.1} s")
    }
}

fn span_text(s: Span) -> String {
    if (s.expected_seconds - s.worst_seconds).abs() < 1e-9 {
        secs(s.expected_seconds)
    } else {
        format!("{} (≤ {})", secs(s.expected_seconds), secs(s.worst_seconds))
    }
}

impl fmt::Display for RtoBudget {
    /// An aligned table: one row per term (phase, term, expected, worst, formula) with its
    /// sources below it, then the totals, warnings and comparisons.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sc = &self.scenario;
        let start = match sc.start {
            Start::Alarm => "started by the failover alarm",
            Start::Operator => "started by an operator or a schedule",
        };
        writeln!(
            f,
            "Projected RTO on AWS — {}: {} → {} ({start}, {})",
            self.workload,
            sc.from_region,
            sc.to_region,
            if sc.planned { "planned" } else { "unplanned" }
        )?;
        let label = |t: &Term| {
            if t.assumed {
                format!("{} (assumed)", t.name)
            } else {
                t.name.clone()
            }
        };
        let totals = [
            "detection + decision + traffic".to_owned(),
            if self.traffic_moved == self.detection_decision_traffic {
                "traffic moved".to_owned()
            } else {
                "traffic moved (after the data tier)".to_owned()
            },
            "full RTO (with the record TTL)".to_owned(),
        ];
        let phase_w = self
            .terms
            .iter()
            .map(|t| t.phase.as_str().chars().count())
            .chain(["phase".len()])
            .max()
            .unwrap_or(5);
        let name_w = self
            .terms
            .iter()
            .map(|t| label(t).chars().count())
            .chain(["term".len()])
            .max()
            .unwrap_or(4);
        let left_w =
            (phase_w + 2 + name_w).max(totals.iter().map(|t| t.chars().count()).max().unwrap_or(0));
        let name_w = left_w - phase_w - 2;
        let num_w = self
            .terms
            .iter()
            .flat_map(|t| [t.seconds.expected_seconds, t.seconds.worst_seconds])
            .chain([
                self.full.expected_seconds,
                self.full.worst_seconds,
                self.traffic_moved.worst_seconds,
            ])
            .map(|x| secs(x).chars().count())
            .chain(["expected".len()])
            .max()
            .unwrap_or(8);
        let pad = |s: &str, w: usize| {
            let n = s.chars().count();
            format!("{s}{}", " ".repeat(w.saturating_sub(n)))
        };
        let rpad = |s: &str, w: usize| {
            let n = s.chars().count();
            format!("{}{s}", " ".repeat(w.saturating_sub(n)))
        };
        writeln!(
            f,
            "  {}  {}  {}  {}  formula",
            pad("phase", phase_w),
            pad("term", name_w),
            rpad("expected", num_w),
            rpad("worst", num_w)
        )?;
        let indent = " ".repeat(2 + left_w + 2 + num_w + 2 + num_w + 2);
        for t in &self.terms {
            writeln!(
                f,
                "  {}  {}  {}  {}  {}",
                pad(t.phase.as_str(), phase_w),
                pad(&label(t), name_w),
                rpad(&secs(t.seconds.expected_seconds), num_w),
                rpad(&secs(t.seconds.worst_seconds), num_w),
                t.formula
            )?;
            writeln!(f, "{indent}sources: {}", t.sources.join(" · "))?;
        }
        let target = format!(
            "target ≤ {} s: {}",
            self.target_seconds,
            if self.meets_target { "met" } else { "missed" }
        );
        let objective = format!(
            "policy.rto_seconds {} s: {}",
            self.rto_seconds,
            match (self.over_budget, self.worst_over_budget) {
                (true, _) => "OVER BUDGET",
                (false, true) => "within (the worst case is over)",
                (false, false) => "within",
            }
        );
        for (label, span, note) in [
            (&totals[0], self.detection_decision_traffic, target.as_str()),
            (&totals[1], self.traffic_moved, ""),
            (&totals[2], self.full, objective.as_str()),
        ] {
            let row = format!(
                "  {}  {}  {}  {note}",
                pad(label, left_w),
                rpad(&secs(span.expected_seconds), num_w),
                rpad(&secs(span.worst_seconds), num_w)
            );
            writeln!(f, "{}", row.trim_end())?;
        }
        for w in &self.warnings {
            writeln!(f, "  warning: {w}")?;
        }
        for c in &self.comparisons {
            let figure = c
                .seconds
                .map_or_else(|| "AWS documents no execution time".to_owned(), secs);
            writeln!(f, "  compare: {}: {figure}; {}", c.name, c.formula)?;
        }
        writeln!(
            f,
            "  (assumed): the term rests on a stated assumption, not a documented AWS figure (docs/rto.md)"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Endpoint;

    const EXAMPLE: &str = include_str!("../../events/model/example-spec.json");

    fn example() -> WorkloadSpec {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    /// The example spec with the policy defaults (what a spec that leaves them out gets).
    fn example_with_default_policy() -> WorkloadSpec {
        let mut json: serde_json::Value = serde_json::from_str(EXAMPLE).unwrap();
        let policy = json["policy"].as_object_mut().unwrap();
        for field in [
            "failure_threshold",
            "recovery_threshold",
            "probe_interval_seconds",
        ] {
            policy.remove(field);
        }
        serde_json::from_value(json).unwrap()
    }

    fn term<'a>(b: &'a RtoBudget, name: &str) -> &'a Term {
        b.terms
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("no term `{name}` in {:?}", names(b)))
    }

    fn names(b: &RtoBudget) -> Vec<&str> {
        b.terms.iter().map(|t| t.name.as_str()).collect()
    }

    #[track_caller]
    fn close(actual: Span, expected: f64, worst: f64) {
        // Exact up to the rounding of summing many gaps.
        let near = |a: f64, b: f64| (a - b).abs() <= 1e-9 * b.abs().max(1.0);
        assert!(
            near(actual.expected_seconds, expected) && near(actual.worst_seconds, worst),
            "got {actual:?}, want expected {expected} worst {worst}"
        );
    }

    #[test]
    fn the_automatic_failover_leaves_the_primary_for_the_heaviest_secondary() {
        let s = Scenario::automatic(&example());
        assert_eq!(s.from_region, "us-east-1");
        assert_eq!(
            s.to_region, "eu-west-1",
            "weight 30 before ap-southeast-1's 20"
        );
        assert_eq!(s.start, Start::Alarm);
        assert!(!s.planned);
    }

    #[test]
    fn every_term_with_the_defaults_against_hand_computed_figures() {
        let spec = example_with_default_policy();
        let b = budget(&spec, &Deployed::default());
        assert_eq!(
            names(&b),
            [
                "probe rounds",
                "failover alarm",
                "executor start",
                "decide + lease",
                "RDS read-replica promotion",
                "S3 replication flip",
                "traffic-shifter",
                "switch alarm",
                "Route 53 → DNS",
                "record TTL",
            ]
        );
        // Rounds every 10 s at 0..50 s of each minute (window 55 s): the next round comes
        // in 5 s on average, at most 10 s; two more rounds make three failures; then the
        // 2-s probe timeout of a Region that hangs.
        close(
            term(&b, "probe rounds").seconds,
            5.0 + 20.0 + 2.0,
            10.0 + 20.0 + 2.0,
        );
        // 10-s periods, one datapoint: the period closes in 5 s on average (at most 10),
        // plus the datum's 5-s delay (at most 10).
        close(term(&b, "failover alarm").seconds, 10.0, 20.0);
        close(term(&b, "executor start").seconds, 1.0, 5.0);
        close(term(&b, "decide + lease").seconds, 2.0, 8.0);
        // eu-west-1's RDS replica: 180 s (600 s) and the machine's 15-s polls.
        close(
            term(&b, "RDS read-replica promotion").seconds,
            180.0 + 7.5,
            600.0 + 15.0,
        );
        close(term(&b, "S3 replication flip").seconds, 2.0, 10.0);
        close(term(&b, "traffic-shifter").seconds, 1.0, 5.0);
        // One-minute standard-resolution period: 30 s on average to close (at most 60)
        // plus the datum's delay.
        close(term(&b, "switch alarm").seconds, 35.0, 70.0);
        close(term(&b, "Route 53 → DNS").seconds, 10.0, 30.0);
        // Resolvers hold the answer for the rest of its TTL: half of 60 s on average.
        close(term(&b, "record TTL").seconds, 30.0, 60.0);
        assert!(term(&b, "executor start").assumed);
        assert!(!term(&b, "probe rounds").assumed);
        assert_eq!(b.warnings, Vec::<String>::new());
    }

    #[test]
    fn the_example_meets_90_s_for_detection_decision_and_traffic_with_the_defaults() {
        let b = budget(&example_with_default_policy(), &Deployed::default());
        // 27 + 10 + 1 + 2 + 1 + 35 + 10; worst 32 + 20 + 5 + 8 + 5 + 70 + 30.
        close(b.detection_decision_traffic, 86.0, 170.0);
        assert!(b.meets_target);
        assert_eq!(b.target_seconds, 90);
        // The example's own policy says the same as the defaults.
        assert_eq!(
            budget(&example(), &Deployed::default()).detection_decision_traffic,
            b.detection_decision_traffic
        );
    }

    #[test]
    fn totals_follow_the_machine_order_and_the_rto_objective() {
        let b = budget(&example_with_default_policy(), &Deployed::default());
        // The machine promotes first (the data tier's longest branch, RDS), then shifts.
        close(b.traffic_moved, 86.0 + 187.5, 170.0 + 615.0);
        close(b.full, 273.5 + 30.0, 785.0 + 60.0);
        assert_eq!(b.rto_seconds, 300);
        assert!(b.over_budget, "303.5 s expected against 300 s");
        assert!(b.worst_over_budget);

        // Traffic moved beside the promotion: DNS moves at 86 s, the writer is there at
        // 27 + 10 + 1 + 2 + 187.5 = 227.5 s (worst 32 + 20 + 5 + 8 + 615 = 680 s), clients
        // follow within the TTL.
        let parallel = Deployed {
            traffic_waits_for_data_tier: false,
            ..Deployed::default()
        };
        let b = budget(&example_with_default_policy(), &parallel);
        close(b.traffic_moved, 86.0, 170.0);
        close(b.full, 227.5 + 30.0, 680.0 + 60.0);
        assert!(!b.over_budget);
        assert!(b.worst_over_budget);
    }

    #[test]
    fn over_budget_is_flagged_and_shown() {
        let mut spec = example();
        spec.policy.rto_seconds = 200;
        let b = budget(&spec, &Deployed::default());
        assert!(b.over_budget && b.worst_over_budget);
        let text = b.to_string();
        assert!(text.contains("OVER BUDGET"), "{text}");

        spec.policy.rto_seconds = 900;
        let b = budget(&spec, &Deployed::default());
        assert!(!b.over_budget && !b.worst_over_budget);
        assert!(!b.to_string().contains("OVER BUDGET"));
    }

    #[test]
    fn a_standard_resolution_failover_alarm_misses_the_target() {
        // The first wave's template: a 50-s window, three one-minute periods.
        let before = Deployed {
            probe_window_seconds: 50,
            failover_alarm: AlarmTiming {
                period_seconds: 60,
                evaluation_periods: 3,
                datapoints_to_alarm: 3,
                high_resolution_metric: false,
            },
            ..Deployed::default()
        };
        let b = budget(&example(), &before);
        // Rounds at 0..40 s, then 20 s to the next minute's first round.
        // Expected wait + two gaps: (20·(10+20) + 10·(5+20)·2 + 10·(5+30)·2) / 60 = 30.
        close(term(&b, "probe rounds").seconds, 30.0 + 2.0, 40.0 + 2.0);
        // Three one-minute periods: 30 + 120 + 5 (60 + 120 + 10).
        close(term(&b, "failover alarm").seconds, 155.0, 190.0);
        // Worst: 42 + 190 + 5 + 8 + 5 + 70 + 30.
        close(b.detection_decision_traffic, 236.0, 350.0);
        assert!(!b.meets_target);
        assert!(b.to_string().contains("missed"));
    }

    #[test]
    fn detection_follows_the_policy_and_the_probe_window() {
        let mut spec = example();
        // The runbook's rule: two failures of one-minute checks.
        spec.policy.failure_threshold = 2;
        spec.policy.probe_interval_seconds = 60;
        let b = budget(&spec, &Deployed::default());
        close(
            term(&b, "probe rounds").seconds,
            30.0 + 60.0 + 2.0,
            60.0 + 60.0 + 2.0,
        );

        // Two failures at 10 s with the old 50-s window: gaps 10, 10, 10, 10, 20.
        // Expected: (20·(10+10) + 3·10·(5+10) + 10·(5+20)) / 60 = 18.33..; worst 20 + 10.
        spec.policy.probe_interval_seconds = 10;
        let old = Deployed {
            probe_window_seconds: 50,
            ..Deployed::default()
        };
        let b = budget(&spec, &old);
        close(
            term(&b, "probe rounds").seconds,
            1100.0 / 60.0 + 2.0,
            30.0 + 2.0,
        );

        // One round a minute (ProbeWindowSeconds 0), three failures: 30 + 120 + 2.
        spec.policy.failure_threshold = 3;
        let one_round = Deployed {
            probe_window_seconds: 0,
            ..Deployed::default()
        };
        let b = budget(&spec, &one_round);
        close(term(&b, "probe rounds").seconds, 152.0, 182.0);

        // The probe timeout is the Region's slowest endpoint.
        spec.regions[0].endpoints.push(Endpoint {
            url: "https://use1.checkout.example.com/deep".into(),
            expected_status: 200,
            body_contains: None,
            timeout_ms: 4_500,
        });
        let b = budget(&spec, &Deployed::default());
        close(term(&b, "probe rounds").seconds, 25.0 + 4.5, 30.0 + 4.5);
        assert!(
            term(&b, "probe rounds").formula.contains("4.5 s"),
            "{}",
            term(&b, "probe rounds").formula
        );
    }

    #[test]
    fn a_pathological_schedule_is_computed_at_once() {
        // A round every second for a day, a failure threshold in the thousands: linear.
        let mut spec = example();
        spec.policy.probe_interval_seconds = 1;
        spec.policy.failure_threshold = 50_000;
        let d = Deployed {
            probe_schedule_seconds: 86_400,
            probe_window_seconds: 86_400,
            ..Deployed::default()
        };
        let b = budget(&spec, &d);
        close(
            term(&b, "probe rounds").seconds,
            0.5 + 49_999.0 + 2.0,
            1.0 + 49_999.0 + 2.0,
        );
        // A failure threshold of many cycles wraps around them: (k - 1) × 10 s.
        spec.policy.probe_interval_seconds = 10;
        spec.policy.failure_threshold = u32::MAX;
        let b = budget(&spec, &Deployed::default());
        let more = f64::from(u32::MAX - 1) * 10.0;
        close(
            term(&b, "probe rounds").seconds,
            5.0 + more + 2.0,
            10.0 + more + 2.0,
        );
    }

    #[test]
    fn alarms_follow_their_period_and_datapoints() {
        let spec = example();
        let mut d = Deployed::default();
        d.failover_alarm.period_seconds = 30;
        d.failover_alarm.datapoints_to_alarm = 2;
        d.failover_alarm.evaluation_periods = 3;
        d.switch_alarm.period_seconds = 120;
        d.assumptions.metric_delay = Span::new(2.0, 4.0);
        let b = budget(&spec, &d);
        // 15 + 30 + 2 (30 + 30 + 4).
        close(term(&b, "failover alarm").seconds, 47.0, 64.0);
        // 60 + 2 (120 + 4).
        close(term(&b, "switch alarm").seconds, 62.0, 124.0);
        assert!(
            term(&b, "failover alarm").formula.contains("2 of 3"),
            "{}",
            term(&b, "failover alarm").formula
        );
    }

    #[test]
    fn settings_aws_refuses_are_warned_about() {
        let spec = example();
        let mut d = Deployed::default();
        d.failover_alarm.high_resolution_metric = false;
        d.switch_alarm.period_seconds = 10;
        d.switch_alarm.high_resolution_metric = true;
        d.failover_alarm.period_seconds = 45;
        d.record_ttl_seconds = 300;
        let b = budget(&spec, &d);
        let all = b.warnings.join("\n");
        assert_eq!(b.warnings.len(), 4, "{all}");
        assert!(all.contains("StorageResolution"), "{all}");
        assert!(all.contains("Route 53"), "{all}");
        assert!(all.contains("45"), "{all}");
        assert!(all.contains("60 seconds or less"), "{all}");
        close(term(&b, "record TTL").seconds, 150.0, 300.0);
        assert!(b.to_string().contains("warning"));
    }

    #[test]
    fn the_data_tier_is_the_target_regions_engines_in_parallel() {
        let mut spec = example();
        let target = spec.regions.iter_mut().find(|r| r.region == "eu-west-1");
        let target = target.unwrap();
        target.databases = vec![DatabaseRef::AuroraGlobal {
            global_cluster_id: "checkout-global".into(),
            cluster_id: "checkout-euw1".into(),
        }];
        target.buckets.clear();
        target.dynamodb_tables = vec!["checkout-carts".into()];
        let b = budget(&spec, &Deployed::default());
        close(
            term(&b, "Aurora global database failover").seconds,
            60.0 + 7.5,
            300.0 + 15.0,
        );
        close(term(&b, "DynamoDB global table check").seconds, 1.0, 5.0);
        // Parallel branches: the phase takes the longest.
        close(b.traffic_moved, 86.0 + 67.5, 170.0 + 315.0);

        let planned = Scenario {
            start: Start::Operator,
            planned: true,
            ..Scenario::automatic(&spec)
        };
        let b = budget_for(&spec, &Deployed::default(), &planned);
        assert!(names(&b).contains(&"Aurora global database switchover"));
        // An operator's run has no detection: StartExecution is its start.
        assert!(b.terms.iter().all(|t| t.phase != Phase::Detection));
        assert!(!names(&b).contains(&"executor start"));
        close(
            b.detection_decision_traffic,
            2.0 + 1.0 + 35.0 + 10.0,
            8.0 + 5.0 + 70.0 + 30.0,
        );

        // Nothing to promote: the data tier costs nothing.
        let target = spec.regions.iter_mut().find(|r| r.region == "eu-west-1");
        let target = target.unwrap();
        target.databases.clear();
        target.dynamodb_tables.clear();
        target.buckets = vec![];
        let b = budget(&spec, &Deployed::default());
        assert!(b.terms.iter().all(|t| t.phase != Phase::DataTier));
        close(b.traffic_moved, 86.0, 170.0);
    }

    #[test]
    fn every_term_names_its_sources() {
        let b = budget(&example(), &Deployed::default());
        for t in &b.terms {
            assert!(!t.sources.is_empty(), "{} has no source", t.name);
            assert!(
                t.sources
                    .iter()
                    .all(|s| s.starts_with("https://docs.aws.amazon.com/")
                        || s.starts_with("Lifeboat setting ")
                        || s.starts_with("Lifeboat step ")
                        || s.starts_with("assumption: ")),
                "{}: {:?}",
                t.name,
                t.sources
            );
            assert_eq!(
                t.assumed,
                t.sources.iter().any(|s| s.starts_with("assumption: ")),
                "{}",
                t.name
            );
        }
        let probe = term(&b, "probe rounds");
        assert!(
            probe
                .sources
                .iter()
                .any(|s| s.contains("policy.failure_threshold"))
        );
        assert!(
            probe
                .sources
                .iter()
                .any(|s| s.contains("ProbeWindowSeconds"))
        );
        assert!(
            term(&b, "failover alarm")
                .sources
                .iter()
                .any(|s| s.contains("alarm-evaluation"))
        );
    }

    #[test]
    fn route_53_and_arc_are_compared() {
        let b = budget(&example(), &Deployed::default());
        let r53 = &b.comparisons[0];
        assert_eq!(r53.seconds, Some(90.0));
        assert!(r53.formula.contains("3 × 30 s"), "{}", r53.formula);
        let arc = &b.comparisons[1];
        assert!(arc.name.contains("ARC Region switch"));
        assert_eq!(arc.seconds, None, "AWS documents no execution time");
    }

    #[test]
    fn the_table_is_aligned_and_names_every_term() {
        let b = budget(&example(), &Deployed::default());
        let text = b.to_string();
        for t in &b.terms {
            assert!(text.contains(&t.name), "{} missing:\n{text}", t.name);
        }
        assert!(text.contains("checkout: us-east-1 → eu-west-1"), "{text}");
        assert!(text.contains("86 s"), "{text}");
        assert!(text.contains("(assumed)"), "{text}");
        // One row per term, ending with its formula; the formula column starts at the
        // same place on every row, so the numbers before it line up.
        let starts: Vec<usize> = b
            .terms
            .iter()
            .map(|t| {
                let row = text
                    .lines()
                    .find(|l| l.contains(&format!(" {} ", t.name)) && l.ends_with(&t.formula))
                    .unwrap_or_else(|| panic!("no row for {}:\n{text}", t.name));
                row.chars().count() - t.formula.chars().count()
            })
            .collect();
        assert!(starts.iter().all(|s| *s == starts[0]), "{starts:?}\n{text}");
    }

    /// Issue #15 item 5: a target with compute to scale adds its scale-out to the data
    /// tier (in parallel with the promotion, before traffic), never past the policy's
    /// wait.
    #[test]
    fn compute_scale_out_is_a_data_tier_term_bounded_by_the_policy_wait() {
        use crate::model::{ComputeRef, ComputeResource};
        let mut spec = example();
        let to = Scenario::automatic(&spec).to_region;
        assert!(!names(&budget(&spec, &Deployed::default())).contains(&"compute scale-out"));
        let target = spec.regions.iter_mut().find(|r| r.region == to).unwrap();
        target.compute = vec![ComputeRef {
            tier: "web".into(),
            resource: ComputeResource::AutoScalingGroup { name: "web".into() },
            full_capacity: None,
        }];
        let deployed = Deployed::default();
        let b = budget(&spec, &deployed);
        let t = term(&b, "compute scale-out");
        assert_eq!(t.phase, Phase::DataTier);
        assert!(
            t.assumed && t.formula.contains("auto_scaling_group web"),
            "{}",
            t.formula
        );
        let poll = f64::from(deployed.poll_seconds);
        assert_eq!(t.seconds, Span::new(120.0 + poll / 2.0, 300.0 + poll));
        // A shorter policy wait caps it: the run goes on (or stops) at max_wait_seconds.
        spec.policy.compute.max_wait_seconds = 60;
        let b = budget(&spec, &deployed);
        assert_eq!(
            term(&b, "compute scale-out").seconds,
            Span::new(60.0 + poll / 2.0, 60.0 + poll)
        );
        // It is the longest data-tier term here only if it outlasts the RDS promotion.
        assert!(b.full.worst_seconds >= term(&b, "compute scale-out").seconds.worst_seconds);
    }

    #[test]
    fn json_round_trips_for_the_dry_run_decision() {
        let b = budget(&example(), &Deployed::default());
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["terms"][0]["expected_seconds"], 27.0);
        assert_eq!(json["terms"][0]["phase"], "detection");
        let back: RtoBudget = serde_json::from_value(json).unwrap();
        assert_eq!(back, b);
        // A deployed configuration given in part takes the template's defaults for the rest.
        let d: Deployed =
            serde_json::from_value(serde_json::json!({"record_ttl_seconds": 30})).unwrap();
        assert_eq!(
            d,
            Deployed {
                record_ttl_seconds: 30,
                ..Deployed::default()
            }
        );
    }
}
