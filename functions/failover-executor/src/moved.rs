//! What a run that stopped had already moved, and whether a new run continues it.
//!
//! Pure functions over what the compensating step can see without the failed Region:
//! the state the machine carries (`$.data`: the data tier's Parallel output, one
//! replica-promoter outcome per branch; `$.shift`: traffic-shifter's outcome, with
//! its switches and, for a weighted shift, its weights), the records the movers left
//! in the arbiter's table at this run's epoch (replica-promoter's audit events, which
//! survive a Parallel whose Catch drops its branches' results; traffic-shifter's
//! switch positions), and the spec as it is now.

use std::collections::BTreeMap;

use lifeboat::store::{AuditEvent, RunKind, RunOutcome, RunRecord, SwitchPosition};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One resource the run moved.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MovedResource {
    /// `rds_instance`, `aurora_cluster` or `s3_bucket`.
    pub kind: String,
    /// Its identifier.
    pub id: String,
    /// Its Region.
    pub region: String,
    /// What was done, as the mover reported it (e.g. `promotion_requested`, `flipped`).
    pub action: String,
}

/// One routing switch the run set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MovedSwitch {
    /// The Region whose traffic it controls.
    pub controls: String,
    /// `on` or `off`.
    pub position: String,
}

/// Everything a stopped run had moved. Empty: nothing moved, the run `failed`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// Promoted RDS instances and Aurora clusters (writers now, whatever the spec says).
    pub databases: Vec<MovedResource>,
    /// Buckets whose replication direction was flipped.
    pub buckets: Vec<MovedResource>,
    /// Routing switches set.
    pub switches: Vec<MovedSwitch>,
    /// DNS weights as the last weighted shift left them, when one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<BTreeMap<String, u64>>,
    /// The spec's version, when the spec already holds the decided roles (finalize
    /// wrote it before the run stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_version: Option<u64>,
}

impl Moved {
    /// Nothing moved.
    pub fn is_empty(&self) -> bool {
        self.databases.is_empty()
            && self.buckets.is_empty()
            && self.switches.is_empty()
            && self.weights.is_none()
            && self.spec_version.is_none()
    }

    /// `partial` when anything moved, else `failed`.
    pub fn outcome(&self) -> RunOutcome {
        if self.is_empty() {
            RunOutcome::Failed
        } else {
            RunOutcome::Partial
        }
    }

    /// Adds what `other` saw, once each.
    pub fn merge(mut self, other: Moved) -> Moved {
        fn union<T: Ord>(mut a: Vec<T>, b: Vec<T>) -> Vec<T> {
            a.extend(b);
            a.sort();
            a.dedup();
            a
        }
        // The same resource seen by the state and by the audit log: keep one.
        fn by_id(v: Vec<MovedResource>) -> Vec<MovedResource> {
            let mut out: Vec<MovedResource> = Vec::new();
            for r in v {
                if !out.iter().any(|o| o.kind == r.kind && o.id == r.id) {
                    out.push(r);
                }
            }
            out
        }
        self.databases = by_id(union(self.databases, other.databases));
        self.buckets = by_id(union(self.buckets, other.buckets));
        self.switches = union(self.switches, other.switches);
        let mut seen = BTreeMap::new();
        for s in std::mem::take(&mut self.switches) {
            seen.entry(s.controls.clone()).or_insert(s);
        }
        self.switches = seen.into_values().collect();
        self.weights = self.weights.or(other.weights);
        self.spec_version = self.spec_version.or(other.spec_version);
        self
    }

