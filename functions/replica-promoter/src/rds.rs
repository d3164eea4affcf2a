//! RDS instances and Aurora global clusters.

use aws_sdk_rds::types::{DbInstance, GlobalCluster};
use lifeboat::error::is_transient;
use lifeboat::{Error, Store};
use serde_json::json;

use crate::decide::{self, AuroraAction, GlobalView, InstanceView, PromoteAction};
use crate::{Ctx, Outcome, Promoter, ResourceOutcome, marker, outcome};

const SERVICE: &str = "rds";

fn not_found(kind: &'static str, id: &str, region: &str) -> Error {
    Error::ResourceNotFound {
        kind,
        id: id.to_owned(),
        region: region.to_owned(),
    }
}

fn view_of(id: &str, db: &DbInstance) -> InstanceView {
    InstanceView {
        id: id.to_owned(),
        status: db.db_instance_status().unwrap_or("unknown").to_owned(),
        source: db
            .read_replica_source_db_instance_identifier()
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        arn: db.db_instance_arn().map(str::to_owned),
        engine: db.engine().map(str::to_owned),
        replication: decide::replication_normal(
            &db.status_infos()
                .iter()
                .map(|i| {
                    (
                        i.status_type().unwrap_or("").to_owned(),
                        i.status().unwrap_or("").to_owned(),
                        i.normal().unwrap_or(false),
                    )
                })
                .collect::<Vec<_>>(),
        ),
    }
}

fn global_view(g: &GlobalCluster) -> GlobalView {
    GlobalView {
        status: g.status().unwrap_or("unknown").to_owned(),
        members: g
            .global_cluster_members()
            .iter()
            .filter_map(|m| {
                m.db_cluster_arn()
                    .map(|arn| (arn.to_owned(), m.is_writer().unwrap_or(false)))
            })
            .collect(),
        failover: g.failover_state().and_then(|f| {
            f.status().map(|s| {
                (
                    s.as_str().to_owned(),
                    f.to_db_cluster_arn().map(str::to_owned),
                )
            })
        }),
    }
}

fn resource(
    kind: &str,
    id: &str,
    region: &str,
    action: &str,
    status: &str,
    detail: Option<String>,
) -> ResourceOutcome {
    ResourceOutcome {
        kind: kind.to_owned(),
        id: id.to_owned(),
        region: region.to_owned(),
        action: action.to_owned(),
        status: status.to_owned(),
        detail,
    }
}

/// One outcome per instance, with the one-word status a state machine sees.
fn instance_outcomes(views: &[InstanceView], region: &str, action: &str) -> Vec<ResourceOutcome> {
    views
        .iter()
        .map(|v| {
            resource(
                "rds_instance",
                &v.id,
                region,
                action,
                &decide::instance_status(v),
                None,
            )
        })
        .collect()
}

impl<S: Store> Promoter<S> {
    /// DescribeDBInstances of one instance; `None` when it does not exist.
    async fn find_instance(&self, region: &str, id: &str) -> Result<Option<InstanceView>, Error> {
        let res = self
            .clients
            .rds
            .get(region)
            .describe_db_instances()
            .db_instance_identifier(id)
            .send()
            .await;
        match res {
            Ok(out) => Ok(out
                .db_instances()
                .iter()
                .find(|db| db.db_instance_identifier() == Some(id))
                .or_else(|| out.db_instances().first())
                .map(|db| view_of(id, db))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_db_instance_not_found_fault()) =>
            {
                Ok(None)
            }
            Err(e) => Err(Error::from_sdk(SERVICE, "DescribeDBInstances", e)),
        }
    }

    async fn instance(&self, region: &str, id: &str) -> Result<InstanceView, Error> {
        self.find_instance(region, id)
            .await?
            .ok_or_else(|| not_found("DB instance", id, region))
    }

    /// Every RDS instance of the target Region, described before anything is changed.
    async fn target_instances(&self, ctx: &Ctx<'_, S>) -> Result<Vec<InstanceView>, Error> {
        let region = ctx.target.region.as_str();
        let mut views = Vec::new();
        for id in decide::rds_instances(ctx.target, ctx.req.step)? {
            views.push(self.instance(region, id).await?);
        }
        Ok(views)
    }

