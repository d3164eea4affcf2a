//! Pure decisions: which switches move, the weights of a schedule stage, and the exact
//! calls each step makes, with their Region and plane. No I/O here.

use std::collections::BTreeMap;

use lifeboat::model::{RoutingSwitch, WorkloadSpec};
use lifeboat::{Error, Result};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// Route 53's API (the control plane) lives in us-east-1, whatever the record serves.
pub const ROUTE53_REGION: &str = "us-east-1";

/// Whether a call goes to a control plane or a data plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Plane {
    /// A Regional data-plane call (CloudWatch PutMetricData, SetAlarmState).
    Data,
    /// A control-plane call (Route 53 ChangeResourceRecordSets, GetChange: us-east-1).
    Control,
}

/// One AWS call a step makes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// `cloudwatch` or `route53`.
    pub service: String,
    /// API operation, e.g. `PutMetricData`.
    pub operation: String,
    /// The Region the call is sent to.
    pub region: String,
    /// Data or control plane.
    pub plane: Plane,
    /// What it acts on: an alarm name, a metric, a hosted zone.
    pub resource: String,
    /// The call's parameters that matter (values, weights, states).
    pub detail: serde_json::Value,
}

/// A routing switch to set.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchMove {
    /// The Region whose traffic the switch controls.
    pub controls: String,
    /// The switch.
    pub switch: RoutingSwitch,
    /// `true`: the Region takes traffic (metric 1, alarm OK); `false`: metric 0, ALARM.
    pub on: bool,
}

impl SwitchMove {
    /// The metric value that means this state.
    pub fn value(&self) -> f64 {
        lifeboat::switch::value(self.on)
    }

    /// The alarm state that means this state.
    pub fn alarm_state(&self) -> &'static str {
        if self.on { "OK" } else { "ALARM" }
    }

    /// `on` or `off`.
    pub fn desired(&self) -> &'static str {
        if self.on { "on" } else { "off" }
    }
}

/// A switch the step leaves alone because its Region is the failed one.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchSkip {
    /// The Region whose traffic the switch controls.
    pub controls: String,
    /// The switch.
    pub switch: RoutingSwitch,
}

