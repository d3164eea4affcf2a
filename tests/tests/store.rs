//! The DynamoDB store against moto: the spec, the lease and its fencing, health, audit
//! and run items. Each test has its own table on one moto server per test binary.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use harness::moto::MotoServer;
use harness::world::{self, World};
use lifeboat::store::{
    AuditEvent, Fence, HealthRecord, LagGrade, LeasePurpose, LeaseRequest, RunKind, RunOutcome,
    RunRecord, TimelineEntry, Verdict,
};
use lifeboat::{Error, ErrorName, Store, UnixMillis};

const T0: UnixMillis = UnixMillis(1_795_464_000_000);

async fn seeded() -> World {
    let table = harness::table::unique_name("store");
    world::seed(MotoServer::shared(), &table).await.unwrap()
}

fn lease(holder: &str, ttl_secs: u64) -> LeaseRequest {
    LeaseRequest {
        workload: "checkout".into(),
        holder: holder.into(),
        purpose: LeasePurpose::Failover,
        ttl: Duration::from_secs(ttl_secs),
    }
}

#[tokio::test]
async fn the_example_spec_round_trips_through_the_table() {
    let w = seeded().await;
    let expected = world::example_spec().unwrap();
    assert_eq!(w.spec.version, 1);
    let stored = w.store.get_spec("checkout").await.unwrap();
    assert_eq!(
        stored,
        lifeboat::WorkloadSpec {
            version: 1,
            ..expected
        }
    );
    assert_eq!(w.store.list_workloads().await.unwrap(), ["checkout"]);

    // Money stays exact in the item: a string, never a float.
    let raw = aws_sdk_dynamodb::Client::new(&w.config)
        .get_item()
        .table_name(&w.table)
        .key("pk", AttributeValue::S("WORKLOAD#checkout".into()))
        .key("sk", AttributeValue::S("SPEC".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let policy = raw["policy"].as_m().unwrap();
    assert_eq!(
        policy["downtime_cost_per_hour"],
        AttributeValue::S("25000.00".into())
    );
    assert_eq!(raw["version"], AttributeValue::N("1".into()));

    let mut next = stored.clone();
    next.regions[1].weight = 40;
    next.regions[2].weight = 10;
    let written = w.store.put_spec(&next, None).await.unwrap();
    assert_eq!(written.version, 2);
    assert_eq!(w.store.get_spec("checkout").await.unwrap(), written);
}

#[tokio::test]
async fn a_stale_version_write_is_concurrent_modification_and_changes_nothing() {
    let w = seeded().await;
    let read_by_a = w.store.get_spec("checkout").await.unwrap();
    let read_by_b = read_by_a.clone();

    let mut a = read_by_a;
    a.policy.auto_failover = false;
    w.store.put_spec(&a, None).await.unwrap();

    let mut b = read_by_b;
    b.policy.cooldown_seconds = 1;
    let err = w.store.put_spec(&b, None).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::ConcurrentModification);
    assert!(
        matches!(
            err,
            Error::ConcurrentModification {
                expected: 1,
                found: 2,
                ..
            }
        ),
        "{err:?}"
    );

    let now = w.store.get_spec("checkout").await.unwrap();
    assert_eq!(now.version, 2);
    assert!(!now.policy.auto_failover);
    assert_eq!(now.policy.cooldown_seconds, 3600);

    // Creating an existing workload again is refused the same way.
    let again = world::example_spec().unwrap();
    let err = w.store.create_spec(&again).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::ConcurrentModification);
}

#[tokio::test]
async fn unknown_workloads_and_invalid_specs_are_named_and_write_nothing() {
    let w = seeded().await;
    let err = w.store.get_spec("nope").await.unwrap_err();
    assert_eq!(err.name(), ErrorName::WorkloadNotFound);

    let mut ghost = w.spec.clone();
    ghost.workload = "ghost".into();
    let err = w.store.put_spec(&ghost, None).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::WorkloadNotFound);
    assert_eq!(w.store.list_workloads().await.unwrap(), ["checkout"]);

    let mut bad = w.spec.clone();
    bad.regions[0].weight = 90;
    let err = w.store.put_spec(&bad, None).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidModel);
    assert!(err.to_string().contains("sum to 140"), "{err}");
    assert_eq!(w.store.get_spec("checkout").await.unwrap(), w.spec);
}

