//! traffic-shifter against moto: the example workload's routing (weighted records,
//! `CLOUDWATCH_METRIC` health checks, switch alarms and metrics) seeded by
//! `harness::route53`, the lease in the table, and the real handler.
//!
//! What moto cannot do is driven with aws-smithy-mocks and says so: throttling and 5xx
//! (moto never fails on demand), a Route 53 change that stays `PENDING` (moto's
//! GetChange is always `INSYNC`), a health check's `AlarmIdentifier` (moto does not
//! keep it) and a failing GetHealthCheckStatus (moto always reports success).

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_cloudwatch as cw;
use aws_sdk_route53 as r53;
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_types::SdkConfig;
use harness::moto::MotoServer;
use harness::route53::{self as routing, SEED_REASON};
use lambda_runtime::{Context, LambdaEvent};
use lifeboat::aws::{RegionalClients, for_region};
use lifeboat::store::{LeasePurpose, LeaseRequest};
use lifeboat::{DynamoStore, Error, ErrorName, Store, UnixMillis, WorkloadSpec};
use serde_json::{Value, json};
use traffic_shifter::{InsyncWait, Shifter};

const RECORD: &str = "api.checkout.example.com";
/// The Region the lease and spec are read in: the arbiter when us-east-1 fails.
const STORE_REGION: &str = "eu-west-1";
/// Nothing listens here: a client pointed at it fails if it is ever used.
const DEAD: &str = "http://127.0.0.1:1";

struct Ctx {
    config: SdkConfig,
    table: String,
    spec: WorkloadSpec,
    epoch: u64,
}

impl Ctx {
    fn zone(&self) -> &str {
        &self.spec.regions[0].dns[0].hosted_zone_id
    }

    fn store(&self) -> DynamoStore {
        DynamoStore::new(
            aws_sdk_dynamodb::Client::new(&for_region(&self.config, STORE_REGION)),
            &self.table,
        )
    }

    /// The handler over moto; clients for `dead` (and Route 53, if `dead` is
    /// us-east-1) point nowhere, so any call there fails the step.
    fn shifter(&self, dead: Option<&'static str>) -> Shifter<DynamoStore> {
        let cloudwatch = RegionalClients::new(&self.config, move |c: &SdkConfig| {
            let region = c.region().map(|r| r.as_ref().to_owned());
            if region.as_deref() == dead && dead.is_some() {
                cw::Client::new(&c.to_builder().endpoint_url(DEAD).build())
            } else {
                cw::Client::new(c)
            }
        });
        let r53_config = for_region(&self.config, "us-east-1");
        let route53 = if dead == Some("us-east-1") {
            r53::Client::new(&r53_config.to_builder().endpoint_url(DEAD).build())
        } else {
            r53::Client::new(&r53_config)
        };
        Shifter::new(self.store(), cloudwatch, route53, fast_insync())
    }

    fn switch(&self, region: &str) -> &lifeboat::model::RoutingSwitch {
        self.spec
            .region(region)
            .unwrap()
            .routing_switch
            .as_ref()
            .unwrap()
    }

    /// Datapoints of a switch's metric held in `region`.
    async fn datapoints(&self, region: &str, sw: &lifeboat::model::RoutingSwitch) -> usize {
        routing::datapoints(
            &self.config,
            region,
            &sw.namespace,
            &sw.metric_name,
            &sw.dimensions,
        )
        .await
        .unwrap()
    }

