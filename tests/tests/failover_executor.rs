//! failover-executor against moto: alarms (both payloads) start one `failover` execution
//! however often they are delivered; operator requests and the state machine's steps
//! decide, lease, fence and record in the arbiter Region's table; bad input is named
//! and changes nothing.
//!
//! The `failover` state machine itself comes with a later issue: each test creates a
//! one-state (Pass) machine in moto and points the executor at it. moto does not
//! execute it (we never enable `execute_state_machine` in this binary), so executions
//! stay RUNNING, as a real failover would while these tests look at it.
//! moto ignores global-table replicas: where a test needs the spec in the arbiter
//! Region it writes it there itself, standing in for replication.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use failover_executor::alarm;
use failover_executor::request::FailoverRequest;
use failover_executor::{Executor, steps::FinalizeOutput};
use harness::moto::MotoServer;
use harness::world::{self, World};
use lifeboat::aws::for_region;
use lifeboat::model::Role;
use lifeboat::store::{HealthRecord, Lease, RunOutcome, Verdict};
use lifeboat::{DynamoStore, ErrorName, Store, UnixMillis};
use serde_json::{Value, json};

const PASS: &str = r#"{"StartAt": "Wait", "States": {"Wait": {"Type": "Pass", "End": true}}}"#;
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

fn fixture(name: &str) -> Value {
    let path = harness::moto::repo_root()
        .join("events/failover-executor")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

struct Env {
    w: World,
    ex: Arc<Executor>,
    sfn: aws_sdk_sfn::Client,
    machine: String,
}

impl Env {
    async fn new() -> Env {
        let moto = MotoServer::shared();
        let table = harness::table::unique_name("fe");
        let w = world::seed(moto, &table).await.unwrap();
        let sfn = aws_sdk_sfn::Client::new(&w.config);
        let machine = sfn
            .create_state_machine()
            .name(harness::table::unique_name("failover"))
            .definition(PASS)
            .role_arn("arn:aws:iam::123456789012:role/lifeboat-failover")
            .send()
            .await
            .unwrap()
            .state_machine_arn
            .clone();
        let ex = Arc::new(Executor::new(&w.config, &table, &machine).unwrap());
        Env {
            w,
            ex,
            sfn,
            machine,
        }
    }

    fn store(&self, region: &str) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&for_region(&self.w.config, region)),
            &self.w.table,
        )
    }

    /// Writes the spec into the other Regions' tables: the replication moto lacks.
    async fn replicate_spec(&self) {
        let spec = world::example_spec().unwrap();
        for r in &REGIONS[1..] {
            self.store(r).create_spec(&spec).await.unwrap();
        }
    }

    async fn health(&self, region: &str, verdict: Verdict, lag: Option<f64>) {
        let rec = HealthRecord {
            region: region.into(),
            verdict,
            consecutive_failures: 0,
            consecutive_successes: 3,
            probe_latency_ms: Some(20),
            replication_lag_seconds: lag,
            lag_grade: None,
            observed_at: UnixMillis(UnixMillis::now().0 - 1_000),
            detail: None,
        };
        assert!(self.w.store.put_health("checkout", &rec).await.unwrap());
    }

    async fn all_healthy(&self) {
        self.health("us-east-1", Verdict::Unhealthy, None).await;
        // Caught up: the operator fixture is a planned move, held to lag 0 (RPO-0).
        self.health("eu-west-1", Verdict::Healthy, Some(0.0)).await;
        self.health("ap-southeast-1", Verdict::Healthy, Some(4.0))
            .await;
    }

    /// The `decide` step on the alarm-started request of the fixtures.
    async fn decide(&self) -> lifeboat::Result<Value> {
        let request = fixture("step-decide.json")["request"].clone();
        self.call(json!({"step": "decide", "request": request}))
            .await
    }

    async fn acquire(&self, decision: &Value, holder: &str) -> lifeboat::Result<Value> {
        self.call(json!({"step": "acquire", "decision": decision, "holder": holder}))
            .await
    }

    async fn call(&self, payload: Value) -> lifeboat::Result<Value> {
        self.ex.handle_at(payload, "req-1", UnixMillis::now()).await
    }

    async fn executions(&self) -> Vec<aws_sdk_sfn::types::ExecutionListItem> {
        self.sfn
            .list_executions()
            .state_machine_arn(&self.machine)
            .send()
            .await
            .unwrap()
            .executions
    }

    /// Everything a refused request must leave as it was.
    async fn snapshot(&self) -> Value {
        let mut out = json!({"executions": self.executions().await.len()});
        for r in REGIONS {
            let s = self.store(r);
            out[r] = json!({
                "spec": s.get_spec("checkout").await.ok().map(|s| s.version),
                "lease": s.get_lease("checkout").await.unwrap(),
                "events": s.list_events("checkout").await.unwrap().len(),
                "runs": s.list_runs("checkout").await.unwrap().len(),
            });
        }
        out
    }
}

