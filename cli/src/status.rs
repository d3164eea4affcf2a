//! `lifeboat status`: one workload's Regions, lease and last runs, built by a pure
//! function from what the table holds, then rendered for a 100-column terminal.

use failover_executor::failback::{Readiness, readiness};
use lifeboat::model::Role;
use lifeboat::store::{HealthRecord, LagGrade, Lease, RunRecord, SwitchPosition, Verdict};
use lifeboat::{UnixMillis, WorkloadSpec};
use serde::Serialize;

use traffic_shifter::resolve::Resolved;

use crate::text::{cut, duration, table};

/// One Region's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RegionStatus {
    /// Region code.
    pub region: String,
    /// Role in the spec.
    pub role: Role,
    /// Traffic weight in the spec.
    pub weight: u32,
    /// Drained (out of traffic after its probes failed), awaiting a restore.
    pub drained: bool,
    /// The last verdict recorded, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// How old that verdict is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict_age_ms: Option<u64>,
    /// Replication lag into the Region.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_seconds: Option<f64>,
    /// Its grade.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_grade: Option<LagGrade>,
    /// The routing switch's position (`None`: the Region has no switch). No recorded
    /// position means on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_on: Option<bool>,
    /// Whether Route 53 should answer this Region now, from the weights and switches
    /// ([`dns_regions`]).
    pub in_dns: bool,
    /// How many of the DNS answers named this Region, when DNS was asked
    /// ([`Status::dns`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_answers: Option<u32>,
    /// Whether the writer could move here now (healthy, fresh, caught up), for every
    /// Region but the primary: failover-executor's own readiness check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Readiness>,
}

/// One run's line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunLine {
    /// Run id (the execution name).
    pub id: String,
    /// Kind.
    pub kind: lifeboat::store::RunKind,
    /// Outcome.
    pub outcome: lifeboat::store::RunOutcome,
    /// Start.
    pub started_at: UnixMillis,
    /// How long it ran, when it ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Measured RTO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub measured_rto_ms: Option<u64>,
}

impl RunLine {
    /// The line of a run record.
    pub fn of(r: &RunRecord) -> RunLine {
        RunLine {
            id: r.id.clone(),
            kind: r.kind,
            outcome: r.outcome,
            started_at: r.started_at,
            duration_ms: r.finished_at.map(|f| f.since(r.started_at)),
            measured_rto_ms: r.measured_rto_ms,
        }
    }
}

/// A workload's status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Status {
    /// Workload id.
    pub workload: String,
    /// Spec version.
    pub spec_version: u64,
    /// DR pattern.
    pub pattern: lifeboat::model::DrPattern,
    /// The Region the spec and health were read in.
    pub read_in: String,
    /// The lease Region (arbiter) the lease, switches and runs were read in.
    pub lease_region: String,
    /// Every Region of the spec, in its order.
    pub regions: Vec<RegionStatus>,
    /// The lease, if held (expired or not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<Lease>,
    /// Whether that lease has lapsed.
    pub lease_expired: bool,
    /// Why the lease Region could not be read, when it could not (the lease is then
    /// unknown, not free).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_unread: Option<String>,
    /// The last runs, newest first.
    pub runs: Vec<RunLine>,
    /// What DNS answered, when it was asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns: Option<Resolved>,
    /// Why DNS was not asked, when it was not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dns_unasked: Option<String>,
    /// When this was read.
    pub at: UnixMillis,
}