    /// The transitions of `alarm` (in `region`) since `since` that CloudWatch's own
    /// evaluation made, not a Lifeboat `SetAlarmState`. `SetAlarmState` lasts one
    /// evaluation, and an evaluation decides from the last complete periods: while the
    /// seed's "on" minute is the last complete one, the evaluator puts a switch just
    /// turned off back to OK, until the "off" minute is complete. A step repeated after
    /// that rightly writes the switch again; one repeated before it has nothing to do.
    async fn evaluated_since(
        &self,
        region: &str,
        alarm: &str,
        since: aws_smithy_types::DateTime,
    ) -> Vec<String> {
        let cw = cw::Client::new(&for_region(&self.config, region));
        let out = cw
            .describe_alarm_history()
            .alarm_name(alarm)
            .history_item_type(cw::types::HistoryItemType::StateUpdate)
            .start_date(since)
            .send()
            .await
            .unwrap();
        out.alarm_history_items()
            .iter()
            .filter_map(|item| {
                let data: Value = serde_json::from_str(item.history_data()?).ok()?;
                let reason = data["newState"]["stateReason"].as_str()?;
                (!reason.starts_with("Lifeboat:"))
                    .then(|| item.history_summary().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// A repeated switch step: nothing to do and nothing sent, unless CloudWatch's
    /// evaluation moved `alarm` after `since` (see [`Ctx::evaluated_since`]); then it
    /// writes that switch again, in `region`'s data plane only.
    async fn assert_repeat_did_only_what_moved(
        &self,
        again: &Value,
        region: &str,
        alarm: &str,
        since: aws_smithy_types::DateTime,
    ) {
        let moved = self.evaluated_since(region, alarm, since).await;
        if moved.is_empty() {
            assert_eq!(again["already_done"], true, "{again:#}");
            assert_eq!(ops(again), []);
        } else {
            assert!(
                ops(again).iter().all(|(op, r, plane)| {
                    ["PutMetricData", "SetAlarmState"].contains(&op.as_str())
                        && r == region
                        && plane == "data"
                }),
                "moved by evaluation: {moved:?}; {again:#}"
            );
        }
    }

    /// Record weights and every switch alarm's state and reason.
    async fn snapshot(&self) -> (BTreeMap<String, i64>, Vec<(String, String)>) {
        let weights = routing::weights(&self.config, self.zone(), RECORD)
            .await
            .unwrap();
        let mut alarms = Vec::new();
        for r in &self.spec.regions {
            let s = r.routing_switch.as_ref().unwrap();
            alarms.push(
                routing::alarm(&self.config, &s.region, &s.alarm_name)
                    .await
                    .unwrap(),
            );
        }
        (weights, alarms)
    }
}

fn fast_insync() -> InsyncWait {
    InsyncWait {
        interval: Duration::ZERO,
        max_polls: 3,
    }
}

async fn setup(prefix: &str) -> Ctx {
    let moto = MotoServer::shared();
    let table = harness::table::unique_name(prefix);
    let config = moto.sdk_config("us-east-1").await;
    harness::table::create(&config, &table, &["eu-west-1", "ap-southeast-1"])
        .await
        .unwrap();
    let example = harness::world::example_spec().unwrap();
    let seeded = routing::seed(moto, &example, &table).await.unwrap();
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&for_region(&config, STORE_REGION)),
        &table,
    );
    let spec = store.create_spec(&seeded).await.unwrap();
    let lease = store
        .acquire_lease(
            &LeaseRequest {
                workload: "checkout".into(),
                holder: HOLDER.into(),
                purpose: LeasePurpose::Failover,
                ttl: Duration::from_secs(3600),
            },
            UnixMillis::now(),
        )
        .await
        .unwrap();
    Ctx {
        config,
        table,
        spec,
        epoch: lease.epoch,
    }
}

/// The lease holder every test's lease is taken by, as the failover machine's
/// execution ARN would be.
const HOLDER: &str = "arn:aws:states:eu-west-1:123456789012:execution:failover:test";

/// Calls the shifter; a request without a `holder` gets [`HOLDER`], as the machine
/// passes its own execution id beside the lease's epoch.
async fn call(shifter: &Shifter<DynamoStore>, mut input: Value) -> Result<Value, Error> {
    if let Some(obj) = input.as_object_mut() {
        obj.entry("holder").or_insert_with(|| json!(HOLDER));
    }
    shifter
        .handle(LambdaEvent::new(input, Context::default()))
        .await
}

/// A verify with nothing failed, which must succeed.
async fn verify(shifter: &Shifter<DynamoStore>, epoch: u64, target: &str) -> Value {
    call(
        shifter,
        json!({"workload": "checkout", "step": "verify", "target_region": target, "epoch": epoch}),
    )
    .await
    .unwrap()
}

fn ops(out: &Value) -> Vec<(String, String, String)> {
    out["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["operation"].as_str().unwrap().to_owned(),
                c["region"].as_str().unwrap().to_owned(),
                c["plane"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// Share (basis points) and health of each Region in the first answer, spec order.
fn shares(out: &Value) -> Vec<(String, u64, bool)> {
    let order = ["us-east-1", "eu-west-1", "ap-southeast-1"];
    let mut rows: Vec<(String, u64, bool)> = out["dns"][0]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["region"].as_str().unwrap().to_owned(),
                r["share_bp"].as_u64().unwrap(),
                r["healthy"].as_bool().unwrap(),
            )
        })
        .collect();
    rows.sort_by_key(|(r, _, _)| order.iter().position(|c| c == r));
    rows
}

fn s(r: &str, bp: u64, healthy: bool) -> (String, u64, bool) {
    (r.to_owned(), bp, healthy)
}

#[tokio::test]
async fn failover_flips_a_switch_in_a_surviving_region_only_and_dns_follows() {
    let ctx = setup("ts-failover").await;
    let normal = ctx.shifter(None);
    let verify_input = json!({"workload": "checkout", "step": "verify", "target_region": "eu-west-1",
                        "epoch": ctx.epoch, "failed_region": "us-east-1"});

    let before = call(&normal, verify_input.clone()).await.unwrap();
    assert_eq!(before["ok"], false, "{before:#}");
    assert_eq!(before["status"], "unverified");
    assert_eq!(
        shares(&before),
        [
            s("us-east-1", 5000, true),
            s("eu-west-1", 3000, true),
            s("ap-southeast-1", 2000, true)
        ]
    );

    // us-east-1 is down: every client for it (CloudWatch there, and Route 53) points
    // nowhere. The failover must not need any of them.
    let cut_off = ctx.shifter(Some("us-east-1"));
    let input = json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1",
                       "epoch": ctx.epoch});
    let since = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    let out = call(&cut_off, input.clone()).await.unwrap();
    assert_eq!(out["status"], "failed_over");
    assert_eq!(out["already_done"], false);
    assert_eq!(out["data_plane_only"], true);
    assert_eq!(
        ops(&out),
        [
            ("PutMetricData".into(), "eu-west-1".into(), "data".into()),
            ("SetAlarmState".into(), "eu-west-1".into(), "data".into())
        ]
    );
    assert_eq!(out["switches"][0]["controls"], "us-east-1");
    assert_eq!(out["switches"][0]["action"], "flipped");
    assert_eq!(out["switches"][1]["controls"], "eu-west-1");
    assert_eq!(out["switches"][1]["action"], "not_contacted");

    // Per-Region state in moto: the switch moved in eu-west-1; the switches that live
    // in us-east-1 were not touched, and no datapoint was sent there.
    let use1 = ctx.switch("us-east-1");
    let (state, reason) = routing::alarm(&ctx.config, "eu-west-1", &use1.alarm_name)
        .await
        .unwrap();
    assert_eq!(state, "ALARM");
    assert!(
        reason.starts_with("Lifeboat: routing switch off"),
        "{reason}"
    );
    for region in ["eu-west-1", "ap-southeast-1"] {
        let sw = ctx.switch(region);
        assert_eq!(sw.region, "us-east-1");
        assert_eq!(
            routing::alarm(&ctx.config, "us-east-1", &sw.alarm_name)
                .await
                .unwrap(),
            ("OK".to_owned(), SEED_REASON.to_owned())
        );
        let n = ctx.datapoints("us-east-1", sw).await;
        assert_eq!(n, 1, "only the seed's datapoint for {region}'s switch");
    }
    let sent = ctx.datapoints("eu-west-1", use1).await;
    assert_eq!(sent, 2, "the seed's and the failover's");

