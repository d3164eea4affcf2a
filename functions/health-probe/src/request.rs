//! The two inputs: the EventBridge scheduled event (probe every workload in the table)
//! and `{ "workload": "<id>" }` (probe one; `"regions": [..]` probes only those of its
//! Regions, as the failover machine's verification does: the target only, never the
//! Region it failed away from; `"avoid_regions": [..]` names Regions the probe makes no
//! call to at all, such as the failed Region hosting the target's routing-switch alarm).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lifeboat::Error;
use serde::Deserialize;
use serde_json::Value;

/// What to probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Every workload in the table (the EventBridge schedule).
    All,
    /// One workload.
    One {
        /// Workload id.
        workload: String,
        /// Only these of its Regions (empty: every Region).
        regions: Vec<String>,
        /// Regions it makes no call to (the failed Region of a failover's verification):
        /// a routing-switch alarm hosted there is not read, and the switch's recorded
        /// position stands. Never one of `regions`.
        avoid_regions: Vec<String>,
    },
}

/// `{ "workload": "<id>", "regions": ["<region>", ..], "avoid_regions": ["<region>", ..] }`
/// (both lists optional).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OneWorkload {
    workload: String,
    #[serde(default)]
    regions: Option<Vec<String>>,
    #[serde(default)]
    avoid_regions: Vec<String>,
}

/// `field[i]` of the first name given twice in `list`.
fn named_twice(field: &str, list: &[String]) -> Result<(), Error> {
    for (i, r) in list.iter().enumerate() {
        if list[..i].contains(r) {
            return Err(Error::InvalidInput(format!(
                "{field}[{i}]: `{r}` is named twice"
            )));
        }
    }
    Ok(())
}

impl Request {
    /// Parses an event; anything else is `InvalidInput` naming what was expected.
    pub fn parse(value: Value) -> Result<Request, Error> {
        let Some(obj) = value.as_object() else {
            return Err(Error::InvalidInput(
                "expected an EventBridge scheduled event or {\"workload\": \"<id>\"}".into(),
            ));
        };
        if obj.contains_key("workload") {
            let one: OneWorkload = lifeboat::input::parse(value)?;
            if one.workload.trim().is_empty() {
                return Err(Error::InvalidInput("workload: must not be empty".into()));
            }
            let regions = match one.regions {
                None => vec![],
                Some(list) if list.is_empty() => {
                    return Err(Error::InvalidInput(
                        "regions: must name at least one Region (leave it out for every Region)"
                            .into(),
                    ));
                }
                Some(list) => {
                    named_twice("regions", &list)?;
                    list
                }
            };
            named_twice("avoid_regions", &one.avoid_regions)?;
            if let Some((i, r)) = one
                .avoid_regions
                .iter()
                .enumerate()
                .find(|(_, r)| regions.contains(r))
            {
                return Err(Error::InvalidInput(format!(
                    "avoid_regions[{i}]: `{r}` is also in regions: a probed Region is called"
                )));
            }
            return Ok(Request::One {
                workload: one.workload,
                regions,
                avoid_regions: one.avoid_regions,
            });
        }
        if obj.contains_key("detail-type") {
            let event: EventBridgeEvent = lifeboat::input::parse(value)?;
            if event.source == "aws.events" && event.detail_type == "Scheduled Event" {
                return Ok(Request::All);
            }
            return Err(Error::InvalidInput(format!(
                "detail-type: expected a \"Scheduled Event\" from \"aws.events\", got {:?} from {:?}",
                event.detail_type, event.source
            )));
        }
        Err(Error::InvalidInput(
            "expected an EventBridge scheduled event or {\"workload\": \"<id>\"}".into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::ErrorName;
    use serde_json::json;
    use std::path::Path;

    /// Every fixture in `events/health-probe/` parses into the input type; the file name
    /// says which kind it is (`scheduled-*` / `workload-*` parse, `invalid-*` must not).
    #[test]
    fn every_fixture_parses() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/health-probe");
        let mut seen = 0;
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let value: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let parsed = Request::parse(value);
            if name.starts_with("scheduled") {
                assert_eq!(parsed.unwrap(), Request::All, "{name}");
            } else if name.starts_with("workload") {
                assert!(matches!(parsed.unwrap(), Request::One { .. }), "{name}");
            } else {
                panic!("{name}: fixtures are scheduled-*.json or workload-*.json");
            }
            seen += 1;
        }
        assert!(seen >= 2, "expected both kinds of fixture, found {seen}");
    }

    #[test]
    fn one_workload() {
        assert_eq!(
            Request::parse(json!({"workload": "checkout"})).unwrap(),
            Request::One {
                workload: "checkout".into(),
                regions: vec![],
                avoid_regions: vec![],
            }
        );
        assert_eq!(
            Request::parse(json!({"workload": "checkout", "regions": ["eu-west-1"]})).unwrap(),
            Request::One {
                workload: "checkout".into(),
                regions: vec!["eu-west-1".into()],
                avoid_regions: vec![],
            }
        );
        assert_eq!(
            Request::parse(json!({"workload": "checkout", "regions": ["eu-west-1"],
                                  "avoid_regions": ["us-east-1"]}))
            .unwrap(),
            Request::One {
                workload: "checkout".into(),
                regions: vec!["eu-west-1".into()],
                avoid_regions: vec!["us-east-1".into()],
            }
        );
    }

    #[test]
    fn bad_inputs_are_named() {
        let cases = [
            (json!(null), "expected an EventBridge scheduled event"),
            (json!([1]), "expected an EventBridge scheduled event"),
            (json!({}), "expected an EventBridge scheduled event"),
            (json!({"workload": 7}), "workload: invalid type: integer"),
            (json!({"workload": " "}), "workload: must not be empty"),
            (
                json!({"workload": "w", "regions": []}),
                "regions: must name at least one Region",
            ),
            (
                json!({"workload": "w", "regions": ["eu-west-1", "eu-west-1"]}),
                "regions[1]: `eu-west-1` is named twice",
            ),
            (
                json!({"workload": "w", "avoid_regions": ["us-east-1", "us-east-1"]}),
                "avoid_regions[1]: `us-east-1` is named twice",
            ),
            (
                json!({"workload": "w", "regions": ["eu-west-1"], "avoid_regions": ["eu-west-1"]}),
                "avoid_regions[0]: `eu-west-1` is also in regions",
            ),
            (
                json!({"workload": "w", "regions": "eu-west-1"}),
                "regions: invalid type: string",
            ),
            (
                json!({"workload": "w", "wrokload": 1}),
                "unknown field `wrokload`",
            ),
            (
                json!({"detail-type": "Scheduled Event", "source": "aws.s3", "detail": {}}),
                "expected a \"Scheduled Event\" from \"aws.events\"",
            ),
            (
                json!({"detail-type": "Scheduled Event"}),
                "missing field `source`",
            ),
        ];
        for (input, want) in cases {
            let err = Request::parse(input.clone()).unwrap_err();
            assert_eq!(err.name(), ErrorName::InvalidInput, "{input}");
            assert!(err.to_string().contains(want), "{input}: {err}");
        }
    }
}
