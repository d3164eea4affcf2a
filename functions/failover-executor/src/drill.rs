//! The DR drill: a failover in drill mode, then a failback, measured against the
//! objectives. Pure: [`prepare`] plans the nested executions, [`build_report`] measures
//! RTO and RPO from what the `drill` machine collected, [`render_markdown`] writes the
//! readable timeline. `lib.rs` does the I/O (spec, S3, the `RUN#` record).
//!
//! **RTO** is from the drill's trigger (the moment the drill starts the failover) to the
//! target serving as the probes see it (the failover's `finalize` mark, entered right
//! after the probes saw the target healthy).
//!
//! **RPO** has two witnesses: the replication lag into the target when the failover was
//! decided (from the health probe), and a canary object written in the primary's first
//! bucket before the failover and read back in the target's first bucket after it. A
//! canary found bounds the loss window by `promotion - written_at`; a canary missing is
//! data that did not arrive: the RPO is reported as not met, whatever the lag said. With
//! `"replication": "simulated"` (set by the local harness, which copies the canary
//! itself because the emulator replicates nothing) the report marks the RPO
//! `rpo_simulated: true`: it is never presented as measured.

use lifeboat::store::{HealthRecord, RunOutcome, RunRecord, TimelineEntry};
use lifeboat::{Error, Result, UnixMillis, WorkloadSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::decide::{Places, Plan, PlanStep, finish};
use crate::failback::{FailbackRequest, FailbackTiming, check_schedule};
use crate::request::{FailoverRequest, Mode, Timing, flatten_timeline};
use crate::steps::run_id;

/// The S3 key prefix of a canary object.
pub const CANARY_PREFIX: &str = "lifeboat-canary/";

/// How the canary gets to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Replication {
    /// AWS replicates it (S3 replication): the RPO is measured.
    #[default]
    Measured,
    /// A harness copies it (the emulator replicates nothing): the RPO is simulated.
    Simulated,
}

/// A drill request: the `drill` state machine's input (the EventBridge schedule sends a
/// constant one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillRequest {
    /// Workload id.
    pub workload: String,
    /// Where to fail over to; the failover decision picks when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_region: Option<String>,
    /// Planned (default: a switchover, RPO 0 expected) or unplanned.
    #[serde(default = "planned")]
    pub mode: Mode,
    /// `measured` (default) or `simulated` (the local harness copies the canary).
    #[serde(default)]
    pub replication: Replication,
    /// The failback's traffic stages (default `[10, 25, 50, 100]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Vec<u32>>,
    /// Why, for the audit trail.
    pub reason: String,
    /// Who: a person, or the schedule.
    pub requested_by: String,
    /// The machines' waits (read by the machines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<DrillTiming>,
    /// Only say what the drill would do: its plan (every step and AWS call, [`plan`]),
    /// and change nothing: no lease, no canary, no nested run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

fn planned() -> Mode {
    Mode::Planned
}

/// Wait settings of the drill and its nested executions. Defaults (in the machine):
/// 15 s polls, 40 verification polls, 80 lag polls, 20 canary polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillTiming {
    /// Seconds between polls.
    pub poll_seconds: u32,
    /// Verification polls (failover; per stage in the failback).
    pub verify_max_polls: u32,
    /// Replication-lag polls in the failback.
    pub lag_max_polls: u32,
    /// Canary reads in the target before it counts as missing.
    pub canary_max_polls: u32,
    /// The failback's soak per traffic stage (its machine's default, 300 s, if absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak_seconds: Option<u32>,
}

impl DrillTiming {
    /// The machine's defaults.
    pub const DEFAULT: DrillTiming = DrillTiming {
        poll_seconds: 15,
        verify_max_polls: 40,
        lag_max_polls: 80,
        canary_max_polls: 20,
        soak_seconds: None,
    };
}

/// A nested execution: its name and input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nested<T> {
    /// Execution name (deterministic: a retried task joins the same execution).
    pub name: String,
    /// Execution input.
    pub input: T,
}

/// The `prepare_drill` step's output: everything the drill machine needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillPlan {
    /// Workload id.
    pub workload: String,
    /// The drill's run id (its execution name).
    pub run_id: String,
    /// The primary when the drill started.
    pub primary_region: String,
    /// RTO objective.
    pub rto_seconds: u64,
    /// RPO objective.
    pub rpo_seconds: u64,
    /// Measured or simulated replication.
    pub replication: Replication,
    /// The canary's key (`lifeboat-canary/<run id>`).
    pub canary_key: String,
    /// The nested `failover` execution.
    pub failover: Nested<FailoverRequest>,
    /// The nested `failback` execution.
    pub failback: Nested<FailbackRequest>,
    /// The waits, defaulted.
    pub timing: DrillTiming,
}

/// An execution name: at most 80 characters of `[A-Za-z0-9-_]`, with `suffix` kept.
fn execution_name(base: &str, suffix: &str) -> String {
    let clean: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let room = 80usize.saturating_sub(suffix.len());
    let head: String = clean.chars().take(room).collect();
    format!("{head}{suffix}")
}

