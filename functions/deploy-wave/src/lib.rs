//! # deploy-wave
//!
//! The Lifeboat Lambda that rolls a version out Region by Region in waves: the
//! decisions and gates of the `deploy-waves` state machine, which calls
//! traffic-shifter's `shift_version` for the traffic itself.
//!
//! Steps: `plan` (dry run), `start` (checks, lease with purpose `deploy`, baselines,
//! rollouts recorded in the spec), `advance` (a Region's next stage), `gate` (after a
//! bake: CloudWatch metrics and alarms against absolute thresholds and the Region's
//! baseline), `promote_region`, `rollback_region`, `finish` (what still rolls back,
//! then the run record and the lease released). Decisions are pure functions in
//! [`decide`]; [`cloud`] is the thin CloudWatch layer. Every step after `start` checks
//! the lease epoch, writes the spec fenced and conditional on its version, appends an
//! audit event, and is idempotent under retries.

use std::time::Duration;

use aws_sdk_cloudwatch as cw;
use lambda_runtime::LambdaEvent;
use lifeboat::aws::RegionalClients;
use lifeboat::model::{DeploySpec, GateRecord, Rollout, RolloutState, WorkloadSpec};
use lifeboat::store::{
    AuditEvent, LeasePurpose, LeaseRequest, RunKind, RunOutcome, RunRecord, TimelineEntry,
};
use lifeboat::{Error, Result, Store, UnixMillis};
use serde_json::{Value, json};

pub mod cloud;
pub mod decide;
pub mod request;

pub use request::{Deploy, DeployRequest, Request};

use crate::decide::Verdict;
use crate::request::{Finished, FiringAlarm, NextAction, Planned, RegionOutcome};

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "deploy-wave";

/// Env var: the Lifeboat table.
pub const ENV_TABLE: &str = "LIFEBOAT_TABLE";

/// How long a deploy's lease outlives its last renewal beyond a bake: the machine renews
/// before every bake and at every stage, so no renewal-free stretch is longer than a
/// bake plus its tasks' worst case (every attempt to its timeout, every retry; checked
/// against `statemachines/deploy-waves.asl.json` by tests/tests/lease.rs). A deploy
/// whose execution died frees the lease within this, not hours later.
pub const LEASE_MARGIN_SECONDS: u64 = 7200;

/// The deploy's lease TTL, taken at `start` and renewed to by `renew`.
pub fn lease_ttl_seconds(bake_seconds: u64) -> u64 {
    bake_seconds.saturating_add(LEASE_MARGIN_SECONDS)
}

/// How many times a step re-reads the spec when another Region's step wrote it first.
const SPEC_ATTEMPTS: usize = 8;

/// The handler with its clients, built once in `main`.
pub struct Deployer<S> {
    store: S,
    cloudwatch: RegionalClients<cw::Client>,
    replicas: Option<Replicas<S>>,
    notifier: lifeboat::notify::Notifier,
}

/// The table's replicas by Region, and the handler's own Region: where the lease Region
/// is resolved from the spec.
struct Replicas<S> {
    home: String,
    store_in: Box<dyn Fn(&str) -> S + Send + Sync>,
}

/// The store a step uses: the handler's own, or the lease Region's replica.
enum At<'a, S> {
    Home(&'a S),
    Replica(S),
}

impl<S> std::ops::Deref for At<'_, S> {
    type Target = S;
    fn deref(&self) -> &S {
        match self {
            At::Home(s) => s,
            At::Replica(s) => s,
        }
    }
}

impl<S> std::fmt::Debug for Deployer<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("cloudwatch", &self.cloudwatch)
            .finish_non_exhaustive()
    }
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Value> {
    serde_json::to_value(v)
        .map_err(|e| Error::InvalidInput(format!("cannot encode the outcome: {e}")))
}

fn not_in_deploy(region: &str, deploy_id: &str) -> Error {
    Error::InvalidInput(format!(
        "region: `{region}` is not part of deploy `{deploy_id}` (no rollout of it in the spec)"
    ))
}

/// The Region's deploy section and this deploy's rollout in it.
fn rollout_mut<'a>(
    spec: &'a mut WorkloadSpec,
    region: &str,
    deploy_id: &str,
) -> Result<(&'a mut DeploySpec, Rollout)> {
    let d = spec
        .regions
        .iter_mut()
        .find(|r| r.region == region)
        .and_then(|r| r.deploy.as_mut())
        .ok_or_else(|| not_in_deploy(region, deploy_id))?;
    match &d.rollout {
        Some(r) if r.deploy_id == deploy_id => {
            let r = r.clone();
            Ok((d, r))
        }
        _ => Err(not_in_deploy(region, deploy_id)),
    }
}

fn rollout_of(spec: &WorkloadSpec, region: &str, deploy_id: &str) -> Result<(DeploySpec, Rollout)> {
    let mut spec = spec.clone();
    let (d, r) = rollout_mut(&mut spec, region, deploy_id)?;
    Ok((d.clone(), r))
}

fn region_outcome(region: &str, deploy: &Deploy, r: &Rollout, already_done: bool) -> RegionOutcome {
    RegionOutcome {
        region: region.to_owned(),
        action: None,
        decision: None,
        stage: r.stage,
        round: 0,
        slot: r.slot,
        old_slot: r.slot.other(),
        percent: r.percent,
        bake_seconds: deploy.bake_seconds,
        values: None,
        reasons: Vec::new(),
        state: r.state,
        already_done,
    }
}

impl<S: Store> Deployer<S> {
    /// A deployer over the store and CloudWatch clients per Region.
    pub fn new(store: S, cloudwatch: RegionalClients<cw::Client>) -> Self {
        Deployer {
            store,
            cloudwatch,
            replicas: None,
            notifier: lifeboat::notify::Notifier::disabled(),
        }
    }

