//! A workload's data tier in the emulator, seeded from a spec: the RDS writer in the
//! primary Region with a cross-Region read replica in every other Region, and one S3
//! bucket per Region (versioned) with the primary's buckets replicating to the others.
//!
//! moto keeps replication *configuration* but copies nothing between buckets. RDS is the
//! twin's (`scripts/twin/rds.py`): a read replica is `creating` for a while, as on AWS,
//! so the seed waits until every replica is `available` and replicating.

use std::time::Duration;

use anyhow::{Context, bail};
use aws_sdk_rds as rds;
use aws_sdk_s3 as s3;
use aws_types::SdkConfig;
use lifeboat::WorkloadSpec;
use lifeboat::aws::for_region;
use lifeboat::model::{DatabaseRef, Role};

/// An S3 client for `region` that addresses buckets by path, as moto on loopback needs.
pub fn s3_client(base: &SdkConfig, region: &str) -> s3::Client {
    let config = s3::config::Builder::from(&for_region(base, region))
        .force_path_style(true)
        .build();
    s3::Client::from_conf(config)
}

/// An RDS client for `region`.
pub fn rds_client(base: &SdkConfig, region: &str) -> rds::Client {
    rds::Client::new(&for_region(base, region))
}

/// What was seeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataTier {
    /// The writer's ARN.
    pub writer_arn: String,
    /// `(region, instance id)` of every replica.
    pub replicas: Vec<(String, String)>,
    /// `(region, bucket)` of every bucket.
    pub buckets: Vec<(String, String)>,
}

fn primary(spec: &WorkloadSpec) -> anyhow::Result<&lifeboat::model::RegionSpec> {
    spec.regions
        .iter()
        .find(|r| r.role == Role::Primary)
        .context("the spec has no primary")
}

fn rds_instance(r: &lifeboat::model::RegionSpec) -> Option<&str> {
    r.databases.iter().find_map(|d| match d {
        DatabaseRef::RdsInstance { instance_id, .. } => Some(instance_id.as_str()),
        _ => None,
    })
}

/// Seeds RDS and S3 for `spec` (its `rds_instance` databases and its buckets).
pub async fn seed(base: &SdkConfig, spec: &WorkloadSpec) -> anyhow::Result<DataTier> {
    let primary = primary(spec)?;
    let writer_id = rds_instance(primary).context("the primary names no rds_instance")?;
    let writer = rds_client(base, &primary.region)
        .create_db_instance()
        .db_instance_identifier(writer_id)
        .db_instance_class("db.t3.micro")
        .engine("postgres")
        .allocated_storage(20)
        .master_username("lifeboat")
        .master_user_password("not-a-secret-1")
        .send()
        .await
        .with_context(|| format!("CreateDBInstance {writer_id} in {}", primary.region))?;
    let writer_arn = writer
        .db_instance()
        .and_then(|d| d.db_instance_arn())
        .context("CreateDBInstance without an ARN")?
        .to_owned();
    let mut replicas = Vec::new();
    for r in spec.regions.iter().filter(|r| r.region != primary.region) {
        let Some(id) = rds_instance(r) else { continue };
        rds_client(base, &r.region)
            .create_db_instance_read_replica()
            .db_instance_identifier(id)
            .source_db_instance_identifier(&writer_arn)
            .send()
            .await
            .with_context(|| format!("CreateDBInstanceReadReplica {id} in {}", r.region))?;
        replicas.push((r.region.clone(), id.to_owned()));
    }
    for (region, id) in &replicas {
        wait_status(base, region, id, "available", Duration::from_secs(120)).await?;
    }

    let mut buckets = Vec::new();
    for r in &spec.regions {
        for b in &r.buckets {
            create_bucket(base, &r.region, &b.name).await?;
            buckets.push((r.region.clone(), b.name.clone()));
        }
    }
    for (i, b) in primary.buckets.iter().enumerate() {
        let mut rules = Vec::new();
        for (n, r) in spec
            .regions
            .iter()
            .filter(|r| r.region != primary.region)
            .enumerate()
        {
            let Some(dest) = r.buckets.get(i) else {
                continue;
            };
            rules.push(replication_rule(
                &format!("to-{}", r.region),
                i32::try_from(n + 1).unwrap_or(i32::MAX),
                &dest.name,
            )?);
        }
        if rules.is_empty() {
            continue;
        }
        let role = b
            .replication_role_arn
            .clone()
            .unwrap_or_else(|| "arn:aws:iam::123456789012:role/lifeboat-replication".into());
        s3_client(base, &primary.region)
            .put_bucket_replication()
            .bucket(&b.name)
            .replication_configuration(
                s3::types::ReplicationConfiguration::builder()
                    .role(role)
                    .set_rules(Some(rules))
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("PutBucketReplication {}", b.name))?;
    }
    Ok(DataTier {
        writer_arn,
        replicas,
        buckets,
    })
}

