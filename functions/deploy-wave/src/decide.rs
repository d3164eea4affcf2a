//! Pure decisions: the request's checks, the waves, a gate's verdict against absolute
//! thresholds and the Region's baseline, a Region's next stage, and what rolls back.
//! No I/O here.

use std::collections::HashSet;

use lifeboat::model::{GateValues, RegionSpec, Role, Rollout, RolloutState, Slot, WorkloadSpec};
use lifeboat::{Error, Result};

use crate::request::{
    DeployRequest, GateOverrides, Gates, NextAction, RollbackItem, RollbackScope, Skipped, Wave,
};

/// Default canary steps: percent of a Region's traffic on the new version.
pub const DEFAULT_STEPS: [u32; 3] = [10, 50, 100];

/// Longest bake accepted (a day; Standard workflows allow far more, a deploy should not).
pub const MAX_BAKE_SECONDS: u64 = 86_400;

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidInput(msg.into())
}

/// Checks the request's own fields (no spec needed); returns the canary steps.
pub fn check_request(req: &DeployRequest) -> Result<Vec<u32>> {
    if req.workload.trim().is_empty() {
        return Err(invalid("workload: must not be empty"));
    }
    let v = req.version.trim();
    if v.is_empty() {
        return Err(invalid("version: must not be empty"));
    }
    if v.len() != req.version.len() || v.len() > 128 || v.chars().any(char::is_whitespace) {
        return Err(invalid(
            "version: 1-128 characters without spaces (e.g. `2024.12.1` or a commit id)",
        ));
    }
    let steps = req
        .canary_steps
        .clone()
        .unwrap_or_else(|| DEFAULT_STEPS.to_vec());
    if steps.is_empty() || steps.len() > 20 {
        return Err(invalid("canary_steps: needs 1 to 20 steps"));
    }
    if steps.iter().any(|p| *p == 0 || *p > 100) {
        return Err(invalid(
            "canary_steps: every step is a percentage from 1 to 100",
        ));
    }
    if steps.windows(2).any(|w| w[0] >= w[1]) {
        return Err(invalid(format!(
            "canary_steps: {steps:?} must strictly increase"
        )));
    }
    if steps.last() != Some(&100) {
        return Err(invalid(format!("canary_steps: {steps:?} must end at 100")));
    }
    if req.bake_seconds == 0 || req.bake_seconds > MAX_BAKE_SECONDS {
        return Err(invalid(format!(
            "bake_seconds: {} is not between 1 and {MAX_BAKE_SECONDS}",
            req.bake_seconds
        )));
    }
    if let Some(a) = &req.allow_preexisting_alarms
        && a.reason.trim().is_empty()
    {
        return Err(invalid(
            "allow_preexisting_alarms.reason: must say why (e.g. the incident the hotfix is for)",
        ));
    }
    resolve_gates(req.gates.as_ref())?;
    Ok(steps)
}

