//! From an alarm to a failover execution: which workload and Region the alarm watches,
//! whether it may start a failover, and the execution's deterministic name and input,
//! so that any number of duplicate deliveries start one execution.

use lifeboat::model::Role;
use lifeboat::{UnixMillis, WorkloadSpec};
use serde::{Deserialize, Serialize};

use crate::request::{AlarmSignal, FailoverRequest, Mode, Trigger};

/// The namespace of health-probe's metrics.
pub const HEALTH_NAMESPACE: &str = lifeboat::metrics::NAMESPACE;
/// The metric the failover alarms watch (1 healthy, 0 unhealthy).
pub const HEALTH_METRIC: &str = lifeboat::metrics::REGION_HEALTHY;

/// Where an alarm appears in a spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlarmKind {
    /// In `regions[].alarms`: counts toward the Region's health.
    Health,
    /// A Region's routing-switch alarm.
    RoutingSwitch,
    /// Not named by the spec, but it watches health-probe's `RegionHealthy` of the
    /// Region (the template's failover alarm, named per stack).
    RegionHealth,
}

/// One workload Region an alarm belongs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AlarmTarget<'a> {
    /// The workload's spec.
    pub spec: &'a WorkloadSpec,
    /// The Region the alarm is about (for a routing switch, the Region it controls,
    /// not the one the alarm lives in).
    pub region: &'a str,
    /// How the spec names it.
    pub kind: AlarmKind,
}

/// Every workload Region that names `alarm`.
pub fn map_alarm<'a>(specs: &'a [WorkloadSpec], alarm: &str) -> Vec<AlarmTarget<'a>> {
    let mut out = Vec::new();
    for spec in specs {
        for r in &spec.regions {
            let kind = if r.alarms.iter().any(|a| a == alarm) {
                AlarmKind::Health
            } else if r
                .routing_switch
                .as_ref()
                .is_some_and(|s| s.alarm_name == alarm)
            {
                AlarmKind::RoutingSwitch
            } else {
                continue;
            };
            out.push(AlarmTarget {
                spec,
                region: &r.region,
                kind,
            });
        }
    }
    out
}

/// Every workload Region `alarm` is about: the Regions whose spec names it
/// ([`map_alarm`]); when none does, the workload Region its `Lifeboat/RegionHealthy`
/// metric has as dimensions, if that workload and Region exist.
pub fn map_signal<'a>(specs: &'a [WorkloadSpec], alarm: &AlarmSignal) -> Vec<AlarmTarget<'a>> {
    let named = map_alarm(specs, &alarm.name);
    if !named.is_empty() {
        return named;
    }
    let Some((workload, region)) = &alarm.watches else {
        return named;
    };
    specs
        .iter()
        .filter(|s| &s.workload == workload)
        .filter_map(|spec| {
            let r = spec.region(region)?;
            Some(AlarmTarget {
                spec,
                region: &r.region,
                kind: AlarmKind::RegionHealth,
            })
        })
        .collect()
}

/// Why an alarm changes nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Ignored {
    /// The new state is OK or INSUFFICIENT_DATA, and the Region is not drained.
    NotInAlarm,
    /// The alarm's Region is neither the primary nor a serving secondary (a standby, a
    /// secondary of weight 0, or drained already).
    RegionNotPrimary,
    /// The policy does not allow automatic failover (nor drains).
    AutoFailoverDisabled,
    /// A failover already holds the workload's lease.
    FailoverInProgress,
    /// A routing switch's alarm: it follows where Lifeboat (a failover, a drill, an
    /// operator) put the switch, and says nothing about the Region's health.
    RoutingSwitch,
    /// A drained Region's alarm is OK again, and the policy (`auto_restore` off) leaves
    /// its return to an operator's `restore` request.
    AwaitingRestore,
}