/// Plans a drill of `spec` for the drill execution `holder`.
pub fn prepare(spec: &WorkloadSpec, req: &DrillRequest, holder: &str) -> Result<DrillPlan> {
    for (field, value) in [
        ("workload", &req.workload),
        ("reason", &req.reason),
        ("requested_by", &req.requested_by),
        ("holder", &holder.to_owned()),
    ] {
        if value.trim().is_empty() {
            return Err(Error::InvalidInput(format!("{field}: must not be empty")));
        }
    }
    if req.workload != spec.workload {
        return Err(Error::InvalidInput(format!(
            "workload: request names `{}` but the spec is `{}`",
            req.workload, spec.workload
        )));
    }
    if let Some(s) = &req.schedule {
        check_schedule(s)?;
    }
    let primary = spec.primary().ok_or_else(|| {
        Error::InvalidInput(format!(
            "workload `{}` has no primary to drill a failover of",
            spec.workload
        ))
    })?;
    if let Some(t) = &req.target_region {
        match spec.region(t) {
            None => {
                return Err(Error::InvalidInput(format!(
                    "target_region: `{t}` is not a Region of workload `{}`",
                    spec.workload
                )));
            }
            Some(r) if r.region == primary.region => {
                return Err(Error::InvalidInput(format!(
                    "target_region: `{t}` is the primary of workload `{}`",
                    spec.workload
                )));
            }
            Some(_) => {}
        }
    }
    let id = run_id(holder);
    let timing = req.timing.unwrap_or(DrillTiming::DEFAULT);
    let reason = format!("drill {id}: {}", req.reason);
    let failover_name = execution_name(&id, "-failover");
    let failover = FailoverRequest {
        workload: req.workload.clone(),
        failed_region: None,
        target_region: req.target_region.clone(),
        mode: req.mode,
        dry_run: false,
        accept_data_loss: false,
        reason: reason.clone(),
        requested_by: req.requested_by.clone(),
        request_id: Some(failover_name.clone()),
        trigger: None,
        timing: Some(Timing {
            poll_seconds: timing.poll_seconds,
            verify_max_polls: timing.verify_max_polls,
            lease_ttl_seconds: None,
        }),
        drill: true,
        force: false,
    };
    let failback_name = execution_name(&id, "-failback");
    let failback = FailbackRequest {
        workload: req.workload.clone(),
        home_region: Some(primary.region.clone()),
        from_run: Some(failover_name.clone()),
        schedule: req.schedule.clone(),
        drill: true,
        dry_run: false,
        reason,
        requested_by: req.requested_by.clone(),
        request_id: Some(failback_name.clone()),
        timing: Some(FailbackTiming {
            poll_seconds: timing.poll_seconds,
            verify_max_polls: timing.verify_max_polls,
            lag_max_polls: timing.lag_max_polls,
            soak_seconds: timing.soak_seconds,
        }),
    };
    Ok(DrillPlan {
        workload: req.workload.clone(),
        canary_key: format!("{CANARY_PREFIX}{id}"),
        run_id: id,
        primary_region: primary.region.clone(),
        rto_seconds: spec.policy.rto_seconds,
        rpo_seconds: spec.policy.rpo_seconds,
        replication: req.replication,
        failover: Nested {
            name: failover_name,
            input: failover,
        },
        failback: Nested {
            name: failback_name,
            input: failback,
        },
        timing,
    })
}

/// Every step and AWS call of a drill of `spec` run as `holder` by the executor in
/// `executor_region`: the drill's own steps around the nested failover's plan (the one
/// its `decide` makes for [`prepare`]'s input) and the nested failback's (the one its
/// `decide_failback` makes once that failover is recorded). The steps of the nested
/// runs are named `failover:<step>` and `failback:<step>`. Errors: what [`prepare`],
/// the failover decision or the failback decision would refuse.
pub fn plan(
    spec: &WorkloadSpec,
    health: &[HealthRecord],
    req: &DrillRequest,
    holder: &str,
    executor_region: &str,
    now: UnixMillis,
) -> Result<Plan> {
    let p = prepare(spec, req, holder)?;
    let failover = crate::decide::decide(spec, health, &p.failover.input, executor_region, now)?;
    // The failback decides on the spec the failover leaves and the run it records.
    let mut after = spec.clone();
    crate::decide::apply_changes(&mut after, &failover.changes)?;
    after.version = spec.version + 1;
    let run = RunRecord {
        id: p.failover.name.clone(),
        kind: lifeboat::store::RunKind::Drill,
        started_at: now,
        finished_at: Some(now),
        outcome: RunOutcome::Succeeded,
        timeline: vec![],
        measured_rto_ms: None,
        measured_rpo_ms: None,
        rpo_simulated: false,
        details: serde_json::json!({
            "operation": "failover",
            "from_region": failover.from_region,
            "to_region": failover.to_region,
            "changes": failover.changes,
        }),
    };
    let failback = crate::failback::decide_failback(
        &after,
        std::slice::from_ref(&run),
        health,
        &p.failback.input,
        executor_region,
        now,
    )?;
    let here = executor_region;
    let (primary, target) = (p.primary_region.as_str(), failover.to_region.as_str());
    let places = Places {
        spec,
        mode: p.failover.input.mode,
        from: primary,
        to: target,
        arbiter: &failover.arbiter_region,
        home: here,
    };
    // replica-promoter's canary steps: the spec in its own table, the object in the
    // Region's first bucket (a write looks first: a retried write finds it there).
    let canary = |step: &str, region: &str, write: bool| {
        let bucket = spec
            .region(region)
            .and_then(|r| r.buckets.first())
            .map(|b| format!("{}/{}", b.name, p.canary_key));
        places.step(
            step,
            "replica-promoter",
            format!("the canary in {region}'s first bucket"),
            |c| {
                c.table("GetItem", here, "SPEC");
                if let Some(object) = bucket {
                    c.add("s3", "GetObject", region, object.clone(), false);
                    if write {
                        c.add("s3", "PutObject", region, object, false);
                    }
                }
            },
        )
    };
    let mut steps = vec![places.step(
        "prepare",
        crate::NAME,
        "name the nested runs and the canary".into(),
        |c| c.table("GetItem", here, "SPEC"),
    )];
    steps.push(canary("canary_write", primary, true));
    steps.extend(nested("failover", failover.plan.clone()));
    steps.push(canary("canary_read", target, false));
    steps.extend(nested("failback", failback.plan));
    steps.push(places.step(
        "report",
        crate::NAME,
        "the report (JSON and Markdown) to the report bucket, the RUN# record".into(),
        |c| {
            c.add(
                "s3",
                "PutObject",
                here,
                format!("drills/{}/{}.json, .md", spec.workload, p.run_id),
                false,
            );
            c.table("PutItem", here, "RUN#");
        },
    ));
    Ok(finish(steps, primary))
}

