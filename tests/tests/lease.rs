//! The lease outlives the run, failover comes first, one lease Region for every mover
//! (issue 14, items 1-3): the machines renew the lease before every wait (read from
//! `statemachines/*.asl.json`), take-overs against moto's DynamoDB, and the lease
//! Region rule every mover shares.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};

use failover_executor::decide;
use failover_executor::request::{AcquireInput, FailoverRequest, Mode, RenewInput};
use failover_executor::steps::{self, DEFAULT_LEASE_TTL_SECONDS};
use harness::moto::MotoServer;
use harness::world::{self, World};
use lifeboat::model::Role;
use lifeboat::store::{LeasePurpose, LeaseRequest, Verdict};
use lifeboat::{ErrorName, Store, UnixMillis};
use serde_json::{Value, json};

// ---- the machines: every loop renews, and no renewal-free stretch outlasts the TTL ----

/// The machines' defaults for the waits' `SecondsPath`s (`DefaultTiming`/`DefaultSoak`).
fn wait_seconds(state: &Value) -> f64 {
    if let Some(s) = state["Seconds"].as_f64() {
        return s;
    }
    match state["SecondsPath"].as_str().unwrap_or("") {
        "$.timing.poll_seconds" => 15.0,
        "$.timing.soak_seconds" => 300.0,
        // The longest bake a deploy accepts.
        "$.deploy.bake_seconds" => deploy_wave::decide::MAX_BAKE_SECONDS as f64,
        other => panic!("a wait on {other}: add its default here"),
    }
}

/// The worst case of a Task: every attempt runs to its timeout, every retry backs off.
fn task_seconds(state: &Value) -> f64 {
    let timeout = state["TimeoutSeconds"].as_f64().unwrap_or(60.0);
    let mut attempts = 1.0;
    let mut backoff = 0.0;
    for r in state["Retry"].as_array().into_iter().flatten() {
        let n = r["MaxAttempts"].as_f64().unwrap_or(3.0);
        let interval = r["IntervalSeconds"].as_f64().unwrap_or(1.0);
        let rate = r["BackoffRate"].as_f64().unwrap_or(2.0);
        attempts += n;
        backoff += (0..n as i32).map(|k| interval * rate.powi(k)).sum::<f64>();
    }
    timeout * attempts + backoff
}

fn is_renew(state: &Value) -> bool {
    state["Type"] == "Task" && state["Parameters"]["step"] == "renew"
}

fn successors(state: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for v in [&state["Next"], &state["Default"]] {
        if let Some(s) = v.as_str() {
            out.push(s.to_owned());
        }
    }
    for key in ["Choices", "Catch"] {
        for c in state[key].as_array().into_iter().flatten() {
            if let Some(s) = c["Next"].as_str() {
                out.push(s.to_owned());
            }
        }
    }
    out
}

/// One scope of states (a machine or a Parallel's branch).
struct Scope<'a> {
    states: &'a serde_json::Map<String, Value>,
}

impl Scope<'_> {
    /// The longest renewal-free time from entering `name` to the next renewal (whose
    /// own time counts) or the scope's end; panics on a loop without a renewal.
    fn longest(&self, name: &str, on_path: &mut BTreeSet<String>) -> f64 {
        let state = &self.states[name];
        if is_renew(state) {
            return task_seconds(state);
        }
        assert!(
            on_path.insert(name.to_owned()),
            "a loop through {name} without a renewal: {on_path:?}"
        );
        let own = match state["Type"].as_str().unwrap() {
            "Task" => task_seconds(state),
            "Wait" => wait_seconds(state),
            "Parallel" => parallel_seconds(state),
            "Map" => map_seconds(state),
            _ => 0.0,
        };
        let next = successors(state)
            .iter()
            .map(|n| self.longest(n, on_path))
            .fold(0.0, f64::max);
        on_path.remove(name);
        own + next
    }

    /// The longest stretch after any renewal, to the next one or the end.
    fn after_renewals(&self) -> f64 {
        self.states
            .iter()
            .filter(|(_, s)| is_renew(s))
            .flat_map(|(_, s)| successors(s))
            .map(|n| self.longest(&n, &mut BTreeSet::new()))
            .fold(0.0, f64::max)
    }
}

