//! The local drill's chain in CI (the same code as `scripts/drill`: `harness::drill`),
//! in the twin, and a task that times out once in a failover run is retried. Two
//! failovers in a row and a failover DNS does not follow are in `drill_verify.rs`, what
//! alarms start (and must not) in `drill_alarms.rs`: three binaries, so CI runs them
//! side by side.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use harness::drill::{self, Drill, DrillOptions};
use serde_json::json;

/// One drill at a time in this binary: each runs a whole world (moto, the twin, cargo
/// lambda watch) on the twin's clock, and CI already runs this binary beside two others
/// (scripts/run_tests.py); more at once on two cores would test the machine, not the drill.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The drill's chain up to the end of the failover: baseline, break, the alarm firing
/// by itself, the execution it starts, followed to its end.
async fn fail_over(d: &mut Drill) {
    d.fail_over().await.unwrap();
}

#[tokio::test]
async fn the_drill_fails_over_from_a_broken_primary_and_fails_back_end_to_end() {
    let _one = ONE_AT_A_TIME.lock().await;
    let report = drill::run(&DrillOptions::default()).await.unwrap();
    println!("{}", report.render());
    assert!(report.ok(), "failed checks: {:#?}", report.failures());
    // Every stage of the chain shows in the timeline, the twin's and the machines'.
    for step in [
        "scheduled probes (EventBridge)",
        "break us-east-1",
        "  twin: fault.set",
        "  twin: cloudwatch.alarm",
        "  twin: cloudwatch.action",
        "alarm fires, failover starts",
        "  failover: Decide",
        "  failover: Acquire",
        "  failover: RdsPromote",
        "  failover: RdsStatus",
        "  twin: rds.status",
        "  failover: ShiftTraffic",
        "  twin: route53.health",
        "  failover: Probe",
        "  failover: Finalize",
        "client sees the failover",
        "hold: 5 switch periods",
        "repair us-east-1",
        "global-table replication (harness)",
        "  failback: Reprotect",
        "  failback: CheckLag",
        "  failback: RdsMove",
        "  failback: Shift",
        "  failback: VerifyDns",
        "  failback: Finalize",
        "DNS after the failback",
    ] {
        assert!(
            report.timeline.iter().any(|r| r.step == step),
            "no `{step}` in the timeline:\n{}",
            report.render()
        );
    }
    // The projection on AWS rides in the report, each term with its source.
    let budget = report
        .rto_budget
        .as_ref()
        .expect("the RTO budget is projected");
    assert!(budget.terms.iter().all(|t| !t.sources.is_empty()));
    assert!(report.render().contains("Projected on AWS"));
    let client = report.client_rto_ms.expect("client RTO measured");
    let internal = report.rto_ms.expect("internal RTO measured");
    let detection = report.detection_ms.expect("detection measured");
    let alarm = report.alarm_ms.expect("alarm measured");
    assert!(
        detection < alarm,
        "detection {detection} ms, alarm {alarm} ms"
    );
    assert!(alarm < client, "alarm {alarm} ms, client RTO {client} ms");
    assert!(client < report.rto_objective_ms, "client RTO {client} ms");
    assert!(
        internal < report.rto_objective_ms,
        "internal RTO {internal} ms"
    );
    assert!(
        report
            .local_inputs
            .iter()
            .any(|i| i.contains("twin.minute_seconds")),
        "{:?}",
        report.local_inputs
    );
    // The call log: traffic moved through the data plane only. traffic-shifter sent
    // nothing to the failed Region, and nobody changed Route 53 records (a control-plane
    // call served from us-east-1) during the unplanned failover.
    let calls = &report.calls_to_failed;
    assert!(
        calls
            .iter()
            .any(|c| c.caller.as_deref() == Some("health-probe")),
        "the call log sees the functions' calls: {calls:#?}"
    );
    let shifter: Vec<_> = calls
        .iter()
        .filter(|c| c.caller.as_deref() == Some("traffic-shifter"))
        .collect();
    assert!(shifter.is_empty(), "{shifter:#?}");
    let record_changes: Vec<_> = calls
        .iter()
        .filter(|c| c.operation.as_deref() == Some("ChangeResourceRecordSets"))
        .collect();
    assert!(record_changes.is_empty(), "{record_changes:#?}");
}

/// A Lambda task that runs past its timeout (a slow dependency, a Region that hangs)
/// fails with `Sandbox.Timedout`. The machines retry it (the steps are idempotent); the
/// first wave only caught it, compensating after the database had been promoted.
#[tokio::test]
async fn a_task_that_times_out_once_is_retried_and_the_failover_completes() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    d.world
        .twin
        // Short enough to keep the test quick, long enough that a loaded machine's
        // real run (a few hundred ms, seconds under load) does not time out too.
        .settings(json!({"lambda.timeout_seconds.traffic-shifter": 8}))
        .await
        .unwrap();
    d.world
        .twin
        .post(
            "lambda/fault",
            json!({"function": "traffic-shifter", "mode": "timeout", "count": 1}),
        )
        .await
        .unwrap();
    fail_over(&mut d).await;
    assert_eq!(
        d.report.failover_task_errors,
        ["Sandbox.Timedout"],
        "{}",
        d.report.render()
    );
    d.verify_failover().await.unwrap();
    assert!(d.report.ok(), "failed checks: {:#?}", d.report.failures());
}
