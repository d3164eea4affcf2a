//! # traffic-shifter
//!
//! The Lifeboat Lambda that moves traffic: Route 53 health checks and weighted records.
//!
//! - `failover` and `enable` use the **data plane only**: each Region's routing switch
//!   is a CloudWatch metric whose alarm a pre-created Route 53 `CLOUDWATCH_METRIC`
//!   health check watches. Flipping it is PutMetricData (and SetAlarmState, so the
//!   alarm moves at once) in the switch's Region — never the failed one, never Route 53.
//! - `shift` is a planned move: one stage of a weighted-record schedule, UPSERTs in one
//!   change batch per hosted zone, then GetChange until `INSYNC` (bounded).
//! - `shift_version` moves one Region's traffic between its blue and green deploy
//!   records (deploy-wave's canary stages), the same UPSERT + `INSYNC` machinery ([`version`]).
//! - `verify` reads records, health checks and switches back and computes what Route 53
//!   answers ([`dns`]); `plan` lists the exact calls a step makes ([`plan`]);
//!   `resolve` asks a DNS resolver what clients get, the check of the failover machine
//!   ([`resolve`]; no AWS call).
//!
//! Every step checks the caller's fencing epoch against the lease first, validates its
//! input before any call, reads before it writes, and is idempotent: run again, it
//! reports `already_done: true` and writes nothing.

use std::collections::{BTreeMap, HashMap};

use aws_sdk_cloudwatch as cw;
use aws_sdk_route53 as r53;
use lambda_runtime::LambdaEvent;
use lifeboat::aws::RegionalClients;
use lifeboat::model::WorkloadSpec;
use lifeboat::store::{Fence, SwitchPosition};
use lifeboat::{Error, Result, Store, UnixMillis};
use serde_json::Value;

pub mod cloud;
pub mod dns;
pub mod plan;
pub mod request;
pub mod resolve;
pub mod version;

pub use cloud::InsyncWait;
pub use request::{Action, Outcome, Request, Step};

use crate::cloud::{HealthCheckView, SwitchState};
use crate::dns::{Check, DnsAnswer, RecordAnswer};
use crate::plan::{SwitchMove, SwitchSkip};
use crate::request::{DEFAULT_SCHEDULE, ShiftOutcome, SwitchOutcome, ZoneChange};

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "traffic-shifter";

/// Builds the store over the Lifeboat table's replica in a Region (see
/// [`Shifter::with_regional_stores`]).
pub type RegionalStores<S> = Box<dyn Fn(&str) -> S + Send + Sync>;

/// The handler with its clients, built once in `main`.
pub struct Shifter<S> {
    /// The table replica of the function's own Region.
    store: S,
    /// Stores over other Regions' table replicas, for a request's `arbiter_region`.
    regional: Option<RegionalStores<S>>,
    cloudwatch: RegionalClients<cw::Client>,
    route53: r53::Client,
    insync: InsyncWait,
    resolver: Option<std::net::SocketAddr>,
}

impl<S> std::fmt::Debug for Shifter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shifter")
            .field("cloudwatch", &self.cloudwatch)
            .field("insync", &self.insync)
            .field("regional_stores", &self.regional.is_some())
            .finish_non_exhaustive()
    }
}

/// Steps that write.
fn writes(step: Step) -> bool {
    matches!(
        step,
        Step::Failover | Step::Enable | Step::Shift | Step::ShiftVersion
    )
}

/// Which optional fields each step (or planned action) takes.
fn allowed(step: Step) -> &'static [&'static str] {
    match step {
        Step::Failover => &["failed_region", "set_alarm_state"],
        Step::Enable => &["set_alarm_state"],
        Step::Shift => &["weights", "from_weights", "schedule", "stage"],
        Step::Verify => &["failed_region"],
        Step::Plan => &["action"],
        Step::ShiftVersion => &["slot", "percent"],
        Step::Resolve => &["failed_region", "queries"],
    }
}

fn action_step(a: Action) -> Step {
    match a {
        Action::Failover => Step::Failover,
        Action::Enable => Step::Enable,
        Action::Shift => Step::Shift,
    }
}