/// The template's failover alarm is named per stack, so no spec names it: it maps to
/// the workload Region its `Lifeboat/RegionHealthy` metric has as dimensions.
#[tokio::test]
async fn a_per_stack_health_alarm_maps_by_its_metric_dimensions() {
    let env = Env::new().await;
    let name = "lifeboat-checkout-us-east-1-unhealthy-seen-from-eu-west-1";
    let mut payload = fixture("alarm-action.json");
    payload["alarmData"]["alarmName"] = json!(name);
    let out = env.call(payload).await.unwrap();
    let action = &out["actions"][0];
    assert_eq!(action["workload"], "checkout", "{out}");
    assert_eq!(action["region"], "us-east-1", "{out}");
    assert_eq!(action["alarm_kind"], "region_health", "{out}");
    assert_eq!(action["outcome"], "started", "{out}");
    let execs = env.executions().await;
    assert_eq!(execs.len(), 1, "{execs:?}");
    assert_eq!(
        execs[0].name,
        alarm::execution_name("checkout", name, UnixMillis(1_795_464_293_123))
    );
}

#[tokio::test]
async fn fifty_duplicate_alarm_deliveries_start_exactly_one_execution() {
    let env = Env::new().await;
    let payload = fixture("alarm-action.json");
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (ex, payload) = (env.ex.clone(), payload.clone());
        tasks.spawn(async move {
            ex.handle_at(payload, &format!("delivery-{i}"), UnixMillis::now())
                .await
        });
    }
    let mut names = std::collections::BTreeSet::new();
    while let Some(res) = tasks.join_next().await {
        let out = res.unwrap().unwrap();
        let action = &out["actions"][0];
        assert_eq!(action["workload"], "checkout");
        assert_eq!(action["region"], "us-east-1");
        assert_eq!(action["outcome"], "started", "{out}");
        names.insert(action["execution_name"].as_str().unwrap().to_owned());
    }
    assert_eq!(names.len(), 1);
    let execs = env.executions().await;
    assert_eq!(execs.len(), 1, "{execs:?}");
    let changed_at = UnixMillis(1_795_464_293_123);
    assert_eq!(
        execs[0].name,
        alarm::execution_name("checkout", "checkout-use1-5xx", changed_at)
    );
    assert_eq!(names.first(), Some(&execs[0].name));

    // The execution's input is the failover request the state machine decides on.
    let desc = env
        .sfn
        .describe_execution()
        .execution_arn(&execs[0].execution_arn)
        .send()
        .await
        .unwrap();
    let req: FailoverRequest = serde_json::from_str(desc.input().unwrap()).unwrap();
    assert_eq!(req.failed_region.as_deref(), Some("us-east-1"));
    assert_eq!(req.trigger.unwrap().state_changed_at, changed_at);

    // Once it has finished, a late duplicate gets ExecutionAlreadyExists: still success,
    // still one execution.
    env.sfn
        .stop_execution()
        .execution_arn(&execs[0].execution_arn)
        .send()
        .await
        .unwrap();
    let out = env.call(payload).await.unwrap();
    assert_eq!(out["actions"][0]["outcome"], "already_exists", "{out}");
    assert_eq!(
        out["actions"][0]["execution_arn"].as_str(),
        Some(execs[0].execution_arn.as_str())
    );
    assert_eq!(env.executions().await.len(), 1);

    // The EventBridge form, for the primary's routing-switch alarm: a switch follows
    // Lifeboat's (or an operator's) decision, not the Region's health, so it starts
    // nothing, however many deliveries. (The first wave started an unplanned failover
    // here: issue "fail over when it should, never when it shouldn't", item 3.)
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (ex, payload) = (
            env.ex.clone(),
            fixture("eventbridge-alarm-state-change.json"),
        );
        tasks.spawn(async move { ex.handle_at(payload, "", UnixMillis::now()).await });
    }
    while let Some(res) = tasks.join_next().await {
        let out = res.unwrap().unwrap();
        assert_eq!(out["actions"][0]["alarm_kind"], "routing_switch", "{out}");
        assert_eq!(out["actions"][0]["region"], "us-east-1", "{out}");
        assert_eq!(out["actions"][0]["outcome"], "ignored", "{out}");
        assert_eq!(out["actions"][0]["ignored"], "routing_switch", "{out}");
    }
    assert_eq!(env.executions().await.len(), 1);
}

