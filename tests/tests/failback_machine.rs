//! `statemachines/failback.asl.json` executed by moto's Step Functions, its Lambda tasks
//! running our real binaries under `cargo lambda watch`, from a seeded post-failover
//! state: us-east-1 failed over to eu-west-1 (roles, weights, run record, us-east-1's
//! routing switch off).
//!
//! The world has no RDS instances and no buckets (replica-promoter answers
//! `nothing_to_do` for those branches: moto's PromoteReadReplica never completes, see
//! README, "Running without AWS"); routing is real (Route 53 weighted records, health checks and switch
//! alarms from `harness::route53::seed`), and the endpoints are loopback servers probed
//! by the real health-probe.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use failover_executor::decide::{apply_changes, decide};
use failover_executor::request::{FailoverRequest, Mode};
use harness::lambda::{LambdaWatch, free_port};
use harness::machines;
use harness::moto::{MotoOptions, MotoServer};
use health_probe::loopback::LoopbackServer;
use lifeboat::aws::for_region;
use lifeboat::store::{RunKind, RunOutcome, RunRecord, Verdict};
use lifeboat::{DynamoStore, Store, UnixMillis, WorkloadSpec};
use serde_json::{Value, json};

/// Where the machine, the functions and the table the failback uses live: the arbiter
/// of a failover of eu-west-1 (the first Region of the spec that is not eu-west-1; moto
/// replicates nothing between Regions, so everything is in this one).
const REGION: &str = "us-east-1";

struct World {
    _moto: MotoServer,
    _watch: LambdaWatch,
    _servers: Vec<LoopbackServer>,
    config: aws_types::SdkConfig,
    store: DynamoStore,
    sfn: aws_sdk_sfn::Client,
    machine: String,
    /// The spec before the failover (roles and weights to restore).
    original: WorkloadSpec,
    /// The spec as the failover left it.
    failed_over: WorkloadSpec,
}

