//! The SAM template and the state machines agree: every `${...}` placeholder in a machine
//! has a substitution, every substitution names a function of the template, and every
//! error a machine retries or catches is one of ours, a Lambda service error or a
//! `States.*` error. cfn-lint and asl-validator (run by scripts/test) check each file on
//! its own; this checks them together.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use lifeboat::ErrorName;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// Top-level resources of the template: name -> (Type, the resource's lines).
fn resources(template: &str) -> BTreeMap<String, (String, Vec<String>)> {
    let mut out = BTreeMap::new();
    let mut in_resources = false;
    let mut current: Option<String> = None;
    for line in template.lines() {
        if !line.starts_with(' ') && !line.trim().is_empty() {
            in_resources = line.starts_with("Resources:");
            current = None;
            continue;
        }
        if !in_resources || line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if indent(line) == 2 && line.trim_end().ends_with(':') {
            let name = line.trim().trim_end_matches(':').to_owned();
            out.insert(name.clone(), (String::new(), Vec::new()));
            current = Some(name);
            continue;
        }
        if let Some(name) = &current {
            let entry = out.get_mut(name).unwrap();
            if let Some(t) = line.trim().strip_prefix("Type: ")
                && indent(line) == 4
            {
                entry.0 = t.trim().to_owned();
            }
            entry.1.push(line.to_owned());
        }
    }
    out
}

/// `DefinitionUri` and the `DefinitionSubstitutions` map of a state machine resource.
fn machine(lines: &[String]) -> (String, BTreeMap<String, String>) {
    let mut uri = String::new();
    let mut subs = BTreeMap::new();
    let mut in_subs = None;
    for line in lines {
        let t = line.trim();
        if let Some(u) = t.strip_prefix("DefinitionUri: ") {
            uri = u.to_owned();
        }
        if let Some(level) = in_subs {
            if indent(line) > level {
                let (k, v) = t.split_once(':').unwrap();
                subs.insert(k.trim().to_owned(), v.trim().to_owned());
                continue;
            }
            in_subs = None;
        }
        if t == "DefinitionSubstitutions:" {
            in_subs = Some(indent(line));
        }
    }
    (uri, subs)
}

fn placeholders(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').unwrap();
        out.insert(after[..end].to_owned());
        rest = &after[end..];
    }
    out
}

fn error_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "ErrorEquals" {
                    for name in v.as_array().unwrap() {
                        out.insert(name.as_str().unwrap().to_owned());
                    }
                } else {
                    error_names(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| error_names(i, out)),
        _ => {}
    }
}

fn retry_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "Retry" {
                    error_names(v, out);
                } else {
                    retry_names(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| retry_names(i, out)),
        _ => {}
    }
}

#[test]
fn every_placeholder_is_substituted_by_a_function_of_the_template() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let resources = resources(&template);
    let functions: BTreeSet<&str> = resources
        .iter()
        .filter(|(_, (t, _))| t == "AWS::Serverless::Function")
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(functions.len(), 6, "{functions:?}");

    let machines: Vec<_> = resources
        .iter()
        .filter(|(_, (t, _))| t == "AWS::Serverless::StateMachine")
        .collect();
    assert!(!machines.is_empty(), "no state machine in template.yaml");
    let mut files_in_template = BTreeSet::new();
    for (name, (_, lines)) in machines {
        let (uri, subs) = machine(lines);
        assert!(!uri.is_empty(), "{name} has no DefinitionUri");
        files_in_template.insert(uri.clone());
        let text = std::fs::read_to_string(root().join(&uri)).unwrap();
        let used = placeholders(&text);
        let given: BTreeSet<String> = subs.keys().cloned().collect();
        assert_eq!(
            used, given,
            "{name}: placeholders in {uri} vs DefinitionSubstitutions"
        );
        for (key, value) in &subs {
            let target = value
                .strip_prefix("!GetAtt ")
                .and_then(|v| v.strip_suffix(".Arn"))
                .unwrap_or_else(|| {
                    panic!("{name}.{key}: `{value}` is not `!GetAtt <Function>.Arn`")
                });
            assert!(
                functions.contains(target),
                "{name}.{key} names `{target}`, not a function"
            );
        }
    }
    // Every machine file is deployed.
    for entry in std::fs::read_dir(root().join("statemachines")).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".asl.json") {
            let rel = format!(
                "statemachines/{}",
                path.file_name().unwrap().to_string_lossy()
            );
            assert!(
                files_in_template.contains(&rel),
                "{rel} is not in template.yaml"
            );
        }
    }
}

#[test]
fn machines_retry_and_catch_only_errors_that_exist() {
    let ours: BTreeSet<&str> = ErrorName::ALL.iter().map(|n| n.as_str()).collect();
    let lambda = [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
    ];
    let mut checked = 0;
    for entry in std::fs::read_dir(root().join("statemachines")).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".asl.json") {
            continue;
        }
        let asl: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let mut names = BTreeSet::new();
        error_names(&asl, &mut names);
        for name in &names {
            assert!(
                ours.contains(name.as_str())
                    || lambda.contains(&name.as_str())
                    || name.starts_with("States."),
                "{}: `{name}` is neither one of our error names nor a Lambda/States error",
                path.display()
            );
        }
        // No blanket retry: States.ALL / States.TaskFailed may be caught, never retried.
        let mut retried = BTreeSet::new();
        retry_names(&asl, &mut retried);
        assert!(!retried.is_empty(), "{}: no Retry at all", path.display());
        for blanket in ["States.ALL", "States.TaskFailed"] {
            assert!(
                !retried.contains(blanket),
                "{}: retries {blanket}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 1);
}
