//! # cost-reporter
//!
//! The Lifeboat Lambda that reports the cost of resilience per Region from the CUR export.
//!
//! Not built yet (issue #7): until then it is an honest skeleton that answers
//! every input with the named error `NotImplemented` and touches nothing.

use lambda_runtime::LambdaEvent;
use lifeboat::Error;
use serde_json::Value;

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "cost-reporter";

/// The handler.
pub async fn handle(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Err(Error::NotImplemented { function: NAME })
}