async fn world() -> World {
    let watch_port = free_port().unwrap();
    let moto = MotoServer::start_with(&MotoOptions {
        lambda_endpoint: Some(format!("http://127.0.0.1:{watch_port}")),
        execute_state_machines: true,
        ..MotoOptions::default()
    })
    .unwrap();
    let config = moto.sdk_config(REGION).await;
    let table = harness::table::unique_name("failback");
    harness::table::create(&config, &table, &["eu-west-1", "ap-southeast-1"])
        .await
        .unwrap();

    let mut spec = harness::world::example_spec().unwrap();
    let mut servers = Vec::new();
    for r in &mut spec.regions {
        let server = LoopbackServer::start().await.unwrap();
        r.endpoints[0].url = server.url("/health");
        r.endpoints[0].timeout_ms = 500;
        r.databases.clear();
        r.buckets.clear();
        r.alarms.clear();
        // Nor its deploy gates' alarms (the failback's soak reads them).
        if let Some(d) = &mut r.deploy {
            d.alarms.clear();
        }
        servers.push(server);
    }
    let spec = harness::route53::seed(&moto, &spec, &table).await.unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &table);
    let original = store.create_spec(&spec).await.unwrap();

    // The failover that happened: us-east-1 -> eu-west-1, decided as the executor does.
    let now = UnixMillis::now();
    let health =
        |region: &str, verdict: Verdict| harness::world::settled_health(region, verdict, None, now);
    let req = FailoverRequest {
        workload: "checkout".into(),
        failed_region: None,
        target_region: Some("eu-west-1".into()),
        mode: Mode::Unplanned,
        dry_run: false,
        accept_data_loss: false,
        reason: "us-east-1 outage".into(),
        requested_by: "alice".into(),
        request_id: None,
        trigger: None,
        timing: None,
        drill: false,
        force: false,
    };
    let before = [
        health("us-east-1", Verdict::Unhealthy),
        health("eu-west-1", Verdict::Healthy),
        health("ap-southeast-1", Verdict::Healthy),
    ];
    let d = decide(&original, &before, &req, "eu-west-1", now).unwrap();
    let mut next = original.clone();
    apply_changes(&mut next, &d.changes).unwrap();
    let failed_over = store.put_spec(&next, None).await.unwrap();
    let run = RunRecord {
        id: "checkout-op-failover-1".into(),
        kind: RunKind::Failover,
        started_at: UnixMillis(now.0 - 7_200_000),
        finished_at: Some(UnixMillis(now.0 - 7_100_000)),
        outcome: RunOutcome::Succeeded,
        timeline: vec![],
        measured_rto_ms: Some(42_000),
        measured_rpo_ms: None,
        rpo_simulated: false,
        details: json!({"operation": "failover", "from_region": "us-east-1",
                        "to_region": "eu-west-1", "changes": d.changes}),
    };
    store.put_run("checkout", &run, None).await.unwrap();
    // The failover flipped us-east-1's routing switch off (it lives in eu-west-1).
    let switch = original.regions[0].routing_switch.clone().unwrap();
    let cw = aws_sdk_cloudwatch::Client::new(&for_region(&config, &switch.region));
    cw.put_metric_data()
        .namespace(&switch.namespace)
        .metric_data(
            aws_sdk_cloudwatch::types::MetricDatum::builder()
                .metric_name(&switch.metric_name)
                .set_dimensions(Some(
                    switch
                        .dimensions
                        .iter()
                        .map(|d| {
                            aws_sdk_cloudwatch::types::Dimension::builder()
                                .name(&d.name)
                                .value(&d.value)
                                .build()
                        })
                        .collect(),
                ))
                .value(0.0)
                .build(),
        )
        .send()
        .await
        .unwrap();
    cw.set_alarm_state()
        .alarm_name(&switch.alarm_name)
        .state_value(aws_sdk_cloudwatch::types::StateValue::Alarm)
        .state_reason("failed over by the test's seeded failover")
        .send()
        .await
        .unwrap();
    // us-east-1 is back: every Region healthy.
    for r in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
        store
            .put_health("checkout", &health(r, Verdict::Healthy))
            .await
            .unwrap();
    }

    let sfn = aws_sdk_sfn::Client::new(&config);
    let machine = machines::create(&sfn, "failback", REGION).await.unwrap();
    let watch = LambdaWatch::start_stack(
        watch_port,
        &moto,
        REGION,
        &table,
        &[],
        &[
            "failover-executor",
            "replica-promoter",
            "traffic-shifter",
            "deploy-wave",
            "health-probe",
        ],
    )
    .unwrap();
    World {
        _moto: moto,
        _watch: watch,
        _servers: servers,
        config,
        store,
        sfn,
        machine,
        original,
        failed_over,
    }
}

fn input() -> Value {
    let mut v: Value =
        serde_json::from_str(include_str!("../../events/failback/operator-request.json")).unwrap();
    v["timing"] =
        json!({"poll_seconds": 1, "verify_max_polls": 5, "lag_max_polls": 5, "soak_seconds": 2});
    v
}

async fn run(w: &World, name: &str, input: &Value) -> machines::Finished {
    let exec = w
        .sfn
        .start_execution()
        .state_machine_arn(&w.machine)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .unwrap();
    machines::wait(&w.sfn, exec.execution_arn(), Duration::from_secs(240))
        .await
        .unwrap()
}

fn roles(spec: &WorkloadSpec) -> Vec<(String, lifeboat::model::Role, u32)> {
    spec.regions
        .iter()
        .map(|r| (r.region.clone(), r.role, r.weight))
        .collect()
}

/// Route 53 weights by set identifier.
/// The state of the home Region's routing-switch alarm in the twin (`ALARM`: off).
async fn home_switch_alarm(w: &World) -> String {
    let switch = w
        .original
        .region("us-east-1")
        .unwrap()
        .routing_switch
        .clone()
        .unwrap();
    harness::route53::alarm(&w.config, &switch.region, &switch.alarm_name)
        .await
        .unwrap()
        .0
}

async fn dns_weights(w: &World) -> BTreeMap<String, i64> {
    let r53 = aws_sdk_route53::Client::new(&for_region(&w.config, "us-east-1"));
    let zone = &w.original.regions[0].dns[0].hosted_zone_id;
    let out = r53
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .unwrap();
    out.resource_record_sets()
        .iter()
        .filter_map(|r| Some((r.set_identifier()?.to_owned(), r.weight()?)))
        .collect()
}

