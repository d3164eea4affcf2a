//! `statemachines/failover.asl.json` executed by moto's Step Functions, its Lambda tasks
//! running our real binaries under `cargo lambda watch`.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use harness::lambda::{LambdaWatch, free_port};
use harness::machines;
use harness::moto::{MotoOptions, MotoServer};
use lifeboat::store::Verdict;
use lifeboat::{Store, UnixMillis};
use serde_json::{Value, json};

/// The Region the failover runs in: a survivor, where the machine, the functions and the
/// arbiter's table are (moto replicates nothing between Regions).
const SURVIVOR: &str = "eu-west-1";

#[tokio::test]
async fn a_dry_run_execution_returns_the_plan_and_changes_nothing() {
    let watch_port = free_port().unwrap();
    let moto = MotoServer::start_with(&MotoOptions {
        lambda_endpoint: Some(format!("http://127.0.0.1:{watch_port}")),
        execute_state_machines: true,
        ..MotoOptions::default()
    })
    .unwrap();
    let table = harness::table::unique_name("failover-machine");
    let w = harness::world::seed_in(&moto, &table, SURVIVOR)
        .await
        .unwrap();
    let now = UnixMillis::now();
    for (region, verdict) in [
        ("us-east-1", Verdict::Unhealthy),
        ("eu-west-1", Verdict::Healthy),
        ("ap-southeast-1", Verdict::Healthy),
    ] {
        let health = harness::world::settled_health(region, verdict, Some(1.0), now);
        w.store.put_health("checkout", &health).await.unwrap();
    }

    let sfn = aws_sdk_sfn::Client::new(&moto.sdk_config(SURVIVOR).await);
    let machine = machines::create(&sfn, "failover", SURVIVOR).await.unwrap();
    let _watch = LambdaWatch::start_stack(
        watch_port,
        &moto,
        SURVIVOR,
        &table,
        &[("FAILOVER_STATE_MACHINE_ARN", machine.clone())],
        &["failover-executor"],
    )
    .unwrap();

    let input = json!({
        "workload": "checkout",
        "failed_region": "us-east-1",
        "mode": "unplanned",
        "dry_run": true,
        "reason": "drill: what would a failover of us-east-1 do?",
        "requested_by": "lifeboat-tests",
        "timing": { "poll_seconds": 1, "verify_max_polls": 3 }
    });
    let exec = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name("dry-run-1")
        .input(input.to_string())
        .send()
        .await
        .unwrap();
    let end = machines::wait(&sfn, exec.execution_arn(), Duration::from_secs(120))
        .await
        .unwrap();
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    let plan: Value = serde_json::from_str(end.output.as_deref().unwrap()).unwrap();

    // The plan: every step and call. Up to the end of the traffic switch none goes to
    // the failed Region or to a control plane outside the survivor (no Route 53
    // ChangeResourceRecordSets in us-east-1); after it, best effort, the old bucket's
    // replication rules are suspended in the failed Region, and the verification
    // probes every Region (the failed one's CloudWatch, Route 53's API, each bounded),
    // and the plan says so.
    assert_eq!(plan["touches_failed_region"], true, "{plan:#}");
    assert_eq!(
        plan["touches_control_plane_outside_surviving_region"], true,
        "{plan:#}"
    );
    let steps: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(
        steps.contains(&"promote_data") && steps.contains(&"shift_traffic"),
        "{steps:?}"
    );
    for step in plan["steps"].as_array().unwrap() {
        for call in step["calls"].as_array().unwrap() {
            assert_ne!(call["operation"], "ChangeResourceRecordSets", "{call}");
            if !["suspend_old_rules", "verify"].contains(&step["step"].as_str().unwrap()) {
                assert_ne!(call["region"], "us-east-1", "{call}");
            }
        }
    }

    // Nothing changed: same spec, no lease, no run, no audit event.
    assert_eq!(w.store.get_spec("checkout").await.unwrap(), w.spec);
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), None);
    assert!(w.store.list_runs("checkout").await.unwrap().is_empty());
    assert!(w.store.list_events("checkout").await.unwrap().is_empty());
}
