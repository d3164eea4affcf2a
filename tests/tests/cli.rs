//! The `lifeboat` CLI (`cli/`) run against moto: `lifeboat_cli::run` with the
//! arguments an operator types and an SDK configuration pointed at the emulator, as
//! `AWS_ENDPOINT_URL` points the binary. The DynamoDB-only commands share one moto; the
//! followed failover runs in the twin's world (`harness::drill::World`) with our
//! binaries under `cargo lambda watch`.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use harness::moto::MotoServer;
use lifeboat::model::Role;
use lifeboat::store::{LeasePurpose, LeaseRequest, Verdict};
use lifeboat::{Store, UnixMillis, WorkloadSpec};
use lifeboat_cli::{Env, Exit, Io};
use serde_json::Value;

/// A Region of the example that is not its primary (us-east-1): the lease Region, where
/// the CLI writes and reads what movers write (moto replicates nothing between Regions).
const REGION: &str = "eu-west-1";

struct Ran {
    exit: Exit,
    out: String,
    err: String,
}

async fn cli(config: &aws_types::SdkConfig, table: &str, args: &[&str], answer: &str) -> Ran {
    let no_dns = Err("no DNS server in this test's world".to_owned());
    cli_in(config, table, no_dns, args, answer).await
}

/// [`cli`] with `resolver` as the DNS resolver the environment names.
async fn cli_in(
    config: &aws_types::SdkConfig,
    table: &str,
    resolver: Result<std::net::SocketAddr, String>,
    args: &[&str],
    answer: &str,
) -> Ran {
    let env = Env {
        config: config.clone(),
        table: table.to_owned(),
        user: Some("alice@example.com".into()),
        resolver,
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let mut input = answer.as_bytes();
    let argv = std::iter::once("lifeboat").chain(args.iter().copied());
    let exit = lifeboat_cli::run(
        argv,
        &env,
        &mut Io {
            out: &mut out,
            err: &mut err,
            input: &mut input,
        },
    )
    .await;
    Ran {
        exit,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = harness::moto::repo_root()
        .join("target")
        .join("cli-tests")
        .join(std::process::id().to_string());
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

async fn empty_table(moto: &MotoServer, prefix: &str) -> (aws_types::SdkConfig, String) {
    let config = moto.sdk_config(REGION).await;
    let table = harness::table::unique_name(prefix);
    harness::table::create(&config, &table, &[]).await.unwrap();
    (config, table)
}

fn store(config: &aws_types::SdkConfig, table: &str) -> lifeboat::DynamoStore {
    lifeboat::DynamoStore::new(aws_sdk_dynamodb::Client::new(config), table)
}

#[tokio::test]
async fn spec_apply_creates_then_replaces_under_the_version_check_and_audits_each_write() {
    let moto = MotoServer::shared();
    let (config, table) = empty_table(moto, "cli-apply").await;
    let s = store(&config, &table);
    let new = temp_file("new.json", harness::world::EXAMPLE_SPEC);
    let new = new.to_str().unwrap();
    let args = |extra: &[&'static str], file: &str| -> Vec<String> {
        let mut v: Vec<String> = vec!["--region".into(), REGION.into(), "spec".into()];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v.push(file.to_owned());
        v
    };
    let run = |a: Vec<String>, answer: &'static str| {
        let config = config.clone();
        let table = table.clone();
        async move {
            let a: Vec<&str> = a.iter().map(String::as_str).collect();
            cli(&config, &table, &a, answer).await
        }
    };

    // Validate first: valid, exit 0.
    let r = run(args(&["validate"], new), "").await;
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    assert!(
        r.out.contains("valid spec for workload `checkout`"),
        "{}",
        r.out
    );

    // Create (version 0 in the file): the diff is every field, one audit event.
    let r = run(
        args(&["apply", "--reason", "onboarding checkout", "--yes"], new),
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    assert!(r.out.contains("creating workload `checkout`"), "{}", r.out);
    assert!(r.out.contains("+ workload: \"checkout\""), "{}", r.out);
    assert_eq!(s.get_spec("checkout").await.unwrap().version, 1);
    let events = s.list_events("checkout").await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(
        (
            events[0].actor.as_str(),
            events[0].action.as_str(),
            events[0].reason.as_str()
        ),
        ("alice@example.com", "spec_applied", "onboarding checkout")
    );

    // The same file again: it was written against version 0, the table has 1.
    let r = run(args(&["apply", "--reason", "again", "--yes"], new), "").await;
    assert_eq!(r.exit, Exit::Conflict, "{}{}", r.out, r.err);
    assert!(
        r.err.contains("ConcurrentModification") && r.err.contains("expected version 0, found 1"),
        "{}",
        r.err
    );
    assert_eq!(s.get_spec("checkout").await.unwrap().version, 1);
    assert_eq!(s.list_events("checkout").await.unwrap().len(), 1);

    // Show, edit, apply: the diff names the one change; answered `y` on stdin.
    let shown = cli(
        &config,
        &table,
        &["--region", REGION, "spec", "show", "checkout"],
        "",
    )
    .await;
    assert_eq!(shown.exit, Exit::Ok, "{}", shown.err);
    let mut edited: WorkloadSpec = serde_json::from_str(&shown.out).unwrap();
    assert_eq!(edited.version, 1);
    edited.policy.cooldown_seconds = 1800;
    let file = temp_file("edited.json", &serde_json::to_string(&edited).unwrap());
    let file = file.to_str().unwrap();
    let r = run(
        args(&["apply", "--reason", "shorter cooldown"], file),
        "n\n",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    assert!(r.out.contains("not applied"), "{}", r.out);
    assert_eq!(s.get_spec("checkout").await.unwrap().version, 1);
    let r = run(
        args(&["apply", "--reason", "shorter cooldown"], file),
        "y\n",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    let diff: Vec<&str> = r
        .out
        .lines()
        .filter(|l| l.starts_with(['~', '+', '-']))
        .collect();
    assert_eq!(diff.len(), 1, "{}", r.out);
    assert!(diff[0].starts_with("~ policy.cooldown_seconds: ") && diff[0].ends_with("-> 1800"));
    let stored = s.get_spec("checkout").await.unwrap();
    assert_eq!((stored.version, stored.policy.cooldown_seconds), (2, 1800));

    // An invalid file: every problem with its path, exit 2, nothing written.
    let mut bad: Value = serde_json::from_str(&shown.out).unwrap();
    bad["version"] = 2.into();
    bad["regions"][1]["weight"] = 99.into();
    bad["regions"][0]["endpoints"][0]["url"] = "ftp:/nowhere".into();
    let file = temp_file("bad.json", &bad.to_string());
    let file = file.to_str().unwrap();
    let r = run(args(&["validate"], file), "").await;
    assert_eq!(r.exit, Exit::Usage, "{}", r.out);
    assert!(r.out.contains("error: regions: weights"), "{}", r.out);
    assert!(
        r.out.contains("error: regions[0].endpoints[0]: "),
        "{}",
        r.out
    );
    let r = run(args(&["apply", "--reason", "bad", "--yes"], file), "").await;
    assert_eq!(r.exit, Exit::Usage, "{}{}", r.out, r.err);
    assert_eq!(s.get_spec("checkout").await.unwrap(), stored);
    assert_eq!(s.list_events("checkout").await.unwrap().len(), 2);
}

#[tokio::test]
async fn status_and_plan_of_the_example_world() {
    let moto = MotoServer::shared();
    let table = harness::table::unique_name("cli-status");
    let w = harness::world::seed_in(moto, &table, REGION).await.unwrap();
    let now = UnixMillis::now();
    for (region, verdict) in [
        ("us-east-1", Verdict::Unhealthy),
        ("eu-west-1", Verdict::Healthy),
        ("ap-southeast-1", Verdict::Healthy),
    ] {
        let h = harness::world::settled_health(region, verdict, Some(1.0), now);
        w.store.put_health("checkout", &h).await.unwrap();
    }
    let lease = w
        .store
        .acquire_lease(
            &LeaseRequest {
                workload: "checkout".into(),
                holder: "arn:aws:states:eu-west-1:123456789012:execution:lifeboat-deploy-waves-eu-west-1:v2".into(),
                purpose: LeasePurpose::Deploy,
                ttl: std::time::Duration::from_secs(600),
            },
            now,
        )
        .await
        .unwrap();

    let r = cli(
        &w.config,
        &table,
        &["--region", REGION, "status", "checkout"],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}", r.err);
    for line in r.out.lines() {
        assert!(line.chars().count() <= 100, "{line:?}");
    }
    for region in &w.spec.regions {
        let line = r
            .out
            .lines()
            .find(|l| l.starts_with(&region.region))
            .unwrap_or_else(|| panic!("{} missing:\n{}", region.region, r.out));
        let role = serde_json::to_value(region.role).unwrap();
        assert!(line.contains(role.as_str().unwrap()), "{line}");
        assert!(line.contains(&format!(" {} ", region.weight)), "{line}");
    }
    assert!(
        r.out
            .contains(&format!("lease: deploy epoch {}", lease.epoch)),
        "{}",
        r.out
    );
    assert!(r.out.contains("runs: none recorded"), "{}", r.out);

    let r = cli(
        &w.config,
        &table,
        &["--region", REGION, "--json", "status", "checkout"],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}", r.err);
    let s: Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(s["spec_version"], 1);
    assert_eq!(s["lease_region"], REGION);
    assert_eq!(s["lease"]["holder"], lease.holder.as_str());
    let by_region = |code: &str| {
        s["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["region"] == code)
            .unwrap()
            .clone()
    };
    let primary = by_region("us-east-1");
    assert_eq!(primary["role"], "primary");
    assert_eq!(primary["verdict"], "unhealthy");
    assert_eq!(primary["lag_seconds"], 1.0);
    assert!(primary.get("readiness").is_none(), "{primary}");
    let eu = by_region("eu-west-1");
    assert_eq!(eu["verdict"], "healthy");
    assert_eq!(eu["readiness"]["verdict"], "healthy");
    // Every serving Region with its switch on is answered by DNS.
    for r in &w.spec.regions {
        let in_dns = r.weight > 0 && !r.dns.is_empty();
        assert_eq!(by_region(&r.region)["in_dns"], in_dns, "{}", r.region);
    }

    // The failover's plan, from failover-executor's own dry run: nothing changes. The
    // deploy's lease is taken over by a failover, so the plan is not refused.
    let events_before = w.store.list_events("checkout").await.unwrap().len();
    let r = cli(
        &w.config,
        &table,
        &[
            "--region",
            REGION,
            "plan",
            "failover",
            "checkout",
            "--target",
            "eu-west-1",
        ],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    assert!(r.out.contains("STEP"), "{}", r.out);
    // The promotion: a control-plane call in the survivor, as failover-executor plans it.
    let promote = r
        .out
        .lines()
        .find(|l| l.contains("rds.PromoteReadReplica"))
        .unwrap_or_else(|| panic!("{}", r.out));
    assert!(
        promote.starts_with("promote_data")
            && promote.contains(" eu-west-1 ")
            && promote.contains("control"),
        "{promote}"
    );
    let r = cli(
        &w.config,
        &table,
        &["--region", REGION, "--json", "plan", "failover", "checkout"],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    let plan: Value = serde_json::from_str(&r.out).unwrap();
    assert!(plan["steps"].as_array().unwrap().len() > 3, "{plan:#}");
    assert_eq!(w.store.get_spec("checkout").await.unwrap(), w.spec);
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), Some(lease));
    assert_eq!(
        w.store.list_events("checkout").await.unwrap().len(),
        events_before
    );
}

#[tokio::test]
async fn bad_arguments_and_unknown_workloads_are_clear_errors_that_change_nothing() {
    let moto = MotoServer::shared();
    let table = harness::table::unique_name("cli-bad");
    let w = harness::world::seed_in(moto, &table, REGION).await.unwrap();
    let run = |args: &'static [&'static str]| cli(&w.config, &table, args, "");

    let r = run(&["frobnicate"]).await;
    assert_eq!(r.exit, Exit::Usage);
    assert!(r.err.contains("unrecognized subcommand"), "{}", r.err);
    let r = run(&["failover", "start", "checkout"]).await;
    assert_eq!(r.exit, Exit::Usage);
    assert!(r.err.contains("--reason"), "{}", r.err);
    let r = run(&["--region", "mars-north-1", "status"]).await;
    assert_eq!(r.exit, Exit::Usage);
    assert!(r.err.contains("not an AWS Region"), "{}", r.err);
    let r = run(&["--help"]).await;
    assert_eq!(r.exit, Exit::Ok);
    assert!(
        r.out.contains("EXIT STATUS") && r.out.contains("AWS_ENDPOINT_URL"),
        "{}",
        r.out
    );

    let r = run(&["--region", REGION, "status", "no-such-workload"]).await;
    assert_eq!(r.exit, Exit::NotFound, "{}", r.err);
    assert!(r.err.contains("WorkloadNotFound"), "{}", r.err);
    let r = run(&[
        "--region",
        REGION,
        "failover",
        "start",
        "no-such-workload",
        "--reason",
        "x",
    ])
    .await;
    assert_eq!(r.exit, Exit::NotFound, "{}", r.err);
    let r = run(&[
        "--region",
        "us-east-1",
        "failover",
        "start",
        "checkout",
        "--reason",
        "x",
    ])
    .await;
    // The seeded table lives in eu-west-1 only: the spec is not found in us-east-1.
    assert_eq!(r.exit, Exit::NotFound, "{}", r.err);
    let r = run(&[
        "--region",
        REGION,
        "failover",
        "start",
        "checkout",
        "--reason",
        "x",
        "--mode",
        "planned",
        "--accept-data-loss",
    ])
    .await;
    assert_eq!(r.exit, Exit::Usage, "{}", r.err);
    assert!(r.err.contains("accept_data_loss"), "{}", r.err);
    let r = run(&[
        "--region",
        REGION,
        "failover",
        "start",
        "checkout",
        "--reason",
        "x",
        "--target",
        "us-east-1",
    ])
    .await;
    // The target is the primary failed away from: the decision refuses it.
    assert!(
        matches!(r.exit, Exit::Usage | Exit::Refused),
        "{:?} {}",
        r.exit,
        r.err
    );
    let r = run(&["--region", "us-east-1", "plan", "failover", "checkout"]).await;
    // Asked to run in the primary it fails away from (after the spec is read there:
    // moto's us-east-1 table is empty here, so: not found). Explicitly the failed
    // Region is refused by `failover_region` (unit-tested).
    assert!(matches!(r.exit, Exit::NotFound | Exit::Usage), "{}", r.err);

    // Break-glass without --force: refused. With it: a new epoch, released, audited.
    let now = UnixMillis::now();
    let held = w
        .store
        .acquire_lease(
            &LeaseRequest {
                workload: "checkout".into(),
                holder: "arn:stuck-drill".into(),
                purpose: LeasePurpose::Drill,
                ttl: std::time::Duration::from_secs(3600),
            },
            now,
        )
        .await
        .unwrap();
    let r = run(&[
        "--region", REGION, "lease", "release", "checkout", "--reason", "stuck",
    ])
    .await;
    assert_eq!(r.exit, Exit::Usage, "{}", r.err);
    assert_eq!(
        w.store.get_lease("checkout").await.unwrap(),
        Some(held.clone())
    );
    assert!(w.store.list_events("checkout").await.unwrap().is_empty());
    let r = run(&[
        "--region",
        REGION,
        "lease",
        "release",
        "checkout",
        "--force",
        "--reason",
        "drill stuck since the outage",
    ])
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}", r.err);
    assert!(
        r.out.contains(&format!("at epoch {}", held.epoch + 1)),
        "{}",
        r.out
    );
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), None);
    // The old holder is fenced out.
    let stale = w
        .store
        .renew_lease(
            "checkout",
            &held.holder,
            held.epoch,
            std::time::Duration::from_secs(60),
            UnixMillis::now(),
        )
        .await
        .unwrap_err();
    assert_eq!(stale.name(), lifeboat::ErrorName::StaleEpoch);
    let events = w.store.list_events("checkout").await.unwrap();
    assert_eq!(events.len(), 1, "{events:#?}");
    assert_eq!(events[0].action, "lease_released_by_operator");
    assert_eq!(events[0].actor, "alice@example.com");
    assert_eq!(events[0].reason, "drill stuck since the outage");
    assert_eq!(w.store.get_spec("checkout").await.unwrap(), w.spec);
}

#[tokio::test]
async fn a_failover_started_by_the_cli_is_followed_to_its_end() {
    use harness::drill::{DrillOptions, FAILED, SURVIVOR, WORKLOAD, World};
    let w = World::start(&DrillOptions::default()).await.unwrap();
    let now = UnixMillis::now();
    for region in [FAILED, SURVIVOR, "ap-southeast-1"] {
        let h = harness::world::settled_health(region, Verdict::Healthy, Some(1.0), now);
        w.store.put_health(WORKLOAD, &h).await.unwrap();
    }
    let r = cli(
        &w.config,
        &w.table,
        &[
            "--region",
            SURVIVOR,
            "failover",
            "start",
            WORKLOAD,
            "--target",
            SURVIVOR,
            "--accept-data-loss",
            "--reason",
            "us-east-1 is down (INC-1)",
            "--timing",
            "1,10",
            "--request-id",
            "INC-1",
            "--poll-ms",
            "200",
        ],
        "",
    )
    .await;
    println!("{}\n{}", r.out, r.err);
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    assert!(
        r.out.starts_with("started: arn:aws:states:eu-west-1:"),
        "{}",
        r.out
    );
    // Live progress, then the timeline and the outcome.
    assert!(
        r.out.contains("> Decide") && r.out.contains("< Decide"),
        "{}",
        r.out
    );
    let timeline = r.out.split("timeline:").nth(1).unwrap();
    for state in [
        "Decide",
        "Acquire",
        "PromoteData",
        "ShiftTraffic",
        "Finalize",
    ] {
        assert!(
            timeline.lines().any(|l| l.starts_with(state)),
            "{state} missing from:\n{timeline}"
        );
    }
    assert!(r.out.contains("outcome: SUCCEEDED"), "{}", r.out);
    let spec = w.store.get_spec(WORKLOAD).await.unwrap();
    assert_eq!(spec.primary().unwrap().region, SURVIVOR);
    assert_eq!(spec.region(FAILED).unwrap().role, Role::Secondary);

    // Asked again from the survivor, now the primary: a failover would move away from
    // it, so it never runs there; refused, nothing started.
    let again = cli(
        &w.config,
        &w.table,
        &[
            "--region",
            SURVIVOR,
            "--json",
            "failover",
            "start",
            WORKLOAD,
            "--reason",
            "retry",
            "--request-id",
            "INC-1",
            "--no-follow",
        ],
        "",
    )
    .await;
    assert_eq!(again.exit, Exit::Usage, "{}{}", again.out, again.err);
    assert!(
        again.err.contains("never runs in eu-west-1"),
        "{}",
        again.err
    );
    let runs = w.store.list_runs(WORKLOAD).await.unwrap();
    assert_eq!(runs.len(), 1, "{runs:#?}");

    // `runs list` and `runs show` find it, with its timeline.
    let r = cli(
        &w.config,
        &w.table,
        &["--region", SURVIVOR, "runs", "list", WORKLOAD],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}", r.err);
    assert!(
        r.out.contains(&runs[0].id) && r.out.contains("succeeded"),
        "{}",
        r.out
    );
    let r = cli(
        &w.config,
        &w.table,
        &["--region", SURVIVOR, "runs", "show", WORKLOAD, &runs[0].id],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}", r.err);
    assert!(r.out.contains("outcome succeeded"), "{}", r.out);
    let r = cli(
        &w.config,
        &w.table,
        &[
            "--region",
            SURVIVOR,
            "runs",
            "show",
            WORKLOAD,
            "no-such-run",
        ],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::NotFound, "{}", r.err);

    // `report`: the run's HTML report, written locally from its record.
    let out = temp_file("report.html", "");
    let r = cli(
        &w.config,
        &w.table,
        &[
            "--region",
            SURVIVOR,
            "report",
            WORKLOAD,
            &runs[0].id,
            "--out",
            out.to_str().unwrap(),
        ],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}", r.err);
    let html = std::fs::read_to_string(&out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains(&runs[0].id) && html.contains("succeeded") && html.contains("<svg"),
        "{html}"
    );
    let r = cli(
        &w.config,
        &w.table,
        &["--region", SURVIVOR, "report", WORKLOAD, "no-such-run"],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::NotFound, "{}", r.err);

    // `status` asks DNS as a client does (the twin's resolver): the run ended verified,
    // so the answers name the survivor and never the failed Region, as Route 53 should.
    let r = cli_in(
        &w.config,
        &w.table,
        Ok(w.dns),
        &[
            "--region",
            SURVIVOR,
            "--json",
            "status",
            WORKLOAD,
            "--dns-queries",
            "20",
        ],
        "",
    )
    .await;
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    let s: serde_json::Value = serde_json::from_str(&r.out).unwrap();
    assert_eq!(s["dns"]["queries"], 20, "{s:#}");
    assert_eq!(s["dns"]["answered"], 20, "{s:#}");
    let answers = |region: &str| {
        s["regions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["region"] == region)
            .map(|r| (r["dns_answers"].as_u64(), r["in_dns"].as_bool()))
            .unwrap()
    };
    assert_eq!(answers(FAILED), (Some(0), Some(false)), "{s:#}");
    assert!(answers(SURVIVOR).0.unwrap() > 0, "{s:#}");

    // The lease Region is now the old primary (the first Region that is not the
    // primary). With it hanging, status still answers from the survivor, bounded by
    // the best-effort deadlines, and says the lease is unknown rather than free.
    w.twin
        .fault(serde_json::json!({"region": FAILED, "mode": "hang", "targets": ["aws"]}))
        .await
        .unwrap();
    let began = std::time::Instant::now();
    let r = cli(
        &w.config,
        &w.table,
        &["--region", SURVIVOR, "status", WORKLOAD],
        "",
    )
    .await;
    let took = began.elapsed();
    w.twin.clear_faults().await.unwrap();
    println!("{}\n{}\nstatus took {took:?}", r.out, r.err);
    assert_eq!(r.exit, Exit::Ok, "{}{}", r.out, r.err);
    assert!(r.out.contains("lease Region us-east-1"), "{}", r.out);
    assert!(
        r.out.contains("lease: unknown: us-east-1 did not answer"),
        "{}",
        r.out
    );
    let line = r.out.lines().find(|l| l.starts_with(SURVIVOR)).unwrap();
    assert!(line.contains("primary"), "{line}");
}