    // DNS follows the switch: us-east-1 is skipped, the others share its traffic.
    let after = call(&normal, verify_input.clone()).await.unwrap();
    assert_eq!(after["ok"], true, "{after:#}");
    assert_eq!(after["status"], "verified");
    assert_eq!(
        after["serving_regions"],
        json!(["eu-west-1", "ap-southeast-1"])
    );
    assert_eq!(
        shares(&after),
        [
            s("us-east-1", 0, false),
            s("eu-west-1", 6000, true),
            s("ap-southeast-1", 4000, true)
        ]
    );
    // Switches in the failed Region were not read: last known status assumed.
    let euw1 = &after["dns"][0]["records"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "eu-west-1")
        .unwrap()["health"];
    assert_eq!(euw1, "not_read_last_known_assumed_healthy");
    // Reading everything gives the same answer.
    let full = verify(&normal, ctx.epoch, "eu-west-1").await;
    assert_eq!(shares(&full), shares(&after));

    // Again: nothing to do, nothing sent (unless an evaluation moved the alarm since).
    let again = call(&cut_off, input).await.unwrap();
    ctx.assert_repeat_did_only_what_moved(&again, "eu-west-1", &use1.alarm_name, since)
        .await;
    let put_again = ops(&again)
        .iter()
        .filter(|(op, ..)| op == "PutMetricData")
        .count();
    if again["already_done"] == true {
        assert_eq!(again["switches"][0]["action"], "already_in_place");
    }
    let sent_again = ctx.datapoints("eu-west-1", use1).await;
    assert_eq!(sent_again, 2 + put_again);
}

#[tokio::test]
async fn enable_brings_a_region_back_and_a_repeat_is_a_no_op() {
    let ctx = setup("ts-enable").await;
    let shifter = ctx.shifter(None);
    call(
        &shifter,
        json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1",
               "epoch": ctx.epoch, "failed_region": "us-east-1"}),
    )
    .await
    .unwrap();
    let enable = json!({"workload": "checkout", "step": "enable", "target_region": "us-east-1",
                        "epoch": ctx.epoch});
    let since = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    let out = call(&shifter, enable.clone()).await.unwrap();
    assert_eq!(out["status"], "enabled");
    assert_eq!(out["already_done"], false);
    assert_eq!(
        ops(&out),
        [
            ("PutMetricData".into(), "eu-west-1".into(), "data".into()),
            ("SetAlarmState".into(), "eu-west-1".into(), "data".into())
        ]
    );
    let answer = verify(&shifter, ctx.epoch, "us-east-1").await;
    assert_eq!(answer["ok"], true);
    assert_eq!(
        shares(&answer),
        [
            s("us-east-1", 5000, true),
            s("eu-west-1", 3000, true),
            s("ap-southeast-1", 2000, true)
        ]
    );
    let again = call(&shifter, enable).await.unwrap();
    let use1 = ctx.switch("us-east-1");
    ctx.assert_repeat_did_only_what_moved(&again, "eu-west-1", &use1.alarm_name, since)
        .await;
}

#[tokio::test]
async fn a_planned_shift_walks_the_schedule_and_each_change_is_insync() {
    let ctx = setup("ts-shift").await;
    let shifter = ctx.shifter(None);
    let expected: [[i64; 3]; 4] = [[45, 33, 22], [38, 37, 25], [25, 45, 30], [0, 60, 40]];
    for (stage, want) in expected.iter().enumerate() {
        let input = json!({"workload": "checkout", "step": "shift", "target_region": "eu-west-1",
                           "epoch": ctx.epoch, "weights": {"eu-west-1": 60, "ap-southeast-1": 40},
                           "stage": stage});
        let out = call(&shifter, input.clone()).await.unwrap();
        assert_eq!(out["already_done"], false, "stage {stage}: {out:#}");
        let changes = out["shift"]["changes"].as_array().unwrap();
        assert_eq!(changes.len(), 1, "one change batch for the one zone");
        assert_eq!(changes[0]["status"], "INSYNC");
        assert_eq!(changes[0]["polls"], 1);
        assert_eq!(
            ops(&out),
            [
                (
                    "ChangeResourceRecordSets".into(),
                    "us-east-1".into(),
                    "control".into()
                ),
                ("GetChange".into(), "us-east-1".into(), "control".into())
            ]
        );
        let last = stage == 3;
        assert_eq!(out["done"], last);
        assert_eq!(
            out["shift"]["next_stage"],
            if last { Value::Null } else { json!(stage + 1) }
        );
        let weights = routing::weights(&ctx.config, ctx.zone(), RECORD)
            .await
            .unwrap();
        let got = [
            weights["us-east-1"],
            weights["eu-west-1"],
            weights["ap-southeast-1"],
        ];
        assert_eq!(&got, want, "stage {stage}");

        let again = call(&shifter, input).await.unwrap();
        assert_eq!(again["already_done"], true, "stage {stage} again");
        assert_eq!(ops(&again), []);
        assert_eq!(
            routing::weights(&ctx.config, ctx.zone(), RECORD)
                .await
                .unwrap(),
            weights
        );
    }
    let answer = verify(&shifter, ctx.epoch, "eu-west-1").await;
    assert_eq!(
        shares(&answer),
        [
            s("us-east-1", 0, true),
            s("eu-west-1", 6000, true),
            s("ap-southeast-1", 4000, true)
        ]
    );
    assert_eq!(
        answer["serving_regions"],
        json!(["eu-west-1", "ap-southeast-1"])
    );
}

