//! The example world: the three-Region `checkout` workload of `events/model/example-spec.json`
//! seeded into the emulator.

use anyhow::Context;
use aws_types::SdkConfig;
use lifeboat::{DynamoStore, Store, WorkloadSpec};

use crate::moto::MotoServer;

/// The example spec as shipped in `events/`.
pub const EXAMPLE_SPEC: &str = include_str!("../../events/model/example-spec.json");

/// The Region the table's home stack lives in.
pub const HOME_REGION: &str = "us-east-1";

/// The example spec, parsed.
pub fn example_spec() -> anyhow::Result<WorkloadSpec> {
    serde_json::from_str(EXAMPLE_SPEC).context("parsing events/model/example-spec.json")
}

/// A seeded world: the table in every Region of the workload, the spec stored.
#[derive(Debug)]
pub struct World {
    /// Configuration for the home Region, pointed at moto.
    pub config: SdkConfig,
    /// The table name.
    pub table: String,
    /// The store over the home Region's table.
    pub store: DynamoStore,
    /// The spec as stored (version 1).
    pub spec: WorkloadSpec,
}

/// Creates the table in the spec's Regions and stores the example spec in the home Region.
pub async fn seed(moto: &MotoServer, table: &str) -> anyhow::Result<World> {
    seed_in(moto, table, HOME_REGION).await
}

/// Like [`seed`], with the spec stored in `region`'s table: moto replicates nothing, so a
/// test whose functions run in a surviving Region seeds that Region's table.
pub async fn seed_in(moto: &MotoServer, table: &str, region: &str) -> anyhow::Result<World> {
    let config = moto.sdk_config(region).await;
    let spec = example_spec()?;
    let replicas: Vec<&str> = spec
        .regions
        .iter()
        .map(|r| r.region.as_str())
        .filter(|r| *r != region)
        .collect();
    crate::table::create(&config, table, &replicas).await?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    let spec = store
        .create_spec(&spec)
        .await
        .context("storing the example spec")?;
    Ok(World {
        config,
        table: table.to_owned(),
        store,
        spec,
    })
}

/// A `HEALTH#` observation of `region` at `at`: `verdict` for the example's `failure_threshold` (3) /
/// `recovery_threshold` (6) rounds in a row, 2 ms probes, replication lag `lag`.
pub fn settled_health(
    region: &str,
    verdict: lifeboat::store::Verdict,
    lag: Option<f64>,
    at: lifeboat::UnixMillis,
) -> lifeboat::store::HealthRecord {
    use lifeboat::store::{HealthRecord, LagGrade, Verdict};
    HealthRecord {
        region: region.into(),
        verdict,
        consecutive_failures: u32::from(verdict == Verdict::Unhealthy) * 3,
        consecutive_successes: u32::from(verdict == Verdict::Healthy) * 6,
        probe_latency_ms: Some(2),
        replication_lag_seconds: lag,
        lag_grade: Some(LagGrade::Ok),
        observed_at: at,
        detail: None,
    }
}
