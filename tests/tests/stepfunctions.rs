//! moto's Step Functions executing real ASL whose Lambda tasks run our real binaries
//! under `cargo lambda watch`, through the router in `scripts/moto_server.py`
//! (README, "Running without AWS"). This is the path every state machine test and the drill rely on.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use harness::lambda::{LambdaWatch, free_port};
use harness::moto::{MotoOptions, MotoServer};
use lifeboat::ErrorName;
use serde_json::{Value, json};

#[tokio::test]
async fn a_lambda_task_runs_our_binary_and_catch_sees_our_error_name() {
    let watch_port = free_port().unwrap();
    let moto = MotoServer::start_with(&MotoOptions {
        lambda_endpoint: Some(format!("http://127.0.0.1:{watch_port}")),
        execute_state_machines: true,
        ..MotoOptions::default()
    })
    .unwrap();
    let _watch = LambdaWatch::start(
        watch_port,
        &[
            ("AWS_ENDPOINT_URL", moto.endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("LIFEBOAT_TABLE", "router-check".into()),
            (
                "FAILOVER_STATE_MACHINE_ARN",
                "arn:aws:states:us-east-1:123456789012:stateMachine:router-check".into(),
            ),
        ],
        &["failover-executor"],
    )
    .unwrap();

    // Every error name we define is caught by name; anything else would fail the run.
    let names: Vec<&str> = ErrorName::ALL.iter().map(|n| n.as_str()).collect();
    let definition = json!({
        "StartAt": "Invoke",
        "States": {
            "Invoke": {
                "Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:failover-executor",
                "Parameters": { "workload": "nope", "not_a_field": true },
                "Catch": [{ "ErrorEquals": names, "ResultPath": "$.error", "Next": "Caught" }],
                "End": true
            },
            "Caught": { "Type": "Pass", "End": true }
        }
    });
    let sfn = aws_sdk_sfn::Client::new(&moto.sdk_config("us-east-1").await);
    let machine = sfn
        .create_state_machine()
        .name("router-check")
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/lifeboat-states")
        .send()
        .await
        .unwrap();
    let exec = sfn
        .start_execution()
        .state_machine_arn(machine.state_machine_arn())
        .name("router-check-1")
        .input("{}")
        .send()
        .await
        .unwrap();

    let mut status = ExecutionStatus::Running;
    let mut output = None;
    for _ in 0..600 {
        let d = sfn
            .describe_execution()
            .execution_arn(exec.execution_arn())
            .send()
            .await
            .unwrap();
        status = d.status().clone();
        if status != ExecutionStatus::Running {
            output = d.output().map(str::to_owned);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status, ExecutionStatus::Succeeded, "output: {output:?}");
    let out: Value = serde_json::from_str(&output.unwrap()).unwrap();
    // An operator request with a field it does not know: refused before any I/O.
    let error = out["error"]["Error"].as_str().unwrap();
    assert_eq!(error, "InvalidInput", "{out}");
    let cause: Value = serde_json::from_str(out["error"]["Cause"].as_str().unwrap()).unwrap();
    assert_eq!(cause["errorType"], error);
    assert!(
        cause["errorMessage"]
            .as_str()
            .unwrap()
            .contains("not_a_field"),
        "{cause}"
    );
}