#[tokio::test]
async fn plan_lists_the_exact_calls_and_changes_nothing() {
    let ctx = setup("ts-plan").await;
    let shifter = ctx.shifter(None);
    let before = ctx.snapshot().await;
    let failover = call(
        &shifter,
        json!({"workload": "checkout", "step": "plan", "action": "failover",
               "target_region": "eu-west-1", "epoch": ctx.epoch, "failed_region": "us-east-1"}),
    )
    .await
    .unwrap();
    assert_eq!(failover["status"], "planned");
    assert_eq!(failover["data_plane_only"], true);
    assert_eq!(
        ops(&failover),
        [
            ("PutMetricData".into(), "eu-west-1".into(), "data".into()),
            ("SetAlarmState".into(), "eu-west-1".into(), "data".into())
        ]
    );
    assert_eq!(failover["calls"][0]["detail"]["value"], 0.0);
    assert_eq!(
        failover["calls"][1]["resource"],
        ctx.switch("us-east-1").alarm_name.as_str()
    );
    let shift = call(
        &shifter,
        json!({"workload": "checkout", "step": "plan", "action": "shift",
               "target_region": "eu-west-1", "epoch": ctx.epoch,
               "weights": {"eu-west-1": 60, "ap-southeast-1": 40}, "stage": 2}),
    )
    .await
    .unwrap();
    assert_eq!(shift["data_plane_only"], false);
    assert_eq!(
        ops(&shift),
        [
            (
                "ChangeResourceRecordSets".into(),
                "us-east-1".into(),
                "control".into()
            ),
            ("GetChange".into(), "us-east-1".into(), "control".into())
        ]
    );
    assert_eq!(shift["calls"][0]["resource"], ctx.zone());
    let weights: Vec<i64> = shift["calls"][0]["detail"]["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["weight"].as_i64().unwrap())
        .collect();
    assert_eq!(weights, [25, 45, 30]);
    assert_eq!(ctx.snapshot().await, before);
}

#[tokio::test]
async fn bad_requests_get_named_errors_and_change_nothing() {
    let ctx = setup("ts-bad").await;
    let shifter = ctx.shifter(None);
    let before = ctx.snapshot().await;
    let e = ctx.epoch;
    let shift = |weights: Value, epoch: u64| {
        json!({"workload": "checkout", "step": "shift", "target_region": "eu-west-1",
               "epoch": epoch, "weights": weights})
    };
    let cases: Vec<(Value, ErrorName, &str)> = vec![
        (
            shift(json!({"eu-west-1": 60, "ap-southeast-1": 30}), e),
            ErrorName::InvalidInput,
            "weights sum to 90, not 100",
        ),
        (
            shift(json!({"eu-west-1": 60, "ap-southeast-1": 50}), e),
            ErrorName::InvalidInput,
            "weights sum to 110, not 100",
        ),
        (
            shift(json!({"eu-west-1": 60, "us-west-2": 40}), e),
            ErrorName::InvalidInput,
            "`us-west-2` is not a Region",
        ),
        (
            shift(json!({"eu-west-1": 60, "ap-southeast-1": 40}), e + 1),
            ErrorName::StaleEpoch,
            "stale epoch",
        ),
        (
            shift(json!({"eu-west-1": 60, "ap-southeast-1": 40}), e - 1),
            ErrorName::StaleEpoch,
            "stale epoch",
        ),
        (
            json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": e,
                   "holder": "arn:aws:states:ap-southeast-1:123456789012:execution:failover:another"}),
            ErrorName::StaleEpoch,
            "not by `arn:aws:states:ap-southeast-1:123456789012:execution:failover:another`",
        ),
        (
            json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": e,
                   "holder": ""}),
            ErrorName::InvalidInput,
            "holder: a fenced step must name the lease holder",
        ),
        (
            json!({"workload": "checkout", "step": "failover", "target_region": "us-west-2", "epoch": e}),
            ErrorName::InvalidInput,
            "target_region: `us-west-2`",
        ),
        (
            json!({"workload": "checkout", "step": "failover", "target_region": "us-east-1", "epoch": e}),
            ErrorName::InvalidInput,
            "is the Region being failed away from",
        ),
        (
            json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": e + 5}),
            ErrorName::StaleEpoch,
            "stale epoch",
        ),
        (
            json!({"workload": "checkout", "step": "enable", "target_region": "us-east-1", "epoch": e,
                "weights": {"us-east-1": 100}}),
            ErrorName::InvalidInput,
            "weights: not an input",
        ),
        (
            json!({"workload": "nobody", "step": "verify", "target_region": "us-east-1", "epoch": e}),
            ErrorName::WorkloadNotFound,
            "nobody",
        ),
        (
            json!({"workload": "checkout", "step": "verify", "target_region": 3, "epoch": e}),
            ErrorName::InvalidInput,
            "target_region",
        ),
    ];
    for (input, name, text) in cases {
        let err = call(&shifter, input.clone()).await.unwrap_err();
        assert_eq!(err.name(), name, "{input}: {err}");
        assert!(err.to_string().contains(text), "{input}: {err}");
    }
    assert_eq!(ctx.snapshot().await, before);
}

