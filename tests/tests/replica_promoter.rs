//! replica-promoter against real emulation.
//!
//! moto (README, "Running without AWS") answers what it emulates: RDS instances and cross-Region read
//! replicas from a source ARN, S3 buckets and their replication *configuration*,
//! DynamoDB tables, and our own table (spec, lease, audit log). What moto does not do is
//! checked at the SDK level with `aws-smithy-mocks`, and each such test says so:
//! PromoteReadReplica (moto accepts it but the instance does not visibly change),
//! Aurora Switchover/FailoverGlobalCluster (not implemented), an Region that refuses,
//! throttling and 5xx.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/asg.rs"]
mod asg;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use aws_sdk_rds::operation::describe_db_instances::{
    DescribeDBInstancesError, DescribeDbInstancesOutput,
};
use aws_sdk_rds::operation::describe_global_clusters::{
    DescribeGlobalClustersError, DescribeGlobalClustersOutput,
};
use aws_sdk_rds::operation::failover_global_cluster::FailoverGlobalClusterOutput;
use aws_sdk_rds::operation::promote_read_replica::{
    PromoteReadReplicaError, PromoteReadReplicaOutput,
};
use aws_sdk_rds::operation::switchover_global_cluster::SwitchoverGlobalClusterOutput;
use aws_sdk_rds::types::error::{
    DbInstanceNotFoundFault, GlobalClusterNotFoundFault, InvalidDbInstanceStateFault,
};
use aws_sdk_rds::types::{
    DbInstance, FailoverState, FailoverStatus, GlobalCluster, GlobalClusterMember,
};
use aws_sdk_s3::operation::get_bucket_replication::{
    GetBucketReplicationError, GetBucketReplicationOutput,
};
use aws_sdk_s3::operation::put_bucket_replication::PutBucketReplicationOutput;
use aws_sdk_s3::types::{
    DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination, Metrics, MetricsStatus,
    ReplicationConfiguration, ReplicationRule, ReplicationRuleFilter, ReplicationRuleStatus,
    ReplicationTime, ReplicationTimeStatus, ReplicationTimeValue, StorageClass,
};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};
use aws_types::SdkConfig;
use harness::moto::MotoServer;
use harness::world::{World, seed};
use lambda_runtime::{Context, LambdaEvent};
use lifeboat::aws::{RegionalClients, for_region};
use lifeboat::model::DatabaseRef;
use lifeboat::store::{LeasePurpose, LeaseRequest};
use lifeboat::{DynamoStore, ErrorName, Store, UnixMillis, WorkloadSpec};
use replica_promoter::request::Mode;
use replica_promoter::{Clients, Outcome, Promoter, Request, Step};
use serde_json::json;

const OLD: &str = "us-east-1";
const NEW: &str = "eu-west-1";
const THIRD: &str = "ap-southeast-1";

/// A suffix no other test of this process uses: moto is shared by the whole binary, and
/// RDS instance ids (per Region) and bucket names (global) would collide.
fn tag() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}x{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The example world with this test's resource names, the lease taken: `(world, spec, epoch)`.
async fn setup(edit: impl FnOnce(&mut WorkloadSpec, &str)) -> (World, WorkloadSpec, u64) {
    let moto = MotoServer::shared();
    let table = harness::table::unique_name("rp");
    let world = seed(moto, &table).await.unwrap();
    let mut spec = world.spec.clone();
    let t = tag();
    for r in &mut spec.regions {
        for db in &mut r.databases {
            if let DatabaseRef::RdsInstance { instance_id, .. } = db {
                *instance_id = format!("{instance_id}-{t}");
            }
        }
        for b in &mut r.buckets {
            b.name = format!("{}-{t}", b.name);
        }
    }
    edit(&mut spec, &t);
    let spec = world.store.put_spec(&spec, None).await.unwrap();
    let lease = world
        .store
        .acquire_lease(
            &LeaseRequest {
                workload: spec.workload.clone(),
                holder: HOLDER.into(),
                purpose: LeasePurpose::Failover,
                ttl: Duration::from_secs(600),
            },
            UnixMillis::now(),
        )
        .await
        .unwrap();
    (world, spec, lease.epoch)
}

fn store(world: &World) -> DynamoStore {
    DynamoStore::new(aws_sdk_dynamodb::Client::new(&world.config), &world.table)
}

fn on_moto(world: &World) -> Promoter<DynamoStore> {
    Promoter::new(store(world), Clients::new(&world.config))
}

/// Clients whose RDS calls go to `rds` (a mock), everything else to moto.
fn with_rds(world: &World, rds: aws_sdk_rds::Client) -> Promoter<DynamoStore> {
    let mut clients = Clients::new(&world.config);
    clients.rds = RegionalClients::new(&world.config, move |_| rds.clone());
    Promoter::new(store(world), clients)
}

/// Runs one step with RDS mocked by `client`.
async fn run_rds(
    world: &World,
    client: aws_sdk_rds::Client,
    step: Step,
    target: &str,
    epoch: u64,
) -> Result<Outcome, lifeboat::Error> {
    run(&with_rds(world, client), req(step, target, epoch)).await
}

/// The holder of the lease [`setup`] takes, as the failover machine's execution ARN.
const HOLDER: &str = "arn:aws:states:eu-west-1:123456789012:execution:failover:test";

fn req(step: Step, target: &str, epoch: u64) -> Request {
    Request {
        workload: "checkout".into(),
        step,
        target_region: target.into(),
        epoch,
        holder: HOLDER.into(),
        arbiter_region: None,
        mode: None,
    }
}

async fn run(p: &Promoter<DynamoStore>, r: Request) -> Result<Outcome, lifeboat::Error> {
    let value = p
        .handle(LambdaEvent::new(
            serde_json::to_value(r).unwrap(),
            Context::default(),
        ))
        .await?;
    Ok(serde_json::from_value(value).unwrap())
}

fn instance_of<'a>(spec: &'a WorkloadSpec, region: &str) -> &'a str {
    spec.region(region)
        .unwrap()
        .databases
        .iter()
        .find_map(|d| match d {
            DatabaseRef::RdsInstance { instance_id, .. } => Some(instance_id.as_str()),
            DatabaseRef::AuroraGlobal { .. } => None,
        })
        .unwrap()
}

fn rds(config: &SdkConfig, region: &str) -> aws_sdk_rds::Client {
    aws_sdk_rds::Client::new(&for_region(config, region))
}

async fn create_instance(config: &SdkConfig, region: &str, id: &str) -> String {
    rds(config, region)
        .create_db_instance()
        .db_instance_identifier(id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("lifeboat")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .unwrap()
        .db_instance()
        .unwrap()
        .db_instance_arn()
        .unwrap()
        .to_owned()
}

async fn create_replica(config: &SdkConfig, region: &str, id: &str, source_arn: &str) {
    rds(config, region)
        .create_db_instance_read_replica()
        .db_instance_identifier(id)
        .source_db_instance_identifier(source_arn)
        .send()
        .await
        .unwrap();
}

async fn describe(config: &SdkConfig, region: &str, id: &str) -> Option<DbInstance> {
    match rds(config, region)
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
    {
        Ok(out) => out.db_instances().first().cloned(),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_db_instance_not_found_fault()) =>
        {
            None
        }
        Err(e) => panic!("{e:?}"),
    }
}

/// The example's RDS tier in moto: the writer in us-east-1 and its cross-Region replicas.
async fn rds_tier(world: &World, spec: &WorkloadSpec) -> String {
    let arn = create_instance(&world.config, OLD, instance_of(spec, OLD)).await;
    for region in [NEW, THIRD] {
        create_replica(&world.config, region, instance_of(spec, region), &arn).await;
    }
    // A read replica is `creating` for a while, as on AWS: the tier is ready once RDS
    // says `available`.
    for region in [NEW, THIRD] {
        replicas_available(world, region, &[instance_of(spec, region).to_owned()]).await;
    }
    arn
}

async fn replicas_available(world: &World, region: &str, ids: &[String]) {
    for id in ids {
        harness::data::wait_status(
            &world.config,
            region,
            id,
            "available",
            std::time::Duration::from_secs(60),
        )
        .await
        .unwrap();
    }
}

/// What must hold after a refused request: same spec version, no audit event.
async fn assert_nothing_changed(world: &World, spec: &WorkloadSpec) {
    let now = world.store.get_spec("checkout").await.unwrap();
    assert_eq!(now.version, spec.version, "the spec changed");
    assert_eq!(&now, spec);
    assert_eq!(world.store.list_events("checkout").await.unwrap(), []);
}

// ---------------------------------------------------------------- RDS (moto)

