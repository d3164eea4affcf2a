//! What alarms start, in the twin's world from `template.yaml`: an alarm storm (the
//! twin's duplicate-delivery fault) starts one failover, and no other run acts; a
//! routing switch turned off by hand, or an alarm Lifeboat's own probes do not bear out,
//! starts no failover; a failed serving secondary is drained by its own alarm and
//! restored on request. The failover runs themselves are in `drill.rs`: two binaries, so
//! CI runs them side by side.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use harness::drill::{Drill, DrillOptions, FAILED, WORKLOAD, until};
use lifeboat::Store;
use lifeboat::model::Role;
use serde_json::json;

/// One drill at a time in this binary: each runs a whole world (moto, the twin, cargo
/// lambda watch) on the twin's clock, and CI already runs this binary beside two others
/// (scripts/run_tests.py); more at once on two cores would test the machine, not the drill.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test]
async fn an_alarm_storm_starts_one_failover_and_no_other_run_acts() {
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    // Asynchronous delivery is at least once: every alarm action and EventBridge
    // delivery arrives eight more times, and both paths deliver the same change.
    d.world
        .twin
        .post("delivery", json!({"duplicates": 8}))
        .await
        .unwrap();
    let followed = d.fail_over().await.unwrap();
    d.verify_failover().await.unwrap();
    assert!(d.report.ok(), "{}", d.report.render());
    let delivered = d.world.twin.get("delivery").await.unwrap();
    assert!(
        delivered["attempts"].as_u64().unwrap_or(0) >= 9,
        "{delivered}"
    );
    // The probe's schedule rule delivers its schedule only: Lifeboat's own events on the
    // same bus (verdict changes, run notices) match no schedule rule, as on AWS. (moto
    // matched them all to it, and nine copies of each, every one a failed invoke retried
    // twice, queued the real probes behind them until detection missed its limit.)
    let refused: Vec<String> = d
        .world
        .twin
        .timeline(0)
        .await
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.kind == "lambda.invoke"
                && r.detail.starts_with("health-probe (")
                && r.detail.contains("Unhandled")
        })
        .map(|r| r.detail)
        .collect();
    assert!(refused.is_empty(), "{refused:#?}");
    // Deliveries after the end start nothing new either (the name is taken, and the
    // Region is no longer the primary), however long the alarm stays in ALARM.
    tokio::time::sleep(std::time::Duration::from_secs_f64(
        3.0 * d.opts.minute_seconds,
    ))
    .await;
    // Every copy of one transition starts the same execution (its name is the
    // transition's). The alarm may also leave ALARM and enter it again while the first
    // run has yet to take the lease (late probes leave periods missing, on AWS as
    // here), and that transition starts a run of its own; it must change nothing: the
    // lease (or the decision, once the spec moved) refuses it.
    let sfn = aws_sdk_sfn::Client::new(&d.world.config);
    let refusal = [
        "HasTiming",
        "DefaultTiming",
        "MarkDecide",
        "Decide",
        "IsDryRun",
        "MarkAcquire",
        "Acquire",
        "Refused",
    ];
    let executions = d.world.failover_executions().await.unwrap();
    assert!(executions.contains(&followed), "{executions:?}");
    for other in executions.iter().filter(|e| **e != followed) {
        let end = harness::machines::wait(&sfn, other, std::time::Duration::from_secs(120))
            .await
            .unwrap();
        let events = harness::drill::history(&sfn, other).await.unwrap();
        let visited: Vec<String> = harness::drill::states(&events)
            .into_iter()
            .map(|(name, _, _)| name)
            .collect();
        assert!(
            end.status == aws_sdk_sfn::types::ExecutionStatus::Failed
                && visited.iter().all(|s| refusal.contains(&s.as_str())),
            "{other}: {:?} {:?} through {visited:?}",
            end.status,
            end.error
        );
    }
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
    assert_eq!(spec.region(FAILED).unwrap().role, Role::Primary);
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