/// The gates with the runbook's defaults filled in, checked.
pub fn resolve_gates(o: Option<&GateOverrides>) -> Result<Gates> {
    let d = Gates::default();
    let Some(o) = o else { return Ok(d) };
    let g = Gates {
        error_rate_ok: o.error_rate_ok.unwrap_or(d.error_rate_ok),
        error_rate_rollback: o.error_rate_rollback.unwrap_or(d.error_rate_rollback),
        p95_ok_ms: o.p95_ok_ms.unwrap_or(d.p95_ok_ms),
        p95_rollback_ms: o.p95_rollback_ms.unwrap_or(d.p95_rollback_ms),
        p99_ok_ms: o.p99_ok_ms,
        p99_rollback_ms: o.p99_rollback_ms,
        baseline_error_factor: o.baseline_error_factor.unwrap_or(d.baseline_error_factor),
        baseline_latency_factor: o
            .baseline_latency_factor
            .unwrap_or(d.baseline_latency_factor),
        baseline_seconds: o.baseline_seconds.unwrap_or(d.baseline_seconds),
        min_requests: o.min_requests.unwrap_or(d.min_requests),
        max_extensions: o.max_extensions.unwrap_or(d.max_extensions),
        alarms: o.alarms.clone().unwrap_or_default(),
    };
    let positive = [
        ("gates.error_rate_ok", g.error_rate_ok),
        ("gates.error_rate_rollback", g.error_rate_rollback),
        ("gates.p95_ok_ms", g.p95_ok_ms),
        ("gates.p95_rollback_ms", g.p95_rollback_ms),
        ("gates.baseline_error_factor", g.baseline_error_factor),
        ("gates.baseline_latency_factor", g.baseline_latency_factor),
    ];
    for (field, value) in positive {
        if !(value.is_finite() && value > 0.0) {
            return Err(invalid(format!("{field}: must be a number above 0")));
        }
    }
    if g.error_rate_ok > 1.0 || g.error_rate_rollback > 1.0 {
        return Err(invalid(
            "gates: error rates are fractions (0.001 = 0.1 %), at most 1",
        ));
    }
    if g.error_rate_ok > g.error_rate_rollback {
        return Err(invalid(
            "gates.error_rate_ok: above gates.error_rate_rollback",
        ));
    }
    if g.p95_ok_ms > g.p95_rollback_ms {
        return Err(invalid("gates.p95_ok_ms: above gates.p95_rollback_ms"));
    }
    if let (Some(ok), Some(rb)) = (g.p99_ok_ms, g.p99_rollback_ms)
        && ok > rb
    {
        return Err(invalid("gates.p99_ok_ms: above gates.p99_rollback_ms"));
    }
    for (field, value) in [
        ("gates.p99_ok_ms", g.p99_ok_ms),
        ("gates.p99_rollback_ms", g.p99_rollback_ms),
    ] {
        if let Some(v) = value
            && !(v.is_finite() && v > 0.0)
        {
            return Err(invalid(format!("{field}: must be a number above 0")));
        }
    }
    if !(g.min_requests.is_finite() && g.min_requests >= 0.0) {
        return Err(invalid("gates.min_requests: must not be negative"));
    }
    if g.baseline_seconds == 0 || g.baseline_seconds > 7 * 86_400 {
        return Err(invalid("gates.baseline_seconds: between 1 s and 7 days"));
    }
    if g.alarms.iter().any(|a| a.trim().is_empty()) {
        return Err(invalid("gates.alarms: an alarm name is empty"));
    }
    Ok(g)
}

/// Why a Region would not be deployed, if it would not.
fn skip_reason(r: &RegionSpec, version: &str) -> Option<&'static str> {
    let d = r.deploy.as_ref()?;
    if r.role == Role::Standby || r.weight == 0 {
        return Some("drained");
    }
    if d.version.as_deref() == Some(version) {
        return Some("already_on_version");
    }
    None
}