/// A Parallel, conservatively: the longest stretch before a branch's first renewal plus
/// the longest after a branch's last one.
fn parallel_seconds(state: &Value) -> f64 {
    let mut before: f64 = 0.0;
    let mut after: f64 = 0.0;
    for b in state["Branches"].as_array().unwrap() {
        let scope = Scope {
            states: b["States"].as_object().unwrap(),
        };
        before = before.max(scope.longest(b["StartAt"].as_str().unwrap(), &mut BTreeSet::new()));
        after = after.max(scope.after_renewals());
    }
    before + after
}

/// Whether any state of `states`, or of a Parallel's or Map's inside, renews.
fn renews_anywhere(states: &serde_json::Map<String, Value>) -> bool {
    states.values().any(|s| {
        is_renew(s)
            || s["Branches"]
                .as_array()
                .into_iter()
                .flatten()
                .chain(std::iter::once(&s["ItemProcessor"]))
                .filter_map(|b| b["States"].as_object())
                .any(renews_anywhere)
    })
}

/// A Map, conservatively: the longest stretch before an iteration's first renewal plus
/// the longest after one's last, which also bounds the stretch from one iteration into
/// the next. An iteration that never renews is bounded only if the iterations run at
/// once (`MaxConcurrency` 0): one after another, their count would add up.
fn map_seconds(state: &Value) -> f64 {
    let processor = &state["ItemProcessor"];
    let states = processor["States"].as_object().unwrap();
    let scope = Scope { states };
    let whole = scope.longest(processor["StartAt"].as_str().unwrap(), &mut BTreeSet::new());
    if !renews_anywhere(states) {
        assert_eq!(
            state["MaxConcurrency"].as_u64().unwrap_or(0),
            0,
            "a sequential Map whose iterations never renew: {state}"
        );
        return whole;
    }
    whole + scope.after_renewals()
}

/// The longest renewal-free stretch of a machine once `acquire` (the state that takes
/// the lease) has it, in seconds.
fn worst_stretch(machine: &str, acquire: &str) -> f64 {
    let path = format!(
        "{}/../statemachines/{machine}.asl.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let scope = Scope {
        states: m["States"].as_object().unwrap(),
    };
    let from_acquire = successors(&m["States"][acquire])
        .iter()
        .filter(|n| *n != "Refused")
        .map(|n| scope.longest(n, &mut BTreeSet::new()))
        .fold(0.0, f64::max);
    from_acquire.max(scope.after_renewals())
}

#[test]
fn every_wait_of_the_lease_holding_machines_renews_and_the_ttl_covers_the_worst_stretch() {
    for machine in ["failover", "failback"] {
        let worst = worst_stretch(machine, "Acquire");
        assert!(
            worst < DEFAULT_LEASE_TTL_SECONDS as f64,
            "{machine}: {worst} s without a renewal, over the {DEFAULT_LEASE_TTL_SECONDS}-s lease"
        );
    }
    // A deploy's lease lasts a bake plus a margin; at the longest bake, the longest
    // stretch (a bake, its gate, and every task attempt to its timeout) still fits.
    let worst = worst_stretch("deploy-waves", "Start");
    let bake = deploy_wave::decide::MAX_BAKE_SECONDS;
    let ttl = deploy_wave::lease_ttl_seconds(bake);
    assert!(
        worst < ttl as f64,
        "deploy-waves: {worst} s without a renewal, over the {ttl}-s lease"
    );
    assert!(worst > bake as f64, "a bake is a stretch: {worst}");
}

#[test]
fn the_failover_waits_a_bounded_time_for_a_busy_lease_and_refuses_naming_it() {
    let path = format!(
        "{}/../statemachines/failover.asl.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let acquire = &m["States"]["Acquire"];
    let busy = acquire["Retry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ErrorEquals"] == json!(["LeaseBusy"]))
        .expect("Acquire retries LeaseBusy");
    let n = busy["MaxAttempts"].as_f64().unwrap();
    assert!((1.0..=10.0).contains(&n), "{busy}");
    let caught = acquire["Catch"].as_array().unwrap().iter().any(|c| {
        c["ErrorEquals"]
            .as_array()
            .unwrap()
            .contains(&json!("LeaseBusy"))
            && c["Next"] == "Refused"
    });
    assert!(caught, "{acquire}");
    assert_eq!(acquire["Parameters"]["timing.$"], "$.timing");
}

// ---- take-overs, renewals and refusals against moto's DynamoDB ----

async fn seeded() -> World {
    let table = harness::table::unique_name("lease");
    world::seed(MotoServer::shared(), &table).await.unwrap()
}