#[tokio::test]
async fn ok_non_primary_and_manual_only_alarms_are_acknowledged_and_start_nothing() {
    let env = Env::new().await;
    // A drain leases in the lease Region's replica, as the global table has it.
    env.replicate_spec().await;
    let out = env.call(fixture("alarm-action-ok.json")).await.unwrap();
    assert_eq!(out["actions"][0]["ignored"], "not_in_alarm", "{out}");

    // A serving secondary's alarm would drain it, but Lifeboat's probes have never
    // seen it unhealthy: refused, on the record, nothing moved.
    let before = env.w.store.get_spec("checkout").await.unwrap();
    let mut eu = fixture("alarm-action.json");
    eu["alarmData"]["alarmName"] = json!("checkout-euw1-5xx");
    let out = env.call(eu).await.unwrap();
    assert_eq!(out["actions"][0]["outcome"], "refused", "{out}");
    assert!(
        out["actions"][0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("never recorded")),
        "{out}"
    );
    assert_eq!(env.w.store.get_spec("checkout").await.unwrap(), before);
    let events = env.w.store.list_events("checkout").await.unwrap();
    assert!(
        events.iter().any(|e| e.action == "drain_refused"),
        "{events:#?}"
    );

    let mut spec = env.w.store.get_spec("checkout").await.unwrap();
    spec.policy.auto_failover = false;
    env.w.store.put_spec(&spec, None).await.unwrap();
    let out = env.call(fixture("alarm-action.json")).await.unwrap();
    assert_eq!(
        out["actions"][0]["ignored"], "auto_failover_disabled",
        "{out}"
    );
    assert_eq!(env.executions().await.len(), 0);
}

#[tokio::test]
async fn an_alarm_during_a_running_failover_is_acknowledged() {
    let env = Env::new().await;
    env.replicate_spec().await;
    env.all_healthy().await;
    let decision = env.decide().await.unwrap();
    env.acquire(&decision, "run-1").await.unwrap();
    let out = env.call(fixture("alarm-action.json")).await.unwrap();
    assert_eq!(
        out["actions"][0]["ignored"], "failover_in_progress",
        "{out}"
    );
    assert_eq!(env.executions().await.len(), 0);
}

