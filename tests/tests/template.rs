//! The SAM template, the state machines, the functions and their `cargo lambda deploy`
//! metadata agree:
//! - every function is built by cargo-lambda for arm64 on `provided.al2023`, logs JSON,
//!   traces, and gets the environment its `main` requires;
//! - every `${...}` placeholder of a machine has a substitution, every substitution is
//!   used and names a function (`XxxFunctionArn` → `XxxFunction`, binary `xxx`) or a machine
//!   (`XxxStateMachineArn` → `XxxStateMachine`, `statemachines/xxx.asl.json`) of the
//!   template, as `harness::machines` substitutes them; every machine file is deployed;
//! - a machine may invoke every function it names and start every machine it nests;
//! - no IAM statement has a wildcard action, and `"*"` resources only for the actions AWS
//!   authorizes on `"*"` alone (PutMetricData then under a namespace condition);
//! - the schedules deliver what the functions parse (the drill's constant input is a
//!   `DrillRequest`);
//! - each function's `[package.metadata.lambda.deploy]` has the template's memory, timeout
//!   and tracing, and only variables the template sets too;
//! - every error a machine retries or catches is one of ours, a Lambda service error or a
//!   `States.*` error.
//!
//! cfn-lint, `sam validate --lint`, asl-validator and the IAM check of the SAM-transformed
//! template (scripts/test, scripts/sam-check) check each file on its own; this checks them
//! together. The template is read with cfn-lint's own YAML loader (from `.venv`, installed
//! by `scripts/bootstrap`), so `!Ref`, `!GetAtt` and `!Sub` arrive as `Ref`, `Fn::GetAtt`
//! and `Fn::Sub`, exactly as CloudFormation reads them.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use harness::moto::{bootstrap, repo_root};
use lifeboat::ErrorName;
use serde_json::{Value, json};

/// The files checked: the repository, or a copy named by `LIFEBOAT_TEMPLATE_ROOT` (to
/// see these tests fail on a broken template without touching the work tree).
fn root() -> PathBuf {
    std::env::var_os("LIFEBOAT_TEMPLATE_ROOT").map_or_else(repo_root, PathBuf::from)
}

/// `{"template": <template.yaml as JSON>, "cargo": {<function>: <package.metadata>}}`.
const LOAD: &str = r#"
import json, sys, tomllib, pathlib
from cfnlint.decode import cfn_yaml
root = pathlib.Path(sys.argv[1])
template = cfn_yaml.loads((root / "template.yaml").read_text())
cargo = {}
for manifest in sorted((root / "functions").glob("*/Cargo.toml")):
    meta = tomllib.loads(manifest.read_text())["package"].get("metadata", {})
    cargo[manifest.parent.name] = meta
print(json.dumps({"template": template, "cargo": cargo}))
"#;