fn operator(force: bool) -> FailoverRequest {
    FailoverRequest {
        workload: "checkout".into(),
        failed_region: None,
        target_region: Some("eu-west-1".into()),
        mode: Mode::Unplanned,
        dry_run: false,
        accept_data_loss: true,
        reason: "us-east-1 is down".into(),
        requested_by: "alice".into(),
        request_id: None,
        trigger: None,
        timing: None,
        drill: false,
        force,
    }
}

async fn decision(w: &World, req: &FailoverRequest, now: UnixMillis) -> decide::Decision {
    let mut health = Vec::new();
    for (region, verdict) in [
        ("us-east-1", Verdict::Unhealthy),
        ("eu-west-1", Verdict::Healthy),
        ("ap-southeast-1", Verdict::Healthy),
    ] {
        health.push(world::settled_health(region, verdict, Some(1.0), now));
    }
    decide::decide(&w.spec, &health, req, "eu-west-1", now).unwrap()
}

fn held_for(purpose: LeasePurpose, holder: &str) -> LeaseRequest {
    LeaseRequest {
        workload: "checkout".into(),
        holder: holder.into(),
        purpose,
        ttl: std::time::Duration::from_secs(3600),
    }
}

#[tokio::test]
async fn a_failover_takes_a_deploys_lease_over_and_the_deploy_is_stale_from_then_on() {
    let w = seeded().await;
    let now = UnixMillis::now();
    let deploy = w
        .store
        .acquire_lease(&held_for(LeasePurpose::Deploy, "deploy-1"), now)
        .await
        .unwrap();
    let d = decision(&w, &operator(false), now).await;
    let input = AcquireInput {
        decision: d.clone(),
        holder: "arn:aws:states:eu-west-1:1:execution:failover:op-1".into(),
        ttl_seconds: None,
        timing: None,
    };
    let lease = steps::acquire(&w.store, &input, now).await.unwrap();
    assert_eq!(lease.epoch, deploy.epoch + 1);
    assert_eq!(lease.purpose, LeasePurpose::Failover);
    // A retried acquire gets the same lease back; one audit event says who took it.
    assert_eq!(steps::acquire(&w.store, &input, now).await.unwrap(), lease);
    let events = w.store.list_events("checkout").await.unwrap();
    let took: Vec<_> = events
        .iter()
        .filter(|e| e.action == "lease_taken_over")
        .collect();
    assert_eq!(took.len(), 1, "{events:#?}");
    assert_eq!(took[0].before.as_ref().unwrap()["holder"], "deploy-1");
    // The deploy can neither renew nor write.
    let e = w
        .store
        .renew_lease(
            "checkout",
            "deploy-1",
            deploy.epoch,
            std::time::Duration::from_secs(60),
            now,
        )
        .await
        .unwrap_err();
    assert_eq!(e.name(), ErrorName::StaleEpoch);
    let mut spec = w.store.get_spec("checkout").await.unwrap();
    spec.policy.cooldown_seconds += 1;
    let e = w
        .store
        .put_spec(&spec, Some(deploy.fence()))
        .await
        .unwrap_err();
    assert_eq!(e.name(), ErrorName::StaleEpoch);
    assert_eq!(
        w.store.get_spec("checkout").await.unwrap().version,
        w.spec.version
    );
}

#[tokio::test]
async fn against_a_failback_a_failover_is_busy_and_an_operator_may_force_it() {
    let w = seeded().await;
    let now = UnixMillis::now();
    let failback = w
        .store
        .acquire_lease(&held_for(LeasePurpose::Failback, "failback-1"), now)
        .await
        .unwrap();
    let holder = "arn:aws:states:eu-west-1:1:execution:failover:op-2";
    let plain = AcquireInput {
        decision: decision(&w, &operator(false), now).await,
        holder: holder.into(),
        ttl_seconds: None,
        timing: None,
    };
    let e = steps::acquire(&w.store, &plain, now).await.unwrap_err();
    assert_eq!(e.name(), ErrorName::LeaseBusy);
    assert!(e.to_string().contains("failback-1"), "{e}");
    assert_eq!(
        w.store.get_lease("checkout").await.unwrap(),
        Some(failback.clone())
    );

    let forced = AcquireInput {
        decision: decision(&w, &operator(true), now).await,
        ..plain
    };
    let lease = steps::acquire(&w.store, &forced, now).await.unwrap();
    assert_eq!(lease.epoch, failback.epoch + 1);
    let events = w.store.list_events("checkout").await.unwrap();
    let took = events
        .iter()
        .find(|e| e.action == "lease_taken_over")
        .unwrap();
    assert_eq!(took.after.as_ref().unwrap()["forced"], true);
    assert!(took.reason.contains("alice"), "{}", took.reason);

    // Another failover is refused at once, even with the lease about to lapse.
    let other = AcquireInput {
        decision: decision(&w, &operator(false), now).await,
        holder: "arn:aws:states:eu-west-1:1:execution:failover:op-3".into(),
        ttl_seconds: None,
        timing: None,
    };
    let e = steps::acquire(&w.store, &other, now).await.unwrap_err();
    assert_eq!(e.name(), ErrorName::LeaseHeld);
}