#[tokio::test]
async fn bad_inputs_are_named_and_change_nothing() {
    let env = Env::new().await;
    env.replicate_spec().await;
    env.all_healthy().await;
    let before = env.snapshot().await;

    let mut no_state = fixture("alarm-action.json");
    no_state["alarmData"]
        .as_object_mut()
        .unwrap()
        .remove("state");
    let mut bad_time = fixture("alarm-action.json");
    bad_time["alarmData"]["state"]["timestamp"] = json!("yesterday");
    let mut unknown_alarm = fixture("alarm-action.json");
    unknown_alarm["alarmData"]["alarmName"] = json!("somebody-elses-alarm");
    // Not on Lifeboat/RegionHealthy either: nothing ties it to a workload Region.
    unknown_alarm["alarmData"]["configuration"]["metrics"][0]["metricStat"]["metric"] = json!({"namespace": "AWS/EC2", "name": "CPUUtilization",
               "dimensions": {"InstanceId": "i-0123456789abcdef0"}});
    let mut not_an_alarm = fixture("eventbridge-alarm-state-change.json");
    not_an_alarm["detail-type"] = json!("EC2 Instance State-change Notification");
    let mut unknown_workload = fixture("operator-request.json");
    unknown_workload["workload"] = json!("no-such-workload");
    let mut already_primary = fixture("operator-request.json");
    already_primary["target_region"] = json!("us-east-1");
    let mut no_reason = fixture("operator-request.json");
    no_reason.as_object_mut().unwrap().remove("reason");
    let mut dry_acquire = fixture("step-acquire.json");
    dry_acquire["decision"]["request"]["dry_run"] = json!(true);

    let cases = [
        (
            "malformed alarm",
            no_state,
            ErrorName::InvalidInput,
            "alarmData.state",
        ),
        (
            "bad timestamp",
            bad_time,
            ErrorName::InvalidInput,
            "timestamp",
        ),
        (
            "unknown alarm",
            unknown_alarm,
            ErrorName::InvalidInput,
            "somebody-elses-alarm",
        ),
        (
            "other event",
            not_an_alarm,
            ErrorName::InvalidInput,
            "detail-type",
        ),
        (
            "unknown workload",
            unknown_workload,
            ErrorName::WorkloadNotFound,
            "no-such-workload",
        ),
        (
            "already primary",
            already_primary,
            ErrorName::InvalidInput,
            "already the primary",
        ),
        (
            "missing reason",
            no_reason,
            ErrorName::InvalidInput,
            "missing field `reason`",
        ),
        (
            "dry-run acquire",
            dry_acquire,
            ErrorName::InvalidInput,
            "dry_run",
        ),
        (
            "not an object",
            json!("failover please"),
            ErrorName::InvalidInput,
            "a string",
        ),
        (
            "unrecognised",
            json!({"hello": 1}),
            ErrorName::InvalidInput,
            "unrecognised event",
        ),
    ];
    for (case, payload, name, needle) in cases {
        let err = env.call(payload).await.expect_err(case);
        assert_eq!(err.name(), name, "{case}: {err}");
        assert!(err.to_string().contains(needle), "{case}: {err}");
        let diag = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diag.error_type, name.as_str(), "{case}");
    }
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn the_decision_refuses_an_unhealthy_target_and_a_too_lagged_replica() {
    let env = Env::new().await;
    env.replicate_spec().await;
    env.health("us-east-1", Verdict::Unhealthy, None).await;
    env.health("eu-west-1", Verdict::Unhealthy, Some(1.0)).await;
    env.health("ap-southeast-1", Verdict::Healthy, Some(1_800.0))
        .await;
    let before = env.snapshot().await;

    let mut to_eu = fixture("operator-request.json");
    to_eu["mode"] = json!("unplanned");
    let err = env.call(to_eu).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::TargetUnhealthy, "{err}");
    assert!(
        err.to_string().contains("eu-west-1: verdict is unhealthy"),
        "{err}"
    );

    let mut any = fixture("operator-request.json");
    any.as_object_mut().unwrap().remove("target_region");
    let err = env.call(any.clone()).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::ReplicaLagTooHigh, "{err}");
    assert!(
        err.to_string().contains("ap-southeast-1 is 1800 s"),
        "{err}"
    );

    // The state machine's decide step refuses the same way.
    let err = env.decide().await.unwrap_err();
    assert_eq!(err.name(), ErrorName::ReplicaLagTooHigh, "{err}");
    assert_eq!(env.snapshot().await, before);

    // Unplanned with accepted data loss goes ahead, and says so.
    let out = env.call(fixture("operator-dry-run.json")).await.unwrap();
    assert_eq!(out["decision"]["to_region"], "ap-southeast-1", "{out}");
    assert_eq!(out["decision"]["data_loss_accepted"], true);
    assert_eq!(out["decision"]["lag_seconds"], 1800.0);
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn a_dry_run_returns_the_whole_plan_and_changes_nothing() {
    let env = Env::new().await;
    env.replicate_spec().await;
    env.all_healthy().await;
    let before = env.snapshot().await;
    let out = env.call(fixture("operator-dry-run.json")).await.unwrap();
    assert_eq!(out["dry_run"], true);
    let d = &out["decision"];
    assert_eq!(
        (d["from_region"].as_str(), d["to_region"].as_str()),
        (Some("us-east-1"), Some("eu-west-1"))
    );
    assert_eq!(d["arbiter_region"], "eu-west-1");
    assert_eq!(d["lease_consistency"], "eventual");
    let steps: Vec<&str> = d["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "decide",
            "acquire",
            "promote_data",
            "shift_traffic",
            "suspend_old_rules",
            "verify",
            "reprotect",
            "finalize"
        ]
    );
    for step in d["plan"]["steps"].as_array().unwrap() {
        for call in step["calls"].as_array().unwrap() {
            for field in [
                "service",
                "operation",
                "region",
                "control_plane",
                "outside_surviving_region",
            ] {
                assert!(!call[field].is_null(), "{call}");
            }
        }
    }
    // Control planes outside the survivor: only after the switch, in the best-effort
    // step (the old bucket's S3 replication rules, in the failed Region) and in the
    // verification probe (Route 53 GetHealthCheckStatus, its API in us-east-1).
    let outside: Vec<&str> = d["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| {
            s["calls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|c| c["control_plane"] == true && c["outside_surviving_region"] == true)
        })
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    // After traffic has moved: the old rules' suspension, Route 53's health checks in
    // the verification, and re-protection's new replicas in the other surviving Region.
    assert_eq!(outside, ["suspend_old_rules", "verify", "reprotect"]);
    assert_eq!(
        d["plan"]["touches_control_plane_outside_surviving_region"],
        true
    );
    // The projected RTO on AWS for this run, term by term, each with its source.
    let rto = &out["rto_budget"];
    assert_eq!(rto["scenario"]["to_region"], "eu-west-1", "{rto}");
    assert_eq!(rto["scenario"]["start"], "operator", "{rto}");
    let terms = rto["terms"].as_array().unwrap();
    assert!(
        terms
            .iter()
            .all(|t| t["sources"].as_array().is_some_and(|s| !s.is_empty())),
        "{rto}"
    );
    // An operator's run has no detection: it starts at StartExecution.
    assert!(terms.iter().all(|t| t["phase"] != "detection"), "{rto}");
    assert!(
        out["rto_budget_table"]
            .as_str()
            .is_some_and(|t| t.contains("RDS") || t.contains("rds")),
        "{out}"
    );
    assert_eq!(env.snapshot().await, before);
}

