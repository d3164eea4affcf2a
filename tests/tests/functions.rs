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
/// well-formed or not, gets `NotImplemented` and nothing else. Remove a function from
/// this list when its issue lands.
#[tokio::test]
async fn skeletons_answer_not_implemented_with_the_bare_error_name() {
    let inputs = [
        json!({}),
        json!({"workload": "checkout"}),
        json!(null),
        json!([1, 2]),
    ];
    for input in inputs {
        let results: [(&str, Result<Value, Error>); 6] = [
            (
                health_probe::NAME,
                health_probe::handle(event(input.clone())).await,
            ),
            (
                failover_executor::NAME,
                failover_executor::handle(event(input.clone())).await,
            ),
            (
                replica_promoter::NAME,
                replica_promoter::handle(event(input.clone())).await,
            ),
            (
                traffic_shifter::NAME,
                traffic_shifter::handle(event(input.clone())).await,
            ),
            (
                deploy_wave::NAME,
                deploy_wave::handle(event(input.clone())).await,
            ),
            (
                cost_reporter::NAME,
                cost_reporter::handle(event(input.clone())).await,
            ),
        ];
        for (name, result) in results {
            let err = result.expect_err(name);
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
}

/// Every fixture under `events/` is parsed by its input type. A folder without a known
/// input type fails this test, so a new fixture cannot go unchecked.
#[test]
fn every_fixture_in_events_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../events");
    let mut checked = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let text = std::fs::read_to_string(&file).unwrap();
            match folder.as_str() {
                "model" => {
                    let spec: WorkloadSpec = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                    assert_eq!(spec.validate().problems, [], "{}", file.display());
                }
                other => panic!("events/{other}/ has no input type in this test: add one"),
            }
            checked += 1;
        }
    }
    assert!(checked >= 1);
}
