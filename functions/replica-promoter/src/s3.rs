//! S3 replication direction.

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::ReplicationConfiguration;
use lifeboat::{Error, Retry, Store};
use serde_json::json;

use crate::decide;
use crate::{Ctx, Outcome, Promoter, ResourceOutcome, marker, outcome};

const SERVICE: &str = "s3";

fn no_bucket(bucket: &str, region: &str) -> Error {
    Error::ResourceNotFound {
        kind: "S3 bucket",
        id: bucket.to_owned(),
        region: region.to_owned(),
    }
}

impl<S: Store> Promoter<S> {
    /// GetBucketReplication: `None` when the bucket has no replication configuration,
    /// `ResourceNotFound` when there is no such bucket.
    async fn replication(
        &self,
        region: &str,
        bucket: &str,
    ) -> Result<Option<ReplicationConfiguration>, Error> {
        let res = self
            .clients
            .s3
            .get(region)
            .get_bucket_replication()
            .bucket(bucket)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out.replication_configuration),
            Err(e) => match e.as_service_error().and_then(|se| se.code()) {
                Some("ReplicationConfigurationNotFoundError") => Ok(None),
                Some("NoSuchBucket") => Err(no_bucket(bucket, region)),
                _ => Err(Error::from_sdk(SERVICE, "GetBucketReplication", e)),
            },
        }
    }

    /// PutBucketReplication.
    async fn put_replication(
        &self,
        region: &str,
        bucket: &str,
        config: ReplicationConfiguration,
    ) -> Result<(), Error> {
        let res = self
            .clients
            .s3
            .get(region)
            .put_bucket_replication()
            .bucket(bucket)
            .replication_configuration(config)
            .send()
            .await;
        match res {
            Ok(_) => Ok(()),
            Err(e) if e.as_service_error().and_then(|se| se.code()) == Some("NoSuchBucket") => {
                Err(no_bucket(bucket, region))
            }
            Err(e) => Err(Error::from_sdk(SERVICE, "PutBucketReplication", e)),
        }
    }

    pub(crate) async fn s3_flip(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let old = decide::old_primary(ctx.spec, ctx.req)?;
        let pairs = decide::bucket_pairs(old, ctx.target)?;
        let new_region = ctx.target.region.as_str();
        let old_region = old.region.as_str();

        // Read and plan every pair first: an unknown bucket or a missing rule changes
        // nothing. The old Region may be down: reading its rules is best effort.
        let mut plans = Vec::new();
        for (index, (old_bucket, new_bucket)) in pairs.iter().enumerate() {
            let new_config = self.replication(new_region, &new_bucket.name).await?;
            let old_config = match self.replication(old_region, &old_bucket.name).await {
                Ok(c) => Ok(c),
                Err(e) if e.retry() == Retry::Transient => Err(e),
                Err(e) => return Err(e),
            };
            let mirror = if decide::is_flipped(new_config.as_ref(), &old_bucket.name) {
                None
            } else {
                Some(match &old_config {
                    Ok(Some(c)) => (
                        decide::mirror_for_flip(
                            c,
                            &old_bucket.name,
                            &new_bucket.name,
                            new_bucket.replication_role_arn.as_deref(),
                            old_region,
                        )?,
                        format!("rules mirrored from {} in {old_region}", old_bucket.name),
                    ),
                    Ok(None) => {
                        return Err(Error::ResourceNotFound {
                            kind: "S3 replication configuration",
                            id: old_bucket.name.clone(),
                            region: old_region.to_owned(),
                        });
                    }
                    Err(e) => (
                        decide::rules_from_spec(ctx.spec, new_region, index)?,
                        format!(
                            "{old_region} did not answer ({}); rules built from the spec (all objects, no replication time control)",
                            e.name()
                        ),
                    ),
                })
            };
            plans.push((old_bucket, new_bucket, old_config, mirror));
        }

        let mut resources = Vec::new();
        let mut acted = false;
        let mut all_suspended = true;
        for (old_bucket, new_bucket, old_config, mirror) in plans {
            let (action, detail) = match mirror {
                None => ("already_flipped", None),
                Some((mirrored, source)) => {
                    let destinations: Vec<String> = mirrored
                        .rules
                        .iter()
                        .filter_map(|r| r.destination.as_ref().map(|d| d.bucket.clone()))
                        .collect();
                    self.put_replication(new_region, &new_bucket.name, mirrored)
                        .await?;
                    acted = true;
                    self.record(
                        ctx,
                        marker(ctx.req, &new_bucket.name),
                        "s3_replication_flipped",
                        source.clone(),
                        None,
                        Some(json!({"bucket": new_bucket.name, "destinations": destinations})),
                    )
                    .await?;
                    ("flipped", Some(source))
                }
            };
            resources.push(ResourceOutcome {
                kind: "s3_bucket".into(),
                id: new_bucket.name.clone(),
                region: new_region.to_owned(),
                action: action.into(),
                status: "replicating_to_others".into(),
                detail,
            });
            // Suspend the old rules, when the old Region answers.
            let (action, detail) = match old_config {
                Ok(Some(c)) if decide::all_suspended(&c) => ("already_suspended", None),
                Ok(Some(c)) => {
                    match self
                        .put_replication(old_region, &old_bucket.name, decide::suspended(&c))
                        .await
                    {
                        Ok(()) => {
                            acted = true;
                            ("suspended", None)
                        }
                        Err(e) if e.retry() == Retry::Transient => {
                            all_suspended = false;
                            ("not_suspended", Some(e.chain()))
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(None) => ("no_rules", None),
                Err(e) => {
                    all_suspended = false;
                    ("not_suspended", Some(e.chain()))
                }
            };
            resources.push(ResourceOutcome {
                kind: "s3_bucket".into(),
                id: old_bucket.name.clone(),
                region: old_region.to_owned(),
                action: action.into(),
                status: if action == "not_suspended" {
                    "unreachable".into()
                } else {
                    "suspended".into()
                },
                detail,
            });
        }
        if !all_suspended {
            tracing::warn!(
                workload = %ctx.req.workload,
                old_region,
                "Old primary's replication rules not suspended: the Region did not answer"
            );
        }
        let status = if all_suspended {
            "flipped"
        } else {
            "flipped_old_rules_active"
        };
        let mut out = outcome(ctx.req, true, status, !acted, resources);
        out.old_rules_suspended = Some(all_suspended);
        Ok(out)
    }
}
