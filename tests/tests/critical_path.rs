//! Never waits on the failed Region (issue #13, item 5).
//!
//! The failover's critical path — from taking the lease to the end of the traffic
//! switch — calls nothing in the Region being failed away from and nothing in Route 53's
//! control plane; what the old Region still needs (its buckets' replication rules
//! suspended) is a best-effort step after traffic has moved, bounded, whose failure is
//! recorded and never fails the run. Every task has a deadline, every poll loop a bound,
//! and every failure after the lease ends in compensation: the machines have no
//! machine-level timeout, which a state machine cannot catch.
//!
//! The static checks read `statemachines/*.asl.json` and `template.yaml`; the last test
//! runs the drill's world (the twin, every stack from `template.yaml`, our binaries
//! under `cargo lambda watch`) with the primary hanging as a Region hangs, and reads the
//! twin's call log.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::sync::OnceLock;

use aws_sdk_sfn::types::HistoryEvent;
use harness::drill::{self, Drill, DrillOptions, FAILED, WORKLOAD};
use harness::moto::{bootstrap, repo_root};
use lifeboat::{Store, UnixMillis};
use serde_json::Value;

// ---------------------------------------------------------------- the machines, statically

fn machine(name: &str) -> Value {
    let path = repo_root()
        .join("statemachines")
        .join(format!("{name}.asl.json"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// Every state of a machine, branches included: `(name, state, states of its scope)`.
fn all_states(states: &Value) -> Vec<(String, Value, Value)> {
    let mut out = Vec::new();
    for (name, state) in states.as_object().unwrap() {
        out.push((name.clone(), state.clone(), states.clone()));
        for branch in state["Branches"].as_array().into_iter().flatten() {
            out.extend(all_states(&branch["States"]));
        }
    }
    out
}

/// The states `state` can go to next (not counting Catch).
fn nexts(state: &Value) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Some(n) = state["Next"].as_str() {
        out.push(n.to_owned());
    }
    if let Some(d) = state["Default"].as_str() {
        out.push(d.to_owned());
    }
    for c in state["Choices"].as_array().into_iter().flatten() {
        if let Some(n) = c["Next"].as_str() {
            out.push(n.to_owned());
        }
    }
    out
}

/// Every state reachable from `from` in one scope, following Next, Choices and Catch.
fn reachable(states: &Value, from: &str, stop_at: &[&str]) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![from.to_owned()];
    while let Some(name) = todo.pop() {
        if !seen.insert(name.clone()) || stop_at.contains(&name.as_str()) {
            continue;
        }
        let state = &states[&name];
        todo.extend(nexts(state));
        for c in state["Catch"].as_array().into_iter().flatten() {
            todo.push(c["Next"].as_str().unwrap().to_owned());
        }
    }
    seen
}

/// `template.yaml` as JSON (cfn-lint's loader, which knows the intrinsics' tags).
fn template() -> &'static Value {
    static TEMPLATE: OnceLock<Value> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        bootstrap().unwrap();
        let out = Command::new(repo_root().join(".venv/bin/python"))
            .arg("-c")
            .arg(
                "import json, sys, pathlib\nfrom cfnlint.decode import cfn_yaml\n\
                 print(json.dumps(cfn_yaml.loads(pathlib.Path(sys.argv[1]).read_text())))",
            )
            .arg(repo_root().join("template.yaml"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

/// The timeout (seconds) `template.yaml` gives the function a task's `Resource`
/// placeholder names (`${ReplicaPromoterFunctionArn}` → `ReplicaPromoterFunction`).
fn function_timeout(resource: &str) -> u64 {
    let logical = resource
        .strip_prefix("${")
        .and_then(|r| r.strip_suffix("Arn}"))
        .unwrap_or_else(|| panic!("not a function placeholder: {resource}"));
    let t = template();
    let f = &t["Resources"][logical];
    assert_eq!(f["Type"], "AWS::Serverless::Function", "{logical}");
    f["Properties"]["Timeout"]
        .as_u64()
        .or_else(|| t["Globals"]["Function"]["Timeout"].as_u64())
        .unwrap()
}

/// Lambda tasks that are best effort by design: bounded below their function's
/// timeout, their failure caught and recorded.
const BEST_EFFORT: [&str; 2] = ["SuspendOldRules", "ComputeStandby"];

/// Tasks whose failure is caught, recorded and the run goes on, because traffic has
/// already moved: the best-effort ones, and the failover's re-protection after
/// verification (a replica that could not be made is reported, the writer is not moved
/// back). The failback's re-protection comes before its promotion and compensates.
fn recorded_not_compensated(machine: &str, state: &str) -> bool {
    BEST_EFFORT.contains(&state)
        || (machine == "failover" && ["Reprotect", "AuroraReprotect"].contains(&state))
}

#[test]
fn every_task_has_a_deadline_beyond_its_function_and_no_machine_timeout() {
    for name in ["failover", "failback"] {
        let asl = machine(name);
        // A machine-level timeout ends the execution TIMED_OUT: no Catch sees it, so
        // nothing compensates (Step Functions Developer Guide, "State machine
        // structure", https://docs.aws.amazon.com/step-functions/latest/dg/statemachine-structure.html).
        // Tasks need their own TimeoutSeconds ("Using timeouts to avoid stuck
        // executions", https://docs.aws.amazon.com/step-functions/latest/dg/sfn-stuck-execution.html).
        assert!(
            asl.get("TimeoutSeconds").is_none(),
            "{name}: a machine-level timeout cannot be caught"
        );
        let mut tasks = 0;
        for (state, s, _) in all_states(&asl["States"]) {
            if s["Type"] != "Task" {
                continue;
            }
            tasks += 1;
            let timeout = s["TimeoutSeconds"]
                .as_u64()
                .unwrap_or_else(|| panic!("{name}: {state} has no TimeoutSeconds"));
            let function = function_timeout(s["Resource"].as_str().unwrap());
            if BEST_EFFORT.contains(&state.as_str()) {
                assert!(timeout <= 20, "{name}: {state} is best effort: {timeout} s");
            } else {
                // The function's own timeout comes first (Sandbox.Timedout, retried);
                // the task's is the backstop when Lambda itself does not answer.
                assert!(
                    timeout > function,
                    "{name}: {state} gives up after {timeout} s, its function runs {function} s"
                );
            }
        }
        assert!(tasks > 5, "{name}: {tasks} tasks");
    }
}

/// Where `state`'s catches of `States.ALL` lead.
fn catches_all(state: &Value) -> impl Iterator<Item = &str> {
    state["Catch"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| {
            c["ErrorEquals"]
                .as_array()
                .is_some_and(|e| e.iter().any(|e| e == "States.ALL"))
        })
        .filter_map(|c| c["Next"].as_str())
}

/// Whether `to` is Compensate, or an undo step on the way to it (a planned failover's
/// RenewBeforeUndoDrain and UndoDrain), at most `depth` deep: a Task that catches
/// everything and whose every exit, success or caught error, leads on the same way.
fn always_compensates(states: &Value, to: &str, depth: u32) -> bool {
    if to == "Compensate" {
        return true;
    }
    let u = &states[to];
    let exits: Vec<&str> = u["Catch"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["Next"].as_str())
        .chain(u["Next"].as_str())
        .collect();
    depth > 0
        && u["Type"] == "Task"
        && u["Next"].is_string()
        && catches_all(u).next().is_some()
        && exits
            .iter()
            .all(|n| always_compensates(states, n, depth - 1))
}

#[test]
fn every_failure_after_the_lease_reaches_compensate() {
    for name in ["failover", "failback"] {
        let asl = machine(name);
        let states = &asl["States"];
        // From the state after Acquire (a refused Acquire holds no lease).
        let leased = states["Acquire"]["Next"].as_str().unwrap();
        let after = reachable(states, leased, &["Compensate"]);
        for state in &after {
            let s = &states[state];
            let catch: Vec<&str> = catches_all(s).collect();
            match s["Type"].as_str().unwrap() {
                "Task" | "Parallel" if state == "Compensate" => {}
                "Task" | "Parallel" if recorded_not_compensated(name, state) => {
                    // Caught, and the run goes on without compensating.
                    assert_eq!(catch.len(), 1, "{name}: {state}");
                    let on = reachable(states, catch[0], &["Compensate"]);
                    assert!(
                        on.contains("Finalize"),
                        "{name}: {state}'s failure must not stop the run"
                    );
                }
                "Task" | "Parallel" => assert!(
                    catch.len() == 1 && always_compensates(states, catch[0], 3),
                    "{name}: {state} must compensate on any error (States.Timeout included): {catch:?}"
                ),
                "Fail" => panic!("{name}: {state} fails after the lease without compensating"),
                _ => {}
            }
        }
        assert!(after.contains("Finalize"), "{name}");
    }
}

/// A poll loop (a Wait that the machine comes back to) must pass a numeric guard (a
/// Choice comparing a counter with a bound) on every way round: with no machine
/// timeout, an unbounded loop would hold the lease forever.
#[test]
fn every_poll_loop_is_bounded() {
    let guard = |s: &Value| {
        s["Type"] == "Choice"
            && s["Choices"].as_array().into_iter().flatten().any(|c| {
                c.as_object()
                    .unwrap()
                    .keys()
                    .any(|k| k.starts_with("NumericGreaterThan"))
            })
    };
    for name in ["failover", "failback"] {
        let asl = machine(name);
        for (wait, s, scope) in all_states(&asl["States"]) {
            if s["Type"] != "Wait" {
                continue;
            }
            let mut seen = BTreeSet::new();
            let mut todo = nexts(&s);
            while let Some(n) = todo.pop() {
                assert_ne!(n, wait, "{name}: {wait} loops without a bound");
                if !seen.insert(n.clone()) {
                    continue;
                }
                let next = &scope[&n];
                if !guard(next) {
                    todo.extend(nexts(next));
                }
            }
        }
    }
}

#[test]
fn the_old_primary_is_touched_only_after_traffic_has_moved() {
    // Failover: the critical Parallel flips S3 with the decision's mode (unplanned: the
    // target Region alone); the old rules' suspension comes after the switch.
    let asl = machine("failover");
    let states = &asl["States"];
    let in_parallel: Vec<(String, Value, Value)> = states["PromoteData"]["Branches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| all_states(&b["States"]))
        .collect();
    let flip = in_parallel
        .iter()
        .find(|(_, s, _)| s["Parameters"]["step"] == "s3_flip")
        .expect("an s3_flip in PromoteData");
    assert_eq!(flip.1["Parameters"]["mode.$"], "$.decision.mode");
    assert!(
        !in_parallel
            .iter()
            .any(|(_, s, _)| s["Parameters"]["step"] == "s3_suspend_old")
    );
    let suspend = &states["SuspendOldRules"];
    assert_eq!(suspend["Parameters"]["step"], "s3_suspend_old");
    assert!(reachable(states, "ShiftTraffic", &[]).contains("SuspendOldRules"));
    assert!(!reachable(states, "SuspendOldRules", &[]).contains("ShiftTraffic"));
    assert!(!reachable(states, "PromoteData", &["ShiftTraffic"]).contains("SuspendOldRules"));

    // Failback: planned (both Regions up), the suspension after the last stage.
    let asl = machine("failback");
    let states = &asl["States"];
    let flip = states["MoveWriter"]["Branches"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| all_states(&b["States"]))
        .find(|(_, s, _)| s["Parameters"]["step"] == "s3_flip")
        .expect("an s3_flip in MoveWriter");
    assert_eq!(flip.1["Parameters"]["mode"], "planned");
    assert!(reachable(states, "MoreStages", &[]).contains("SuspendOldRules"));
    assert!(!reachable(states, "SuspendOldRules", &[]).contains("Shift"));
}

// ---------------------------------------------------------------- the twin

async fn history(sfn: &aws_sdk_sfn::Client, execution: &str) -> Vec<HistoryEvent> {
    let mut events = Vec::new();
    let mut token = None;
    loop {
        let out = sfn
            .get_execution_history()
            .execution_arn(execution)
            .set_next_token(token)
            .max_results(1000)
            .send()
            .await
            .unwrap();
        events.extend(out.events().iter().cloned());
        token = out.next_token().map(str::to_owned);
        if token.is_none() {
            return events;
        }
    }
}

/// The functions a failover execution runs (the machine's tasks), as the call log
/// names callers.
const MACHINE_FUNCTIONS: [&str; 3] = ["failover-executor", "replica-promoter", "traffic-shifter"];

/// The primary hangs as a Region does (its AWS APIs, its endpoint and Route 53's
/// control plane): the alarm-started failover succeeds within the RTO objective, and the
/// call log shows that between Acquire's start and ShiftTraffic's end nothing the
/// machine ran called the failed Region or Route 53's control plane; the old bucket's
/// rule suspension ran after, called the hanging Region, gave up within its bound, and
/// its failure is in the run's output, its timeline and the audit log.
#[tokio::test]
async fn a_hanging_primary_is_never_waited_on_between_the_lease_and_the_switch() {
    let mut d = Drill::start(&DrillOptions::default()).await.unwrap();
    let execution = d.fail_over().await.unwrap();
    d.client_rto().await.unwrap();
    assert_eq!(
        d.report.execution_status.as_deref(),
        Some("SUCCEEDED"),
        "{}",
        d.report.render()
    );
    let objective = d.report.rto_objective_ms;
    let internal = d.report.rto_ms.expect("internal RTO measured");
    let client = d.report.client_rto_ms.expect("client RTO measured");
    assert!(internal < objective, "internal RTO {internal} ms");
    assert!(client < objective, "client RTO {client} ms");

    let sfn = aws_sdk_sfn::Client::new(&d.world.config);
    let events = history(&sfn, &execution).await;
    let states = drill::states(&events);
    let span = |name: &str| {
        states
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, entered, exited)| (*entered, exited.expect("exited")))
            .unwrap_or_else(|| panic!("no {name} in {states:?}"))
    };
    let (acquired, _) = span("Acquire");
    let (_, shifted) = span("ShiftTraffic");

    let secs = |t: UnixMillis| t.0 as f64 / 1000.0;
    let calls = d.world.twin.calls(0).await.unwrap();
    let from_machine = |c: &&harness::twin::ApiCall| {
        c.caller
            .as_deref()
            .is_some_and(|f| MACHINE_FUNCTIONS.contains(&f))
    };
    let outside = |c: &&harness::twin::ApiCall| {
        c.region.as_deref() == Some(FAILED) || c.plane.as_deref() == Some("control")
    };
    let critical: Vec<_> = calls
        .iter()
        .filter(from_machine)
        .filter(|c| c.at >= secs(acquired) && c.at <= secs(shifted))
        .filter(outside)
        .collect();
    assert!(
        critical.is_empty(),
        "calls to {FAILED} or Route 53's control plane on the critical path: {critical:#?}"
    );
    // The machine's functions did call while the critical path ran (the log sees them).
    assert!(
        calls
            .iter()
            .filter(from_machine)
            .any(|c| c.at >= secs(acquired) && c.at <= secs(shifted)),
        "no call from the machine's functions logged between Acquire and ShiftTraffic"
    );
    let (suspend_began, suspend_ended) = span("SuspendOldRules");
    assert!(
        suspend_began >= shifted,
        "the suspension runs after the switch"
    );
    // After the switch: the suspension asked the hanging Region, and gave up in time.
    let suspension: Vec<_> = calls
        .iter()
        .filter(|c| c.caller.as_deref() == Some("replica-promoter"))
        .filter(|c| c.region.as_deref() == Some(FAILED))
        .filter(|c| c.at >= secs(suspend_began) - 0.5)
        .collect();
    assert!(
        suspension
            .iter()
            .any(|c| c.operation.as_deref() == Some("GetBucketReplication")),
        "{suspension:#?}"
    );
    assert!(
        suspension.iter().all(|c| c.status.is_none()),
        "{suspension:#?}"
    );
    let took = suspend_ended.since(suspend_began);
    assert!(took < 15_000, "the suspension took {took} ms");
    let (promote_began, promote_ended) = span("PromoteData");
    println!(
        "PromoteData {} ms, ShiftTraffic ended {} ms after Acquire began, SuspendOldRules {took} ms; RTO internal {internal} ms, client {client} ms (objective {objective} ms)",
        promote_ended.since(promote_began),
        shifted.since(acquired),
    );

    // Recorded: in the run's output, its timeline and the audit log.
    let output: Value = sfn
        .describe_execution()
        .execution_arn(&execution)
        .send()
        .await
        .unwrap()
        .output()
        .map(|o| serde_json::from_str(o).unwrap())
        .unwrap();
    let outcome = &output["best_effort"]["suspend_old_rules"];
    assert_eq!(outcome["status"], "old_rules_active", "{output:#}");
    let old: Vec<&Value> = outcome["resources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["region"] == FAILED)
        .collect();
    assert!(
        !old.is_empty() && old.iter().all(|r| r["action"] == "not_suspended"),
        "{outcome:#}"
    );
    assert!(output["run"]["id"].is_string(), "finalize's output is kept");
    let runs = d.world.store.list_runs(WORKLOAD).await.unwrap();
    let run = runs.last().unwrap();
    let mark: BTreeMap<&str, Option<&str>> = run
        .timeline
        .iter()
        .map(|e| (e.step.as_str(), e.detail.as_deref()))
        .collect();
    assert_eq!(
        mark.get("suspend_old_rules"),
        Some(&Some("best effort: old_rules_active")),
        "{:#?}",
        run.timeline
    );
    let events = d.world.store.list_events(WORKLOAD).await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "s3_old_rules_not_suspended" && e.reason.contains(FAILED)),
        "{events:#?}"
    );
    // The survivor's bucket replicates to the others regardless.
    let spec = d.world.store.get_spec(WORKLOAD).await.unwrap();
    let bucket = &spec.region(drill::SURVIVOR).unwrap().buckets[0].name;
    let to = harness::data::replicates_to(&d.world.config, drill::SURVIVOR, bucket)
        .await
        .unwrap();
    assert_eq!(to.len(), spec.regions.len() - 1, "{to:?}");
}
