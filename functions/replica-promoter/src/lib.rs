//! # replica-promoter
//!
//! The Lifeboat Lambda that moves the data tier's writer to the surviving Region, one
//! state-machine step at a time (issue #4):
//!
//! - RDS: `rds_promote` (PromoteReadReplica), `rds_status` (poll until a standalone
//!   `available` writer), `rds_reprotect` (new cross-Region read replicas of the new
//!   primary, recorded in the spec under the epoch fence);
//! - Aurora global database: `aurora_switchover` (planned, RPO 0), `aurora_failover`
//!   (unplanned, AllowDataLoss, stated in the output and the audit event),
//!   `aurora_status` (poll until the target cluster is the writer);
//! - S3: `s3_flip` makes the new primary's buckets replicate to the other Regions —
//!   unplanned, from the target Region alone (its own suspended rules enabled again, or
//!   rules built from the spec); planned, the old primary's rules mirrored — and
//!   `s3_suspend_old`, after traffic has moved, suspends the old rules in the old
//!   Region, best effort (and puts the old rules' exact mirror on the new bucket when
//!   `s3_flip` had to do without them);
//! - DynamoDB global tables: `dynamodb_verify` checks the target Region's replica is
//!   ACTIVE (nothing to promote);
//! - compute (issue #15, [`compute`]): `compute_scale` scales the target Region's Auto
//!   Scaling groups and ECS services to what the Region being left ran (or a fixed size)
//!   in parallel with the data tier, `compute_status` waits, bounded, until it is in
//!   service before traffic moves;
//! - the drill's RPO canary ([`canary`]): `canary_write` in the primary's first bucket,
//!   `canary_read` in the target's (no lease, no epoch).
//!
//! Every step checks the caller's epoch against the lease (`StaleEpoch`), makes the new
//! writer only through APIs in the target (surviving) Region — the old Region is touched
//! only by `s3_suspend_old` (after traffic has moved), by a planned `s3_flip` (both
//! Regions up) and by `rds_reprotect` (a failback's), each through clients with short
//! deadlines where a hang is likely, and a failure there is reported, not fatal — and is
//! idempotent: doing it again returns `already_done: true`.
//! Decisions are pure functions in [`decide`]; this module does the I/O.

pub mod canary;
pub mod compute;
pub mod decide;
mod dynamodb;
mod rds;
pub mod request;
mod s3;
mod scale;

use aws_types::SdkConfig;
use lambda_runtime::LambdaEvent;
use lifeboat::aws::RegionalClients;
use lifeboat::model::RegionSpec;
use lifeboat::store::AuditEvent;
use lifeboat::{Error, Store, UnixMillis, WorkloadSpec};
use serde_json::Value;

pub use request::{Outcome, Request, ResourceOutcome, Step};

/// The function's name: its binary, its directory and its name in the state machines.
pub const NAME: &str = "replica-promoter";

/// The environment variable naming the Lifeboat table.
pub const TABLE_ENV: &str = "LIFEBOAT_TABLE";

/// The AWS clients the steps use, one per Region on demand, all from one configuration.
pub struct Clients {
    /// RDS (instances, Aurora global clusters).
    pub rds: RegionalClients<aws_sdk_rds::Client>,
    /// S3 (replication configuration) in the target Region, and the drill's canary.
    pub s3: RegionalClients<aws_sdk_s3::Client>,
    /// S3 in the old primary's Region, which may hang: built from
    /// [`lifeboat::aws::best_effort`] (2 s per attempt, 4 s per call, one retry).
    pub s3_best_effort: RegionalClients<aws_sdk_s3::Client>,
    /// DynamoDB (the workload's global tables, not Lifeboat's own table).
    pub dynamodb: RegionalClients<aws_sdk_dynamodb::Client>,
    /// EC2 Auto Scaling in the target Region (compute scaling).
    pub autoscaling: RegionalClients<aws_sdk_autoscaling::Client>,
    /// EC2 Auto Scaling in the Region a planned move leaves (short deadlines).
    pub autoscaling_best_effort: RegionalClients<aws_sdk_autoscaling::Client>,
    /// ECS in the target Region (compute scaling).
    pub ecs: RegionalClients<aws_sdk_ecs::Client>,
    /// ECS in the Region a planned move leaves (short deadlines).
    pub ecs_best_effort: RegionalClients<aws_sdk_ecs::Client>,
}