    pub(crate) async fn rds_promote(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let views = self.target_instances(ctx).await?;
        let client = self.clients.rds.get(region);
        let mut resources = Vec::new();
        let mut acted = false;
        for view in &views {
            let id = marker(ctx.req, &view.id);
            let requested = self.recorded(ctx, &id).await?;
            let action = match decide::promote_action(view, requested) {
                PromoteAction::AlreadyStandalone => "already_standalone",
                PromoteAction::AlreadyRequested => "already_requested",
                PromoteAction::Promote => {
                    let res = client
                        .promote_read_replica()
                        .db_instance_identifier(&view.id)
                        .send()
                        .await;
                    let action = match res {
                        Ok(_) => {
                            acted = true;
                            "promotion_requested"
                        }
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|se| se.is_db_instance_not_found_fault()) =>
                        {
                            return Err(not_found("DB instance", &view.id, region));
                        }
                        Err(e)
                            if e.as_service_error()
                                .is_some_and(|se| se.is_invalid_db_instance_state_fault()) =>
                        {
                            // A promotion already under way (a retry whose first call
                            // landed) is refused with this fault: look again.
                            let now = self.instance(region, &view.id).await?;
                            if decide::refusal_means_in_progress(&now) {
                                "already_in_progress"
                            } else {
                                return Err(Error::from_sdk(SERVICE, "PromoteReadReplica", e));
                            }
                        }
                        Err(e) => return Err(Error::from_sdk(SERVICE, "PromoteReadReplica", e)),
                    };
                    self.record(
                        ctx,
                        id,
                        "rds_promotion_requested",
                        format!(
                            "PromoteReadReplica of {} in {region} (failover to {region})",
                            view.id
                        ),
                        Some(json!({"instance_id": view.id, "replica_of": view.source})),
                        Some(json!({"instance_id": view.id, "replica_of": null})),
                    )
                    .await?;
                    action
                }
            };
            resources.push(resource(
                "rds_instance",
                &view.id,
                region,
                action,
                &view.status,
                view.source.as_ref().map(|s| format!("replica of {s}")),
            ));
        }
        let done = !acted && views.iter().all(InstanceView::is_available_writer);
        let status = if done { "available" } else { "promoting" };
        Ok(outcome(ctx.req, done, status, !acted, resources))
    }

    pub(crate) async fn rds_status(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let views = self.target_instances(ctx).await?;
        let done = views.iter().all(InstanceView::is_available_writer);
        let status = views
            .iter()
            .find(|v| !v.is_available_writer())
            .map_or_else(|| "available".to_owned(), decide::instance_status);
        let resources = instance_outcomes(&views, region, "checked");
        Ok(outcome(ctx.req, done, status, true, resources))
    }

    pub(crate) async fn rds_reprotect(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let sources = self.target_instances(ctx).await?;
        if let Some(waiting) = sources.iter().find(|v| !v.is_available_writer()) {
            let status = decide::instance_status(waiting);
            let resources = instance_outcomes(&sources, region, "waiting_for_promotion");
            return Ok(outcome(
                ctx.req,
                false,
                format!("waiting_for_promotion ({status})"),
                false,
                resources,
            ));
        }
        let mut resources = Vec::new();
        let mut placed = Vec::new();
        let mut created = false;
        let mut pending = false;
        // An unplanned failover never calls the Region it fails away from: it gets its
        // replica on the failback (which re-protects from the then primary).
        let skip = decide::failed_region(ctx.spec, ctx.req);
        // A replica exists when RDS says so: `creating` takes minutes on AWS, and the
        // failback must not move the writer onto a replica that is not there yet.
        let mut creating = false;
        for (index, source) in sources.iter().enumerate() {
            let Some(source_arn) = source.arn.as_deref() else {
                return Err(Error::VerificationFailed(format!(
                    "DB instance {} in {region} has no ARN to replicate from",
                    source.id
                )));
            };
            for other in ctx.spec.regions.iter().filter(|r| r.region != region) {
                let replica = decide::replica_id(&source.id, &other.region, ctx.req.epoch);
                if skip == Some(other.region.as_str()) {
                    resources.push(resource(
                        "rds_instance",
                        &replica,
                        &other.region,
                        "skipped_failed_region",
                        "pending",
                        Some(format!(
                            "not called: the Region failed away from; a failback re-protects it from {region}"
                        )),
                    ));
                    continue;
                }
                match self
                    .place_replica(&other.region, &replica, source_arn)
                    .await
                {
                    Ok((action, status)) => {
                        created |= action == "replica_created";
                        creating |= status != "available";
                        placed.push((other.region.clone(), index, replica.clone()));
                        resources.push(resource(
                            "rds_instance",
                            &replica,
                            &other.region,
                            action,
                            &status,
                            Some(format!("replica of {source_arn}")),
                        ));
                    }
                    // The old primary's Region may be down: the others are protected
                    // now, this one on a later run.
                    Err(e) if e.retry() == lifeboat::Retry::Transient => {
                        pending = true;
                        resources.push(resource(
                            "rds_instance",
                            &replica,
                            &other.region,
                            "unreachable",
                            "unknown",
                            Some(e.chain()),
                        ));
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        let engines: Vec<Option<String>> = sources.iter().map(|s| s.engine.clone()).collect();
        let mut spec_version = ctx.spec.version;
        let mut spec_changed = false;
        // What the new replicas replace in the spec (replicas of the dead primary, or a
        // failback's stale old writer): reported and audited for an operator to delete;
        // Lifeboat deletes no database. A retry finds the spec already updated: the
        // audit event the first call wrote holds them.
        let retired = decide::retired_replicas(ctx.spec, &placed);
        for (r, id) in &retired {
            resources.push(resource(
                "rds_instance",
                id,
                r,
                "retired_for_cleanup",
                "not_deleted",
                Some(format!(
                    "replaced in the spec by the replica of the new primary in {region}; still running, delete it when no longer needed"
                )),
            ));
        }
        if let Some(next) = decide::record_replicas(ctx.spec, &engines, &placed) {
            let stored = ctx.store.put_spec(&next, Some(ctx.req.fence())).await?;
            spec_version = stored.version;
            spec_changed = true;
            self.record(
                ctx,
                format!("{}:v{}", marker(ctx.req, "spec"), stored.version),
                "rds_reprotected",
                format!("read replicas of the new primary in {region} recorded in the spec"),
                Some(json!({"version": ctx.spec.version})),
                Some(json!({"version": stored.version, "replicas": placed
                    .iter()
                    .map(|(r, _, id)| json!({"region": r, "instance_id": id}))
                    .collect::<Vec<_>>(),
                    "retired_for_cleanup": retired
                    .iter()
                    .map(|(r, id)| json!({"region": r, "instance_id": id}))
                    .collect::<Vec<_>>(),
                    "skipped_failed_region": skip})),
            )
            .await?;
        }
        let done = !pending && !creating;
        let status = if pending {
            "partially_protected"
        } else if creating {
            "replicas_creating"
        } else if skip.is_some() {
            "surviving_regions_protected"
        } else {
            "protected"
        };
        let mut out = outcome(
            ctx.req,
            done,
            status,
            !created && !spec_changed && !pending,
            resources,
        );
        out.spec_version = Some(spec_version);
        Ok(out)
    }

    /// Makes sure `replica` exists in `region` as a read replica of `source_arn`.
    async fn place_replica(
        &self,
        region: &str,
        replica: &str,
        source_arn: &str,
    ) -> Result<(&'static str, String), Error> {
        if let Some(existing) = self.find_instance(region, replica).await? {
            return match existing.source.as_deref() {
                Some(src) if src == source_arn || source_arn.ends_with(&format!(":db:{src}")) => {
                    Ok((
                        "replica_exists",
                        decide::replica_state(&existing.status, existing.replication),
                    ))
                }
                other => Err(Error::VerificationFailed(format!(
                    "DB instance {replica} in {region} exists but replicates from {}",
                    other.unwrap_or("nothing")
                ))),
            };
        }
        let res = self
            .clients
            .rds
            .get(region)
            .create_db_instance_read_replica()
            .db_instance_identifier(replica)
            .source_db_instance_identifier(source_arn)
            .send()
            .await;
        match res {
            Ok(out) => Ok((
                "replica_created",
                out.db_instance()
                    .and_then(DbInstance::db_instance_status)
                    .unwrap_or("creating")
                    .to_owned(),
            )),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_db_instance_already_exists_fault()) =>
            {
                Ok(("replica_exists", "unknown".to_owned()))
            }
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_db_instance_not_found_fault()) =>
            {
                Err(not_found("DB instance", source_arn, region))
            }
            Err(e) => Err(Error::from_sdk(SERVICE, "CreateDBInstanceReadReplica", e)),
        }
    }

    /// DescribeGlobalClusters of one global cluster, in the target Region.
    async fn global_cluster(&self, region: &str, global_id: &str) -> Result<GlobalView, Error> {
        let res = self
            .clients
            .rds
            .get(region)
            .describe_global_clusters()
            .global_cluster_identifier(global_id)
            .send()
            .await;
        match res {
            Ok(out) => out
                .global_clusters()
                .iter()
                .find(|g| g.global_cluster_identifier() == Some(global_id))
                .or_else(|| out.global_clusters().first())
                .map(global_view)
                .ok_or_else(|| not_found("global cluster", global_id, region)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_global_cluster_not_found_fault()) =>
            {
                Err(not_found("global cluster", global_id, region))
            }
            Err(e) => Err(Error::from_sdk(SERVICE, "DescribeGlobalClusters", e)),
        }
    }

    /// The global cluster and the target member's ARN, or `ResourceNotFound`.
    async fn aurora_target(
        &self,
        region: &str,
        global_id: &str,
        cluster_id: &str,
    ) -> Result<(GlobalView, String), Error> {
        let view = self.global_cluster(region, global_id).await?;
        let arn = decide::member_arn(&view, region, cluster_id)
            .map(str::to_owned)
            .ok_or_else(|| {
                not_found(
                    "DB cluster (member of the global cluster)",
                    cluster_id,
                    region,
                )
            })?;
        Ok((view, arn))
    }

    pub(crate) async fn aurora_move(
        &self,
        ctx: &Ctx<'_, S>,
        allow_data_loss: bool,
    ) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let members = decide::aurora_members(ctx.target, ctx.req.step)?;
        let mut targets = Vec::new();
        for (global_id, cluster_id) in &members {
            targets.push(self.aurora_target(region, global_id, cluster_id).await?);
        }
        let client = self.clients.rds.get(region);
        let (api, verb) = if allow_data_loss {
            ("FailoverGlobalCluster", "failover")
        } else {
            ("SwitchoverGlobalCluster", "switchover")
        };
        let mut resources = Vec::new();
        let mut acted = false;
        for ((global_id, cluster_id), (view, arn)) in members.iter().zip(&targets) {
            let action = match decide::aurora_action(view, arn) {
                AuroraAction::AlreadyWriter => "already_writer",
                AuroraAction::InProgress => "already_in_progress",
                AuroraAction::Move => {
                    let res = if allow_data_loss {
                        client
                            .failover_global_cluster()
                            .global_cluster_identifier(*global_id)
                            .target_db_cluster_identifier(arn)
                            .allow_data_loss(true)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| aurora_error(e, api, global_id, region))
                    } else {
                        client
                            .switchover_global_cluster()
                            .global_cluster_identifier(*global_id)
                            .target_db_cluster_identifier(arn)
                            .send()
                            .await
                            .map(|_| ())
                            .map_err(|e| aurora_error(e, api, global_id, region))
                    };
                    res?;
                    acted = true;
                    self.record(
                        ctx,
                        marker(ctx.req, cluster_id),
                        if allow_data_loss {
                            "aurora_failover_requested"
                        } else {
                            "aurora_switchover_requested"
                        },
                        if allow_data_loss {
                            format!(
                                "FailoverGlobalCluster of {global_id} to {cluster_id} in {region} with AllowDataLoss: writes not yet replicated from the old writer may be lost (RPO not zero)"
                            )
                        } else {
                            format!(
                                "SwitchoverGlobalCluster of {global_id} to {cluster_id} in {region}: planned, RPO 0"
                            )
                        },
                        Some(json!({"writer": view.members.iter().find(|(_, w)| *w).map(|(a, _)| a)})),
                        Some(json!({"writer": arn, "allow_data_loss": allow_data_loss})),
                    )
                    .await?;
                    if allow_data_loss {
                        "failover_requested"
                    } else {
                        "switchover_requested"
                    }
                }
            };
            resources.push(resource(
                "aurora_cluster",
                cluster_id,
                region,
                action,
                &view.status,
                Some(format!("{verb} of global cluster {global_id} to {arn}")),
            ));
        }
        let done = !acted && targets.iter().all(|(v, arn)| decide::aurora_done(v, arn));
        let status = if done { "writer" } else { "moving" };
        let mut out = outcome(ctx.req, done, status, !acted, resources);
        out.data_loss_allowed = Some(allow_data_loss);
        Ok(out)
    }

    pub(crate) async fn aurora_status(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let mut resources = Vec::new();
        let mut done = true;
        let mut status = "writer".to_owned();
        for (global_id, cluster_id) in decide::aurora_members(ctx.target, ctx.req.step)? {
            let (view, arn) = self.aurora_target(region, global_id, cluster_id).await?;
            let member_done = decide::aurora_done(&view, &arn);
            if !member_done && done {
                done = false;
                status = match &view.failover {
                    Some((s, _)) => s.clone(),
                    None if decide::aurora_is_writer(&view, &arn) => view.status.clone(),
                    None => "not_writer".to_owned(),
                };
            }
            let writer = view
                .members
                .iter()
                .find(|(_, w)| *w)
                .map(|(a, _)| a.clone());
            resources.push(resource(
                "aurora_cluster",
                cluster_id,
                region,
                "checked",
                &view.status,
                Some(format!(
                    "writer of {global_id}: {}",
                    writer.as_deref().unwrap_or("none")
                )),
            ));
        }
        Ok(outcome(ctx.req, done, status, true, resources))
    }
}

