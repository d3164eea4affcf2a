//! The local drill's chain in CI (the same code as `scripts/drill`: `harness::drill`),
//! in the twin, plus what must hold when a failover run meets trouble: a task that
//! times out once is retried, two failovers in a row need no stack update, and a
//! failover that DNS does not follow stops unverified. What alarms start (and must
//! not) is in `drill_alarms.rs`: two binaries, so CI runs them side by side.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use harness::drill::{self, Drill, DrillOptions, FAILED, SURVIVOR, WORKLOAD, until};
use lifeboat::Store;
use lifeboat::store::RunOutcome;
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
    assert!(report.ok(), "{}", report.render());
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
    // The retry is to be timed on its run, not on an instance's start: on AWS an
    // environment's Init phase has its own limit (10 s) outside the function's timeout
    // ("Understanding the Lambda execution environment lifecycle",
    // https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html). Under
    // watch an instance starts inside the first invocation it serves; on CI's loaded cores
    // that start overran the 8 s. The twin now allows a new instance's first invocation
    // the Init limit too (`lambda.init_seconds`), but cannot see where init ends; an
    // instance is started first (by a request it refuses as bad input), so the retry runs
    // in a started environment, as on AWS.
    let warm = d.world.invoke("traffic-shifter", &json!({})).await;
    assert!(warm.is_err(), "an empty request is bad input: {warm:?}");
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
    assert!(d.report.ok(), "{}", d.report.render());
}

/// Always armed: every Region has a health alarm in the prober's stack, and the
/// executor decides from the spec's roles now. The primary's application fails (its
/// endpoint refuses; its APIs are up, so the global table replicates), Lifeboat fails
/// over to eu-west-1; then eu-west-1's application fails too, and its own alarm — no
/// stack update between — fails over again, to the one healthy Region left. The first
/// wave's single alarm watched the fixed `PrimaryRegion` parameter: after one failover
/// nothing watched the new primary.
#[tokio::test]
async fn two_failovers_in_a_row_need_no_stack_update() {
    const LAST: &str = "ap-southeast-1";
    let _one = ONE_AT_A_TIME.lock().await;
    let opts = DrillOptions {
        cooldown_seconds: Some(1),
        ..DrillOptions::default()
    };
    let mut d = Drill::start(&opts).await.unwrap();
    d.baseline().await.unwrap();
    d.start_replication();
    let down = |region: &str| json!({"region": region, "mode": "down", "targets": ["workload"]});
    d.world.twin.fault(down(FAILED)).await.unwrap();
    let minute = std::time::Duration::from_secs_f64(d.opts.minute_seconds);
    let world = &d.world;
    let unhealthy = |region: &'static str| async move {
        let v = world.verdicts().await.ok()?;
        (v.get(region) == Some(&lifeboat::store::Verdict::Unhealthy)).then_some(())
    };
    until(minute * 10, || unhealthy(FAILED))
        .await
        .expect("the probes call the primary unhealthy");
    let first = d
        .await_alarm_execution()
        .await
        .unwrap()
        .expect("the primary's alarm starts a failover");
    d.await_failover(&first).await.unwrap();
    assert!(d.report.ok(), "{}", d.report.render());
    let store = &d.world.store;
    let spec = store.get_spec(WORKLOAD).await.unwrap();
    assert_eq!(spec.primary().unwrap().region, SURVIVOR);

    // The new primary fails: the same stacks, its own alarm.
    d.world.twin.fault(down(SURVIVOR)).await.unwrap();
    let world = &d.world;
    let second = until(minute * 20, || async {
        let all = world.failover_executions().await.ok()?;
        all.into_iter().find(|e| *e != first)
    })
    .await
    .expect("the new primary's alarm starts a second failover");
    let sfn = aws_sdk_sfn::Client::new(&d.world.config);
    let end = harness::machines::wait(&sfn, &second, std::time::Duration::from_secs(240))
        .await
        .unwrap();
    assert_eq!(end.status.as_str(), "SUCCEEDED", "{:?}", end.error);
    let spec = until(minute * 5, || async {
        let spec = store.get_spec(WORKLOAD).await.ok()?;
        (spec.primary()?.region == LAST).then_some(spec)
    })
    .await
    .expect("the second failover's spec reaches the survivor's replica");
    for failed in [FAILED, SURVIVOR] {
        assert_eq!(spec.region(failed).unwrap().weight, 0, "{failed}");
    }
    assert_eq!(spec.region(LAST).unwrap().weight, 100);
    d.stop_replication().await.unwrap();
}