    /// Where a deploy's start and end are told ([`lifeboat::notify`]); no one by default.
    pub fn with_notifier(mut self, notifier: lifeboat::notify::Notifier) -> Self {
        self.notifier = notifier;
        self
    }

    /// Takes, renews and checks the lease (and writes fenced) in the lease Region's
    /// replica ([`lifeboat::store::lease_region`], the same rule as failover-executor's),
    /// `store_in(region)` being the store over that Region's replica; `home` is the
    /// handler's own Region, whose replica (`store`) the spec is first read from.
    pub fn with_replicas(
        mut self,
        home: impl Into<String>,
        store_in: impl Fn(&str) -> S + Send + Sync + 'static,
    ) -> Self {
        self.replicas = Some(Replicas {
            home: home.into(),
            store_in: Box::new(store_in),
        });
        self
    }

    /// The lease Region of the workload as the spec in our own replica says.
    async fn lease_region_of(&self, workload: &str) -> Result<String> {
        match &self.replicas {
            Some(r) => {
                let spec = self.store.get_spec(workload).await?;
                Ok(lifeboat::store::lease_region(&spec, &r.home))
            }
            None => Ok(String::new()),
        }
    }

    /// The store of a deploy's lease Region.
    fn at(&self, deploy: &Deploy) -> At<'_, S> {
        match &self.replicas {
            Some(r) if !deploy.lease_region.is_empty() && deploy.lease_region != r.home => {
                At::Replica((r.store_in)(&deploy.lease_region))
            }
            _ => At::Home(&self.store),
        }
    }

    /// The Lambda handler: parses, runs, answers JSON.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value> {
        let req: Request = lifeboat::input::parse(event.payload)?;
        let result = self.run(&req).await;
        match &result {
            Ok(_) => tracing::info!(workload = %req.workload(), step = req.name(), "Step done"),
            Err(error) => tracing::warn!(
                workload = %req.workload(),
                step = req.name(),
                error_type = error.name().as_str(),
                error = %error.chain(),
                "Step failed"
            ),
        }
        result
    }

    /// Runs one step.
    pub async fn run(&self, req: &Request) -> Result<Value> {
        match req {
            Request::Plan { request } => encode(&Box::pin(self.plan(request)).await?),
            Request::Start {
                request,
                deploy_id,
                holder,
            } => encode(&Box::pin(self.start(request, deploy_id, holder)).await?),
            Request::Renew { deploy } => encode(&Box::pin(self.renew(deploy)).await?),
            Request::Advance { deploy, region } => {
                encode(&Box::pin(self.advance(deploy, region)).await?)
            }
            Request::Gate {
                deploy,
                region,
                stage,
                round,
            } => encode(&Box::pin(self.gate(deploy, region, *stage, *round)).await?),
            Request::PromoteRegion { deploy, region } => {
                encode(&Box::pin(self.promote_region(deploy, region)).await?)
            }
            Request::RollbackRegion {
                deploy,
                region,
                reason,
            } => encode(&Box::pin(self.rollback_region(deploy, region, reason.as_ref())).await?),
            Request::Finish {
                deploy,
                error,
                rollback_done,
            } => encode(&Box::pin(self.finish(deploy, error.as_ref(), *rollback_done)).await?),
            Request::Soak {
                workload,
                region,
                window_seconds,
                round,
                gates,
            } => {
                Box::pin(self.soak(workload, region, *window_seconds, *round, gates.as_ref())).await
            }
        }
    }

    /// A failback's soak: reads only (no lease, no write), so a retry is free.
    async fn soak(
        &self,
        workload: &str,
        region: &str,
        window_seconds: u64,
        round: u32,
        overrides: Option<&request::GateOverrides>,
    ) -> Result<Value> {
        if !(1..=86_400).contains(&window_seconds) {
            return Err(Error::InvalidInput(format!(
                "window_seconds: {window_seconds} is not between 1 and 86400"
            )));
        }
        let gates = decide::resolve_gates(overrides)?;
        let spec = self.store.get_spec(workload).await?;
        let r = spec.region(region).ok_or_else(|| {
            Error::InvalidInput(format!(
                "region: `{region}` is not a Region of workload `{workload}`"
            ))
        })?;
        let client = self.cloudwatch.get(region);
        let measured = match &r.deploy {
            Some(d) => Some(
                cloud::measure(
                    &client,
                    &d.metrics,
                    d.slot(d.live),
                    UnixMillis::now(),
                    window_seconds,
                )
                .await?,
            ),
            None => None,
        };
        let mut names = r.alarms.clone();
        for a in r
            .deploy
            .iter()
            .flat_map(|d| d.alarms.iter())
            .chain(gates.alarms.iter())
        {
            if !names.contains(a) {
                names.push(a.clone());
            }
        }
        let firing = if names.is_empty() {
            Vec::new()
        } else {
            cloud::alarms_in_alarm(&client, region, &names).await?
        };
        let (verdict, reasons) = decide::soak_verdict(&gates, measured.as_ref(), &firing, round);
        tracing::info!(
            workload,
            region,
            round,
            verdict = verdict.as_str(),
            reasons = %reasons.join("; "),
            "Soak evaluated"
        );
        Ok(json!({
            "workload": workload,
            "region": region,
            "round": round,
            "window_seconds": window_seconds,
            "verdict": verdict.as_str(),
            "reasons": reasons,
            "values": measured,
            "alarms_in_alarm": firing,
        }))
    }

    /// Decides the deploy from the request and the spec; no writes.
    async fn decide(
        &self,
        request: &DeployRequest,
        deploy_id: &str,
        holder: &str,
    ) -> Result<(WorkloadSpec, Planned)> {
        let steps = decide::check_request(request)?;
        let gates = decide::resolve_gates(request.gates.as_ref())?;
        if deploy_id.trim().is_empty() {
            return Err(Error::InvalidInput("deploy_id: must not be empty".into()));
        }
        // The spec as the lease Region's replica has it: where every fenced write of
        // the deploy goes (the home replica only says which Region that is).
        let lease_region = self.lease_region_of(&request.workload).await?;
        let spec = match &self.replicas {
            Some(r) if !lease_region.is_empty() && lease_region != r.home => {
                (r.store_in)(&lease_region)
                    .get_spec(&request.workload)
                    .await?
            }
            _ => self.store.get_spec(&request.workload).await?,
        };
        let (waves, skipped) = decide::plan_waves(&spec, request)?;
        let estimated_seconds = decide::estimate_seconds(&waves, &steps, request.bake_seconds);
        let deploy = Deploy {
            deploy_id: deploy_id.to_owned(),
            workload: request.workload.clone(),
            version: request.version.clone(),
            epoch: 0,
            holder: holder.to_owned(),
            steps,
            bake_seconds: request.bake_seconds,
            gates,
            rollback_scope: request.rollback_scope.unwrap_or_default(),
            started_at: UnixMillis::now(),
            lease_region,
        };
        Ok((
            spec,
            Planned {
                deploy,
                waves,
                skipped,
                preexisting_alarms: Vec::new(),
                estimated_seconds,
                already_done: false,
            },
        ))
    }

    /// The gate alarms of a Region: its deploy section's and the request's.
    fn gate_alarms(spec: &WorkloadSpec, region: &str, deploy: &Deploy) -> Vec<String> {
        let mut names: Vec<String> = spec
            .region(region)
            .and_then(|r| r.deploy.as_ref())
            .map(|d| d.alarms.clone())
            .unwrap_or_default();
        for a in &deploy.gates.alarms {
            if !names.contains(a) {
                names.push(a.clone());
            }
        }
        names
    }

    async fn firing_alarms(
        &self,
        spec: &WorkloadSpec,
        planned: &Planned,
    ) -> Result<Vec<FiringAlarm>> {
        let mut firing = Vec::new();
        for wave in &planned.waves {
            for region in &wave.regions {
                let names = Self::gate_alarms(spec, region, &planned.deploy);
                if names.is_empty() {
                    continue;
                }
                for alarm_name in
                    cloud::alarms_in_alarm(&self.cloudwatch.get(region), region, &names).await?
                {
                    firing.push(FiringAlarm {
                        region: region.clone(),
                        alarm_name,
                    });
                }
            }
        }
        Ok(firing)
    }

    async fn plan(&self, request: &DeployRequest) -> Result<Planned> {
        let (spec, mut planned) = self.decide(request, "plan", "").await?;
        planned.preexisting_alarms = self.firing_alarms(&spec, &planned).await?;
        Ok(planned)
    }

    async fn start(
        &self,
        request: &DeployRequest,
        deploy_id: &str,
        holder: &str,
    ) -> Result<Planned> {
        if holder.trim().is_empty() {
            return Err(Error::InvalidInput("holder: must not be empty".into()));
        }
        let (spec, mut planned) = self.decide(request, deploy_id, holder).await?;
        let now = UnixMillis::now();
        // The one lease Region of every mover (`decide` resolved it), fixed for the rest
        // of the deploy: the lease is taken, renewed and checked there.
        let store = self.at(&planned.deploy);

        // Frozen while a failover, failback or drill holds the lease.
        let lease = store.get_lease(&request.workload).await?;
        if let Some(l) = &lease
            && !l.is_expired(now)
            && l.holder != holder
        {
            return Err(held(
                l.holder.clone(),
                l.purpose,
                l.epoch,
                l.expires_at,
                &request.workload,
            ));
        }

        // A retried start: the lease is ours and the rollouts are recorded.
        if let Some(l) = &lease
            && l.holder == holder
            && !decide::rollouts(&spec, deploy_id).is_empty()
        {
            planned.deploy.epoch = l.epoch;
            planned.deploy.started_at = decide::rollouts(&spec, deploy_id)
                .first()
                .map_or(now, |(_, r)| r.started_at);
            planned.already_done = true;
            return Ok(planned);
        }

        let firing = self.firing_alarms(&spec, &planned).await?;
        if !firing.is_empty() && request.allow_preexisting_alarms.is_none() {
            let list: Vec<String> = firing
                .iter()
                .map(|f| format!("{} in {}", f.alarm_name, f.region))
                .collect();
            return Err(Error::InvalidInput(format!(
                "allow_preexisting_alarms: gate alarms already in ALARM before the deploy: {}; \
                 to deploy anyway (e.g. the hotfix for them), pass allow_preexisting_alarms with a reason",
                list.join(", ")
            )));
        }
        planned.preexisting_alarms = firing;

        let ttl_seconds = lease_ttl_seconds(planned.deploy.bake_seconds);
        let acquired = store
            .acquire_lease(
                &LeaseRequest {
                    workload: request.workload.clone(),
                    holder: holder.to_owned(),
                    purpose: LeasePurpose::Deploy,
                    ttl: Duration::from_secs(ttl_seconds),
                },
                now,
            )
            .await
            .map_err(|e| match e {
                Error::LeaseHeld {
                    workload,
                    holder,
                    purpose,
                    ..
                } if purpose != LeasePurpose::Deploy.to_string() => Error::DeployFrozen {
                    workload,
                    holder,
                    purpose,
                },
                other => other,
            })?;
        planned.deploy.epoch = acquired.epoch;
        planned.deploy.started_at = now;

        // Every Region's baseline: its live slot before the deploy.
        let mut baselines = Vec::new();
        for region in planned.waves.iter().flat_map(|w| w.regions.iter()) {
            let Some(d) = spec.region(region).and_then(|r| r.deploy.as_ref()) else {
                continue;
            };
            let values = cloud::measure(
                &self.cloudwatch.get(region),
                &d.metrics,
                d.slot(d.live),
                now,
                planned.deploy.gates.baseline_seconds,
            )
            .await?;
            baselines.push((region.clone(), values));
        }

        let deploy = planned.deploy.clone();
        let firing = planned.preexisting_alarms.clone();
        self.update_spec(&deploy, |spec| {
            let mut changed = false;
            for (region, baseline) in &baselines {
                let Some(d) = spec
                    .regions
                    .iter_mut()
                    .find(|r| &r.region == region)
                    .and_then(|r| r.deploy.as_mut())
                else {
                    continue;
                };
                if d.rollout
                    .as_ref()
                    .is_some_and(|r| r.deploy_id == deploy.deploy_id)
                {
                    continue;
                }
                d.rollout = Some(Rollout {
                    deploy_id: deploy.deploy_id.clone(),
                    version: deploy.version.clone(),
                    from_version: d.version.clone(),
                    slot: decide::target_slot(d.live),
                    state: RolloutState::Pending,
                    steps: deploy.steps.clone(),
                    stage: 0,
                    percent: 0,
                    baseline: Some(baseline.clone()),
                    ignored_alarms: firing
                        .iter()
                        .filter(|f| &f.region == region)
                        .map(|f| f.alarm_name.clone())
                        .collect(),
                    gates: Vec::new(),
                    started_at: deploy.started_at,
                    shift_started_at: None,
                    finished_at: None,
                    reason: None,
                });
                changed = true;
            }
            Ok(changed)
        })
        .await?;

        let summary = encode(&planned)?;
        self.audit(
            &deploy,
            "start",
            "deploy_started",
            request.reason.clone().unwrap_or_else(|| {
                format!(
                    "deploy {} of {} requested by {}",
                    deploy.version,
                    deploy.workload,
                    request.requested_by.as_deref().unwrap_or("(unknown)")
                )
            }),
            Some(summary.clone()),
        )
        .await?;
        if let Some(allow) = &request.allow_preexisting_alarms
            && !planned.preexisting_alarms.is_empty()
        {
            self.audit(
                &deploy,
                "start/alarms",
                "preexisting_alarms_allowed",
                allow.reason.clone(),
                Some(encode(&planned.preexisting_alarms)?),
            )
            .await?;
        }
        for s in &planned.skipped {
            self.audit(
                &deploy,
                &format!("start/skip/{}", s.region),
                "region_skipped",
                format!("{} is not deployed: {}", s.region, s.reason),
                Some(json!({ "region": s.region, "reason": s.reason })),
            )
            .await?;
        }
        let run = RunRecord {
            id: deploy.deploy_id.clone(),
            kind: RunKind::Deploy,
            started_at: deploy.started_at,
            finished_at: None,
            outcome: RunOutcome::Running,
            timeline: vec![TimelineEntry {
                at: deploy.started_at,
                step: "start".into(),
                duration_ms: Some(UnixMillis::now().0.saturating_sub(now.0)),
                detail: Some(format!(
                    "{} waves, {} skipped",
                    planned.waves.len(),
                    planned.skipped.len()
                )),
            }],
            measured_rto_ms: None,
            measured_rpo_ms: None,
            rpo_simulated: false,
            details: json!({ "plan": summary, "request": request }),
        };
        store
            .put_run(&deploy.workload, &run, Some(deploy.fence()))
            .await?;
        let reason = format!("deploy {}", deploy.version);
        let started = lifeboat::notify::run_started(&lifeboat::notify::Started {
            workload: &deploy.workload,
            run_id: &deploy.deploy_id,
            execution: &deploy.holder,
            kind: RunKind::Deploy,
            operation: "deploy",
            drill: false,
            from_region: "",
            to_region: "",
            epoch: deploy.epoch,
            requested_by: request.requested_by.as_deref().unwrap_or(""),
            reason: request.reason.as_deref().unwrap_or(&reason),
            at: deploy.started_at,
        });
        Box::pin(self.notifier.send(&started)).await;
        Ok(planned)
    }

    /// Extends the lease in the lease Region's replica; superseded, it records why
    /// ([`Self::check_epoch`]) and fails `StaleEpoch`, changing nothing else.
    async fn renew(&self, deploy: &Deploy) -> Result<lifeboat::store::Lease> {
        self.check_epoch(deploy).await?;
        self.at(deploy)
            .renew_lease(
                &deploy.workload,
                &deploy.holder,
                deploy.epoch,
                Duration::from_secs(lease_ttl_seconds(deploy.bake_seconds)),
                UnixMillis::now(),
            )
            .await
    }

    async fn advance(&self, deploy: &Deploy, region: &str) -> Result<RegionOutcome> {
        self.check_epoch(deploy).await?;
        let now = UnixMillis::now();
        let mut decided = None;
        let spec = self
            .update_spec(deploy, |spec| {
                let halted = decide::halted(spec, &deploy.deploy_id);
                let (d, r) = rollout_mut(spec, region, &deploy.deploy_id)?;
                let (action, stage) = decide::next_action(&r, halted.is_some());
                let mut changed = false;
                if r.state == RolloutState::Pending && action == NextAction::Done {
                    let mut next = r.clone();
                    next.state = RolloutState::Skipped;
                    next.finished_at = Some(now);
                    next.reason = Some(format!(
                        "not started: {} failed its gate",
                        halted.as_deref().unwrap_or("another Region")
                    ));
                    d.rollout = Some(next);
                    changed = true;
                }
                if action == NextAction::Shift {
                    let percent = r.steps.get(stage).copied().ok_or_else(|| {
                        Error::InvalidInput(format!("stage {stage} is past the canary steps"))
                    })?;
                    if r.state != RolloutState::Shifting || r.stage != stage || r.percent != percent
                    {
                        let mut next = r.clone();
                        next.state = RolloutState::Shifting;
                        next.stage = stage;
                        next.percent = percent;
                        next.shift_started_at.get_or_insert(now);
                        d.rollout = Some(next);
                        changed = true;
                    }
                }
                decided = Some((action, halted, changed));
                Ok(changed)
            })
            .await?;
        let (action, halted, changed) =
            decided.ok_or_else(|| Error::VerificationFailed("advance decided nothing".into()))?;
        let (_, r) = rollout_of(&spec, region, &deploy.deploy_id)?;
        let mut out = region_outcome(region, deploy, &r, !changed);
        out.action = Some(action);
        if changed && r.state == RolloutState::Skipped {
            self.audit(
                deploy,
                &format!("advance/{region}/skip"),
                "region_skipped",
                r.reason.clone().unwrap_or_default(),
                Some(json!({ "region": region, "reason": "halted" })),
            )
            .await?;
        } else if changed {
            self.audit(
                deploy,
                &format!("advance/{region}/{}", r.stage),
                "stage_started",
                format!(
                    "{region}: stage {} puts {} % of traffic on {} ({})",
                    r.stage,
                    r.percent,
                    r.slot.as_str(),
                    deploy.version
                ),
                Some(json!({ "region": region, "stage": r.stage, "percent": r.percent, "slot": r.slot })),
            )
            .await?;
        }
        if let (NextAction::Halt, Some(other)) = (action, halted) {
            out.reasons = vec![format!(
                "{other} failed its gate: this Region rolls back too"
            )];
        }
        Ok(out)
    }

    async fn gate(
        &self,
        deploy: &Deploy,
        region: &str,
        stage: usize,
        round: u32,
    ) -> Result<RegionOutcome> {
        self.check_epoch(deploy).await?;
        let spec = self.at(deploy).get_spec(&deploy.workload).await?;
        let (d, r) = rollout_of(&spec, region, &deploy.deploy_id)?;
        if let Some(g) = r
            .gates
            .iter()
            .find(|g| g.stage == stage && g.round == round)
        {
            return Ok(gate_outcome(region, deploy, &r, g, true));
        }
        if r.state != RolloutState::Shifting || r.stage != stage {
            return Err(Error::InvalidInput(format!(
                "stage: {region} is {:?} at stage {}, not baking stage {stage}",
                r.state, r.stage
            )));
        }
        let now = UnixMillis::now();
        let (verdict, values, reasons) = match decide::halted(&spec, &deploy.deploy_id) {
            Some(other) => (
                Verdict::Rollback,
                Default::default(),
                vec![format!(
                    "{other} failed its gate: this Region rolls back too"
                )],
            ),
            None => {
                let client = self.cloudwatch.get(region);
                let mut values = cloud::measure(
                    &client,
                    &d.metrics,
                    d.slot(r.slot),
                    now,
                    deploy.bake_seconds,
                )
                .await?;
                let names: Vec<String> = Self::gate_alarms(&spec, region, deploy)
                    .into_iter()
                    .filter(|a| !r.ignored_alarms.contains(a))
                    .collect();
                if !names.is_empty() {
                    values.alarms_in_alarm =
                        cloud::alarms_in_alarm(&client, region, &names).await?;
                }
                let (verdict, reasons) =
                    decide::evaluate(&deploy.gates, &values, r.baseline.as_ref(), round);
                (verdict, values, reasons)
            }
        };
        let record = GateRecord {
            stage,
            percent: r.percent,
            round,
            at: now,
            window_seconds: deploy.bake_seconds,
            verdict: verdict.as_str().to_owned(),
            values,
            reasons,
        };
        let spec = self
            .update_spec(deploy, |spec| {
                let (d, r) = rollout_mut(spec, region, &deploy.deploy_id)?;
                if r.gates.iter().any(|g| g.stage == stage && g.round == round) {
                    return Ok(false);
                }
                let mut next = r;
                next.gates.push(record.clone());
                d.rollout = Some(next);
                Ok(true)
            })
            .await?;
        let (_, r) = rollout_of(&spec, region, &deploy.deploy_id)?;
        let stored = r
            .gates
            .iter()
            .find(|g| g.stage == stage && g.round == round)
            .cloned()
            .unwrap_or(record);
        self.audit(
            deploy,
            &format!("gate/{region}/{stage}/{round}"),
            "gate_evaluated",
            format!(
                "{region} stage {stage} round {round} ({} %): {} — {}",
                stored.percent,
                stored.verdict,
                stored.reasons.join("; ")
            ),
            Some(encode(&stored)?),
        )
        .await?;
        Ok(gate_outcome(region, deploy, &r, &stored, false))
    }

    async fn promote_region(&self, deploy: &Deploy, region: &str) -> Result<RegionOutcome> {
        self.check_epoch(deploy).await?;
        let now = UnixMillis::now();
        let mut changed = false;
        let spec = self
            .update_spec(deploy, |spec| {
                let (d, r) = rollout_mut(spec, region, &deploy.deploy_id)?;
                if r.state == RolloutState::Promoted {
                    changed = false;
                    return Ok(false);
                }
                let (action, _) = decide::next_action(&r, false);
                if action != NextAction::Promote {
                    return Err(Error::InvalidInput(format!(
                        "region: {region} has not passed every stage (it is {:?} at stage {})",
                        r.state, r.stage
                    )));
                }
                let mut next = r;
                next.state = RolloutState::Promoted;
                next.percent = 100;
                next.finished_at = Some(now);
                d.previous_version = d.version.take();
                d.version = Some(next.version.clone());
                d.live = next.slot;
                d.rollout = Some(next);
                changed = true;
                Ok(true)
            })
            .await?;
        let (d, r) = rollout_of(&spec, region, &deploy.deploy_id)?;
        if changed {
            self.audit(
                deploy,
                &format!("promote/{region}"),
                "region_promoted",
                format!(
                    "{region} now serves {} from {}",
                    deploy.version,
                    r.slot.as_str()
                ),
                Some(json!({ "region": region, "version": d.version, "previous_version": d.previous_version, "live": d.live })),
            )
            .await?;
        }
        Ok(region_outcome(region, deploy, &r, !changed))
    }

    async fn rollback_region(
        &self,
        deploy: &Deploy,
        region: &str,
        reason: Option<&Value>,
    ) -> Result<RegionOutcome> {
        self.check_epoch(deploy).await?;
        let now = UnixMillis::now();
        let why = match reason {
            None | Some(Value::Null) => "rolled back".to_owned(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_owned))
                .collect::<Vec<_>>()
                .join("; "),
            Some(other) => other.to_string(),
        };
        let mut before = None;
        let spec = self
            .update_spec(deploy, |spec| {
                let (d, r) = rollout_mut(spec, region, &deploy.deploy_id)?;
                if r.state == RolloutState::RolledBack {
                    return Ok(false);
                }
                before = Some(r.state);
                let mut next = r;
                if next.state == RolloutState::Promoted {
                    d.live = next.slot.other();
                    d.version = next.from_version.clone();
                    d.previous_version = None;
                }
                next.state = RolloutState::RolledBack;
                next.percent = 0;
                next.finished_at = Some(now);
                next.reason = Some(why.clone());
                d.rollout = Some(next);
                Ok(true)
            })
            .await?;
        let (d, r) = rollout_of(&spec, region, &deploy.deploy_id)?;
        if let Some(state) = before {
            self.audit(
                deploy,
                &format!("rollback/{region}"),
                "region_rolled_back",
                format!(
                    "{region} is back on {} ({}): {why}",
                    r.slot.other().as_str(),
                    d.version.as_deref().unwrap_or("its previous version")
                ),
                Some(
                    json!({ "region": region, "was": state, "version": d.version, "live": d.live }),
                ),
            )
            .await?;
        }
        Ok(region_outcome(region, deploy, &r, before.is_none()))
    }

    async fn finish(
        &self,
        deploy: &Deploy,
        error: Option<&Value>,
        rollback_done: bool,
    ) -> Result<Finished> {
        let error = error.filter(|e| !e.is_null());
        let lease = self.at(deploy).get_lease(&deploy.workload).await?;
        if let Err(stale) =
            lifeboat::store::check_fence(&deploy.workload, &deploy.fence(), lease.as_ref())
        {
            // A retried finish: the lease is released and the run is final.
            let runs = self.at(deploy).list_runs(&deploy.workload).await?;
            return match runs.into_iter().find(|r| r.id == deploy.deploy_id) {
                Some(run) if run.outcome != RunOutcome::Running => {
                    let spec = self.at(deploy).get_spec(&deploy.workload).await?;
                    Ok(Finished {
                        outcome: outcome_name(run.outcome).into(),
                        rollback: Vec::new(),
                        regions: states(&spec, &deploy.deploy_id),
                        run_id: Some(run.id),
                        already_done: true,
                    })
                }
                Some(run) if lease.as_ref().is_some_and(|l| l.holder != deploy.holder) => {
                    self.superseded(deploy, run, lease.as_ref(), &stale, error)
                        .await
                }
                _ => Err(stale),
            };
        }
        let spec = self.at(deploy).get_spec(&deploy.workload).await?;
        let failed_region = decide::halted(&spec, &deploy.deploy_id);
        let failed = failed_region.is_some() || error.is_some();
        let rollback =
            decide::rollback_set(&spec, &deploy.deploy_id, deploy.rollback_scope, failed);
        // First pass after a failure: hand the machine what to roll back. Once it has
        // (or its rollback failed), finish with what is left.
        if !rollback.is_empty() && !rollback_done {
            return Ok(Finished {
                outcome: "rolling_back".into(),
                rollback,
                regions: states(&spec, &deploy.deploy_id),
                run_id: None,
                already_done: false,
            });
        }
        let now = UnixMillis::now();
        let spec = self
            .update_spec(deploy, |spec| {
                let mut changed = false;
                for r in spec.regions.iter_mut() {
                    let Some(ro) = r.deploy.as_mut().and_then(|d| d.rollout.as_mut()) else {
                        continue;
                    };
                    if ro.deploy_id == deploy.deploy_id && ro.state == RolloutState::Pending {
                        ro.state = RolloutState::Skipped;
                        ro.finished_at = Some(now);
                        ro.reason = Some("the deploy stopped before this Region's wave".into());
                        changed = true;
                    }
                }
                Ok(changed)
            })
            .await?;
        let outcome = if error.is_some() || !rollback.is_empty() {
            RunOutcome::Failed
        } else if failed {
            RunOutcome::RolledBack
        } else {
            RunOutcome::Succeeded
        };
        let runs = self.at(deploy).list_runs(&deploy.workload).await?;
        let plan = runs
            .into_iter()
            .find(|r| r.id == deploy.deploy_id)
            .map(|r| r.details)
            .unwrap_or(Value::Null);
        let run = run_record(
            deploy,
            &spec,
            outcome,
            now,
            &plan,
            failed_region.as_deref(),
            error,
            &rollback,
        );
        self.at(deploy)
            .put_run(&deploy.workload, &run, Some(deploy.fence()))
            .await?;
        if let Some(n) = lifeboat::notify::run_ended(&deploy.workload, &run, Some(&deploy.holder)) {
            Box::pin(self.notifier.send(&n)).await;
        }
        self.audit(
            deploy,
            "finish",
            "deploy_finished",
            format!("deploy {} of {}: {}", deploy.version, deploy.workload, outcome_name(outcome)),
            Some(json!({ "outcome": outcome, "regions": states(&spec, &deploy.deploy_id), "rollback_incomplete": rollback, "error": error })),
        )
        .await?;
        self.at(deploy)
            .release_lease(
                &deploy.workload,
                &deploy.holder,
                deploy.epoch,
                UnixMillis::now(),
            )
            .await?;
        Ok(Finished {
            outcome: outcome_name(outcome).into(),
            rollback: Vec::new(),
            regions: states(&spec, &deploy.deploy_id),
            run_id: Some(run.id),
            already_done: false,
        })
    }

    /// A deploy whose lease another mover took over ends `superseded`: its own run record
    /// says so and by whom (written unfenced: the record is this deploy's alone, and
    /// nothing else is touched), nothing is rolled back (that would need the lease), and
    /// what the deploy had shifted stays for the new holder to decide. Idempotent: a
    /// retried finish sees the final record and returns it.
    async fn superseded(
        &self,
        deploy: &Deploy,
        mut run: RunRecord,
        lease: Option<&lifeboat::store::Lease>,
        stale: &Error,
        error: Option<&Value>,
    ) -> Result<Finished> {
        let now = UnixMillis::now();
        run.outcome = RunOutcome::Superseded;
        run.finished_at = Some(now);
        run.timeline.push(TimelineEntry {
            at: now,
            step: "superseded".into(),
            duration_ms: Some(now.0.saturating_sub(deploy.started_at.0)),
            detail: Some(stale.to_string()),
        });
        let by = lease.map(|l| json!({"holder": l.holder, "purpose": l.purpose, "epoch": l.epoch}));
        // The record `start` wrote carries the plan in an object; anything else is
        // replaced by one.
        if !run.details.is_object() {
            run.details = json!({});
        }
        run.details["superseded"] = json!({"by": by, "why": stale.to_string()});
        if let Some(e) = error {
            run.details["error"] = e.clone();
        }
        self.at(deploy)
            .put_run(&deploy.workload, &run, None)
            .await?;
        if let Some(n) = lifeboat::notify::run_ended(&deploy.workload, &run, Some(&deploy.holder)) {
            Box::pin(self.notifier.send(&n)).await;
        }
        let spec = self.at(deploy).get_spec(&deploy.workload).await?;
        Ok(Finished {
            outcome: outcome_name(RunOutcome::Superseded).into(),
            rollback: Vec::new(),
            regions: states(&spec, &deploy.deploy_id),
            run_id: Some(run.id),
            already_done: false,
        })
    }

    /// The lease must be held at exactly the deploy's epoch.
    /// Checks holder and epoch; once superseded (a failover took the lease over, or an
    /// operator forced it) it records why, once (`deploy_superseded`), and the step stops
    /// with `StaleEpoch` before shifting anything.
    async fn check_epoch(&self, deploy: &Deploy) -> Result<()> {
        let store = self.at(deploy);
        let lease = store.get_lease(&deploy.workload).await?;
        let checked =
            lifeboat::store::check_fence(&deploy.workload, &deploy.fence(), lease.as_ref());
        if let Err(stale) = &checked {
            let event = AuditEvent {
                at: lease.as_ref().map_or(deploy.started_at, |l| l.acquired_at),
                id: format!("{}-superseded-{}", deploy.deploy_id, deploy.epoch),
                actor: deploy.holder.clone(),
                action: "deploy_superseded".into(),
                reason: format!(
                    "deploy {} of {} stopped: it no longer holds the lease ({stale}); no traffic is shifted by it any more",
                    deploy.version, deploy.workload
                ),
                before: Some(json!({"epoch": deploy.epoch, "holder": deploy.holder})),
                after: Some(json!(lease.as_ref().map(|l| json!({
                    "holder": l.holder, "purpose": l.purpose, "epoch": l.epoch
                })))),
            };
            store.append_event(&deploy.workload, &event).await?;
        }
        checked
    }

    /// Reads the spec, applies `edit` (which says whether it changed anything) and
    /// writes it fenced and conditional on the version read; another Region's step
    /// writing first (`ConcurrentModification`) means read and apply again.
    async fn update_spec<F>(&self, deploy: &Deploy, mut edit: F) -> Result<WorkloadSpec>
    where
        F: FnMut(&mut WorkloadSpec) -> Result<bool>,
    {
        let mut last = None;
        for _ in 0..SPEC_ATTEMPTS {
            let mut spec = self.at(deploy).get_spec(&deploy.workload).await?;
            if !edit(&mut spec)? {
                return Ok(spec);
            }
            match self.at(deploy).put_spec(&spec, Some(deploy.fence())).await {
                Ok(stored) => return Ok(stored),
                Err(e @ Error::ConcurrentModification { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| Error::ConcurrentModification {
            workload: deploy.workload.clone(),
            expected: 0,
            found: 0,
        }))
    }

    async fn audit(
        &self,
        deploy: &Deploy,
        key: &str,
        action: &str,
        reason: String,
        after: Option<Value>,
    ) -> Result<()> {
        let event = AuditEvent {
            at: UnixMillis::now(),
            id: format!("{}/{key}", deploy.deploy_id),
            actor: if deploy.holder.is_empty() {
                NAME.to_owned()
            } else {
                deploy.holder.clone()
            },
            action: action.to_owned(),
            reason,
            before: None,
            after,
        };
        self.at(deploy)
            .append_event(&deploy.workload, &event)
            .await?;
        Ok(())
    }
}

/// The lease is held by someone else: `DeployFrozen` for a failover, failback or
/// drill, `LeaseHeld` for another deploy.
fn held(
    holder: String,
    purpose: LeasePurpose,
    epoch: u64,
    expires_at: UnixMillis,
    workload: &str,
) -> Error {
    if purpose == LeasePurpose::Deploy {
        Error::LeaseHeld {
            workload: workload.to_owned(),
            holder,
            purpose: purpose.to_string(),
            epoch,
            expires_at,
        }
    } else {
        Error::DeployFrozen {
            workload: workload.to_owned(),
            holder,
            purpose: purpose.to_string(),
        }
    }
}

fn gate_outcome(
    region: &str,
    deploy: &Deploy,
    r: &Rollout,
    g: &GateRecord,
    already_done: bool,
) -> RegionOutcome {
    let mut out = region_outcome(region, deploy, r, already_done);
    out.decision = Some(g.verdict.clone());
    out.stage = g.stage;
    out.percent = g.percent;
    out.round = g.round + 1;
    out.values = Some(g.values.clone());
    out.reasons = g.reasons.clone();
    out
}

fn outcome_name(o: RunOutcome) -> &'static str {
    match o {
        RunOutcome::Running => "running",
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::Failed => "failed",
        RunOutcome::RolledBack => "rolled_back",
        RunOutcome::Partial => "partial",
        RunOutcome::Superseded => "superseded",
    }
}