#[tokio::test]
async fn a_garbage_item_names_its_key_and_field() {
    let w = seeded().await;
    let client = aws_sdk_dynamodb::Client::new(&w.config);
    let mut item = client
        .get_item()
        .table_name(&w.table)
        .key("pk", AttributeValue::S("WORKLOAD#checkout".into()))
        .key("sk", AttributeValue::S("SPEC".into()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let mut regions = item["regions"].as_l().unwrap().clone();
    let mut second: HashMap<String, AttributeValue> = regions[1].as_m().unwrap().clone();
    second.insert("role".into(), AttributeValue::S("boss".into()));
    regions[1] = AttributeValue::M(second);
    item.insert("regions".into(), AttributeValue::L(regions));
    client
        .put_item()
        .table_name(&w.table)
        .set_item(Some(item))
        .send()
        .await
        .unwrap();

    let err = w.store.get_spec("checkout").await.unwrap_err();
    assert_eq!(err.name(), ErrorName::CorruptItem);
    let Error::CorruptItem { key, field, reason } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(key, "WORKLOAD#checkout/SPEC");
    assert_eq!(field, "regions[1].role");
    assert!(reason.contains("boss"), "{reason}");

    // A number where a number belongs, but not a number.
    client
        .put_item()
        .table_name(&w.table)
        .item("pk", AttributeValue::S("WORKLOAD#checkout".into()))
        .item("sk", AttributeValue::S("LEASE".into()))
        .item("epoch", AttributeValue::S("seven".into()))
        .send()
        .await
        .unwrap();
    let err = w.store.get_lease("checkout").await.unwrap_err();
    let Error::CorruptItem { key, field, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        (key.as_str(), field.as_str()),
        ("WORKLOAD#checkout/LEASE", "epoch")
    );
}

#[tokio::test]
async fn thirty_two_concurrent_acquisitions_leave_exactly_one_holder() {
    let w = Arc::new(seeded().await);
    let mut tasks = Vec::new();
    for i in 0..32 {
        let w = w.clone();
        tasks.push(tokio::spawn(async move {
            let holder = format!("execution-{i}");
            (
                holder.clone(),
                w.store.acquire_lease(&lease(&holder, 60), T0).await,
            )
        }));
    }
    let mut winners = Vec::new();
    let mut held = 0;
    for t in tasks {
        let (holder, result) = t.await.unwrap();
        match result {
            Ok(l) => winners.push((holder, l)),
            Err(e) => {
                assert_eq!(e.name(), ErrorName::LeaseHeld, "{e:?}");
                held += 1;
            }
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(held, 31);
    let (winner, l) = &winners[0];
    assert_eq!(l.epoch, 1);
    let stored = w.store.get_lease("checkout").await.unwrap().unwrap();
    assert_eq!(&stored.holder, winner);
    assert_eq!(stored.epoch, 1);
    assert_eq!(stored.expires_at, UnixMillis(T0.0 + 60_000));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_old_holder_is_fenced_out() {
    let w = seeded().await;
    let a = w.store.acquire_lease(&lease("a", 30), T0).await.unwrap();
    assert_eq!(a.epoch, 1);

    // A retried acquire by the same holder gets the same lease back.
    let again = w
        .store
        .acquire_lease(&lease("a", 30), UnixMillis(T0.0 + 5))
        .await
        .unwrap();
    assert_eq!(again, a);

    // Not expired yet: b is refused, with who holds it.
    let err = w
        .store
        .acquire_lease(&lease("b", 30), UnixMillis(T0.0 + 29_999))
        .await
        .unwrap_err();
    let Error::LeaseHeld { holder, epoch, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!((holder.as_str(), *epoch), ("a", 1));

    // a renews while it holds it.
    let renewed = w
        .store
        .renew_lease(
            "checkout",
            "a",
            1,
            Duration::from_secs(30),
            UnixMillis(T0.0 + 10_000),
        )
        .await
        .unwrap();
    assert_eq!(renewed.expires_at, UnixMillis(T0.0 + 40_000));

    // Expired: b takes over with a higher epoch.
    let b = w
        .store
        .acquire_lease(&lease("b", 30), UnixMillis(T0.0 + 40_000))
        .await
        .unwrap();
    assert_eq!((b.holder.as_str(), b.epoch), ("b", 2));

    // a's next writes are all StaleEpoch, and nothing changes.
    let mut spec = w.store.get_spec("checkout").await.unwrap();
    spec.policy.auto_failover = false;
    let err = w
        .store
        .put_spec(
            &spec,
            Some(Fence {
                epoch: 1,
                holder: "a".into(),
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err:?}");
    assert!(err.to_string().contains("epoch 2 held by `b`"), "{err}");
    // The current epoch presented by another holder (the same epoch taken in another
    // replica): the write's condition names the holder too.
    let err = w
        .store
        .put_spec(
            &spec,
            Some(Fence {
                epoch: 2,
                holder: "a".into(),
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err:?}");
    assert!(
        w.store
            .get_spec("checkout")
            .await
            .unwrap()
            .policy
            .auto_failover
    );
    let err = w
        .store
        .renew_lease(
            "checkout",
            "a",
            1,
            Duration::from_secs(30),
            UnixMillis(T0.0 + 40_001),
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch);
    let err = w
        .store
        .release_lease("checkout", "a", 1, UnixMillis(T0.0 + 40_002))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch);
    let run = run_record("run-a");
    let err = w
        .store
        .put_run(
            "checkout",
            &run,
            Some(Fence {
                epoch: 1,
                holder: "a".into(),
            }),
        )
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch);
    assert_eq!(w.store.list_runs("checkout").await.unwrap(), []);

    // b, the holder at epoch 2, writes fine.
    let written = w.store.put_spec(&spec, Some(b.fence())).await.unwrap();
    assert_eq!(written.version, 2);
    w.store
        .put_run("checkout", &run_record("run-b"), Some(b.fence()))
        .await
        .unwrap();

    // Release keeps the epoch; releasing again is a no-op; the next holder gets epoch 3.
    assert!(
        w.store
            .release_lease("checkout", "b", 2, UnixMillis(T0.0 + 41_000))
            .await
            .unwrap()
    );
    assert!(
        !w.store
            .release_lease("checkout", "b", 2, UnixMillis(T0.0 + 41_001))
            .await
            .unwrap()
    );
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), None);
    let err = w
        .store
        .put_spec(&written, Some(b.fence()))
        .await
        .unwrap_err();
    assert_eq!(
        err.name(),
        ErrorName::StaleEpoch,
        "a released lease fences its old holder too"
    );
    let c = w
        .store
        .acquire_lease(&lease("c", 30), UnixMillis(T0.0 + 41_002))
        .await
        .unwrap();
    assert_eq!(c.epoch, 3);
}

fn run_record(id: &str) -> RunRecord {
    RunRecord {
        id: id.into(),
        kind: RunKind::Drill,
        started_at: T0,
        finished_at: Some(UnixMillis(T0.0 + 95_000)),
        outcome: RunOutcome::Succeeded,
        timeline: vec![
            TimelineEntry {
                at: T0,
                step: "decide".into(),
                duration_ms: Some(12),
                detail: Some("target eu-west-1".into()),
            },
            TimelineEntry {
                at: UnixMillis(T0.0 + 12),
                step: "acquire".into(),
                duration_ms: Some(8),
                detail: None,
            },
        ],
        measured_rto_ms: Some(95_000),
        measured_rpo_ms: Some(1_200),
        rpo_simulated: true,
        details: serde_json::json!({ "target": "eu-west-1" }),
    }
}

#[tokio::test]
async fn health_audit_and_run_items() {
    let w = seeded().await;
    let health = |at: u64, verdict| HealthRecord {
        region: "eu-west-1".into(),
        verdict,
        consecutive_failures: 0,
        consecutive_successes: 4,
        probe_latency_ms: Some(12),
        replication_lag_seconds: Some(1.25),
        lag_grade: Some(LagGrade::Ok),
        observed_at: UnixMillis(at),
        detail: None,
    };
    assert!(
        w.store
            .put_health("checkout", &health(T0.0 + 10, Verdict::Healthy))
            .await
            .unwrap()
    );
    // An older observation arriving late does not overwrite a newer one.
    assert!(
        !w.store
            .put_health("checkout", &health(T0.0 + 5, Verdict::Unhealthy))
            .await
            .unwrap()
    );
    assert_eq!(
        w.store.get_health("checkout").await.unwrap(),
        [health(T0.0 + 10, Verdict::Healthy)]
    );

    let event = |at: u64, id: &str| AuditEvent {
        at: UnixMillis(at),
        id: id.into(),
        actor: "health-probe".into(),
        action: "verdict_changed".into(),
        reason: "3 failed rounds".into(),
        before: Some(serde_json::json!({ "verdict": "healthy" })),
        after: Some(serde_json::json!({ "verdict": "unhealthy" })),
    };
    assert!(
        w.store
            .append_event("checkout", &event(T0.0 + 20, "e2"))
            .await
            .unwrap()
    );
    assert!(
        w.store
            .append_event("checkout", &event(T0.0 + 10, "e1"))
            .await
            .unwrap()
    );
    // Append-only: the same event again is recorded once.
    assert!(
        !w.store
            .append_event("checkout", &event(T0.0 + 20, "e2"))
            .await
            .unwrap()
    );
    let ids: Vec<String> = w
        .store
        .list_events("checkout")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(ids, ["e1", "e2"]);

    w.store
        .put_run("checkout", &run_record("r1"), None)
        .await
        .unwrap();
    assert_eq!(
        w.store.list_runs("checkout").await.unwrap(),
        [run_record("r1")]
    );
}

#[tokio::test]
async fn the_table_exists_in_every_region_of_the_workload() {
    let w = seeded().await;
    for region in ["us-east-1", "eu-west-1", "ap-southeast-1"] {
        let client = aws_sdk_dynamodb::Client::new(&lifeboat::aws::for_region(&w.config, region));
        let out = client
            .describe_table()
            .table_name(&w.table)
            .send()
            .await
            .unwrap();
        assert_eq!(
            out.table.unwrap().table_name.as_deref(),
            Some(w.table.as_str()),
            "{region}"
        );
    }
}
