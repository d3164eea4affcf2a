//! S3 replication direction: `s3_flip` on the failover's critical path (the target
//! Region only, unless the move is planned), `s3_suspend_old` after traffic has moved
//! (the old Region, best effort).

use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::types::ReplicationConfiguration;
use lifeboat::model::BucketRef;
use lifeboat::{Error, Retry, Store};
use serde_json::json;

use crate::decide::{self, RuleSource, Suspension, Takeover};
use crate::request::Mode;
use crate::{Ctx, Outcome, Promoter, ResourceOutcome, Step, marker, marker_of, outcome};

const SERVICE: &str = "s3";

fn no_bucket(bucket: &str, region: &str) -> Error {
    Error::ResourceNotFound {
        kind: "S3 bucket",
        id: bucket.to_owned(),
        region: region.to_owned(),
    }
}

fn bucket_outcome(
    bucket: &BucketRef,
    region: &str,
    action: &str,
    status: &str,
    detail: Option<String>,
) -> ResourceOutcome {
    ResourceOutcome {
        kind: "s3_bucket".into(),
        id: bucket.name.clone(),
        region: region.to_owned(),
        action: action.into(),
        status: status.into(),
        detail,
    }
}

/// GetBucketReplication: `None` when the bucket has no replication configuration,
/// `ResourceNotFound` when there is no such bucket.
async fn replication(
    client: &aws_sdk_s3::Client,
    region: &str,
    bucket: &str,
) -> Result<Option<ReplicationConfiguration>, Error> {
    let res = client.get_bucket_replication().bucket(bucket).send().await;
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
    client: &aws_sdk_s3::Client,
    region: &str,
    bucket: &str,
    config: ReplicationConfiguration,
) -> Result<(), Error> {
    let res = client
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

/// What `s3_flip` does with one target bucket, decided before anything is written.
enum Flip {
    AlreadyFlipped,
    Put {
        config: ReplicationConfiguration,
        source: RuleSource,
        detail: String,
    },
    Deferred(String),
}

fn destinations(c: &ReplicationConfiguration) -> Vec<String> {
    c.rules
        .iter()
        .filter_map(|r| r.destination.as_ref().map(|d| d.bucket.clone()))
        .collect()
}

impl<S: Store> Promoter<S> {
    pub(crate) async fn s3_flip(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let old = decide::old_primary(ctx.spec, ctx.req)?;
        let pairs = decide::bucket_pairs(old, ctx.target)?;
        let new_region = ctx.target.region.as_str();
        let old_region = old.region.as_str();
        let planned = ctx.req.mode == Some(Mode::Planned);
        let target = self.clients.s3.get(new_region);

        // Read and plan every pair first: an unknown bucket or a missing rule changes
        // nothing. Unplanned, the old Region is not called at all (its rules are
        // suspended by `s3_suspend_old` after traffic has moved); planned, its rules are
        // read with the best-effort client and mirrored.
        let mut plans = Vec::new();
        for (index, (old_bucket, new_bucket)) in pairs.iter().enumerate() {
            let new_config = replication(&target, new_region, &new_bucket.name).await?;
            if decide::is_flipped(new_config.as_ref(), &old_bucket.name) {
                plans.push((*new_bucket, Flip::AlreadyFlipped));
                continue;
            }
            let without_old = |why: String| match decide::takeover(
                ctx.spec,
                new_region,
                index,
                new_config.as_ref(),
                &old_bucket.name,
            ) {
                Takeover::Put(config, source) => Flip::Put {
                    detail: match source {
                        RuleSource::Reenabled => {
                            format!("{why}; its own suspended rules enabled again")
                        }
                        _ => format!(
                            "{why}; rules built from the spec (all objects, no replication time control) until s3_suspend_old mirrors the old ones"
                        ),
                    },
                    config,
                    source,
                },
                Takeover::Deferred(reason) => Flip::Deferred(format!(
                    "{why}; nothing put: {reason}; s3_suspend_old mirrors the old rules when {old_region} answers"
                )),
            };
            let plan = if planned {
                let old_client = self.clients.s3_best_effort.get(old_region);
                match replication(&old_client, old_region, &old_bucket.name).await {
                    Ok(Some(c)) => Flip::Put {
                        config: decide::mirror_for_flip(
                            &c,
                            &old_bucket.name,
                            &new_bucket.name,
                            new_bucket.replication_role_arn.as_deref(),
                            old_region,
                        )?,
                        source: RuleSource::Mirror,
                        detail: format!("rules mirrored from {} in {old_region}", old_bucket.name),
                    },
                    Ok(None) => {
                        return Err(Error::ResourceNotFound {
                            kind: "S3 replication configuration",
                            id: old_bucket.name.clone(),
                            region: old_region.to_owned(),
                        });
                    }
                    Err(e) if e.retry() == Retry::Transient => {
                        without_old(format!("{old_region} did not answer ({})", e.name()))
                    }
                    Err(e) => return Err(e),
                }
            } else {
                without_old(format!("unplanned: {old_region} not called"))
            };
            plans.push((*new_bucket, plan));
        }

        let mut resources = Vec::new();
        let mut acted = false;
        let mut deferred = false;
        for (new_bucket, plan) in plans {
            let id = marker(ctx.req, &new_bucket.name);
            let resource = match plan {
                Flip::AlreadyFlipped => bucket_outcome(
                    new_bucket,
                    new_region,
                    "already_flipped",
                    "replicating_to_others",
                    None,
                ),
                Flip::Put {
                    config,
                    source,
                    detail,
                } => {
                    let to = destinations(&config);
                    put_replication(&target, new_region, &new_bucket.name, config).await?;
                    acted = true;
                    self.record(
                        ctx,
                        id,
                        "s3_replication_flipped",
                        detail.clone(),
                        None,
                        Some(json!({"bucket": new_bucket.name, "destinations": to, "source": source.as_str()})),
                    )
                    .await?;
                    bucket_outcome(
                        new_bucket,
                        new_region,
                        "flipped",
                        "replicating_to_others",
                        Some(detail),
                    )
                }
                Flip::Deferred(detail) => {
                    deferred = true;
                    self.record(
                        ctx,
                        id,
                        "s3_replication_flip_deferred",
                        detail.clone(),
                        None,
                        Some(json!({"bucket": new_bucket.name, "source": RuleSource::Deferred.as_str()})),
                    )
                    .await?;
                    bucket_outcome(
                        new_bucket,
                        new_region,
                        "deferred",
                        "not_replicating",
                        Some(detail),
                    )
                }
            };
            resources.push(resource);
        }
        if deferred {
            tracing::warn!(
                workload = %ctx.req.workload,
                target_region = new_region,
                "A target bucket does not replicate yet: no rules to enable and no role in the spec"
            );
        }
        let status = if deferred { "flip_deferred" } else { "flipped" };
        Ok(outcome(ctx.req, true, status, !acted, resources))
    }

    /// Best effort, after traffic has moved: see [`Step::S3SuspendOld`]. Every call to
    /// the old Region goes through the best-effort client (2 s per attempt, 4 s per
    /// call); once the Region has not answered, it is not called again in this step.
    /// A failure there is an outcome and a `s3_old_rules_not_suspended` audit event,
    /// never an error.
    pub(crate) async fn s3_suspend_old(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let old = decide::old_primary(ctx.spec, ctx.req)?;
        let pairs = decide::bucket_pairs(old, ctx.target)?;
        let new_region = ctx.target.region.as_str();
        let old_region = old.region.as_str();
        let target = self.clients.s3.get(new_region);
        let old_client = self.clients.s3_best_effort.get(old_region);
        let events = ctx.store.list_events(&ctx.req.workload).await?;

        let mut resources = Vec::new();
        let mut acted = false;
        let mut all_suspended = true;
        let mut gave_up: Option<String> = None;
        for (old_bucket, new_bucket) in pairs {
            let read = match &gave_up {
                Some(why) => Err(format!("not called: {old_region} did not answer ({why})")),
                None => match replication(&old_client, old_region, &old_bucket.name).await {
                    Ok(c) => Ok(c),
                    Err(e) => {
                        if e.retry() == Retry::Transient {
                            gave_up = Some(e.name().as_str().to_owned());
                        }
                        Err(e.chain())
                    }
                },
            };
            let old_config = match read {
                Ok(c) => c,
                Err(why) => {
                    all_suspended = false;
                    self.record_not_suspended(ctx, old_bucket, old_region, &why)
                        .await?;
                    resources.push(bucket_outcome(
                        old_bucket,
                        old_region,
                        "not_suspended",
                        "unreachable",
                        Some(why),
                    ));
                    continue;
                }
            };

            // The target's rules: this epoch's flip built them from the spec (or put
            // none): now that the old rules can be read, put their exact mirror.
            let flip = marker_of(ctx.req, Step::S3Flip, &new_bucket.name);
            let source = events
                .iter()
                .find(|e| e.id == flip)
                .and_then(|e| RuleSource::of_event(e.after.as_ref()));
            if RuleSource::needs_mirror(source)
                && let Some(c) = &old_config
            {
                let id = marker(ctx.req, &new_bucket.name);
                let mirrored = decide::mirror_for_flip(
                    c,
                    &old_bucket.name,
                    &new_bucket.name,
                    new_bucket.replication_role_arn.as_deref(),
                    old_region,
                );
                let resource = match mirrored {
                    _ if events.iter().any(|e| e.id == id) => bucket_outcome(
                        new_bucket,
                        new_region,
                        "already_mirrored",
                        "replicating_to_others",
                        None,
                    ),
                    Ok(m) => {
                        let to = destinations(&m);
                        match put_replication(&target, new_region, &new_bucket.name, m).await {
                            Ok(()) => {
                                acted = true;
                                let why = format!(
                                    "the old rules of {} in {old_region} mirrored, replacing what s3_flip had to build without them",
                                    old_bucket.name
                                );
                                self.record(
                                    ctx,
                                    id,
                                    "s3_replication_mirrored",
                                    why.clone(),
                                    None,
                                    Some(json!({"bucket": new_bucket.name, "destinations": to, "source": RuleSource::Mirror.as_str()})),
                                )
                                .await?;
                                bucket_outcome(
                                    new_bucket,
                                    new_region,
                                    "mirrored",
                                    "replicating_to_others",
                                    Some(why),
                                )
                            }
                            Err(e) => bucket_outcome(
                                new_bucket,
                                new_region,
                                "not_mirrored",
                                "replicating_to_others",
                                Some(e.chain()),
                            ),
                        }
                    }
                    Err(e) => bucket_outcome(
                        new_bucket,
                        new_region,
                        "not_mirrored",
                        "replicating_to_others",
                        Some(e.to_string()),
                    ),
                };
                resources.push(resource);
            }

            let (action, status, detail) = match decide::suspension(old_config.as_ref()) {
                Suspension::NoRules => ("no_rules", "suspended", None),
                Suspension::AlreadySuspended => ("already_suspended", "suspended", None),
                Suspension::Suspend(off) => {
                    match put_replication(&old_client, old_region, &old_bucket.name, off).await {
                        Ok(()) => {
                            acted = true;
                            self.record(
                                ctx,
                                marker(ctx.req, &old_bucket.name),
                                "s3_old_rules_suspended",
                                format!(
                                    "every replication rule of {} in {old_region} disabled: traffic has moved to {new_region}",
                                    old_bucket.name
                                ),
                                None,
                                Some(json!({"bucket": old_bucket.name, "rules": "Disabled"})),
                            )
                            .await?;
                            ("suspended", "suspended", None)
                        }
                        Err(e) => {
                            if e.retry() == Retry::Transient {
                                gave_up = Some(e.name().as_str().to_owned());
                            }
                            all_suspended = false;
                            let why = e.chain();
                            self.record_not_suspended(ctx, old_bucket, old_region, &why)
                                .await?;
                            ("not_suspended", "unreachable", Some(why))
                        }
                    }
                }
            };
            resources.push(bucket_outcome(
                old_bucket, old_region, action, status, detail,
            ));
        }
        if !all_suspended {
            tracing::warn!(
                workload = %ctx.req.workload,
                old_region,
                "Old primary's replication rules not suspended: the Region did not answer"
            );
        }
        let status = if all_suspended {
            "old_rules_suspended"
        } else {
            "old_rules_active"
        };
        let mut out = outcome(ctx.req, true, status, !acted, resources);
        out.old_rules_suspended = Some(all_suspended);
        Ok(out)
    }

    /// The audit event of a suspension that did not happen (once per bucket and epoch).
    async fn record_not_suspended(
        &self,
        ctx: &Ctx<'_, S>,
        bucket: &BucketRef,
        region: &str,
        why: &str,
    ) -> Result<(), Error> {
        self.record(
            ctx,
            format!("{}:not_suspended", marker(ctx.req, &bucket.name)),
            "s3_old_rules_not_suspended",
            format!(
                "the replication rules of {} in {region} are still enabled ({why}): disable them when {region} answers",
                bucket.name
            ),
            None,
            Some(json!({"bucket": bucket.name, "region": region})),
        )
        .await
    }
}
