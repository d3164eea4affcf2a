//! Taking a failed serving secondary out of traffic, and bringing it back. Pure: the
//! spec, the health items and the clock come in, the spec after (or a named error) comes
//! out; [`crate::Executor`] does the I/O (lease, switch, fenced spec write, audit).
//!
//! A drain turns the Region's routing switch off, so its Route 53 health check fails and
//! DNS stops answering it; Route 53 then spreads its share over the healthy weighted
//! records in proportion to their weights ("Choosing a routing policy", weighted: a
//! record whose health check fails is left out,
//! <https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/routing-policy-weighted.html>).
//! The spec says the same: the drained Region's weight is given to the other serving
//! Regions in proportion to theirs, and the weight it had is kept in
//! [`Drained`] for the restore.

use std::collections::BTreeMap;
use std::time::Duration;

use lifeboat::model::{Drained, Role};
use lifeboat::store::{AuditEvent, HealthRecord, Verdict};
use lifeboat::{Error, Result, UnixMillis, WorkloadSpec};
use serde_json::json;

use crate::alarm::Admitted;
use crate::decide::{stale_after_ms, warranted};
use crate::request::AlarmSignal;

/// How long a drain or restore holds the lease: it is a few writes inside one
/// invocation (the function's timeout is 30 s), so a crashed one frees it soon.
pub const LEASE_TTL: Duration = Duration::from_secs(60);

/// How long the switch metric may take in the switch's Region before the move goes on
/// without it (the recorded position is what health-probe re-asserts every round).
pub const SWITCH_TIMEOUT: Duration = Duration::from_secs(4);

/// `drain` or `restore`: the lease holder's prefix.
pub fn verb(m: Admitted) -> &'static str {
    match m {
        Admitted::Restore => "restore",
        _ => "drain",
    }
}

/// The outcome of a move that happened.
pub fn done(m: Admitted) -> &'static str {
    match m {
        Admitted::Restore => "restored",
        _ => "drained",
    }
}

/// The outcome of a move found done already (or with nothing to do).
pub fn done_already(m: Admitted) -> &'static str {
    match m {
        Admitted::Restore => "not_drained",
        _ => "not_serving",
    }
}

