//! Alarm event → decision latency, warm: the CloudWatch alarm-action payload as the
//! runtime hands it over (JSON text), parsed, recognised, mapped to its workload Region
//! through the specs, admitted, named, and decided (target, roles, weights, arbiter,
//! plan), with the StartExecution input and the decision serialized. No I/O: the specs
//! and health items are what the handler reads from the table before deciding.
//!
//! Run with `scripts/bench-decision` (or `cargo bench -p failover-executor --bench
//! decision`). Prints p50 / p99 / mean per iteration for 1 and for 100 workloads.

// Bench code: a panic here is a broken benchmark, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use failover_executor::alarm;
use failover_executor::decide::decide;
use failover_executor::request::Input;
use lifeboat::store::{HealthRecord, Verdict};
use lifeboat::{UnixMillis, WorkloadSpec};

const ALARM: &str = include_str!("../../../events/failover-executor/alarm-action.json");
const SPEC: &str = include_str!("../../../events/model/example-spec.json");
const WARMUP: usize = 2_000;
const ITERATIONS: usize = 20_000;

fn specs(n: usize) -> Vec<WorkloadSpec> {
    let base: WorkloadSpec = serde_json::from_str(SPEC).unwrap();
    // The real one last, so mapping scans every other workload first.
    let mut out: Vec<WorkloadSpec> = (1..n)
        .map(|i| {
            let mut s = base.clone();
            s.workload = format!("workload-{i}");
            for r in &mut s.regions {
                r.alarms = vec![format!("workload-{i}-{}-5xx", r.region)];
                if let Some(sw) = r.routing_switch.as_mut() {
                    sw.alarm_name = format!("lifeboat-workload-{i}-{}-switch", r.region);
                }
            }
            s
        })
        .collect();
    out.push(base);
    out
}

fn health(now: UnixMillis) -> Vec<HealthRecord> {
    [
        ("us-east-1", Verdict::Unhealthy, None),
        ("eu-west-1", Verdict::Healthy, Some(1.5)),
        ("ap-southeast-1", Verdict::Healthy, Some(3.0)),
    ]
    .into_iter()
    .map(|(region, verdict, lag)| HealthRecord {
        region: region.into(),
        verdict,
        consecutive_failures: 0,
        consecutive_successes: 3,
        probe_latency_ms: Some(20),
        replication_lag_seconds: lag,
        lag_grade: None,
        observed_at: UnixMillis(now.0 - 1_000),
        detail: None,
    })
    .collect()
}

/// One alarm event all the way to a serialized decision.
fn once(specs: &[WorkloadSpec], health: &[HealthRecord], now: UnixMillis) -> usize {
    let value: serde_json::Value = serde_json::from_str(ALARM).unwrap();
    let Input::Alarm(signal) = Input::parse(value).unwrap() else {
        panic!("not an alarm")
    };
    let targets = alarm::map_alarm(specs, &signal.name);
    let target = &targets[0];
    alarm::admit(target, "ALARM").unwrap();
    let name = alarm::execution_name(&target.spec.workload, &signal.name, signal.changed_at);
    let request = alarm::failover_request(target, &signal);
    let input = serde_json::to_string(&request).unwrap();
    let decision = decide(target.spec, health, &request, "eu-west-1", now).unwrap();
    let out = serde_json::to_vec(&decision).unwrap();
    name.len() + input.len() + out.len()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn run(workloads: usize) {
    let specs = specs(workloads);
    let now = UnixMillis::now();
    let health = health(now);
    for _ in 0..WARMUP {
        black_box(once(black_box(&specs), &health, now));
    }
    let mut samples = Vec::with_capacity(ITERATIONS);
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        black_box(once(black_box(&specs), &health, now));
        samples.push(t.elapsed());
    }
    let total = start.elapsed();
    samples.sort();
    println!(
        "alarm -> decision, {workloads:>3} workload(s): p50 {:>7.1} us  p99 {:>7.1} us  mean {:>7.1} us  ({ITERATIONS} iterations, {:.0}/s)",
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        total.as_secs_f64() * 1e6 / ITERATIONS as f64,
        ITERATIONS as f64 / total.as_secs_f64(),
    );
}

fn main() {
    // `cargo test --all-targets` runs benches as tests with `--bench` absent: keep it short.
    if !std::env::args().any(|a| a == "--bench") {
        once(&specs(1), &health(UnixMillis::now()), UnixMillis::now());
        println!("decision bench: smoke run ok (run with --bench for figures)");
        return;
    }
    println!("target: <= 1000 us p50 (README, \"Benchmarks\")");
    run(1);
    run(100);
}
