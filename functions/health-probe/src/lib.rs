//! # health-probe
//!
//! The Lifeboat Lambda that probes every Region of every workload and records health.
//!
//! Not built yet (issue #3): until then it is an honest skeleton that answers
//! every input with the named error `NotImplemented` and touches nothing.

use lambda_runtime::LambdaEvent;
use lifeboat::Error;
use serde_json::Value;

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "health-probe";

/// The handler.
pub async fn handle(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Err(Error::NotImplemented { function: NAME })
}
