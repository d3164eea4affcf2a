//! The local drill's chain in CI (the same code as `scripts/drill`: `harness::drill`),
//! plus what must hold when things go wrong: an alarm storm starts one execution, and a
//! promotion refused mid-way leaves the lease released and the spec as it was.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use harness::drill::{self, Drill, DrillOptions, FAILED, Fault, SURVIVOR, WORKLOAD};
use lifeboat::Store;
use lifeboat::store::RunOutcome;
use serde_json::{Value, json};

#[tokio::test]
async fn the_drill_fails_over_from_a_broken_primary_and_fails_back_end_to_end() {
    let report = drill::run(&DrillOptions::default()).await.unwrap();
    println!("{}", report.render());
    assert!(report.ok(), "failed checks: {:#?}", report.failures());
    // Every stage of the chain shows in the timeline, the machine's states included.
    for step in [
        "probe round (scheduled event)",
        "alarm → ALARM (SetAlarmState)",
        "alarm action → failover-executor",
        "  failover: Decide",
        "  failover: Acquire",
        "  failover: RdsPromote",
        "  failover: RdsStatus",
        "  failover: ShiftTraffic",
        "  failover: Probe",
        "  failover: Finalize",
        "repair us-east-1",
        "global-table replication (harness)",
        "  failback: Reprotect",
        "  failback: CheckLag",
        "  failback: RdsMove",
        "  failback: Shift",
        "  failback: VerifyDns",
        "  failback: Finalize",
    ] {
        assert!(
            report.timeline.iter().any(|r| r.step == step),
            "no `{step}` in the timeline:\n{}",
            report.render()
        );
    }
    let rto = report.rto_ms.expect("RTO measured");
    let detection = report.detection_ms.expect("detection measured");
    assert!(detection < rto, "detection {detection} ms, RTO {rto} ms");
    assert!(rto < report.rto_objective_ms, "RTO {rto} ms");
}

/// The EventBridge "CloudWatch Alarm State Change" event for the same state change as
/// the Lambda alarm action `payload`.
fn eventbridge_form(payload: &Value) -> Value {
    let data = &payload["alarmData"];
    json!({
        "version": "0",
        "id": "c4c1c1c9-6542-e61b-6ef0-8c4d36933a92",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": payload["accountId"],
        "time": payload["time"],
        "region": payload["region"],
        "resources": [payload["alarmArn"]],
        "detail": {
            "alarmName": data["alarmName"],
            "state": data["state"],
            "previousState": data["previousState"],
            "configuration": data["configuration"],
        }
    })
}

#[tokio::test]
async fn an_alarm_storm_starts_one_failover_execution() {
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    d.baseline().await.unwrap();
    assert!(d.break_and_detect().await.unwrap());
    let payload = d.alarm().await.unwrap().expect("the alarm fires");

    // CloudWatch retries an alarm action until delivered, and an EventBridge rule may
    // deliver the same change too: 24 + 8 concurrent deliveries.
    let bridge = eventbridge_form(&payload);
    let world = &d.world;
    let mut calls = Vec::new();
    for i in 0..32 {
        let event = if i % 4 == 3 { &bridge } else { &payload };
        calls.push(world.invoke("failover-executor", event));
    }
    let answers = futures_util::future::join_all(calls).await;
    let mut names = std::collections::BTreeSet::new();
    for answer in &answers {
        let answer = answer.as_ref().unwrap();
        let action = &answer["actions"][0];
        assert!(
            ["started", "already_exists", "ignored"].contains(&action["outcome"].as_str().unwrap()),
            "{answer}"
        );
        if action["outcome"] == "ignored" {
            // Only a failover already holding the lease may make a late delivery moot.
            assert_eq!(action["ignored"], "failover_in_progress", "{answer}");
        } else {
            names.insert(action["execution_name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(names.len(), 1, "{names:?}");
    let executions = world.failover_executions().await.unwrap();
    assert_eq!(executions.len(), 1, "{executions:?}");

    d.await_failover(&executions[0]).await.unwrap();
    d.verify_failover().await.unwrap();
    assert!(d.report.ok(), "failed checks: {:#?}", d.report.failures());
    // Deliveries after the end start nothing new either (the name is taken).
    let late = d.world.invoke("failover-executor", &payload).await.unwrap();
    assert_ne!(late["actions"][0]["outcome"], "started", "{late}");
    assert_eq!(d.world.failover_executions().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_refused_promotion_releases_the_lease_and_leaves_the_spec_as_it_was() {
    let opts = DrillOptions {
        fault: Some(Fault::PromotionRefused),
        ..DrillOptions::default()
    };
    let mut d = Drill::start(&opts).await.unwrap();
    let before = d.world.store.get_spec(WORKLOAD).await.unwrap();
    d.baseline().await.unwrap();
    assert!(d.break_and_detect().await.unwrap());
    let payload = d.alarm().await.unwrap().expect("the alarm fires");
    let execution = d.deliver(&payload).await.unwrap().expect("an execution");
    d.await_failover(&execution).await.unwrap();

    assert_eq!(d.report.execution_status.as_deref(), Some("FAILED"));
    let (error, cause) = d.report.execution_error.clone().unwrap();
    assert_eq!(error, "FailoverFailed", "{cause}");
    // The spec is exactly as it was: no role, weight or version moved.
    let after = d.world.store.get_spec(WORKLOAD).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(
        after.region(FAILED).unwrap().role,
        lifeboat::model::Role::Primary
    );
    // The lease is released and the run recorded as failed, naming the refusal.
    assert_eq!(d.world.store.get_lease(WORKLOAD).await.unwrap(), None);
    let runs = d.world.store.list_runs(WORKLOAD).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].outcome, RunOutcome::Failed);
    let details = runs[0].details.to_string();
    assert!(details.contains("ResourceNotFound"), "{details}");
    // Traffic never moved: the failed Region's switch is still on.
    let switch = after
        .region(FAILED)
        .unwrap()
        .routing_switch
        .clone()
        .unwrap();
    let (state, _) = harness::route53::alarm(&d.world.config, &switch.region, &switch.alarm_name)
        .await
        .unwrap();
    assert_eq!(state, "OK");
    assert_eq!(switch.region, SURVIVOR);
}