/// Creates a versioned bucket `name` in `region` (versioning: replication needs it).
pub async fn create_bucket(base: &SdkConfig, region: &str, name: &str) -> anyhow::Result<()> {
    let client = s3_client(base, region);
    let mut create = client.create_bucket().bucket(name);
    if region != "us-east-1" {
        create = create.create_bucket_configuration(
            s3::types::CreateBucketConfiguration::builder()
                .location_constraint(s3::types::BucketLocationConstraint::from(region))
                .build(),
        );
    }
    create
        .send()
        .await
        .with_context(|| format!("CreateBucket {name} in {region}"))?;
    client
        .put_bucket_versioning()
        .bucket(name)
        .versioning_configuration(
            s3::types::VersioningConfiguration::builder()
                .status(s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .with_context(|| format!("PutBucketVersioning {name}"))?;
    Ok(())
}

fn replication_rule(
    id: &str,
    priority: i32,
    dest: &str,
) -> anyhow::Result<s3::types::ReplicationRule> {
    use s3::types::{
        DeleteMarkerReplication, DeleteMarkerReplicationStatus, Destination, ReplicationRule,
        ReplicationRuleFilter, ReplicationRuleStatus,
    };
    Ok(ReplicationRule::builder()
        .id(id)
        .priority(priority)
        .status(ReplicationRuleStatus::Enabled)
        .filter(ReplicationRuleFilter::builder().prefix("").build())
        .delete_marker_replication(
            DeleteMarkerReplication::builder()
                .status(DeleteMarkerReplicationStatus::Enabled)
                .build(),
        )
        .destination(
            Destination::builder()
                .bucket(format!("arn:aws:s3:::{dest}"))
                .build()?,
        )
        .build()?)
}

/// Waits (bounded) until instance `id` in `region` reports `status`.
pub async fn wait_status(
    base: &SdkConfig,
    region: &str,
    id: &str,
    status: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    let client = rds_client(base, region);
    let deadline = std::time::Instant::now() + limit;
    loop {
        let out = client
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await
            .with_context(|| format!("DescribeDBInstances {id} in {region}"))?;
        let seen = out
            .db_instances()
            .first()
            .and_then(|d| d.db_instance_status())
            .unwrap_or_default()
            .to_owned();
        if seen == status {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("{id} in {region} is `{seen}`, not `{status}`, after {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// How an RDS instance stands: `Some(source)` while it is a replica, `None` once it is a
/// standalone instance; an error when it does not exist.
pub async fn replica_source(
    base: &SdkConfig,
    region: &str,
    id: &str,
) -> anyhow::Result<Option<String>> {
    let out = rds_client(base, region)
        .describe_db_instances()
        .db_instance_identifier(id)
        .send()
        .await
        .with_context(|| format!("DescribeDBInstances {id} in {region}"))?;
    let Some(db) = out.db_instances().first() else {
        bail!("no instance {id} in {region}");
    };
    Ok(db
        .read_replica_source_db_instance_identifier()
        .map(str::to_owned))
}

/// The replication destinations (bucket ARNs) of `bucket` in `region`; empty when it has
/// no replication configuration or every rule is disabled.
pub async fn replicates_to(
    base: &SdkConfig,
    region: &str,
    bucket: &str,
) -> anyhow::Result<Vec<String>> {
    let out = s3_client(base, region)
        .get_bucket_replication()
        .bucket(bucket)
        .send()
        .await;
    let config = match out {
        Ok(out) => out.replication_configuration,
        Err(e)
            if e.as_service_error()
                .and_then(|se| aws_sdk_s3::error::ProvideErrorMetadata::code(se))
                == Some("ReplicationConfigurationNotFoundError") =>
        {
            None
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("GetBucketReplication {bucket} in {region}"))
            );
        }
    };
    Ok(config
        .map(|c| {
            c.rules()
                .iter()
                .filter(|r| r.status() == &s3::types::ReplicationRuleStatus::Enabled)
                .filter_map(|r| r.destination().map(|d| d.bucket().to_owned()))
                .collect()
        })
        .unwrap_or_default())
}
