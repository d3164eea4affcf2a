//! Compute scaling I/O (issue #15): `compute_scale` asks the target Region's Auto
//! Scaling groups and ECS services for the capacity [`crate::compute`] decides;
//! `compute_status` waits, bounded by `policy.compute.max_wait_seconds` counted from the
//! scale request's audit event, until it is in service.

use std::collections::HashMap;

use aws_sdk_autoscaling::types::LifecycleState;
use lifeboat::model::{ComputeRef, ComputeResource};
use lifeboat::{Error, Store, UnixMillis};
use serde_json::{Value, json};

use crate::compute::{self, Observed, Progress, ScaleAction};
use crate::request::{Mode, Step};
use crate::{Ctx, Outcome, Promoter, ResourceOutcome, marker_of, outcome};

/// The resource name of the scale request's audit event (one per move and epoch).
const SCALE_MARKER: &str = "compute";

fn to_u32(n: Option<i32>) -> u32 {
    n.and_then(|n| u32::try_from(n).ok()).unwrap_or(0)
}

fn to_i32(n: u32) -> Result<i32, Error> {
    i32::try_from(n).map_err(|_| Error::InvalidInput(format!("capacity {n} is too large")))
}

fn resource_outcome(
    c: &ComputeRef,
    region: &str,
    action: &str,
    status: &str,
    detail: String,
) -> ResourceOutcome {
    ResourceOutcome {
        kind: c.resource.kind().to_owned(),
        id: c.resource.id(),
        region: region.to_owned(),
        action: action.to_owned(),
        status: status.to_owned(),
        detail: Some(detail),
    }
}