/// The Regions DNS answers, as Route 53 chooses among a workload's records when health
/// checks are configured: a Region's record is healthy while its routing switch is on
/// (the health check watches the switch's alarm; a Region without a switch has no
/// health check and is always healthy); unhealthy records are skipped, zero-weight
/// records are considered only when every non-zero one is unhealthy, and when every
/// record is unhealthy all are answered
/// (https://docs.aws.amazon.com/Route53/latest/DeveloperGuide/health-checks-how-route-53-chooses-records.html).
/// Derived from the table, not resolved: DNS caches answer what they cached.
pub fn dns_regions(spec: &WorkloadSpec, switches: &[SwitchPosition]) -> Vec<String> {
    let on = |region: &str| {
        switches
            .iter()
            .find(|s| s.region == region)
            .is_none_or(|s| s.on)
    };
    let routed: Vec<_> = spec.regions.iter().filter(|r| !r.dns.is_empty()).collect();
    let pick = |nonzero: bool, healthy: bool| -> Vec<String> {
        routed
            .iter()
            .filter(|r| (r.weight > 0) == nonzero && (!healthy || on(&r.region)))
            .map(|r| r.region.clone())
            .collect()
    };
    let chosen = pick(true, true);
    if !chosen.is_empty() {
        return chosen;
    }
    let chosen = pick(false, true);
    if !chosen.is_empty() {
        return chosen;
    }
    routed.iter().map(|r| r.region.clone()).collect()
}

/// What the table says about a workload, in one value.
pub struct Read<'a> {
    /// The spec.
    pub spec: &'a WorkloadSpec,
    /// Every `HEALTH#` item.
    pub health: &'a [HealthRecord],
    /// Every `SWITCH#` item.
    pub switches: &'a [SwitchPosition],
    /// The lease.
    pub lease: Option<Lease>,
    /// Run records (any order; the same id twice counts once).
    pub runs: Vec<RunRecord>,
    /// Where the spec was read.
    pub read_in: &'a str,
    /// Where the lease was read.
    pub lease_region: &'a str,
    /// What DNS answered, or why it was not asked.
    pub dns: std::result::Result<Resolved, String>,
}

/// How many runs a status shows.
pub const LAST_RUNS: usize = 5;

/// Builds the status; pure.
pub fn build(read: Read<'_>, now: UnixMillis) -> Status {
    let spec = read.spec;
    let dns = dns_regions(spec, read.switches);
    let answered = read.dns.as_ref().ok();
    let regions = spec
        .regions
        .iter()
        .map(|r| {
            let h = read.health.iter().find(|h| h.region == r.region);
            let switch_on = r.routing_switch.as_ref().map(|_| {
                read.switches
                    .iter()
                    .find(|s| s.region == r.region)
                    .is_none_or(|s| s.on)
            });
            RegionStatus {
                region: r.region.clone(),
                role: r.role,
                weight: r.weight,
                drained: r.drained.is_some(),
                verdict: h.map(|h| h.verdict),
                verdict_age_ms: h.map(|h| now.since(h.observed_at)),
                lag_seconds: h.and_then(|h| h.replication_lag_seconds),
                lag_grade: h.and_then(|h| h.lag_grade),
                switch_on,
                in_dns: dns.contains(&r.region),
                dns_answers: answered.map(|d| d.by_region.get(&r.region).copied().unwrap_or(0)),
                readiness: (r.role != Role::Primary).then(|| {
                    let mut x = readiness(spec, h, now);
                    x.region.clone_from(&r.region);
                    x
                }),
            }
        })
        .collect();
    let mut runs = dedupe(read.runs);
    runs.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
    Status {
        workload: spec.workload.clone(),
        spec_version: spec.version,
        pattern: spec.pattern,
        read_in: read.read_in.to_owned(),
        lease_region: read.lease_region.to_owned(),
        regions,
        lease_expired: read.lease.as_ref().is_some_and(|l| l.is_expired(now)),
        lease_unread: None,
        lease: read.lease,
        runs: runs.iter().take(LAST_RUNS).map(RunLine::of).collect(),
        dns_unasked: read.dns.as_ref().err().cloned(),
        dns: read.dns.ok(),
        at: now,
    }
}

/// One record per run id: the finished one when a replica still holds it running
/// (failover-executor's own rule for runs read from two replicas).
pub fn dedupe(runs: Vec<RunRecord>) -> Vec<RunRecord> {
    failover_executor::failback::one_per_id(runs)
}

