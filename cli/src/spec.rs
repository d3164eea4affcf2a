//! `spec validate`, `spec apply` and `spec show`: the file checked by the shared model's
//! own parser and validation (never a second copy of either), the diff an operator
//! approves, and the versioned write with its audit event.

use std::collections::BTreeMap;

use lifeboat::WorkloadSpec;
use serde::Serialize;
use serde_json::Value;

/// One problem of a spec file, with the JSON path it is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// JSON path, e.g. `regions[1].weight` (`$` for the whole document).
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// What validating a file found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checked {
    /// The workload id, when the file parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Every problem (empty: valid).
    pub problems: Vec<Found>,
    /// Weaker guarantees worth knowing.
    pub warnings: Vec<Found>,
    /// The parsed spec, when it parsed.
    #[serde(skip)]
    pub spec: Option<WorkloadSpec>,
}

impl Checked {
    /// No problems.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty() && self.spec.is_some()
    }
}

/// Checks a spec file's text: JSON syntax (line and column), then the model's shape
/// (the path of the first field that does not fit, as serde stops there), then every
/// validation problem at once, each with its path.
pub fn check(text: &str) -> Checked {
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Checked {
                workload: None,
                problems: vec![Found {
                    path: "$".into(),
                    message: format!("not JSON: {e}"),
                }],
                warnings: vec![],
                spec: None,
            };
        }
    };
    let spec: WorkloadSpec = match lifeboat::input::parse(value) {
        Ok(s) => s,
        Err(e) => {
            // `invalid input: <path>: <what>` from the shared parser.
            let text = e.to_string();
            let text = text.strip_prefix("invalid input: ").unwrap_or(&text);
            let (path, message) = match text.split_once(": ") {
                Some((p, m)) if !p.contains(' ') => (p.to_owned(), m.to_owned()),
                _ => ("$".to_owned(), text.to_owned()),
            };
            return Checked {
                workload: None,
                problems: vec![Found { path, message }],
                warnings: vec![],
                spec: None,
            };
        }
    };
    let v = spec.validate();
    Checked {
        workload: Some(spec.workload.clone()),
        problems: v
            .problems
            .iter()
            .map(|p| Found {
                path: p.path(&spec),
                message: p.to_string(),
            })
            .collect(),
        warnings: v
            .warnings
            .iter()
            .map(|w| Found {
                path: w.path(&spec),
                message: w.to_string(),
            })
            .collect(),
        spec: Some(spec),
    }
}

/// Renders a validation result for a terminal.
pub fn render_checked(file: &str, c: &Checked) -> String {
    let mut out = String::new();
    for p in &c.problems {
        out.push_str(&format!("{file}: error: {}: {}\n", p.path, p.message));
    }
    for w in &c.warnings {
        out.push_str(&format!("{file}: warning: {}: {}\n", w.path, w.message));
    }
    if c.is_valid() {
        out.push_str(&format!(
            "{file}: valid spec for workload `{}` ({} warning(s))\n",
            c.workload.as_deref().unwrap_or(""),
            c.warnings.len()
        ));
    } else {
        out.push_str(&format!("{file}: {} problem(s)\n", c.problems.len()));
    }
    out
}

/// One line of a diff: a leaf's path, its value before and after (absent: `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// JSON path of the leaf.
    pub path: String,
    /// Before (JSON text), absent when added.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub before: Option<String>,
    /// After (JSON text), absent when removed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
}

fn leaves(v: &Value, path: String, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, x) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                leaves(x, p, out);
            }
        }
        Value::Array(a) if !a.is_empty() => {
            for (i, x) in a.iter().enumerate() {
                leaves(x, format!("{path}[{i}]"), out);
            }
        }
        other => {
            out.insert(path, other.to_string());
        }
    }
}

