//! The plan is the execution (issue #13, item 6).
//!
//! For an unplanned failover (the primary broken as the drill breaks it), a planned
//! failover (everything healthy), a failback after a failover, and a drill, the dry-run
//! plan of an input lists exactly the AWS calls — service, operation, Region, plane — that
//! the real run of the same input makes, as the twin's call log records them
//! (`harness::calls`: the calls our functions signed between the execution's start and
//! its end, as a set).
//!
//! The world is the drill's (`harness::drill`: the twin, every stack from
//! `template.yaml`, our binaries under `cargo lambda watch`), one per mode. Its
//! background — health-probe's schedule, and what alarm transitions invoke — is turned
//! off before the runs compared ([`harness::calls::Quiet`]), so that every call our
//! functions make in a run's window is the run's; the twin's timeline shows nothing
//! fired in the window.
//!
//! The failover and failback machines return their plan for an input with
//! `"dry_run": true`; the drill machine has no dry run, so the drill's plan is
//! `failover_executor::drill::plan` for the same request, read from the same table.
//! Each mode also checks that every call was made by the function whose plan step
//! lists it.
//!
//! The unplanned run is the operator's (`mode: unplanned`) after the scheduled probes
//! called the hanging primary unhealthy, its alarm's actions and rule turned off first:
//! an alarm-started run decides the same plan (the trigger only gates the decision).
//! The old bucket's rule suspension reads the hanging Region and gets no answer, so the
//! puts that need one are skipped, as the plan says (`needs_answer_from`).
//!
//! About three minutes with a warm build (the four worlds one after the other).

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use aws_sdk_sfn::types::ExecutionStatus;
use harness::calls::{self, Comparison, Execution, Quiet};
use harness::drill::{Drill, DrillOptions, FAILBACK_INPUT, SURVIVOR, WORKLOAD};
use lifeboat::{Store, UnixMillis};
use serde_json::{Value, json};

/// One world at a time: each runs moto, the twin and cargo lambda watch on the twin's
/// clock, and two at once on two cores would test the machine, not the plan.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// How long a run may take (each is seconds in the twin).
const LIMIT: Duration = Duration::from_secs(300);

fn opts() -> DrillOptions {
    DrillOptions::default()
}

/// The machines' waits for these runs.
fn timing(failback: bool) -> Value {
    let o = opts();
    let mut t = json!({"poll_seconds": o.poll_seconds, "verify_max_polls": o.verify_max_polls});
    if failback {
        t["lag_max_polls"] = json!(o.verify_max_polls);
        t["soak_seconds"] = json!(o.soak_seconds);
    }
    t
}

/// A world whose scheduled probes saw every Region healthy.
async fn world() -> Drill {
    let began = Instant::now();
    let mut d = Drill::start(&opts()).await.unwrap();
    println!("world started in {:.1} s", began.elapsed().as_secs_f64());
    d.baseline().await.unwrap();
    println!("baseline after {:.1} s", began.elapsed().as_secs_f64());
    assert!(d.report.ok(), "{}", d.report.render());
    d
}

/// Turns off `what` in every Region of the world.
async fn quiet(d: &Drill, what: Quiet) {
    quiet_in(d, what, &d.world.region_codes()).await;
}

/// Turns off `what` in `regions`.
async fn quiet_in(d: &Drill, what: Quiet, regions: &[String]) {
    let off = what
        .apply(&d.world.moto, &d.world.config, regions)
        .await
        .unwrap();
    println!("background turned off: {off:#?}");
}

/// Waits until the background invocations running when it was turned off have ended.
async fn settle(d: &Drill) {
    let window = Duration::from_secs(u64::from(opts().probe_window_seconds));
    calls::settle(&d.world.twin, Duration::from_secs(3), window * 6)
        .await
        .unwrap();
}

fn sfn(d: &Drill) -> aws_sdk_sfn::Client {
    aws_sdk_sfn::Client::new(&d.world.config)
}