/// Checks the request's shape before anything is read: required fields present, no
/// field a step does not use.
pub fn check_request(req: &Request) -> Result<()> {
    if req.workload.is_empty() {
        return Err(Error::InvalidInput("workload: must not be empty".into()));
    }
    if req.target_region.is_empty() {
        return Err(Error::InvalidInput(
            "target_region: must not be empty".into(),
        ));
    }
    arbiter_region(req)?;
    let present: [(&str, bool); 9] = [
        ("failed_region", req.failed_region.is_some()),
        ("set_alarm_state", req.set_alarm_state.is_some()),
        ("weights", req.weights.is_some()),
        ("from_weights", req.from_weights.is_some()),
        ("schedule", req.schedule.is_some()),
        ("stage", req.stage.is_some()),
        ("action", req.action.is_some()),
        ("slot", req.slot.is_some()),
        ("percent", req.percent.is_some()),
    ];
    let mut ok: Vec<&str> = allowed(req.step).to_vec();
    if req.step == Step::Plan {
        let Some(action) = req.action else {
            return Err(Error::InvalidInput(
                "action: required for a plan (failover, enable or shift)".into(),
            ));
        };
        ok.extend_from_slice(allowed(action_step(action)));
    }
    for (field, is_set) in present {
        if is_set && !ok.contains(&field) {
            return Err(Error::InvalidInput(format!(
                "{field}: not an input of step `{}`",
                req.step.as_str()
            )));
        }
    }
    Ok(())
}

/// The Region whose table replica holds the lease for this request: `arbiter_region`
/// when given (it must be an AWS Region code), else `None` for the function's own.
pub fn arbiter_region(req: &Request) -> Result<Option<&str>> {
    match req.arbiter_region.as_deref() {
        None => Ok(None),
        Some(region) if lifeboat::regions::is_known(region) => Ok(Some(region)),
        Some(region) => Err(Error::InvalidInput(format!(
            "arbiter_region: `{region}` is not an AWS Region code"
        ))),
    }
}

impl<S: Store> Shifter<S> {
    /// A shifter over the store, CloudWatch clients per Region and the Route 53 client.
    pub fn new(
        store: S,
        cloudwatch: RegionalClients<cw::Client>,
        route53: r53::Client,
        insync: InsyncWait,
    ) -> Self {
        Shifter {
            store,
            regional: None,
            cloudwatch,
            route53,
            insync,
            resolver: None,
        }
    }

    /// How to reach another Region's table replica: `make(region)` is the store over
    /// it (e.g. a [`lifeboat::DynamoStore`] over a client of [`RegionalClients`]).
    /// Used for a request's `arbiter_region`.
    pub fn with_regional_stores(
        mut self,
        make: impl Fn(&str) -> S + Send + Sync + 'static,
    ) -> Self {
        self.regional = Some(Box::new(make));
        self
    }

    /// The store over `region`'s table replica.
    fn regional_store(&self, region: &str) -> Result<S> {
        match &self.regional {
            Some(make) => Ok(make(region)),
            None => Err(Error::InvalidInput(format!(
                "arbiter_region: `{region}` cannot be reached: this handler has only its own Region's table"
            ))),
        }
    }

