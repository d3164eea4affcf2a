//! deploy-wave against moto: the example workload's blue/green records seeded by
//! `harness::deploy`, the real handler and traffic-shifter's `shift_version`, traffic
//! metrics put into CloudWatch (PutMetricData) to drive the gates. The steps are driven
//! here as `statemachines/deploy-waves.asl.json` drives them; the last test runs that
//! machine itself in moto's Step Functions with our binaries under `cargo lambda watch`.
//!
//! moto's GetMetricData has no percentiles, so latency is read from per-percentile
//! metrics (see `harness::deploy`); the `p95`/`p99` statistics themselves are checked
//! with aws-smithy-mocks at the end.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aws_sdk_cloudwatch as cw;
use aws_sdk_route53 as r53;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_types::SdkConfig;
use deploy_wave::Deployer;
use harness::deploy::{Traffic, put_traffic, set_alarm};
use harness::lambda::{LambdaWatch, free_port};
use harness::machines;
use harness::moto::{MotoOptions, MotoServer};
use lambda_runtime::{Context, LambdaEvent};
use lifeboat::aws::{RegionalClients, for_region};
use lifeboat::model::{RolloutState, Slot};
use lifeboat::store::{LeasePurpose, LeaseRequest, RunKind, RunOutcome};
use lifeboat::{DynamoStore, Error, ErrorName, Store, UnixMillis, WorkloadSpec};
use serde_json::{Value, json};
use traffic_shifter::{InsyncWait, Shifter};

const HOME: &str = "us-east-1";
/// The example's lease Region (`lifeboat::store::lease_region`): its first Region that
/// is not the primary, whichever Region asks.
const LEASE_REGION: &str = "eu-west-1";
const OLD: &str = "2024.11.2";
const NEW: &str = "2024.12.1";

struct Ctx {
    config: SdkConfig,
    table: String,
    spec: WorkloadSpec,
}

impl Ctx {
    /// The table's replica in `region`.
    fn store_in(&self, region: &str) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&for_region(&self.config, region)),
            &self.table,
        )
    }

    /// The lease Region's replica, where a deploy takes its lease and writes the spec,
    /// whichever Region's functions run it.
    fn store(&self) -> DynamoStore {
        self.store_in(LEASE_REGION)
    }

    /// Our functions as `home`'s stack runs them: their own replica, and the others'.
    fn deployer_in(&self, home: &str) -> Deployer<DynamoStore> {
        let (config, table) = (self.config.clone(), self.table.clone());
        Deployer::new(
            self.store_in(home),
            RegionalClients::new(&for_region(&self.config, home), cw::Client::new),
        )
        .with_replicas(home, move |region| {
            DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&for_region(&config, region)),
                &table,
            )
        })
    }

    fn deployer(&self) -> Deployer<DynamoStore> {
        self.deployer_in(HOME)
    }

    fn shifter(&self) -> Shifter<DynamoStore> {
        let (config, table) = (self.config.clone(), self.table.clone());
        Shifter::new(
            self.store_in(HOME),
            RegionalClients::new(&self.config, cw::Client::new),
            r53::Client::new(&for_region(&self.config, "us-east-1")),
            InsyncWait {
                interval: Duration::ZERO,
                max_polls: 3,
            },
        )
        .with_regional_stores(move |region| {
            DynamoStore::new(
                aws_sdk_dynamodb::Client::new(&for_region(&config, region)),
                &table,
            )
        })
    }

    /// Weights of a Region's deploy records: (blue, green).
    async fn weights(&self, region: &str) -> (i64, i64) {
        let d = self.spec.region(region).unwrap().deploy.as_ref().unwrap();
        let w = harness::route53::weights(&self.config, &d.hosted_zone_id, &d.record_name)
            .await
            .unwrap();
        (w[&d.blue.set_identifier], w[&d.green.set_identifier])
    }

    async fn traffic(&self, region: &str, slot: Slot, t: Traffic) {
        let at = UnixMillis::now().0.saturating_sub(300);
        put_traffic(&self.config, &self.spec, region, slot, t, at)
            .await
            .unwrap();
    }
}

async fn setup(prefix: &str) -> Ctx {
    setup_on(MotoServer::shared(), prefix).await
}