impl<S: Store> Promoter<S> {
    /// `aurora_reprotect`: after the move, every other member of each global cluster
    /// must be a reader of the target's cluster. Aurora promotes the target and demotes
    /// the old primary to a secondary, keeping the replication topology
    /// (SwitchoverGlobalCluster, https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_SwitchoverGlobalCluster.html;
    /// FailoverGlobalCluster, https://docs.aws.amazon.com/AmazonRDS/latest/APIReference/API_FailoverGlobalCluster.html),
    /// so nothing is created: DescribeGlobalClusters in the target Region (the global
    /// view lists every member; the failed Region is not called) verifies and reports.
    pub(crate) async fn aurora_reprotect(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let mut resources = Vec::new();
        let mut done = true;
        let mut status = "followers_follow";
        for (global_id, cluster_id) in decide::aurora_members(ctx.target, ctx.req.step)? {
            let (view, arn) = self.aurora_target(region, global_id, cluster_id).await?;
            if !decide::aurora_is_writer(&view, &arn) {
                return Err(Error::VerificationFailed(format!(
                    "global cluster {global_id}: {cluster_id} in {region} is not the writer; aurora_reprotect runs after the move"
                )));
            }
            for (member, _) in view.members.iter().filter(|(a, _)| *a != arn) {
                let state = decide::aurora_follower(&view, &arn, member);
                if state != "follows" {
                    done = false;
                    status = if state == "writer" {
                        "second_writer"
                    } else {
                        "moving"
                    };
                }
                let member_region = member.split(':').nth(3).unwrap_or("unknown");
                resources.push(resource(
                    "aurora_cluster",
                    member,
                    member_region,
                    "checked",
                    state,
                    Some(format!("member of {global_id}; writer {arn}")),
                ));
            }
        }
        Ok(outcome(ctx.req, done, status, true, resources))
    }
}

/// Classifies a Switchover/FailoverGlobalCluster error.
fn aurora_error<E>(
    e: aws_sdk_rds::error::SdkError<E>,
    api: &'static str,
    global_id: &str,
    region: &str,
) -> Error
where
    E: aws_sdk_rds::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = e.as_service_error().and_then(|se| se.code()).unwrap_or("");
    if matches!(
        code,
        "GlobalClusterNotFoundFault" | "DBClusterNotFoundFault"
    ) && !is_transient(&e)
    {
        return not_found("global cluster", global_id, region);
    }
    Error::from_sdk(SERVICE, api, e)
}