    /// The Lambda handler: parses, runs, answers JSON.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value> {
        let req: Request = lifeboat::input::parse(event.payload)?;
        let out = self.run(&req).await?;
        serde_json::to_value(&out)
            .map_err(|e| Error::InvalidInput(format!("cannot encode the outcome: {e}")))
    }

    /// Runs one step.
    pub async fn run(&self, req: &Request) -> Result<Outcome> {
        check_request(req)?;
        // The lease and the spec are read in one replica: the arbiter Region's when
        // named (README, "Consistency across Regions"), else this Region's.
        let arbiter_store;
        let store = match arbiter_region(req)? {
            Some(region) => {
                arbiter_store = self.regional_store(region)?;
                &arbiter_store
            }
            None => &self.store,
        };
        // Both reads at once: the failover path is latency-bound.
        let (spec, epoch) = tokio::join!(store.get_spec(&req.workload), check_epoch(store, req));
        let spec = spec?;
        epoch?;
        let result = match req.step {
            Step::Failover => self.failover(store, &spec, req).await,
            Step::Enable => self.enable(store, &spec, req).await,
            Step::Shift => self.shift(&spec, req).await,
            Step::Verify => self.verify(&spec, req).await,
            Step::Plan => self.plan(&spec, req),
            Step::ShiftVersion => self.shift_version(&spec, req).await,
            Step::Resolve => self.resolve(&spec, req).await,
        };
        match &result {
            Ok(out) => tracing::info!(
                workload = %req.workload,
                step = req.step.as_str(),
                target_region = %req.target_region,
                epoch = req.epoch,
                status = %out.status,
                already_done = out.already_done,
                calls = out.calls.len(),
                "Step done"
            ),
            Err(error) => tracing::warn!(
                workload = %req.workload,
                step = req.step.as_str(),
                epoch = req.epoch,
                error_type = error.name().as_str(),
                error = %error.chain(),
                "Step failed"
            ),
        }
        result
    }

    fn outcome(&self, req: &Request, status: &str) -> Outcome {
        Outcome {
            workload: req.workload.clone(),
            step: req.step,
            target_region: req.target_region.clone(),
            epoch: req.epoch,
            done: true,
            already_done: !writes(req.step),
            status: status.to_owned(),
            calls: Vec::new(),
            data_plane_only: true,
            switches: Vec::new(),
            shift: None,
            dns: Vec::new(),
            serving_regions: None,
            ok: None,
            resolved: None,
        }
    }

    /// The DNS resolver the `resolve` step asks ([`resolve::resolver`]).
    pub fn with_resolver(mut self, resolver: Option<std::net::SocketAddr>) -> Self {
        self.resolver = resolver;
        self
    }

    async fn resolve(&self, spec: &WorkloadSpec, req: &Request) -> Result<Outcome> {
        let target = &req.target_region;
        for (field, code) in [
            ("target_region", Some(target.as_str())),
            ("failed_region", req.failed_region.as_deref()),
        ] {
            if let Some(c) = code
                && spec.region(c).is_none()
            {
                return Err(Error::InvalidInput(format!(
                    "{field}: `{c}` is not a Region of workload `{}`",
                    spec.workload
                )));
            }
        }
        let queries = req.queries.unwrap_or(resolve::DEFAULT_QUERIES);
        if !(1..=resolve::MAX_QUERIES).contains(&queries) {
            return Err(Error::InvalidInput(format!(
                "queries: {queries} is not between 1 and {}",
                resolve::MAX_QUERIES
            )));
        }
        let server = self.resolver.ok_or_else(|| Error::ResourceNotFound {
            kind: "DNS resolver",
            id: format!(
                "{} or a nameserver in /etc/resolv.conf",
                resolve::ENV_RESOLVER
            ),
            region: "this function's environment".into(),
        })?;
        let name = resolve::record_name(spec)?;
        let regions = resolve::region_addresses(server, &resolve::endpoint_hosts(spec)).await;
        // A query that times out or fails counts as unanswered: the check then says
        // "no answer", and the machine polls again.
        let answers = resolve::ask(server, &name, queries).await;
        let (ok, resolved) = resolve::judge(
            &name,
            server,
            &answers,
            &regions,
            target,
            req.failed_region.as_deref(),
        );
        let mut out = self.outcome(req, if ok { "verified" } else { "unverified" });
        out.done = ok;
        out.ok = Some(ok);
        out.serving_regions = Some(
            spec.regions
                .iter()
                .filter(|r| resolved.by_region.contains_key(&r.region))
                .map(|r| r.region.clone())
                .collect(),
        );
        out.resolved = Some(resolved);
        Ok(out)
    }

    async fn failover(&self, store: &S, spec: &WorkloadSpec, req: &Request) -> Result<Outcome> {
        let failed = plan::failed_region(spec, req.failed_region.as_deref())?;
        let (moves, skipped) = plan::failover_moves(spec, &req.target_region, &failed)?;
        self.set_switches(store, req, moves, skipped, "failed_over")
            .await
    }

    async fn enable(&self, store: &S, spec: &WorkloadSpec, req: &Request) -> Result<Outcome> {
        let moves = plan::enable_moves(spec, &req.target_region)?;
        self.set_switches(store, req, moves, Vec::new(), "enabled")
            .await
    }

    /// Reads every switch first (a missing alarm fails before anything is written),
    /// records each desired position (fenced: health-probe re-asserts it from then on),
    /// then writes only what is not in place: the metric, then the alarm state.
    async fn set_switches(
        &self,
        store: &S,
        req: &Request,
        moves: Vec<SwitchMove>,
        skipped: Vec<SwitchSkip>,
        status: &str,
    ) -> Result<Outcome> {
        let set_alarm = req.set_alarm_state.unwrap_or(true);
        let states = self.read_switches(&moves).await?;
        let now = UnixMillis::now();
        for m in &moves {
            let position = SwitchPosition {
                region: m.controls.clone(),
                on: m.on,
                epoch: req.epoch,
                set_at: now,
                set_by: format!(
                    "traffic-shifter {} (epoch {})",
                    req.step.as_str(),
                    req.epoch
                ),
            };
            store
                .put_switch(&req.workload, &position, fence(req))
                .await?;
        }
        let mut out = self.outcome(req, status);
        for (m, st) in moves.iter().zip(states) {
            let client = self.cloudwatch.get(&m.switch.region);
            let (put_metric, set_state) = plan::switch_writes(
                m,
                &st.alarm_state,
                st.metric_value,
                cloud::is_our_reason(&st.alarm_reason, m),
                set_alarm,
            );
            let mut calls = plan::switch_calls(m, set_alarm).into_iter();
            let mut acted = false;
            if let Some(put) = calls.next()
                && put_metric
            {
                cloud::put_switch_metric(&client, m).await?;
                out.calls.push(put);
                acted = true;
            }
            if let Some(set) = calls.next()
                && set_state
            {
                cloud::set_switch_alarm(&client, m, cloud::our_reason(m, &req.workload, req.epoch))
                    .await?;
                out.calls.push(set);
                acted = true;
            }
            out.switches.push(SwitchOutcome {
                controls: m.controls.clone(),
                region: m.switch.region.clone(),
                alarm_name: m.switch.alarm_name.clone(),
                desired: Some(m.desired().to_owned()),
                action: if acted { "flipped" } else { "already_in_place" }.to_owned(),
                alarm_state_before: Some(st.alarm_state),
                metric_value_before: st.metric_value,
            });
        }
        out.switches.extend(skipped.into_iter().map(not_contacted));
        out.already_done = out.calls.is_empty();
        out.data_plane_only = plan::data_plane_only(&out.calls);
        Ok(out)
    }

    /// Reads the switches concurrently (each in its own Region), in `moves` order.
    async fn read_switches(&self, moves: &[SwitchMove]) -> Result<Vec<SwitchState>> {
        let mut reads = tokio::task::JoinSet::new();
        for (i, m) in moves.iter().enumerate() {
            let client = self.cloudwatch.get(&m.switch.region);
            let switch = m.switch.clone();
            reads.spawn(async move { (i, cloud::read_switch(&client, &switch).await) });
        }
        let mut states: Vec<Option<SwitchState>> = vec![None; moves.len()];
        while let Some(joined) = reads.join_next().await {
            let (i, state) = joined.map_err(|e| {
                Error::VerificationFailed(format!("reading a routing switch stopped: {e}"))
            })?;
            if let Some(slot) = states.get_mut(i) {
                *slot = Some(state?);
            }
        }
        states
            .into_iter()
            .map(|s| {
                s.ok_or_else(|| Error::VerificationFailed("a routing switch was not read".into()))
            })
            .collect()
    }

    async fn shift(&self, spec: &WorkloadSpec, req: &Request) -> Result<Outcome> {
        let (schedule, stage, zones) = decide_stage(spec, req)?;

        // Read every record first: a missing zone or record, or one that is not
        // weighted, fails here with nothing changed.
        let mut batches: Vec<(
            String,
            Vec<plan::RecordWeight>,
            Vec<r53::types::ResourceRecordSet>,
        )> = Vec::new();
        for (zone, recs) in &zones {
            let mut by_name: HashMap<String, Vec<r53::types::ResourceRecordSet>> = HashMap::new();
            let mut changed_recs = Vec::new();
            let mut sets = Vec::new();
            for rec in recs {
                if !by_name.contains_key(&rec.record_name) {
                    let read = cloud::read_records(&self.route53, zone, &rec.record_name).await?;
                    by_name.insert(rec.record_name.clone(), read);
                }
                let read = by_name.get(&rec.record_name).map_or(&[][..], Vec::as_slice);
                let differs = reweigh(read, rec, zone, &mut sets)?;
                if differs {
                    changed_recs.push(rec.clone());
                }
            }
            if !sets.is_empty() {
                batches.push((zone.clone(), changed_recs, sets));
            }
        }

        let mut out = self.outcome(req, "shifted");
        let mut changes = Vec::new();
        for (zone, recs, sets) in batches {
            let count = sets.len();
            let comment = format!(
                "Lifeboat shift of {} to {} stage {} ({} %), epoch {}",
                req.workload, req.target_region, stage.stage, stage.percent, req.epoch
            );
            let change_id = cloud::upsert(&self.route53, &zone, sets, comment).await?;
            out.calls.push(plan::change_call(&zone, &recs));
            let polls = cloud::wait_insync(&self.route53, &change_id, self.insync).await?;
            out.calls
                .push(plan::get_change_call(&zone, Some(&change_id)));
            changes.push(ZoneChange {
                hosted_zone_id: zone,
                change_id,
                status: "INSYNC".into(),
                polls,
                records: count,
            });
        }
        out.already_done = out.calls.is_empty();
        out.data_plane_only = plan::data_plane_only(&out.calls);
        out.done = stage.next_stage.is_none();
        out.shift = Some(ShiftOutcome {
            stage: stage.stage,
            schedule,
            percent: stage.percent,
            next_stage: stage.next_stage,
            weights: stage.weights.into_iter().collect::<BTreeMap<_, _>>(),
            changes,
        });
        Ok(out)
    }

    async fn verify(&self, spec: &WorkloadSpec, req: &Request) -> Result<Outcome> {
        let target = &req.target_region;
        if spec.region(target).is_none() {
            return Err(Error::InvalidInput(format!(
                "target_region: `{target}` is not a Region of workload `{}`",
                spec.workload
            )));
        }
        let failed = req.failed_region.as_deref();
        if let Some(f) = failed
            && spec.region(f).is_none()
        {
            return Err(Error::InvalidInput(format!(
                "failed_region: `{f}` is not a Region of workload `{}`",
                spec.workload
            )));
        }
        let mut out = self.outcome(req, "verified");

        // Switches: every Region's, read where it lives unless that is the failed Region.
        let mut alarm_states: HashMap<(String, String), Option<String>> = HashMap::new();
        for r in &spec.regions {
            let Some(s) = &r.routing_switch else { continue };
            if Some(s.region.as_str()) == failed {
                alarm_states.insert((s.region.clone(), s.alarm_name.clone()), None);
                out.switches.push(SwitchOutcome {
                    controls: r.region.clone(),
                    region: s.region.clone(),
                    alarm_name: s.alarm_name.clone(),
                    desired: None,
                    action: "not_contacted".into(),
                    alarm_state_before: None,
                    metric_value_before: None,
                });
                continue;
            }
            let st = cloud::read_switch(&self.cloudwatch.get(&s.region), s).await?;
            alarm_states.insert(
                (s.region.clone(), s.alarm_name.clone()),
                Some(st.alarm_state.clone()),
            );
            out.switches.push(SwitchOutcome {
                controls: r.region.clone(),
                region: s.region.clone(),
                alarm_name: s.alarm_name.clone(),
                desired: None,
                action: "read".into(),
                alarm_state_before: Some(st.alarm_state),
                metric_value_before: st.metric_value,
            });
        }

        // Record names the spec routes through, in first-seen order.
        let mut names: Vec<(String, String)> = Vec::new();
        for r in &spec.regions {
            for d in &r.dns {
                let key = (d.hosted_zone_id.clone(), d.record_name.clone());
                if !names
                    .iter()
                    .any(|k| k.0 == key.0 && cloud::same_name(&k.1, &key.1))
                {
                    names.push(key);
                }
            }
        }
        let mut checks: HashMap<String, HealthCheckView> = HashMap::new();
        for (zone, name) in &names {
            let sets = cloud::read_records(&self.route53, zone, name).await?;
            if sets.is_empty() {
                return Err(Error::ResourceNotFound {
                    kind: "Route 53 record",
                    id: format!("{name} in zone {zone}"),
                    region: format!("Route 53 ({})", plan::ROUTE53_REGION),
                });
            }
            let mut types: Vec<String> = Vec::new();
            for s in &sets {
                let t = s.r#type().as_str().to_owned();
                if !types.contains(&t) {
                    types.push(t);
                }
            }
            for t in types {
                let mut records = Vec::new();
                for s in sets.iter().filter(|s| s.r#type().as_str() == t) {
                    let region = owner(spec, zone, name, s.set_identifier());
                    let check = self
                        .check_of(
                            spec,
                            s,
                            region.as_deref(),
                            failed,
                            &alarm_states,
                            &mut checks,
                        )
                        .await?;
                    let (healthy, why) = dns::evaluate(&check);
                    records.push(RecordAnswer {
                        set_identifier: s.set_identifier().map(str::to_owned),
                        region,
                        weight: s.weight(),
                        failover: s.failover().map(|f| f.as_str().to_owned()),
                        health_check_id: s.health_check_id().map(str::to_owned),
                        healthy,
                        health: why,
                        share_bp: 0,
                    });
                }
                out.dns.push(dns::answer(zone, name, &t, records));
            }
        }

        let serving: Vec<String> = spec
            .regions
            .iter()
            .map(|r| r.region.clone())
            .filter(|code| serves(&out.dns, code))
            .collect();
        let ok = serving.contains(target) && failed.is_none_or(|f| !serving.iter().any(|s| s == f));
        out.ok = Some(ok);
        out.done = ok;
        out.status = if ok { "verified" } else { "unverified" }.to_owned();
        tracing::info!(
            workload = %req.workload,
            target_region = %target,
            failed_region = failed.unwrap_or(""),
            ok,
            serving = %serving.join(","),
            answer = %serde_json::to_string(&out.dns).unwrap_or_default(),
            "DNS answer computed"
        );
        out.serving_regions = Some(serving);
        Ok(out)
    }

    /// What decides a record's health.
    async fn check_of(
        &self,
        spec: &WorkloadSpec,
        set: &r53::types::ResourceRecordSet,
        region: Option<&str>,
        failed: Option<&str>,
        alarm_states: &HashMap<(String, String), Option<String>>,
        checks: &mut HashMap<String, HealthCheckView>,
    ) -> Result<Check> {
        let Some(id) = set.health_check_id() else {
            return Ok(Check::None);
        };
        let view = match checks.get(id) {
            Some(v) => v.clone(),
            None => {
                let v = cloud::read_health_check(&self.route53, id).await?;
                checks.insert(id.to_owned(), v.clone());
                v
            }
        };
        if view.kind != "CLOUDWATCH_METRIC" {
            let (successes, total) = cloud::read_health_status(&self.route53, id).await?;
            return Ok(Check::Observed {
                successes,
                total,
                inverted: view.inverted,
                disabled: view.disabled,
            });
        }
        // The alarm the check names; when the check does not say (moto keeps no
        // AlarmIdentifier), the routing switch of the Region the record routes to.
        let alarm = view.alarm.clone().or_else(|| {
            region
                .and_then(|r| spec.region(r))
                .and_then(|r| r.routing_switch.as_ref())
                .map(|s| (s.region.clone(), s.alarm_name.clone()))
        });
        let state = match alarm {
            None => None,
            Some((alarm_region, _)) if Some(alarm_region.as_str()) == failed => None,
            Some(key) => match alarm_states.get(&key) {
                Some(known) => known.clone(),
                None => Some(
                    cloud::read_alarm_state(&self.cloudwatch.get(&key.0), &key.0, &key.1).await?,
                ),
            },
        };
        Ok(Check::Alarm {
            state,
            insufficient_data: view.insufficient_data,
            inverted: view.inverted,
            disabled: view.disabled,
        })
    }

    fn plan(&self, spec: &WorkloadSpec, req: &Request) -> Result<Outcome> {
        let action = req.action.ok_or_else(|| {
            Error::InvalidInput("action: required for a plan (failover, enable or shift)".into())
        })?;
        let mut out = self.outcome(req, "planned");
        let set_alarm = req.set_alarm_state.unwrap_or(true);
        match action {
            Action::Failover | Action::Enable => {
                let (moves, skipped) = if action == Action::Failover {
                    let failed = plan::failed_region(spec, req.failed_region.as_deref())?;
                    plan::failover_moves(spec, &req.target_region, &failed)?
                } else {
                    (plan::enable_moves(spec, &req.target_region)?, Vec::new())
                };
                for m in &moves {
                    out.calls.extend(plan::switch_calls(m, set_alarm));
                    out.switches.push(SwitchOutcome {
                        controls: m.controls.clone(),
                        region: m.switch.region.clone(),
                        alarm_name: m.switch.alarm_name.clone(),
                        desired: Some(m.desired().to_owned()),
                        action: "planned".into(),
                        alarm_state_before: None,
                        metric_value_before: None,
                    });
                }
                out.switches.extend(skipped.into_iter().map(not_contacted));
            }
            Action::Shift => {
                let (schedule, stage, zones) = decide_stage(spec, req)?;
                out.calls = plan::shift_calls(&zones);
                out.shift = Some(ShiftOutcome {
                    stage: stage.stage,
                    schedule,
                    percent: stage.percent,
                    next_stage: stage.next_stage,
                    weights: stage.weights.into_iter().collect(),
                    changes: Vec::new(),
                });
            }
        }
        out.data_plane_only = plan::data_plane_only(&out.calls);
        Ok(out)
    }
}