fn loaded() -> &'static Value {
    static LOADED: OnceLock<Value> = OnceLock::new();
    LOADED.get_or_init(|| {
        bootstrap().unwrap();
        let out = Command::new(repo_root().join(".venv/bin/python"))
            .arg("-c")
            .arg(LOAD)
            .arg(root())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reading template.yaml: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

fn template() -> &'static Value {
    &loaded()["template"]
}

fn resources_of(kind: &str) -> BTreeMap<&'static str, &'static Value> {
    template()["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(n, r)| (n.as_str(), r))
        .collect()
}

fn functions() -> BTreeMap<&'static str, &'static Value> {
    resources_of("AWS::Serverless::Function")
}

fn machines() -> BTreeMap<&'static str, &'static Value> {
    resources_of("AWS::Serverless::StateMachine")
}

/// `HealthProbe` → `health-probe`.
fn kebab(pascal: &str) -> String {
    let mut out = String::new();
    for (i, c) in pascal.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
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

fn machine_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(root().join("statemachines"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".asl.json"))
        .map(|n| format!("statemachines/{n}"))
        .collect();
    files.sort();
    files
}

/// A value or both branches of an `Fn::If` (conditions are not evaluated here).
fn branches(v: &Value) -> Vec<&Value> {
    if let Some(arms) = v.get("Fn::If").and_then(Value::as_array) {
        return arms[1..].iter().flat_map(branches).collect();
    }
    if v.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue") {
        return Vec::new();
    }
    vec![v]
}

fn list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(items) => items.iter().collect(),
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// SAM policy templates whose grants are scoped to the resource they name.
const SCOPED_POLICY_TEMPLATES: [&str; 7] = [
    "LambdaInvokePolicy",
    "DynamoDBCrudPolicy",
    "DynamoDBReadPolicy",
    "DynamoDBWritePolicy",
    "S3ReadPolicy",
    "S3WritePolicy",
    "StepFunctionsExecutionPolicy",
];

/// The inline statements and the SAM policy templates (name, parameters) of a resource.
fn policies(resource: &Value) -> (Vec<&Value>, Vec<(&str, &Value)>) {
    let mut statements = Vec::new();
    let mut templates = Vec::new();
    for item in list(&resource["Properties"]["Policies"]) {
        for policy in branches(item) {
            let Some(map) = policy.as_object() else {
                panic!("policy `{policy}` is a managed policy name: name its statements instead");
            };
            for (key, value) in map {
                if key == "Statement" {
                    statements.extend(list(value).into_iter().flat_map(branches));
                } else {
                    templates.push((key.as_str(), value));
                }
            }
        }
    }
    (statements, templates)
}

fn strings(v: &Value) -> Vec<&str> {
    list(v).into_iter().filter_map(Value::as_str).collect()
}

/// Global function settings with a function's own overrides.
fn setting<'a>(function: &'a Value, key: &str) -> &'a Value {
    let own = &function["Properties"][key];
    if own.is_null() {
        &template()["Globals"]["Function"][key]
    } else {
        own
    }
}

/// Environment variable names a function gets (Globals and its own).
fn env_names(function: &Value) -> BTreeSet<String> {
    let global = &template()["Globals"]["Function"]["Environment"]["Variables"];
    let own = &function["Properties"]["Environment"]["Variables"];
    [global, own]
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|m| m.keys().cloned())
        .collect()
}

fn function_with_binary(binary: &str) -> &'static Value {
    functions()
        .into_values()
        .find(|f| f["Metadata"]["BuildProperties"]["Binary"] == binary)
        .unwrap_or_else(|| panic!("no function builds binary `{binary}`"))
}