/// The waves and the Regions left out.
///
/// Given waves: every Region must be in the spec, have a `deploy` section and appear
/// once; drained Regions (weight 0 or standby) and Regions already on the version are
/// left out and reported. Default waves: the deployable Regions by traffic, lowest
/// first: the lowest alone (one box), then waves doubling in size, the primary (or,
/// without one, the busiest Region) alone last.
pub fn plan_waves(spec: &WorkloadSpec, req: &DeployRequest) -> Result<(Vec<Wave>, Vec<Skipped>)> {
    let mut skipped = Vec::new();
    let regions: Vec<Vec<String>> = match &req.waves {
        Some(waves) => {
            if waves.is_empty() {
                return Err(invalid("waves: must not be empty"));
            }
            let mut seen = HashSet::new();
            for (i, wave) in waves.iter().enumerate() {
                if wave.is_empty() {
                    return Err(invalid(format!("waves[{i}]: must not be empty")));
                }
                for code in wave {
                    let Some(r) = spec.region(code) else {
                        return Err(invalid(format!(
                            "waves[{i}]: `{code}` is not a Region of workload `{}` (its Regions: {})",
                            spec.workload,
                            spec.regions
                                .iter()
                                .map(|r| r.region.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        )));
                    };
                    if r.deploy.is_none() {
                        return Err(invalid(format!(
                            "waves[{i}]: `{code}` has no deploy section in the spec (blue/green records and gate metrics)"
                        )));
                    }
                    if !seen.insert(code.as_str()) {
                        return Err(invalid(format!(
                            "waves[{i}]: `{code}` is in more than one wave"
                        )));
                    }
                }
            }
            waves.clone()
        }
        None => default_waves(spec),
    };
    if req.waves.is_none() {
        for r in &spec.regions {
            if r.deploy.is_none() {
                skipped.push(Skipped {
                    region: r.region.clone(),
                    reason: "no_deploy_section".into(),
                });
            }
        }
    }
    let mut waves = Vec::new();
    for wave in regions {
        let mut kept = Vec::new();
        for code in wave {
            match spec
                .region(&code)
                .and_then(|r| skip_reason(r, &req.version))
            {
                Some(reason) => skipped.push(Skipped {
                    region: code,
                    reason: reason.into(),
                }),
                None => kept.push(code),
            }
        }
        if !kept.is_empty() {
            waves.push(Wave {
                wave: waves.len(),
                regions: kept,
            });
        }
    }
    // Spec order for the report.
    skipped.sort_by_key(|s| {
        spec.regions
            .iter()
            .position(|r| r.region == s.region)
            .unwrap_or(usize::MAX)
    });
    Ok((waves, skipped))
}

/// Default waves over every Region with a deploy section (drained ones are filtered
/// later, so they are reported).
fn default_waves(spec: &WorkloadSpec) -> Vec<Vec<String>> {
    let mut candidates: Vec<(usize, &RegionSpec)> = spec
        .regions
        .iter()
        .enumerate()
        .filter(|(_, r)| r.deploy.is_some())
        .collect();
    // Drained Regions go in the first wave, where they are reported and dropped
    // without taking the one-box place.
    let (drained, mut live): (Vec<_>, Vec<_>) = candidates
        .drain(..)
        .partition(|(_, r)| r.role == Role::Standby || r.weight == 0);
    // Lowest traffic first; the primary last whatever its weight; ties in spec order.
    live.sort_by_key(|(i, r)| (r.role == Role::Primary, r.weight, *i));
    let last = if live.iter().any(|(_, r)| r.role == Role::Primary) {
        live.pop()
    } else {
        // No primary: the busiest Region goes last, alone.
        let busiest = live
            .iter()
            .enumerate()
            .max_by_key(|(pos, (_, r))| (r.weight, usize::MAX - pos))
            .map(|(pos, _)| pos);
        busiest.map(|pos| live.remove(pos))
    };
    let mut waves: Vec<Vec<String>> = Vec::new();
    let mut size = 1;
    let mut rest = live.into_iter().map(|(_, r)| r.region.clone()).peekable();
    while rest.peek().is_some() {
        waves.push(rest.by_ref().take(size).collect());
        size *= 2;
    }
    if let Some((_, r)) = last {
        waves.push(vec![r.region.clone()]);
    }
    if !drained.is_empty() {
        let names: Vec<String> = drained.into_iter().map(|(_, r)| r.region.clone()).collect();
        match waves.first_mut() {
            Some(first) => first.extend(names),
            None => waves.push(names),
        }
    }
    waves
}

/// Seconds the waves take when every stage passes at its first bake.
pub fn estimate_seconds(waves: &[Wave], steps: &[u32], bake_seconds: u64) -> u64 {
    let stages = u64::try_from(steps.len()).unwrap_or(u64::MAX);
    let waves = u64::try_from(waves.len()).unwrap_or(u64::MAX);
    waves.saturating_mul(stages).saturating_mul(bake_seconds)
}

/// A gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every check passes: go on.
    Promote,
    /// Not conclusive (between the thresholds, or too little traffic): bake again.
    Extend,
    /// A check fails: roll back.
    Rollback,
}

impl Verdict {
    /// `promote`, `extend`, `rollback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Promote => "promote",
            Verdict::Extend => "extend",
            Verdict::Rollback => "rollback",
        }
    }
}

/// A failback soak's verdict: the deploy gates ([`evaluate`]) where the Region has
/// request metrics; where it has none at all (no `deploy` section, or no datapoint of
/// its request metric in the window: nothing to measure, not too little traffic), its
/// alarms alone decide, and the reasons say so. A Region with some traffic but too
/// little for a verdict soaks again, as a deploy stage bakes again.
pub fn soak_verdict(
    gates: &Gates,
    measured: Option<&GateValues>,
    alarms_in_alarm: &[String],
    round: u32,
) -> (Verdict, Vec<String>) {
    match measured.filter(|m| m.requests.is_some()) {
        Some(m) => {
            let mut m = m.clone();
            m.alarms_in_alarm = alarms_in_alarm.to_vec();
            evaluate(gates, &m, None, round)
        }
        None if alarms_in_alarm.is_empty() => (
            Verdict::Promote,
            vec![
                "no request metrics for this Region: gated on its alarms only, none in ALARM"
                    .into(),
            ],
        ),
        None => (
            Verdict::Rollback,
            alarms_in_alarm
                .iter()
                .map(|a| format!("alarm {a} is in ALARM"))
                .collect(),
        ),
    }
}