fn weights(spec: &WorkloadSpec) -> serde_json::Value {
    spec.regions
        .iter()
        .map(|r| (r.region.clone(), json!(r.weight)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The audit event of a drain or restore: the weights before and after.
pub fn moved_event(
    before: &WorkloadSpec,
    after: &WorkloadSpec,
    region: &str,
    m: Admitted,
    (by, why, key): (&str, &str, &str),
    shares: Option<&Shares>,
    now: UnixMillis,
) -> AuditEvent {
    AuditEvent {
        at: now,
        id: format!("{}-{region}-{key}", verb(m)),
        actor: by.to_owned(),
        action: format!("region_{}", done(m)),
        reason: why.to_owned(),
        before: Some(json!({"version": before.version, "weights": weights(before)})),
        after: Some(json!({"version": after.version, "weights": weights(after), "shares": shares})),
    }
}

/// The audit event of a drain or restore refused (`FailoverUnwarranted`: the probes do
/// not bear the alarm out; `TargetUnhealthy`: nobody to take the traffic, or not
/// healthy yet): nothing moved, and whoever is paged can see why.
pub fn refused_event(
    region: &str,
    m: Admitted,
    (by, why, key): (&str, &str, &str),
    error: &Error,
    now: UnixMillis,
) -> AuditEvent {
    AuditEvent {
        at: now,
        id: format!("{}-refused-{region}-{key}", verb(m)),
        actor: by.to_owned(),
        action: format!("{}_refused", verb(m)),
        reason: format!("{why}; refused: {error}"),
        before: None,
        after: Some(json!({"region": region, "error": error.name()})),
    }
}

/// The audit event of a drained Region whose alarm is OK again while `auto_restore` is
/// off: it stays out until an operator's restore request.
pub fn recovered_event(region: &str, alarm: &AlarmSignal, now: UnixMillis) -> AuditEvent {
    AuditEvent {
        at: now,
        id: format!("recovered-{region}-{}", alarm.changed_at.0),
        actor: format!("alarm:{}", alarm.name),
        action: "drained_region_recovered".to_owned(),
        reason: format!(
            "alarm {} is OK again at {}; policy auto_restore is off: it stays drained until an operator's restore request",
            alarm.name, alarm.changed_at
        ),
        before: None,
        after: Some(json!({"region": region})),
    }
}

/// The Regions that took a drained Region's weight, and how much each took (the audit
/// event's `after`).
pub type Shares = BTreeMap<String, u32>;

fn fresh_healthy(
    spec: &WorkloadSpec,
    health: &[HealthRecord],
    region: &str,
    now: UnixMillis,
) -> bool {
    health.iter().any(|h| {
        h.region == region
            && h.verdict == Verdict::Healthy
            && now.since(h.observed_at) <= stale_after_ms(spec)
    })
}

/// Splits `amount` over `regions` (index, weight) in proportion to their weights; the
/// rounding remainder goes to the first (the caller puts the primary first).
fn split(amount: u32, regions: &[(usize, u32)]) -> Vec<(usize, u32)> {
    let total: u64 = regions.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut shares: Vec<(usize, u32)> = regions
        .iter()
        .map(|&(i, w)| {
            let share = (u64::from(amount) * u64::from(w))
                .checked_div(total)
                .unwrap_or(0);
            (i, u32::try_from(share).unwrap_or(0))
        })
        .collect();
    let given: u32 = shares.iter().map(|(_, s)| s).sum();
    if let Some(first) = shares.first_mut() {
        first.1 += amount.saturating_sub(given);
    }
    shares
}

/// The spec after draining `region`, and who took its weight. Errors: `InvalidInput`
/// when it is not a serving secondary (unknown, the primary, a standby, weight 0, or
/// drained already), `FailoverUnwarranted` when Lifeboat's own probes do not freshly
/// call it unhealthy ([`warranted`]: an alarm alone is no evidence), `TargetUnhealthy`
/// when no other serving Region is healthy to take its traffic (draining would then
/// leave nobody; Route 53 answers every record when all are unhealthy anyway).
pub fn drain(
    spec: &WorkloadSpec,
    health: &[HealthRecord],
    region: &str,
    reason: &str,
    now: UnixMillis,
) -> Result<(WorkloadSpec, Shares)> {
    let Some(idx) = spec.regions.iter().position(|r| r.region == region) else {
        return Err(Error::InvalidInput(format!(
            "region: `{region}` is not a Region of workload `{}`",
            spec.workload
        )));
    };
    let r = &spec.regions[idx];
    if r.role != Role::Secondary || r.weight == 0 || r.drained.is_some() {
        return Err(Error::InvalidInput(format!(
            "region: `{region}` of workload `{}` is not a serving secondary (role {:?}, weight {}{})",
            spec.workload,
            r.role,
            r.weight,
            if r.drained.is_some() { ", drained" } else { "" }
        )));
    }
    warranted(spec, health, region, now)?;
    // Receivers: the other Regions serving now and healthy, the primary first.
    let mut receivers: Vec<(usize, u32)> = spec
        .regions
        .iter()
        .enumerate()
        .filter(|(i, o)| {
            *i != idx
                && o.role != Role::Standby
                && o.weight > 0
                && fresh_healthy(spec, health, &o.region, now)
        })
        .map(|(i, o)| (i, o.weight))
        .collect();
    receivers.sort_by_key(|&(i, _)| (spec.regions[i].role != Role::Primary, i));
    if receivers.is_empty() {
        return Err(Error::TargetUnhealthy {
            workload: spec.workload.clone(),
            reason: format!(
                "no other serving Region is healthy to take the traffic of {region}; it stays in"
            ),
        });
    }
    let moved = r.weight;
    let mut after = spec.clone();
    let mut shares = Shares::new();
    for (i, share) in split(moved, &receivers) {
        after.regions[i].weight += share;
        shares.insert(after.regions[i].region.clone(), share);
    }
    after.regions[idx].weight = 0;
    after.regions[idx].drained = Some(Drained {
        weight: moved,
        since: now,
        reason: reason.to_owned(),
    });
    after.check()?;
    Ok((after, shares))
}

/// The spec after restoring drained `region` to the weight it had, taken back from the
/// other serving Regions in proportion to their weights now (which gives each back what
/// it took when nothing else changed meanwhile). Errors: `InvalidInput` when it is not
/// drained, `TargetUnhealthy` unless Lifeboat's probes freshly call it healthy — which,
/// with the probe's hysteresis, means `recovery_threshold` good rounds in a row.
pub fn restore(
    spec: &WorkloadSpec,
    health: &[HealthRecord],
    region: &str,
    now: UnixMillis,
) -> Result<WorkloadSpec> {
    let Some(idx) = spec.regions.iter().position(|r| r.region == region) else {
        return Err(Error::InvalidInput(format!(
            "region: `{region}` is not a Region of workload `{}`",
            spec.workload
        )));
    };
    let Some(drained) = spec.regions[idx].drained.clone() else {
        return Err(Error::InvalidInput(format!(
            "region: `{region}` of workload `{}` is not drained",
            spec.workload
        )));
    };
    if !fresh_healthy(spec, health, region, now) {
        return Err(Error::TargetUnhealthy {
            workload: spec.workload.clone(),
            reason: format!(
                "{region} is not healthy by Lifeboat's probes yet ({} good rounds in a row are needed); it stays drained",
                spec.policy.recovery_threshold
            ),
        });
    }
    let mut givers: Vec<(usize, u32)> = spec
        .regions
        .iter()
        .enumerate()
        .filter(|(i, o)| *i != idx && o.role != Role::Standby && o.weight > 0)
        .map(|(i, o)| (i, o.weight))
        .collect();
    givers.sort_by_key(|&(i, _)| (spec.regions[i].role != Role::Primary, i));
    let available: u32 = givers.iter().map(|(_, w)| w).sum();
    let back = drained.weight.min(available);
    let mut after = spec.clone();
    for (i, share) in split(back, &givers) {
        // A share never exceeds the giver's weight: each is at most back × w / total
        // ≤ w, and the remainder (< number of givers) lands on the first, the largest
        // role-wise; saturating keeps a pathological rounding from underflowing.
        after.regions[i].weight = after.regions[i].weight.saturating_sub(share);
    }
    after.regions[idx].weight = back;
    after.regions[idx].drained = None;
    after.check()?;
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::ErrorName;

    const NOW: UnixMillis = UnixMillis(1_800_000_000_000);

    fn spec() -> WorkloadSpec {
        let raw = include_str!("../../../events/model/example-spec.json");
        let mut spec: WorkloadSpec = serde_json::from_str(raw).unwrap();
        spec.version = 4;
        spec
    }

    fn record(region: &str, verdict: Verdict, age_ms: u64) -> HealthRecord {
        HealthRecord {
            region: region.into(),
            verdict,
            consecutive_failures: 0,
            consecutive_successes: 0,
            probe_latency_ms: None,
            replication_lag_seconds: None,
            lag_grade: None,
            observed_at: UnixMillis(NOW.0 - age_ms),
            detail: None,
        }
    }

    fn health(ap: Verdict) -> Vec<HealthRecord> {
        vec![
            record("us-east-1", Verdict::Healthy, 5_000),
            record("eu-west-1", Verdict::Healthy, 5_000),
            record("ap-southeast-1", ap, 5_000),
        ]
    }

    /// The example with ap-southeast-1 drained, as its failing alarm leaves it.
    fn apse1_drained() -> WorkloadSpec {
        drain(
            &spec(),
            &health(Verdict::Unhealthy),
            "ap-southeast-1",
            "a",
            NOW,
        )
        .unwrap()
        .0
    }

    fn weights(spec: &WorkloadSpec) -> Vec<u32> {
        spec.regions.iter().map(|r| r.weight).collect()
    }

    #[test]
    fn a_failed_serving_secondary_gives_its_weight_to_the_healthy_in_proportion() {
        let (after, shares) = drain(
            &spec(),
            &health(Verdict::Unhealthy),
            "ap-southeast-1",
            "alarm",
            NOW,
        )
        .unwrap();
        // 20 over 50:30 → 12.5 and 7.5: 12 and 7, the remainder to the primary.
        assert_eq!(weights(&after), [63, 37, 0]);
        assert_eq!(
            shares,
            Shares::from([("us-east-1".into(), 13), ("eu-west-1".into(), 7)])
        );
        let drained = after.regions[2].drained.as_ref().unwrap();
        assert_eq!((drained.weight, drained.since), (20, NOW));
        assert_eq!(after.regions[2].role, Role::Secondary);
    }

    #[test]
    fn an_unhealthy_receiver_gets_nothing() {
        let mut h = health(Verdict::Unhealthy);
        h[1].verdict = Verdict::Unknown;
        let (after, _) = drain(&spec(), &h, "ap-southeast-1", "alarm", NOW).unwrap();
        assert_eq!(weights(&after), [70, 30, 0]);
    }

    #[test]
    fn no_drain_without_fresh_evidence_or_anyone_to_take_the_traffic() {
        let s = spec();
        // The probes see it healthy: the alarm alone is no evidence.
        let e = drain(&s, &health(Verdict::Healthy), "ap-southeast-1", "a", NOW).unwrap_err();
        assert_eq!(e.name(), ErrorName::FailoverUnwarranted);
        // The verdict is old: the prober is silent.
        let mut h = health(Verdict::Unhealthy);
        h[2].observed_at = UnixMillis(NOW.0 - 3_600_000);
        let e = drain(&s, &h, "ap-southeast-1", "a", NOW).unwrap_err();
        assert_eq!(e.name(), ErrorName::FailoverUnwarranted);
        // Everybody else is down too.
        let h = vec![
            record("us-east-1", Verdict::Unhealthy, 1_000),
            record("eu-west-1", Verdict::Unknown, 1_000),
            record("ap-southeast-1", Verdict::Unhealthy, 1_000),
        ];
        let e = drain(&s, &h, "ap-southeast-1", "a", NOW).unwrap_err();
        assert_eq!(e.name(), ErrorName::TargetUnhealthy);
    }

    #[test]
    fn only_a_serving_secondary_is_drained() {
        let s = spec();
        let h = health(Verdict::Unhealthy);
        for region in ["us-east-1", "nowhere-1"] {
            let e = drain(&s, &h, region, "a", NOW).unwrap_err();
            assert_eq!(e.name(), ErrorName::InvalidInput, "{region}");
        }
        let (once, _) = drain(&s, &h, "ap-southeast-1", "a", NOW).unwrap();
        // A duplicate delivery finds it drained already: nothing more moves.
        let e = drain(&once, &h, "ap-southeast-1", "a", NOW).unwrap_err();
        assert_eq!(e.name(), ErrorName::InvalidInput);
    }

    #[test]
    fn a_restore_gives_back_exactly_what_the_drain_took() {
        let drained = apse1_drained();
        let after = restore(&drained, &health(Verdict::Healthy), "ap-southeast-1", NOW).unwrap();
        assert_eq!(weights(&after), [50, 30, 20]);
        assert!(after.regions.iter().all(|r| r.drained.is_none()));
    }

    #[test]
    fn no_restore_before_the_probes_call_it_healthy() {
        let drained = apse1_drained();
        for v in [Verdict::Unhealthy, Verdict::Unknown] {
            let e = restore(&drained, &health(v), "ap-southeast-1", NOW).unwrap_err();
            assert_eq!(e.name(), ErrorName::TargetUnhealthy, "{v:?}");
        }
        let e = restore(&spec(), &health(Verdict::Healthy), "ap-southeast-1", NOW).unwrap_err();
        assert_eq!(e.name(), ErrorName::InvalidInput);
    }
}