#[tokio::test]
async fn renew_extends_the_holders_lease_and_is_stale_once_taken_over() {
    let w = seeded().await;
    let now = UnixMillis::now();
    let d = decision(&w, &operator(false), now).await;
    let first = AcquireInput {
        decision: d.clone(),
        holder: "arn:aws:states:eu-west-1:1:execution:failover:first".into(),
        ttl_seconds: Some(5),
        timing: None,
    };
    let lease = steps::acquire(&w.store, &first, now).await.unwrap();
    let renew = RenewInput {
        decision: d.clone(),
        lease: lease.clone(),
        ttl_seconds: Some(5),
        timing: None,
    };
    let later = now.plus(std::time::Duration::from_secs(4));
    let renewed = steps::renew(&w.store, &renew, later).await.unwrap();
    assert_eq!(renewed.epoch, lease.epoch);
    assert_eq!(
        renewed.expires_at,
        later.plus(std::time::Duration::from_secs(5))
    );
    // Not renewed in time: a second failover takes it (expired), the first is stale.
    let lapsed = later.plus(std::time::Duration::from_secs(6));
    let second = AcquireInput {
        holder: "arn:aws:states:eu-west-1:1:execution:failover:second".into(),
        ..first
    };
    let taken = steps::acquire(&w.store, &second, lapsed).await.unwrap();
    assert_eq!(taken.epoch, lease.epoch + 1);
    let e = steps::renew(&w.store, &renew, lapsed).await.unwrap_err();
    assert_eq!(e.name(), ErrorName::StaleEpoch);
}

#[test]
fn a_lease_ttl_shorter_than_three_polls_is_refused_by_name() {
    let mut req = operator(false);
    req.timing = Some(failover_executor::request::Timing {
        poll_seconds: 10,
        verify_max_polls: 3,
        lease_ttl_seconds: Some(20),
    });
    let e = req.check().unwrap_err();
    assert_eq!(e.name(), ErrorName::InvalidInput);
    assert!(e.to_string().contains("timing.lease_ttl_seconds"), "{e}");
    let mut req = operator(true);
    req.trigger = Some(failover_executor::request::Trigger {
        alarm_name: "a".into(),
        alarm_arn: None,
        state_changed_at: UnixMillis(1),
    });
    let e = req.check().unwrap_err();
    assert!(
        e.to_string().starts_with("invalid input: force") || e.to_string().contains("force:"),
        "{e}"
    );
    let mut req = operator(true);
    req.drill = true;
    assert!(req.check().unwrap_err().to_string().contains("force"));
}

// ---- one lease Region for every mover ----

#[test]
fn every_mover_names_the_same_lease_region_whatever_its_own_region() {
    let spec = world::example_spec().unwrap();
    let primary = spec.primary().unwrap().region.clone();
    let mut seen = BTreeMap::new();
    for home in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
        let rule = lifeboat::store::lease_region(&spec, home);
        // The failover's (and failback's) arbiter is the same Region.
        assert_eq!(rule, decide::arbiter(&spec, &primary, home).0, "{home}");
        seen.insert(home, rule);
    }
    // Spanning MRSC sets: one Region for all, never the primary.
    let regions: BTreeSet<&String> = seen.values().collect();
    assert_eq!(regions.len(), 1, "{seen:?}");
    assert_ne!(*regions.iter().next().unwrap(), &primary);
    // After a failover to eu-west-1, the rule moves with the primary.
    let mut after = spec.clone();
    for r in &mut after.regions {
        r.role = if r.region == "eu-west-1" {
            Role::Primary
        } else if r.role == Role::Primary {
            Role::Secondary
        } else {
            r.role
        };
    }
    assert_eq!(
        lifeboat::store::lease_region(&after, "eu-west-1"),
        "us-east-1"
    );
}