/// moto accepts PromoteReadReplica but the instance keeps its replica source, so the
/// repeat is recognised by the audit marker this epoch wrote; the request itself and
/// RDS's answers are checked with mocks below.
#[tokio::test]
async fn promote_is_accepted_recorded_and_a_repeat_is_a_no_op() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    rds_tier(&world, &spec).await;
    let p = on_moto(&world);
    let first = run(&p, req(Step::RdsPromote, NEW, epoch)).await.unwrap();
    assert!(!first.already_done);
    assert!(!first.done);
    assert_eq!(first.status, "promoting");
    assert_eq!(first.resources.len(), 1);
    assert_eq!(first.resources[0].id, instance_of(&spec, NEW));
    assert_eq!(first.resources[0].region, NEW);
    assert_eq!(first.resources[0].action, "promotion_requested");
    let events = world.store.list_events("checkout").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "rds_promotion_requested");
    assert_eq!(events[0].actor, "replica-promoter");

    let again = run(&p, req(Step::RdsPromote, NEW, epoch)).await.unwrap();
    assert!(again.already_done);
    assert_eq!(again.resources[0].action, "already_requested");
    assert_eq!(world.store.list_events("checkout").await.unwrap().len(), 1);
    assert_eq!(world.store.get_spec("checkout").await.unwrap(), spec);
}

#[tokio::test]
async fn status_says_replicating_until_the_instance_is_a_standalone_writer() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    rds_tier(&world, &spec).await;
    let p = on_moto(&world);
    let replica = run(&p, req(Step::RdsStatus, NEW, epoch)).await.unwrap();
    assert!(!replica.done);
    assert!(replica.already_done, "a read-only step has nothing to do");
    assert_eq!(replica.status, "replicating");

    // After a promotion the instance stands alone: in moto, that is a plain instance.
    let (world, spec, epoch) = setup(|_, _| {}).await;
    create_instance(&world.config, NEW, instance_of(&spec, NEW)).await;
    let p = on_moto(&world);
    let promoted = run(&p, req(Step::RdsStatus, NEW, epoch)).await.unwrap();
    assert!(promoted.done);
    assert_eq!(promoted.status, "available");
    let promote = run(&p, req(Step::RdsPromote, NEW, epoch)).await.unwrap();
    assert!(promote.already_done && promote.done);
    assert_eq!(promote.resources[0].action, "already_standalone");
    assert_eq!(world.store.list_events("checkout").await.unwrap(), []);
}

#[tokio::test]
async fn reprotect_creates_replicas_of_the_new_primary_and_records_them_once() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let new_primary = instance_of(&spec, NEW).to_owned();
    let source_arn = create_instance(&world.config, NEW, &new_primary).await;
    let p = on_moto(&world);

    let out = run(&p, req(Step::RdsReprotect, NEW, epoch)).await.unwrap();
    // RDS takes a while to create a replica: not protected until they are available.
    assert!(!out.done, "{out:?}");
    assert!(!out.already_done);
    assert_eq!(out.status, "replicas_creating");
    assert_eq!(out.spec_version, Some(spec.version + 1));
    let stored = world.store.get_spec("checkout").await.unwrap();
    assert_eq!(stored.version, spec.version + 1);
    for region in [OLD, THIRD] {
        let id = replica_promoter::decide::replica_id(&new_primary, region, epoch);
        let replica = describe(&world.config, region, &id)
            .await
            .unwrap_or_else(|| panic!("no replica {id} in {region}"));
        assert_eq!(
            replica.read_replica_source_db_instance_identifier(),
            Some(source_arn.as_str()),
            "{region}"
        );
        assert_eq!(instance_of(&stored, region), id, "{region} not recorded");
    }
    assert_eq!(instance_of(&stored, NEW), new_primary);

    for region in [OLD, THIRD] {
        let id = replica_promoter::decide::replica_id(&new_primary, region, epoch);
        replicas_available(&world, region, &[id]).await;
    }
    let again = run(&p, req(Step::RdsReprotect, NEW, epoch)).await.unwrap();
    assert!(again.done && again.already_done);
    assert_eq!(again.status, "protected");
    assert!(again.resources.iter().all(|r| r.action == "replica_exists"));
    assert_eq!(again.spec_version, Some(spec.version + 1));
    assert_eq!(world.store.get_spec("checkout").await.unwrap(), stored);
}

/// The old primary's Region does not answer (its endpoint refuses connections): the
/// third Region is protected and recorded, the old one reported unreachable, and the
/// step is not done, so a later run finishes it.
#[tokio::test]
async fn reprotect_protects_what_answers_and_reports_the_rest() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let new_primary = instance_of(&spec, NEW).to_owned();
    let source_arn = create_instance(&world.config, NEW, &new_primary).await;
    let mut clients = Clients::new(&world.config);
    let base = world.config.clone();
    clients.rds = RegionalClients::new(&world.config, move |c: &SdkConfig| {
        if c.region().is_some_and(|r| r.as_ref() == OLD) {
            // Nothing listens on port 1 of loopback: every call is refused.
            let down = for_region(&base, OLD)
                .to_builder()
                .endpoint_url("http://127.0.0.1:1")
                .build();
            aws_sdk_rds::Client::new(&down)
        } else {
            aws_sdk_rds::Client::new(c)
        }
    });
    let p = Promoter::new(store(&world), clients);
    let out = run(&p, req(Step::RdsReprotect, NEW, epoch)).await.unwrap();
    assert!(!out.done && !out.already_done);
    assert_eq!(out.status, "partially_protected");
    let old = out.resources.iter().find(|r| r.region == OLD).unwrap();
    assert_eq!(old.action, "unreachable");
    let third = out.resources.iter().find(|r| r.region == THIRD).unwrap();
    assert_eq!(third.action, "replica_created");
    let replica = describe(&world.config, THIRD, &third.id).await.unwrap();
    assert_eq!(
        replica.read_replica_source_db_instance_identifier(),
        Some(source_arn.as_str())
    );
    let stored = world.store.get_spec("checkout").await.unwrap();
    assert_eq!(instance_of(&stored, THIRD), third.id);
    assert_eq!(instance_of(&stored, OLD), instance_of(&spec, OLD));
}

/// A failover's re-protection (`mode: unplanned`): the Region failed away from (the
/// spec's primary, its RDS endpoint refusing every call here) is never called and is
/// reported skipped; the third Region gets a replica of the new writer, and the replica
/// there that followed the dead primary is reported and audited for cleanup, still
/// running. Done once the new replica is available and replicating.
#[tokio::test]
async fn an_unplanned_reprotect_skips_the_failed_region_and_reports_what_it_replaces() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let old_arn = rds_tier(&world, &spec).await;
    let new_primary = instance_of(&spec, NEW).to_owned();
    let old_third = instance_of(&spec, THIRD).to_owned();
    rds(&world.config, NEW)
        .promote_read_replica()
        .db_instance_identifier(&new_primary)
        .send()
        .await
        .unwrap();
    harness::data::wait_status(
        &world.config,
        NEW,
        &new_primary,
        "available",
        std::time::Duration::from_secs(60),
    )
    .await
    .unwrap();
    let mut clients = Clients::new(&world.config);
    let base = world.config.clone();
    clients.rds = RegionalClients::new(&world.config, move |c: &SdkConfig| {
        if c.region().is_some_and(|r| r.as_ref() == OLD) {
            let down = for_region(&base, OLD)
                .to_builder()
                .endpoint_url("http://127.0.0.1:1")
                .build();
            aws_sdk_rds::Client::new(&down)
        } else {
            aws_sdk_rds::Client::new(c)
        }
    });
    let p = Promoter::new(store(&world), clients);
    let unplanned = || Request {
        mode: Some(replica_promoter::request::Mode::Unplanned),
        ..req(Step::RdsReprotect, NEW, epoch)
    };
    let mut out = run(&p, unplanned()).await.unwrap();
    // The new writer may still be rebooting out of its promotion: the step waits.
    for _ in 0..100 {
        if !out.status.starts_with("waiting_for_promotion") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        out = run(&p, unplanned()).await.unwrap();
    }
    assert!(!out.done, "{out:?}");
    let old = out.resources.iter().find(|r| r.region == OLD).unwrap();
    assert_eq!(old.action, "skipped_failed_region", "{out:?}");
    let created = out
        .resources
        .iter()
        .find(|r| r.region == THIRD && r.action == "replica_created")
        .unwrap();
    let retired = out
        .resources
        .iter()
        .find(|r| r.action == "retired_for_cleanup")
        .unwrap();
    assert_eq!(
        (retired.region.as_str(), retired.id.as_str()),
        (THIRD, old_third.as_str())
    );
    // Never deleted: it still exists and still names the dead primary.
    let still = describe(&world.config, THIRD, &old_third).await.unwrap();
    assert_eq!(
        still.read_replica_source_db_instance_identifier(),
        Some(old_arn.as_str())
    );
    let stored = world.store.get_spec("checkout").await.unwrap();
    assert_eq!(instance_of(&stored, THIRD), created.id);
    assert_eq!(instance_of(&stored, OLD), instance_of(&spec, OLD));
    let events = world.store.list_events("checkout").await.unwrap();
    let ev = events
        .iter()
        .find(|e| e.action == "rds_reprotected")
        .unwrap();
    let after = ev.after.as_ref().unwrap();
    assert_eq!(
        after["retired_for_cleanup"][0]["instance_id"],
        old_third.as_str()
    );
    assert_eq!(after["skipped_failed_region"], OLD);

    replicas_available(&world, THIRD, std::slice::from_ref(&created.id)).await;
    let again = run(&p, unplanned()).await.unwrap();
    assert!(again.done, "{again:?}");
    assert_eq!(again.status, "surviving_regions_protected");
    assert!(again.resources.iter().all(|r| r.action != "unreachable"));
}