fn region_in_spec(spec: &WorkloadSpec, field: &str, region: &str) -> Result<()> {
    if spec.region(region).is_none() {
        return Err(Error::InvalidInput(format!(
            "{field}: `{region}` is not a Region of workload `{}` (its Regions: {})",
            spec.workload,
            spec.regions
                .iter()
                .map(|r| r.region.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    Ok(())
}

/// The Region failed away from: the one named, else the spec's primary.
pub fn failed_region(spec: &WorkloadSpec, named: Option<&str>) -> Result<String> {
    match named {
        Some(r) => Ok(r.to_owned()),
        None => spec.primary().map(|p| p.region.clone()).ok_or_else(|| {
            Error::InvalidInput(
                "failed_region: required when the workload has no primary".to_owned(),
            )
        }),
    }
}

/// Failover through the data plane: the failed Region's switch goes off, in the
/// switch's Region, which must not be the failed one; the target's switch goes on
/// unless it lives in the failed Region (then it is left alone and reported).
pub fn failover_moves(
    spec: &WorkloadSpec,
    target: &str,
    failed: &str,
) -> Result<(Vec<SwitchMove>, Vec<SwitchSkip>)> {
    region_in_spec(spec, "target_region", target)?;
    region_in_spec(spec, "failed_region", failed)?;
    if target == failed {
        return Err(Error::InvalidInput(format!(
            "target_region: `{target}` is the Region being failed away from"
        )));
    }
    let failed_spec = spec.region(failed).ok_or_else(|| {
        Error::InvalidInput(format!("failed_region: `{failed}` is not in the spec"))
    })?;
    let Some(off) = &failed_spec.routing_switch else {
        return Err(Error::InvalidInput(format!(
            "failed_region: `{failed}` has no routing_switch in the spec, so it cannot be failed away from through the data plane"
        )));
    };
    if off.region == failed {
        return Err(Error::InvalidInput(format!(
            "failed_region: the routing switch of `{failed}` lives in `{failed}` itself, which is down; move it to a surviving Region in the spec"
        )));
    }
    let mut moves = vec![SwitchMove {
        controls: failed.to_owned(),
        switch: off.clone(),
        on: false,
    }];
    let mut skipped = Vec::new();
    if let Some(on) = spec.region(target).and_then(|r| r.routing_switch.as_ref()) {
        if on.region == failed {
            skipped.push(SwitchSkip {
                controls: target.to_owned(),
                switch: on.clone(),
            });
        } else {
            moves.push(SwitchMove {
                controls: target.to_owned(),
                switch: on.clone(),
                on: true,
            });
        }
    }
    Ok((moves, skipped))
}

/// Enable: the target's switch goes on.
pub fn enable_moves(spec: &WorkloadSpec, target: &str) -> Result<Vec<SwitchMove>> {
    region_in_spec(spec, "target_region", target)?;
    let Some(switch) = spec.region(target).and_then(|r| r.routing_switch.as_ref()) else {
        return Err(Error::InvalidInput(format!(
            "target_region: `{target}` has no routing_switch in the spec"
        )));
    };
    Ok(vec![SwitchMove {
        controls: target.to_owned(),
        switch: switch.clone(),
        on: true,
    }])
}

fn metric_id(s: &RoutingSwitch) -> String {
    let dims: Vec<String> = s
        .dimensions
        .iter()
        .map(|d| format!("{}={}", d.name, d.value))
        .collect();
    format!("{}/{}[{}]", s.namespace, s.metric_name, dims.join(","))
}

/// Which writes a switch needs, given what was read: `(PutMetricData, SetAlarmState)`.
///
/// The metric is in place when the latest second of data holds the desired value
/// alone, or when the alarm is already in the desired state with our state reason for
/// it (we write the metric before the alarm, so our reason proves the metric was
/// written). After a metric write the alarm is set too (when asked), so it moves now.
pub fn switch_writes(
    m: &SwitchMove,
    alarm_state: &str,
    metric_value: Option<f64>,
    reason_is_ours: bool,
    set_alarm_state: bool,
) -> (bool, bool) {
    let alarm_in_place = alarm_state == m.alarm_state();
    let metric_in_place = metric_value == Some(m.value()) || (alarm_in_place && reason_is_ours);
    let put = !metric_in_place;
    let set = set_alarm_state && (put || !alarm_in_place);
    (put, set)
}

/// The calls that set one switch: PutMetricData, then SetAlarmState if asked.
pub fn switch_calls(m: &SwitchMove, set_alarm_state: bool) -> Vec<Call> {
    let mut calls = vec![Call {
        service: "cloudwatch".into(),
        operation: "PutMetricData".into(),
        region: m.switch.region.clone(),
        plane: Plane::Data,
        resource: metric_id(&m.switch),
        detail: json!({ "value": m.value(), "controls": m.controls }),
    }];
    if set_alarm_state {
        calls.push(Call {
            service: "cloudwatch".into(),
            operation: "SetAlarmState".into(),
            region: m.switch.region.clone(),
            plane: Plane::Data,
            resource: m.switch.alarm_name.clone(),
            detail: json!({ "state": m.alarm_state(), "controls": m.controls }),
        });
    }
    calls
}

/// Checks a weight map against the spec: known Regions with DNS records only, summing
/// to 100. Regions left out get 0. Returns the weights in spec order.
fn complete_weights(
    spec: &WorkloadSpec,
    field: &str,
    given: &BTreeMap<String, u32>,
) -> Result<Vec<(String, u32)>> {
    for region in given.keys() {
        match spec.region(region) {
            None => {
                return Err(Error::InvalidInput(format!(
                    "{field}: `{region}` is not a Region of workload `{}`",
                    spec.workload
                )));
            }
            Some(r) if r.dns.is_empty() => {
                return Err(Error::InvalidInput(format!(
                    "{field}: `{region}` has no DNS records in the spec to weight"
                )));
            }
            Some(_) => {}
        }
    }
    let weights: Vec<(String, u32)> = spec
        .regions
        .iter()
        .filter(|r| !r.dns.is_empty())
        .map(|r| (r.region.clone(), given.get(&r.region).copied().unwrap_or(0)))
        .collect();
    let sum: u64 = weights.iter().map(|(_, w)| u64::from(*w)).sum();
    if sum != 100 {
        return Err(Error::InvalidInput(format!(
            "{field}: weights sum to {sum}, not 100"
        )));
    }
    Ok(weights)
}

/// Checks a schedule: 1 to 20 stages, strictly increasing percentages in 1..=100,
/// ending at 100.
pub fn check_schedule(schedule: &[u32]) -> Result<()> {
    let bad = |why: &str| Err(Error::InvalidInput(format!("schedule: {why}")));
    if schedule.is_empty() || schedule.len() > 20 {
        return bad("needs 1 to 20 stages");
    }
    if schedule.iter().any(|p| *p == 0 || *p > 100) {
        return bad("every stage is a percentage from 1 to 100");
    }
    if schedule.windows(2).any(|w| w[0] >= w[1]) {
        return bad("stages must strictly increase");
    }
    if schedule.last() != Some(&100) {
        return bad("the last stage must be 100");
    }
    Ok(())
}

/// The weights at `percent` of the way from `from` to `to`, rounded to whole percent
/// by largest remainder (ties to the earlier Region in the spec), so they always sum
/// to 100 and the same input always gives the same weights.
pub fn interpolate(
    from: &[(String, u32)],
    to: &[(String, u32)],
    percent: u32,
) -> Vec<(String, u32)> {
    let p = u64::from(percent.min(100));
    // Hundredths of a percent: sums to 10 000.
    let raw: Vec<(String, u64)> = from
        .iter()
        .zip(to)
        .map(|((region, f), (_, t))| {
            (
                region.clone(),
                u64::from(*f) * (100 - p) + u64::from(*t) * p,
            )
        })
        .collect();
    let mut out: Vec<(String, u32)> = raw
        .iter()
        .map(|(r, v)| (r.clone(), u32::try_from(v / 100).unwrap_or(u32::MAX)))
        .collect();
    let floor_sum: u64 = out.iter().map(|(_, w)| u64::from(*w)).sum();
    let mut deficit = 100u64.saturating_sub(floor_sum);
    let mut order: Vec<usize> = (0..raw.len()).collect();
    // Stable sort: equal remainders keep spec order.
    order.sort_by(|a, b| (raw[*b].1 % 100).cmp(&(raw[*a].1 % 100)));
    for i in order {
        if deficit == 0 {
            break;
        }
        if !raw[i].1.is_multiple_of(100) {
            out[i].1 += 1;
            deficit -= 1;
        }
    }
    out
}

/// A `shift` stage, decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    /// The stage index.
    pub stage: usize,
    /// Percent of the way.
    pub percent: u32,
    /// The next stage, if any.
    pub next_stage: Option<usize>,
    /// Weights per Region, spec order.
    pub weights: Vec<(String, u32)>,
}

/// Decides a `shift` stage from the request: validates weights and schedule.
pub fn shift_stage(
    spec: &WorkloadSpec,
    target: &str,
    to: Option<&BTreeMap<String, u32>>,
    from: Option<&BTreeMap<String, u32>>,
    schedule: &[u32],
    stage: usize,
) -> Result<Stage> {
    region_in_spec(spec, "target_region", target)?;
    let to = to.ok_or_else(|| Error::InvalidInput("weights: required for a shift".into()))?;
    let to = complete_weights(spec, "weights", to)?;
    let from = match from {
        Some(f) => complete_weights(spec, "from_weights", f)?,
        None => {
            let spec_weights: BTreeMap<String, u32> = spec
                .regions
                .iter()
                .filter(|r| !r.dns.is_empty())
                .map(|r| (r.region.clone(), r.weight))
                .collect();
            complete_weights(spec, "from_weights (the spec's weights)", &spec_weights)?
        }
    };
    check_schedule(schedule)?;
    let Some(percent) = schedule.get(stage).copied() else {
        return Err(Error::InvalidInput(format!(
            "stage: {stage} is past the schedule's last stage {}",
            schedule.len() - 1
        )));
    };
    let next_stage = (stage + 1 < schedule.len()).then_some(stage + 1);
    Ok(Stage {
        stage,
        percent,
        next_stage,
        weights: interpolate(&from, &to, percent),
    })
}

/// One weighted record a stage sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordWeight {
    /// The Region it routes to.
    pub region: String,
    /// Hosted zone id.
    pub hosted_zone_id: String,
    /// Record name.
    pub record_name: String,
    /// Set identifier.
    pub set_identifier: String,
    /// New weight.
    pub weight: u32,
}

/// The records a stage sets, grouped by hosted zone (one change batch each), zones in
/// first-seen order.
pub fn stage_records(
    spec: &WorkloadSpec,
    stage: &Stage,
) -> Result<Vec<(String, Vec<RecordWeight>)>> {
    let mut zones: Vec<(String, Vec<RecordWeight>)> = Vec::new();
    for (region, weight) in &stage.weights {
        let Some(r) = spec.region(region) else {
            continue;
        };
        for (i, d) in r.dns.iter().enumerate() {
            let Some(set_identifier) = d.set_identifier.clone() else {
                return Err(Error::InvalidInput(format!(
                    "the spec's {region} dns[{i}] ({}) has no set_identifier: it is not a weighted record",
                    d.record_name
                )));
            };
            let rec = RecordWeight {
                region: region.clone(),
                hosted_zone_id: d.hosted_zone_id.clone(),
                record_name: d.record_name.clone(),
                set_identifier,
                weight: *weight,
            };
            match zones.iter_mut().find(|(z, _)| *z == d.hosted_zone_id) {
                Some((_, recs)) => recs.push(rec),
                None => zones.push((d.hosted_zone_id.clone(), vec![rec])),
            }
        }
    }
    Ok(zones)
}

/// The calls of a stage: per zone, ChangeResourceRecordSets (UPSERTs) then GetChange.
pub fn shift_calls(zones: &[(String, Vec<RecordWeight>)]) -> Vec<Call> {
    let mut calls = Vec::new();
    for (zone, recs) in zones {
        calls.push(change_call(zone, recs));
        calls.push(get_change_call(zone, None));
    }
    calls
}

/// ChangeResourceRecordSets of one zone.
pub fn change_call(zone: &str, recs: &[RecordWeight]) -> Call {
    Call {
        service: "route53".into(),
        operation: "ChangeResourceRecordSets".into(),
        region: ROUTE53_REGION.into(),
        plane: Plane::Control,
        resource: zone.to_owned(),
        detail: json!({
            "changes": recs.iter().map(|r| json!({
                "action": "UPSERT",
                "name": r.record_name,
                "set_identifier": r.set_identifier,
                "weight": r.weight,
            })).collect::<Vec<_>>()
        }),
    }
}

/// GetChange (polled until INSYNC).
pub fn get_change_call(zone: &str, change_id: Option<&str>) -> Call {
    Call {
        service: "route53".into(),
        operation: "GetChange".into(),
        region: ROUTE53_REGION.into(),
        plane: Plane::Control,
        resource: zone.to_owned(),
        detail: match change_id {
            Some(id) => json!({ "change_id": id, "until": "INSYNC" }),
            None => json!({ "until": "INSYNC" }),
        },
    }
}

/// Whether every call is on a data plane.
pub fn data_plane_only(calls: &[Call]) -> bool {
    calls.iter().all(|c| c.plane == Plane::Data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::DEFAULT_SCHEDULE;

    fn spec() -> WorkloadSpec {
        serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap()
    }

    fn map(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(r, w)| ((*r).to_owned(), *w)).collect()
    }

    #[test]
    fn failover_turns_the_failed_switch_off_in_a_surviving_region_only() {
        let spec = spec();
        let (moves, skipped) = failover_moves(&spec, "eu-west-1", "us-east-1").unwrap();
        // us-east-1's switch lives in eu-west-1: off there. eu-west-1's lives in
        // us-east-1, which is down: left alone.
        assert_eq!(moves.len(), 1);
        assert_eq!(moves[0].controls, "us-east-1");
        assert_eq!(moves[0].switch.region, "eu-west-1");
        assert!(!moves[0].on);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].controls, "eu-west-1");
        let calls: Vec<Call> = moves.iter().flat_map(|m| switch_calls(m, true)).collect();
        let ops: Vec<(&str, &str)> = calls
            .iter()
            .map(|c| (c.operation.as_str(), c.region.as_str()))
            .collect();
        assert_eq!(
            ops,
            [
                ("PutMetricData", "eu-west-1"),
                ("SetAlarmState", "eu-west-1")
            ]
        );
        assert!(data_plane_only(&calls));
        assert!(calls.iter().all(|c| c.region != "us-east-1"));
        assert_eq!(calls[0].detail["value"], 0.0);
        assert_eq!(calls[1].detail["state"], "ALARM");

        // Failing ap-southeast-1 over to eu-west-1 flips both, both in us-east-1.
        let (moves, skipped) = failover_moves(&spec, "eu-west-1", "ap-southeast-1").unwrap();
        assert_eq!(moves.len(), 2);
        assert!(skipped.is_empty());
        assert!(moves[1].on);
        assert_eq!(switch_calls(&moves[1], false).len(), 1);
    }

    #[test]
    fn failover_refuses_what_the_data_plane_cannot_do() {
        let mut spec = spec();
        let err = failover_moves(&spec, "us-east-1", "us-east-1").unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        let err = failover_moves(&spec, "eu-west-1", "mars-1").unwrap_err();
        assert!(err.to_string().contains("failed_region: `mars-1`"), "{err}");
        let err = failover_moves(&spec, "us-west-2", "us-east-1").unwrap_err();
        assert!(
            err.to_string().contains("target_region: `us-west-2`"),
            "{err}"
        );
        spec.regions[0].routing_switch.as_mut().unwrap().region = "us-east-1".into();
        let err = failover_moves(&spec, "eu-west-1", "us-east-1").unwrap_err();
        assert!(
            err.to_string().contains("lives in `us-east-1` itself"),
            "{err}"
        );
        spec.regions[0].routing_switch = None;
        let err = failover_moves(&spec, "eu-west-1", "us-east-1").unwrap_err();
        assert!(err.to_string().contains("no routing_switch"), "{err}");
        assert_eq!(failed_region(&spec, None).unwrap(), "us-east-1");
    }

    #[test]
    fn a_switch_writes_only_what_is_not_in_place() {
        let spec = spec();
        let (moves, _) = failover_moves(&spec, "eu-west-1", "us-east-1").unwrap();
        let off = &moves[0];
        // Fresh: metric 1, alarm OK → both writes.
        assert_eq!(
            switch_writes(off, "OK", Some(1.0), false, true),
            (true, true)
        );
        // Done before: metric 0, alarm ALARM → nothing.
        assert_eq!(
            switch_writes(off, "ALARM", Some(0.0), false, true),
            (false, false)
        );
        // Metric ambiguous this second, but our reason on the alarm proves the write.
        assert_eq!(
            switch_writes(off, "ALARM", None, true, true),
            (false, false)
        );
        // Alarm in ALARM for another reason (e.g. set by hand) without our metric.
        assert_eq!(
            switch_writes(off, "ALARM", Some(1.0), false, true),
            (true, true)
        );
        // Metric written, alarm not moved yet (a retried step): only the alarm.
        assert_eq!(
            switch_writes(off, "OK", Some(0.0), false, true),
            (false, true)
        );
        // Without SetAlarmState the alarm follows at its next evaluation.
        assert_eq!(
            switch_writes(off, "OK", Some(1.0), false, false),
            (true, false)
        );
        assert_eq!(
            switch_writes(off, "OK", Some(0.0), false, false),
            (false, false)
        );
    }

    #[test]
    fn interpolation_sums_to_100_and_walks_the_schedule() {
        let spec = spec();
        let to = map(&[("eu-west-1", 60), ("ap-southeast-1", 40)]);
        let mut seen = Vec::new();
        for stage in 0..4 {
            let s = shift_stage(
                &spec,
                "eu-west-1",
                Some(&to),
                None,
                &DEFAULT_SCHEDULE,
                stage,
            )
            .unwrap();
            let w: Vec<u32> = s.weights.iter().map(|(_, w)| *w).collect();
            assert_eq!(w.iter().sum::<u32>(), 100);
            seen.push(w);
            assert_eq!(s.next_stage, (stage < 3).then_some(stage + 1));
        }
        // 50/30/20 → 0/60/40: 10 % → 45/33/22, 25 % → 37.5/37.5/25, 50 % → 25/45/30.
        assert_eq!(
            seen,
            [
                vec![45, 33, 22],
                vec![38, 37, 25],
                vec![25, 45, 30],
                vec![0, 60, 40]
            ]
        );
        // Rounding by largest remainder keeps the sum at 100 with thirds.
        let thirds = interpolate(
            &[("a".into(), 100), ("b".into(), 0), ("c".into(), 0)],
            &[("a".into(), 0), ("b".into(), 50), ("c".into(), 50)],
            33,
        );
        assert_eq!(thirds.iter().map(|(_, w)| w).sum::<u32>(), 100);
    }

    #[test]
    fn bad_weights_and_schedules_are_invalid_input() {
        let spec = spec();
        for (to, want) in [
            (
                map(&[("eu-west-1", 60), ("ap-southeast-1", 30)]),
                "weights sum to 90, not 100",
            ),
            (
                map(&[("eu-west-1", 60), ("ap-southeast-1", 41)]),
                "weights sum to 101, not 100",
            ),
            (map(&[("us-west-2", 100)]), "`us-west-2` is not a Region"),
        ] {
            let err =
                shift_stage(&spec, "eu-west-1", Some(&to), None, &DEFAULT_SCHEDULE, 0).unwrap_err();
            assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
            assert!(err.to_string().contains(want), "{err}");
        }
        let to = map(&[("eu-west-1", 100)]);
        for (schedule, want) in [
            (vec![], "1 to 20"),
            (vec![50, 25, 100], "strictly increase"),
            (vec![10, 50], "last stage must be 100"),
            (vec![0, 100], "from 1 to 100"),
        ] {
            let err = shift_stage(&spec, "eu-west-1", Some(&to), None, &schedule, 0).unwrap_err();
            assert!(err.to_string().contains(want), "{err}");
        }
        let err =
            shift_stage(&spec, "eu-west-1", Some(&to), None, &DEFAULT_SCHEDULE, 4).unwrap_err();
        assert!(err.to_string().contains("stage: 4"), "{err}");
        let err = shift_stage(&spec, "eu-west-1", None, None, &DEFAULT_SCHEDULE, 0).unwrap_err();
        assert!(err.to_string().contains("weights: required"), "{err}");
    }

    #[test]
    fn a_stage_is_one_change_batch_per_zone_on_the_control_plane() {
        let spec = spec();
        let to = map(&[("eu-west-1", 100)]);
        let stage = shift_stage(&spec, "eu-west-1", Some(&to), None, &[100], 0).unwrap();
        let zones = stage_records(&spec, &stage).unwrap();
        assert_eq!(zones.len(), 1);
        assert_eq!(zones[0].1.len(), 3);
        let calls = shift_calls(&zones);
        let ops: Vec<&str> = calls.iter().map(|c| c.operation.as_str()).collect();
        assert_eq!(ops, ["ChangeResourceRecordSets", "GetChange"]);
        assert!(
            calls
                .iter()
                .all(|c| c.plane == Plane::Control && c.region == "us-east-1")
        );
        assert!(!data_plane_only(&calls));
        assert_eq!(calls[0].detail["changes"][1]["weight"], 100);
    }
}