fn snake<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What the DNS column means, and where DNS and Route 53's choice disagree: a Region
/// answered that Route 53 should no longer choose is a cache (up to the record's TTL)
/// or a record that did not change.
pub fn dns_lines(s: &Status) -> Vec<String> {
    let expected: Vec<&str> = s
        .regions
        .iter()
        .filter(|r| r.in_dns)
        .map(|r| r.region.as_str())
        .collect();
    let should = format!("Route 53 should answer {}", expected.join(", "));
    let Some(d) = &s.dns else {
        let why = s.dns_unasked.as_deref().unwrap_or("not asked");
        return vec![format!("DNS not asked ({why}); {should}")];
    };
    let mut lines = vec![format!(
        "DNS: {} asked {} times of {}, {} answered; {should}",
        d.record_name, d.queries, d.resolver, d.answered
    )];
    if d.answered == 0 {
        lines.push(format!("DNS gave no answer for {}", d.record_name));
    }
    for r in s
        .regions
        .iter()
        .filter(|r| !r.in_dns && r.dns_answers.unwrap_or(0) > 0)
    {
        lines.push(format!(
            "DNS still answers {} ({} of {}): cached for up to the record's TTL, or its record did not change",
            r.region,
            r.dns_answers.unwrap_or(0),
            d.answered
        ));
    }
    if !d.unknown.is_empty() {
        lines.push(format!(
            "DNS answers addresses of no Region's endpoint: {}",
            d.unknown.join(", ")
        ));
    }
    lines
}