/// Each broken spec is stored (fenced), then the step must fail by name with nothing
/// changed in Route 53 or CloudWatch.
#[tokio::test]
async fn unknown_zone_record_alarm_and_a_switch_in_the_failed_region_are_named() {
    let ctx = setup("ts-unknown").await;
    let shifter = ctx.shifter(None);
    let store = ctx.store();
    let before = ctx.snapshot().await;
    let fence = lifeboat::store::Fence {
        epoch: ctx.epoch,
        holder: HOLDER.into(),
    };
    let shift = json!({"workload": "checkout", "step": "shift", "target_region": "eu-west-1",
                       "epoch": ctx.epoch, "weights": {"eu-west-1": 60, "ap-southeast-1": 40}});
    let failover = json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1",
                          "epoch": ctx.epoch});

    type Break = fn(&mut WorkloadSpec);
    let cases: Vec<(Break, &Value, ErrorName, &str)> = vec![
        (
            |s| s.regions[2].dns[0].hosted_zone_id = "ZNOSUCHZONE".into(),
            &shift,
            ErrorName::ResourceNotFound,
            "Route 53 hosted zone `ZNOSUCHZONE` not found",
        ),
        (
            |s| s.regions[2].dns[0].set_identifier = Some("nowhere".into()),
            &shift,
            ErrorName::ResourceNotFound,
            "set identifier nowhere",
        ),
        (
            |s| s.regions[0].routing_switch.as_mut().unwrap().alarm_name = "no-such-alarm".into(),
            &failover,
            ErrorName::ResourceNotFound,
            "CloudWatch alarm `no-such-alarm` not found in eu-west-1",
        ),
        (
            |s| s.regions[0].routing_switch.as_mut().unwrap().region = "us-east-1".into(),
            &failover,
            ErrorName::InvalidInput,
            "lives in `us-east-1` itself",
        ),
    ];
    for (brk, input, name, text) in cases {
        let current = store.get_spec("checkout").await.unwrap();
        let mut broken = ctx.spec.clone();
        broken.version = current.version;
        brk(&mut broken);
        store.put_spec(&broken, Some(fence.clone())).await.unwrap();
        let err = call(&shifter, input.clone()).await.unwrap_err();
        assert_eq!(err.name(), name, "{err}");
        assert!(err.to_string().contains(text), "{err}");
        assert_eq!(ctx.snapshot().await, before, "{text}");
    }
}

// ---- SDK faults, injected with aws-smithy-mocks: moto cannot throttle, fail with
// ---- 5xx, hold a change PENDING, keep a health check's AlarmIdentifier, or report a
// ---- failing health check. The store stays on moto.

fn mocked(
    ctx: &Ctx,
    cloudwatch: cw::Client,
    route53: r53::Client,
    insync: InsyncWait,
) -> Shifter<DynamoStore> {
    let clients = RegionalClients::new(&ctx.config, move |_: &SdkConfig| cloudwatch.clone());
    Shifter::new(ctx.store(), clients, route53, insync)
}

fn alarm_ok(ctx: &Ctx) -> cw::operation::describe_alarms::DescribeAlarmsOutput {
    cw::operation::describe_alarms::DescribeAlarmsOutput::builder()
        .metric_alarms(
            cw::types::MetricAlarm::builder()
                .alarm_name(&ctx.switch("us-east-1").alarm_name)
                .state_value(cw::types::StateValue::Ok)
                .state_reason("seeded")
                .build(),
        )
        .build()
}

fn weighted_records(
    ctx: &Ctx,
) -> r53::operation::list_resource_record_sets::ListResourceRecordSetsOutput {
    let sets: Vec<r53::types::ResourceRecordSet> = ctx
        .spec
        .regions
        .iter()
        .map(|r| {
            r53::types::ResourceRecordSet::builder()
                .name(format!("{RECORD}."))
                .r#type(r53::types::RrType::A)
                .set_identifier(r.region.clone())
                .weight(i64::from(r.weight))
                .ttl(60)
                .resource_records(
                    r53::types::ResourceRecord::builder()
                        .value("203.0.113.9")
                        .build()
                        .unwrap(),
                )
                .set_health_check_id(r.dns[0].health_check_id.clone())
                .build()
                .unwrap()
        })
        .collect();
    r53::operation::list_resource_record_sets::ListResourceRecordSetsOutput::builder()
        .set_resource_record_sets(Some(sets))
        .is_truncated(false)
        .max_items(300)
        .build()
        .unwrap()
}

/// ListResourceRecordSets answering the spec's weighted records.
fn list_records(ctx: &Ctx) -> Rule {
    let out = weighted_records(ctx);
    mock!(r53::Client::list_resource_record_sets).then_output(move || out.clone())
}

/// ChangeResourceRecordSets accepted, PENDING.
fn pending_change() -> Rule {
    mock!(r53::Client::change_resource_record_sets).then_output(|| {
        r53::operation::change_resource_record_sets::ChangeResourceRecordSetsOutput::builder()
            .change_info(change_info(r53::types::ChangeStatus::Pending))
            .build()
    })
}

fn change_info(status: r53::types::ChangeStatus) -> r53::types::ChangeInfo {
    r53::types::ChangeInfo::builder()
        .id("/change/C1")
        .status(status)
        .submitted_at(aws_smithy_types::DateTime::from_secs(0))
        .build()
        .unwrap()
}

fn unused_route53() -> r53::Client {
    let never = mock!(r53::Client::get_change).then_output(|| {
        r53::operation::get_change::GetChangeOutput::builder()
            .change_info(change_info(r53::types::ChangeStatus::Insync))
            .build()
    });
    mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&never])
}