impl Clients {
    /// Clients built from the one shared configuration.
    pub fn new(config: &SdkConfig) -> Clients {
        Clients {
            rds: RegionalClients::new(config, aws_sdk_rds::Client::new),
            s3: RegionalClients::new(config, s3_client),
            s3_best_effort: RegionalClients::new(&lifeboat::aws::best_effort(config), s3_client),
            dynamodb: RegionalClients::new(config, aws_sdk_dynamodb::Client::new),
            autoscaling: RegionalClients::new(config, aws_sdk_autoscaling::Client::new),
            autoscaling_best_effort: RegionalClients::new(
                &lifeboat::aws::best_effort(config),
                aws_sdk_autoscaling::Client::new,
            ),
            ecs: RegionalClients::new(config, aws_sdk_ecs::Client::new),
            ecs_best_effort: RegionalClients::new(
                &lifeboat::aws::best_effort(config),
                aws_sdk_ecs::Client::new,
            ),
        }
    }
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("rds", &self.rds)
            .field("s3", &self.s3)
            .field("s3_best_effort", &self.s3_best_effort)
            .field("dynamodb", &self.dynamodb)
            .field("autoscaling", &self.autoscaling)
            .field("ecs", &self.ecs)
            .finish()
    }
}

/// An S3 client for `config`, with path-style addressing exactly when an endpoint URL
/// is configured (`AWS_ENDPOINT_URL` or `AWS_ENDPOINT_URL_S3`, as the SDK resolves
/// them). Virtual-hosted addressing needs a wildcard DNS name per bucket
/// (`<bucket>.s3.<region>.amazonaws.com`), which only AWS's own endpoints have; a
/// custom endpoint (an emulator on loopback, a proxy, S3-compatible storage) answers
/// at one host, so requests name the bucket in the path. No "is local" switch: the same
/// rule holds for any endpoint override, and AWS's endpoints keep the default.
pub fn s3_client(config: &SdkConfig) -> aws_sdk_s3::Client {
    let s3_config = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(has_custom_s3_endpoint(config))
        .build();
    aws_sdk_s3::Client::from_conf(s3_config)
}

/// Whether `config` points S3 at an endpoint of its own: the shared `endpoint_url`
/// (`AWS_ENDPOINT_URL`) or the S3 one (`AWS_ENDPOINT_URL_S3` / profile
/// `endpoint_url`), resolved the way the SDK resolves them.
pub fn has_custom_s3_endpoint(config: &SdkConfig) -> bool {
    config.endpoint_url().is_some()
        || aws_types::service_config::ServiceConfigKey::builder()
            .service_id("S3")
            .env("AWS_ENDPOINT_URL")
            .profile("endpoint_url")
            .build()
            .ok()
            .and_then(|key| config.service_config().and_then(|sc| sc.load_config(key)))
            .is_some()
}

/// Builds the store over the Lifeboat table's replica in a Region (see
/// [`Promoter::with_regional_stores`]).
pub type RegionalStores<S> = Box<dyn Fn(&str) -> S + Send + Sync>;

/// The handler: a store for the lease, spec and audit log, and the AWS clients.
pub struct Promoter<S> {
    /// The table replica of the function's own Region.
    store: S,
    /// Stores over other Regions' table replicas, for a request's `arbiter_region`.
    regional: Option<RegionalStores<S>>,
    clients: Clients,
}

impl<S> std::fmt::Debug for Promoter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Promoter")
            .field("clients", &self.clients)
            .field("regional_stores", &self.regional.is_some())
            .finish_non_exhaustive()
    }
}

/// Everything a step needs, read once per invocation.
pub(crate) struct Ctx<'a, S> {
    pub req: &'a Request,
    /// The table replica holding the lease: the arbiter Region's when the request names
    /// one, else the function's own. The spec, the fenced writes and the audit events
    /// go there too.
    pub store: &'a S,
    pub spec: &'a WorkloadSpec,
    pub target: &'a RegionSpec,
}

impl<S: Store> Promoter<S> {
    /// A promoter over `store` (the function's own Region's table replica) and
    /// `clients`. A request naming an `arbiter_region` needs
    /// [`Promoter::with_regional_stores`] too.
    pub fn new(store: S, clients: Clients) -> Self {
        Promoter {
            store,
            regional: None,
            clients,
        }
    }

    /// How to reach another Region's table replica: `make(region)` is the store over
    /// it (e.g. a [`lifeboat::DynamoStore`] over a client of
    /// [`lifeboat::aws::RegionalClients`]). Used for a request's `arbiter_region`.
    pub fn with_regional_stores(
        mut self,
        make: impl Fn(&str) -> S + Send + Sync + 'static,
    ) -> Self {
        self.regional = Some(Box::new(make));
        self
    }

    /// The store over `region`'s table replica.
    fn regional_store(&self, region: &str) -> Result<S, Error> {
        match &self.regional {
            Some(make) => Ok(make(region)),
            None => Err(Error::InvalidInput(format!(
                "arbiter_region: `{region}` cannot be reached: this handler has only its own Region's table"
            ))),
        }
    }

