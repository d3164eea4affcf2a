//! The verdict of a Region after a round: a pure function of the previous `HEALTH#` record,
//! this round's observation and the policy. No I/O, no clock (the time is passed in).
//!
//! - A failed round adds one to `consecutive_failures` and clears the successes; at
//!   `failure_threshold` failures in a row the Region is `unhealthy`.
//! - A good round adds one to `consecutive_successes` and clears the failures; an
//!   unhealthy Region is `healthy` again at `recovery_threshold` good rounds in a row.
//! - A Region never seen (`unknown`) is `healthy` at its first good round (there is no
//!   failure to recover from) and `unhealthy` at `failure_threshold` failed rounds.
//! - Replication lag is graded against the policy's levels (S3 latency against its own,
//!   `s3_replication_lag`); it is reported, not counted
//!   as a failure: a Region whose replica lags still serves, and the failover decision
//!   weighs lag against the RPO itself.

use lifeboat::UnixMillis;
use lifeboat::model::{LagLevels, Policy};
use lifeboat::store::{AuditEvent, HealthRecord, LagGrade, Verdict};
use serde_json::json;

/// What one round saw in one Region.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observation {
    /// Every failed check, in a few words each (empty: the round was good).
    pub failures: Vec<String>,
    /// Latency of the slowest endpoint probe, if any endpoint was probed.
    pub latency_ms: Option<u64>,
    /// Worst database replication lag into the Region ([`crate::signals::LagSeen`]):
    /// `None` when unknown (or nothing replicates into it), negative when replication
    /// is not running. What the RPO gate weighs.
    pub lag_seconds: Option<f64>,
    /// Worst S3 replication latency into the Region's buckets, when S3 publishes it:
    /// graded by `policy.s3_replication_lag`, not recorded as the database lag.
    pub s3_lag_seconds: Option<f64>,
    /// Things worth knowing that do not fail the round (e.g. an alarm the spec names
    /// that does not exist).
    pub notes: Vec<String>,
}