/// Runs `machine` with `input` as a dry run: its output, the plan. Nothing changes.
async fn dry_run(d: &Drill, machine: &str, name: &str, input: &Value) -> Value {
    let before = d.world.store.get_spec(WORKLOAD).await.unwrap();
    let mut input = input.clone();
    input["dry_run"] = json!(true);
    let e = calls::run(&sfn(d), machine, name, &input, LIMIT)
        .await
        .unwrap();
    if e.status != ExecutionStatus::Succeeded {
        let why = calls::why_it_failed(&sfn(d), &d.world.twin, &e).await;
        panic!(
            "{name} (dry run) ended {:?}: {:?}\n{why}",
            e.status, e.error
        );
    }
    let after = d.world.store.get_spec(WORKLOAD).await.unwrap();
    assert_eq!(
        after.version, before.version,
        "{name}: a dry run changes nothing"
    );
    assert!(e.output["steps"].is_array(), "{name}: {:#}", e.output);
    e.output
}

/// Runs `machine` with `input` for real; it must succeed.
async fn real_run(d: &Drill, machine: &str, name: &str, input: &Value) -> Execution {
    let e = calls::run(&sfn(d), machine, name, input, LIMIT)
        .await
        .unwrap();
    if e.status != ExecutionStatus::Succeeded {
        let why = calls::why_it_failed(&sfn(d), &d.world.twin, &e).await;
        panic!(
            "{name} ended {:?}: {:?}\n{why}\n{:#}",
            e.status, e.error, e.output
        );
    }
    e
}

/// The plan beside the run's calls; prints both, and asserts that nothing in the
/// background invoked our functions during the run.
async fn compare(d: &Drill, mode: &str, plan: &Value, run: &Execution) -> Comparison {
    let made = calls::made_in(&d.world.twin, run.window).await.unwrap();
    let background = calls::background(&d.world.twin, run.window).await.unwrap();
    assert!(
        background.is_empty(),
        "{mode}: the background invoked our functions during the run: {background:#?}"
    );
    let cmp = Comparison::new(calls::planned(plan).unwrap(), &made);
    println!(
        "{mode}: {} calls logged in {:.1} s\n{cmp}",
        made.len(),
        run.window.to - run.window.from
    );
    cmp
}

/// The run made what the plan lists (the sets of service, operation, Region and plane
/// agree), and each call was made by the function whose step lists it.
fn assert_same(mode: &str, cmp: &Comparison) {
    assert!(
        cmp.equal(),
        "{mode}: the plan is not what the run did\n{cmp}"
    );
    assert!(
        cmp.attributed(),
        "{mode}: the plan names other functions than the ones that made the calls\n{cmp}"
    );
}

fn failover_input(mode: &str) -> Value {
    let mut input: Value = serde_json::from_str(include_str!(
        "../../events/failover-executor/operator-request.json"
    ))
    .unwrap();
    input["mode"] = json!(mode);
    input["timing"] = timing(false);
    if mode == "unplanned" {
        input["reason"] = json!("us-east-1 hangs: fail over now");
        input.as_object_mut().unwrap().remove("request_id");
    }
    input
}

#[tokio::test]
async fn a_planned_failover_makes_the_calls_its_dry_run_plans() {
    let _one = ONE_AT_A_TIME.lock().await;
    let began = Instant::now();
    let d = world().await;
    quiet(&d, Quiet::ALL).await;
    settle(&d).await;
    let machine = d.world.failover_machine.clone();
    let input = failover_input("planned");
    let plan = dry_run(&d, &machine, "planned-dry", &input).await;
    let run = real_run(&d, &machine, "planned", &input).await;
    let cmp = compare(&d, "planned failover", &plan, &run).await;
    println!("planned: {:.1} s", began.elapsed().as_secs_f64());
    assert_same("planned failover", &cmp);
    // The writer was drained before anything was promoted: the run's timeline has the
    // drain and the wait for replication before promote_data (#14 item 5).
    let runs = d.world.store.list_runs(WORKLOAD).await.unwrap();
    let run = runs
        .iter()
        .find(|r| r.kind == lifeboat::store::RunKind::Failover)
        .unwrap();
    let at = |step: &str| {
        run.timeline
            .iter()
            .position(|e| e.step == step)
            .unwrap_or_else(|| panic!("{step}: {:#?}", run.timeline))
    };
    assert!(
        at("drain_writer") < at("wait_for_replication")
            && at("wait_for_replication") < at("promote_data")
            && at("promote_data") < at("shift_traffic"),
        "{:#?}",
        run.timeline
    );
}