/// A nested run's steps, named `<prefix>:<step>`.
fn nested(prefix: &str, plan: Plan) -> Vec<PlanStep> {
    plan.steps
        .into_iter()
        .map(|mut s| {
            s.step = format!("{prefix}:{}", s.step);
            s
        })
        .collect()
}

/// The drill machine's state as the `report` step receives it (`$`): only what the
/// report reads; everything else the state carries is ignored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillState {
    /// The `prepare_drill` output.
    pub prepare: DrillPlan,
    /// Marks (`{step, at}`) of the drill machine's states.
    #[serde(default, deserialize_with = "flatten_timeline")]
    pub t: Vec<TimelineEntry>,
    /// The canary write's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_write: Option<Value>,
    /// The last canary read's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_read: Option<Value>,
    /// The nested failover: `{output}` (its `finalize` output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<Value>,
    /// The nested failback: `{output}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<Value>,
    /// What failed (a Catch's `{Error, Cause}`), if anything did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
}

/// Input of the `report` step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportInput {
    /// The drill's state (`$`).
    pub state: DrillState,
}

/// The RTO part of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RtoReport {
    /// Objective, milliseconds.
    pub objective_ms: u64,
    /// Measured, when the failover got the target serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<u64>,
    /// Measured within the objective (`None`: not measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// When the drill triggered the failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_at: Option<UnixMillis>,
    /// When the probes saw the target serving.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serving_at: Option<UnixMillis>,
}

/// The canary as the report sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryReport {
    /// `found`, `missing` (not in the target: data not replicated), `no_bucket`
    /// (nowhere to write or read it), `not_run` (the drill stopped before).
    pub status: String,
    /// When it was written in the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<UnixMillis>,
    /// Where it was written: `region/bucket/key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_to: Option<String>,
    /// Where it was read: `region/bucket/key`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_from: Option<String>,
    /// When it was last read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<UnixMillis>,
}

/// The RPO part of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RpoReport {
    /// Objective, milliseconds.
    pub objective_ms: u64,
    /// Replication lag into the target when the failover was decided (probes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_at_promotion_ms: Option<u64>,
    /// When the data tier was promoted (the failover's traffic step began).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promoted_at: Option<UnixMillis>,
    /// The canary.
    pub canary: CanaryReport,
    /// The recovery point: the lag at promotion when measured; else, with the canary
    /// found, `promoted_at - written_at` (an upper bound); with it missing, at least that.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_ms: Option<u64>,
    /// Within the objective and the canary arrived (`None`: nothing measured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub met: Option<bool>,
    /// True when a harness copied the canary: the RPO is simulated, not measured.
    pub simulated: bool,
    /// One line for people.
    pub note: String,
}

/// A nested execution as the report sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhaseReport {
    /// Execution name (= its run id).
    pub execution: String,
    /// `succeeded`, `failed` or `not_run`.
    pub outcome: String,
    /// From → to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_region: Option<String>,
    /// To.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_region: Option<String>,
}

/// One step of what a nested run prepared in its target before traffic moved (the run
/// record's `details.prepared.steps[]`, [`crate::steps::prepared`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedStep {
    /// replica-promoter's step (`rds_status`, `s3_flip`, `compute_status`, ...).
    pub step: String,
    /// Its final status (`available`, `flipped`, `scaled`, `below_target`, ...).
    pub status: String,
    /// How long it took, when the step measures it (compute: scale request → in service).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub took_ms: Option<u64>,
    /// Each resource's `{kind, id, action, status, detail}`.
    #[serde(default)]
    pub resources: Vec<Value>,
}

/// What a nested run (the drill's failover or failback) prepared in its target, under
/// the workload's DR pattern.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedReport {
    /// `failover` or `failback`.
    pub phase: String,
    /// The Region prepared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The DR pattern (what there was to prepare).
    pub pattern: lifeboat::model::DrPattern,
    /// Its steps.
    pub steps: Vec<PreparedStep>,
}

impl PreparedReport {
    /// From a nested run record's `details.prepared`, when it has one.
    fn of(phase: &str, run: Option<&RunRecord>) -> Option<PreparedReport> {
        let run = run?;
        let p = run.details.get("prepared")?;
        Some(PreparedReport {
            phase: phase.to_owned(),
            region: str_of(Some(&run.details), "to_region").map(str::to_owned),
            pattern: serde_json::from_value(p.get("pattern")?.clone()).ok()?,
            steps: serde_json::from_value(p.get("steps")?.clone()).ok()?,
        })
    }
}

/// Where the report went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportLocation {
    /// Bucket (`LIFEBOAT_REPORT_BUCKET`).
    pub bucket: String,
    /// `drills/<workload>/<run id>.json`.
    pub json_key: String,
    /// `drills/<workload>/<run id>.md`.
    pub markdown_key: String,
    /// `drills/<workload>/<run id>.html` (`lifeboat::report`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub html_key: Option<String>,
}

