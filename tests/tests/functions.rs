//! Every function answers through the error contract, and every fixture in `events/`
//! parses into its input type.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use lambda_runtime::{Context, Diagnostic, LambdaEvent};
use lifeboat::{Error, ErrorName, WorkloadSpec};
use serde_json::{Value, json};

fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

/// Functions whose work belongs to a later issue are honest skeletons: every input,
/// well-formed or not, gets `NotImplemented` and nothing else. When a function's issue
/// lands, its test here goes (its own tests take over).
async fn assert_skeleton<F, Fut>(name: &str, handle: F)
where
    F: Fn(LambdaEvent<Value>) -> Fut,
    Fut: std::future::Future<Output = Result<Value, Error>>,
{
    let inputs = [
        json!({}),
        json!({"workload": "checkout"}),
        json!(null),
        json!([1, 2]),
    ];
    for input in inputs {
        let err = handle(event(input)).await.expect_err(name);
        assert_eq!(err.name(), ErrorName::NotImplemented, "{name}");
        let diag = Diagnostic::from(err);
        assert_eq!(diag.error_type, "NotImplemented");
        assert!(
            diag.error_message.starts_with(name),
            "{}",
            diag.error_message
        );
    }
}

#[tokio::test]
async fn deploy_wave_is_a_skeleton() {
    assert_skeleton(deploy_wave::NAME, deploy_wave::handle).await;
}

/// Every fixture under `events/` belongs somewhere: `events/model/` holds specs, parsed
/// and validated here; `events/<function>/` belongs to a function under `functions/`, whose
/// own tests parse each of its fixtures into its input type. Any other folder fails.
#[test]
fn every_fixture_in_events_has_an_owner() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for dir in std::fs::read_dir(root.join("events")).unwrap() {
        let dir = dir.unwrap().path();
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        if folder != "model" {
            assert!(
                root.join("functions")
                    .join(&folder)
                    .join("Cargo.toml")
                    .is_file(),
                "events/{folder}/ is neither model/ nor a function's folder"
            );
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let text = std::fs::read_to_string(&file).unwrap();
            let spec: WorkloadSpec =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert_eq!(spec.validate().problems, [], "{}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 1);
}