async fn setup_on(moto: &MotoServer, prefix: &str) -> Ctx {
    let table = harness::table::unique_name(prefix);
    let config = moto.sdk_config(HOME).await;
    harness::table::create(&config, &table, &["eu-west-1", "ap-southeast-1"])
        .await
        .unwrap();
    let example = harness::world::example_spec().unwrap();
    let routed = harness::route53::seed(moto, &example, &table)
        .await
        .unwrap();
    let seeded = harness::deploy::seed(moto, &example, &routed, &table)
        .await
        .unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &table);
    let spec = store.create_spec(&seeded).await.unwrap();
    // Global-table replication, which moto does not do: the spec in every replica.
    harness::table::replicate(&config, &table, HOME, &["eu-west-1", "ap-southeast-1"])
        .await
        .unwrap();
    assert_eq!(
        lifeboat::store::lease_region(&spec, HOME),
        LEASE_REGION,
        "the example's lease Region"
    );
    let ctx = Ctx {
        config,
        table,
        spec,
    };
    // An hour of healthy baseline on every Region's live (blue) slot.
    for r in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
        put_traffic(
            &ctx.config,
            &ctx.spec,
            r,
            Slot::Blue,
            Traffic::HEALTHY,
            UnixMillis::now().0 - 60_000,
        )
        .await
        .unwrap();
    }
    ctx
}

async fn call(d: &Deployer<DynamoStore>, input: Value) -> Result<Value, Error> {
    d.handle(LambdaEvent::new(input, Context::default())).await
}

async fn shift(ctx: &Ctx, deploy: &Value, region: &str, slot: &Value, percent: &Value) -> Value {
    ctx.shifter()
        .handle(LambdaEvent::new(
            json!({"workload": "checkout", "step": "shift_version", "target_region": region,
                   "epoch": deploy["epoch"], "holder": deploy["holder"],
                   "arbiter_region": deploy["lease_region"],
                   "slot": slot, "percent": percent}),
            Context::default(),
        ))
        .await
        .unwrap()
}

fn request(extra: Value) -> Value {
    let mut r = json!({
        "workload": "checkout", "version": NEW, "canary_steps": [10, 100], "bake_seconds": 2,
        "gates": { "baseline_seconds": 600, "min_requests": 100 }
    });
    for (k, v) in extra.as_object().unwrap() {
        r[k] = v.clone();
    }
    r
}

/// Drives the steps as deploy-waves.asl.json does; `traffic(region, percent)` is what
/// the new slot serves while it bakes. Returns the last `finish` output.
async fn drive(ctx: &Ctx, req: Value, id: &str, traffic: impl Fn(&str, u32) -> Traffic) -> Value {
    let d = ctx.deployer();
    let started = call(
        &d,
        json!({"step": "start", "request": req, "deploy_id": id, "holder": format!("exec:{id}")}),
    )
    .await
    .unwrap();
    let deploy = started["deploy"].clone();
    for wave in started["waves"].as_array().unwrap() {
        for region in wave["regions"].as_array().unwrap() {
            let region = region.as_str().unwrap();
            let ask = |step: &str, extra: Value| {
                let mut v = json!({"step": step, "deploy": deploy, "region": region});
                for (k, x) in extra.as_object().unwrap() {
                    v[k] = x.clone();
                }
                v
            };
            loop {
                let next = call(&d, ask("advance", json!({}))).await.unwrap();
                match next["action"].as_str().unwrap() {
                    "shift" => {}
                    "promote" => {
                        call(&d, ask("promote_region", json!({}))).await.unwrap();
                        break;
                    }
                    "halt" => {
                        shift(ctx, &deploy, region, &next["old_slot"], &json!(100)).await;
                        call(
                            &d,
                            ask("rollback_region", json!({"reason": next["reasons"]})),
                        )
                        .await
                        .unwrap();
                        break;
                    }
                    _ => break,
                }
                shift(ctx, &deploy, region, &next["slot"], &next["percent"]).await;
                let slot: Slot = serde_json::from_value(next["slot"].clone()).unwrap();
                let percent = u32::try_from(next["percent"].as_u64().unwrap()).unwrap();
                ctx.traffic(region, slot, traffic(region, percent)).await;
                let gate = call(
                    &d,
                    ask(
                        "gate",
                        json!({"stage": next["stage"], "round": next["round"]}),
                    ),
                )
                .await
                .unwrap();
                if gate["decision"] == "rollback" {
                    shift(ctx, &deploy, region, &gate["old_slot"], &json!(100)).await;
                    call(
                        &d,
                        ask("rollback_region", json!({"reason": gate["reasons"]})),
                    )
                    .await
                    .unwrap();
                    break;
                }
                assert_eq!(gate["decision"], "promote", "{gate:#}");
            }
        }
    }
    let mut fin = call(&d, json!({"step": "finish", "deploy": deploy}))
        .await
        .unwrap();
    if fin["outcome"] == "rolling_back" {
        for item in fin["rollback"].as_array().unwrap() {
            let region = item["region"].as_str().unwrap();
            shift(ctx, &deploy, region, &item["slot"], &item["percent"]).await;
            call(
                &d,
                json!({"step": "rollback_region", "deploy": deploy, "region": region, "reason": "rolled back with the deploy"}),
            )
            .await
            .unwrap();
        }
        fin = call(
            &d,
            json!({"step": "finish", "deploy": deploy, "rollback_done": true}),
        )
        .await
        .unwrap();
    }
    fin
}