#[tokio::test]
async fn throttled_twice_then_served_succeeds() {
    let ctx = setup("ts-throttle").await;
    let put = mock!(cw::Client::put_metric_data)
        .sequence()
        .error(|| {
            cw::operation::put_metric_data::PutMetricDataError::generic(
                cw::error::ErrorMetadata::builder()
                    .code("Throttling")
                    .message("Rate exceeded")
                    .build(),
            )
        })
        .times(2)
        .output(|| cw::operation::put_metric_data::PutMetricDataOutput::builder().build())
        .build();
    let (out, reads, set) = failover_with_put(&ctx, &put).await;
    let out = out.unwrap();
    assert_eq!(out["status"], "failed_over");
    assert_eq!(put.num_calls(), 3, "two throttled, then served");
    assert_eq!(set.num_calls(), 1);
    assert_eq!(reads, 2, "DescribeAlarms and GetMetricData, once each");
}

/// A failover against mocked CloudWatch: the switch reads answer "alarm OK, no data",
/// SetAlarmState succeeds, `put` decides PutMetricData. Returns the outcome, how many
/// reads were made, and the SetAlarmState rule.
async fn failover_with_put(ctx: &Ctx, put: &Rule) -> (Result<Value, Error>, usize, Rule) {
    let describe = mock!(cw::Client::describe_alarms).then_output({
        let out = alarm_ok(ctx);
        move || out.clone()
    });
    let metric = mock!(cw::Client::get_metric_data)
        .then_output(|| cw::operation::get_metric_data::GetMetricDataOutput::builder().build());
    let set = mock!(cw::Client::set_alarm_state)
        .then_output(|| cw::operation::set_alarm_state::SetAlarmStateOutput::builder().build());
    // aws-sdk-cloudwatch 1.99 built from `Config::builder()` (as mock_client! does)
    // has no retry by default; in production the client comes from the shared
    // SdkConfig, whose retry config is the standard one (3 attempts). Same here.
    let cloudwatch = mock_client!(
        aws_sdk_cloudwatch,
        RuleMode::MatchAny,
        [&describe, &metric, put, &set],
        |c| c.retry_config(aws_smithy_types::retry::RetryConfig::standard())
    );
    let shifter = mocked(ctx, cloudwatch, unused_route53(), fast_insync());
    let out = call(
        &shifter,
        json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": ctx.epoch}),
    )
    .await;
    (out, describe.num_calls() + metric.num_calls(), set)
}

#[tokio::test]
async fn a_switch_region_answering_5xx_is_bounded_then_transient_and_the_alarm_is_left() {
    let ctx = setup("ts-cw5xx").await;
    let put = mock!(cw::Client::put_metric_data)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let (out, _, set) = failover_with_put(&ctx, &put).await;
    let err = out.unwrap_err();
    assert_eq!(err.name(), ErrorName::TransientDependency, "{err:?}");
    assert!(
        err.chain()
            .starts_with("cloudwatch.PutMetricData failed transiently"),
        "{}",
        err.chain()
    );
    assert_eq!(put.num_calls(), 3, "bounded: the SDK's three attempts");
    assert_eq!(
        set.num_calls(),
        0,
        "the alarm is not moved without the metric"
    );
}

#[tokio::test]
async fn persistent_5xx_is_bounded_then_transient_dependency() {
    let ctx = setup("ts-5xx").await;
    let list = list_records(&ctx);
    let change = mock!(r53::Client::change_resource_record_sets)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let get = mock!(r53::Client::get_change).then_output(|| {
        r53::operation::get_change::GetChangeOutput::builder()
            .change_info(change_info(r53::types::ChangeStatus::Insync))
            .build()
    });
    let route53 = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&list, &change, &get]);
    let cloudwatch = cw::Client::new(&ctx.config);
    let shifter = mocked(&ctx, cloudwatch, route53, fast_insync());
    let err = call(
        &shifter,
        json!({"workload": "checkout", "step": "shift", "target_region": "eu-west-1",
               "epoch": ctx.epoch, "weights": {"eu-west-1": 60, "ap-southeast-1": 40}}),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), ErrorName::TransientDependency, "{err:?}");
    assert!(
        err.chain()
            .starts_with("route53.ChangeResourceRecordSets failed transiently"),
        "{}",
        err.chain()
    );
    assert_eq!(
        change.num_calls(),
        3,
        "the SDK's standard retry: three attempts"
    );
    assert_eq!(get.num_calls(), 0);
}

/// moto's GetChange is always INSYNC: a change that stays PENDING is driven here.
#[tokio::test]
async fn a_pending_change_is_polled_until_insync_within_the_bound() {
    let ctx = setup("ts-pending").await;
    let pending = || {
        r53::operation::get_change::GetChangeOutput::builder()
            .change_info(change_info(r53::types::ChangeStatus::Pending))
            .build()
    };
    let list = list_records(&ctx);
    let change = pending_change();
    let get = mock!(r53::Client::get_change)
        .sequence()
        .output(pending)
        .times(2)
        .output(|| {
            r53::operation::get_change::GetChangeOutput::builder()
                .change_info(change_info(r53::types::ChangeStatus::Insync))
                .build()
        })
        .build();
    let route53 = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&list, &change, &get]);
    let shifter = mocked(&ctx, cw::Client::new(&ctx.config), route53, fast_insync());
    let input = json!({"workload": "checkout", "step": "shift", "target_region": "eu-west-1",
                       "epoch": ctx.epoch, "weights": {"eu-west-1": 60, "ap-southeast-1": 40}});
    let out = call(&shifter, input.clone()).await.unwrap();
    assert_eq!(out["shift"]["changes"][0]["polls"], 3);
    assert_eq!(out["shift"]["changes"][0]["status"], "INSYNC");
    assert_eq!(change.num_calls(), 1);

    // Never INSYNC: bounded, then VerificationFailed naming the change.
    let list = list_records(&ctx);
    let change = pending_change();
    let stuck = mock!(r53::Client::get_change)
        .sequence()
        .output(pending)
        .repeatedly()
        .build();
    let route53 = mock_client!(
        aws_sdk_route53,
        RuleMode::MatchAny,
        [&list, &change, &stuck]
    );
    let shifter = mocked(&ctx, cw::Client::new(&ctx.config), route53, fast_insync());
    let err = call(&shifter, input).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::VerificationFailed, "{err}");
    assert!(
        err.to_string()
            .contains("/change/C1 is still PENDING after 3"),
        "{err}"
    );
    assert_eq!(stuck.num_calls(), 3);
}

