//! Every fixture in `events/` parses into its input type.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use lifeboat::{Error, WorkloadSpec};
use serde_json::Value;

/// Every fixture under `events/` belongs somewhere: `events/model/` holds specs, parsed
/// and validated here; `events/<function>/` belongs to a function under `functions/`, whose
/// own tests parse each of its fixtures into its input type; `events/<machine>/` holds
/// console inputs of `statemachines/<machine>.asl.json`, parsed here into that machine's
/// input type. Any other folder fails.
#[test]
fn every_fixture_in_events_has_an_owner() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut checked = 0;
    for dir in std::fs::read_dir(root.join("events")).unwrap() {
        let dir = dir.unwrap().path();
        let folder = dir.file_name().unwrap().to_string_lossy().into_owned();
        if root
            .join("statemachines")
            .join(format!("{folder}.asl.json"))
            .is_file()
        {
            for file in std::fs::read_dir(&dir).unwrap() {
                let file = file.unwrap().path();
                let value: Value =
                    serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
                machine_input(&folder, value).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                checked += 1;
            }
            continue;
        }
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

/// Parses a console input of machine `machine` into its input type and checks it.
fn machine_input(machine: &str, value: Value) -> Result<(), Error> {
    match machine {
        "failover" => {
            lifeboat::input::parse::<failover_executor::request::FailoverRequest>(value)?.check()
        }
        "failback" => {
            lifeboat::input::parse::<failover_executor::failback::FailbackRequest>(value)?.check()
        }
        "drill" => {
            let req: failover_executor::drill::DrillRequest = lifeboat::input::parse(value)?;
            let spec =
                harness::world::example_spec().map_err(|e| Error::InvalidInput(e.to_string()))?;
            failover_executor::drill::prepare(
                &spec,
                &req,
                "arn:aws:states:us-east-1:123456789012:execution:lifeboat-drill-us-east-1:fixture",
            )
            .map(|_| ())
        }
        other => Err(Error::InvalidInput(format!(
            "events/{other}/: no input type known for machine `{other}` (add it here)"
        ))),
    }
}