/// What an admitted alarm does, decided from the spec's roles now (not from the stack
/// that created the alarm: every Region has one, whichever is primary).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Admitted {
    /// The primary is in ALARM: start a failover.
    Failover,
    /// A serving secondary is in ALARM: take it out of traffic ([`crate::drain`]).
    Drain,
    /// A drained Region's alarm is OK and the policy restores by itself.
    Restore,
}

/// The pure part of an alarm: what its new `state` (`ALARM`, `OK`,
/// `INSUFFICIENT_DATA`) means for this target.
pub fn admit(target: &AlarmTarget<'_>, state: &str) -> Result<Admitted, Ignored> {
    // Switching the primary off by hand, or in a drill, turns its switch alarm to
    // ALARM: that is a decision already taken, never a reason for another one.
    if target.kind == AlarmKind::RoutingSwitch {
        return Err(Ignored::RoutingSwitch);
    }
    let Some(region) = target.spec.region(target.region) else {
        return Err(Ignored::RegionNotPrimary);
    };
    let policy = &target.spec.policy;
    match state {
        "ALARM" => {}
        // Back to OK: only a drained Region has anything to come back to. (Never from
        // INSUFFICIENT_DATA: the prober's silence says nothing about the Region.)
        "OK" if region.drained.is_some() => {
            return if policy.auto_restore {
                Ok(Admitted::Restore)
            } else {
                Err(Ignored::AwaitingRestore)
            };
        }
        _ => return Err(Ignored::NotInAlarm),
    }
    let admitted = match region.role {
        Role::Primary => Admitted::Failover,
        Role::Secondary if region.weight > 0 && region.drained.is_none() => Admitted::Drain,
        _ => return Err(Ignored::RegionNotPrimary),
    };
    if !policy.auto_failover {
        return Err(Ignored::AutoFailoverDisabled);
    }
    Ok(admitted)
}

/// The execution input for an alarm: a function of the alarm payload only (never of
/// the delivery time), so duplicates carry identical input.
pub fn failover_request(target: &AlarmTarget<'_>, alarm: &AlarmSignal) -> FailoverRequest {
    FailoverRequest {
        workload: target.spec.workload.clone(),
        failed_region: Some(target.region.to_owned()),
        target_region: None,
        mode: Mode::Unplanned,
        dry_run: false,
        accept_data_loss: false,
        reason: format!(
            "alarm {} entered ALARM at {}: {}",
            alarm.name, alarm.changed_at, alarm.reason
        ),
        requested_by: format!("alarm:{}", alarm.name),
        request_id: None,
        trigger: Some(Trigger {
            alarm_name: alarm.name.clone(),
            alarm_arn: alarm.arn.clone(),
            state_changed_at: alarm.changed_at,
        }),
        timing: None,
        drill: false,
        force: false,
    }
}

/// FNV-1a, 64 bits: stable across Rust releases and platforms (unlike `DefaultHasher`),
/// so a redeployed function names a duplicate delivery's execution the same way.
pub fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0x1f; // unit separator, so ("ab","c") differs from ("a","bc")
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Keeps `[A-Za-z0-9-_]`, maps anything else to `-`, at most `max` characters.
pub fn sanitize(s: &str, max: usize) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(max)
        .collect()
}

/// A valid Step Functions execution name (at most 80 characters of `[A-Za-z0-9-_]`)
/// derived from workload, alarm and state-change time only:
/// `<workload (≤ 40)>-<yyyymmddThhmmss>-<16 hex of FNV-1a(workload, alarm, millis)>`.
pub fn execution_name(workload: &str, alarm: &str, changed_at: UnixMillis) -> String {
    let hash = fnv1a(&[workload, alarm, &changed_at.0.to_string()]);
    let stamp: String = changed_at
        .rfc3339()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(15)
        .collect();
    format!("{}-{stamp}-{hash:016x}", sanitize(workload, 40))
}

/// The execution name of an operator request: from its idempotency key (the request's
/// `request_id`, else the Lambda request id, which an async retry keeps), else the
/// request itself.
pub fn operator_execution_name(req: &FailoverRequest, key: &str) -> String {
    let hash = fnv1a(&[&req.workload, "operator", key]);
    format!("{}-op-{hash:016x}", sanitize(&req.workload, 40))
}

