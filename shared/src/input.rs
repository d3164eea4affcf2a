//! Parsing handler input: a malformed event is [`Error::InvalidInput`] naming the path of
//! the bad field, never a panic and never a Rust type name in the message.

use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

/// Parses a JSON event into `T`, naming the offending field on failure
/// (e.g. `invalid input: target_region: invalid type: integer, expected a string`).
pub fn parse<T: DeserializeOwned>(value: serde_json::Value) -> Result<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            Error::InvalidInput(e.inner().to_string())
        } else {
            Error::InvalidInput(format!("{path}: {}", e.inner()))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Req {
        workload: String,
        steps: Vec<u32>,
    }

    #[test]
    fn names_the_bad_field() {
        let err =
            parse::<Req>(serde_json::json!({"workload": "w", "steps": [10, "x"]})).unwrap_err();
        assert_eq!(err.name(), crate::ErrorName::InvalidInput);
        assert_eq!(
            err.to_string(),
            "invalid input: steps[1]: invalid type: string \"x\", expected u32"
        );
        let err = parse::<Req>(serde_json::json!({"steps": []})).unwrap_err();
        assert_eq!(err.to_string(), "invalid input: missing field `workload`");
    }
}