#[tokio::test]
async fn an_operator_request_starts_one_execution_per_request_id() {
    let env = Env::new().await;
    env.replicate_spec().await;
    env.all_healthy().await;
    let first = env.call(fixture("operator-request.json")).await.unwrap();
    let again = env.call(fixture("operator-request.json")).await.unwrap();
    assert_eq!(first["execution_name"], again["execution_name"]);
    assert_eq!(first["decision"]["to_region"], "eu-west-1");
    let execs = env.executions().await;
    assert_eq!(execs.len(), 1);
    assert_eq!(
        first["execution_arn"].as_str(),
        Some(execs[0].execution_arn.as_str())
    );
}

#[tokio::test]
async fn a_failover_is_decided_leased_fenced_and_recorded_in_the_arbiter_region() {
    let env = Env::new().await;
    env.replicate_spec().await;
    env.all_healthy().await;
    let request = fixture("step-decide.json")["request"].clone();
    let decision = env
        .call(json!({"step": "decide", "request": request}))
        .await
        .unwrap();
    assert_eq!(decision["to_region"], "eu-west-1");
    assert_eq!(decision["arbiter_region"], "eu-west-1");

    // acquire: the lease lives in the arbiter's table, nowhere else; a retry gets it back.
    let holder = "arn:aws:states:us-east-1:123456789012:execution:failover:run-a";
    let acquire = json!({"step": "acquire", "decision": decision, "holder": holder});
    let lease: Lease = serde_json::from_value(env.call(acquire.clone()).await.unwrap()).unwrap();
    assert_eq!(lease.epoch, 1);
    let again: Lease = serde_json::from_value(env.call(acquire).await.unwrap()).unwrap();
    assert_eq!(again, lease);
    assert_eq!(
        env.store("eu-west-1").get_lease("checkout").await.unwrap(),
        Some(lease.clone())
    );
    assert_eq!(
        env.store("us-east-1").get_lease("checkout").await.unwrap(),
        None
    );

    // Another run is refused while the lease is held.
    let err = env.acquire(&decision, "run-b").await.unwrap_err();
    assert_eq!(err.name(), ErrorName::LeaseHeld, "{err}");
    let err = env
        .call(fixture("operator-request.json"))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::LeaseHeld, "{err}");

    // finalize: the new roles and weights, fenced, in the arbiter's table.
    let promoted = UnixMillis::now().0;
    let timeline = json!([{"at": promoted, "step": "promote_data", "duration_ms": 5}]);
    let finalize = json!({"step": "finalize", "decision": decision, "lease": lease,
                          "timeline": timeline});
    let out: FinalizeOutput =
        serde_json::from_value(env.call(finalize.clone()).await.unwrap()).unwrap();
    assert!(out.released);
    assert_eq!(out.spec_version, 2);
    assert_eq!(out.run.outcome, RunOutcome::Succeeded);
    let steps: Vec<&str> = out.run.timeline.iter().map(|t| t.step.as_str()).collect();
    assert_eq!(steps, ["decide", "acquire", "promote_data", "finalize"]);
    let spec = env.store("eu-west-1").get_spec("checkout").await.unwrap();
    let roles: Vec<(&str, Role, u32)> = spec
        .regions
        .iter()
        .map(|r| (r.region.as_str(), r.role, r.weight))
        .collect();
    assert_eq!(
        roles,
        [
            ("us-east-1", Role::Secondary, 0),
            ("eu-west-1", Role::Primary, 60),
            ("ap-southeast-1", Role::Secondary, 40),
        ]
    );
    assert_eq!(
        env.store("eu-west-1").get_lease("checkout").await.unwrap(),
        None
    );
    let events = env
        .store("eu-west-1")
        .list_events("checkout")
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "failover_finalized");

    // A retried finalize ends in the same state.
    let retry: FinalizeOutput = serde_json::from_value(env.call(finalize).await.unwrap()).unwrap();
    assert!(!retry.released);
    let runs = env.store("eu-west-1").list_runs("checkout").await.unwrap();
    assert_eq!(runs.len(), 1);
    // (Compared with the stored run: a JSON 1.0 in `details` reads back as 1.)
    assert_eq!((retry.spec_version, &retry.run), (2, &runs[0]));
    assert_eq!(
        (&runs[0].id, &runs[0].timeline),
        (&out.run.id, &out.run.timeline)
    );
    assert_eq!(
        env.store("eu-west-1")
            .list_events("checkout")
            .await
            .unwrap()
            .len(),
        1
    );

    // Inside the cooldown, no other run takes the lease.
    let err = env.acquire(&decision, "run-c").await.unwrap_err();
    assert_eq!(err.name(), ErrorName::CooldownActive, "{err}");
    assert_eq!(
        env.store("eu-west-1").get_lease("checkout").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn a_holder_whose_lease_was_taken_over_cannot_finalize() {
    let env = Env::new().await;
    env.replicate_spec().await;
    env.all_healthy().await;
    let decision = env.decide().await.unwrap();
    let a = json!({"step": "acquire", "decision": decision, "holder": "run-a", "ttl_seconds": 1});
    let lease_a: Lease = serde_json::from_value(env.call(a).await.unwrap()).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let b = json!({"step": "acquire", "decision": decision, "holder": "run-b"});
    let lease_b: Lease = serde_json::from_value(env.call(b).await.unwrap()).unwrap();
    assert_eq!(lease_b.epoch, lease_a.epoch + 1);
    let err = env
        .call(json!({"step": "finalize", "decision": decision, "lease": lease_a}))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");
    let spec = env.store("eu-west-1").get_spec("checkout").await.unwrap();
    assert_eq!(spec.version, 1, "the stale holder wrote nothing");
}

#[tokio::test]
async fn release_records_a_failed_run_and_frees_the_lease_once() {
    let env = Env::new().await;
    env.replicate_spec().await;
    env.all_healthy().await;
    let decision = env.decide().await.unwrap();
    let lease = env.acquire(&decision, "run-a").await.unwrap();
    let release = json!({"step": "release", "decision": decision, "lease": lease,
                         "error": fixture("step-release.json")["error"]});
    let out = env.call(release.clone()).await.unwrap();
    assert_eq!(out["released"], true);
    assert_eq!(out["run"]["outcome"], "failed");
    let out = env.call(release).await.unwrap();
    assert_eq!(out["released"], false);
    let arbiter = env.store("eu-west-1");
    assert_eq!(arbiter.get_lease("checkout").await.unwrap(), None);
    let runs = arbiter.list_runs("checkout").await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].outcome, RunOutcome::Failed);
    assert_eq!(arbiter.get_spec("checkout").await.unwrap().version, 1);
    // A failed run starts no cooldown: another run may try.
    env.acquire(&decision, "run-b").await.unwrap();
}