#[tokio::test]
async fn a_failback_restores_roles_and_returns_traffic_in_verified_stages() {
    let w = world().await;
    assert_ne!(roles(&w.failed_over), roles(&w.original));
    let end = run(&w, "failback-1", &input()).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    let out: Value = serde_json::from_str(end.output.as_deref().unwrap()).unwrap();
    assert_eq!(out["released"], true, "{out:#}");

    // Roles and weights as before the failover; the lease released.
    let spec = w.store.get_spec("checkout").await.unwrap();
    assert_eq!(roles(&spec), roles(&w.original));
    assert!(spec.check().is_ok());
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), None);

    // The run: kind failback, the failover it undid, and the stages in order, each
    // shift followed by its verification before the next shift.
    let runs = w.store.list_runs("checkout").await.unwrap();
    let fb = runs.iter().find(|r| r.id == "failback-1").unwrap();
    assert_eq!(
        (fb.kind, fb.outcome),
        (RunKind::Failback, RunOutcome::Succeeded)
    );
    assert_eq!(
        fb.details["failback"]["source_run"],
        "checkout-op-failover-1"
    );
    assert_eq!(fb.measured_rto_ms, None);
    let stages: Vec<(&str, &str)> = fb
        .timeline
        .iter()
        .filter(|e| e.step.ends_with("_stage"))
        .map(|e| (e.step.as_str(), e.detail.as_deref().unwrap_or("")))
        .collect();
    let steps: Vec<&str> = stages.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        steps,
        [
            "shift_stage",
            "verify_stage",
            "shift_stage",
            "verify_stage",
            "shift_stage",
            "verify_stage",
            "shift_stage",
            "verify_stage"
        ],
        "{:#?}",
        fb.timeline
    );
    for (i, pct) in [10, 25, 50, 100].iter().enumerate() {
        let (_, detail) = stages[2 * i];
        assert!(
            detail.starts_with(&format!("stage {i}: {pct}% of the way back")),
            "{detail}"
        );
        assert!(
            stages[2 * i + 1]
                .1
                .starts_with(&format!("stage {i} verified"))
        );
    }
    for step in [
        "decide",
        "acquire",
        "reprotect",
        "wait_for_replication",
        "promote_data",
        "finalize",
    ] {
        assert!(
            fb.timeline.iter().any(|e| e.step == step),
            "{step}: {:#?}",
            fb.timeline
        );
    }

    // DNS: the weighted records at the restored weights; us-east-1's switch on again.
    let weights = dns_weights(&w).await;
    assert_eq!(
        weights,
        BTreeMap::from([
            ("us-east-1".to_owned(), 50),
            ("eu-west-1".to_owned(), 30),
            ("ap-southeast-1".to_owned(), 20)
        ])
    );
    let switch = w.original.regions[0].routing_switch.clone().unwrap();
    let cw = aws_sdk_cloudwatch::Client::new(&for_region(&w.config, &switch.region));
    let alarms = cw
        .describe_alarms()
        .alarm_names(&switch.alarm_name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        alarms.metric_alarms()[0].state_value(),
        Some(&aws_sdk_cloudwatch::types::StateValue::Ok)
    );
    let events = w.store.list_events("checkout").await.unwrap();
    assert!(events.iter().any(|e| e.action == "failback_finalized"));

    // Nothing left to fail back: a second failback is refused and changes nothing.
    let end = run(&w, "failback-2", &input()).await;
    assert_eq!(end.status, ExecutionStatus::Failed);
    assert_eq!(end.error.as_ref().unwrap().0, "FailbackRefused", "{end:?}");
    assert_eq!(w.store.get_spec("checkout").await.unwrap(), spec);
}