/// A planned failover whose target does not catch up once the writer is drained
/// stops before promoting: the drain is undone (the old primary's switch on again),
/// nothing is promoted, and the run is `failed` with the lag as its cause (#14 item
/// 5). Local input: the twin's replica lag goes from 0 to 1 s (within the RPO, so
/// the move is decided; over `planned_max_lag_seconds`, 0, so it never catches up).
#[tokio::test]
async fn a_planned_failover_that_does_not_catch_up_undoes_its_drain_and_promotes_nothing() {
    let _one = ONE_AT_A_TIME.lock().await;
    let d = world().await;
    d.world
        .twin
        .settings(json!({"rds.replica_lag_seconds": 1}))
        .await
        .unwrap();
    println!("local input: twin setting rds.replica_lag_seconds = 1 (was 0)");
    let target = "eu-west-1";
    // The scheduled probes record the new lag (once a CloudWatch minute publishes it).
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let health = d.world.store.get_health(WORKLOAD).await.unwrap();
        let lag = health
            .iter()
            .find(|h| h.region == target)
            .and_then(|h| h.replication_lag_seconds);
        if lag == Some(1.0) {
            break;
        }
        assert!(Instant::now() < deadline, "lag never recorded: {health:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let before = d.world.store.get_spec(WORKLOAD).await.unwrap();
    let instance = before
        .region(target)
        .unwrap()
        .databases
        .iter()
        .find_map(|db| match db {
            lifeboat::model::DatabaseRef::RdsInstance { instance_id, .. } => {
                Some(instance_id.clone())
            }
            _ => None,
        })
        .unwrap();
    let mut input = failover_input("planned");
    input.as_object_mut().unwrap().remove("request_id");
    input["timing"]["verify_max_polls"] = json!(3);
    let e = calls::run(
        &sfn(&d),
        &d.world.failover_machine,
        "planned-not-caught-up",
        &input,
        LIMIT,
    )
    .await
    .unwrap();
    assert_eq!(e.status, ExecutionStatus::Failed, "{:#}", e.output);
    let (error, cause) = e.error.clone().unwrap();
    assert_eq!(error, "FailoverFailed", "{cause}");

    // Nothing promoted: the target is still a replica of the writer.
    let rds = aws_sdk_rds::Client::new(&lifeboat::aws::for_region(&d.world.config, target));
    let described = rds
        .describe_db_instances()
        .db_instance_identifier(&instance)
        .send()
        .await
        .unwrap();
    let db = &described.db_instances()[0];
    assert!(
        db.read_replica_source_db_instance_identifier().is_some(),
        "{db:?}"
    );
    // The drain undone: the old primary's switch is on again, recorded by this run.
    let switches = d.world.store.get_switches(WORKLOAD).await.unwrap();
    let old = switches.iter().find(|p| p.region == "us-east-1").unwrap();
    assert!(old.on, "{switches:#?}");
    assert!(old.set_by.contains("enable"), "{old:?}");
    // The spec as it was, the lease released, the run `failed` with the true cause.
    assert_eq!(d.world.store.get_spec(WORKLOAD).await.unwrap(), before);
    assert_eq!(d.world.store.get_lease(WORKLOAD).await.unwrap(), None);
    let runs = d.world.store.list_runs(WORKLOAD).await.unwrap();
    let run = runs
        .iter()
        .find(|r| r.kind == lifeboat::store::RunKind::Failover)
        .unwrap();
    assert_eq!(run.outcome, lifeboat::store::RunOutcome::Failed, "{run:#?}");
    let outcome = run.details["outcome"].to_string();
    assert!(outcome.contains("ReplicaLagTooHigh"), "{outcome}");
    assert_eq!(
        run.details["outcome"]["moved"]["switches"],
        json!([]),
        "{outcome}"
    );
    for step in ["drain_writer", "wait_for_replication"] {
        assert!(run.timeline.iter().any(|t| t.step == step), "{step}");
    }
    assert!(!run.timeline.iter().any(|t| t.step == "promote_data"));
}

#[tokio::test]
async fn an_unplanned_failover_from_a_hanging_primary_makes_the_calls_its_dry_run_plans() {
    let _one = ONE_AT_A_TIME.lock().await;
    let began = Instant::now();
    let mut d = world().await;
    // Nothing may start a failover by itself: the primary's health alarm will fire.
    quiet(
        &d,
        Quiet {
            schedules: false,
            alarms: true,
        },
    )
    .await;
    assert!(d.break_and_detect().await.unwrap(), "{}", d.report.render());
    // The probe schedule runs in the prober's stack (the survivor's); the broken
    // Region's APIs hang, for the harness as for everyone.
    quiet_in(
        &d,
        Quiet {
            schedules: true,
            alarms: false,
        },
        &[SURVIVOR.to_owned()],
    )
    .await;
    settle(&d).await;
    let machine = d.world.failover_machine.clone();
    let input = failover_input("unplanned");
    let plan = dry_run(&d, &machine, "unplanned-dry", &input).await;
    let run = real_run(&d, &machine, "unplanned", &input).await;
    let cmp = compare(&d, "unplanned failover", &plan, &run).await;
    println!("unplanned: {:.1} s", began.elapsed().as_secs_f64());
    assert_same("unplanned failover", &cmp);
}

#[tokio::test]
async fn a_failback_makes_the_calls_its_dry_run_plans() {
    let _one = ONE_AT_A_TIME.lock().await;
    let began = Instant::now();
    let mut d = world().await;
    quiet(&d, Quiet::ALL).await;
    settle(&d).await;
    // The failover it undoes (planned: both Regions stay up).
    let failover = d.world.failover_machine.clone();
    real_run(&d, &failover, "before-failback", &failover_input("planned")).await;
    // The global table's replication, as the drill's harness stands in for it: the
    // failback reads the failover's run where it leases (its arbiter's table).
    d.replicate(SURVIVOR).await.unwrap();
    d.start_replication();
    let mut input: Value = serde_json::from_str(FAILBACK_INPUT).unwrap();
    input["timing"] = timing(true);
    let machine = d.world.failback_machine.clone();
    let plan = dry_run(&d, &machine, "failback-dry", &input).await;
    let run = real_run(&d, &machine, "failback", &input).await;
    d.stop_replication().await.unwrap();
    let cmp = compare(&d, "failback", &plan, &run).await;
    println!("failback: {:.1} s", began.elapsed().as_secs_f64());
    assert_same("failback", &cmp);
}

/// The drill's report bucket, in the executor's Region.
const REPORT_BUCKET: &str = "lifeboat-plan-drill-reports";

#[tokio::test]
async fn a_drill_makes_the_calls_its_plan_lists() {
    let _one = ONE_AT_A_TIME.lock().await;
    let began = Instant::now();
    let mut d = world().await;
    quiet(&d, Quiet::ALL).await;
    settle(&d).await;
    // The drill machine and its report bucket: the drill's world runs the failover and
    // failback machines only, its functions without LIFEBOAT_REPORT_BUCKET. The watch is
    // restarted on its port (the twin sends Lambda tasks there) with the bucket set.
    let sfn = sfn(&d);
    let machine = harness::machines::create(&sfn, "drill", SURVIVOR)
        .await
        .unwrap();
    harness::data::create_bucket(&d.world.config, SURVIVOR, REPORT_BUCKET)
        .await
        .unwrap();
    d.world
        .restart_watch(&[("LIFEBOAT_REPORT_BUCKET", REPORT_BUCKET.into())])
        .unwrap();
    d.start_replication();

    let mut input: Value =
        serde_json::from_str(include_str!("../../events/drill/local-simulated.json")).unwrap();
    input["replication"] = json!("measured");
    input["timing"]["canary_max_polls"] = json!(3);
    let request: failover_executor::drill::DrillRequest =
        serde_json::from_value(input.clone()).unwrap();
    let name = "plan-drill";
    let holder = harness::machines::machine_arn("drill", SURVIVOR)
        .replace(":stateMachine:", ":execution:")
        + ":"
        + name;
    let spec = d.world.store.get_spec(WORKLOAD).await.unwrap();
    let health = d.world.store.get_health(WORKLOAD).await.unwrap();
    let plan = failover_executor::drill::plan(
        &spec,
        &health,
        &request,
        &holder,
        SURVIVOR,
        UnixMillis::now(),
    )
    .unwrap();
    let plan = serde_json::to_value(&plan).unwrap();
    let run = real_run(&d, &machine, name, &input).await;
    d.stop_replication().await.unwrap();
    assert_eq!(run.output["outcome"], "succeeded", "{:#}", run.output);
    let cmp = compare(&d, "drill", &plan, &run).await;
    println!("drill: {:.1} s", began.elapsed().as_secs_f64());
    assert_same("drill", &cmp);
}