fn states(spec: &WorkloadSpec, deploy_id: &str) -> Vec<(String, RolloutState)> {
    decide::rollouts(spec, deploy_id)
        .into_iter()
        .map(|(code, r)| (code.to_owned(), r.state))
        .collect()
}

/// The run record: the plan's waves, and per Region every stage with its timing and
/// gate values, in time order.
#[allow(clippy::too_many_arguments)]
fn run_record(
    deploy: &Deploy,
    spec: &WorkloadSpec,
    outcome: RunOutcome,
    now: UnixMillis,
    plan: &Value,
    failed_region: Option<&str>,
    error: Option<&Value>,
    incomplete: &[request::RollbackItem],
) -> RunRecord {
    let mut timeline = vec![TimelineEntry {
        at: deploy.started_at,
        step: "start".into(),
        duration_ms: None,
        detail: Some(format!("deploy {} of {}", deploy.version, deploy.workload)),
    }];
    let mut regions = serde_json::Map::new();
    for (code, r) in decide::rollouts(spec, &deploy.deploy_id) {
        for g in &r.gates {
            let window_ms = g.window_seconds.saturating_mul(1000);
            timeline.push(TimelineEntry {
                at: UnixMillis(g.at.0.saturating_sub(window_ms)),
                step: format!(
                    "{code} stage {} ({} %) round {}",
                    g.stage, g.percent, g.round
                ),
                duration_ms: Some(window_ms),
                detail: Some(format!(
                    "{}: {} | {}",
                    g.verdict,
                    g.reasons.join("; "),
                    serde_json::to_string(&g.values).unwrap_or_default()
                )),
            });
        }
        if let Some(end) = r.finished_at {
            timeline.push(TimelineEntry {
                at: end,
                step: format!(
                    "{code} {}",
                    match r.state {
                        RolloutState::Promoted => "promoted",
                        RolloutState::RolledBack => "rolled back",
                        RolloutState::Skipped => "skipped",
                        _ => "stopped",
                    }
                ),
                duration_ms: r.shift_started_at.map(|s| end.0.saturating_sub(s.0)),
                detail: r.reason.clone(),
            });
        }
        regions.insert(
            code.to_owned(),
            serde_json::to_value(r).unwrap_or(Value::Null),
        );
    }
    timeline.sort_by_key(|t| t.at);
    timeline.push(TimelineEntry {
        at: now,
        step: "finish".into(),
        duration_ms: Some(now.0.saturating_sub(deploy.started_at.0)),
        detail: Some(outcome_name(outcome).into()),
    });
    RunRecord {
        id: deploy.deploy_id.clone(),
        kind: RunKind::Deploy,
        started_at: deploy.started_at,
        finished_at: Some(now),
        outcome,
        timeline,
        measured_rto_ms: None,
        measured_rpo_ms: None,
        rpo_simulated: false,
        details: json!({
            "version": deploy.version,
            "waves": plan.get("plan").and_then(|p| p.get("waves")).cloned().unwrap_or(Value::Null),
            "skipped": plan.get("plan").and_then(|p| p.get("skipped")).cloned().unwrap_or(Value::Null),
            "preexisting_alarms": plan.get("plan").and_then(|p| p.get("preexisting_alarms")).cloned().unwrap_or(Value::Null),
            "rollback_scope": deploy.rollback_scope,
            "gates": deploy.gates,
            "failed_region": failed_region,
            "error": error,
            "rollback_incomplete": incomplete,
            "regions": regions,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every sample in `events/deploy-wave/` parses into a request, and every step has one.
    #[test]
    fn every_sample_event_parses() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/deploy-wave");
        let mut steps = std::collections::HashSet::new();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let value: Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            // The machine input is a bare deploy request; the rest are steps.
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("execution-")
            {
                let req: DeployRequest = lifeboat::input::parse(value)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                decide::check_request(&req).unwrap();
                continue;
            }
            let req: Request =
                lifeboat::input::parse(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            steps.insert(req.name());
        }
        for step in [
            "plan",
            "start",
            "advance",
            "gate",
            "soak",
            "promote_region",
            "rollback_region",
            "finish",
        ] {
            assert!(steps.contains(step), "no sample for step {step}");
        }
    }

    #[test]
    fn a_malformed_request_is_invalid_input_naming_the_field() {
        let cases = [
            (json!({"step": "jump"}), "unknown variant `jump`"),
            (
                json!({"step": "plan", "request": {"workload": "w", "version": "v"}}),
                "missing field `bake_seconds`",
            ),
            (
                json!({"step": "plan", "request": {"workload": "w", "version": "v", "bake_seconds": 1, "colour": 1}}),
                "unknown field `colour`",
            ),
            (
                json!({"step": "plan", "request": {"workload": "w", "version": "v", "bake_seconds": 1, "canary_steps": [10, "x"]}}),
                "invalid type: string \"x\", expected u32",
            ),
        ];
        for (input, want) in cases {
            let err = lifeboat::input::parse::<Request>(input).unwrap_err();
            assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
            assert!(err.to_string().contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn a_lease_for_a_failover_freezes_deploys_and_another_deploy_is_lease_held() {
        for (purpose, want) in [
            (LeasePurpose::Failover, lifeboat::ErrorName::DeployFrozen),
            (LeasePurpose::Failback, lifeboat::ErrorName::DeployFrozen),
            (LeasePurpose::Drill, lifeboat::ErrorName::DeployFrozen),
            (LeasePurpose::Deploy, lifeboat::ErrorName::LeaseHeld),
        ] {
            assert_eq!(
                held("x".into(), purpose, 1, UnixMillis(0), "w").name(),
                want
            );
        }
    }
}
