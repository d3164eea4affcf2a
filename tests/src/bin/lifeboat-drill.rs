//! The local failover drill (the README's first command).
//!
//! Today it runs what exists: it starts moto on a free loopback port, creates the
//! Lifeboat table in the example's three Regions, stores the example spec, reads it back,
//! takes and releases the drill lease with its fencing epoch, and prints a timeline.
//! The failover chain itself (probe → alarm → failover machine → promote → switch →
//! failback) is not wired into the drill yet and is listed as such; the drill says so and
//! does not pretend.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use harness::moto::MotoServer;
use harness::world;
use lifeboat::store::{LeasePurpose, LeaseRequest};
use lifeboat::{Store, UnixMillis};

struct Timeline {
    start: Instant,
    rows: Vec<(String, Duration, Duration, String)>,
}

impl Timeline {
    fn step<T>(&mut self, name: &str, began: Instant, detail: impl Into<String>, value: T) -> T {
        self.rows.push((
            name.to_owned(),
            began.duration_since(self.start),
            began.elapsed(),
            detail.into(),
        ));
        value
    }

    fn print(&self) {
        println!("\n{:>9}  {:>9}  {:<22} detail", "t+ms", "took ms", "step");
        for (name, at, took, detail) in &self.rows {
            println!(
                "{:>9.1}  {:>9.1}  {:<22} {detail}",
                at.as_secs_f64() * 1e3,
                took.as_secs_f64() * 1e3,
                name
            );
        }
    }
}

/// The chain the drill does not run yet. The functions exist and are tested against
/// moto one by one, and the failover machine runs in moto (its dry run is tested end to
/// end); what is missing is the drill's own world and hops (issue #5).
const NOT_BUILT: &[(&str, &str)] = &[
    (
        "seeding loopback endpoints, RDS replicas, S3 replication and routing switches",
        "issue #5",
    ),
    (
        "breaking the primary and letting health-probe detect it",
        "issue #5",
    ),
    (
        "the harness firing the failover alarm into failover-executor",
        "issue #5",
    ),
    (
        "the failover machine promoting, switching, verifying, finalizing; measured RTO",
        "issue #5",
    ),
    ("the failback and drill machines", "issue #5"),
];

async fn run() -> anyhow::Result<()> {
    let mut t = Timeline {
        start: Instant::now(),
        rows: Vec::new(),
    };

    let began = Instant::now();
    let moto = MotoServer::start()?;
    let endpoint = moto.endpoint();
    t.step("start moto", began, format!("{endpoint} (all Regions)"), ());

    let began = Instant::now();
    let w = world::seed(&moto, "lifeboat").await?;
    let regions: Vec<&str> = w.spec.regions.iter().map(|r| r.region.as_str()).collect();
    t.step(
        "seed table + spec",
        began,
        format!(
            "table `lifeboat` in {}; spec v{}",
            regions.join(", "),
            w.spec.version
        ),
        (),
    );

    let began = Instant::now();
    let spec = w.store.get_spec("checkout").await?;
    let warnings = spec.check()?;
    t.step(
        "read + validate spec",
        began,
        format!("valid; {} warning(s)", warnings.len()),
        (),
    );

    let began = Instant::now();
    let req = LeaseRequest {
        workload: spec.workload.clone(),
        holder: "local-drill".into(),
        purpose: LeasePurpose::Drill,
        ttl: Duration::from_secs(900),
    };
    let lease = w.store.acquire_lease(&req, UnixMillis::now()).await?;
    t.step(
        "acquire drill lease",
        began,
        format!("epoch {} until {}", lease.epoch, lease.expires_at),
        (),
    );

    let began = Instant::now();
    w.store
        .release_lease(
            &spec.workload,
            &lease.holder,
            lease.epoch,
            UnixMillis::now(),
        )
        .await?;
    t.step(
        "release lease",
        began,
        format!("epoch {} kept", lease.epoch),
        (),
    );

    println!("Workload spec as stored (us-east-1):");
    println!("{}", serde_json::to_string_pretty(&spec)?);
    for w in &warnings {
        println!("warning: {}", serde_json::to_string(w)?);
    }
    t.print();

    println!("\nNot run by this drill yet:");
    for (step, issue) in NOT_BUILT {
        println!("  - {step} ({issue})");
    }
    println!("\nNo failover happened and no RTO was measured.");
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("drill failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