/// The execution ARN Step Functions gives `name` on `state_machine_arn`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../events/model/example-spec.json");

    fn specs() -> Vec<WorkloadSpec> {
        vec![serde_json::from_str(EXAMPLE).unwrap()]
    }

    fn signal(name: &str, namespace: &str, workload: &str, region: &str) -> AlarmSignal {
        let mut event: serde_json::Value = serde_json::from_str(include_str!(
            "../../../events/failover-executor/alarm-action.json"
        ))
        .unwrap();
        event["alarmData"]["alarmName"] = name.into();
        let metric = &mut event["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"];
        metric["namespace"] = namespace.into();
        metric["dimensions"] = serde_json::json!({"Workload": workload, "Region": region});
        match crate::request::Input::parse(event).unwrap() {
            crate::request::Input::Alarm(a) => a,
            other => panic!("not an alarm: {other:?}"),
        }
    }

    #[test]
    fn an_unnamed_alarm_on_region_healthy_maps_by_its_dimensions() {
        let specs = specs();
        let name = "lifeboat-checkout-us-east-1-unhealthy-seen-from-eu-west-1";
        let t = map_signal(&specs, &signal(name, "Lifeboat", "checkout", "us-east-1"));
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].region, t[0].kind),
            ("us-east-1", AlarmKind::RegionHealth)
        );
        assert_eq!(admit(&t[0], "ALARM"), Ok(Admitted::Failover));
        // A serving secondary's health alarm maps, and drains it.
        let t = map_signal(&specs, &signal(name, "Lifeboat", "checkout", "eu-west-1"));
        assert_eq!(admit(&t[0], "ALARM"), Ok(Admitted::Drain));
        // Another namespace, workload or Region: nothing.
        for (ns, w, r) in [
            ("Other", "checkout", "us-east-1"),
            ("Lifeboat", "payments", "us-east-1"),
            ("Lifeboat", "checkout", "eu-central-1"),
        ] {
            assert!(
                map_signal(&specs, &signal(name, ns, w, r)).is_empty(),
                "{ns} {w} {r}"
            );
        }
        // A name the spec knows wins over the dimensions.
        let t = map_signal(
            &specs,
            &signal("checkout-euw1-5xx", "Lifeboat", "checkout", "us-east-1"),
        );
        assert_eq!((t[0].region, t[0].kind), ("eu-west-1", AlarmKind::Health));
    }

    #[test]
    fn maps_health_and_switch_alarms_to_their_region() {
        let specs = specs();
        let t = map_alarm(&specs, "checkout-use1-5xx");
        assert_eq!(t.len(), 1);
        assert_eq!((t[0].region, t[0].kind), ("us-east-1", AlarmKind::Health));
        assert_eq!(admit(&t[0], "ALARM"), Ok(Admitted::Failover));
        // The primary's switch alarm lives in eu-west-1 but is about us-east-1; it never
        // starts a failover, even for the primary with auto-failover on.
        let t = map_alarm(&specs, "lifeboat-checkout-us-east-1-switch");
        assert_eq!(
            (t[0].region, t[0].kind),
            ("us-east-1", AlarmKind::RoutingSwitch)
        );
        assert_eq!(admit(&t[0], "ALARM"), Err(Ignored::RoutingSwitch));
        let t = map_alarm(&specs, "checkout-euw1-5xx");
        assert_eq!(admit(&t[0], "ALARM"), Ok(Admitted::Drain));
        assert!(map_alarm(&specs, "nobody-knows-me").is_empty());
    }

    #[test]
    fn auto_failover_off_is_ignored() {
        let mut specs = specs();
        specs[0].policy.auto_failover = false;
        let t = map_alarm(&specs, "checkout-use1-5xx");
        assert_eq!(admit(&t[0], "ALARM"), Err(Ignored::AutoFailoverDisabled));
        let t = map_alarm(&specs, "checkout-euw1-5xx");
        assert_eq!(admit(&t[0], "ALARM"), Err(Ignored::AutoFailoverDisabled));
    }

    #[test]
    fn whichever_region_is_primary_now_is_the_one_that_fails_over() {
        // After a failover to eu-west-1 (no stack update): the same alarms, new roles.
        let mut specs = specs();
        for r in &mut specs[0].regions {
            (r.role, r.weight) = match r.region.as_str() {
                "us-east-1" => (Role::Secondary, 0),
                "eu-west-1" => (Role::Primary, 80),
                _ => (Role::Secondary, 20),
            };
        }
        let t = map_alarm(&specs, "checkout-euw1-5xx");
        assert_eq!(admit(&t[0], "ALARM"), Ok(Admitted::Failover));
        // The old primary, out of traffic now: nothing to do.
        let t = map_alarm(&specs, "checkout-use1-5xx");
        assert_eq!(admit(&t[0], "ALARM"), Err(Ignored::RegionNotPrimary));
    }

    #[test]
    fn only_a_drained_region_comes_back_on_ok_and_only_by_policy() {
        let mut specs = specs();
        let t = map_alarm(&specs, "checkout-euw1-5xx");
        for state in ["OK", "INSUFFICIENT_DATA"] {
            assert_eq!(admit(&t[0], state), Err(Ignored::NotInAlarm), "{state}");
        }
        let r = &mut specs[0].regions[1];
        r.weight = 0;
        r.drained = Some(lifeboat::model::Drained {
            weight: 30,
            since: UnixMillis(1),
            reason: "probes".into(),
        });
        let t = map_alarm(&specs, "checkout-euw1-5xx");
        assert_eq!(admit(&t[0], "OK"), Err(Ignored::AwaitingRestore));
        assert_eq!(admit(&t[0], "INSUFFICIENT_DATA"), Err(Ignored::NotInAlarm));
        assert_eq!(admit(&t[0], "ALARM"), Err(Ignored::RegionNotPrimary));
        specs[0].policy.auto_restore = true;
        let t = map_alarm(&specs, "checkout-euw1-5xx");
        assert_eq!(admit(&t[0], "OK"), Ok(Admitted::Restore));
    }

    #[test]
    fn execution_names_are_valid_deterministic_and_distinct() {
        let t = UnixMillis(1_795_464_293_123);
        let a = execution_name("checkout", "checkout-use1-5xx", t);
        assert_eq!(a, execution_name("checkout", "checkout-use1-5xx", t));
        assert_eq!(a, "checkout-20261123T200453-e5f4caa16ac8a0fc");
        assert_ne!(
            a,
            execution_name("checkout", "checkout-use1-5xx", UnixMillis(t.0 + 1))
        );
        assert_ne!(a, execution_name("checkout", "checkout-use1-5xy", t));
        let long = execution_name(&"w.".repeat(64), &"a".repeat(255), t);
        assert!(long.len() <= 80, "{}", long.len());
        for name in [a, long] {
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
                "{name}"
            );
        }
        // Pinned (the name above too): a different name after an upgrade would start a
        // second execution for an alarm delivery retried across the upgrade.
        // 0xaf63dc4c8601ec8c is FNV-1a 64 of "a" in the algorithm's published test
        // vectors; the offset basis is the hash of nothing.
        assert_eq!(fnv1a(&["a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a(&[""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(&["a", "b"]), 0xe5ea_a319_043b_0991);
        assert_ne!(fnv1a(&["ab", "c"]), fnv1a(&["a", "bc"]));
    }

    #[test]
    fn execution_arn_follows_the_state_machine() {
        assert_eq!(
            execution_arn(
                "arn:aws:states:us-east-1:123456789012:stateMachine:failover",
                "x-1"
            ),
            "arn:aws:states:us-east-1:123456789012:execution:failover:x-1"
        );
    }
}