impl<S: Store> Promoter<S> {
    /// DescribeAutoScalingGroups / DescribeServices of one resource in `region`.
    /// `best_effort`: through the short-deadline clients (the Region a move leaves).
    async fn observe(
        &self,
        region: &str,
        c: &ComputeResource,
        best_effort: bool,
    ) -> Result<Observed, Error> {
        match c {
            ComputeResource::AutoScalingGroup { name } => {
                let client = if best_effort {
                    self.clients.autoscaling_best_effort.get(region)
                } else {
                    self.clients.autoscaling.get(region)
                };
                let out = client
                    .describe_auto_scaling_groups()
                    .auto_scaling_group_names(name)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk("autoscaling", "DescribeAutoScalingGroups", e))?;
                let Some(g) = out
                    .auto_scaling_groups()
                    .iter()
                    .find(|g| g.auto_scaling_group_name() == Some(name.as_str()))
                else {
                    return Err(Error::ResourceNotFound {
                        kind: "Auto Scaling group",
                        id: name.clone(),
                        region: region.to_owned(),
                    });
                };
                // Capacity is the instances InService: Pending ones are still launching
                // ("Amazon EC2 Auto Scaling instance lifecycle", EC2 Auto Scaling User
                // Guide, https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-lifecycle.html).
                let in_service = g
                    .instances()
                    .iter()
                    .filter(|i| i.lifecycle_state() == Some(&LifecycleState::InService))
                    .count();
                Ok(Observed {
                    desired: to_u32(g.desired_capacity()),
                    in_service: u32::try_from(in_service).unwrap_or(u32::MAX),
                    max: Some(to_u32(g.max_size())),
                    min: Some(to_u32(g.min_size())),
                })
            }
            ComputeResource::EcsService { cluster, service } => {
                let client = if best_effort {
                    self.clients.ecs_best_effort.get(region)
                } else {
                    self.clients.ecs.get(region)
                };
                let out = client
                    .describe_services()
                    .cluster(cluster)
                    .services(service)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk("ecs", "DescribeServices", e))?;
                // A missing service is a `failures` entry, not an error; an INACTIVE
                // (deleted) one cannot be scaled either.
                let Some(s) = out
                    .services()
                    .iter()
                    .find(|s| s.status() != Some("INACTIVE"))
                else {
                    return Err(Error::ResourceNotFound {
                        kind: "ECS service",
                        id: format!("{cluster}/{service}"),
                        region: region.to_owned(),
                    });
                };
                // runningCount: tasks RUNNING ("Service", ECS API Reference,
                // https://docs.aws.amazon.com/AmazonECS/latest/APIReference/API_Service.html).
                Ok(Observed {
                    desired: to_u32(Some(s.desired_count())),
                    in_service: to_u32(Some(s.running_count())),
                    max: None,
                    min: None,
                })
            }
        }
    }

    async fn set_desired(
        &self,
        region: &str,
        c: &ComputeResource,
        desired: u32,
        raise_max: Option<u32>,
    ) -> Result<(), Error> {
        match c {
            ComputeResource::AutoScalingGroup { name } => {
                // UpdateAutoScalingGroup rather than SetDesiredCapacity: one call sets the
                // desired capacity and, when it must grow, MaxSize with it.
                self.clients
                    .autoscaling
                    .get(region)
                    .update_auto_scaling_group()
                    .auto_scaling_group_name(name)
                    .desired_capacity(to_i32(desired)?)
                    .set_max_size(raise_max.map(to_i32).transpose()?)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk("autoscaling", "UpdateAutoScalingGroup", e))?;
            }
            ComputeResource::EcsService { cluster, service } => {
                self.clients
                    .ecs
                    .get(region)
                    .update_service()
                    .cluster(cluster)
                    .service(service)
                    .desired_count(to_i32(desired)?)
                    .send()
                    .await
                    .map_err(|e| Error::from_sdk("ecs", "UpdateService", e))?;
            }
        }
        Ok(())
    }

    /// What the left Region's resources run now, read there only when the move is
    /// planned (both Regions up), best effort: a resource that does not answer is
    /// left out, and its declared `full_capacity` counts instead.
    async fn left_capacities(&self, ctx: &Ctx<'_, S>) -> HashMap<String, u32> {
        let mut out = HashMap::new();
        if ctx.req.mode != Some(Mode::Planned) {
            return out;
        }
        let Some(left) = compute::left_region(ctx.spec, &ctx.target.region) else {
            return out;
        };
        for c in &left.compute {
            match self.observe(&left.region, &c.resource, true).await {
                Ok(o) => {
                    out.insert(c.tier.clone(), o.desired);
                }
                Err(error) => tracing::warn!(
                    workload = %ctx.req.workload,
                    region = %left.region,
                    tier = %c.tier,
                    %error,
                    "What the left Region runs could not be read; its full_capacity counts"
                ),
            }
        }
        out
    }

    pub(crate) async fn compute_scale(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let live = self.left_capacities(ctx).await;
        let plan = compute::scale_plan(ctx.spec, ctx.target, &|tier| live.get(tier).copied())?;
        // Every resource is described before anything changes.
        let mut observed = Vec::new();
        for p in &plan {
            observed.push(self.observe(region, &p.compute.resource, false).await?);
        }
        // The durable record first: its time starts the bounded wait, and its targets
        // are what compute_status waits for (a retry keeps the first ones).
        let targets: Vec<Value> = plan
            .iter()
            .map(|p| json!({"tier": p.compute.tier, "id": p.compute.resource.id(), "wanted": p.wanted, "basis": p.basis}))
            .collect();
        self.record(
            ctx,
            marker_of(ctx.req, Step::ComputeScale, SCALE_MARKER),
            "compute_scale_requested",
            format!("compute in {region} scaled before traffic moves"),
            Some(json!({"observed": plan.iter().zip(&observed).map(|(p, o)| json!({"id": p.compute.resource.id(), "desired": o.desired, "in_service": o.in_service})).collect::<Vec<_>>()})),
            Some(json!({"targets": targets})),
        )
        .await?;
        let mut resources = Vec::new();
        let mut acted = false;
        let mut done = true;
        for (p, now) in plan.iter().zip(observed) {
            let action = match compute::scale_action(p.wanted, now) {
                ScaleAction::AlreadyScaled => "already_scaled",
                ScaleAction::SetDesired { desired, raise_max } => {
                    self.set_desired(region, &p.compute.resource, desired, raise_max)
                        .await?;
                    acted = true;
                    "scale_requested"
                }
            };
            let in_service = now.in_service >= p.wanted;
            done &= in_service;
            resources.push(resource_outcome(
                p.compute,
                region,
                action,
                if in_service { "in_service" } else { "scaling" },
                format!("{}/{} in service ({})", now.in_service, p.wanted, p.basis),
            ));
        }
        let status = if done { "scaled" } else { "scaling" };
        Ok(Outcome {
            took_ms: done.then_some(0),
            ..outcome(ctx.req, done, status, !acted, resources)
        })
    }

    /// `compute_standby`: every compute resource of the target (the Region a failback's
    /// traffic has left) back to its standby size ([`compute::standby_target`]). Every
    /// resource is described before anything changes; the request is recorded first
    /// (audit event `compute_standby_requested`, with what each wanted), so a retry
    /// finds it and only sets what is still above its standby size.
    pub(crate) async fn compute_standby(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let standby = ctx.spec.policy.compute.standby;
        let mut observed = Vec::new();
        for c in &ctx.target.compute {
            observed.push(self.observe(region, &c.resource, false).await?);
        }
        let targets: Vec<Option<u32>> = ctx
            .target
            .compute
            .iter()
            .zip(&observed)
            .map(|(c, o)| compute::standby_target(standby, c, *o))
            .collect();
        self.record(
            ctx,
            marker_of(ctx.req, Step::ComputeStandby, SCALE_MARKER),
            "compute_standby_requested",
            format!("compute in {region} back to its standby size ({standby:?}) once traffic has left it"),
            Some(json!({"observed": ctx.target.compute.iter().zip(&observed).map(|(c, o)| json!({"id": c.resource.id(), "desired": o.desired, "in_service": o.in_service})).collect::<Vec<_>>()})),
            Some(json!({"targets": ctx.target.compute.iter().zip(&targets).map(|(c, t)| json!({"id": c.resource.id(), "standby": t})).collect::<Vec<_>>()})),
        )
        .await?;
        let mut resources = Vec::new();
        let mut acted = false;
        for ((c, now), target) in ctx.target.compute.iter().zip(observed).zip(targets) {
            let (action, detail) = match target {
                Some(size) => {
                    self.set_desired(region, &c.resource, size, None).await?;
                    acted = true;
                    ("scaled_down", format!("desired {} -> {size}", now.desired))
                }
                None => ("already_at_standby", format!("desired {}", now.desired)),
            };
            resources.push(resource_outcome(c, region, action, "standby", detail));
        }
        Ok(outcome(ctx.req, true, "standby", !acted, resources))
    }

    pub(crate) async fn compute_status(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        let id = marker_of(ctx.req, Step::ComputeScale, SCALE_MARKER);
        let events = ctx.store.list_events(&ctx.req.workload).await?;
        let Some(scale) = events.iter().find(|e| e.id == id) else {
            return Err(Error::InvalidInput(format!(
                "step: compute_status before compute_scale for {region} at epoch {}",
                ctx.req.epoch
            )));
        };
        let wanted: HashMap<String, u32> = scale
            .after
            .as_ref()
            .and_then(|a| a.get("targets"))
            .and_then(Value::as_array)
            .map(|ts| {
                ts.iter()
                    .filter_map(|t| {
                        let id = t.get("id")?.as_str()?.to_owned();
                        let n = u32::try_from(t.get("wanted")?.as_u64()?).ok()?;
                        Some((id, n))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut items = Vec::new();
        let mut resources = Vec::new();
        for c in &ctx.target.compute {
            let rid = c.resource.id();
            let Some(&want) = wanted.get(&rid) else {
                continue;
            };
            let now = self.observe(region, &c.resource, false).await?;
            resources.push(resource_outcome(
                c,
                region,
                "checked",
                if now.in_service >= want {
                    "in_service"
                } else {
                    "scaling"
                },
                format!("{}/{want} in service", now.in_service),
            ));
            items.push((rid, now.in_service, want));
        }
        let waited_ms = UnixMillis::now().since(scale.at);
        let took = |o: Outcome| Outcome {
            took_ms: Some(waited_ms),
            ..o
        };
        let mode = ctx.req.mode.unwrap_or(Mode::Planned);
        match compute::progress(&items, waited_ms / 1000, &ctx.spec.policy.compute, mode) {
            Progress::Scaled => Ok(took(outcome(ctx.req, true, "scaled", true, resources))),
            Progress::Waiting => Ok(took(outcome(ctx.req, false, "scaling", true, resources))),
            Progress::BelowTarget { short } => {
                let list: Vec<String> = short
                    .iter()
                    .map(|(id, have, want)| format!("{id} {have}/{want}"))
                    .collect();
                let reason = format!(
                    "unplanned failover into {region} goes on with compute below target after {} s (at least {} % of each): {}",
                    ctx.spec.policy.compute.max_wait_seconds,
                    ctx.spec.policy.compute.min_success_percent,
                    list.join(", ")
                );
                tracing::warn!(workload = %ctx.req.workload, region, %reason, "Compute below target");
                self.record(
                    ctx,
                    marker_of(ctx.req, Step::ComputeStatus, "below_target"),
                    "compute_below_target",
                    reason,
                    None,
                    Some(json!({"short": short.iter().map(|(id, have, want)| json!({"id": id, "in_service": have, "wanted": want})).collect::<Vec<_>>()})),
                )
                .await?;
                Ok(took(outcome(
                    ctx.req,
                    true,
                    "below_target",
                    false,
                    resources,
                )))
            }
            Progress::Insufficient { reason } => {
                Err(Error::VerificationFailed(format!("{region}: {reason}")))
            }
        }
    }
}
