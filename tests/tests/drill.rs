//! The local drill's chain in CI (the same code as `scripts/drill`: `harness::drill`),
//! in the twin, plus what must hold when things go wrong: an alarm storm (the twin's
//! duplicate-delivery fault) starts one execution, and a promotion refused mid-way
//! leaves the lease released and the spec as it was.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use harness::drill::{self, Drill, DrillOptions, FAILED, Fault, SURVIVOR, WORKLOAD};
use lifeboat::Store;
use lifeboat::store::RunOutcome;
use serde_json::json;

/// One drill at a time: each runs a whole world (moto, the twin, cargo lambda watch) on
/// the twin's clock, and three at once on two cores would test the machine, not the drill.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The drill's chain up to the end of the failover: baseline, break, the alarm firing
/// by itself, the execution it starts, followed to its end.
async fn fail_over(d: &mut Drill) {
    d.baseline().await.unwrap();
    assert!(d.break_and_detect().await.unwrap());
    let execution = d
        .await_alarm_execution()
        .await
        .unwrap()
        .expect("the alarm starts a failover");
    d.await_failover(&execution).await.unwrap();
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

#[tokio::test]
async fn an_alarm_storm_starts_one_failover_execution() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    // Asynchronous delivery is at least once: every alarm action and EventBridge
    // delivery arrives eight more times, and both paths deliver the same change.
    d.world
        .twin
        .post("delivery", json!({"duplicates": 8}))
        .await
        .unwrap();
    fail_over(&mut d).await;
    d.verify_failover().await.unwrap();
    assert!(d.report.ok(), "failed checks: {:#?}", d.report.failures());
    let delivered = d.world.twin.get("delivery").await.unwrap();
    assert!(
        delivered["attempts"].as_u64().unwrap_or(0) >= 9,
        "{delivered}"
    );
    // Deliveries after the end start nothing new either (the name is taken), however
    // long the alarm stays in ALARM.
    tokio::time::sleep(std::time::Duration::from_secs_f64(
        3.0 * d.opts.minute_seconds,
    ))
    .await;
    let executions = d.world.failover_executions().await.unwrap();
    assert_eq!(executions.len(), 1, "{executions:?}");
}

#[tokio::test]
async fn a_refused_promotion_releases_the_lease_and_leaves_the_spec_as_it_was() {
    let _one = ONE_AT_A_TIME.lock().await;
    let opts = DrillOptions {
        fault: Some(Fault::PromotionRefused),
        ..DrillOptions::default()
    };
    let mut d = Drill::start(&opts).await.unwrap();
    let before = d.world.store.get_spec(WORKLOAD).await.unwrap();
    fail_over(&mut d).await;

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

/// A routing switch follows Lifeboat's (or an operator's) decision, never the Region's
/// health: switching the healthy primary off by hand turns its switch alarm to ALARM,
/// and that must start nothing. The first wave's EventBridge rule matched every
/// `lifeboat-<workload>-` alarm and the executor admitted the primary's switch alarm,
/// so this started an unplanned failover of a healthy primary.
#[tokio::test]
async fn switching_the_primary_off_by_hand_starts_no_failover() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    d.baseline().await.unwrap();
    let switch = d
        .world
        .spec
        .region(FAILED)
        .unwrap()
        .routing_switch
        .clone()
        .unwrap();
    let cw = aws_sdk_cloudwatch::Client::new(&lifeboat::aws::for_region(
        &d.world.config,
        &switch.region,
    ));
    lifeboat::switch::put(&cw, &switch, false).await.unwrap();
    let minute = std::time::Duration::from_secs_f64(d.opts.minute_seconds);
    let deadline = std::time::Instant::now() + minute * 6;
    loop {
        let (state, _) =
            harness::route53::alarm(&d.world.config, &switch.region, &switch.alarm_name)
                .await
                .unwrap();
        if state == "ALARM" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the switch alarm never went to ALARM: {state}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    // Time for every delivery (the alarm's EventBridge event, retries) to land.
    tokio::time::sleep(minute * 3).await;
    assert_eq!(
        d.world.failover_executions().await.unwrap(),
        Vec::<String>::new()
    );
    let spec = d.world.store.get_spec(WORKLOAD).await.unwrap();
    assert_eq!(
        spec.region(FAILED).unwrap().role,
        lifeboat::model::Role::Primary
    );
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
        .settings(json!({"lambda.timeout_seconds.traffic-shifter": 3}))
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

/// An alarm that Lifeboat's own probes do not bear out — a second, half-broken prober
/// or a stray metric publishing `RegionHealthy` 0 for a primary that serves — must not
/// fail over a healthy primary (a promotion cannot be undone): the decision refuses with
/// `FailoverUnwarranted`, nothing moves, and the refusal is audited for whoever is paged.
/// On the code before this commit the same alarm failed the healthy primary over.
#[tokio::test]
async fn an_alarm_the_probes_do_not_bear_out_fails_nothing_over() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    d.baseline().await.unwrap();
    let before = d.world.store.get_spec(WORKLOAD).await.unwrap();
    let cw = aws_sdk_cloudwatch::Client::new(&d.world.config);
    let minute = std::time::Duration::from_secs_f64(d.opts.minute_seconds);
    let deadline = std::time::Instant::now() + minute * 10;
    let execution = loop {
        // The stray metric: RegionHealthy 0 for the primary, beside the real prober's 1.
        cw.put_metric_data()
            .namespace("Lifeboat")
            .metric_data(
                aws_sdk_cloudwatch::types::MetricDatum::builder()
                    .metric_name("RegionHealthy")
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("Workload")
                            .value(WORKLOAD)
                            .build(),
                    )
                    .dimensions(
                        aws_sdk_cloudwatch::types::Dimension::builder()
                            .name("Region")
                            .value(FAILED)
                            .build(),
                    )
                    .value(0.0)
                    .storage_resolution(60)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        if let Some(e) = d.world.failover_executions().await.unwrap().first() {
            break e.clone();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stray metric never fired the alarm"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    };
    d.await_failover(&execution).await.unwrap();
    assert_eq!(d.report.execution_status.as_deref(), Some("FAILED"));
    assert_eq!(
        d.report.failover_task_errors,
        ["FailoverUnwarranted"],
        "{}",
        d.report.render()
    );
    // Nothing moved: the spec, the lease, the primary's switch.
    let after = d.world.store.get_spec(WORKLOAD).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(d.world.store.get_lease(WORKLOAD).await.unwrap(), None);
    assert!(
        d.world
            .store
            .get_switches(WORKLOAD)
            .await
            .unwrap()
            .is_empty()
    );
    // On the record.
    let events = d.world.store.list_events(WORKLOAD).await.unwrap();
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.action == "failover_unwarranted")
        .collect();
    assert_eq!(refused.len(), 1, "{events:#?}");
    assert!(refused[0].reason.contains(FAILED), "{:?}", refused[0]);
}