#[tokio::test]
async fn a_failure_mid_failback_compensates_releases_the_lease_and_keeps_the_spec() {
    let w = world().await;
    // Break the traffic step: ap-southeast-1's weighted record is gone, so the first
    // shift stage fails (ResourceNotFound) after the lease, re-protection, the wait for
    // replication and the writer move.
    let r53 = aws_sdk_route53::Client::new(&for_region(&w.config, "us-east-1"));
    let zone = w.original.regions[0].dns[0].hosted_zone_id.clone();
    let sets = r53
        .list_resource_record_sets()
        .hosted_zone_id(&zone)
        .send()
        .await
        .unwrap();
    let apse1 = sets
        .resource_record_sets()
        .iter()
        .find(|r| r.set_identifier() == Some("ap-southeast-1"))
        .unwrap()
        .clone();
    r53.change_resource_record_sets()
        .hosted_zone_id(&zone)
        .change_batch(
            aws_sdk_route53::types::ChangeBatch::builder()
                .changes(
                    aws_sdk_route53::types::Change::builder()
                        .action(aws_sdk_route53::types::ChangeAction::Delete)
                        .resource_record_set(apse1)
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    let weights_before = dns_weights(&w).await;
    let end = run(&w, "failback-broken", &input()).await;
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    // Nothing had moved before the first stage failed (this world has no databases
    // and no buckets; the writer move had nothing to do): `failed`, and the cause
    // says so truthfully.
    let (error, cause) = end.error.clone().unwrap();
    assert_eq!(error, "FailbackFailed", "{end:?}");
    assert!(cause.contains("before anything had moved"), "{cause}");

    // The twin is as the failover left it: DNS weights, the home Region's switch off;
    // and so is the spec, which still says so. Lease released.
    assert_eq!(dns_weights(&w).await, weights_before);
    let state = home_switch_alarm(&w).await;
    assert_eq!(state, "ALARM", "the home Region's switch stayed off");
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), None);
    let spec = w.store.get_spec("checkout").await.unwrap();
    assert_eq!(spec, w.failed_over);
    assert!(spec.check().is_ok());
    let runs = w.store.list_runs("checkout").await.unwrap();
    let fb = runs.iter().find(|r| r.id == "failback-broken").unwrap();
    assert_eq!(
        (fb.kind, fb.outcome),
        (RunKind::Failback, RunOutcome::Failed)
    );
    let moved = &fb.details["outcome"]["moved"];
    assert_eq!(moved["databases"], json!([]), "{moved}");
    assert_eq!(moved["buckets"], json!([]), "{moved}");
    assert_eq!(moved["switches"], json!([]), "{moved}");
    assert!(moved.get("weights").is_none() && moved.get("spec_version").is_none());
    let error = fb.details["outcome"]["error"].to_string();
    assert!(error.contains("ResourceNotFound"), "{error}");
    for step in [
        "acquire",
        "reprotect",
        "wait_for_replication",
        "promote_data",
        "shift_traffic",
    ] {
        assert!(
            fb.timeline.iter().any(|e| e.step == step),
            "{step}: {:#?}",
            fb.timeline
        );
    }
    assert!(!fb.timeline.iter().any(|e| e.step == "shift_stage"));
    let events = w.store.list_events("checkout").await.unwrap();
    assert!(events.iter().any(|e| e.action == "failback_failed"));
    // The failover it would undo is still there to fail back from once fixed.
    assert!(runs.iter().any(|r| r.id == "checkout-op-failover-1"));
}