/// Verification that can fail: the switch moves, but DNS keeps answering the failed
/// Region (its Route 53 health check was disabled, so Route 53 counts it healthy
/// whatever its alarm says: "Route 53 considers a disabled health check healthy").
/// The run's DNS check sees it, the run stops unverified (`VerificationFailed`,
/// recorded) instead of finalizing a failover clients never got. Before the
/// `ResolveDns` step the machine only asked whether the target served, which it did
/// when it was chosen, so this run succeeded.
#[tokio::test]
async fn a_failover_that_dns_does_not_follow_stops_unverified() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    let check = d.world.stacks.health_checks.get(FAILED).cloned().unwrap();
    aws_sdk_route53::Client::new(&d.world.config)
        .update_health_check()
        .health_check_id(&check)
        .disabled(true)
        .send()
        .await
        .unwrap();
    let before = d.world.store.get_spec(WORKLOAD).await.unwrap();
    fail_over(&mut d).await;
    assert_eq!(d.report.execution_status.as_deref(), Some("FAILED"));
    // It stopped at verification, after the data tier and the switches had moved:
    // `partial`, not `failed`, and the cause says so.
    let (error, cause) = d.report.execution_error.clone().unwrap();
    assert_eq!(error, "FailoverPartial", "{cause}");
    let runs = d.world.store.list_runs(WORKLOAD).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");
    assert_eq!(runs[0].outcome, RunOutcome::Partial);
    let details = runs[0].details.to_string();
    assert!(details.contains("VerificationFailed"), "{details}");
    assert!(details.contains("DNS"), "{details}");
    // The record says exactly what the twin shows moved.
    let moved = &runs[0].details["outcome"]["moved"];
    for (region, want) in [(FAILED, "ALARM"), (SURVIVOR, "OK")] {
        let switch = before
            .region(region)
            .unwrap()
            .routing_switch
            .clone()
            .unwrap();
        // A switch that lives in the failed Region is neither flipped by the run nor
        // readable while that Region's APIs hang.
        if switch.region == FAILED {
            continue;
        }
        let (state, _) =
            harness::route53::alarm(&d.world.config, &switch.region, &switch.alarm_name)
                .await
                .unwrap();
        assert_eq!(state, want, "{region}'s switch in the twin");
        let position = if want == "OK" { "on" } else { "off" };
        assert!(
            moved["switches"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["controls"] == region && s["position"] == position),
            "{region} {position}: {moved}"
        );
    }
    // The survivor's database was promoted, its buckets flipped: named in the record.
    let survivor = before.region(SURVIVOR).unwrap();
    for db in &survivor.databases {
        let id = match db {
            lifeboat::model::DatabaseRef::RdsInstance { instance_id, .. } => instance_id,
            lifeboat::model::DatabaseRef::AuroraGlobal { cluster_id, .. } => cluster_id,
        };
        assert!(
            moved["databases"].to_string().contains(id.as_str()),
            "{id}: {moved}"
        );
    }
    for b in &survivor.buckets {
        assert!(
            moved["buckets"].to_string().contains(&b.name),
            "{}: {moved}",
            b.name
        );
    }
    // The spec did not move, and the record says so; the lease is released.
    assert_eq!(d.world.store.get_spec(WORKLOAD).await.unwrap(), before);
    assert!(moved.get("spec_version").is_none(), "{moved}");
    let summary = runs[0].details["outcome"]["summary"].as_str().unwrap();
    assert!(summary.ends_with("spec unchanged"), "{summary}");
    assert_eq!(d.world.store.get_lease(WORKLOAD).await.unwrap(), None);
}
