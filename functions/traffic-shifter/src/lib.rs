//! # traffic-shifter
//!
//! The Lifeboat Lambda that moves traffic through Route 53 health checks and weighted records.
//!
//! Not built yet (issue #4): until then it is an honest skeleton that answers
//! every input with the named error `NotImplemented` and touches nothing.

use lambda_runtime::LambdaEvent;
use lifeboat::Error;
use serde_json::Value;

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "traffic-shifter";

/// The handler.
pub async fn handle(_event: LambdaEvent<Value>) -> Result<Value, Error> {
    Err(Error::NotImplemented { function: NAME })
}