    /// The Lambda entry point: parses the event (`InvalidInput` naming the field), runs
    /// the step and returns its [`Outcome`] as JSON.
    pub async fn handle(&self, event: LambdaEvent<Value>) -> Result<Value, Error> {
        if canary::is_canary(&event.payload) {
            let req: canary::CanaryRequest = lifeboat::input::parse(event.payload)?;
            let outcome = self.canary(&req).await?;
            return serde_json::to_value(&outcome)
                .map_err(|e| Error::InvalidInput(format!("cannot encode the output: {e}")));
        }
        let req: Request = lifeboat::input::parse(event.payload)?;
        let outcome = self.run(&req).await?;
        serde_json::to_value(&outcome)
            .map_err(|e| Error::InvalidInput(format!("cannot encode the outcome: {e}")))
    }

    /// Runs one step. Nothing is changed unless the spec, the target Region and the
    /// epoch all check out.
    pub async fn run(&self, req: &Request) -> Result<Outcome, Error> {
        if req.workload.is_empty() {
            return Err(Error::InvalidInput("workload: must not be empty".into()));
        }
        decide::check_mode(req)?;
        // The lease, the spec the fenced writes build on and the audit log all live in
        // one replica: the arbiter Region's when named (README, "Consistency across
        // Regions"), else this Region's.
        let arbiter_store;
        let store = match decide::arbiter_region(req)? {
            Some(region) => {
                arbiter_store = self.regional_store(region)?;
                &arbiter_store
            }
            None => &self.store,
        };
        let spec = store.get_spec(&req.workload).await?;
        let target = decide::target(&spec, req)?;
        let lease = store.get_lease(&req.workload).await?;
        decide::check_epoch(&req.workload, &req.fence(), lease.as_ref())?;
        if !decide::applies(target, req.step) {
            tracing::info!(
                workload = %req.workload,
                step = req.step.as_str(),
                target_region = %req.target_region,
                "Nothing of this kind in the target Region"
            );
            return Ok(outcome(req, true, "nothing_to_do", true, Vec::new()));
        }
        let ctx = Ctx {
            req,
            store,
            spec: &spec,
            target,
        };
        let outcome = match req.step {
            Step::RdsPromote => self.rds_promote(&ctx).await?,
            Step::RdsStatus => self.rds_status(&ctx).await?,
            Step::RdsReprotect => self.rds_reprotect(&ctx).await?,
            Step::AuroraSwitchover => self.aurora_move(&ctx, false).await?,
            Step::AuroraFailover => self.aurora_move(&ctx, true).await?,
            Step::AuroraStatus => self.aurora_status(&ctx).await?,
            Step::AuroraReprotect => self.aurora_reprotect(&ctx).await?,
            Step::S3Flip => self.s3_flip(&ctx).await?,
            Step::DynamodbVerify => self.dynamodb_verify(&ctx).await?,
            Step::S3SuspendOld => self.s3_suspend_old(&ctx).await?,
            Step::ComputeScale => self.compute_scale(&ctx).await?,
            Step::ComputeStatus => self.compute_status(&ctx).await?,
            Step::ComputeStandby => self.compute_standby(&ctx).await?,
        };
        tracing::info!(
            workload = %req.workload,
            step = req.step.as_str(),
            target_region = %req.target_region,
            epoch = req.epoch,
            done = outcome.done,
            status = %outcome.status,
            already_done = outcome.already_done,
            "Step finished"
        );
        Ok(outcome)
    }

    /// Whether the audit log already holds the event `id` (a step's durable marker).
    pub(crate) async fn recorded(&self, ctx: &Ctx<'_, S>, id: &str) -> Result<bool, Error> {
        Ok(ctx
            .store
            .list_events(&ctx.req.workload)
            .await?
            .iter()
            .any(|e| e.id == id))
    }