#[tokio::test]
async fn reprotect_waits_while_the_new_primary_is_still_a_replica() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    rds_tier(&world, &spec).await;
    let out = run(&on_moto(&world), req(Step::RdsReprotect, NEW, epoch))
        .await
        .unwrap();
    assert!(!out.done && !out.already_done);
    assert!(
        out.status.starts_with("waiting_for_promotion"),
        "{}",
        out.status
    );
    let id = replica_promoter::decide::replica_id(instance_of(&spec, NEW), THIRD, epoch);
    assert!(describe(&world.config, THIRD, &id).await.is_none());
    assert_nothing_changed(&world, &spec).await;
}

#[tokio::test]
async fn unknown_instance_wrong_region_and_stale_epoch_change_nothing() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    // Only the old writer and the ap-southeast-1 replica exist: eu-west-1's is unknown.
    let arn = create_instance(&world.config, OLD, instance_of(&spec, OLD)).await;
    create_replica(&world.config, THIRD, instance_of(&spec, THIRD), &arn).await;
    let p = on_moto(&world);

    let err = run(&p, req(Step::RdsPromote, NEW, epoch))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
    assert!(err.to_string().contains(instance_of(&spec, NEW)), "{err}");
    let err = run(&p, req(Step::RdsReprotect, NEW, epoch))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");

    let err = run(&p, req(Step::RdsPromote, "eu-central-1", epoch))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput, "{err}");
    let err = run(&p, req(Step::RdsPromote, OLD, epoch))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput, "{err}");
    assert!(err.to_string().contains("already the primary"), "{err}");

    for stale in [epoch - 1, epoch + 1] {
        let err = run(&p, req(Step::RdsPromote, THIRD, stale))
            .await
            .unwrap_err();
        assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");
    }
    // The right epoch presented by another run (the same epoch taken in another
    // replica): stale too.
    let other = Request {
        holder: "arn:aws:states:ap-southeast-1:123456789012:execution:failover:other".into(),
        ..req(Step::RdsPromote, THIRD, epoch)
    };
    let err = run(&p, other).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");
    assert!(
        err.to_string()
            .contains("not by `arn:aws:states:ap-southeast-1"),
        "{err}"
    );
    // Released: the epoch is no longer held at all.
    world
        .store
        .release_lease("checkout", HOLDER, epoch, UnixMillis::now())
        .await
        .unwrap();
    let err = run(&p, req(Step::RdsPromote, THIRD, epoch))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");

    let err = p
        .handle(LambdaEvent::new(
            json!({"workload": "checkout", "step": "rds_promote", "target_region": THIRD}),
            Context::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput);
    assert!(err.to_string().contains("epoch"), "{err}");

    let still = describe(&world.config, THIRD, instance_of(&spec, THIRD))
        .await
        .unwrap();
    assert_eq!(
        still.read_replica_source_db_instance_identifier(),
        Some(arn.as_str())
    );
    assert_nothing_changed(&world, &spec).await;
}

#[tokio::test]
async fn a_stale_reprotect_creates_no_replica_and_leaves_the_spec() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    create_instance(&world.config, NEW, instance_of(&spec, NEW)).await;
    // The lease lapses and another execution takes it over at the next epoch.
    let holder = "arn:aws:states:eu-west-1:123456789012:execution:failover:other";
    world
        .store
        .acquire_lease(
            &LeaseRequest {
                workload: "checkout".into(),
                holder: holder.into(),
                purpose: LeasePurpose::Failover,
                ttl: Duration::from_secs(600),
            },
            UnixMillis::now().plus(Duration::from_secs(3600)),
        )
        .await
        .unwrap();
    let err = run(&on_moto(&world), req(Step::RdsReprotect, NEW, epoch))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");
    for region in [OLD, THIRD] {
        let id = replica_promoter::decide::replica_id(instance_of(&spec, NEW), region, epoch);
        assert!(describe(&world.config, region, &id).await.is_none());
    }
    assert_nothing_changed(&world, &spec).await;
}

/// The lease lives in the arbiter Region's table replica only (moto replicates nothing;
/// on AWS, a cross-set global table replicates it eventually): here a failback run from
/// eu-west-1 whose arbiter is us-east-1. A promoter whose own Region is eu-west-1 reads
/// no lease there and refuses, changing nothing; told the `arbiter_region`, it checks
/// the lease there and makes its fenced spec write and audit event there, leaving its
/// own Region's table as it was.
#[tokio::test]
async fn reprotect_checks_the_lease_and_writes_the_spec_in_the_arbiter_region() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let arbiter = OLD; // where `setup` took the lease
    let home_region = NEW;
    let new_primary = instance_of(&spec, NEW).to_owned();
    create_instance(&world.config, NEW, &new_primary).await;
    // The spec has replicated to the home Region's table; the lease has not.
    let home = DynamoStore::new(
        aws_sdk_dynamodb::Client::new(&for_region(&world.config, home_region)),
        &world.table,
    );
    let mut replicated = spec.clone();
    replicated.version = 0;
    let home_spec = home.create_spec(&replicated).await.unwrap();
    let home_config = for_region(&world.config, home_region);
    let dynamo = RegionalClients::new(&home_config, aws_sdk_dynamodb::Client::new);
    let table = world.table.clone();
    let p = Promoter::new(home.clone(), Clients::new(&home_config))
        .with_regional_stores(move |region| DynamoStore::new(dynamo.get(region), &table));

    let err = run(&p, req(Step::RdsReprotect, NEW, epoch))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");
    assert!(err.to_string().contains("not held"), "{err}");
    assert_nothing_changed(&world, &spec).await;
    for region in [OLD, THIRD] {
        let id = replica_promoter::decide::replica_id(&new_primary, region, epoch);
        assert!(describe(&world.config, region, &id).await.is_none());
    }

    let with_arbiter = Request {
        arbiter_region: Some(arbiter.into()),
        ..req(Step::RdsReprotect, NEW, epoch)
    };
    let out = run(&p, with_arbiter.clone()).await.unwrap();
    assert!(!out.done && !out.already_done, "{out:?}");
    assert_eq!(out.status, "replicas_creating");
    assert_eq!(out.spec_version, Some(spec.version + 1));
    // The fenced write and its audit event landed in the arbiter's table...
    let stored = world.store.get_spec("checkout").await.unwrap();
    assert_eq!(stored.version, spec.version + 1);
    for region in [OLD, THIRD] {
        let id = replica_promoter::decide::replica_id(&new_primary, region, epoch);
        assert_eq!(instance_of(&stored, region), id, "{region} not recorded");
    }
    let events = world.store.list_events("checkout").await.unwrap();
    assert!(
        events.iter().any(|e| e.action == "rds_reprotected"),
        "{events:?}"
    );
    // ...and the home Region's table is as it was.
    assert_eq!(home.get_spec("checkout").await.unwrap(), home_spec);
    assert_eq!(home.list_events("checkout").await.unwrap(), []);
    assert_eq!(home.get_lease("checkout").await.unwrap(), None);

    for region in [OLD, THIRD] {
        let id = replica_promoter::decide::replica_id(&new_primary, region, epoch);
        replicas_available(&world, region, &[id]).await;
    }
    let again = run(&p, with_arbiter).await.unwrap();
    assert!(again.done && again.already_done);
    assert_eq!(world.store.get_spec("checkout").await.unwrap(), stored);

    // A stale epoch is refused in the arbiter Region too, and an unknown Region is
    // named before anything is read.
    let stale = Request {
        arbiter_region: Some(arbiter.into()),
        ..req(Step::RdsReprotect, NEW, epoch + 1)
    };
    let err = run(&p, stale).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch, "{err}");
    let bad = Request {
        arbiter_region: Some("eu-west-9".into()),
        ..req(Step::RdsStatus, NEW, epoch)
    };
    let err = run(&p, bad).await.unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput);
    assert!(err.to_string().contains("arbiter_region"), "{err}");
    assert_eq!(world.store.get_spec("checkout").await.unwrap(), stored);
}

// ---------------------------------------------------------------- RDS (mocks)

fn replica_view(id: &str, status: &str) -> DbInstance {
    DbInstance::builder()
        .db_instance_identifier(id)
        .db_instance_status(status)
        .read_replica_source_db_instance_identifier(
            "arn:aws:rds:us-east-1:123456789012:db:checkout-db",
        )
        .build()
}

fn describe_rule(id: &str, status: &'static str) -> Rule {
    let id = id.to_owned();
    mock!(aws_sdk_rds::Client::describe_db_instances).then_output(move || {
        DescribeDbInstancesOutput::builder()
            .db_instances(replica_view(&id, status))
            .build()
    })
}

fn throttled() -> PromoteReadReplicaError {
    PromoteReadReplicaError::generic(
        aws_sdk_rds::error::ErrorMetadata::builder()
            .code("Throttling")
            .message("Rate exceeded")
            .build(),
    )
}