/// The drill report (JSON in S3, summarised in the `RUN#` record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DrillReport {
    /// Workload id.
    pub workload: String,
    /// Run id (the drill's execution name).
    pub run_id: String,
    /// Always `drill`.
    pub kind: String,
    /// `succeeded` (failover and failback ran) or `failed`.
    pub outcome: RunOutcome,
    /// Both objectives met (`false` when either is missed or not measured).
    pub objectives_met: bool,
    /// Planned or unplanned.
    pub mode: Mode,
    /// Measured or simulated replication.
    pub replication: Replication,
    /// The primary when the drill started.
    pub primary_region: String,
    /// Where the drill failed over to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_region: Option<String>,
    /// When it started.
    pub started_at: UnixMillis,
    /// When the report was made.
    pub finished_at: UnixMillis,
    /// RTO.
    pub rto: RtoReport,
    /// RPO.
    pub rpo: RpoReport,
    /// The nested failover.
    pub failover: PhaseReport,
    /// The nested failback.
    pub failback: PhaseReport,
    /// What the failover and then the failback prepared in their targets before traffic
    /// moved: compute scaled (and how long it took to come into service), the data tier
    /// promoted or flipped, per the workload's DR pattern.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub prepared: Vec<PreparedReport>,
    /// The drill's marks and both nested runs' timelines (prefixed `failover:` and
    /// `failback:`), by time.
    pub timeline: Vec<TimelineEntry>,
    /// What failed, if anything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<Value>,
    /// Where the report is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<ReportLocation>,
}

/// The run record a nested execution's output carries (`finalize`'s `{run, ...}`).
fn nested_run(v: Option<&Value>) -> Option<RunRecord> {
    let out = v?.get("output")?;
    serde_json::from_value(out.get("run")?.clone()).ok()
}

fn mark(t: &[TimelineEntry], step: &str) -> Option<UnixMillis> {
    t.iter().filter(|e| e.step == step).map(|e| e.at).min()
}

fn str_of<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a str> {
    v?.get(key)?.as_str()
}

fn millis_of(v: Option<&Value>, key: &str) -> Option<UnixMillis> {
    serde_json::from_value(v?.get(key)?.clone()).ok()
}

/// RTO from the trigger to the target serving.
pub fn rto(
    trigger_at: Option<UnixMillis>,
    serving_at: Option<UnixMillis>,
    objective_s: u64,
) -> RtoReport {
    let objective_ms = objective_s.saturating_mul(1000);
    let measured = match (trigger_at, serving_at) {
        (Some(t), Some(s)) => Some(s.since(t)),
        _ => None,
    };
    RtoReport {
        objective_ms,
        measured_ms: measured,
        met: measured.map(|m| m <= objective_ms),
        trigger_at,
        serving_at,
    }
}

/// RPO from the lag at promotion and the canary (see the module docs).
pub fn rpo(
    lag_seconds: Option<f64>,
    promoted_at: Option<UnixMillis>,
    canary: CanaryReport,
    objective_s: u64,
    simulated: bool,
) -> RpoReport {
    let objective_ms = objective_s.saturating_mul(1000);
    let lag_ms = lag_seconds
        .filter(|l| l.is_finite() && *l >= 0.0)
        .map(|l| (l * 1000.0).round() as u64);
    let window = match (promoted_at, canary.written_at) {
        (Some(p), Some(w)) => Some(p.since(w)),
        _ => None,
    };
    let (measured, met, note) = match canary.status.as_str() {
        "found" => {
            let m = lag_ms.or(window);
            let how = if lag_ms.is_some() {
                "replication lag at promotion; the canary arrived"
            } else {
                "no lag measured; the canary written before promotion arrived, bounding the loss window"
            };
            (m, m.map(|m| m <= objective_ms), how.to_owned())
        }
        "missing" => {
            let m = match (lag_ms, window) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            (
                m,
                Some(false),
                "the canary written in the primary is missing in the target: data not replicated (RPO breach)"
                    .to_owned(),
            )
        }
        other => (
            lag_ms,
            lag_ms.map(|m| m <= objective_ms),
            format!("canary {other}: replication lag at promotion only"),
        ),
    };
    let note = if simulated {
        format!("{note} (simulated: a harness copied the canary, the emulator replicates nothing)")
    } else {
        note
    };
    RpoReport {
        objective_ms,
        lag_at_promotion_ms: lag_ms,
        promoted_at,
        canary,
        measured_ms: measured,
        met,
        simulated,
        note,
    }
}

fn canary_report(state: &DrillState) -> CanaryReport {
    let w = state.canary_write.as_ref();
    let r = state.canary_read.as_ref();
    let place = |v: Option<&Value>| -> Option<String> {
        Some(format!(
            "{}/{}/{}",
            str_of(v, "region")?,
            str_of(v, "bucket")?,
            str_of(v, "key")?
        ))
    };
    let status = match (str_of(w, "status"), str_of(r, "status")) {
        (Some("no_bucket"), _) | (_, Some("no_bucket")) => "no_bucket",
        (_, Some("found")) => "found",
        (_, Some("missing")) => "missing",
        _ => "not_run",
    };
    CanaryReport {
        status: status.to_owned(),
        written_at: millis_of(w, "written_at"),
        written_to: place(w),
        read_from: place(r),
        read_at: millis_of(r, "read_at"),
    }
}