    /// Appends the audit event `id` unless it is there already.
    pub(crate) async fn record(
        &self,
        ctx: &Ctx<'_, S>,
        id: String,
        action: &str,
        reason: String,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Result<(), Error> {
        if self.recorded(ctx, &id).await? {
            return Ok(());
        }
        let event = AuditEvent {
            at: UnixMillis::now(),
            id,
            actor: NAME.to_owned(),
            action: action.to_owned(),
            reason,
            before,
            after,
        };
        ctx.store.append_event(&ctx.req.workload, &event).await?;
        Ok(())
    }
}

/// The audit-event id that marks a step done for one resource at one epoch.
pub(crate) fn marker(req: &Request, resource: &str) -> String {
    marker_of(req, req.step, resource)
}

/// The audit-event id `step` (of the same move and epoch as `req`) writes for `resource`.
pub(crate) fn marker_of(req: &Request, step: Step, resource: &str) -> String {
    format!(
        "{NAME}:{}:{}:{resource}:e{}",
        step.as_str(),
        req.target_region,
        req.epoch
    )
}

/// The outcome skeleton of a request.
pub(crate) fn outcome(
    req: &Request,
    done: bool,
    status: impl Into<String>,
    already_done: bool,
    resources: Vec<ResourceOutcome>,
) -> Outcome {
    Outcome {
        workload: req.workload.clone(),
        step: req.step,
        target_region: req.target_region.clone(),
        epoch: req.epoch,
        done,
        status: status.into(),
        already_done,
        resources,
        data_loss_allowed: None,
        old_rules_suspended: None,
        spec_version: None,
        took_ms: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fixture in `events/replica-promoter/` parses into [`Request`], and every
    /// step has one.
    #[test]
    fn every_fixture_parses_and_every_step_has_one() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../events/replica-promoter");
        let mut steps = std::collections::HashSet::new();
        for file in std::fs::read_dir(&dir).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let value: Value = serde_json::from_str(&text).unwrap();
            if canary::is_canary(&value) {
                let req: canary::CanaryRequest = lifeboat::input::parse(value)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                assert_eq!(req.workload, "checkout", "{}", path.display());
                continue;
            }
            let req: Request =
                lifeboat::input::parse(value).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert_eq!(req.workload, "checkout", "{}", path.display());
            steps.insert(req.step);
        }
        for step in Step::ALL {
            assert!(steps.contains(&step), "no fixture for {step:?}");
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        let err = lifeboat::input::parse::<Request>(serde_json::json!({
            "workload": "checkout", "step": "rds_explode", "target_region": "eu-west-1", "epoch": 1
        }))
        .unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(err.to_string().contains("step"), "{err}");
        let err = lifeboat::input::parse::<Request>(serde_json::json!({
            "workload": "checkout", "step": "rds_status", "target_region": "eu-west-1", "epoch": -1
        }))
        .unwrap_err();
        assert!(err.to_string().contains("epoch"), "{err}");
    }

    #[test]
    fn arbiter_region_is_optional_and_unknown_fields_are_refused() {
        let base = serde_json::json!({
            "workload": "checkout", "step": "rds_reprotect", "target_region": "us-east-1", "epoch": 4,
            "holder": "exec"
        });
        let req: Request = lifeboat::input::parse(base.clone()).unwrap();
        assert_eq!(req.arbiter_region, None);
        let mut with = base.clone();
        with["arbiter_region"] = "eu-west-1".into();
        let req: Request = lifeboat::input::parse(with).unwrap();
        assert_eq!(req.arbiter_region.as_deref(), Some("eu-west-1"));
        let mut without = base.clone();
        without.as_object_mut().map(|o| o.remove("holder"));
        let err = lifeboat::input::parse::<Request>(without).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(err.to_string().contains("holder"), "{err}");
        let mut typo = base;
        typo["arbiter_regoin"] = "eu-west-1".into();
        let err = lifeboat::input::parse::<Request>(typo).unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(err.to_string().contains("arbiter_regoin"), "{err}");
    }

    /// A configuration whose endpoint nothing listens on: these tests fail before any
    /// call, and would fail loudly if one were made.
    fn nowhere() -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_types::region::Region::new("eu-west-1"))
            .endpoint_url("http://127.0.0.1:1")
            .build()
    }

    fn promoter() -> Promoter<lifeboat::DynamoStore> {
        let config = nowhere();
        Promoter::new(
            lifeboat::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), "lifeboat"),
            Clients::new(&config),
        )
    }

    #[tokio::test]
    async fn a_bad_or_unreachable_arbiter_region_is_refused_before_any_read() {
        let mut req = lifeboat::input::parse::<Request>(serde_json::json!({
            "workload": "checkout", "step": "rds_reprotect", "target_region": "us-east-1",
            "epoch": 4, "holder": "exec", "arbiter_region": "mars-north-1"
        }))
        .unwrap();
        let err = promoter().run(&req).await.unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(
            err.to_string().contains("arbiter_region: `mars-north-1`"),
            "{err}"
        );
        // A real Region, but a handler built without other Regions' stores.
        req.arbiter_region = Some("us-east-1".into());
        let err = promoter().run(&req).await.unwrap_err();
        assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
        assert!(
            err.to_string().contains("arbiter_region: `us-east-1`"),
            "{err}"
        );
    }

    #[test]
    fn s3_uses_path_style_only_with_a_custom_endpoint() {
        let base = || {
            SdkConfig::builder()
                .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
                .region(aws_types::region::Region::new("eu-west-1"))
        };
        assert!(has_custom_s3_endpoint(
            &base().endpoint_url("http://127.0.0.1:5000").build()
        ));
        assert!(!has_custom_s3_endpoint(&base().build()));
    }
}