/// moto accepts PromoteReadReplica without changing the instance, so the request we
/// send and our handling of RDS's answers are checked here with aws-smithy-mocks.
#[tokio::test]
async fn promote_sends_the_target_instance_and_handles_each_answer() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let target = instance_of(&spec, NEW).to_owned();

    // Success: one call, naming the instance of the target Region.
    let wanted = target.clone();
    let promote = mock!(aws_sdk_rds::Client::promote_read_replica)
        .match_requests(move |r| r.db_instance_identifier() == Some(wanted.as_str()))
        .then_output(|| PromoteReadReplicaOutput::builder().build());
    let describe = describe_rule(&target, "available");
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &promote]);
    let out = run_rds(&world, client, Step::RdsPromote, NEW, epoch)
        .await
        .unwrap();
    assert_eq!(out.resources[0].action, "promotion_requested");
    assert_eq!(promote.num_calls(), 1);

    // InvalidDBInstanceState while the instance is modifying: a promotion under way.
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let target = instance_of(&spec, NEW).to_owned();
    let refused = mock!(aws_sdk_rds::Client::promote_read_replica).then_error(|| {
        PromoteReadReplicaError::InvalidDbInstanceStateFault(
            InvalidDbInstanceStateFault::builder().build(),
        )
    });
    let first = describe_rule(&target, "available");
    let modifying = describe_rule(&target, "modifying");
    let client = mock_client!(
        aws_sdk_rds,
        RuleMode::Sequential,
        [&first, &refused, &modifying]
    );
    let out = run_rds(&world, client, Step::RdsPromote, NEW, epoch)
        .await
        .unwrap();
    assert_eq!(out.resources[0].action, "already_in_progress");
    assert!(!out.done);

    // DBInstanceNotFound on the call itself (deleted meanwhile): ResourceNotFound.
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let target = instance_of(&spec, NEW).to_owned();
    let gone = mock!(aws_sdk_rds::Client::promote_read_replica).then_error(|| {
        PromoteReadReplicaError::DbInstanceNotFoundFault(DbInstanceNotFoundFault::builder().build())
    });
    let describe = describe_rule(&target, "available");
    let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, [&describe, &gone]);
    let err = run_rds(&world, client, Step::RdsPromote, NEW, epoch)
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
    assert_nothing_changed(&world, &spec).await;

    // Unknown at describe time: nothing is called.
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let missing = mock!(aws_sdk_rds::Client::describe_db_instances).then_error(|| {
        DescribeDBInstancesError::DbInstanceNotFoundFault(
            DbInstanceNotFoundFault::builder().build(),
        )
    });
    let never = mock!(aws_sdk_rds::Client::promote_read_replica)
        .then_output(|| PromoteReadReplicaOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&missing, &never]);
    let err = run_rds(&world, client, Step::RdsPromote, NEW, epoch)
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
    assert_eq!(never.num_calls(), 0);
    assert_nothing_changed(&world, &spec).await;
}

/// Throttling cannot be produced by moto: injected with aws-smithy-mocks.
#[tokio::test]
async fn throttled_twice_then_served_succeeds() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let target = instance_of(&spec, NEW).to_owned();
    let promote = mock!(aws_sdk_rds::Client::promote_read_replica)
        .sequence()
        .error(throttled)
        .times(2)
        .output(|| PromoteReadReplicaOutput::builder().build())
        .build();
    let describe = describe_rule(&target, "available");
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&describe, &promote]);
    let out = run_rds(&world, client, Step::RdsPromote, NEW, epoch)
        .await
        .unwrap();
    assert_eq!(out.resources[0].action, "promotion_requested");
    assert_eq!(promote.num_calls(), 3);
}

/// A 5xx that does not pass cannot be produced by moto: injected with aws-smithy-mocks.
#[tokio::test]
async fn persistent_5xx_is_retried_a_bounded_number_of_times_then_transient() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let describe = mock!(aws_sdk_rds::Client::describe_db_instances)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_rds, RuleMode::Sequential, [&describe]);
    let err = run_rds(&world, client, Step::RdsStatus, NEW, epoch)
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::TransientDependency, "{err:?}");
    assert_eq!(err.retry(), lifeboat::Retry::Transient);
    // The SDK's standard retry strategy: three attempts, then the error is ours.
    assert_eq!(describe.num_calls(), 3);
    assert!(
        err.chain()
            .starts_with("rds.DescribeDBInstances failed transiently")
    );
    assert_nothing_changed(&world, &spec).await;
}

// ---------------------------------------------------------------- Aurora (mocks)

const GLOBAL: &str = "orders";
const USE1_ARN: &str = "arn:aws:rds:us-east-1:123456789012:cluster:orders-use1";
const EUW1_ARN: &str = "arn:aws:rds:eu-west-1:123456789012:cluster:orders-euw1";

fn aurora_spec(spec: &mut WorkloadSpec, _: &str) {
    for (region, cluster) in [
        (OLD, "orders-use1"),
        (NEW, "orders-euw1"),
        (THIRD, "orders-apse1"),
    ] {
        let r = spec
            .regions
            .iter_mut()
            .find(|r| r.region == region)
            .unwrap();
        r.databases = vec![DatabaseRef::AuroraGlobal {
            global_cluster_id: GLOBAL.into(),
            cluster_id: cluster.into(),
        }];
    }
}

fn global(writer: &str, failover: Option<(FailoverStatus, &str, bool)>) -> GlobalCluster {
    let member = |arn: &str| {
        GlobalClusterMember::builder()
            .db_cluster_arn(arn)
            .is_writer(arn == writer)
            .build()
    };
    let mut g = GlobalCluster::builder()
        .global_cluster_identifier(GLOBAL)
        .status(if failover.is_some() {
            "switching-over"
        } else {
            "available"
        })
        .global_cluster_members(member(USE1_ARN))
        .global_cluster_members(member(EUW1_ARN));
    if let Some((status, to, loss)) = failover {
        g = g.failover_state(
            FailoverState::builder()
                .status(status)
                .from_db_cluster_arn(USE1_ARN)
                .to_db_cluster_arn(to)
                .is_data_loss_allowed(loss)
                .build(),
        );
    }
    g.build()
}

fn describe_global(g: GlobalCluster) -> Rule {
    mock!(aws_sdk_rds::Client::describe_global_clusters)
        .match_requests(|r| r.global_cluster_identifier() == Some(GLOBAL))
        .then_output(move || {
            DescribeGlobalClustersOutput::builder()
                .global_clusters(g.clone())
                .build()
        })
}

/// moto does not implement SwitchoverGlobalCluster: the request and the polling are
/// checked with aws-smithy-mocks.
#[tokio::test]
async fn planned_aurora_move_is_a_switchover_to_the_target_cluster_then_polls_to_writer() {
    let (world, spec, epoch) = setup(aurora_spec).await;
    let before = describe_global(global(USE1_ARN, None));
    let switchover = mock!(aws_sdk_rds::Client::switchover_global_cluster)
        .match_requests(|r| {
            r.global_cluster_identifier() == Some(GLOBAL)
                && r.target_db_cluster_identifier() == Some(EUW1_ARN)
        })
        .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&before, &switchover]);
    let out = run_rds(&world, client, Step::AuroraSwitchover, NEW, epoch)
        .await
        .unwrap();
    assert_eq!(switchover.num_calls(), 1);
    assert!(!out.done && !out.already_done);
    assert_eq!(out.data_loss_allowed, Some(false));
    assert_eq!(out.resources[0].action, "switchover_requested");
    let events = world.store.list_events("checkout").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "aurora_switchover_requested");
    assert!(events[0].reason.contains("RPO 0"), "{}", events[0].reason);

    // While it switches over: status not done, a repeat does not call again.
    let moving = describe_global(global(
        USE1_ARN,
        Some((FailoverStatus::Pending, EUW1_ARN, false)),
    ));
    let never = mock!(aws_sdk_rds::Client::switchover_global_cluster)
        .then_output(|| SwitchoverGlobalClusterOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&moving, &never]);
    let p = with_rds(&world, client);
    let status = run(&p, req(Step::AuroraStatus, NEW, epoch)).await.unwrap();
    assert!(!status.done);
    assert_eq!(status.status, "pending");
    let again = run(&p, req(Step::AuroraSwitchover, NEW, epoch))
        .await
        .unwrap();
    assert!(again.already_done);
    assert_eq!(again.resources[0].action, "already_in_progress");

    // Done: eu-west-1 writes.
    let after = describe_global(global(EUW1_ARN, None));
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&after, &never]);
    let p = with_rds(&world, client);
    let status = run(&p, req(Step::AuroraStatus, NEW, epoch)).await.unwrap();
    assert!(status.done);
    assert_eq!(status.status, "writer");
    let again = run(&p, req(Step::AuroraSwitchover, NEW, epoch))
        .await
        .unwrap();
    assert!(again.done && again.already_done);
    assert_eq!(never.num_calls(), 0);
    assert_eq!(world.store.list_events("checkout").await.unwrap().len(), 1);
    assert_eq!(world.store.get_spec("checkout").await.unwrap(), spec);
}