/// Judges what a bake measured, against absolute thresholds and the Region's own
/// pre-deploy baseline. Returns the verdict and one line per finding.
///
/// - Roll back: a gate alarm in ALARM; error rate over `error_rate_rollback`; p95 over
///   `p95_rollback_ms` (p99 over `p99_rollback_ms` when set); or a regression against
///   the baseline: error rate over `baseline_error_factor` × the baseline's (and at
///   least half of `error_rate_ok` above it), p95 or p99 over
///   `baseline_latency_factor` × the baseline's (and at least 10 % of `p95_ok_ms` above).
/// - Go on: none of those, at least `min_requests` requests, error rate under
///   `error_rate_ok`, p95 under `p95_ok_ms` (and p99 under `p99_ok_ms` when set).
/// - Otherwise inconclusive: bake again, up to `max_extensions` extra rounds, then
///   roll back (a stage never goes on without evidence).
pub fn evaluate(
    gates: &Gates,
    measured: &GateValues,
    baseline: Option<&GateValues>,
    round: u32,
) -> (Verdict, Vec<String>) {
    let mut fail = Vec::new();
    let mut unsure = Vec::new();
    for a in &measured.alarms_in_alarm {
        fail.push(format!("alarm {a} is in ALARM"));
    }
    let requests = measured.requests.unwrap_or(0.0);
    if requests < gates.min_requests || measured.requests.is_none() {
        unsure.push(format!(
            "{requests} requests in the bake, fewer than the {} a verdict needs",
            gates.min_requests
        ));
    }
    match measured.error_rate {
        Some(rate) if rate > gates.error_rate_rollback => fail.push(format!(
            "error rate {} over the rollback threshold {}",
            pct(rate),
            pct(gates.error_rate_rollback)
        )),
        Some(rate) if rate >= gates.error_rate_ok => unsure.push(format!(
            "error rate {} not under {}",
            pct(rate),
            pct(gates.error_rate_ok)
        )),
        Some(_) => {}
        None => unsure.push("no error rate (no requests measured)".into()),
    }
    match measured.p95_ms {
        Some(p) if p > gates.p95_rollback_ms => fail.push(format!(
            "p95 {p} ms over the rollback threshold {} ms",
            gates.p95_rollback_ms
        )),
        Some(p) if p >= gates.p95_ok_ms => {
            unsure.push(format!("p95 {p} ms not under {} ms", gates.p95_ok_ms))
        }
        Some(_) => {}
        None => unsure.push("no p95 latency data".into()),
    }
    if let Some(p) = measured.p99_ms {
        if let Some(rb) = gates.p99_rollback_ms
            && p > rb
        {
            fail.push(format!("p99 {p} ms over the rollback threshold {rb} ms"));
        } else if let Some(ok) = gates.p99_ok_ms
            && p >= ok
        {
            unsure.push(format!("p99 {p} ms not under {ok} ms"));
        }
    } else if gates.p99_ok_ms.is_some() || gates.p99_rollback_ms.is_some() {
        unsure.push("no p99 latency data".into());
    }
    if let Some(b) = baseline {
        if let (Some(rate), Some(base)) = (measured.error_rate, b.error_rate)
            && rate > base * gates.baseline_error_factor
            && rate - base >= gates.error_rate_ok / 2.0
        {
            fail.push(format!(
                "error rate {} is over {}× the Region's baseline {}",
                pct(rate),
                gates.baseline_error_factor,
                pct(base)
            ));
        }
        let min_delta = gates.p95_ok_ms / 10.0;
        for (name, now, base) in [
            ("p95", measured.p95_ms, b.p95_ms),
            ("p99", measured.p99_ms, b.p99_ms),
        ] {
            if let (Some(now), Some(base)) = (now, base)
                && now > base * gates.baseline_latency_factor
                && now - base >= min_delta
            {
                fail.push(format!(
                    "{name} {now} ms is over {}× the Region's baseline {base} ms",
                    gates.baseline_latency_factor
                ));
            }
        }
    }
    if !fail.is_empty() {
        return (Verdict::Rollback, fail);
    }
    if !unsure.is_empty() {
        if round >= gates.max_extensions {
            unsure.push(format!(
                "still inconclusive after {} extra bake(s): rolling back",
                gates.max_extensions
            ));
            return (Verdict::Rollback, unsure);
        }
        return (Verdict::Extend, unsure);
    }
    (Verdict::Promote, vec!["every gate passed".into()])
}

fn pct(rate: f64) -> String {
    format!("{:.3} %", rate * 100.0)
}

/// The error rate of a bake: errors / requests, when there were requests.
pub fn error_rate(errors: Option<f64>, requests: Option<f64>) -> Option<f64> {
    match (errors, requests) {
        (_, Some(r)) if r > 0.0 => Some(errors.unwrap_or(0.0) / r),
        _ => None,
    }
}

