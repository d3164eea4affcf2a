//! Every fixture in `events/failover-executor/` parses into the input its name says.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use failover_executor::request::{Input, Mode, Step};

fn fixtures() -> Vec<(String, serde_json::Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/failover-executor");
    let mut out: Vec<(String, serde_json::Value)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|f| f.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&p).unwrap();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn every_fixture_parses_into_the_input_its_name_says() {
    let mut seen = std::collections::BTreeSet::new();
    for (name, value) in fixtures() {
        let input = Input::parse(value).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kind = match (&input, name.as_str()) {
            (Input::Alarm(a), "alarm-action.json") => {
                assert!(a.in_alarm && a.name == "checkout-use1-5xx", "{a:?}");
                assert_eq!(a.changed_at.rfc3339(), "2026-11-23T20:04:53.123Z");
                "alarm-action"
            }
            (Input::Alarm(a), "alarm-action-ok.json") => {
                assert!(!a.in_alarm && a.state == "OK", "{a:?}");
                "alarm-action-ok"
            }
            (Input::Alarm(a), "eventbridge-alarm-state-change.json") => {
                assert!(a.in_alarm, "{a:?}");
                assert_eq!(a.name, "lifeboat-checkout-us-east-1-switch");
                assert_eq!(a.changed_at.rfc3339(), "2026-11-23T20:04:53.027Z");
                "eventbridge"
            }
            (Input::Operator(r), "operator-request.json") => {
                assert_eq!((r.mode, r.dry_run), (Mode::Planned, false));
                "operator"
            }
            (Input::Operator(r), "operator-dry-run.json") => {
                assert!(r.dry_run && r.accept_data_loss && r.mode == Mode::Unplanned);
                "operator-dry-run"
            }
            (Input::Step(Step::Decide(d)), "step-decide.json") => {
                assert!(d.request.trigger.is_some());
                "decide"
            }
            (Input::Step(Step::Acquire(a)), "step-acquire.json") => {
                assert_eq!(a.decision.to_region, "eu-west-1");
                "acquire"
            }
            (Input::Step(Step::Finalize(f)), "step-finalize.json") => {
                assert_eq!(f.lease.epoch, 4);
                assert_eq!(f.timeline.len(), 2);
                "finalize"
            }
            (Input::Step(Step::Release(r)), "step-release.json") => {
                assert!(r.error.is_some());
                "release"
            }
            (Input::Step(Step::DecideFailback(d)), "step-decide-failback.json") => {
                assert!(d.request.check().is_ok() && !d.request.drill);
                "decide_failback"
            }
            (Input::Step(Step::CheckLag(c)), "step-check-lag.json") => {
                assert_eq!(
                    c.decision.operation,
                    failover_executor::decide::Operation::Failback
                );
                assert_eq!(c.decision.to_region, "us-east-1");
                "check_lag"
            }
            (Input::Step(Step::PrepareDrill(p)), "step-prepare-drill.json") => {
                assert_eq!(p.request.workload, "checkout");
                "prepare_drill"
            }
            (Input::Step(Step::Report(r)), "step-report.json") => {
                let report =
                    failover_executor::drill::build_report(&r.state, lifeboat::UnixMillis::now());
                assert_eq!(report.rto.measured_ms, Some(30_850), "{report:?}");
                assert_eq!(report.rpo.measured_ms, Some(1_500));
                assert!(report.objectives_met && !report.rpo.simulated);
                "report"
            }
            (input, name) => panic!("{name} parsed as an unexpected input: {input:?}"),
        };
        seen.insert(kind);
    }
    assert_eq!(seen.len(), 13, "every entry point has a fixture: {seen:?}");
}

#[test]
fn the_step_fixtures_carry_the_decision_the_decide_step_makes() {
    // The decision inside the later steps' fixtures round-trips exactly.
    for (name, value) in fixtures() {
        if let Input::Step(Step::Acquire(a)) = Input::parse(value.clone()).unwrap() {
            let back = serde_json::to_value(&a.decision).unwrap();
            assert_eq!(back, value["decision"], "{name}");
        }
    }
}