/// moto does not implement FailoverGlobalCluster: the request (AllowDataLoss) is
/// checked with aws-smithy-mocks.
#[tokio::test]
async fn unplanned_aurora_move_is_a_failover_allowing_data_loss_and_says_so() {
    let (world, _spec, epoch) = setup(aurora_spec).await;
    let before = describe_global(global(USE1_ARN, None));
    let failover = mock!(aws_sdk_rds::Client::failover_global_cluster)
        .match_requests(|r| {
            r.global_cluster_identifier() == Some(GLOBAL)
                && r.target_db_cluster_identifier() == Some(EUW1_ARN)
                && r.allow_data_loss() == Some(true)
        })
        .then_output(|| FailoverGlobalClusterOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&before, &failover]);
    let out = run_rds(&world, client, Step::AuroraFailover, NEW, epoch)
        .await
        .unwrap();
    assert_eq!(failover.num_calls(), 1);
    assert_eq!(out.data_loss_allowed, Some(true));
    assert_eq!(out.resources[0].action, "failover_requested");
    let events = world.store.list_events("checkout").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].action, "aurora_failover_requested");
    assert!(
        events[0].reason.contains("AllowDataLoss"),
        "{}",
        events[0].reason
    );
    assert_eq!(events[0].after.as_ref().unwrap()["allow_data_loss"], true);

    let moving = describe_global(global(
        USE1_ARN,
        Some((FailoverStatus::FailingOver, EUW1_ARN, true)),
    ));
    let never = mock!(aws_sdk_rds::Client::failover_global_cluster)
        .then_output(|| FailoverGlobalClusterOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&moving, &never]);
    let again = run_rds(&world, client, Step::AuroraFailover, NEW, epoch)
        .await
        .unwrap();
    assert!(again.already_done);
    assert_eq!(again.data_loss_allowed, Some(true));
    assert_eq!(never.num_calls(), 0);
}

/// moto does not implement the Aurora moves: the refusals are checked with mocks.
#[tokio::test]
async fn unknown_global_cluster_or_member_is_resource_not_found_and_changes_nothing() {
    let (world, spec, epoch) = setup(aurora_spec).await;
    let missing = mock!(aws_sdk_rds::Client::describe_global_clusters).then_error(|| {
        DescribeGlobalClustersError::GlobalClusterNotFoundFault(
            GlobalClusterNotFoundFault::builder().build(),
        )
    });
    let never = mock!(aws_sdk_rds::Client::failover_global_cluster)
        .then_output(|| FailoverGlobalClusterOutput::builder().build());
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&missing, &never]);
    let err = run_rds(&world, client, Step::AuroraFailover, NEW, epoch)
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");

    // The spec names an ap-southeast-1 cluster the global cluster does not have.
    let before = describe_global(global(USE1_ARN, None));
    let client = mock_client!(aws_sdk_rds, RuleMode::MatchAny, [&before, &never]);
    let err = run_rds(&world, client, Step::AuroraFailover, THIRD, epoch)
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
    assert!(err.to_string().contains("orders-apse1"), "{err}");
    assert_eq!(never.num_calls(), 0);
    assert_nothing_changed(&world, &spec).await;
}

// ---------------------------------------------------------------- S3

fn s3(config: &SdkConfig, region: &str) -> aws_sdk_s3::Client {
    replica_promoter::s3_client(&for_region(config, region))
}

fn bucket_of<'a>(spec: &'a WorkloadSpec, region: &str) -> &'a str {
    &spec.region(region).unwrap().buckets[0].name
}

async fn create_bucket(config: &SdkConfig, region: &str, name: &str) {
    harness::data::create_bucket(config, region, name)
        .await
        .unwrap();
}

fn rule(id: &str, priority: i32, dest: &str) -> ReplicationRule {
    let minutes = || ReplicationTimeValue::builder().minutes(15).build();
    ReplicationRule::builder()
        .id(id)
        .priority(priority)
        .status(ReplicationRuleStatus::Enabled)
        .filter(ReplicationRuleFilter::builder().prefix("receipts/").build())
        .delete_marker_replication(
            DeleteMarkerReplication::builder()
                .status(DeleteMarkerReplicationStatus::Enabled)
                .build(),
        )
        .destination(
            Destination::builder()
                .bucket(format!("arn:aws:s3:::{dest}"))
                .storage_class(StorageClass::StandardIa)
                .replication_time(
                    ReplicationTime::builder()
                        .status(ReplicationTimeStatus::Enabled)
                        .time(minutes())
                        .build()
                        .unwrap(),
                )
                .metrics(
                    Metrics::builder()
                        .status(MetricsStatus::Enabled)
                        .event_threshold(minutes())
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
}

fn old_rules(spec: &WorkloadSpec) -> ReplicationConfiguration {
    ReplicationConfiguration::builder()
        .role("arn:aws:iam::123456789012:role/old-primary-replication")
        .rules(rule("to-euw1", 1, bucket_of(spec, NEW)))
        .rules(rule("to-apse1", 2, bucket_of(spec, THIRD)))
        .build()
        .unwrap()
}

async fn s3_tier(world: &World, spec: &WorkloadSpec) {
    for region in [OLD, NEW, THIRD] {
        create_bucket(&world.config, region, bucket_of(spec, region)).await;
    }
    s3(&world.config, OLD)
        .put_bucket_replication()
        .bucket(bucket_of(spec, OLD))
        .replication_configuration(old_rules(spec))
        .send()
        .await
        .unwrap();
}

async fn replication(config: &SdkConfig, region: &str, bucket: &str) -> ReplicationConfiguration {
    s3(config, region)
        .get_bucket_replication()
        .bucket(bucket)
        .send()
        .await
        .unwrap()
        .replication_configuration
        .unwrap()
}

/// `(id, priority, status, destination)` of each rule: what moto gives back faithfully.
/// moto's GetBucketReplication answers every rule's filter as `Prefix ""` and its
/// delete-marker replication as `Disabled`, whatever was put; that the mirror keeps them
/// exactly is checked on the request itself with aws-smithy-mocks below.
fn shape(c: &ReplicationConfiguration) -> Vec<(String, Option<i32>, String, Destination)> {
    c.rules
        .iter()
        .map(|r| {
            (
                r.id.clone().unwrap_or_default(),
                r.priority,
                r.status.as_str().to_owned(),
                r.destination.clone().unwrap(),
            )
        })
        .collect()
}

fn with_mode(mut r: Request, mode: Mode) -> Request {
    r.mode = Some(mode);
    r
}

/// The old rules' exact mirror on the new primary bucket: the rule that pointed at the
/// new primary points back at the old one.
fn mirror_of_old(spec: &WorkloadSpec) -> ReplicationConfiguration {
    let mut expected = old_rules(spec);
    expected.role = spec.region(NEW).unwrap().buckets[0]
        .replication_role_arn
        .clone()
        .unwrap();
    expected.rules[0].destination.as_mut().unwrap().bucket =
        format!("arn:aws:s3:::{}", bucket_of(spec, OLD));
    expected
}

fn all_disabled(c: &ReplicationConfiguration) -> bool {
    c.rules
        .iter()
        .all(|r| r.status == ReplicationRuleStatus::Disabled)
}

/// S3 clients that answer the old Region with `old` (both the target's and the
/// best-effort set) and everything else on moto.
fn old_region_is(world: &World, old: aws_sdk_s3::Client) -> Clients {
    let mut clients = Clients::new(&world.config);
    for (set, base) in [
        (&mut clients.s3, world.config.clone()),
        (
            &mut clients.s3_best_effort,
            lifeboat::aws::best_effort(&world.config),
        ),
    ] {
        let old = old.clone();
        *set = RegionalClients::new(&base, move |c: &SdkConfig| {
            if c.region().is_some_and(|r| r.as_ref() == OLD) {
                old.clone()
            } else {
                replica_promoter::s3_client(c)
            }
        });
    }
    clients
}

/// Unplanned (the default): `s3_flip` asks nothing of the old Region — not even a read
/// — and builds the new primary's rules from the spec. `s3_suspend_old`, after traffic
/// has moved, finds the old Region answering: it replaces them with the old rules'
/// exact mirror and suspends the old rules. Each step repeated is a no-op.
#[tokio::test]
async fn an_unplanned_flip_asks_nothing_of_the_old_region_and_suspend_old_settles_it_after() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    s3_tier(&world, &spec).await;
    let get = mock!(aws_sdk_s3::Client::get_bucket_replication)
        .then_output(|| GetBucketReplicationOutput::builder().build());
    let put = mock!(aws_sdk_s3::Client::put_bucket_replication)
        .then_output(|| PutBucketReplicationOutput::builder().build());
    let old = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&get, &put]);
    let p = Promoter::new(store(&world), old_region_is(&world, old));
    let out = run(&p, req(Step::S3Flip, NEW, epoch)).await.unwrap();
    assert_eq!(
        get.num_calls() + put.num_calls(),
        0,
        "the old Region was called"
    );
    assert!(out.done && !out.already_done, "{out:?}");
    assert_eq!(out.status, "flipped");
    assert_eq!(out.old_rules_suspended, None);
    assert_eq!(out.resources.len(), 1, "{out:?}");
    assert_eq!(out.resources[0].region, NEW);
    assert!(
        out.resources[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("built from the spec"),
        "{out:?}"
    );
    let built = replication(&world.config, NEW, bucket_of(&spec, NEW)).await;
    let dests: Vec<String> = built
        .rules
        .iter()
        .map(|r| r.destination.as_ref().unwrap().bucket.clone())
        .collect();
    assert_eq!(
        dests,
        [
            format!("arn:aws:s3:::{}", bucket_of(&spec, OLD)),
            format!("arn:aws:s3:::{}", bucket_of(&spec, THIRD))
        ]
    );
    // The old rules still replicate: nothing touched them.
    let old = replication(&world.config, OLD, bucket_of(&spec, OLD)).await;
    assert!(!all_disabled(&old));
    let events = world.store.list_events("checkout").await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].after.as_ref().unwrap()["source"], "spec");
    let again = run(&p, req(Step::S3Flip, NEW, epoch)).await.unwrap();
    assert!(again.already_done, "{again:?}");

    // After traffic has moved, the old Region answers.
    let p = on_moto(&world);
    let out = run(&p, req(Step::S3SuspendOld, NEW, epoch)).await.unwrap();
    assert!(out.done && !out.already_done, "{out:?}");
    assert_eq!(out.status, "old_rules_suspended");
    assert_eq!(out.old_rules_suspended, Some(true));
    let actions: Vec<(&str, &str)> = out
        .resources
        .iter()
        .map(|r| (r.region.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(actions, [(NEW, "mirrored"), (OLD, "suspended")]);
    let mirrored = replication(&world.config, NEW, bucket_of(&spec, NEW)).await;
    assert_eq!(shape(&mirrored), shape(&mirror_of_old(&spec)));
    let old = replication(&world.config, OLD, bucket_of(&spec, OLD)).await;
    assert!(all_disabled(&old));
    assert_eq!(old.rules.len(), 2);
    let actions: Vec<String> = world
        .store
        .list_events("checkout")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions
            .iter()
            .filter(|a| *a == "s3_replication_mirrored")
            .count(),
        1,
        "{actions:?}"
    );
    assert!(actions.iter().any(|a| a == "s3_old_rules_suspended"));

    let again = run(&p, req(Step::S3SuspendOld, NEW, epoch)).await.unwrap();
    assert!(again.done && again.already_done, "{again:?}");
    assert_eq!(again.old_rules_suspended, Some(true));
    assert_eq!(world.store.list_events("checkout").await.unwrap().len(), 3);
    assert_eq!(
        shape(&replication(&world.config, NEW, bucket_of(&spec, NEW)).await),
        shape(&mirrored)
    );
}