impl Observation {
    /// Whether every check passed.
    pub fn is_good(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The record to store after a round, and the verdict change if there was one.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The new `HEALTH#<region>` record.
    pub record: HealthRecord,
    /// `(before, after)` when the verdict changed.
    pub change: Option<(Verdict, Verdict)>,
}

/// Grades a lag against the policy's levels (at or over a level is that level).
pub fn grade(lag_seconds: f64, levels: &LagLevels) -> LagGrade {
    // Lag levels are whole seconds; u64 -> f64 is exact far beyond any real lag.
    #[allow(clippy::cast_precision_loss)]
    let (warning, critical) = (
        levels.warning_seconds as f64,
        levels.critical_seconds as f64,
    );
    if lag_seconds >= critical {
        LagGrade::Critical
    } else if lag_seconds >= warning {
        LagGrade::Warning
    } else {
        LagGrade::Ok
    }
}

/// The worse of the database lag's grade (`policy.replication_lag`) and the S3
/// latency's (`policy.s3_replication_lag`); a database lag that is negative
/// (replication not running) is critical.
pub fn lag_grade(obs: &Observation, policy: &Policy) -> Option<LagGrade> {
    let db = obs.lag_seconds.map(|lag| {
        if lag < 0.0 {
            LagGrade::Critical
        } else {
            grade(lag, &policy.replication_lag)
        }
    });
    let s3 = obs
        .s3_lag_seconds
        .map(|lag| grade(lag, &policy.s3_replication_lag));
    db.into_iter().chain(s3).max_by_key(|g| match g {
        LagGrade::Ok => 0,
        LagGrade::Warning => 1,
        LagGrade::Critical => 2,
    })
}

const MAX_DETAIL: usize = 480;

fn detail(obs: &Observation) -> Option<String> {
    let parts: Vec<&str> = obs
        .failures
        .iter()
        .chain(obs.notes.iter())
        .map(String::as_str)
        .collect();
    if parts.is_empty() {
        return None;
    }
    let mut text = parts.join("; ");
    if text.len() > MAX_DETAIL {
        let mut cut = MAX_DETAIL;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    Some(text)
}

/// The next record for `region` after a round observed at `now`.
///
/// `observed_at` is strictly after the previous record's, so the store (which keeps the
/// newest observation) always takes it even when two rounds fall in one millisecond.
pub fn next(
    previous: Option<&HealthRecord>,
    region: &str,
    obs: &Observation,
    policy: &Policy,
    now: UnixMillis,
) -> Step {
    let (verdict, failures, successes, last) = match previous {
        Some(p) => (
            p.verdict,
            p.consecutive_failures,
            p.consecutive_successes,
            Some(p.observed_at),
        ),
        None => (Verdict::Unknown, 0, 0, None),
    };
    let (new_verdict, failures, successes) = if obs.is_good() {
        let successes = successes.saturating_add(1);
        let v = match verdict {
            Verdict::Unknown => Verdict::Healthy,
            Verdict::Unhealthy if successes >= policy.recovery_threshold => Verdict::Healthy,
            v => v,
        };
        (v, 0, successes)
    } else {
        let failures = failures.saturating_add(1);
        let v = if failures >= policy.failure_threshold {
            Verdict::Unhealthy
        } else {
            verdict
        };
        (v, failures, 0)
    };
    let observed_at = match last {
        Some(last) if now <= last => UnixMillis(last.0.saturating_add(1)),
        _ => now,
    };
    let record = HealthRecord {
        region: region.to_owned(),
        verdict: new_verdict,
        consecutive_failures: failures,
        consecutive_successes: successes,
        probe_latency_ms: obs.latency_ms,
        replication_lag_seconds: obs.lag_seconds,
        lag_grade: lag_grade(obs, policy),
        observed_at,
        detail: detail(obs),
    };
    let change = (new_verdict != verdict).then_some((verdict, new_verdict));
    Step { record, change }
}

fn verdict_str(v: Verdict) -> &'static str {
    match v {
        Verdict::Healthy => "healthy",
        Verdict::Unhealthy => "unhealthy",
        Verdict::Unknown => "unknown",
    }
}

/// The audit event for a verdict change. Its id is derived from the transition and the
/// previous observation, so a retried write of the same step records it once.
pub fn audit_event(
    actor: &str,
    previous: Option<&HealthRecord>,
    step: &Step,
) -> Option<AuditEvent> {
    let (before, after) = step.change?;
    let r = &step.record;
    let since = previous.map_or(0, |p| p.observed_at.0);
    Some(AuditEvent {
        at: r.observed_at,
        id: format!(
            "verdict-{}-{}-to-{}-after-{since}",
            r.region,
            verdict_str(before),
            verdict_str(after)
        ),
        actor: actor.to_owned(),
        action: "verdict_changed".to_owned(),
        reason: r.detail.clone().unwrap_or_else(|| match after {
            Verdict::Healthy => "every check passed".to_owned(),
            _ => "checks failed".to_owned(),
        }),
        before: Some(json!({
            "region": r.region,
            "verdict": verdict_str(before),
            "consecutive_failures": previous.map_or(0, |p| p.consecutive_failures),
            "consecutive_successes": previous.map_or(0, |p| p.consecutive_successes),
        })),
        after: Some(json!({
            "region": r.region,
            "verdict": verdict_str(after),
            "consecutive_failures": r.consecutive_failures,
            "consecutive_successes": r.consecutive_successes,
        })),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(k: u32, m: u32) -> Policy {
        let mut spec: lifeboat::WorkloadSpec =
            serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap();
        spec.policy.failure_threshold = k;
        spec.policy.recovery_threshold = m;
        spec.policy
    }

    fn good() -> Observation {
        Observation {
            latency_ms: Some(3),
            ..Observation::default()
        }
    }

    fn bad() -> Observation {
        Observation {
            failures: vec!["GET https://x/health: status 503, expected 200".into()],
            latency_ms: Some(4),
            ..Observation::default()
        }
    }

    /// Runs rounds from nothing; returns the verdict after each and the changes.
    fn run(policy: &Policy, rounds: &[Observation]) -> (Vec<Verdict>, Vec<(Verdict, Verdict)>) {
        let mut prev: Option<HealthRecord> = None;
        let mut verdicts = vec![];
        let mut changes = vec![];
        for (i, obs) in rounds.iter().enumerate() {
            let step = next(
                prev.as_ref(),
                "eu-west-1",
                obs,
                policy,
                UnixMillis(1000 + i as u64),
            );
            verdicts.push(step.record.verdict);
            changes.extend(step.change);
            prev = Some(step.record);
        }
        (verdicts, changes)
    }

    use Verdict::{Healthy as H, Unhealthy as U, Unknown as N};

    #[test]
    fn goes_unhealthy_after_exactly_k_failed_rounds_and_back_after_m_good_ones() {
        let p = policy(3, 2);
        let rounds = [good(), bad(), bad(), bad(), bad(), good(), good(), good()];
        let (verdicts, changes) = run(&p, &rounds);
        assert_eq!(verdicts, [H, H, H, U, U, U, H, H]);
        assert_eq!(changes, [(N, H), (H, U), (U, H)]);
    }

    #[test]
    fn a_flapping_endpoint_does_not_flip_the_verdict() {
        let p = policy(3, 3);
        let mut rounds = vec![good()];
        for _ in 0..10 {
            rounds.extend([bad(), bad(), good()]);
        }
        let (verdicts, changes) = run(&p, &rounds);
        assert!(verdicts.iter().all(|v| *v == H), "{verdicts:?}");
        assert_eq!(changes, [(N, H)]);

        // And once unhealthy, flapping does not bring it back.
        let mut rounds = vec![bad(), bad(), bad()];
        for _ in 0..10 {
            rounds.extend([good(), good(), bad()]);
        }
        let (verdicts, changes) = run(&p, &rounds);
        assert_eq!(verdicts[2..].iter().filter(|v| **v != U).count(), 0);
        assert_eq!(changes, [(N, U)]);
    }

    #[test]
    fn unknown_stays_unknown_until_k_failures() {
        let (verdicts, _) = run(&policy(3, 3), &[bad(), bad(), bad()]);
        assert_eq!(verdicts, [N, N, U]);
        let (verdicts, _) = run(&policy(1, 1), &[bad(), good()]);
        assert_eq!(verdicts, [U, H]);
    }

    #[test]
    fn counters_and_details_are_recorded() {
        let p = policy(3, 3);
        let s1 = next(None, "us-east-1", &bad(), &p, UnixMillis(10));
        assert_eq!(s1.record.consecutive_failures, 1);
        assert_eq!(s1.record.consecutive_successes, 0);
        assert_eq!(s1.record.probe_latency_ms, Some(4));
        assert_eq!(
            s1.record.detail.as_deref(),
            Some("GET https://x/health: status 503, expected 200")
        );
        let s2 = next(Some(&s1.record), "us-east-1", &good(), &p, UnixMillis(10));
        assert_eq!(s2.record.consecutive_failures, 0);
        assert_eq!(s2.record.consecutive_successes, 1);
        assert_eq!(s2.record.detail, None);
        assert_eq!(
            s2.record.observed_at,
            UnixMillis(11),
            "a round in the same millisecond is still newer"
        );
    }

    #[test]
    fn long_details_are_cut_on_a_char_boundary() {
        let obs = Observation {
            failures: vec!["é".repeat(400)],
            ..Observation::default()
        };
        let s = next(None, "us-east-1", &obs, &policy(3, 3), UnixMillis(1));
        let d = s.record.detail.unwrap();
        assert!(d.len() <= MAX_DETAIL + '…'.len_utf8());
        assert!(d.ends_with('…'));
    }

    #[test]
    fn s3_latency_has_its_own_levels_and_a_stopped_replica_is_critical() {
        let p = policy(3, 3);
        let obs = |db: Option<f64>, s3: Option<f64>| Observation {
            lag_seconds: db,
            s3_lag_seconds: s3,
            ..good()
        };
        // 45 s of S3 latency is nothing for S3 (warning at 1 h), critical for a database.
        assert_eq!(lag_grade(&obs(None, Some(45.0)), &p), Some(LagGrade::Ok));
        assert_eq!(
            lag_grade(&obs(None, Some(3_600.0)), &p),
            Some(LagGrade::Warning)
        );
        assert_eq!(
            lag_grade(&obs(Some(1.0), Some(7_200.0)), &p),
            Some(LagGrade::Critical)
        );
        assert_eq!(
            lag_grade(&obs(Some(6.0), Some(1.0)), &p),
            Some(LagGrade::Warning)
        );
        assert_eq!(
            lag_grade(&obs(Some(-1.0), None), &p),
            Some(LagGrade::Critical)
        );
        assert_eq!(lag_grade(&obs(None, None), &p), None);
        let s = next(
            None,
            "eu-west-1",
            &obs(Some(2.0), Some(45.0)),
            &p,
            UnixMillis(1),
        );
        assert_eq!(
            s.record.replication_lag_seconds,
            Some(2.0),
            "the database lag"
        );
    }

    #[test]
    fn lag_is_graded_by_the_policy_levels() {
        let levels = LagLevels {
            warning_seconds: 5,
            critical_seconds: 30,
        };
        assert_eq!(grade(0.0, &levels), LagGrade::Ok);
        assert_eq!(grade(4.99, &levels), LagGrade::Ok);
        assert_eq!(grade(5.0, &levels), LagGrade::Warning);
        assert_eq!(grade(29.9, &levels), LagGrade::Warning);
        assert_eq!(grade(30.0, &levels), LagGrade::Critical);
        let obs = Observation {
            lag_seconds: Some(31.5),
            ..good()
        };
        let s = next(None, "eu-west-1", &obs, &policy(3, 3), UnixMillis(1));
        assert_eq!(s.record.lag_grade, Some(LagGrade::Critical));
        assert_eq!(s.record.replication_lag_seconds, Some(31.5));
        assert_eq!(
            s.record.verdict,
            Verdict::Healthy,
            "lag is graded, not a failure"
        );
    }

    #[test]
    fn a_change_makes_one_audit_event_with_a_stable_id() {
        let p = policy(1, 1);
        let s1 = next(None, "us-east-1", &good(), &p, UnixMillis(100));
        let s2 = next(Some(&s1.record), "us-east-1", &bad(), &p, UnixMillis(200));
        let e = audit_event("health-probe", Some(&s1.record), &s2).unwrap();
        assert_eq!(e.id, "verdict-us-east-1-healthy-to-unhealthy-after-100");
        assert_eq!(e.action, "verdict_changed");
        assert_eq!(e.at, UnixMillis(200));
        assert!(e.reason.contains("status 503"));
        assert_eq!(e.before.unwrap()["verdict"], "healthy");
        assert_eq!(e.after.unwrap()["verdict"], "unhealthy");
        let s3 = next(Some(&s2.record), "us-east-1", &bad(), &p, UnixMillis(300));
        assert!(audit_event("health-probe", Some(&s2.record), &s3).is_none());
    }
}