/// What a Region's rollout does next. A Region still pending when another failed is
/// done (its `advance` marks it skipped); one with traffic on the new slot halts.
pub fn next_action(rollout: &Rollout, halted: bool) -> (NextAction, usize) {
    match rollout.state {
        RolloutState::Promoted | RolloutState::RolledBack | RolloutState::Skipped => {
            (NextAction::Done, rollout.stage)
        }
        // Halted before any traffic moved: nothing to undo.
        RolloutState::Pending if halted => (NextAction::Done, 0),
        _ if halted => (NextAction::Halt, rollout.stage),
        RolloutState::Pending => (NextAction::Shift, 0),
        RolloutState::Shifting => {
            let passed = rollout
                .gates
                .iter()
                .any(|g| g.stage == rollout.stage && g.verdict == Verdict::Promote.as_str());
            if !passed {
                (NextAction::Shift, rollout.stage)
            } else if rollout.stage + 1 < rollout.steps.len() {
                (NextAction::Shift, rollout.stage + 1)
            } else {
                (NextAction::Promote, rollout.stage)
            }
        }
    }
}

/// This deploy's rollouts, spec order.
pub fn rollouts<'a>(spec: &'a WorkloadSpec, deploy_id: &str) -> Vec<(&'a str, &'a Rollout)> {
    spec.regions
        .iter()
        .filter_map(|r| {
            let ro = r.deploy.as_ref()?.rollout.as_ref()?;
            (ro.deploy_id == deploy_id).then_some((r.region.as_str(), ro))
        })
        .collect()
}

/// Whether a Region of this deploy failed a gate or rolled back: every other Region
/// stops. Returns that Region.
pub fn halted(spec: &WorkloadSpec, deploy_id: &str) -> Option<String> {
    rollouts(spec, deploy_id)
        .into_iter()
        .find(|(_, r)| {
            r.state == RolloutState::RolledBack
                || r.gates
                    .last()
                    .is_some_and(|g| g.verdict == Verdict::Rollback.as_str())
        })
        .map(|(code, _)| code.to_owned())
}

/// The Regions to roll back at the end: none when nothing failed; else every Region
/// with traffic on the new version (promoted, or stopped mid-shift), or with scope
/// `region` only those stopped mid-shift (the failing Region rolled back itself).
pub fn rollback_set(
    spec: &WorkloadSpec,
    deploy_id: &str,
    scope: RollbackScope,
    failed: bool,
) -> Vec<RollbackItem> {
    if !failed {
        return Vec::new();
    }
    rollouts(spec, deploy_id)
        .into_iter()
        .filter(|(_, r)| match r.state {
            RolloutState::Shifting => true,
            RolloutState::Promoted => scope == RollbackScope::All,
            _ => false,
        })
        .map(|(code, r)| RollbackItem {
            region: code.to_owned(),
            slot: r.slot.other(),
            percent: 100,
        })
        .collect()
}