/// Planned (both Regions up): `s3_flip` mirrors the old rules and leaves them enabled —
/// the old primary still takes writes until traffic has moved — and `s3_suspend_old`
/// suspends them without touching the new bucket's rules.
#[tokio::test]
async fn a_planned_flip_mirrors_the_old_rules_and_suspend_old_disables_them_after() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    s3_tier(&world, &spec).await;
    let p = on_moto(&world);
    let out = run(&p, with_mode(req(Step::S3Flip, NEW, epoch), Mode::Planned))
        .await
        .unwrap();
    assert!(out.done && !out.already_done);
    assert_eq!(out.status, "flipped");
    let mirrored = replication(&world.config, NEW, bucket_of(&spec, NEW)).await;
    assert_eq!(shape(&mirrored), shape(&mirror_of_old(&spec)));
    assert_eq!(
        mirrored.role,
        spec.region(NEW).unwrap().buckets[0]
            .replication_role_arn
            .clone()
            .unwrap()
    );
    let old = replication(&world.config, OLD, bucket_of(&spec, OLD)).await;
    assert!(
        old.rules
            .iter()
            .all(|r| r.status == ReplicationRuleStatus::Enabled)
    );
    let again = run(&p, with_mode(req(Step::S3Flip, NEW, epoch), Mode::Planned))
        .await
        .unwrap();
    assert!(again.done && again.already_done, "{again:?}");

    let out = run(&p, req(Step::S3SuspendOld, NEW, epoch)).await.unwrap();
    assert_eq!(out.status, "old_rules_suspended");
    assert_eq!(
        out.resources.len(),
        1,
        "the new bucket is not touched: {out:?}"
    );
    assert!(all_disabled(
        &replication(&world.config, OLD, bucket_of(&spec, OLD)).await
    ));
    assert_eq!(
        shape(&replication(&world.config, NEW, bucket_of(&spec, NEW)).await),
        shape(&mirrored)
    );
    let actions: Vec<String> = world
        .store
        .list_events("checkout")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(
        actions,
        ["s3_replication_flipped", "s3_old_rules_suspended"],
        "{actions:?}"
    );
}

#[tokio::test]
async fn s3_flip_of_an_unknown_bucket_changes_nothing() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    // Only the old primary's bucket exists.
    create_bucket(&world.config, OLD, bucket_of(&spec, OLD)).await;
    s3(&world.config, OLD)
        .put_bucket_replication()
        .bucket(bucket_of(&spec, OLD))
        .replication_configuration(old_rules(&spec))
        .send()
        .await
        .unwrap();
    for mode in [Mode::Unplanned, Mode::Planned] {
        let err = run(
            &on_moto(&world),
            with_mode(req(Step::S3Flip, NEW, epoch), mode),
        )
        .await
        .unwrap_err();
        assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
        assert!(err.to_string().contains(bucket_of(&spec, NEW)), "{err}");
    }
    let old = replication(&world.config, OLD, bucket_of(&spec, OLD)).await;
    assert!(
        old.rules
            .iter()
            .all(|r| r.status == ReplicationRuleStatus::Enabled)
    );
    assert_nothing_changed(&world, &spec).await;
}

#[tokio::test]
async fn mode_on_another_step_is_refused_before_anything_is_read() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let err = run(
        &on_moto(&world),
        with_mode(req(Step::S3SuspendOld, NEW, epoch), Mode::Planned),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput, "{err}");
    assert!(err.to_string().contains("mode"), "{err}");
    assert_nothing_changed(&world, &spec).await;
}

/// The old Region refuses connections (its endpoint is down), with two bucket pairs: a
/// planned flip builds the new rules from the spec; `s3_suspend_old` reports both old
/// buckets not suspended — the second not even called once the Region did not answer —
/// with an audit event each, and succeeds.
#[tokio::test]
async fn suspend_old_without_the_old_region_records_it_and_stops_calling() {
    let (world, spec, epoch) = setup(|spec, t| {
        for r in &mut spec.regions {
            let mut second = r.buckets[0].clone();
            second.name = format!("{}-b-{t}", r.region);
            r.buckets.push(second);
        }
    })
    .await;
    for region in [NEW, THIRD] {
        for b in &spec.region(region).unwrap().buckets {
            create_bucket(&world.config, region, &b.name).await;
        }
    }
    // Nothing listens on port 1 of loopback: every call is refused.
    let down = for_region(&world.config, OLD)
        .to_builder()
        .endpoint_url("http://127.0.0.1:1")
        .build();
    let p = Promoter::new(
        store(&world),
        old_region_is(&world, replica_promoter::s3_client(&down)),
    );
    let out = run(&p, with_mode(req(Step::S3Flip, NEW, epoch), Mode::Planned))
        .await
        .unwrap();
    assert!(out.done);
    assert_eq!(out.status, "flipped");
    assert!(
        out.resources
            .iter()
            .all(|r| r.region == NEW && r.detail.as_deref().unwrap().contains("did not answer")),
        "{out:?}"
    );

    let began = std::time::Instant::now();
    let out = run(&p, req(Step::S3SuspendOld, NEW, epoch)).await.unwrap();
    assert!(
        began.elapsed() < Duration::from_secs(10),
        "{:?}",
        began.elapsed()
    );
    assert!(
        out.done,
        "best effort: the step is done whatever the old Region says"
    );
    assert_eq!(out.status, "old_rules_active");
    assert_eq!(out.old_rules_suspended, Some(false));
    let old: Vec<_> = out.resources.iter().filter(|r| r.region == OLD).collect();
    assert_eq!(old.len(), 2, "{out:?}");
    assert!(old.iter().all(|r| r.action == "not_suspended"), "{old:?}");
    assert!(
        old[0].detail.as_deref().unwrap().contains("transiently"),
        "{old:?}"
    );
    assert!(
        old[1].detail.as_deref().unwrap().contains("not called"),
        "{old:?}"
    );
    let events = world.store.list_events("checkout").await.unwrap();
    let not: Vec<_> = events
        .iter()
        .filter(|e| e.action == "s3_old_rules_not_suspended")
        .collect();
    assert_eq!(not.len(), 2, "{events:#?}");
    assert!(not.iter().all(|e| e.reason.contains(OLD)), "{not:#?}");
    // A retry that still finds the Region down records nothing new.
    run(&p, req(Step::S3SuspendOld, NEW, epoch)).await.unwrap();
    assert_eq!(
        world.store.list_events("checkout").await.unwrap().len(),
        events.len()
    );
}