fn phase(name: &str, v: Option<&Value>, run: Option<&RunRecord>) -> PhaseReport {
    let outcome = match (v, run) {
        (_, Some(r)) if r.outcome == RunOutcome::Succeeded => "succeeded",
        (Some(_), _) => "failed",
        (None, _) => "not_run",
    };
    let detail = |k: &str| {
        run.and_then(|r| r.details.get(k))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    PhaseReport {
        execution: name.to_owned(),
        outcome: outcome.to_owned(),
        from_region: detail("from_region"),
        to_region: detail("to_region"),
    }
}

/// Measures the drill from the machine's state; `now` is when the report is made.
pub fn build_report(state: &DrillState, now: UnixMillis) -> DrillReport {
    let p = &state.prepare;
    let fo_run = nested_run(state.failover.as_ref());
    let fb_run = nested_run(state.failback.as_ref());
    let trigger_at = mark(&state.t, "failover");
    let fo_timeline = fo_run
        .as_ref()
        .map(|r| r.timeline.as_slice())
        .unwrap_or(&[]);
    let serving_at = mark(fo_timeline, "finalize");
    let promoted_at = mark(fo_timeline, "shift_traffic");
    let lag = fo_run
        .as_ref()
        .and_then(|r| r.details.get("lag_seconds"))
        .and_then(Value::as_f64);
    let simulated = p.replication == Replication::Simulated;
    let rto = rto(trigger_at, serving_at, p.rto_seconds);
    let rpo = rpo(
        lag,
        promoted_at,
        canary_report(state),
        p.rpo_seconds,
        simulated,
    );
    let failover = phase(&p.failover.name, state.failover.as_ref(), fo_run.as_ref());
    let failback = phase(&p.failback.name, state.failback.as_ref(), fb_run.as_ref());
    let prepared: Vec<PreparedReport> = [
        PreparedReport::of("failover", fo_run.as_ref()),
        PreparedReport::of("failback", fb_run.as_ref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    let succeeded =
        state.error.is_none() && failover.outcome == "succeeded" && failback.outcome == "succeeded";
    let mut timeline: Vec<TimelineEntry> = state.t.clone();
    for (prefix, run) in [("failover", &fo_run), ("failback", &fb_run)] {
        if let Some(r) = run {
            timeline.extend(r.timeline.iter().map(|e| TimelineEntry {
                step: format!("{prefix}:{}", e.step),
                ..e.clone()
            }));
        }
    }
    timeline.sort_by_key(|e| e.at);
    let started_at = mark(&state.t, "start").unwrap_or(now);
    DrillReport {
        workload: p.workload.clone(),
        run_id: p.run_id.clone(),
        kind: "drill".into(),
        outcome: if succeeded {
            RunOutcome::Succeeded
        } else {
            RunOutcome::Failed
        },
        objectives_met: rto.met == Some(true) && rpo.met == Some(true),
        mode: p.failover.input.mode,
        replication: p.replication,
        primary_region: p.primary_region.clone(),
        target_region: failover.to_region.clone(),
        started_at,
        finished_at: mark(&state.t, "report").unwrap_or(now),
        rto,
        rpo,
        failover,
        failback,
        prepared,
        timeline,
        error: state.error.clone(),
        location: None,
    }
}

/// The CloudWatch Embedded Metric Format line that publishes the drill's measured RTO
/// and RPO (`Lifeboat/DrillRtoSeconds`, `DrillRpoSeconds`, dimension `Workload`: the
/// dashboard's "last drill" widget). Lambda sends it from the function's log to
/// CloudWatch with no API call and no extra client. `None` when neither was measured;
/// a simulated RPO is never published as a metric.
pub fn emf_line(r: &DrillReport) -> Option<String> {
    let rto = r.rto.measured_ms;
    let rpo = r.rpo.measured_ms.filter(|_| !r.rpo.simulated);
    if rto.is_none() && rpo.is_none() {
        return None;
    }
    let mut metrics = Vec::new();
    let mut line = serde_json::Map::new();
    line.insert("Workload".into(), Value::from(r.workload.clone()));
    for (name, ms) in [
        (lifeboat::metrics::DRILL_RTO_SECONDS, rto),
        (lifeboat::metrics::DRILL_RPO_SECONDS, rpo),
    ] {
        if let Some(ms) = ms {
            metrics.push(serde_json::json!({"Name": name, "Unit": "Seconds"}));
            line.insert(name.into(), Value::from(ms as f64 / 1000.0));
        }
    }
    line.insert(
        "_aws".into(),
        serde_json::json!({
            "Timestamp": r.finished_at.0,
            "CloudWatchMetrics": [{
                "Namespace": lifeboat::metrics::NAMESPACE,
                "Dimensions": [["Workload"]],
                "Metrics": metrics,
            }],
        }),
    );
    serde_json::to_string(&Value::Object(line)).ok()
}

/// The S3 keys of a drill's report.
pub fn report_keys(workload: &str, run_id: &str) -> (String, String) {
    let base = format!("drills/{workload}/{run_id}");
    (format!("{base}.json"), format!("{base}.md"))
}

fn ms(v: Option<u64>) -> String {
    v.map_or("not measured".to_owned(), |m| {
        format!("{}.{:03} s", m / 1000, m % 1000)
    })
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// The readable report: summary, objectives and the timeline.
pub fn render_markdown(r: &DrillReport) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let _ = writeln!(md, "# DR drill `{}` — {}\n", r.run_id, r.workload);
    let outcome = match r.outcome {
        RunOutcome::Succeeded => "succeeded",
        _ => "**failed**",
    };
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| outcome | {outcome} |");
    let _ = writeln!(
        md,
        "| objectives | {} |",
        if r.objectives_met {
            "met"
        } else {
            "**not met**"
        }
    );
    let _ = writeln!(md, "| mode | {:?} |", r.mode);
    let _ = writeln!(
        md,
        "| failover | {} → {} ({}) |",
        r.primary_region,
        r.target_region.as_deref().unwrap_or("?"),
        r.failover.outcome
    );
    let _ = writeln!(md, "| failback | {} |", r.failback.outcome);
    let _ = writeln!(md, "| started | {} |", r.started_at);
    let _ = writeln!(md, "| finished | {} |\n", r.finished_at);

    let _ = writeln!(md, "## Objectives\n");
    let _ = writeln!(
        md,
        "| | objective | measured | verdict |\n|---|---|---|---|"
    );
    let _ = writeln!(
        md,
        "| RTO (trigger → target serving, seen by probes) | {} | {} | {} |",
        ms(Some(r.rto.objective_ms)),
        ms(r.rto.measured_ms),
        verdict(r.rto.met)
    );
    let rpo_label = if r.rpo.simulated {
        "RPO (**simulated**)"
    } else {
        "RPO"
    };
    let _ = writeln!(
        md,
        "| {rpo_label} | {} | {} | {} |\n",
        ms(Some(r.rpo.objective_ms)),
        ms(r.rpo.measured_ms),
        verdict(r.rpo.met)
    );
    let _ = writeln!(md, "- RPO: {}", cell(&r.rpo.note));
    let _ = writeln!(
        md,
        "- replication lag at promotion: {}",
        ms(r.rpo.lag_at_promotion_ms)
    );
    let c = &r.rpo.canary;
    let _ = writeln!(
        md,
        "- canary: {} (written {} to `{}`, read from `{}`)\n",
        c.status,
        c.written_at.map_or("-".to_owned(), |t| t.to_string()),
        c.written_to.as_deref().unwrap_or("-"),
        c.read_from.as_deref().unwrap_or("-")
    );
    if !r.prepared.is_empty() {
        let _ = writeln!(md, "## Prepared before traffic moved\n");
        let _ = writeln!(
            md,
            "| run | Region | pattern | step | status | took | resources |\n|---|---|---|---|---|---|---|"
        );
        for p in &r.prepared {
            let pattern = serde_json::to_value(p.pattern)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            for step in &p.steps {
                let resources: Vec<String> = step
                    .resources
                    .iter()
                    .map(|x| {
                        let f = |k: &str| x.get(k).and_then(Value::as_str).unwrap_or("");
                        let detail = f("detail");
                        if detail.is_empty() {
                            format!("{} {}: {}", f("kind"), f("id"), f("status"))
                        } else {
                            format!("{} {}: {} ({detail})", f("kind"), f("id"), f("status"))
                        }
                    })
                    .collect();
                let _ = writeln!(
                    md,
                    "| {} | {} | {pattern} | {} | {} | {} | {} |",
                    p.phase,
                    p.region.as_deref().unwrap_or("?"),
                    step.step,
                    step.status,
                    ms(step.took_ms),
                    cell(&resources.join("; "))
                );
            }
        }
        let _ = writeln!(md);
    }
    if let Some(e) = &r.error {
        let _ = writeln!(md, "## Error\n\n```json\n{e:#}\n```\n");
    }
    let _ = writeln!(md, "## Timeline\n");
    let _ = writeln!(md, "| at | +s | step | detail |\n|---|---|---|---|");
    for e in &r.timeline {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            e.at,
            ms(Some(e.at.since(r.started_at))),
            cell(&e.step),
            cell(e.detail.as_deref().unwrap_or(""))
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const EXAMPLE: &str = include_str!("../../../events/model/example-spec.json");
    const T0: u64 = 1_795_464_000_000;

    fn spec() -> WorkloadSpec {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn req() -> DrillRequest {
        serde_json::from_value(json!({
            "workload": "checkout", "reason": "quarterly", "requested_by": "schedule",
            "replication": "simulated"
        }))
        .unwrap()
    }

    const HOLDER: &str =
        "arn:aws:states:us-east-2:123456789012:execution:lifeboat-drill-us-east-2:d1";

    #[test]
    fn prepare_names_the_nested_runs_and_ties_the_failback_to_the_failover() {
        let p = prepare(&spec(), &req(), HOLDER).unwrap();
        assert_eq!(p.run_id, "d1");
        assert_eq!(p.failover.name, "d1-failover");
        assert_eq!(p.failback.name, "d1-failback");
        assert_eq!(p.failback.input.from_run.as_deref(), Some("d1-failover"));
        assert_eq!(p.failback.input.home_region.as_deref(), Some("us-east-1"));
        assert!(p.failover.input.drill && p.failback.input.drill);
        assert_eq!(p.failover.input.mode, Mode::Planned);
        assert_eq!(p.canary_key, "lifeboat-canary/d1");
        assert_eq!((p.rto_seconds, p.rpo_seconds), (300, 900));
        assert_eq!(p.timing, DrillTiming::DEFAULT);
        // The nested inputs parse as the nested machines' inputs (deny_unknown_fields).
        let fo: FailoverRequest =
            serde_json::from_value(serde_json::to_value(&p.failover.input).unwrap()).unwrap();
        assert!(fo.check().is_ok());
        let fb: FailbackRequest =
            serde_json::from_value(serde_json::to_value(&p.failback.input).unwrap()).unwrap();
        assert!(fb.check().is_ok());

        let long = format!("{}:{}", HOLDER, "x".repeat(100));
        let p = prepare(&spec(), &req(), &long).unwrap();
        assert!(p.failover.name.len() <= 80 && p.failover.name.ends_with("-failover"));

        let mut r = req();
        r.target_region = Some("us-east-1".into());
        assert!(prepare(&spec(), &r, HOLDER).is_err());
        r.target_region = Some("eu-west-1".into());
        assert!(prepare(&spec(), &r, HOLDER).is_ok());
        assert!(prepare(&spec(), &req(), " ").is_err());
    }

    fn healthy(now: UnixMillis) -> Vec<HealthRecord> {
        ["us-east-1", "eu-west-1", "ap-southeast-1"]
            .iter()
            .map(|r| HealthRecord {
                region: (*r).into(),
                verdict: lifeboat::store::Verdict::Healthy,
                consecutive_failures: 0,
                consecutive_successes: 3,
                probe_latency_ms: Some(5),
                replication_lag_seconds: Some(0.0),
                lag_grade: None,
                observed_at: UnixMillis(now.0 - 1_000),
                detail: None,
            })
            .collect()
    }

    #[test]
    fn the_drill_plan_is_its_steps_around_the_nested_runs_plans() {
        let now = UnixMillis(T0);
        let mut r = req();
        r.target_region = Some("eu-west-1".into());
        let plan = plan(&spec(), &healthy(now), &r, HOLDER, "eu-west-1", now).unwrap();
        let steps: Vec<&str> = plan.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(steps[..3], ["prepare", "canary_write", "failover:decide"]);
        assert!(steps.contains(&"failover:shift_traffic"), "{steps:?}");
        assert!(steps.contains(&"canary_read"), "{steps:?}");
        assert!(steps.contains(&"failback:reprotect"), "{steps:?}");
        assert_eq!(steps.last(), Some(&"report"));
        let step = |name: &str| plan.steps.iter().find(|s| s.step == name).unwrap();
        // The canary: written in the primary's first bucket, read in the target's.
        let write = step("canary_write");
        assert_eq!(write.function, "replica-promoter");
        assert!(write.calls.iter().any(|c| c.operation == "PutObject"
            && c.region == "us-east-1"
            && c.resource == "checkout-receipts-use1/lifeboat-canary/d1"));
        assert!(
            step("canary_read")
                .calls
                .iter()
                .any(|c| c.operation == "GetObject" && c.region == "eu-west-1")
        );
        // The failback returns to us-east-1: its lease in us-east-1's table (the
        // arbiter of a failover of eu-west-1), the failover's in eu-west-1's.
        assert!(
            step("failback:acquire")
                .calls
                .iter()
                .filter(|c| c.service == "dynamodb")
                .all(|c| c.region == "us-east-1")
        );
        assert!(
            step("failover:acquire")
                .calls
                .iter()
                .all(|c| c.region == "eu-west-1")
        );
        assert!(plan.touches_failed_region);
        // What the failback would refuse, the plan refuses: an unhealthy home.
        let mut h = healthy(now);
        h[0].verdict = lifeboat::store::Verdict::Unhealthy;
        let err = plan_of(&h, &r, now);
        assert_eq!(err, Some(lifeboat::ErrorName::TargetUnhealthy));
    }

    fn plan_of(
        h: &[HealthRecord],
        r: &DrillRequest,
        now: UnixMillis,
    ) -> Option<lifeboat::ErrorName> {
        plan(&spec(), h, r, HOLDER, "eu-west-1", now)
            .err()
            .map(|e| e.name())
    }

    fn canary(status: &str, written: Option<u64>) -> CanaryReport {
        CanaryReport {
            status: status.into(),
            written_at: written.map(UnixMillis),
            written_to: None,
            read_from: None,
            read_at: None,
        }
    }

    #[test]
    fn rto_is_trigger_to_serving_against_the_objective() {
        let r = rto(Some(UnixMillis(T0)), Some(UnixMillis(T0 + 42_500)), 300);
        assert_eq!((r.measured_ms, r.met), (Some(42_500), Some(true)));
        let r = rto(Some(UnixMillis(T0)), Some(UnixMillis(T0 + 301_000)), 300);
        assert_eq!(r.met, Some(false));
        let r = rto(Some(UnixMillis(T0)), None, 300);
        assert_eq!((r.measured_ms, r.met), (None, None));
    }

    #[test]
    fn rpo_uses_the_lag_and_the_canary_and_a_missing_canary_is_a_breach() {
        let promoted = Some(UnixMillis(T0 + 10_000));
        let r = rpo(Some(2.5), promoted, canary("found", Some(T0)), 900, false);
        assert_eq!((r.measured_ms, r.met), (Some(2_500), Some(true)));
        assert!(!r.simulated);
        let r = rpo(None, promoted, canary("found", Some(T0)), 900, true);
        assert_eq!((r.measured_ms, r.met), (Some(10_000), Some(true)));
        assert!(r.simulated && r.note.contains("simulated"));
        let r = rpo(Some(1.0), promoted, canary("missing", Some(T0)), 900, false);
        assert_eq!((r.measured_ms, r.met), (Some(10_000), Some(false)));
        assert!(r.note.contains("not replicated"), "{}", r.note);
        let r = rpo(
            Some(1200.0),
            promoted,
            canary("found", Some(T0)),
            900,
            false,
        );
        assert_eq!(r.met, Some(false));
        let r = rpo(None, promoted, canary("no_bucket", None), 900, false);
        assert_eq!((r.measured_ms, r.met), (None, None));
    }

    fn finalize_output(step_marks: &[(&str, u64)], details: Value) -> Value {
        let timeline: Vec<Value> = step_marks
            .iter()
            .map(|(s, at)| json!({"step": s, "at": at}))
            .collect();
        json!({"output": {"run": {
            "id": "x", "kind": "drill", "started_at": T0, "finished_at": T0 + 60_000,
            "outcome": "succeeded", "timeline": timeline, "details": details
        }, "spec_version": 3, "released": true}})
    }

    fn state() -> DrillState {
        let p = prepare(&spec(), &req(), HOLDER).unwrap();
        serde_json::from_value(json!({
            "prepare": p,
            "t": {
                "start": {"step": "start", "at": "2026-11-23T20:00:00Z"},
                "failover": {"step": "failover", "at": T0},
                "report": {"step": "report", "at": T0 + 120_000}
            },
            "canary_write": {"status": "written", "region": "us-east-1", "bucket": "b1",
                             "key": "lifeboat-canary/d1", "written_at": T0 - 1_000},
            "canary_read": {"status": "found", "region": "eu-west-1", "bucket": "b2",
                            "key": "lifeboat-canary/d1", "read_at": T0 + 50_000},
            "failover": finalize_output(
                &[("decide", T0 + 100), ("shift_traffic", T0 + 4_000), ("finalize", T0 + 30_000), ("finalize", T0 + 31_000)],
                json!({"operation": "failover", "from_region": "us-east-1", "to_region": "eu-west-1"})),
            "failback": finalize_output(
                &[("decide", T0 + 60_000), ("finalize", T0 + 110_000)],
                json!({"operation": "failback", "from_region": "eu-west-1", "to_region": "us-east-1"})),
            "timing": {"poll_seconds": 1}
        }))
        .unwrap()
    }

    #[test]
    fn a_full_drill_is_measured_and_rendered() {
        let r = build_report(&state(), UnixMillis(T0 + 999_999));
        assert_eq!(r.outcome, RunOutcome::Succeeded);
        assert_eq!(r.rto.measured_ms, Some(30_000));
        assert_eq!(r.rto.met, Some(true));
        assert_eq!(r.rpo.measured_ms, Some(5_000), "promotion - canary written");
        assert!(r.rpo.simulated && r.objectives_met);
        assert_eq!(r.target_region.as_deref(), Some("eu-west-1"));
        assert_eq!(r.finished_at, UnixMillis(T0 + 120_000));
        assert_eq!(
            r.started_at,
            UnixMillis::parse_rfc3339("2026-11-23T20:00:00Z").unwrap()
        );
        assert!(r.timeline.windows(2).all(|w| w[0].at <= w[1].at));
        assert!(r.timeline.iter().any(|e| e.step == "failback:finalize"));
        let md = render_markdown(&r);
        assert!(md.starts_with("# DR drill `d1` — checkout"), "{md}");
        assert!(md.contains("RPO (**simulated**)"), "{md}");
        assert!(
            md.contains(
                "| RTO (trigger → target serving, seen by probes) | 300.000 s | 30.000 s | met |"
            ),
            "{md}"
        );
        assert!(md.contains("## Timeline"), "{md}");
        assert!(md.contains("failover:shift_traffic"), "{md}");
    }

    /// Issue #15 item 5: the report says, per pattern, what each nested run prepared in
    /// its target and how long compute took to come into service.
    #[test]
    fn the_report_says_what_was_prepared_and_how_long_compute_took() {
        let mut s = state();
        let prepared = json!({"pattern": "pilot_light", "steps": [
            {"step": "compute_status", "status": "scaled", "took_ms": 95_250, "resources": [
                {"kind": "auto_scaling_group", "id": "web", "action": "checked", "status": "in_service", "detail": "4/4 in service"}]},
            {"step": "rds_status", "status": "available", "resources": [
                {"kind": "rds_instance", "id": "db-euw1", "action": "checked", "status": "available", "detail": null}]}
        ]});
        s.failover = Some(finalize_output(
            &[("shift_traffic", T0 + 4_000), ("finalize", T0 + 30_000)],
            json!({"operation": "failover", "from_region": "us-east-1", "to_region": "eu-west-1", "prepared": prepared}),
        ));
        let r = build_report(&s, UnixMillis(T0 + 999_999));
        assert_eq!(r.prepared.len(), 1, "the failback prepared nothing");
        let p = &r.prepared[0];
        assert_eq!(
            (p.phase.as_str(), p.region.as_deref(), p.pattern),
            (
                "failover",
                Some("eu-west-1"),
                lifeboat::model::DrPattern::PilotLight
            )
        );
        assert_eq!(p.steps[0].took_ms, Some(95_250));
        let md = render_markdown(&r);
        assert!(md.contains("## Prepared before traffic moved"), "{md}");
        assert!(
            md.contains("| failover | eu-west-1 | pilot_light | compute_status | scaled | 95.250 s | auto_scaling_group web: in_service (4/4 in service) |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| rds_status | available | not measured | rds_instance db-euw1: available |"
            ),
            "{md}"
        );
        // Nothing prepared: no section.
        let md = render_markdown(&build_report(&state(), UnixMillis(T0 + 999_999)));
        assert!(!md.contains("Prepared before traffic moved"), "{md}");
    }

    #[test]
    fn the_drill_metrics_go_out_as_emf_and_a_simulated_rpo_does_not() {
        let mut r = build_report(&state(), UnixMillis(T0 + 999_999));
        // The fixture's RPO is simulated: only the RTO is published.
        let line: Value = serde_json::from_str(&emf_line(&r).unwrap()).unwrap();
        assert_eq!(line["Workload"], "checkout");
        assert_eq!(line["DrillRtoSeconds"], 30.0);
        assert!(line.get("DrillRpoSeconds").is_none(), "{line}");
        let cw = &line["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(cw["Namespace"], "Lifeboat");
        assert_eq!(cw["Dimensions"], json!([["Workload"]]));
        assert_eq!(
            cw["Metrics"],
            json!([{"Name": "DrillRtoSeconds", "Unit": "Seconds"}])
        );
        assert_eq!(line["_aws"]["Timestamp"], T0 + 120_000);
        // Measured replication: both.
        r.rpo.simulated = false;
        let line: Value = serde_json::from_str(&emf_line(&r).unwrap()).unwrap();
        assert_eq!(line["DrillRpoSeconds"], 5.0);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"],
            "DrillRpoSeconds"
        );
        // Nothing measured: no line.
        r.rto.measured_ms = None;
        r.rpo.measured_ms = None;
        assert_eq!(emf_line(&r), None);
    }

    #[test]
    fn a_failed_drill_reports_what_ran() {
        let mut s = state();
        s.failback = None;
        s.canary_read =
            Some(json!({"status": "missing", "region": "eu-west-1", "bucket": "b2", "key": "k"}));
        s.error = Some(json!({"Error": "States.TaskFailed", "Cause": "failback | refused"}));
        let r = build_report(&s, UnixMillis(T0 + 1));
        assert_eq!(r.outcome, RunOutcome::Failed);
        assert_eq!(r.failback.outcome, "not_run");
        assert_eq!(r.rpo.met, Some(false));
        assert!(!r.objectives_met);
        let md = render_markdown(&r);
        assert!(md.contains("**failed**") && md.contains("## Error"), "{md}");
        assert_eq!(
            report_keys("checkout", "d1"),
            (
                "drills/checkout/d1.json".into(),
                "drills/checkout/d1.md".into()
            )
        );
    }
}
