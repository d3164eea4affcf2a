//! What Route 53 answers, computed from what `verify` read: health-check semantics
//! (`CLOUDWATCH_METRIC` checks follow their alarm; disabled checks are healthy;
//! `Inverted` flips) and routing semantics (failover, weighted, simple; unhealthy
//! records are skipped; when every record is unhealthy Route 53 answers as if all were
//! healthy). Pure: no I/O.

use serde::{Deserialize, Serialize};

/// What `verify` knows about a record's health check.
#[derive(Debug, Clone, PartialEq)]
pub enum Check {
    /// The record has no health check: always healthy.
    None,
    /// A `CLOUDWATCH_METRIC` check on an alarm.
    Alarm {
        /// The alarm's state as read (`OK`, `ALARM`, `INSUFFICIENT_DATA`); `None` when
        /// not read (its Region is the failed one).
        state: Option<String>,
        /// The check's `InsufficientDataHealthStatus` (`Healthy`, `Unhealthy`,
        /// `LastKnownStatus`); AWS's default is `LastKnownStatus`.
        insufficient_data: Option<String>,
        /// Inverted check.
        inverted: bool,
        /// Disabled check (Route 53 then considers it healthy).
        disabled: bool,
    },
    /// Any other check type: GetHealthCheckStatus observations.
    Observed {
        /// Observations reporting success.
        successes: usize,
        /// All observations.
        total: usize,
        /// Inverted check.
        inverted: bool,
        /// Disabled check.
        disabled: bool,
    },
}

/// Whether Route 53 considers a check healthy, and why.
pub fn evaluate(check: &Check) -> (bool, String) {
    match check {
        Check::None => (true, "no_health_check".into()),
        Check::Alarm { disabled: true, .. } | Check::Observed { disabled: true, .. } => {
            (true, "health_check_disabled".into())
        }
        Check::Alarm {
            state,
            insufficient_data,
            inverted,
            ..
        } => {
            let (healthy, why) = match state.as_deref() {
                Some("OK") => (true, "alarm_ok".to_owned()),
                Some("ALARM") => (false, "alarm_in_alarm".to_owned()),
                other => {
                    let seen = other.map_or("not_read", |_| "insufficient_data");
                    match insufficient_data.as_deref() {
                        Some("Unhealthy") => (false, format!("{seen}_unhealthy")),
                        Some("Healthy") => (true, format!("{seen}_healthy")),
                        // LastKnownStatus (the default): we cannot know it; assume the
                        // record keeps serving, and say so.
                        _ => (true, format!("{seen}_last_known_assumed_healthy")),
                    }
                }
            };
            flip(healthy, why, *inverted)
        }
        Check::Observed {
            successes,
            total,
            inverted,
            ..
        } => {
            // Route 53: healthy when more than 18 % of its checkers report success.
            let healthy = *total > 0 && successes * 100 > total * 18;
            flip(
                healthy,
                format!("checkers_{successes}_of_{total}_ok"),
                *inverted,
            )
        }
    }
}

fn flip(healthy: bool, why: String, inverted: bool) -> (bool, String) {
    if inverted {
        (!healthy, format!("{why}_inverted"))
    } else {
        (healthy, why)
    }
}

/// A record as read, with its health evaluated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordAnswer {
    /// Set identifier (absent for a simple record).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_identifier: Option<String>,
    /// The spec Region this record routes to, when the spec names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Weight, for weighted records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    /// `PRIMARY` or `SECONDARY`, for failover records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<String>,
    /// Health check id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_id: Option<String>,
    /// Whether Route 53 considers it healthy.
    pub healthy: bool,
    /// Why (e.g. `alarm_ok`, `alarm_in_alarm`, `no_health_check`).
    pub health: String,
    /// Share of answers in basis points (10 000 = all).
    pub share_bp: u32,
}

/// What Route 53 answers for one name and type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsAnswer {
    /// Hosted zone id.
    pub hosted_zone_id: String,
    /// Record name.
    pub record_name: String,
    /// Record type.
    pub record_type: String,
    /// `weighted`, `failover`, `simple` or `unsupported` (other policies: reported,
    /// shares not computed).
    pub policy: String,
    /// True when no record was healthy and Route 53 answers as if all were.
    pub all_unhealthy_fallback: bool,
    /// Every record of the name and type.
    pub records: Vec<RecordAnswer>,
}