/// The old Region accepts connections and never answers, as a Region in trouble does:
/// `s3_suspend_old` gives up within the best-effort client's 4 s (one read, two
/// attempts) and reports it.
#[tokio::test]
async fn suspend_old_gives_up_on_a_hanging_region_within_its_bound() {
    let (world, _spec, epoch) = setup(|_, _| {}).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = tokio::spawn(async move {
        let mut sockets = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            sockets.push(socket);
        }
    });
    let hanging = lifeboat::aws::best_effort(&for_region(&world.config, OLD))
        .to_builder()
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    let p = Promoter::new(
        store(&world),
        old_region_is(&world, replica_promoter::s3_client(&hanging)),
    );
    let began = std::time::Instant::now();
    let out = run(&p, req(Step::S3SuspendOld, NEW, epoch)).await.unwrap();
    let took = began.elapsed();
    held.abort();
    assert!(
        took >= Duration::from_millis(3_900) && took < Duration::from_secs(6),
        "{took:?}"
    );
    assert_eq!(out.status, "old_rules_active");
    let old = out.resources.iter().find(|r| r.region == OLD).unwrap();
    assert_eq!(old.action, "not_suspended");
}

/// The exact requests: the mirror a planned flip puts on the new primary (filters,
/// delete-marker replication, replication time control, metrics, storage class, ids,
/// priorities), and the suspension `s3_suspend_old` puts on the old one, failing with a
/// lasting 5xx: tried twice (the best-effort client's one retry), reported, recorded.
/// moto answers filters and delete-marker replication lossily and cannot fail on
/// demand, so both buckets' S3 calls are aws-smithy-mocks here (the store stays on moto).
#[tokio::test]
async fn the_exact_mirror_and_a_suspension_that_fails_are_bounded_and_recorded() {
    let (world, spec, epoch) = setup(|_, _| {}).await;
    let old_config = old_rules(&spec);
    let mirror = mirror_of_old(&spec);
    let mut off = old_config.clone();
    for r in &mut off.rules {
        r.status = ReplicationRuleStatus::Disabled;
    }

    let served = old_config.clone();
    let old_get = mock!(aws_sdk_s3::Client::get_bucket_replication).then_output(move || {
        GetBucketReplicationOutput::builder()
            .replication_configuration(served.clone())
            .build()
    });
    let old_bucket = bucket_of(&spec, OLD).to_owned();
    let suspend = mock!(aws_sdk_s3::Client::put_bucket_replication)
        .match_requests(move |r| {
            r.bucket() == Some(old_bucket.as_str()) && r.replication_configuration() == Some(&off)
        })
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let old_client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&old_get, &suspend], |c| c
        .retry_config(lifeboat::aws::best_effort_retries()));

    let new_get = mock!(aws_sdk_s3::Client::get_bucket_replication).then_error(|| {
        GetBucketReplicationError::generic(
            aws_sdk_s3::error::ErrorMetadata::builder()
                .code("ReplicationConfigurationNotFoundError")
                .build(),
        )
    });
    let new_bucket = bucket_of(&spec, NEW).to_owned();
    let expected = mirror.clone();
    let put = mock!(aws_sdk_s3::Client::put_bucket_replication)
        .match_requests(move |r| {
            r.bucket() == Some(new_bucket.as_str())
                && r.replication_configuration() == Some(&expected)
        })
        .then_output(|| PutBucketReplicationOutput::builder().build());
    let new_client = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&new_get, &put]);

    let mut clients = old_region_is(&world, old_client);
    clients.s3 = RegionalClients::new(&world.config, move |_| new_client.clone());
    let p = Promoter::new(store(&world), clients);
    let out = run(&p, with_mode(req(Step::S3Flip, NEW, epoch), Mode::Planned))
        .await
        .unwrap();
    assert_eq!(put.num_calls(), 1, "the exact mirror was put once");
    assert_eq!(suspend.num_calls(), 0, "s3_flip suspends nothing");
    assert!(out.done);

    let out = run(&p, req(Step::S3SuspendOld, NEW, epoch)).await.unwrap();
    assert_eq!(suspend.num_calls(), 2, "the first attempt and one retry");
    assert_eq!(put.num_calls(), 1, "the mirrored bucket is left alone");
    assert!(out.done);
    assert_eq!(out.old_rules_suspended, Some(false));
    let old = out.resources.iter().find(|r| r.region == OLD).unwrap();
    assert_eq!(old.action, "not_suspended");
    assert!(
        old.detail.as_deref().unwrap().contains("transiently"),
        "{old:?}"
    );
    let events = world.store.list_events("checkout").await.unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.action == "s3_old_rules_not_suspended"),
        "{events:#?}"
    );
}

// ---------------------------------------------------------------- DynamoDB (moto)

#[tokio::test]
async fn dynamodb_verify_reports_the_target_replica_active() {
    let orders = harness::table::unique_name("orders");
    let name = orders.clone();
    let (world, spec, epoch) = setup(move |spec, _| {
        for r in &mut spec.regions {
            r.dynamodb_tables = vec![name.clone()];
        }
    })
    .await;
    let p = on_moto(&world);
    let err = run(&p, req(Step::DynamodbVerify, NEW, epoch))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
    assert_nothing_changed(&world, &spec).await;

    harness::table::create(&for_region(&world.config, NEW), &orders, &[])
        .await
        .unwrap();
    let out = run(&p, req(Step::DynamodbVerify, NEW, epoch))
        .await
        .unwrap();
    assert!(out.done && out.already_done);
    assert_eq!(out.status, "ACTIVE");
    assert_eq!(out.resources[0].id, orders);
    assert_eq!(out.resources[0].region, NEW);
    let again = run(&p, req(Step::DynamodbVerify, NEW, epoch))
        .await
        .unwrap();
    assert_eq!(again, out);
    assert_nothing_changed(&world, &spec).await;
}

// ----------------------------------------------------------------------------- compute
// Issue #15: the target's compute scaled before traffic moves. moto puts instances
// InService and tasks running at once; the twin (scripts/twin/compute.py) makes them
// arrive after `compute.instance_launch_seconds` / `compute.task_start_seconds` (2 s by
// default) and caps them with its insufficient-capacity fault (`compute/capacity`).

/// The example world with a `web` Auto Scaling group and a `workers` ECS service in
/// OLD and NEW (`full_capacity` web, 2), NEW's at zero with a maximum of 1 (a pilot
/// light); `max_wait_seconds` as given. `(world, spec, epoch, asg name, cluster)`.
async fn compute_setup(web: u32, max_wait: u64) -> (World, WorkloadSpec, u64, String, String) {
    use lifeboat::model::{ComputeRef, ComputeResource};
    let names = std::sync::Mutex::new((String::new(), String::new()));
    let (world, spec, epoch) = setup(|spec, t| {
        let (asg, cluster) = (format!("web-{t}"), format!("orders-{t}"));
        for r in &mut spec.regions {
            if r.region == OLD || r.region == NEW {
                r.compute = vec![
                    ComputeRef {
                        tier: "web".into(),
                        resource: ComputeResource::AutoScalingGroup { name: asg.clone() },
                        full_capacity: Some(web),
                    },
                    ComputeRef {
                        tier: "workers".into(),
                        resource: ComputeResource::EcsService {
                            cluster: cluster.clone(),
                            service: "workers".into(),
                        },
                        full_capacity: Some(2),
                    },
                ];
            }
        }
        spec.policy.compute.max_wait_seconds = max_wait;
        *names.lock().unwrap() = (asg, cluster);
    })
    .await;
    let (asg, cluster) = names.into_inner().unwrap();
    let config = for_region(&world.config, NEW);
    let autoscaling = aws_sdk_autoscaling::Client::new(&config);
    asg::create(&autoscaling, NEW, &asg, 0, 1, 0).await;
    let ecs = aws_sdk_ecs::Client::new(&config);
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("workers")
        .container_definitions(
            aws_sdk_ecs::types::ContainerDefinition::builder()
                .name("app")
                .image("app:1")
                .memory(128)
                .build(),
        )
        .send()
        .await
        .unwrap();
    ecs.create_service()
        .cluster(&cluster)
        .service_name("workers")
        .task_definition("workers")
        .desired_count(0)
        .send()
        .await
        .unwrap();
    (world, spec, epoch, asg, cluster)
}

fn compute_req(step: Step, epoch: u64, mode: Mode) -> Request {
    Request {
        mode: Some(mode),
        ..req(step, NEW, epoch)
    }
}

/// `(desired, max, in service)` of the group in NEW.
async fn group_of(world: &World, asg: &str) -> (i32, i32, usize) {
    let client = aws_sdk_autoscaling::Client::new(&for_region(&world.config, NEW));
    asg::describe(&client, asg).await
}