/// The fence a step presents (an empty holder is refused by the fence check).
fn fence(req: &Request) -> Fence {
    Fence {
        epoch: req.epoch,
        holder: req.holder.clone(),
    }
}

/// The lease (in `store`'s replica) must be held at exactly the caller's epoch, by the
/// caller.
async fn check_epoch<S: Store>(store: &S, req: &Request) -> Result<()> {
    let fence = fence(req);
    let lease = store.get_lease(&req.workload).await?;
    lifeboat::store::check_fence(&req.workload, &fence, lease.as_ref())
}

/// The schedule, the stage and its records by zone, decided from the request.
fn decide_stage(spec: &WorkloadSpec, req: &Request) -> Result<(Vec<u32>, plan::Stage, Zones)> {
    let schedule = req
        .schedule
        .clone()
        .unwrap_or_else(|| DEFAULT_SCHEDULE.to_vec());
    let stage = plan::shift_stage(
        spec,
        &req.target_region,
        req.weights.as_ref(),
        req.from_weights.as_ref(),
        &schedule,
        req.stage.unwrap_or(0),
    )?;
    let zones = plan::stage_records(spec, &stage)?;
    Ok((schedule, stage, zones))
}

/// Records of a stage by hosted zone.
type Zones = Vec<(String, Vec<plan::RecordWeight>)>;