    /// One line for the timeline and the cause: what moved, and that the spec did not.
    pub fn summary(&self) -> String {
        if self.is_empty() {
            return "nothing had moved: databases, buckets, switches, weights and spec as they were".into();
        }
        let list = |v: &[MovedResource]| {
            v.iter()
                .map(|r| format!("{} in {} ({})", r.id, r.region, r.action))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut parts = Vec::new();
        if !self.databases.is_empty() {
            parts.push(format!("databases {}", list(&self.databases)));
        }
        if !self.buckets.is_empty() {
            parts.push(format!("buckets {}", list(&self.buckets)));
        }
        if !self.switches.is_empty() {
            let s = self
                .switches
                .iter()
                .map(|s| format!("{} {}", s.controls, s.position))
                .collect::<Vec<_>>()
                .join(", ");
            parts.push(format!("switches {s}"));
        }
        if let Some(w) = &self.weights {
            let s = w
                .iter()
                .map(|(r, w)| format!("{r}={w}"))
                .collect::<Vec<_>>()
                .join(", ");
            parts.push(format!("weights {s}"));
        }
        parts.push(match self.spec_version {
            Some(v) => format!("spec written (version {v})"),
            None => "spec unchanged".into(),
        });
        format!("partial: {}", parts.join("; "))
    }
}

/// Resource actions that changed nothing.
const UNMOVED: [&str; 6] = [
    "unreachable",
    "deferred",
    "not_writer",
    "missing",
    "no_bucket",
    "not_contacted",
];

fn str_at<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn resource(r: &Value) -> MovedResource {
    MovedResource {
        kind: str_at(r, "kind").to_owned(),
        id: str_at(r, "id").to_owned(),
        region: str_at(r, "region").to_owned(),
        action: str_at(r, "action").to_owned(),
    }
}

/// What one replica-promoter outcome (a Parallel branch's result) moved.
fn from_promoter(outcome: &Value, moved: &mut Moved) {
    let step = str_at(outcome, "step");
    let Some(resources) = outcome.get("resources").and_then(Value::as_array) else {
        return;
    };
    for r in resources {
        let action = str_at(r, "action");
        if action.is_empty() || UNMOVED.contains(&action) {
            continue;
        }
        match (str_at(r, "kind"), step) {
            // A status read names the instance it checked: promoted (or on its way:
            // a requested promotion cannot be taken back).
            ("rds_instance", "rds_promote" | "rds_status") => moved.databases.push(resource(r)),
            ("aurora_cluster", "aurora_switchover" | "aurora_failover") => {
                moved.databases.push(resource(r));
            }
            // aurora_status checks the writer; `done` says the target is it.
            ("aurora_cluster", "aurora_status")
                if outcome.get("done").and_then(Value::as_bool) == Some(true) =>
            {
                moved.databases.push(resource(r));
            }
            ("s3_bucket", "s3_flip") => moved.buckets.push(resource(r)),
            _ => {}
        }
    }
}

/// What the state the machine carries says moved: `$.data` (the data tier's Parallel
/// output: an array of replica-promoter outcomes) and `$.shift` (traffic-shifter's
/// outcome: `switches` flipped, and the weights a weighted `shift` left) and `$.enable`
/// (a failback's switch turned back on).
pub fn from_state(state: &Value) -> Moved {
    let mut moved = Moved::default();
    if let Some(branches) = state.get("data").and_then(Value::as_array) {
        for b in branches {
            from_promoter(b, &mut moved);
        }
    }
    // `drain`: a planned failover's switch flip before promotion; `shift`: the
    // failover's switch flip (or a failback's weighted stage); `enable`: a failback
    // turning the home Region's switch back on; `undo_drain`: a planned failover that
    // stopped before promotion turning the drained writer's switch back on, which
    // undoes the drain's move of that switch.
    for step in ["drain", "shift", "enable", "undo_drain"] {
        let switches = state
            .get(step)
            .and_then(|o| o.get("switches"))
            .and_then(Value::as_array);
        for s in switches.into_iter().flatten() {
            if str_at(s, "action") != "flipped" {
                continue;
            }
            let controls = str_at(s, "controls");
            if step == "undo_drain" {
                moved.switches.retain(|m| m.controls != controls);
                continue;
            }
            let position = str_at(s, "desired").to_owned();
            match moved.switches.iter_mut().find(|m| m.controls == controls) {
                Some(m) => m.position = position,
                None => moved.switches.push(MovedSwitch {
                    controls: controls.to_owned(),
                    position,
                }),
            }
        }
    }
    if let Some(shift) = state.get("shift") {
        moved.weights = shift
            .get("shift")
            .and_then(|s| s.get("weights"))
            .and_then(Value::as_object)
            .map(|w| {
                w.iter()
                    .filter_map(|(r, v)| v.as_u64().map(|v| (r.clone(), v)))
                    .collect()
            });
    }
    moved
}

/// The replica-promoter audit-event actions that mean a resource moved.
const MOVING_EVENTS: [(&str, &str); 5] = [
    ("rds_promotion_requested", "rds_instance"),
    ("aurora_failover_requested", "aurora_cluster"),
    ("aurora_switchover_requested", "aurora_cluster"),
    ("s3_replication_flipped", "s3_bucket"),
    ("s3_replication_mirrored", "s3_bucket"),
];

/// What the movers recorded in the arbiter's table for this move (`target`) at this
/// `epoch`: replica-promoter's audit events (`replica-promoter:<step>:<target>:
/// <resource>:e<epoch>`) and the switch positions traffic-shifter set for `holder`.
/// This is what survives when a Parallel's Catch drops its branches' results.
pub fn from_records(
    events: &[AuditEvent],
    switches: &[SwitchPosition],
    target: &str,
    epoch: u64,
    holder: &str,
) -> Moved {
    let mut moved = Moved::default();
    let suffix = format!(":e{epoch}");
    for e in events {
        let Some((_, kind)) = MOVING_EVENTS.iter().find(|(a, _)| *a == e.action) else {
            continue;
        };
        let Some(rest) = e.id.strip_suffix(&suffix) else {
            continue;
        };
        let parts: Vec<&str> = rest.splitn(4, ':').collect();
        let [_, _, region, id] = parts[..] else {
            continue;
        };
        if region != target {
            continue;
        }
        let r = MovedResource {
            kind: (*kind).to_owned(),
            id: id.to_owned(),
            region: region.to_owned(),
            action: e.action.clone(),
        };
        if *kind == "s3_bucket" {
            moved.buckets.push(r);
        } else {
            moved.databases.push(r);
        }
    }
    for s in switches {
        if s.epoch == epoch && s.set_by == holder {
            moved.switches.push(MovedSwitch {
                controls: s.region.clone(),
                position: if s.on { "on" } else { "off" }.to_owned(),
            });
        }
    }
    moved
}

/// A run a new request continues: the latest failover-kind run of the workload, when
/// it ended `partial` away from `from` (the same Region the new request fails away
/// from). Its target is the one to take again, if it is still a valid choice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Continued {
    /// The partial run's id.
    pub run: String,
    /// The Region it failed away from.
    pub from_region: String,
    /// The Region it was moving to.
    pub to_region: String,
    /// What it had moved (its `details.moved`).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub moved: Value,
}