/// The slot a new version goes to: the one not live.
pub fn target_slot(live: Slot) -> Slot {
    live.other()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::AllowAlarms;
    use lifeboat::UnixMillis;
    use lifeboat::model::GateRecord;

    fn example() -> WorkloadSpec {
        serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap()
    }

    fn req() -> DeployRequest {
        DeployRequest {
            workload: "checkout".into(),
            version: "2024.12.1".into(),
            waves: None,
            canary_steps: None,
            bake_seconds: 900,
            gates: None,
            rollback_scope: None,
            allow_preexisting_alarms: None,
            requested_by: None,
            reason: None,
        }
    }

    fn names(waves: &[Wave]) -> Vec<Vec<&str>> {
        waves
            .iter()
            .map(|w| w.regions.iter().map(String::as_str).collect())
            .collect()
    }

    #[test]
    fn default_waves_start_with_the_quietest_region_and_end_with_the_primary() {
        let (waves, skipped) = plan_waves(&example(), &req()).unwrap();
        assert_eq!(
            names(&waves),
            [vec!["ap-southeast-1"], vec!["eu-west-1"], vec!["us-east-1"]]
        );
        assert_eq!(skipped, []);
        assert_eq!(estimate_seconds(&waves, &DEFAULT_STEPS, 900), 3 * 3 * 900);
    }

    #[test]
    fn default_waves_grow_and_drained_regions_are_reported() {
        let mut spec = example();
        let template = spec.regions[1].clone();
        for (code, weight) in [
            ("us-west-2", 5),
            ("eu-central-1", 6),
            ("ap-northeast-1", 7),
            ("sa-east-1", 0),
        ] {
            let mut r = template.clone();
            r.region = code.into();
            r.weight = weight;
            spec.regions.push(r);
        }
        let (waves, skipped) = plan_waves(&spec, &req()).unwrap();
        assert_eq!(
            names(&waves),
            [
                vec!["us-west-2"],
                vec!["eu-central-1", "ap-northeast-1"],
                vec!["ap-southeast-1", "eu-west-1"],
                vec!["us-east-1"],
            ]
        );
        assert_eq!(
            skipped,
            [Skipped {
                region: "sa-east-1".into(),
                reason: "drained".into()
            }]
        );
        // Without a primary, the busiest Region goes last.
        for r in &mut spec.regions {
            r.role = Role::Secondary;
        }
        let (waves, _) = plan_waves(&spec, &req()).unwrap();
        assert_eq!(waves.last().unwrap().regions, ["us-east-1"]);
    }

    #[test]
    fn given_waves_are_checked_and_skip_what_is_drained_or_already_there() {
        let mut spec = example();
        spec.regions[1].weight = 0;
        spec.regions[0].weight = 80;
        spec.regions[2].deploy.as_mut().unwrap().version = Some("2024.12.1".into());
        let mut r = req();
        r.waves = Some(vec![
            vec!["eu-west-1".into(), "ap-southeast-1".into()],
            vec!["us-east-1".into()],
        ]);
        let (waves, skipped) = plan_waves(&spec, &r).unwrap();
        assert_eq!(names(&waves), [vec!["us-east-1"]]);
        assert_eq!(waves[0].wave, 0);
        assert_eq!(
            skipped,
            [
                Skipped {
                    region: "eu-west-1".into(),
                    reason: "drained".into()
                },
                Skipped {
                    region: "ap-southeast-1".into(),
                    reason: "already_on_version".into()
                },
            ]
        );
        for (waves, want) in [
            (vec![vec!["mars-east-1"]], "`mars-east-1` is not a Region"),
            (vec![vec![]], "waves[0]: must not be empty"),
            (
                vec![vec!["us-east-1"], vec!["us-east-1"]],
                "in more than one wave",
            ),
        ] {
            r.waves = Some(
                waves
                    .into_iter()
                    .map(|w| w.into_iter().map(String::from).collect())
                    .collect(),
            );
            let err = plan_waves(&spec, &r).unwrap_err();
            assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
            assert!(err.to_string().contains(want), "{err}");
        }
        r.waves = Some(vec![vec!["us-east-1".into()]]);
        spec.regions[0].deploy = None;
        let err = plan_waves(&spec, &r).unwrap_err();
        assert!(err.to_string().contains("no deploy section"), "{err}");
    }

    #[test]
    fn bad_requests_are_named() {
        type Edit = Box<dyn Fn(&mut DeployRequest)>;
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|r| r.version = String::new()),
                "version: must not be empty",
            ),
            (Box::new(|r| r.version = "1 2".into()), "without spaces"),
            (
                Box::new(|r| r.workload = " ".into()),
                "workload: must not be empty",
            ),
            (
                Box::new(|r| r.canary_steps = Some(vec![10, 50])),
                "must end at 100",
            ),
            (
                Box::new(|r| r.canary_steps = Some(vec![50, 10, 100])),
                "must strictly increase",
            ),
            (
                Box::new(|r| r.canary_steps = Some(vec![0, 100])),
                "from 1 to 100",
            ),
            (Box::new(|r| r.canary_steps = Some(vec![])), "1 to 20 steps"),
            (Box::new(|r| r.bake_seconds = 0), "bake_seconds"),
            (
                Box::new(|r| r.allow_preexisting_alarms = Some(AllowAlarms { reason: " ".into() })),
                "allow_preexisting_alarms.reason",
            ),
            (
                Box::new(|r| {
                    r.gates = Some(GateOverrides {
                        error_rate_ok: Some(0.05),
                        ..GateOverrides::default()
                    })
                }),
                "error_rate_ok: above",
            ),
            (
                Box::new(|r| {
                    r.gates = Some(GateOverrides {
                        p95_rollback_ms: Some(-1.0),
                        ..GateOverrides::default()
                    })
                }),
                "p95_rollback_ms: must be a number above 0",
            ),
        ];
        for (edit, want) in cases {
            let mut r = req();
            edit(&mut r);
            let err = check_request(&r).unwrap_err();
            assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
            assert!(err.to_string().contains(want), "{err} (wanted {want})");
        }
        assert_eq!(check_request(&req()).unwrap(), DEFAULT_STEPS);
    }

    #[test]
    fn a_soak_gates_on_metrics_where_there_are_some_and_on_alarms_otherwise() {
        let g = Gates::default();
        // Healthy traffic: on.
        let good = values(10_000.0, 1.0, 100.0);
        assert_eq!(soak_verdict(&g, Some(&good), &[], 0).0, Verdict::Promote);
        // Errors over the rollback threshold: stop.
        let bad = values(10_000.0, 2_000.0, 100.0);
        assert_eq!(soak_verdict(&g, Some(&bad), &[], 0).0, Verdict::Rollback);
        // A firing alarm stops it whatever the metrics say.
        let alarm = vec!["checkout-use1-5xx".to_owned()];
        assert_eq!(
            soak_verdict(&g, Some(&good), &alarm, 0).0,
            Verdict::Rollback
        );
        // No request metric at all: the alarms decide.
        let none = GateValues::default();
        let (v, why) = soak_verdict(&g, Some(&none), &[], 0);
        assert_eq!(v, Verdict::Promote);
        assert!(why[0].contains("alarms only"), "{why:?}");
        assert_eq!(soak_verdict(&g, None, &alarm, 0).0, Verdict::Rollback);
        // Some traffic, too little for a verdict: soak again, then stop.
        let thin = values(3.0, 0.0, 100.0);
        assert_eq!(soak_verdict(&g, Some(&thin), &[], 0).0, Verdict::Extend);
        assert_eq!(
            soak_verdict(&g, Some(&thin), &[], g.max_extensions).0,
            Verdict::Rollback
        );
    }

    fn values(requests: f64, errors: f64, p95: f64) -> GateValues {
        GateValues {
            requests: Some(requests),
            errors: Some(errors),
            error_rate: error_rate(Some(errors), Some(requests)),
            p95_ms: Some(p95),
            p99_ms: None,
            alarms_in_alarm: vec![],
        }
    }

    #[test]
    fn gates_follow_the_runbook_thresholds() {
        let g = Gates::default();
        // A baseline close to the thresholds, so only the absolute ones decide here.
        let base = values(10_000.0, 8.0, 190.0);
        let verdict = |m: GateValues, round| evaluate(&g, &m, Some(&base), round).0;
        // Healthy: 0.05 %, 120 ms.
        assert_eq!(verdict(values(2000.0, 1.0, 120.0), 0), Verdict::Promote);
        // Between the thresholds: bake again, then roll back.
        assert_eq!(verdict(values(2000.0, 1.0, 250.0), 0), Verdict::Extend);
        assert_eq!(verdict(values(2000.0, 1.0, 250.0), 1), Verdict::Extend);
        assert_eq!(verdict(values(2000.0, 1.0, 250.0), 2), Verdict::Rollback);
        // Over the rollback thresholds.
        let (v, why) = evaluate(&g, &values(2000.0, 40.0, 120.0), Some(&base), 0);
        assert_eq!(v, Verdict::Rollback);
        assert!(
            why[0].contains("error rate 2.000 % over the rollback threshold 1.000 %"),
            "{why:?}"
        );
        assert_eq!(verdict(values(2000.0, 0.0, 600.0), 0), Verdict::Rollback);
        // Too little traffic: inconclusive.
        let (v, why) = evaluate(&g, &values(10.0, 0.0, 100.0), Some(&base), 0);
        assert_eq!(v, Verdict::Extend);
        assert!(why[0].contains("fewer than the 100"), "{why:?}");
        // An alarm in ALARM fails whatever the numbers.
        let mut m = values(2000.0, 0.0, 100.0);
        m.alarms_in_alarm = vec!["checkout-use1-5xx".into()];
        assert_eq!(verdict(m, 0), Verdict::Rollback);
    }

    #[test]
    fn gates_compare_against_the_regions_own_baseline() {
        let g = Gates::default();
        // Baseline 0.01 % and 60 ms: 0.09 % is under the absolute 0.1 % but 9× the
        // baseline and 0.08 pp above it -> roll back.
        let base = values(100_000.0, 10.0, 60.0);
        let (v, why) = evaluate(&g, &values(10_000.0, 9.0, 70.0), Some(&base), 0);
        assert_eq!(v, Verdict::Rollback, "{why:?}");
        assert!(why[0].contains("baseline"), "{why:?}");
        // 150 ms is under 200 ms but 2.5× a 60 ms baseline -> roll back.
        let (v, why) = evaluate(&g, &values(10_000.0, 0.0, 150.0), Some(&base), 0);
        assert_eq!(v, Verdict::Rollback);
        assert!(
            why[0].contains("p95 150 ms is over 1.5× the Region's baseline 60 ms"),
            "{why:?}"
        );
        // Tiny differences are noise: 0.02 % vs 0.01 % and 75 vs 60 ms pass.
        let (v, _) = evaluate(&g, &values(10_000.0, 2.0, 75.0), Some(&base), 0);
        assert_eq!(v, Verdict::Promote);
        // No baseline: absolute thresholds only.
        let (v, _) = evaluate(&g, &values(10_000.0, 9.0, 150.0), None, 0);
        assert_eq!(v, Verdict::Promote);
    }

    #[test]
    fn p99_counts_when_bounded() {
        let g = Gates {
            p99_rollback_ms: Some(800.0),
            p99_ok_ms: Some(400.0),
            ..Gates::default()
        };
        let mut m = values(1000.0, 0.0, 100.0);
        m.p99_ms = Some(900.0);
        assert_eq!(evaluate(&g, &m, None, 0).0, Verdict::Rollback);
        m.p99_ms = Some(500.0);
        assert_eq!(evaluate(&g, &m, None, 0).0, Verdict::Extend);
        m.p99_ms = None;
        assert_eq!(evaluate(&g, &m, None, 0).0, Verdict::Extend);
        m.p99_ms = Some(300.0);
        assert_eq!(evaluate(&g, &m, None, 0).0, Verdict::Promote);
    }

    fn rollout(state: RolloutState, stage: usize, passed: &[usize]) -> Rollout {
        Rollout {
            deploy_id: "d1".into(),
            version: "v2".into(),
            from_version: Some("v1".into()),
            slot: Slot::Green,
            state,
            steps: vec![10, 50, 100],
            stage,
            percent: 0,
            baseline: None,
            ignored_alarms: vec![],
            gates: passed
                .iter()
                .map(|s| GateRecord {
                    stage: *s,
                    percent: 0,
                    round: 0,
                    at: UnixMillis(0),
                    window_seconds: 1,
                    verdict: "promote".into(),
                    values: GateValues::default(),
                    reasons: vec![],
                })
                .collect(),
            started_at: UnixMillis(0),
            shift_started_at: None,
            finished_at: None,
            reason: None,
        }
    }

    #[test]
    fn a_region_walks_its_stages_then_promotes() {
        use NextAction::*;
        assert_eq!(
            next_action(&rollout(RolloutState::Pending, 0, &[]), false),
            (Shift, 0)
        );
        assert_eq!(
            next_action(&rollout(RolloutState::Shifting, 0, &[]), false),
            (Shift, 0)
        );
        assert_eq!(
            next_action(&rollout(RolloutState::Shifting, 0, &[0]), false),
            (Shift, 1)
        );
        assert_eq!(
            next_action(&rollout(RolloutState::Shifting, 2, &[0, 1, 2]), false),
            (Promote, 2)
        );
        assert_eq!(
            next_action(&rollout(RolloutState::Shifting, 1, &[0]), true),
            (Halt, 1)
        );
        assert_eq!(
            next_action(&rollout(RolloutState::Promoted, 2, &[0, 1, 2]), true),
            (Done, 2)
        );
    }

    #[test]
    fn a_failure_rolls_back_finished_regions_unless_scoped_to_the_region() {
        let mut spec = example();
        let states = [
            RolloutState::Promoted,
            RolloutState::RolledBack,
            RolloutState::Shifting,
        ];
        for (r, state) in spec.regions.iter_mut().zip(states) {
            r.deploy.as_mut().unwrap().rollout = Some(rollout(state, 0, &[]));
        }
        let all = rollback_set(&spec, "d1", RollbackScope::All, true);
        assert_eq!(
            all.iter()
                .map(|i| (i.region.as_str(), i.slot, i.percent))
                .collect::<Vec<_>>(),
            [
                ("us-east-1", Slot::Blue, 100),
                ("ap-southeast-1", Slot::Blue, 100)
            ]
        );
        let region = rollback_set(&spec, "d1", RollbackScope::Region, true);
        assert_eq!(region.len(), 1);
        assert_eq!(region[0].region, "ap-southeast-1");
        assert!(rollback_set(&spec, "d1", RollbackScope::All, false).is_empty());
        assert!(rollback_set(&spec, "other", RollbackScope::All, true).is_empty());
        assert_eq!(halted(&spec, "d1").as_deref(), Some("eu-west-1"));
    }
}