fn version(spec: &WorkloadSpec, region: &str) -> (Option<String>, Slot) {
    let d = spec.region(region).unwrap().deploy.as_ref().unwrap();
    (d.version.clone(), d.live)
}

#[tokio::test]
async fn a_healthy_rollout_finishes_every_wave() {
    let ctx = setup("deploy-healthy").await;
    let fin = drive(&ctx, request(json!({})), "healthy-1", |_, _| {
        Traffic::HEALTHY
    })
    .await;
    assert_eq!(fin["outcome"], "succeeded", "{fin:#}");

    let spec = ctx.store().get_spec("checkout").await.unwrap();
    for r in ["ap-southeast-1", "eu-west-1", "us-east-1"] {
        assert_eq!(version(&spec, r), (Some(NEW.into()), Slot::Green), "{r}");
        let d = spec.region(r).unwrap().deploy.as_ref().unwrap();
        assert_eq!(d.previous_version.as_deref(), Some(OLD));
        let ro = d.rollout.as_ref().unwrap();
        assert_eq!(ro.state, RolloutState::Promoted);
        assert_eq!(ro.gates.len(), 2, "one gate per canary step");
        assert!(ro.baseline.as_ref().unwrap().requests.unwrap() >= 1000.0);
        assert_eq!(ctx.weights(r).await, (0, 100), "{r}");
    }
    // The run record: waves in the default order, timings and gate values.
    let runs = ctx.store().list_runs("checkout").await.unwrap();
    let run = runs.iter().find(|r| r.id == "healthy-1").unwrap();
    assert_eq!(run.kind, RunKind::Deploy);
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(
        run.details["waves"],
        json!([{"wave": 0, "regions": ["ap-southeast-1"]}, {"wave": 1, "regions": ["eu-west-1"]}, {"wave": 2, "regions": ["us-east-1"]}])
    );
    let gate_entries: Vec<_> = run
        .timeline
        .iter()
        .filter(|t| t.step.contains("stage"))
        .collect();
    assert_eq!(gate_entries.len(), 6, "{:#?}", run.timeline);
    assert!(
        gate_entries[0]
            .step
            .starts_with("ap-southeast-1 stage 0 (10 %)")
    );
    assert!(
        gate_entries[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("error_rate")
    );
    // Every step is audited; the lease is released.
    let events = ctx.store().list_events("checkout").await.unwrap();
    let count = |a: &str| events.iter().filter(|e| e.action == a).count();
    assert_eq!(count("deploy_started"), 1);
    assert_eq!(count("stage_started"), 6);
    assert_eq!(count("gate_evaluated"), 6);
    assert_eq!(count("region_promoted"), 3);
    assert_eq!(count("deploy_finished"), 1);
    assert_eq!(ctx.store().get_lease("checkout").await.unwrap(), None);
}

/// Whichever Region's stack starts it, a deploy takes its lease in the lease Region's
/// replica, writes the spec there, and a second deploy from another Region's stack meets
/// that lease in that same replica.
#[tokio::test]
async fn a_deploy_from_any_regions_stack_leases_in_the_lease_region() {
    let ctx = setup("deploy-lease-region").await;
    let started = call(
        &ctx.deployer_in("ap-southeast-1"),
        json!({"step": "start", "request": request(json!({})), "deploy_id": "d-ap", "holder": "exec:d-ap"}),
    )
    .await
    .unwrap();
    assert_eq!(started["deploy"]["lease_region"], LEASE_REGION);
    let lease = ctx.store().get_lease("checkout").await.unwrap().unwrap();
    assert_eq!(lease.holder, "exec:d-ap");
    assert_eq!(lease.purpose, LeasePurpose::Deploy);
    assert_eq!(json!(lease.epoch), started["deploy"]["epoch"]);
    // The rollouts are recorded (fenced) in the lease Region's spec; the others'
    // replicas have only what replication would bring, which moto does not do.
    let spec = ctx.store().get_spec("checkout").await.unwrap();
    assert_eq!(spec.version, ctx.spec.version + 1);
    for home in ["ap-southeast-1", "us-east-1"] {
        assert_eq!(
            ctx.store_in(home).get_lease("checkout").await.unwrap(),
            None
        );
        assert_eq!(
            ctx.store_in(home).get_spec("checkout").await.unwrap(),
            ctx.spec
        );
    }
    let e = call(
        &ctx.deployer_in("us-east-1"),
        json!({"step": "start", "request": request(json!({})), "deploy_id": "d-us", "holder": "exec:d-us"}),
    )
    .await
    .unwrap_err();
    assert_eq!(e.name(), ErrorName::LeaseHeld, "{e}");
    assert_eq!(
        ctx.store().get_lease("checkout").await.unwrap(),
        Some(lease)
    );
}

#[tokio::test]
async fn a_bad_canary_rolls_back_at_the_first_wave() {
    let ctx = setup("deploy-bad-canary").await;
    let fin = drive(&ctx, request(json!({})), "bad-canary-1", |_, _| {
        Traffic::FAILING
    })
    .await;
    assert_eq!(fin["outcome"], "rolled_back", "{fin:#}");
    let spec = ctx.store().get_spec("checkout").await.unwrap();
    let ap = spec
        .region("ap-southeast-1")
        .unwrap()
        .deploy
        .as_ref()
        .unwrap();
    let ro = ap.rollout.as_ref().unwrap();
    assert_eq!(ro.state, RolloutState::RolledBack);
    assert_eq!(ro.gates.len(), 1, "stopped at the first canary step");
    assert!(
        ro.gates[0].reasons[0].contains("error rate 5.000 %"),
        "{:?}",
        ro.gates[0]
    );
    assert_eq!(ctx.weights("ap-southeast-1").await, (100, 0));
    for r in ["ap-southeast-1", "eu-west-1", "us-east-1"] {
        assert_eq!(version(&spec, r), (Some(OLD.into()), Slot::Blue), "{r}");
        assert_eq!(ctx.weights(r).await, (100, 0), "{r}");
    }
    for r in ["eu-west-1", "us-east-1"] {
        let ro = spec
            .region(r)
            .unwrap()
            .deploy
            .as_ref()
            .unwrap()
            .rollout
            .as_ref()
            .unwrap();
        assert_eq!(ro.state, RolloutState::Skipped, "{r}: never started");
    }
    let run = ctx
        .store()
        .list_runs("checkout")
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(run.outcome, RunOutcome::RolledBack);
    assert_eq!(run.details["failed_region"], "ap-southeast-1");
    assert_eq!(ctx.store().get_lease("checkout").await.unwrap(), None);
}

#[tokio::test]
async fn a_bad_third_wave_rolls_back_the_finished_ones() {
    let ctx = setup("deploy-bad-third").await;
    let fin = drive(&ctx, request(json!({})), "bad-third-1", |r, _| {
        if r == "us-east-1" {
            Traffic {
                p95_ms: 700.0,
                ..Traffic::HEALTHY
            }
        } else {
            Traffic::HEALTHY
        }
    })
    .await;
    assert_eq!(fin["outcome"], "rolled_back", "{fin:#}");
    let spec = ctx.store().get_spec("checkout").await.unwrap();
    for r in ["ap-southeast-1", "eu-west-1", "us-east-1"] {
        assert_eq!(version(&spec, r), (Some(OLD.into()), Slot::Blue), "{r}");
        assert_eq!(ctx.weights(r).await, (100, 0), "{r}");
        let ro = spec
            .region(r)
            .unwrap()
            .deploy
            .as_ref()
            .unwrap()
            .rollout
            .as_ref()
            .unwrap();
        assert_eq!(ro.state, RolloutState::RolledBack, "{r}");
    }
    let us = spec.region("us-east-1").unwrap().deploy.as_ref().unwrap();
    assert!(
        us.rollout.as_ref().unwrap().gates[0].reasons[0]
            .contains("p95 700 ms over the rollback threshold")
    );
    let events = ctx.store().list_events("checkout").await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "region_rolled_back")
            .count(),
        3
    );

    // rollback_scope "region": the finished Regions keep the new version.
    let ctx = setup("deploy-bad-third-scoped").await;
    let fin = drive(
        &ctx,
        request(json!({"rollback_scope": "region"})),
        "bad-third-2",
        |r, _| {
            if r == "us-east-1" {
                Traffic::FAILING
            } else {
                Traffic::HEALTHY
            }
        },
    )
    .await;
    assert_eq!(fin["outcome"], "rolled_back");
    let spec = ctx.store().get_spec("checkout").await.unwrap();
    assert_eq!(version(&spec, "eu-west-1"), (Some(NEW.into()), Slot::Green));
    assert_eq!(version(&spec, "us-east-1"), (Some(OLD.into()), Slot::Blue));
    assert_eq!(ctx.weights("eu-west-1").await, (0, 100));
}