/// A serving secondary whose application fails (its endpoint refuses connections; its
/// AWS APIs are fine) is drained by its own health alarm: switch off, DNS stops
/// answering it, its weight spread over the healthy serving Regions in proportion, an
/// audit event. Back to healthy, it stays out while `auto_restore` is off (an event
/// says so), and an operator's restore request brings it back to its weight. The first
/// wave ignored the alarm (`region_not_primary`): 20 % of users stayed on a dead Region.
#[tokio::test]
async fn a_failed_serving_secondary_is_drained_and_restored_on_request() {
    const FAILING: &str = "ap-southeast-1";
    let _one = ONE_AT_A_TIME.lock().await;
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    d.baseline().await.unwrap();
    assert!(!d.world.spec.policy.auto_restore);
    // Every Region's APIs are up: the global table replicates (the harness stands in).
    d.start_replication();
    d.world
        .twin
        .fault(json!({"region": FAILING, "mode": "down", "targets": ["workload"]}))
        .await
        .unwrap();
    let minute = std::time::Duration::from_secs_f64(d.opts.minute_seconds);
    let store = &d.world.store;
    let drained = until(minute * 15, || async {
        let spec = store.get_spec(WORKLOAD).await.ok()?;
        spec.region(FAILING)?.drained.is_some().then_some(spec)
    })
    .await
    .expect("the secondary's health alarm drains it");
    let weights: Vec<u32> = drained.regions.iter().map(|r| r.weight).collect();
    // 20 over 50:30 → 12 and 7, the remainder to the primary.
    assert_eq!(weights, [63, 37, 0]);
    assert_eq!(drained.region(FAILED).unwrap().role, Role::Primary);
    let events = store.list_events(WORKLOAD).await.unwrap();
    assert!(
        events.iter().any(|e| e.action == "region_drained"),
        "{events:#?}"
    );
    // No failover: the primary is fine.
    assert!(d.world.failover_executions().await.unwrap().is_empty());
    // DNS stops answering it (Route 53's health check on its switch fails).
    let gone = until(minute * 8, || async {
        let seen = d.world.dns_regions(40).await.ok()?;
        let again = d.world.dns_regions(40).await.ok()?;
        (!seen.contains_key(FAILING) && !again.contains_key(FAILING)).then_some(again)
    })
    .await;
    assert!(gone.is_some(), "DNS still answers {FAILING}");

    // Repaired: the probes call it healthy after recovery_threshold rounds, its alarm
    // goes OK, and with auto_restore off it stays drained, on the record.
    d.world.twin.clear_faults().await.unwrap();
    let recovered = until(minute * 15, || async {
        let events = store.list_events(WORKLOAD).await.ok()?;
        events
            .into_iter()
            .find(|e| e.action == "drained_region_recovered")
    })
    .await;
    assert!(recovered.is_some(), "no drained_region_recovered event");
    let still = store.get_spec(WORKLOAD).await.unwrap();
    assert!(still.region(FAILING).unwrap().drained.is_some());

    // An operator brings it back: exactly the weights from before the drain.
    let restore = json!({"restore": {"workload": WORKLOAD, "region": FAILING,
        "reason": "repaired and verified", "requested_by": "operator:test"}});
    let out = d.world.invoke("failover-executor", &restore).await.unwrap();
    assert_eq!(out["outcome"], "restored", "{out}");
    // Written in the arbiter's replica (us-east-1), seen here once replicated.
    let spec = until(minute * 2, || async {
        let spec = store.get_spec(WORKLOAD).await.ok()?;
        spec.region(FAILING)?.drained.is_none().then_some(spec)
    })
    .await
    .expect("the restore reaches the survivor's replica");
    let weights: Vec<u32> = spec.regions.iter().map(|r| r.weight).collect();
    assert_eq!(weights, [50, 30, 20]);
    let back = until(minute * 8, || async {
        let seen = d.world.dns_regions(100).await.ok()?;
        seen.contains_key(FAILING).then_some(seen)
    })
    .await;
    assert!(back.is_some(), "DNS does not answer {FAILING} again");
    // A second request finds nothing to restore: a named error, nothing changed.
    let again = d.world.invoke("failover-executor", &restore).await;
    assert!(
        again
            .as_ref()
            .is_err_and(|e| e.to_string().contains("InvalidInput")),
        "{again:?}"
    );
    assert_eq!(store.get_spec(WORKLOAD).await.unwrap(), spec);
    d.stop_replication().await.unwrap();
}