/// Polls `compute_status` (a bounded number of times, 200 ms apart) until it is done or
/// fails: the twin decides when capacity arrives, the test only waits for it.
async fn status_until_settled(
    p: &Promoter<DynamoStore>,
    epoch: u64,
    mode: Mode,
) -> Result<Outcome, lifeboat::Error> {
    for _ in 0..150 {
        let out = run(p, compute_req(Step::ComputeStatus, epoch, mode)).await?;
        if out.done {
            return Ok(out);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("compute_status neither finished nor failed in 30 s");
}

/// Capacity arrives at the twin's next tick (0.1 s), well inside the 3-s waits of the
/// insufficient-capacity tests: what the wait ends on is the cap, not a race with the
/// launch delay. No other test of this binary scales compute.
async fn instant_capacity(twin: &harness::twin::Twin) {
    twin.settings(json!({"compute.instance_launch_seconds": 0, "compute.task_start_seconds": 0}))
        .await
        .unwrap();
}

#[tokio::test]
async fn compute_scales_to_what_the_left_region_ran_and_waits_until_in_service() {
    let (world, _spec, epoch, asg, _cluster) = compute_setup(3, 600).await;
    let p = on_moto(&world);
    // A stale epoch changes nothing.
    let err = run(
        &p,
        compute_req(Step::ComputeScale, epoch + 1, Mode::Unplanned),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), ErrorName::StaleEpoch);
    assert_eq!(group_of(&world, &asg).await, (0, 1, 0));

    let out = run(&p, compute_req(Step::ComputeScale, epoch, Mode::Unplanned))
        .await
        .unwrap();
    assert!(!out.done && !out.already_done, "{out:?}");
    assert_eq!(out.status, "scaling");
    let actions: Vec<(&str, &str)> = out
        .resources
        .iter()
        .map(|r| (r.kind.as_str(), r.action.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("auto_scaling_group", "scale_requested"),
            ("ecs_service", "scale_requested")
        ]
    );
    assert!(
        out.resources[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("100 % of us-east-1 full_capacity 3"),
        "{out:?}"
    );
    // Desired 3, and MaxSize raised from 1 so AWS accepts it.
    let (desired, max, _) = group_of(&world, &asg).await;
    assert_eq!((desired, max), (3, 3));
    // A retry (Step Functions re-running the task) asks for nothing more.
    let again = run(&p, compute_req(Step::ComputeScale, epoch, Mode::Unplanned))
        .await
        .unwrap();
    assert!(again.already_done, "{again:?}");
    assert!(again.resources.iter().all(|r| r.action == "already_scaled"));

    let done = status_until_settled(&p, epoch, Mode::Unplanned)
        .await
        .unwrap();
    assert_eq!(done.status, "scaled");
    assert_eq!(group_of(&world, &asg).await, (3, 3, 3));
    assert_eq!(done.resources[1].detail.as_deref(), Some("2/2 in service"));
    let events = world.store.list_events("checkout").await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action == "compute_scale_requested")
            .count(),
        1,
        "one durable record for the scale request"
    );
}

/// A target group of 5 whose Region has room for `max` instances only (the twin's
/// insufficient-capacity fault), scaled by an unplanned move: the world, the promoter,
/// the epoch and the group.
async fn scaled_under_a_cap(max: u32) -> (World, Promoter<DynamoStore>, u64, String) {
    let (world, _spec, epoch, asg, _cluster) = compute_setup(5, 3).await;
    let twin = harness::twin::Twin::new(MotoServer::shared());
    instant_capacity(&twin).await;
    twin.post(
        "compute/capacity",
        json!({"region": NEW, "name": asg, "max": max}),
    )
    .await
    .unwrap();
    let p = on_moto(&world);
    run(&p, compute_req(Step::ComputeScale, epoch, Mode::Unplanned))
        .await
        .unwrap();
    (world, p, epoch, asg)
}

#[tokio::test]
async fn insufficient_capacity_goes_on_at_the_minimum_only_when_unplanned() {
    let (world, p, epoch, asg) = scaled_under_a_cap(4).await;
    // 4 of 5 is the 80 % floor: an unplanned failover goes on, recorded.
    let out = status_until_settled(&p, epoch, Mode::Unplanned)
        .await
        .unwrap();
    assert_eq!(out.status, "below_target", "{out:?}");
    assert_eq!(group_of(&world, &asg).await, (5, 5, 4));
    let events = world.store.list_events("checkout").await.unwrap();
    let below = events
        .iter()
        .find(|e| e.action == "compute_below_target")
        .expect("recorded");
    assert!(below.reason.contains(&format!("{asg} 4/5")), "{below:?}");
    // A planned move waits for 100 %: the same capacity is a named error.
    let err = status_until_settled(&p, epoch, Mode::Planned)
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::VerificationFailed);
    assert!(
        err.to_string().contains("a planned move waits for 100 %"),
        "{err}"
    );
}

#[tokio::test]
async fn capacity_below_the_minimum_is_a_named_error() {
    let (world, p, epoch, asg) = scaled_under_a_cap(2).await;
    let err = status_until_settled(&p, epoch, Mode::Unplanned)
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::VerificationFailed);
    let msg = err.to_string();
    assert!(
        msg.contains("below the minimum success of 80 %") && msg.contains(&format!("{asg} 2/5")),
        "{msg}"
    );
    assert!(
        world
            .store
            .list_events("checkout")
            .await
            .unwrap()
            .iter()
            .all(|e| e.action != "compute_below_target"),
        "nothing recorded as going on"
    );
}

/// The failover's `PromoteData` and the failback's `MoveWriter` Parallels (which traffic
/// waits for: their `Next` leads to the shift) each have a compute branch that starts
/// with `compute_scale` and ends only through a `done: true` choice, its every wait
/// preceded by a lease renewal and its poll loop bounded; both compute tasks carry the
/// run's mode (the failback's is planned).
#[test]
fn the_machines_scale_compute_beside_the_data_tier_before_traffic() {
    for (machine, parallel, mode) in [
        ("failover", "PromoteData", json!("$.decision.mode")),
        ("failback", "MoveWriter", json!("planned")),
    ] {
        let path = format!(
            "{}/../statemachines/{machine}.asl.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let p = &m["States"][parallel];
        assert_eq!(p["Type"], "Parallel", "{machine}");
        let branch = p["Branches"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["States"].get("ComputeScale").is_some())
            .unwrap_or_else(|| panic!("{machine}: no compute branch in {parallel}"));
        let s = &branch["States"];
        assert_eq!(s["ComputeScale"]["Parameters"]["step"], "compute_scale");
        assert_eq!(s["ComputeStatus"]["Parameters"]["step"], "compute_status");
        for task in ["ComputeScale", "ComputeStatus"] {
            let params = &s[task]["Parameters"];
            let got = params.get("mode.$").or_else(|| params.get("mode")).unwrap();
            assert_eq!(got, &mode, "{machine} {task}");
            assert_eq!(params["epoch.$"], "$.lease.epoch", "{machine} {task}");
        }
        assert_eq!(s["ComputeScale"]["Next"], "ComputeDone");
        assert_eq!(s["ComputeStatus"]["Next"], "ComputeDone");
        let done = &s["ComputeDone"];
        assert_eq!(done["Choices"][0]["Variable"], "$.compute.done");
        assert_eq!(done["Choices"][0]["Next"], "ComputeFinished");
        assert_eq!(s["ComputeFinished"]["End"], true);
        // Not done: counted, bounded, renewed, then waited.
        assert_eq!(done["Default"], "ComputeCountPoll");
        assert_eq!(s["ComputeGaveUp"]["Default"], "RenewCompute");
        assert_eq!(s["ComputeTooSlow"]["Error"], "VerificationFailed");
        assert_eq!(s["RenewCompute"]["Parameters"]["step"], "renew");
        assert_eq!(s["RenewCompute"]["Next"], "ComputeWait");
        assert_eq!(s["ComputeWait"]["Next"], "ComputeStatus");
        // A failed branch fails the Parallel, whose Catch compensates: no traffic moves.
        assert_eq!(p["Catch"][0]["Next"], "Compensate", "{machine}");
    }
}

/// A spec naming compute that does not exist: `ResourceNotFound`, and nothing changed
/// or recorded (every resource is described before anything is asked for).
#[tokio::test]
async fn missing_compute_is_resource_not_found_and_changes_nothing() {
    use lifeboat::model::{ComputeRef, ComputeResource};
    let (world, _spec, epoch) = setup(|spec, t| {
        for r in &mut spec.regions {
            if r.region == OLD || r.region == NEW {
                r.compute = vec![ComputeRef {
                    tier: "web".into(),
                    resource: ComputeResource::AutoScalingGroup {
                        name: format!("nowhere-{t}"),
                    },
                    full_capacity: Some(2),
                }];
            }
        }
    })
    .await;
    let p = on_moto(&world);
    let err = run(&p, compute_req(Step::ComputeScale, epoch, Mode::Unplanned))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::ResourceNotFound, "{err}");
    assert!(err.to_string().contains("nowhere-"), "{err}");
    let events = world.store.list_events("checkout").await.unwrap();
    assert!(
        events.iter().all(|e| e.action != "compute_scale_requested"),
        "{events:?}"
    );
    // And compute_status without a scale request is bad input, not a wait.
    let err = run(&p, compute_req(Step::ComputeStatus, epoch, Mode::Unplanned))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput, "{err}");
}