/// The partial run to continue, if the latest run of `kind` for this workload is one
/// that failed away from `from` (with the same target when `target` is named).
pub fn continues(
    runs: &[RunRecord],
    kind: RunKind,
    from: &str,
    target: Option<&str>,
) -> Option<Continued> {
    let last = runs
        .iter()
        .filter(|r| r.kind == kind)
        .max_by_key(|r| r.started_at)?;
    if last.outcome != RunOutcome::Partial {
        return None;
    }
    let from_region = last.details.get("from_region")?.as_str()?;
    let to_region = last.details.get("to_region")?.as_str()?;
    if from_region != from || target.is_some_and(|t| t != to_region) {
        return None;
    }
    Some(Continued {
        run: last.id.clone(),
        from_region: from_region.to_owned(),
        to_region: to_region.to_owned(),
        moved: last
            .details
            .get("outcome")
            .and_then(|o| o.get("moved"))
            .cloned()
            .unwrap_or(Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::UnixMillis;
    use serde_json::json;

    /// The state a failover machine carries when verification failed: the data tier
    /// moved (RDS promoted, Aurora checked as writer, buckets flipped) and the switches
    /// flipped.
    fn after_shift() -> Value {
        json!({
            "data": [
                {"step": "rds_status", "done": true, "status": "available", "resources": [
                    {"kind": "rds_instance", "id": "db-usw2", "region": "us-west-2", "action": "checked", "status": "available"}]},
                {"step": "aurora_status", "done": true, "status": "writer", "resources": [
                    {"kind": "aurora_cluster", "id": "au-usw2", "region": "us-west-2", "action": "checked", "status": "available"}]},
                {"step": "s3_flip", "done": true, "status": "flipped", "resources": [
                    {"kind": "s3_bucket", "id": "assets-usw2", "region": "us-west-2", "action": "flipped", "status": "flipped"},
                    {"kind": "s3_bucket", "id": "logs-usw2", "region": "us-west-2", "action": "deferred", "status": "flip_deferred"}]},
                {"step": "dynamodb_verify", "done": true, "status": "checked", "resources": [
                    {"kind": "dynamodb_table", "id": "t", "region": "us-west-2", "action": "checked", "status": "ACTIVE"}]}
            ],
            "shift": {"step": "failover", "switches": [
                {"controls": "us-west-2", "region": "us-west-2", "alarm_name": "a", "desired": "on", "action": "flipped"},
                {"controls": "us-east-1", "region": "us-west-2", "alarm_name": "b", "desired": "off", "action": "flipped"},
                {"controls": "eu-west-1", "region": "eu-west-1", "alarm_name": "c", "desired": "off", "action": "already_in_place"}
            ]}
        })
    }

    #[test]
    fn a_run_stopped_after_the_switch_flip_moved_the_data_tier_and_the_switches() {
        let m = from_state(&after_shift());
        let ids: Vec<_> = m.databases.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["db-usw2", "au-usw2"]);
        let buckets: Vec<_> = m.buckets.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(buckets, ["assets-usw2"], "a deferred flip moved nothing");
        assert_eq!(
            m.switches,
            [
                MovedSwitch {
                    controls: "us-west-2".into(),
                    position: "on".into()
                },
                MovedSwitch {
                    controls: "us-east-1".into(),
                    position: "off".into()
                },
            ]
        );
        assert_eq!(m.spec_version, None);
        assert_eq!(m.outcome(), RunOutcome::Partial);
        let s = m.summary();
        assert!(
            s.starts_with("partial: databases db-usw2 in us-west-2"),
            "{s}"
        );
        assert!(s.contains("switches us-west-2 on, us-east-1 off"), "{s}");
        assert!(s.ends_with("spec unchanged"), "{s}");
    }

    #[test]
    fn a_planned_move_stopped_after_its_drain_moved_the_switches_unless_undone() {
        let drain = json!({"step": "failover", "switches": [
            {"controls": "us-west-2", "region": "us-west-2", "alarm_name": "a", "desired": "on", "action": "already_in_place"},
            {"controls": "us-east-1", "region": "us-west-2", "alarm_name": "b", "desired": "off", "action": "flipped"}
        ]});
        let m = from_state(&json!({"lease": {}, "drain": drain}));
        assert_eq!(
            m.switches,
            [MovedSwitch {
                controls: "us-east-1".into(),
                position: "off".into()
            }]
        );
        assert_eq!(m.outcome(), RunOutcome::Partial);
        let undo = json!({"step": "enable", "switches": [
            {"controls": "us-east-1", "region": "us-west-2", "alarm_name": "b", "desired": "on", "action": "flipped"}
        ]});
        let m = from_state(&json!({"lease": {}, "drain": drain, "undo_drain": undo}));
        assert!(m.is_empty(), "{m:?}");
        assert_eq!(m.outcome(), RunOutcome::Failed);
    }

    #[test]
    fn a_run_stopped_before_anything_moved_failed() {
        let m = from_state(&json!({"decision": {}, "lease": {}, "error": {"Error": "X"}}));
        assert!(m.is_empty());
        assert_eq!(m.outcome(), RunOutcome::Failed);
        assert!(m.summary().starts_with("nothing had moved"));
        // A status that is not yet the writer, an unreachable replica: not moved.
        let m = from_state(&json!({"data": [
            {"step": "aurora_status", "done": false, "resources": [
                {"kind": "aurora_cluster", "id": "au", "region": "r", "action": "checked"}]},
            {"step": "rds_promote", "done": false, "resources": [
                {"kind": "rds_instance", "id": "db", "region": "r", "action": "unreachable"}]}
        ]}));
        assert!(m.is_empty(), "{m:?}");
    }

    #[test]
    fn weights_and_a_written_spec_count_as_moved() {
        let m = from_state(&json!({"shift": {"step": "shift", "shift": {
            "stage": 0, "schedule": [10, 100], "percent": 10,
            "weights": {"us-east-1": 10, "us-west-2": 90}, "changes": []}}}));
        assert_eq!(
            m.weights,
            Some(BTreeMap::from([
                ("us-east-1".into(), 10),
                ("us-west-2".into(), 90)
            ]))
        );
        let spec = Moved {
            spec_version: Some(8),
            ..Moved::default()
        };
        assert_eq!(spec.outcome(), RunOutcome::Partial);
        assert!(spec.summary().contains("spec written (version 8)"));
    }

    fn event(id: &str, action: &str) -> AuditEvent {
        AuditEvent {
            at: UnixMillis(1),
            id: id.into(),
            actor: "replica-promoter".into(),
            action: action.into(),
            reason: String::new(),
            before: None,
            after: None,
        }
    }

    #[test]
    fn the_records_at_this_epoch_say_what_moved_when_the_parallel_lost_its_results() {
        let events = [
            event(
                "replica-promoter:rds_promote:us-west-2:db-usw2:e7",
                "rds_promotion_requested",
            ),
            event(
                "replica-promoter:s3_flip:us-west-2:assets-usw2:e7",
                "s3_replication_flipped",
            ),
            // Another epoch, another target, another action: not this run's.
            event(
                "replica-promoter:rds_promote:us-west-2:db-old:e6",
                "rds_promotion_requested",
            ),
            event(
                "replica-promoter:rds_promote:eu-west-1:db-euw1:e7",
                "rds_promotion_requested",
            ),
            event(
                "replica-promoter:s3_suspend_old:us-west-2:x:e7",
                "s3_old_rules_suspended",
            ),
        ];
        let switch = |region: &str, on, epoch, by: &str| SwitchPosition {
            region: region.into(),
            on,
            epoch,
            set_at: UnixMillis(1),
            set_by: by.into(),
        };
        let switches = [
            switch("us-west-2", true, 7, "arn:x:run"),
            switch("us-east-1", true, 3, "arn:x:old"),
        ];
        let m = from_records(&events, &switches, "us-west-2", 7, "arn:x:run");
        assert_eq!(m.databases.len(), 1);
        assert_eq!(m.databases[0].id, "db-usw2");
        assert_eq!(m.buckets[0].id, "assets-usw2");
        assert_eq!(
            m.switches,
            [MovedSwitch {
                controls: "us-west-2".into(),
                position: "on".into()
            }]
        );
        // Seen in both places: listed once.
        let both = from_state(&after_shift()).merge(m);
        assert_eq!(
            both.databases.iter().filter(|r| r.id == "db-usw2").count(),
            1
        );
        assert_eq!(both.switches.len(), 2);
    }

    fn record(id: &str, kind: RunKind, outcome: RunOutcome, at: u64, to: &str) -> RunRecord {
        RunRecord {
            id: id.into(),
            kind,
            started_at: UnixMillis(at),
            finished_at: Some(UnixMillis(at + 1)),
            outcome,
            timeline: vec![],
            measured_rto_ms: None,
            measured_rpo_ms: None,
            rpo_simulated: false,
            details: json!({"from_region": "us-east-1", "to_region": to,
                "outcome": {"moved": {"switches": [{"controls": to, "position": "on"}]}}}),
        }
    }

    #[test]
    fn the_same_request_continues_the_latest_partial_run_to_its_target() {
        let runs = [
            record(
                "a",
                RunKind::Failover,
                RunOutcome::Succeeded,
                10,
                "eu-west-1",
            ),
            record("b", RunKind::Failover, RunOutcome::Partial, 20, "us-west-2"),
            record("d", RunKind::Drill, RunOutcome::Failed, 30, "eu-west-1"),
        ];
        let c = continues(&runs, RunKind::Failover, "us-east-1", None).unwrap();
        assert_eq!((c.run.as_str(), c.to_region.as_str()), ("b", "us-west-2"));
        assert_eq!(c.moved["switches"][0]["controls"], "us-west-2");
        assert!(continues(&runs, RunKind::Failover, "us-east-1", Some("us-west-2")).is_some());
        // Another request: another failed Region, another named target.
        assert!(continues(&runs, RunKind::Failover, "eu-west-1", None).is_none());
        assert!(continues(&runs, RunKind::Failover, "us-east-1", Some("eu-west-1")).is_none());
        // A later run ended it (here: succeeded): nothing to continue.
        let later = [
            runs[1].clone(),
            record(
                "e",
                RunKind::Failover,
                RunOutcome::Succeeded,
                40,
                "us-west-2",
            ),
        ];
        assert!(continues(&later, RunKind::Failover, "us-east-1", None).is_none());
        assert!(continues(&runs, RunKind::Drill, "us-east-1", None).is_none());
    }
}