/// Leaf-by-leaf differences between two specs, `version` left out (the store sets it).
pub fn diff(before: Option<&WorkloadSpec>, after: &WorkloadSpec) -> Vec<Change> {
    let flat = |s: &WorkloadSpec| {
        let mut v = serde_json::to_value(s).unwrap_or(Value::Null);
        if let Some(m) = v.as_object_mut() {
            m.remove("version");
        }
        let mut out = BTreeMap::new();
        leaves(&v, String::new(), &mut out);
        out
    };
    let a = before.map(flat).unwrap_or_default();
    let b = flat(after);
    let mut changes = Vec::new();
    for (path, old) in &a {
        match b.get(path) {
            Some(new) if new == old => {}
            new => changes.push(Change {
                path: path.clone(),
                before: Some(old.clone()),
                after: new.cloned(),
            }),
        }
    }
    for (path, new) in &b {
        if !a.contains_key(path) {
            changes.push(Change {
                path: path.clone(),
                before: None,
                after: Some(new.clone()),
            });
        }
    }
    changes.sort_by(|x, y| x.path.cmp(&y.path));
    changes
}

/// Renders a diff: `- path: old`, `+ path: new`, `~ path: old -> new`.
pub fn render_diff(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        match (&c.before, &c.after) {
            (Some(b), Some(a)) => out.push_str(&format!("~ {}: {b} -> {a}\n", c.path)),
            (Some(b), None) => out.push_str(&format!("- {}: {b}\n", c.path)),
            (None, Some(a)) => out.push_str(&format!("+ {}: {a}\n", c.path)),
            (None, None) => {}
        }
    }
    if changes.is_empty() {
        out.push_str("(no change)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../events/model/example-spec.json");

    #[test]
    fn the_example_is_valid() {
        let c = check(EXAMPLE);
        assert!(c.is_valid(), "{c:?}");
        assert_eq!(c.workload.as_deref(), Some("checkout"));
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_path() {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["regions"][1]["weight"] = 7.into();
        v["regions"][0]["endpoints"][0]["url"] = "not a url".into();
        v["policy"]["failure_threshold"] = 0.into();
        let c = check(&v.to_string());
        let paths: Vec<&str> = c.problems.iter().map(|p| p.path.as_str()).collect();
        assert!(paths.contains(&"regions"), "{paths:?}");
        assert!(paths.contains(&"regions[0].endpoints[0]"), "{paths:?}");
        assert!(paths.contains(&"policy.failure_threshold"), "{paths:?}");
        assert!(!c.is_valid());
    }

    /// Compute problems (issue #15) point at their line too, not at `$`.
    #[test]
    fn compute_problems_name_their_paths() {
        let mut v: Value =
            serde_json::from_str(include_str!("../../events/model/pilot-light-spec.json")).unwrap();
        assert!(check(&v.to_string()).is_valid());
        v["policy"]["compute"]["min_success_percent"] = 0.into();
        v["regions"][1]["compute"][1]["tier"] = "web".into();
        let c = check(&v.to_string());
        let paths: Vec<&str> = c.problems.iter().map(|p| p.path.as_str()).collect();
        assert!(
            paths.contains(&"policy.compute.min_success_percent"),
            "{paths:?}"
        );
        assert!(paths.contains(&"regions[1].compute"), "{paths:?}");
        assert!(!paths.contains(&"$"), "{paths:?}");
    }

    #[test]
    fn a_shape_error_names_its_path_and_bad_json_its_line() {
        let mut v: Value = serde_json::from_str(EXAMPLE).unwrap();
        v["regions"][2]["role"] = "captain".into();
        let c = check(&v.to_string());
        assert_eq!(c.problems.len(), 1, "{c:?}");
        assert_eq!(c.problems[0].path, "regions[2].role", "{c:?}");
        let c = check("{\n  \"workload\": ");
        assert_eq!(c.problems[0].path, "$");
        assert!(c.problems[0].message.contains("line 2"), "{c:?}");
    }

    #[test]
    fn the_diff_names_leaves_and_ignores_the_version() {
        let a: WorkloadSpec = serde_json::from_str(EXAMPLE).unwrap();
        let mut b = a.clone();
        b.version = 9;
        assert!(diff(Some(&a), &b).is_empty());
        b.policy.cooldown_seconds = 60;
        b.description = None;
        let d = diff(Some(&a), &b);
        let text = render_diff(&d);
        assert!(text.contains("~ policy.cooldown_seconds: "), "{text}");
        assert!(text.contains("-> 60"), "{text}");
        if a.description.is_some() {
            assert!(text.contains("- description: "), "{text}");
        }
        let all_new = diff(None, &a);
        assert!(all_new.iter().all(|c| c.before.is_none()));
        assert!(all_new.iter().any(|c| c.path == "workload"));
    }
}