/// moto keeps no AlarmIdentifier and always reports health-check status as success:
/// verify's use of the alarm a check names, and of failing checker observations, is
/// driven here (the alarm states themselves are real, in moto).
#[tokio::test]
async fn verify_follows_the_alarm_a_check_names_and_failing_observations() {
    let ctx = setup("ts-checks").await;
    // The us-east-1 record's check names a different alarm than the spec's switch:
    // verify must follow the check. Put that alarm in ALARM in moto.
    let other = format!("other-alarm-{}", ctx.table);
    let euw1_cw = cw::Client::new(&for_region(&ctx.config, "eu-west-1"));
    euw1_cw
        .put_metric_alarm()
        .alarm_name(&other)
        .namespace("Lifeboat/Test")
        .metric_name("X")
        .statistic(cw::types::Statistic::Minimum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(cw::types::ComparisonOperator::LessThanThreshold)
        .send()
        .await
        .unwrap();
    // In ALARM by its data: the twin's alarms, like CloudWatch's, undo a SetAlarmState
    // at their next evaluation.
    harness::twin::alarm_to(&ctx.config, "eu-west-1", &other, true)
        .await
        .unwrap();

    let ids: Vec<String> = ctx
        .spec
        .regions
        .iter()
        .map(|r| r.dns[0].health_check_id.clone().unwrap())
        .collect();
    let list = list_records(&ctx);
    let use1_id = ids[0].clone();
    let apse1_match = ids[2].clone();
    let other_alarm = other.clone();
    let use1 = mock!(r53::Client::get_health_check)
        .match_requests(move |r| r.health_check_id() == Some(use1_id.as_str()))
        .then_output(move || {
            health_check(
                r53::types::HealthCheckType::CloudwatchMetric,
                Some(("eu-west-1", other_alarm.as_str())),
            )
        });
    let apse1 = mock!(r53::Client::get_health_check)
        .match_requests(move |r| r.health_check_id() == Some(apse1_match.as_str()))
        .then_output(|| health_check(r53::types::HealthCheckType::Https, None));
    let euw1 = mock!(r53::Client::get_health_check).then_output(|| {
        // No AlarmIdentifier: verify falls back to the spec's switch (OK in moto).
        health_check(r53::types::HealthCheckType::CloudwatchMetric, None)
    });
    let status = mock!(r53::Client::get_health_check_status).then_output(|| {
        let obs = |ok: bool| {
            r53::types::HealthCheckObservation::builder()
                .status_report(
                    r53::types::StatusReport::builder()
                        .status(if ok {
                            "Success: HTTP Status Code 200"
                        } else {
                            "Failure: Connection timed out"
                        })
                        .build(),
                )
                .build()
        };
        r53::operation::get_health_check_status::GetHealthCheckStatusOutput::builder()
            .health_check_observations(obs(true))
            .health_check_observations(obs(false))
            .health_check_observations(obs(false))
            .health_check_observations(obs(false))
            .health_check_observations(obs(false))
            .health_check_observations(obs(false))
            .build()
            .unwrap()
    });
    let route53 = mock_client!(
        aws_sdk_route53,
        RuleMode::MatchAny,
        [&list, &use1, &apse1, &euw1, &status]
    );
    // CloudWatch stays on moto, one client per Region: the alarm states are real.
    let shifter = Shifter::new(
        ctx.store(),
        RegionalClients::new(&ctx.config, cw::Client::new),
        route53,
        fast_insync(),
    );
    let out = verify(&shifter, ctx.epoch, "eu-west-1").await;
    // us-east-1: its check's own alarm is in ALARM; ap-southeast-1: 1 of 6 checkers
    // (≤ 18 %) report success. Only eu-west-1 serves.
    assert_eq!(
        shares(&out),
        [
            s("us-east-1", 0, false),
            s("eu-west-1", 10_000, true),
            s("ap-southeast-1", 0, false)
        ],
        "{out:#}"
    );
    assert_eq!(status.num_calls(), 1);
    assert_eq!(out["ok"], true);
}

fn health_check(
    kind: r53::types::HealthCheckType,
    alarm: Option<(&str, &str)>,
) -> r53::operation::get_health_check::GetHealthCheckOutput {
    let mut config = r53::types::HealthCheckConfig::builder().r#type(kind);
    if let Some((region, name)) = alarm {
        config = config.alarm_identifier(
            r53::types::AlarmIdentifier::builder()
                .region(r53::types::CloudWatchRegion::from(region))
                .name(name)
                .build()
                .unwrap(),
        );
    }
    r53::operation::get_health_check::GetHealthCheckOutput::builder()
        .health_check(
            r53::types::HealthCheck::builder()
                .id("hc")
                .caller_reference("ref")
                .health_check_config(config.build().unwrap())
                .health_check_version(1)
                .build()
                .unwrap(),
        )
        .build()
}

/// The lease lives in the arbiter Region's table replica only (moto replicates nothing;
/// on AWS, a cross-set global table replicates it eventually). A shifter whose own
/// Region is another one reads no lease there and refuses; told the `arbiter_region`,
/// it checks the lease in that replica and runs the step.
#[tokio::test]
async fn the_lease_is_checked_in_the_arbiter_region_a_request_names() {
    let ctx = setup("tsarb").await;
    // The shifter runs in us-east-1, whose table has the spec (replicated) but not
    // the lease, which was taken in the arbiter Region (STORE_REGION).
    let home_region = "us-east-1";
    let home = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&for_region(&ctx.config, home_region)),
        &ctx.table,
    );
    let mut replicated = ctx.spec.clone();
    replicated.version = 0;
    let home_spec = home.create_spec(&replicated).await.unwrap();
    let dynamo = RegionalClients::new(&ctx.config, aws_sdk_dynamodb::Client::new);
    let table = ctx.table.clone();
    let shifter = Shifter::new(
        home.clone(),
        RegionalClients::new(&ctx.config, cw::Client::new),
        r53::Client::new(&for_region(&ctx.config, "us-east-1")),
        fast_insync(),
    )
    .with_regional_stores(move |region| DynamoStore::new(dynamo.get(region), &table));
    let before = ctx.snapshot().await;
    let input = json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1",
                       "epoch": ctx.epoch});

    let err = call(&shifter, input.clone()).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");
    assert!(err.to_string().contains("not held"), "{err}");
    assert_eq!(ctx.snapshot().await, before, "nothing moved");

    let mut with_arbiter = input.clone();
    with_arbiter["arbiter_region"] = json!(STORE_REGION);
    let since = aws_smithy_types::DateTime::from(std::time::SystemTime::now());
    let out = call(&shifter, with_arbiter.clone()).await.unwrap();
    assert_eq!(out["status"], "failed_over", "{out:#}");
    assert_eq!(out["already_done"], false);
    // The switch's two writes, in eu-west-1's data plane.
    assert_eq!(
        ops(&out),
        [
            ("PutMetricData".into(), "eu-west-1".into(), "data".into()),
            ("SetAlarmState".into(), "eu-west-1".into(), "data".into())
        ]
    );
    let use1 = ctx.switch("us-east-1");
    let (state, _) = routing::alarm(&ctx.config, "eu-west-1", &use1.alarm_name)
        .await
        .unwrap();
    assert_eq!(state, "ALARM");
    assert_ne!(ctx.snapshot().await, before);
    let again = call(&shifter, with_arbiter).await.unwrap();
    ctx.assert_repeat_did_only_what_moved(&again, "eu-west-1", &use1.alarm_name, since)
        .await;

    // The home replica was only read: no lease appeared there, the spec is as it was.
    assert_eq!(home.get_lease("checkout").await.unwrap(), None);
    assert_eq!(home.get_spec("checkout").await.unwrap(), home_spec);
    // The arbiter's lease is the one the step ran under.
    let lease = ctx.store().get_lease("checkout").await.unwrap().unwrap();
    assert_eq!(lease.epoch, ctx.epoch);

    // A stale epoch is refused in the arbiter Region too.
    let stale = json!({"workload": "checkout", "step": "enable", "target_region": "eu-west-1",
                       "epoch": ctx.epoch + 1, "arbiter_region": STORE_REGION});
    let err = call(&shifter, stale).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");
    // An unknown Region is named before anything is read.
    let bad = json!({"workload": "checkout", "step": "verify", "target_region": "eu-west-1",
                     "epoch": ctx.epoch, "arbiter_region": "eu-west-9"});
    let err = call(&shifter, bad).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput);
    assert!(err.to_string().contains("arbiter_region"), "{err}");
}