#[test]
fn functions_are_rust_on_arm64_al2023_with_json_logs_and_tracing() {
    let globals = &template()["Globals"]["Function"];
    assert_eq!(globals["Runtime"], "provided.al2023");
    assert_eq!(globals["Architectures"], json!(["arm64"]));
    assert_eq!(globals["Handler"], "bootstrap");
    assert_eq!(globals["LoggingConfig"]["LogFormat"], "JSON");
    assert_eq!(globals["Tracing"], "Active");

    let functions = functions();
    let binaries: BTreeSet<String> = functions
        .values()
        .map(|f| {
            f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let expected: BTreeSet<String> = harness::lambda::FUNCTIONS
        .iter()
        .map(|f| (*f).to_owned())
        .collect();
    assert_eq!(binaries, expected, "one function per workspace binary");

    for (name, f) in &functions {
        let binary = f["Metadata"]["BuildProperties"]["Binary"].as_str().unwrap();
        assert_eq!(f["Metadata"]["BuildMethod"], "rust-cargolambda", "{name}");
        assert_eq!(f["Properties"]["CodeUri"], ".", "{name}: CodeUri");
        assert_eq!(
            kebab(name.strip_suffix("Function").unwrap()),
            binary,
            "{name} builds `{binary}`: the harness names placeholders after the binary"
        );
        assert_eq!(setting(f, "Runtime"), "provided.al2023", "{name}");
        assert_eq!(setting(f, "Architectures"), &json!(["arm64"]), "{name}");
        assert_eq!(setting(f, "Tracing"), "Active", "{name}");
        assert_eq!(setting(f, "LoggingConfig")["LogFormat"], "JSON", "{name}");
        // A fixed name is what `cargo lambda deploy` updates (README, Deploying): every
        // function has one, or `cargo lambda deploy` would create a second function
        // beside the one the machines call.
        let fname = &f["Properties"]["FunctionName"];
        assert_eq!(fname, &json!(format!("lifeboat-{binary}")), "{name}");
    }
}

#[test]
fn every_placeholder_is_substituted_by_a_function_or_machine_of_the_template() {
    let functions = functions();
    let machines = machines();
    assert!(machines.len() >= 3, "{:?}", machines.keys());
    let mut deployed = BTreeSet::new();
    for (name, m) in &machines {
        let props = &m["Properties"];
        let uri = props["DefinitionUri"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no DefinitionUri (machines live in files)"));
        deployed.insert(uri.to_owned());
        let stem = uri
            .strip_prefix("statemachines/")
            .and_then(|u| u.strip_suffix(".asl.json"))
            .unwrap_or_else(|| panic!("{name}: {uri} is not statemachines/<name>.asl.json"));
        assert_eq!(
            kebab(name.strip_suffix("StateMachine").unwrap()),
            stem,
            "{name} deploys {uri}"
        );
        // The harness and failover-executor's FAILOVER_STATE_MACHINE_ARN use this name.
        assert_eq!(
            props["Name"],
            json!({ "Fn::Sub": format!("lifeboat-{stem}-${{AWS::Region}}") }),
            "{name}: Name"
        );

        let text = std::fs::read_to_string(root().join(uri)).unwrap();
        let used = placeholders(&text);
        let subs = props["DefinitionSubstitutions"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let given: BTreeSet<String> = subs.keys().cloned().collect();
        assert_eq!(
            used, given,
            "{name}: placeholders in {uri} vs its DefinitionSubstitutions"
        );
        for (key, value) in &subs {
            if let Some(f) = key.strip_suffix("FunctionArn") {
                let target = format!("{f}Function");
                assert_eq!(
                    value,
                    &json!({ "Fn::GetAtt": [target, "Arn"] }),
                    "{name}.{key}"
                );
                assert!(
                    functions.contains_key(target.as_str()),
                    "{name}.{key}: no function {target}"
                );
            } else if let Some(m) = key.strip_suffix("StateMachineArn") {
                let target = format!("{m}StateMachine");
                assert_eq!(value, &json!({ "Ref": target }), "{name}.{key}");
                assert!(
                    machines.contains_key(target.as_str()),
                    "{name}.{key}: no machine {target}"
                );
            } else {
                panic!(
                    "{name}.{key}: a substitution is a `...FunctionArn` or `...StateMachineArn`"
                );
            }
        }
    }
    for file in machine_files() {
        assert!(deployed.contains(&file), "{file} is not in template.yaml");
    }
}

#[test]
fn machines_may_invoke_the_functions_and_start_the_machines_they_name() {
    for (name, m) in machines() {
        let (statements, templates) = policies(m);
        let invokable: BTreeSet<&str> = templates
            .iter()
            .filter(|(t, _)| *t == "LambdaInvokePolicy")
            .filter_map(|(_, p)| p["FunctionName"]["Ref"].as_str())
            .collect();
        let startable: BTreeSet<&str> = statements
            .iter()
            .filter(|s| strings(&s["Action"]).contains(&"states:StartExecution"))
            .flat_map(|s| list(&s["Resource"]))
            .filter_map(|r| r["Ref"].as_str())
            .collect();
        let subs = m["Properties"]["DefinitionSubstitutions"]
            .as_object()
            .unwrap();
        for key in subs.keys() {
            if let Some(f) = key.strip_suffix("FunctionArn") {
                assert!(
                    invokable.contains(format!("{f}Function").as_str()),
                    "{name} names {key} but has no LambdaInvokePolicy for {f}Function"
                );
            }
            if let Some(n) = key.strip_suffix("StateMachineArn") {
                assert!(
                    startable.contains(format!("{n}StateMachine").as_str()),
                    "{name} nests {key} but may not states:StartExecution it"
                );
            }
        }
        // A `.sync` nested execution is watched through Step Functions' managed rule.
        let uri = m["Properties"]["DefinitionUri"].as_str().unwrap();
        let text = std::fs::read_to_string(root().join(uri)).unwrap();
        if text.contains("states:startExecution.sync") {
            let actions: BTreeSet<&str> = statements
                .iter()
                .filter(|s| {
                    list(&s["Resource"]).iter().any(|r| {
                        r.to_string()
                            .contains("rule/StepFunctionsGetEventsForStepFunctionsExecutionRule")
                    })
                })
                .flat_map(|s| strings(&s["Action"]))
                .collect();
            for needed in ["events:PutTargets", "events:PutRule", "events:DescribeRule"] {
                assert!(
                    actions.contains(needed),
                    "{name}: {needed} on the managed rule"
                );
            }
            let watch: BTreeSet<&str> = statements
                .iter()
                .flat_map(|s| strings(&s["Action"]))
                .collect();
            for needed in ["states:DescribeExecution", "states:StopExecution"] {
                assert!(watch.contains(needed), "{name}: {needed}");
            }
        }
    }
}

/// Actions AWS documents without resource-level permissions (no resource type in the
/// Service Authorization Reference), which must name `"*"`.
const NO_RESOURCE_LEVEL: [&str; 3] = [
    "cloudwatch:PutMetricData",
    "cloudwatch:GetMetricData",
    "autoscaling:DescribeAutoScalingGroups",
];

#[test]
fn no_iam_statement_is_a_wildcard() {
    let mut checked = 0;
    let all: Vec<(&str, &Value)> = functions().into_iter().chain(machines()).collect();
    for (name, resource) in all {
        let (statements, templates) = policies(resource);
        for (t, _) in &templates {
            assert!(
                SCOPED_POLICY_TEMPLATES.contains(t),
                "{name}: SAM policy template {t} is not known to be scoped to a named resource"
            );
        }
        for s in statements {
            checked += 1;
            let actions = strings(&s["Action"]);
            assert!(!actions.is_empty(), "{name}: statement without Action: {s}");
            for a in &actions {
                assert!(
                    *a != "*" && !a.ends_with(":*"),
                    "{name}: wildcard action {a}"
                );
            }
            if list(&s["Resource"]).iter().any(|r| *r == "*") {
                for a in &actions {
                    assert!(
                        NO_RESOURCE_LEVEL.contains(a),
                        "{name}: {a} on Resource \"*\": it has resource-level permissions"
                    );
                }
                if actions.contains(&"cloudwatch:PutMetricData") {
                    let ns = &s["Condition"]["StringEquals"]["cloudwatch:namespace"];
                    assert!(
                        !strings(ns).is_empty()
                            && strings(ns).iter().all(|n| n.starts_with("Lifeboat")),
                        "{name}: PutMetricData on \"*\" needs a cloudwatch:namespace condition in Lifeboat's namespaces"
                    );
                }
            }
        }
    }
    assert!(checked > 10, "only {checked} statements found");
}

#[test]
fn schedules_deliver_what_the_functions_parse() {
    // health-probe and cost-reporter take EventBridge's "Scheduled Event" (an EventBridge
    // rule, `Schedule`); EventBridge Scheduler (`ScheduleV2`) would send something else.
    for binary in ["health-probe", "cost-reporter"] {
        let f = function_with_binary(binary);
        let events = f["Properties"]["Events"].as_object().unwrap();
        let schedules: Vec<&Value> = events
            .values()
            .filter(|e| {
                e["Type"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("Schedule"))
            })
            .collect();
        assert_eq!(schedules.len(), 1, "{binary}: one schedule");
        assert_eq!(schedules[0]["Type"], "Schedule", "{binary}");
        assert!(
            schedules[0]["Properties"]["Input"].is_null(),
            "{binary}: the schedule must deliver the Scheduled Event itself"
        );
    }
    // Probe: one prober stack (HEALTH# counters are per probed Region, not per prober).
    let probe = &function_with_binary("health-probe")["Properties"]["Events"]["Probe"];
    assert_eq!(
        probe["Properties"]["State"],
        json!({"Fn::If": ["IsProber", "ENABLED", "DISABLED"]})
    );
    // Always armed: every Region of the workload has a health alarm where the metric is
    // published (the prober's stack), whichever is primary now, and it reaches the
    // executor on ALARM and on OK (a drained Region comes back from the OK).
    let resources = template()["Resources"].as_object().unwrap().clone();
    for (param, condition) in [
        ("HomeRegion", "IsProber"),
        ("Region2", "IsProber"),
        ("Region3", "ProberAndRegion3"),
    ] {
        let alarms: Vec<&Value> = resources
            .values()
            .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
            .filter(|r| r["Properties"]["MetricName"] == "RegionHealthy")
            .filter(|r| {
                r["Properties"]["Dimensions"]
                    .as_array()
                    .is_some_and(|d| d.iter().any(|d| d["Value"] == json!({"Ref": param})))
            })
            .collect();
        assert_eq!(alarms.len(), 1, "one health alarm watches {param}");
        let alarm = alarms[0];
        assert_eq!(alarm["Condition"], condition, "{param}");
        let executor = json!([{"Fn::GetAtt": ["FailoverExecutorFunction", "Arn"]}]);
        assert_eq!(alarm["Properties"]["AlarmActions"], executor, "{param}");
        assert_eq!(alarm["Properties"]["OKActions"], executor, "{param}");
        assert_eq!(
            alarm["Properties"]["TreatMissingData"], "missing",
            "{param}"
        );
    }
    assert!(
        template()["Parameters"].get("PrimaryRegion").is_none(),
        "no alarm may follow a fixed primary: after a failover it would watch the wrong Region"
    );

    // The drill's constant input is a drill request of the stack's workload.
    let drill = &machines()["DrillStateMachine"]["Properties"]["Events"];
    let schedule = drill
        .as_object()
        .unwrap()
        .values()
        .find(|e| e["Type"] == "Schedule")
        .expect("the drill has a schedule");
    assert_eq!(
        schedule["Properties"]["Schedule"],
        json!({"Ref": "DrillSchedule"})
    );
    let input = schedule["Properties"]["Input"]["Fn::Sub"]
        .as_str()
        .expect("Input: !Sub '<json>'");
    let workload = template()["Parameters"]["WorkloadId"]["Default"]
        .as_str()
        .unwrap();
    let input = input.replace("${WorkloadId}", workload);
    assert!(placeholders(&input).is_empty(), "{input}");
    let request: failover_executor::drill::DrillRequest = serde_json::from_str(&input)
        .unwrap_or_else(|e| panic!("the drill's schedule input is not a drill request: {e}"));
    assert_eq!(request.workload, workload);
    assert!(
        request.target_region.is_none(),
        "the decision picks the target"
    );
    assert!(!request.reason.is_empty() && !request.requested_by.is_empty());
}

#[test]
fn functions_get_the_environment_their_main_requires() {
    let table = "LIFEBOAT_TABLE";
    assert_eq!(failover_executor::ENV_TABLE, table);
    assert_eq!(replica_promoter::TABLE_ENV, table);
    assert_eq!(traffic_shifter::ENV_TABLE, table);
    assert_eq!(deploy_wave::ENV_TABLE, table);
    for binary in harness::lambda::FUNCTIONS {
        let f = function_with_binary(binary);
        assert!(env_names(f).contains(table), "{binary}: {table}");
    }
    let executor = function_with_binary("failover-executor");
    let env = &executor["Properties"]["Environment"]["Variables"];
    for name in [
        failover_executor::ENV_STATE_MACHINE,
        failover_executor::ENV_REPORT_BUCKET,
    ] {
        assert!(!env[name].is_null(), "failover-executor: {name}");
    }
    // The ARN is built from the machine's fixed name (no cycle): it must be that name.
    let arn = env[failover_executor::ENV_STATE_MACHINE]["Fn::Sub"]
        .as_str()
        .unwrap();
    let failover_name = machines()["FailoverStateMachine"]["Properties"]["Name"]["Fn::Sub"]
        .as_str()
        .unwrap();
    assert!(
        arn.ends_with(&format!(":stateMachine:{failover_name}")),
        "{arn} vs {failover_name}"
    );
}

#[test]
fn cargo_lambda_deploy_metadata_matches_the_template() {
    let cargo = &loaded()["cargo"];
    for binary in harness::lambda::FUNCTIONS {
        let f = function_with_binary(binary);
        let deploy = &cargo[binary]["lambda"]["deploy"];
        assert!(
            deploy.is_object(),
            "functions/{binary}/Cargo.toml: no [package.metadata.lambda.deploy]"
        );
        assert_eq!(
            deploy["memory"],
            *setting(f, "MemorySize"),
            "{binary}: memory"
        );
        assert_eq!(
            deploy["timeout"],
            *setting(f, "Timeout"),
            "{binary}: timeout"
        );
        assert_eq!(deploy["tracing"], "active", "{binary}: tracing");
        let in_template = env_names(f);
        let env = deploy["env"].as_object().cloned().unwrap_or_default();
        assert!(
            env.contains_key("LIFEBOAT_TABLE"),
            "{binary}: LIFEBOAT_TABLE"
        );
        for name in env.keys() {
            assert!(
                in_template.contains(name),
                "{binary}: Cargo.toml sets {name}, template.yaml does not"
            );
        }
    }
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
fn machines_retry_and_catch_only_errors_that_exist() {
    let ours: BTreeSet<&str> = ErrorName::ALL.iter().map(|n| n.as_str()).collect();
    let lambda = [
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        // A function that ran out of time (Lambda troubleshooting, Sandbox.Timedout) and
        // an unhandled Lambda error Step Functions could not name ("Handle Lambda service
        // exceptions"): both retried, the steps are idempotent.
        "Lambda.Unknown",
        "Sandbox.Timedout",
    ];
    let mut checked = 0;
    for file in machine_files() {
        let asl: Value =
            serde_json::from_str(&std::fs::read_to_string(root().join(&file)).unwrap()).unwrap();
        let mut names = BTreeSet::new();
        error_names(&asl, &mut names);
        for name in &names {
            assert!(
                ours.contains(name.as_str())
                    || lambda.contains(&name.as_str())
                    || name.starts_with("States."),
                "{file}: `{name}` is neither one of our error names nor a Lambda/States error"
            );
        }
        // No blanket retry: States.ALL / States.TaskFailed may be caught, never retried.
        let mut retried = BTreeSet::new();
        retry_names(&asl, &mut retried);
        assert!(!retried.is_empty(), "{file}: no Retry at all");
        for blanket in ["States.ALL", "States.TaskFailed"] {
            assert!(!retried.contains(blanket), "{file}: retries {blanket}");
        }
        // A function that times out (a Region that hangs, a slow dependency) is retried,
        // not left to a Catch that compensates after the database was promoted.
        for timeout in ["Sandbox.Timedout", "Lambda.Unknown"] {
            assert!(
                retried.contains(timeout),
                "{file}: does not retry {timeout}"
            );
        }
        checked += 1;
    }
    assert!(checked >= 1);
}

/// The RTO a dry run projects is for what the stack deploys: `LIFEBOAT_DEPLOYED` (the
/// executor's view) says what the health and switch alarms and the probe window are,
/// and `lifeboat::rto::Deployed::default()` is the template with its defaults.
#[test]
fn the_rto_budget_projects_what_the_template_deploys() {
    let params = &template()["Parameters"];
    let default_of = |name: &str| -> String {
        let d = &params[name]["Default"];
        d.as_str().map_or_else(|| d.to_string(), str::to_owned)
    };
    let sub = function_with_binary("failover-executor")["Properties"]["Environment"]
        ["Variables"]["LIFEBOAT_DEPLOYED"]["Fn::Sub"]
        .as_str()
        .expect("LIFEBOAT_DEPLOYED is a !Sub string");
    let mut text = sub.to_owned();
    for name in ["ProbeWindowSeconds", "FailoverEvaluationPeriods"] {
        text = text.replace(&format!("${{{name}}}"), &default_of(name));
    }
    assert!(!text.contains("${"), "unresolved: {text}");
    let deployed: lifeboat::rto::Deployed = serde_json::from_str(&text).unwrap();
    assert_eq!(deployed, lifeboat::rto::Deployed::default());

    let alarm = |logical: &str| template()["Resources"][logical]["Properties"].clone();
    let number = |v: &Value| -> u32 {
        match v {
            Value::Object(r) => default_of(r["Ref"].as_str().unwrap()).parse().unwrap(),
            v => v.as_u64().map(|n| n as u32).unwrap(),
        }
    };
    for logical in [
        "HomeHealthAlarm",
        "Region2HealthAlarm",
        "Region3HealthAlarm",
    ] {
        let a = alarm(logical);
        let f = &deployed.failover_alarm;
        assert_eq!(number(&a["Period"]), f.period_seconds, "{logical}");
        assert_eq!(
            number(&a["EvaluationPeriods"]),
            f.evaluation_periods,
            "{logical}"
        );
        assert_eq!(
            number(&a["DatapointsToAlarm"]),
            f.datapoints_to_alarm,
            "{logical}"
        );
    }
    for logical in ["Switch1Alarm", "Switch2Alarm", "Switch3Alarm"] {
        let a = alarm(logical);
        let s = &deployed.switch_alarm;
        assert_eq!(number(&a["Period"]), s.period_seconds, "{logical}");
        assert_eq!(
            number(&a["EvaluationPeriods"]),
            s.evaluation_periods,
            "{logical}"
        );
        let datapoints = if a["DatapointsToAlarm"].is_null() {
            s.evaluation_periods
        } else {
            number(&a["DatapointsToAlarm"])
        };
        assert_eq!(datapoints, s.datapoints_to_alarm, "{logical}");
    }
    assert_eq!(
        default_of("ProbeWindowSeconds").parse::<u32>().unwrap(),
        deployed.probe_window_seconds
    );
}

/// Evaluates a Rules assertion that is `Fn::Equals` of a parameter and a literal, with
/// the parameter set to `value`.
fn assertion_holds(assert: &Value, parameter: &str, value: &str) -> Option<bool> {
    let args = assert.get("Fn::Equals")?.as_array()?;
    let side = |v: &Value| match v.get("Ref").and_then(Value::as_str) {
        Some(p) if p == parameter => Some(value.to_owned()),
        Some(_) => None,
        None => v.as_str().map(str::to_owned),
    };
    Some(side(args.first()?)? == side(args.get(1)?)?)
}

#[test]
fn a_strongly_consistent_table_is_refused_with_a_reason_until_fencing_needs_no_transactions() {
    // Every fenced write is a TransactWriteItems (shared/src/store/dynamo.rs), and MRSC
    // global tables do not support transactions: STRONG must fail at deploy time, by a
    // rule that says why, not at the first failover.
    let t = template();
    let allowed = list(&t["Parameters"]["TableConsistency"]["AllowedValues"]);
    assert!(
        allowed.iter().any(|v| v.as_str() == Some("STRONG")),
        "STRONG stays an allowed value so the rule's message, not a generic one, answers"
    );
    let rules = t["Rules"].as_object().expect("Rules");
    let refusing: Vec<(&String, &Value)> = rules
        .iter()
        .flat_map(|(name, rule)| {
            list(&rule["Assertions"])
                .into_iter()
                .map(move |a| (name, a))
        })
        .filter(|(_, a)| assertion_holds(&a["Assert"], "TableConsistency", "STRONG") == Some(false))
        .collect();
    assert_eq!(refusing.len(), 1, "one rule refuses STRONG: {rules:?}");
    let (_, a) = refusing[0];
    assert_eq!(
        assertion_holds(&a["Assert"], "TableConsistency", "EVENTUAL"),
        Some(true),
        "EVENTUAL deploys"
    );
    let why = a["AssertDescription"].as_str().unwrap_or_default();
    for needle in ["STRONG", "TransactWriteItems", "MRSC", "EVENTUAL"] {
        assert!(why.contains(needle), "{needle} missing from: {why}");
    }
}