/// Splits 10 000 basis points over `weights` proportionally (largest remainder, ties
/// to the earlier record); all-zero weights share equally.
fn split(weights: &[u64]) -> Vec<u32> {
    let total: u64 = weights.iter().sum();
    let w: Vec<u64> = if total == 0 {
        vec![1; weights.len()]
    } else {
        weights.to_vec()
    };
    let total: u64 = w.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    let raw: Vec<u64> = w.iter().map(|x| x * 10_000).collect();
    let mut out: Vec<u32> = raw
        .iter()
        .map(|x| u32::try_from(x / total).unwrap_or(0))
        .collect();
    let mut deficit = 10_000u32.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..raw.len()).collect();
    order.sort_by(|a, b| (raw[*b] % total).cmp(&(raw[*a] % total)));
    for i in order {
        if deficit == 0 {
            break;
        }
        out[i] += 1;
        deficit -= 1;
    }
    out
}

/// Computes the answer for one name and type from its records (health filled in,
/// `share_bp` ignored on the way in).
pub fn answer(
    hosted_zone_id: &str,
    record_name: &str,
    record_type: &str,
    mut records: Vec<RecordAnswer>,
) -> DnsAnswer {
    for r in &mut records {
        r.share_bp = 0;
    }
    let weighted = !records.is_empty() && records.iter().all(|r| r.weight.is_some());
    let failover = !records.is_empty() && records.iter().all(|r| r.failover.is_some());
    let simple = records.len() == 1 && records[0].set_identifier.is_none();
    let mut fallback = false;
    let policy = if weighted {
        // Route 53: healthy non-zero weights first; then healthy zero weights
        // (equally); when none is healthy, every record as if healthy.
        let pick = |pred: &dyn Fn(&RecordAnswer) -> bool| -> Vec<usize> {
            (0..records.len()).filter(|i| pred(&records[*i])).collect()
        };
        let nonzero_healthy = pick(&|r| r.healthy && r.weight.unwrap_or(0) > 0);
        let zero_healthy = pick(&|r| r.healthy && r.weight.unwrap_or(0) <= 0);
        let chosen = if !nonzero_healthy.is_empty() {
            nonzero_healthy
        } else if !zero_healthy.is_empty() {
            zero_healthy
        } else {
            fallback = true;
            let nonzero = pick(&|r| r.weight.unwrap_or(0) > 0);
            if nonzero.is_empty() {
                (0..records.len()).collect()
            } else {
                nonzero
            }
        };
        let weights: Vec<u64> = chosen
            .iter()
            .map(|i| u64::try_from(records[*i].weight.unwrap_or(0)).unwrap_or(0))
            .collect();
        for (i, share) in chosen.iter().zip(split(&weights)) {
            records[*i].share_bp = share;
        }
        "weighted"
    } else if failover {
        // Primary while healthy, else a healthy secondary; both unhealthy: the primary.
        let primary = records
            .iter()
            .position(|r| r.failover.as_deref() == Some("PRIMARY"));
        let secondary = records
            .iter()
            .position(|r| r.failover.as_deref() == Some("SECONDARY"));
        let chosen = match (primary, secondary) {
            (Some(p), _) if records[p].healthy => Some(p),
            (_, Some(s)) if records[s].healthy => Some(s),
            (p, s) => {
                fallback = true;
                p.or(s)
            }
        };
        if let Some(i) = chosen {
            records[i].share_bp = 10_000;
        }
        "failover"
    } else if simple {
        records[0].share_bp = 10_000;
        "simple"
    } else {
        "unsupported"
    };
    DnsAnswer {
        hosted_zone_id: hosted_zone_id.to_owned(),
        record_name: record_name.to_owned(),
        record_type: record_type.to_owned(),
        policy: policy.to_owned(),
        all_unhealthy_fallback: fallback,
        records,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str, weight: Option<i64>, failover: Option<&str>, healthy: bool) -> RecordAnswer {
        RecordAnswer {
            set_identifier: Some(id.into()),
            region: Some(id.into()),
            weight,
            failover: failover.map(Into::into),
            health_check_id: None,
            healthy,
            health: String::new(),
            share_bp: 0,
        }
    }

    fn shares(a: &DnsAnswer) -> Vec<u32> {
        a.records.iter().map(|r| r.share_bp).collect()
    }

    #[test]
    fn weighted_skips_unhealthy_and_falls_back_to_all() {
        let all = |h: [bool; 3]| {
            vec![
                rec("a", Some(50), None, h[0]),
                rec("b", Some(30), None, h[1]),
                rec("c", Some(20), None, h[2]),
            ]
        };
        let a = answer("Z", "api", "A", all([true, true, true]));
        assert_eq!(a.policy, "weighted");
        assert_eq!(shares(&a), [5000, 3000, 2000]);
        let a = answer("Z", "api", "A", all([false, true, true]));
        assert_eq!(shares(&a), [0, 6000, 4000]);
        assert!(!a.all_unhealthy_fallback);
        let a = answer("Z", "api", "A", all([false, false, false]));
        assert_eq!(shares(&a), [5000, 3000, 2000]);
        assert!(a.all_unhealthy_fallback);
    }

    #[test]
    fn zero_weights_serve_only_when_no_weighted_record_is_healthy() {
        let recs = vec![
            rec("a", Some(100), None, false),
            rec("b", Some(0), None, true),
            rec("c", Some(0), None, true),
        ];
        let a = answer("Z", "api", "A", recs);
        assert_eq!(shares(&a), [0, 5000, 5000]);
        let recs = vec![
            rec("a", Some(100), None, true),
            rec("b", Some(0), None, true),
        ];
        assert_eq!(shares(&answer("Z", "api", "A", recs)), [10_000, 0]);
        let thirds = vec![
            rec("a", Some(1), None, true),
            rec("b", Some(1), None, true),
            rec("c", Some(1), None, true),
        ];
        assert_eq!(shares(&answer("Z", "api", "A", thirds)), [3334, 3333, 3333]);
    }

    #[test]
    fn failover_answers_primary_then_secondary_then_primary() {
        let pair = |p, s| {
            vec![
                rec("p", None, Some("PRIMARY"), p),
                rec("s", None, Some("SECONDARY"), s),
            ]
        };
        assert_eq!(
            shares(&answer("Z", "n", "A", pair(true, true))),
            [10_000, 0]
        );
        assert_eq!(
            shares(&answer("Z", "n", "A", pair(false, true))),
            [0, 10_000]
        );
        let both_down = answer("Z", "n", "A", pair(false, false));
        assert_eq!(shares(&both_down), [10_000, 0]);
        assert!(both_down.all_unhealthy_fallback);
        assert_eq!(both_down.policy, "failover");
    }

    #[test]
    fn health_follows_the_alarm_and_the_check_settings() {
        let alarm = |state: Option<&str>, insufficient: Option<&str>, inverted, disabled| {
            evaluate(&Check::Alarm {
                state: state.map(Into::into),
                insufficient_data: insufficient.map(Into::into),
                inverted,
                disabled,
            })
        };
        assert_eq!(
            alarm(Some("OK"), None, false, false),
            (true, "alarm_ok".into())
        );
        assert_eq!(
            alarm(Some("ALARM"), None, false, false),
            (false, "alarm_in_alarm".into())
        );
        assert!(alarm(Some("ALARM"), None, true, false).0);
        assert!(alarm(Some("ALARM"), None, false, true).0);
        assert!(!alarm(Some("INSUFFICIENT_DATA"), Some("Unhealthy"), false, false).0);
        assert_eq!(
            alarm(None, None, false, false),
            (true, "not_read_last_known_assumed_healthy".into())
        );
        assert!(evaluate(&Check::None).0);
        let observed = |successes, total| {
            evaluate(&Check::Observed {
                successes,
                total,
                inverted: false,
                disabled: false,
            })
            .0
        };
        assert!(observed(1, 1));
        assert!(!observed(1, 8));
        assert!(!observed(0, 0));
    }
}