/// On AWS an alarm decides from its data, and `SetAlarmState` lasts one evaluation: the
/// first wave's switch alarm (`TreatMissingData: notBreaching`, the "off" datapoint
/// written once) went back to OK one period after the failover, and traffic with it. In
/// the twin the template's switch alarm now holds "off" while nobody writes, for five
/// periods and more, and the position is recorded for health-probe to re-assert.
#[tokio::test]
async fn a_switch_turned_off_stays_off_while_nothing_writes_it() {
    let ctx = setup("ts-hold").await;
    let normal = ctx.shifter(None);
    let out = call(
        &normal,
        json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1",
               "epoch": ctx.epoch}),
    )
    .await
    .unwrap();
    assert_eq!(out["status"], "failed_over", "{out:#}");
    let use1 = ctx.switch("us-east-1");
    // Five switch-alarm periods (one twin minute each) with nothing written.
    tokio::time::sleep(Duration::from_secs_f64(
        5.0 * harness::moto::TEST_MINUTE_SECONDS + 1.0,
    ))
    .await;
    let (state, reason) = routing::alarm(&ctx.config, &use1.region, &use1.alarm_name)
        .await
        .unwrap();
    assert_eq!(state, "ALARM", "{reason}");
    // What DNS answers follows: us-east-1 is out.
    let after = verify(&normal, ctx.epoch, "eu-west-1").await;
    assert_eq!(
        after["serving_regions"],
        json!(["eu-west-1", "ap-southeast-1"]),
        "{after:#}"
    );
    // The twin's Route 53 reads the same data stream: the check is unhealthy.
    let hc = ctx.spec.region("us-east-1").unwrap().dns[0]
        .health_check_id
        .clone()
        .unwrap();
    let status = r53::Client::new(&for_region(&ctx.config, "us-east-1"))
        .get_health_check_status()
        .health_check_id(&hc)
        .send()
        .await
        .unwrap();
    assert_eq!(
        health_probe::signals::route53_healthy(status.health_check_observations()),
        Some(false)
    );
    // The position is recorded, fenced by the run's epoch, for health-probe to hold.
    let store = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&for_region(&ctx.config, STORE_REGION)),
        &ctx.table,
    );
    let positions = store.get_switches("checkout").await.unwrap();
    assert!(
        positions
            .iter()
            .any(|p| p.region == "us-east-1" && !p.on && p.epoch == ctx.epoch),
        "{positions:?}"
    );
}