/// A switch left alone because it lives in the failed Region.
fn not_contacted(s: SwitchSkip) -> SwitchOutcome {
    SwitchOutcome {
        controls: s.controls,
        region: s.switch.region,
        alarm_name: s.switch.alarm_name,
        desired: Some("on".into()),
        action: "not_contacted".into(),
        alarm_state_before: None,
        metric_value_before: None,
    }
}

/// The Region whose spec DNS entry is this record.
fn owner(spec: &WorkloadSpec, zone: &str, name: &str, set_id: Option<&str>) -> Option<String> {
    spec.regions
        .iter()
        .find(|r| {
            r.dns.iter().any(|d| {
                d.hosted_zone_id == zone
                    && cloud::same_name(&d.record_name, name)
                    && d.set_identifier.as_deref() == set_id
            })
        })
        .map(|r| r.region.clone())
}

/// Whether any answer sends traffic to the Region.
fn serves(answers: &[DnsAnswer], region: &str) -> bool {
    answers.iter().any(|a| {
        a.records
            .iter()
            .any(|r| r.region.as_deref() == Some(region) && r.share_bp > 0)
    })
}

/// Queues an UPSERT into `out` for each of `read` (the record sets of `rec`'s name) that
/// is `rec`'s set identifier and does not have `rec`'s weight yet; whether any did.
/// `rec` missing from `read` is `ResourceNotFound`, a record without a weight (not a
/// weighted record) `InvalidInput`: both before anything is changed.
pub(crate) fn reweigh(
    read: &[r53::types::ResourceRecordSet],
    rec: &plan::RecordWeight,
    zone: &str,
    out: &mut Vec<r53::types::ResourceRecordSet>,
) -> Result<bool> {
    let mine: Vec<&r53::types::ResourceRecordSet> = read
        .iter()
        .filter(|s| s.set_identifier() == Some(rec.set_identifier.as_str()))
        .collect();
    if mine.is_empty() {
        return Err(Error::ResourceNotFound {
            kind: "Route 53 record",
            id: format!(
                "{} (set identifier {}) in zone {zone}",
                rec.record_name, rec.set_identifier
            ),
            region: format!("Route 53 ({})", plan::ROUTE53_REGION),
        });
    }
    let mut differs = false;
    for set in mine {
        let Some(current) = set.weight() else {
            return Err(Error::InvalidInput(format!(
                "the record {} (set identifier {}) in zone {zone} is not a weighted record",
                rec.record_name, rec.set_identifier
            )));
        };
        if current != i64::from(rec.weight) {
            differs = true;
            out.push(with_weight(set, i64::from(rec.weight)));
        }
    }
    Ok(differs)
}