/// Publishes `metrics` (name, values) for the home Region's live slot in `Checkout/Api`
/// every 250 ms until aborted: the application's own request metrics, which the soak's
/// gates read.
fn publish_home_slot(
    w: &World,
    metrics: Vec<(&'static str, Vec<f64>)>,
) -> tokio::task::JoinHandle<()> {
    let cw = aws_sdk_cloudwatch::Client::new(&for_region(&w.config, "us-east-1"));
    tokio::spawn(async move {
        loop {
            let mut req = cw.put_metric_data().namespace("Checkout/Api");
            for (name, values) in &metrics {
                let mut d = aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name(*name)
                    .set_values(Some(values.clone()))
                    .timestamp(aws_smithy_types::DateTime::from(
                        std::time::SystemTime::now(),
                    ));
                for (k, v) in [("Region", "us-east-1"), ("Slot", "blue")] {
                    d = d.dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name(k)
                            .value(v)
                            .build(),
                    );
                }
                req = req.metric_data(d.build());
            }
            let _ = req.send().await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    })
}

/// A failback stage soaks before the next one, under the deploy-style gates: here the
/// home Region answers DNS and its probes, but 30 % of its requests fail (its live
/// slot's `Checkout/Api` metrics, published throughout), so the soak after the first
/// stage says `rollback` and the failback stops there, compensated, instead of moving
/// the rest of the traffic onto a Region that fails its users. Before the soak step the
/// stages moved on as soon as DNS and the probes agreed.
#[tokio::test]
async fn a_home_region_failing_its_soak_gates_stops_the_failback() {
    let w = world().await;
    let publisher = publish_home_slot(
        &w,
        vec![("Requests", vec![1000.0]), ("Errors5xx", vec![300.0])],
    );
    let end = run(&w, "failback-soak", &input()).await;
    publisher.abort();
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    // The first stage had moved traffic: the run is `partial`, not `failed`, and its
    // record says exactly what moved, as the twin shows it.
    let (error, cause) = end.error.clone().unwrap();
    assert_eq!(error, "FailbackPartial", "{end:?}");
    assert!(cause.contains("partial"), "{cause}");
    let runs = w.store.list_runs("checkout").await.unwrap();
    let fb = runs.iter().find(|r| r.id == "failback-soak").unwrap();
    assert_eq!(fb.outcome, RunOutcome::Partial);
    let moved = &fb.details["outcome"]["moved"];
    let dns = dns_weights(&w).await;
    assert_ne!(
        dns,
        BTreeMap::from_iter(
            w.failed_over
                .regions
                .iter()
                .map(|r| (r.region.clone(), i64::from(r.weight)))
        ),
        "the first stage moved DNS"
    );
    let recorded: BTreeMap<String, i64> =
        serde_json::from_value(moved["weights"].clone()).unwrap_or_else(|e| panic!("{e}: {moved}"));
    assert_eq!(
        recorded, dns,
        "the record's weights are what Route 53 holds"
    );
    // The home Region's switch: recorded as on exactly when the twin's alarm says so.
    let state = home_switch_alarm(&w).await;
    let home_on = moved["switches"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["controls"] == "us-east-1" && s["position"] == "on");
    assert_eq!(home_on, state == "OK", "{moved} vs alarm {state}");
    // No database or bucket in this world; the spec unchanged, and the record says so.
    assert_eq!(moved["databases"], json!([]), "{moved}");
    assert_eq!(moved["buckets"], json!([]), "{moved}");
    assert_eq!(w.store.get_spec("checkout").await.unwrap(), w.failed_over);
    assert!(moved.get("spec_version").is_none(), "{moved}");
    assert!(
        fb.details["outcome"]["summary"]
            .as_str()
            .unwrap()
            .ends_with("spec unchanged")
    );
    let events = w.store.list_events("checkout").await.unwrap();
    assert!(events.iter().any(|e| e.action == "failback_partial"));
    let error = fb.details["outcome"]["error"].to_string();
    assert!(error.contains("VerificationFailed"), "{error}");
    assert!(
        error.contains("soak") && error.contains("error rate"),
        "{error}"
    );
    // It stopped after the first stage: one shift, verified, then the soak.
    let shifts = fb
        .timeline
        .iter()
        .filter(|e| e.step == "shift_stage")
        .count();
    assert_eq!(shifts, 1, "{:#?}", fb.timeline);
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), None);
}

/// The latency gate: no request fails, but the home Region's p95 is 2.5 s (every
/// `LatencyMs` sample), over the 500-ms rollback threshold, so the soak after the first
/// stage stops the failback. Before the twin answered percentiles (moto's GetMetricData
/// has none: it failed with a 500 on any pNN query over data), this gate could not be
/// shown outside aws-smithy-mocks.
#[tokio::test]
async fn a_home_region_too_slow_in_its_soak_stops_the_failback() {
    let w = world().await;
    let publisher = publish_home_slot(
        &w,
        vec![
            ("Requests", vec![1000.0]),
            ("Errors5xx", vec![0.0]),
            ("LatencyMs", vec![2500.0; 20]),
        ],
    );
    let end = run(&w, "failback-slow", &input()).await;
    publisher.abort();
    assert_eq!(end.status, ExecutionStatus::Failed, "{end:?}");
    let runs = w.store.list_runs("checkout").await.unwrap();
    let fb = runs.iter().find(|r| r.id == "failback-slow").unwrap();
    let error = fb.details["outcome"]["error"].to_string();
    assert!(
        error.contains("soak") && error.contains("p95 2500 ms over the rollback threshold"),
        "{error}"
    );
    let shifts = fb
        .timeline
        .iter()
        .filter(|e| e.step == "shift_stage")
        .count();
    assert_eq!(shifts, 1, "{:#?}", fb.timeline);
}