/// Renders the status for a terminal (at most 100 columns).
pub fn render(s: &Status) -> String {
    let mut out = format!(
        "{}  {}  spec v{}  read in {}  lease Region {}\n\n",
        s.workload,
        snake(&s.pattern),
        s.spec_version,
        s.read_in,
        s.lease_region
    );
    let rows: Vec<Vec<String>> = s
        .regions
        .iter()
        .map(|r| {
            vec![
                r.region.clone(),
                format!("{}{}", snake(&r.role), if r.drained { "*" } else { "" }),
                r.weight.to_string(),
                r.verdict.map(|v| snake(&v)).unwrap_or_else(|| "-".into()),
                r.verdict_age_ms.map(duration).unwrap_or_else(|| "-".into()),
                r.lag_seconds
                    .map(|l| format!("{l:.1} s"))
                    .unwrap_or_else(|| "-".into()),
                r.lag_grade.map(|g| snake(&g)).unwrap_or_else(|| "-".into()),
                match r.switch_on {
                    Some(true) => "on".into(),
                    Some(false) => "off".into(),
                    None => "-".into(),
                },
                match (r.dns_answers, &s.dns) {
                    (Some(n), Some(d)) => format!("{n}/{}", d.answered),
                    _ => "-".into(),
                },
                match &r.readiness {
                    None => "-".into(),
                    Some(x) if x.ready => "ready".into(),
                    Some(_) => "no".into(),
                },
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "REGION", "ROLE", "WEIGHT", "HEALTH", "AGE", "LAG", "GRADE", "SWITCH", "DNS", "READY",
        ],
        &rows,
    ));
    if s.regions.iter().any(|r| r.drained) {
        out.push_str("* drained: out of traffic until restored\n");
    }
    for line in dns_lines(s) {
        out.push_str(&cut(&line, 100));
        out.push('\n');
    }
    for r in &s.regions {
        if let Some(x) = r.readiness.as_ref().filter(|x| !x.ready) {
            let why = x
                .refused
                .as_deref()
                .or(x.lag_refused.as_deref())
                .unwrap_or("not ready");
            out.push_str(&cut(&format!("{} not ready: {why}", r.region), 100));
            out.push('\n');
        }
    }
    out.push('\n');
    match &s.lease {
        None if s.lease_unread.is_some() => out.push_str(&format!(
            "lease: unknown: {}\n",
            cut(s.lease_unread.as_deref().unwrap_or(""), 84)
        )),
        None => out.push_str("lease: not held\n"),
        Some(l) => {
            let when = if s.lease_expired {
                format!("expired {} ago", duration(s.at.since(l.expires_at)))
            } else {
                format!("expires in {}", duration(l.expires_at.since(s.at)))
            };
            out.push_str(&format!(
                "lease: {} epoch {}, {when} ({})\n  holder {}\n",
                l.purpose,
                l.epoch,
                l.expires_at,
                cut(&l.holder, 90)
            ));
        }
    }
    out.push('\n');
    if s.runs.is_empty() {
        out.push_str("runs: none recorded\n");
    } else {
        out.push_str(&format!("last runs (newest first, at most {LAST_RUNS}):\n"));
        let rows: Vec<Vec<String>> = s
            .runs
            .iter()
            .map(|r| {
                vec![
                    cut(&r.id, 40),
                    snake(&r.kind),
                    snake(&r.outcome),
                    r.started_at.to_string(),
                    r.duration_ms.map(duration).unwrap_or_else(|| "-".into()),
                    r.measured_rto_ms
                        .map(duration)
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        out.push_str(&table(
            &["RUN", "KIND", "OUTCOME", "STARTED", "TOOK", "RTO"],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::store::{LeasePurpose, RunKind, RunOutcome};

    const EXAMPLE: &str = include_str!("../../events/model/example-spec.json");

    fn switch(region: &str, on: bool) -> SwitchPosition {
        SwitchPosition {
            region: region.into(),
            on,
            epoch: 1,
            set_at: UnixMillis(1),
            set_by: "t".into(),
        }
    }

    #[test]
    fn dns_skips_switched_off_regions_and_answers_all_when_none_is_left() {
        let spec: WorkloadSpec = serde_json::from_str(EXAMPLE).unwrap();
        let serving: Vec<String> = spec
            .regions
            .iter()
            .filter(|r| r.weight > 0 && !r.dns.is_empty())
            .map(|r| r.region.clone())
            .collect();
        assert_eq!(dns_regions(&spec, &[]), serving);
        let primary = spec.primary().unwrap().region.clone();
        let off = dns_regions(&spec, &[switch(&primary, false)]);
        assert!(!off.contains(&primary), "{off:?}");
        let all_off: Vec<SwitchPosition> = spec
            .regions
            .iter()
            .map(|r| switch(&r.region, false))
            .collect();
        assert_eq!(
            dns_regions(&spec, &all_off).len(),
            spec.regions.iter().filter(|r| !r.dns.is_empty()).count()
        );
    }

    #[test]
    fn the_status_fits_in_100_columns_and_says_what_matters() {
        let spec: WorkloadSpec = serde_json::from_str(EXAMPLE).unwrap();
        let now = UnixMillis(1_800_000_000_000);
        let health: Vec<HealthRecord> = spec
            .regions
            .iter()
            .map(|r| HealthRecord {
                region: r.region.clone(),
                verdict: Verdict::Healthy,
                consecutive_failures: 0,
                consecutive_successes: 6,
                probe_latency_ms: Some(2),
                replication_lag_seconds: Some(0.0),
                lag_grade: Some(LagGrade::Ok),
                observed_at: UnixMillis(now.0 - 4_000),
                detail: None,
            })
            .collect();
        let run = |id: &str, at: u64, finished: bool| RunRecord {
            id: id.into(),
            kind: RunKind::Failover,
            started_at: UnixMillis(at),
            finished_at: finished.then_some(UnixMillis(at + 61_000)),
            outcome: RunOutcome::Succeeded,
            timeline: vec![],
            measured_rto_ms: Some(44_000),
            measured_rpo_ms: None,
            rpo_simulated: false,
            details: serde_json::Value::Null,
        };
        let s = build(
            Read {
                spec: &spec,
                health: &health,
                switches: &[],
                lease: Some(Lease {
                    workload: "checkout".into(),
                    holder: "arn:aws:states:eu-west-1:123456789012:execution:x:y".into(),
                    purpose: LeasePurpose::Drill,
                    epoch: 7,
                    acquired_at: UnixMillis(now.0 - 1000),
                    expires_at: UnixMillis(now.0 + 600_000),
                }),
                runs: vec![
                    run("old", 1, true),
                    run("new", 5, false),
                    run("new", 5, true),
                ],
                read_in: "eu-west-1",
                lease_region: "eu-west-1",
                dns: Ok(resolved(&[
                    (&spec.regions[0].region, 6),
                    (&spec.regions[1].region, 4),
                ])),
            },
            now,
        );
        assert_eq!(s.runs.len(), 2);
        assert_eq!(s.runs[0].id, "new");
        assert_eq!(
            s.runs[0].duration_ms,
            Some(61_000),
            "the finished copy wins"
        );
        let text = render(&s);
        for line in text.lines() {
            assert!(line.chars().count() <= 100, "{line:?}");
        }
        assert!(
            text.contains("lease: drill epoch 7, expires in 10m00s"),
            "{text}"
        );
        assert!(text.contains("4.0 s"), "{text}");
        let primary = spec.primary().unwrap();
        let line = text
            .lines()
            .find(|l| l.starts_with(&primary.region))
            .unwrap();
        assert!(
            line.contains("primary") && line.contains("healthy"),
            "{line}"
        );
        let first = text
            .lines()
            .find(|l| l.starts_with(&spec.regions[0].region))
            .unwrap();
        assert!(first.contains(" 6/10 "), "{first}");
        assert!(
            text.contains("DNS: api.example.com asked 10 times of 127.0.0.1:53, 10 answered"),
            "{text}"
        );
        assert!(!text.contains("still answers"), "{text}");
    }

    fn resolved(by_region: &[(&str, u32)]) -> Resolved {
        Resolved {
            record_name: "api.example.com".into(),
            resolver: "127.0.0.1:53".into(),
            queries: 10,
            answered: by_region.iter().map(|(_, n)| n).sum(),
            by_region: by_region
                .iter()
                .map(|(r, n)| ((*r).to_owned(), *n))
                .collect(),
            unknown: vec![],
            reason: None,
        }
    }

    fn read<'a>(
        spec: &'a WorkloadSpec,
        switches: &'a [SwitchPosition],
        dns: std::result::Result<Resolved, String>,
    ) -> Read<'a> {
        Read {
            spec,
            health: &[],
            switches,
            lease: None,
            runs: vec![],
            read_in: "eu-west-1",
            lease_region: "eu-west-1",
            dns,
        }
    }

    #[test]
    fn dns_answers_are_counted_and_set_against_what_route_53_should_answer() {
        let spec: WorkloadSpec = serde_json::from_str(EXAMPLE).unwrap();
        let primary = spec.primary().unwrap().region.clone();
        let now = UnixMillis(1_800_000_000_000);
        // The primary switched off, yet a cache still answers it.
        let off = [switch(&primary, false)];
        let s = build(read(&spec, &off, Ok(resolved(&[(&primary, 3)]))), now);
        let p = s.regions.iter().find(|r| r.region == primary).unwrap();
        assert_eq!((p.in_dns, p.dns_answers), (false, Some(3)));
        let text = render(&s);
        assert!(
            text.contains(&format!("DNS still answers {primary} (3 of 3)")),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["dns"]["answered"], 3, "{json}");
        assert_eq!(json["regions"][0]["dns_answers"], 3, "{json}");
        // No answer at all is said as such.
        let text = render(&build(read(&spec, &[], Ok(resolved(&[]))), now));
        assert!(
            text.contains("DNS gave no answer for api.example.com"),
            "{text}"
        );
        // Not asked: why, and what Route 53 should answer, from the table.
        let s = build(read(&spec, &[], Err("--dns-queries 0".into())), now);
        assert!(s.regions.iter().all(|r| r.dns_answers.is_none()));
        let text = render(&s);
        let expected = dns_regions(&spec, &[]).join(", ");
        assert!(
            text.contains(&format!(
                "DNS not asked (--dns-queries 0); Route 53 should answer {expected}"
            )),
            "{text}"
        );
        assert!(serde_json::to_value(&s).unwrap().get("dns").is_none());
    }
}