/// The record set with a new weight, everything else kept.
pub(crate) fn with_weight(
    set: &r53::types::ResourceRecordSet,
    weight: i64,
) -> r53::types::ResourceRecordSet {
    let mut b = r53::types::ResourceRecordSet::builder()
        .name(set.name())
        .r#type(set.r#type().clone())
        .set_set_identifier(set.set_identifier().map(str::to_owned))
        .weight(weight)
        .set_ttl(set.ttl())
        .set_alias_target(set.alias_target().cloned())
        .set_health_check_id(set.health_check_id().map(str::to_owned));
    if !set.resource_records().is_empty() {
        b = b.set_resource_records(Some(set.resource_records().to_vec()));
    }
    // Name and type are always set above; a build error is impossible but handled.
    b.build().unwrap_or_else(|_| set.clone())
}

/// Env var: the lifeboat table.
pub const ENV_TABLE: &str = "LIFEBOAT_TABLE";
/// Env var: milliseconds between GetChange calls (default 2000).
pub const ENV_INSYNC_INTERVAL_MS: &str = "INSYNC_POLL_INTERVAL_MS";
/// Env var: GetChange calls before `VerificationFailed` (default 30).
pub const ENV_INSYNC_MAX_POLLS: &str = "INSYNC_MAX_POLLS";