async fn nothing_changed(ctx: &Ctx) {
    assert_eq!(ctx.store().get_spec("checkout").await.unwrap(), ctx.spec);
    assert!(
        ctx.store()
            .list_events("checkout")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(ctx.store().list_runs("checkout").await.unwrap().is_empty());
    for r in ["ap-southeast-1", "eu-west-1", "us-east-1"] {
        assert_eq!(ctx.weights(r).await, (100, 0), "{r}");
    }
}

#[tokio::test]
async fn frozen_while_a_failover_holds_the_lease() {
    let ctx = setup("deploy-frozen").await;
    let lease = ctx
        .store()
        .acquire_lease(
            &LeaseRequest {
                workload: "checkout".into(),
                holder: "exec:failover-1".into(),
                purpose: LeasePurpose::Failover,
                ttl: Duration::from_secs(600),
            },
            UnixMillis::now(),
        )
        .await
        .unwrap();
    let err = call(
        &ctx.deployer(),
        json!({"step": "start", "request": request(json!({})), "deploy_id": "frozen-1", "holder": "exec:frozen-1"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), ErrorName::DeployFrozen);
    assert!(err.to_string().contains("exec:failover-1"), "{err}");
    assert_eq!(
        ctx.store().get_lease("checkout").await.unwrap(),
        Some(lease)
    );
    nothing_changed(&ctx).await;
}

#[tokio::test]
async fn bad_input_is_a_named_error_and_changes_nothing() {
    let ctx = setup("deploy-bad-input").await;
    let cases = [
        (
            json!({"waves": [["ap-southeast-1"], ["mars-north-1"]]}),
            "`mars-north-1` is not a Region",
        ),
        (json!({"version": ""}), "version: must not be empty"),
        (json!({"canary_steps": [10, 50]}), "must end at 100"),
        (
            json!({"canary_steps": [50, 10, 100]}),
            "must strictly increase",
        ),
        (json!({"bake_seconds": 0}), "bake_seconds"),
    ];
    for (extra, want) in cases {
        for input in [
            json!({"step": "plan", "request": request(extra.clone())}),
            json!({"step": "start", "request": request(extra.clone()), "deploy_id": "bad-1", "holder": "exec:bad-1"}),
        ] {
            let err = call(&ctx.deployer(), input).await.unwrap_err();
            assert_eq!(err.name(), ErrorName::InvalidInput, "{err}");
            assert!(err.to_string().contains(want), "{err} (wanted {want})");
        }
    }
    assert_eq!(ctx.store().get_lease("checkout").await.unwrap(), None);
    nothing_changed(&ctx).await;
}

#[tokio::test]
async fn an_alarm_firing_before_the_start_needs_a_reason() {
    let ctx = setup("deploy-prealarm").await;
    let d = ctx
        .spec
        .region("eu-west-1")
        .unwrap()
        .deploy
        .as_ref()
        .unwrap();
    let alarm = d.alarms[0].clone();
    set_alarm(&ctx.config, "eu-west-1", &alarm, true)
        .await
        .unwrap();

    let err = call(
        &ctx.deployer(),
        json!({"step": "start", "request": request(json!({})), "deploy_id": "hotfix-1", "holder": "exec:hotfix-1"}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput);
    assert!(
        err.to_string().contains(&format!("{alarm} in eu-west-1")),
        "{err}"
    );
    assert!(
        err.to_string().contains("allow_preexisting_alarms"),
        "{err}"
    );
    nothing_changed(&ctx).await;

    // With a reason: reported, audited, not gated on; the hotfix goes out.
    let req = request(
        json!({"allow_preexisting_alarms": {"reason": "INC-1: the hotfix for this alarm"}}),
    );
    let plan = call(
        &ctx.deployer(),
        json!({"step": "plan", "request": req.clone()}),
    )
    .await
    .unwrap();
    assert_eq!(
        plan["preexisting_alarms"],
        json!([{"region": "eu-west-1", "alarm_name": alarm}])
    );
    let fin = drive(&ctx, req, "hotfix-2", |_, _| Traffic::HEALTHY).await;
    assert_eq!(fin["outcome"], "succeeded", "{fin:#}");
    let events = ctx.store().list_events("checkout").await.unwrap();
    let allowed = events
        .iter()
        .find(|e| e.action == "preexisting_alarms_allowed")
        .unwrap();
    assert_eq!(allowed.reason, "INC-1: the hotfix for this alarm");
}

#[tokio::test]
async fn a_drained_region_is_skipped_and_reported() {
    let ctx = setup("deploy-drained").await;
    let mut spec = ctx.store().get_spec("checkout").await.unwrap();
    spec.regions[0].weight = 70;
    spec.regions[2].weight = 0;
    let spec = ctx.store().put_spec(&spec, None).await.unwrap();
    let ctx = Ctx { spec, ..ctx };
    let plan = call(
        &ctx.deployer(),
        json!({"step": "plan", "request": request(json!({}))}),
    )
    .await
    .unwrap();
    assert_eq!(
        plan["skipped"],
        json!([{"region": "ap-southeast-1", "reason": "drained"}])
    );
    assert_eq!(
        plan["waves"],
        json!([{"wave": 0, "regions": ["eu-west-1"]}, {"wave": 1, "regions": ["us-east-1"]}])
    );
}

/// GetMetricData with the real percentile statistics (`p95`, `p99`), which moto does
/// not compute: aws-smithy-mocks checks the request and feeds the answer.
#[tokio::test]
async fn the_percentile_statistics_are_asked_for_and_read() {
    let spec = harness::world::example_spec().unwrap();
    let d = spec.region("eu-west-1").unwrap().deploy.clone().unwrap();
    let result = |id: &str, values: Vec<f64>| {
        cw::types::MetricDataResult::builder()
            .id(id)
            .set_values(Some(values))
            .build()
    };
    let rule = mock!(cw::Client::get_metric_data)
        .match_requests(|r| {
            let stats: Vec<&str> = r
                .metric_data_queries()
                .iter()
                .filter_map(|q| q.metric_stat().and_then(|s| s.stat()))
                .collect();
            let green = r.metric_data_queries().iter().all(|q| {
                q.metric_stat()
                    .and_then(|s| s.metric())
                    .is_some_and(|m| m.dimensions().iter().any(|d| d.value() == Some("green")))
            });
            stats == ["Sum", "Sum", "p95", "p99"] && green
        })
        .then_output(move || {
            cw::operation::get_metric_data::GetMetricDataOutput::builder()
                .metric_data_results(result("errors", vec![3.0]))
                .metric_data_results(result("requests", vec![1000.0, 1000.0]))
                .metric_data_results(result("p95", vec![150.0, 180.0]))
                .metric_data_results(result("p99", vec![310.0]))
                .build()
        });
    let client = mock_client!(cw, RuleMode::Sequential, [&rule]);
    let values = deploy_wave::cloud::measure(&client, &d.metrics, &d.green, UnixMillis::now(), 900)
        .await
        .unwrap();
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(values.requests, Some(2000.0));
    assert_eq!(values.error_rate, Some(0.0015));
    assert_eq!(values.p95_ms, Some(180.0), "the worst bucket");
    assert_eq!(values.p99_ms, Some(310.0));
}

/// The whole rollout through `statemachines/deploy-waves.asl.json` in moto's Step
/// Functions, its tasks running our deploy-wave and traffic-shifter binaries under
/// `cargo lambda watch`; healthy traffic is put into CloudWatch all along.
#[tokio::test]
async fn the_deploy_waves_machine_rolls_out_every_wave() {
    let watch_port = free_port().unwrap();
    let moto = MotoServer::start_with(&MotoOptions {
        lambda_endpoint: Some(format!("http://127.0.0.1:{watch_port}")),
        execute_state_machines: true,
        ..MotoOptions::default()
    })
    .unwrap();
    let ctx = setup_on(&moto, "deploy-machine").await;
    let sfn = aws_sdk_sfn::Client::new(&moto.sdk_config(HOME).await);
    let machine = machines::create(&sfn, "deploy-waves", HOME).await.unwrap();
    let _watch = LambdaWatch::start_stack(
        watch_port,
        &moto,
        HOME,
        &ctx.table,
        &[("INSYNC_POLL_INTERVAL_MS", "0".into())],
        &["deploy-wave", "traffic-shifter"],
    )
    .unwrap();

    // Healthy traffic on both slots of every Region while the machine runs.
    let (config, spec) = (ctx.config.clone(), ctx.spec.clone());
    let traffic = tokio::spawn(async move {
        loop {
            for r in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
                for slot in [Slot::Blue, Slot::Green] {
                    let _ = put_traffic(
                        &config,
                        &spec,
                        r,
                        slot,
                        Traffic::HEALTHY,
                        UnixMillis::now().0,
                    )
                    .await;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });

    let input = request(json!({"canary_steps": [50, 100], "requested_by": "lifeboat-tests"}));
    let exec = sfn
        .start_execution()
        .state_machine_arn(&machine)
        .name("machine-rollout-1")
        .input(input.to_string())
        .send()
        .await
        .unwrap();
    let end = machines::wait(&sfn, exec.execution_arn(), Duration::from_secs(240))
        .await
        .unwrap();
    traffic.abort();
    assert_eq!(
        end.status,
        aws_sdk_sfn::types::ExecutionStatus::Succeeded,
        "{end:?}"
    );
    let out: Value = serde_json::from_str(end.output.as_deref().unwrap()).unwrap();
    assert_eq!(out["outcome"], "succeeded", "{out:#}");

    let spec = ctx.store().get_spec("checkout").await.unwrap();
    for r in ["ap-southeast-1", "eu-west-1", "us-east-1"] {
        assert_eq!(version(&spec, r), (Some(NEW.into()), Slot::Green), "{r}");
        assert_eq!(ctx.weights(r).await, (0, 100), "{r}");
    }
    let run = ctx
        .store()
        .list_runs("checkout")
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(run.id, "machine-rollout-1");
    assert_eq!(run.outcome, RunOutcome::Succeeded);
    assert_eq!(ctx.store().get_lease("checkout").await.unwrap(), None);
}

/// A deploy started from us-east-1's stack and an operator's failover from
/// ap-southeast-1's contend for the one lease in the lease Region's replica: the deploy
/// renews it there while it bakes; the failover (ap-southeast-1's failover-executor,
/// step `acquire`) takes it over with a new epoch; the deploy's next steps, wherever
/// they run, get `StaleEpoch`, shift nothing more, and record `deploy_superseded` once.
#[tokio::test]
async fn a_failover_from_another_regions_stack_supersedes_a_deploy() {
    use failover_executor::request::{FailoverRequest, Mode};
    let ctx = setup("deploy-superseded").await;
    let us = ctx.deployer_in("us-east-1");
    let started = call(
        &us,
        json!({"step": "start", "request": request(json!({})), "deploy_id": "d-1", "holder": "exec:d-1"}),
    )
    .await
    .unwrap();
    let deploy = started["deploy"].clone();
    let region = "ap-southeast-1";
    let next = call(
        &us,
        json!({"step": "advance", "deploy": deploy, "region": region}),
    )
    .await
    .unwrap();
    assert_eq!(next["action"], "shift", "{next:#}");
    shift(&ctx, &deploy, region, &next["slot"], &next["percent"]).await;
    let canary = ctx.weights(region).await;
    assert_eq!(canary, (90, 10));

    // The bake's renewal, from another Region's stack too: the same lease, later.
    let ttl = Duration::from_secs(deploy_wave::lease_ttl_seconds(2));
    let asked = UnixMillis::now();
    let renewed = call(
        &ctx.deployer_in("eu-west-1"),
        json!({"step": "renew", "deploy": deploy}),
    )
    .await
    .unwrap();
    let answered = UnixMillis::now();
    assert_eq!(renewed["epoch"], deploy["epoch"]);
    let after = ctx.store().get_lease("checkout").await.unwrap().unwrap();
    assert!(
        asked.plus(ttl) <= after.expires_at && after.expires_at <= answered.plus(ttl),
        "renewed to a bake plus the margin from now: {after:?}"
    );

    // The failover, decided and acquired by ap-southeast-1's failover-executor.
    let now = UnixMillis::now();
    let health: Vec<_> = [
        ("us-east-1", lifeboat::store::Verdict::Unhealthy),
        ("eu-west-1", lifeboat::store::Verdict::Healthy),
        ("ap-southeast-1", lifeboat::store::Verdict::Healthy),
    ]
    .into_iter()
    .map(|(r, v)| harness::world::settled_health(r, v, Some(1.0), now))
    .collect();
    let req = FailoverRequest {
        workload: "checkout".into(),
        failed_region: None,
        target_region: Some("eu-west-1".into()),
        mode: Mode::Unplanned,
        dry_run: false,
        accept_data_loss: true,
        reason: "us-east-1 is down".into(),
        requested_by: "alice".into(),
        request_id: None,
        trigger: None,
        timing: None,
        drill: false,
        force: false,
    };
    let spec = ctx
        .store_in("ap-southeast-1")
        .get_spec("checkout")
        .await
        .unwrap();
    let decision =
        failover_executor::decide::decide(&spec, &health, &req, "ap-southeast-1", now).unwrap();
    assert_eq!(decision.arbiter_region, LEASE_REGION);
    let executor = failover_executor::Executor::new(
        &for_region(&ctx.config, "ap-southeast-1"),
        ctx.table.clone(),
        "arn:aws:states:ap-southeast-1:123456789012:stateMachine:failover",
    )
    .unwrap();
    let holder = "arn:aws:states:ap-southeast-1:123456789012:execution:failover:op-1";
    let lease = executor
        .handle_at(
            json!({"step": "acquire", "decision": decision, "holder": holder}),
            "req-1",
            now,
        )
        .await
        .unwrap();
    assert_eq!(lease["epoch"], json!(deploy["epoch"].as_u64().unwrap() + 1));
    assert_eq!(lease["purpose"], "failover");
    let held = ctx.store().get_lease("checkout").await.unwrap().unwrap();
    assert_eq!(held.holder, holder);

    // The deploy's next steps, from either stack: stale, nothing more shifted or written.
    let spec_before = ctx.store().get_spec("checkout").await.unwrap();
    for (d, step) in [
        (
            &us,
            json!({"step": "gate", "deploy": deploy, "region": region, "stage": 0}),
        ),
        (
            &ctx.deployer_in("eu-west-1"),
            json!({"step": "renew", "deploy": deploy}),
        ),
        (
            &us,
            json!({"step": "advance", "deploy": deploy, "region": region}),
        ),
    ] {
        let e = call(d, step.clone()).await.unwrap_err();
        assert_eq!(e.name(), ErrorName::StaleEpoch, "{step}: {e}");
    }
    let e = ctx
        .shifter()
        .handle(LambdaEvent::new(
            json!({"workload": "checkout", "step": "shift_version", "target_region": region,
                   "epoch": deploy["epoch"], "holder": deploy["holder"],
                   "arbiter_region": deploy["lease_region"],
                   "slot": next["slot"], "percent": 100}),
            Context::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.name(), ErrorName::StaleEpoch, "{e}");
    assert_eq!(ctx.weights(region).await, canary);
    assert_eq!(ctx.store().get_spec("checkout").await.unwrap(), spec_before);
    assert_eq!(
        ctx.store().get_lease("checkout").await.unwrap(),
        Some(held.clone())
    );
    let events = ctx.store().list_events("checkout").await.unwrap();
    let superseded: Vec<_> = events
        .iter()
        .filter(|e| e.action == "deploy_superseded")
        .collect();
    assert_eq!(superseded.len(), 1, "{events:#?}");
    assert_eq!(superseded[0].after.as_ref().unwrap()["holder"], holder);
    assert!(
        events.iter().any(|e| e.action == "lease_taken_over"),
        "{events:#?}"
    );

    // The machine's Finish, after the StaleEpoch: the deploy's own run record ends
    // `superseded`, naming the failover; nothing else moves, and a retry is the same.
    let stale = json!({"Error": "StaleEpoch", "Cause": "superseded"});
    for attempt in 0..2 {
        let finished = call(
            &us,
            json!({"step": "finish", "deploy": deploy, "error": stale}),
        )
        .await
        .unwrap();
        assert_eq!(finished["outcome"], "superseded", "{attempt}: {finished:#}");
        assert_eq!(
            finished["already_done"],
            json!(attempt == 1),
            "{finished:#}"
        );
    }
    let runs = ctx.store().list_runs("checkout").await.unwrap();
    let run = runs.iter().find(|r| r.id == "d-1").unwrap();
    assert_eq!(run.outcome, RunOutcome::Superseded, "{run:#?}");
    assert!(run.finished_at.is_some());
    assert_eq!(
        run.details["superseded"]["by"]["holder"], holder,
        "{:#}",
        run.details
    );
    assert_eq!(run.details["superseded"]["by"]["purpose"], "failover");
    assert!(run.timeline.iter().any(|t| t.step == "superseded"));
    assert_eq!(ctx.weights(region).await, canary);
    assert_eq!(ctx.store().get_spec("checkout").await.unwrap(), spec_before);
    assert_eq!(ctx.store().get_lease("checkout").await.unwrap(), Some(held));
}