/// Reads the wait bound from the environment values (in `main`, once).
pub fn insync_from_env(
    interval_ms: Option<String>,
    max_polls: Option<String>,
) -> Result<InsyncWait> {
    let mut wait = InsyncWait::default();
    if let Some(v) = interval_ms {
        let ms: u64 = v.parse().map_err(|_| {
            Error::InvalidInput(format!(
                "{ENV_INSYNC_INTERVAL_MS}: `{v}` is not a number of milliseconds"
            ))
        })?;
        wait.interval = std::time::Duration::from_millis(ms);
    }
    if let Some(v) = max_polls {
        wait.max_polls = v.parse().ok().filter(|n: &u32| *n >= 1).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{ENV_INSYNC_MAX_POLLS}: `{v}` is not a count of at least 1"
            ))
        })?;
    }
    Ok(wait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<Request> {
        let req: Request = lifeboat::input::parse(v)?;
        check_request(&req)?;
        Ok(req)
    }

    /// Every sample in `events/traffic-shifter/` parses into a request that passes the
    /// shape check, and every step has at least one sample.
    #[test]
    fn every_sample_event_parses() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/traffic-shifter");
        let mut steps = std::collections::HashSet::new();
        let mut planned = std::collections::HashSet::new();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            let req = parse(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            steps.insert(req.step);
            if let Some(a) = req.action {
                planned.insert(a);
            }
        }
        for step in Step::ALL {
            assert!(
                steps.contains(&step),
                "no sample for step {}",
                step.as_str()
            );
        }
        assert!(planned.contains(&Action::Failover) && planned.contains(&Action::Shift));
    }

    #[test]
    fn a_malformed_request_is_invalid_input_naming_the_field() {
        let base = json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": 1, "holder": "exec"});
        assert!(parse(base.clone()).is_ok());
        let cases = [
            (
                json!({"workload": "checkout", "step": "failover", "epoch": 1, "holder": "exec"}),
                "missing field `target_region`",
            ),
            (
                json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": 1}),
                "missing field `holder`",
            ),
            (
                json!({"workload": "checkout", "step": "jump", "target_region": "eu-west-1", "epoch": 1, "holder": "exec"}),
                "step: unknown variant `jump`",
            ),
            (
                json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": -1, "holder": "exec"}),
                "epoch: invalid value",
            ),
            (
                json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": 1, "holder": "exec", "weights": {"eu-west-1": 100}}),
                "weights: not an input of step `failover`",
            ),
            (
                json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": 1, "holder": "exec", "colour": "red"}),
                "unknown field `colour`",
            ),
            (
                json!({"workload": "checkout", "step": "plan", "target_region": "eu-west-1", "epoch": 1, "holder": "exec"}),
                "action: required",
            ),
            (
                json!({"workload": "checkout", "step": "plan", "action": "enable", "target_region": "eu-west-1", "epoch": 1, "holder": "exec", "stage": 1}),
                "stage: not an input of step `plan`",
            ),
            (
                json!({"workload": "", "step": "verify", "target_region": "eu-west-1", "epoch": 1, "holder": "exec"}),
                "workload: must not be empty",
            ),
            (
                json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": 1, "holder": "exec", "arbiter_region": "mars-north-1"}),
                "arbiter_region: `mars-north-1` is not an AWS Region code",
            ),
            (
                json!({"workload": "checkout", "step": "shift", "target_region": "eu-west-1", "epoch": 1, "holder": "exec", "arbiter_region": ""}),
                "arbiter_region: `` is not an AWS Region code",
            ),
            (
                json!({"workload": "checkout", "step": "verify", "target_region": "eu-west-1", "epoch": 1, "holder": "exec", "arbiter_region": 7}),
                "arbiter_region: invalid type",
            ),
        ];
        for (input, want) in cases {
            let err = parse(input).unwrap_err();
            assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
            assert!(err.to_string().contains(want), "{err} (wanted {want})");
        }
    }

    #[test]
    fn the_arbiter_region_is_optional_and_any_step_takes_it() {
        let base = json!({"workload": "checkout", "step": "failover", "target_region": "eu-west-1", "epoch": 1, "holder": "exec"});
        assert_eq!(arbiter_region(&parse(base).unwrap()).unwrap(), None);
        for step in Step::ALL {
            let mut input = json!({"workload": "checkout", "step": step.as_str(), "target_region": "eu-west-1", "epoch": 1, "holder": "exec", "arbiter_region": "us-east-1"});
            if step == Step::Plan {
                input["action"] = json!("failover");
            }
            let req = parse(input).unwrap_or_else(|e| panic!("{}: {e}", step.as_str()));
            assert_eq!(arbiter_region(&req).unwrap(), Some("us-east-1"));
        }
    }

    #[tokio::test]
    async fn an_arbiter_region_the_handler_cannot_reach_is_refused_before_any_read() {
        // Nothing listens at this endpoint: the test fails loudly if a call is made.
        let config = aws_types::SdkConfig::builder()
            .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .build();
        let shifter = Shifter::new(
            lifeboat::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), "lifeboat"),
            RegionalClients::new(&config, cw::Client::new),
            r53::Client::new(&config),
            InsyncWait::default(),
        );
        let req = parse(json!({"workload": "checkout", "step": "verify", "target_region": "eu-west-1", "epoch": 1, "holder": "exec", "arbiter_region": "us-east-1"})).unwrap();
        let err = shifter.run(&req).await.unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(
            err.to_string().contains("arbiter_region: `us-east-1`"),
            "{err}"
        );
    }

    #[test]
    fn the_insync_bound_comes_from_the_environment_values() {
        assert_eq!(insync_from_env(None, None).unwrap(), InsyncWait::default());
        let w = insync_from_env(Some("0".into()), Some("3".into())).unwrap();
        assert_eq!(w.max_polls, 3);
        assert!(w.interval.is_zero());
        assert!(insync_from_env(Some("soon".into()), None).is_err());
        assert!(insync_from_env(None, Some("0".into())).is_err());
    }
}
