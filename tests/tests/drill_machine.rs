//! `statemachines/drill.asl.json` executed by moto's Step Functions: the drill starts the
//! real `failover` and `failback` machines as nested executions
//! (`states:startExecution.sync:2`), their Lambda tasks running our real binaries under
//! `cargo lambda watch`.
//!
//! The world is the example workload moved to one MRSC Region set (us-east-1 primary,
//! us-east-2 and us-west-2 secondaries), with the functions and the table in us-east-2:
//! the lease is then strongly consistent and arbitrated in the executor's own Region for
//! both the failover (us-east-1 → us-west-2) and the failback, so one Region's table
//! holds everything (moto replicates nothing between Regions). No RDS instances (moto's
//! PromoteReadReplica never completes); real S3 buckets with replication configuration,
//! Route 53 routing and loopback endpoints. moto does not replicate S3 either: the
//! simulated drill's harness copies the canary itself and the report says
//! `rpo_simulated: true`; the other drill copies nothing and the canary is reported
//! missing. The workload is a pilot light for its web tier: an Auto Scaling group in the
//! primary running two instances and one in us-west-2 at zero, which the drill's
//! failover scales before traffic moves (the twin's instances take 2 s to launch) and
//! its failback returns to zero once the traffic is home.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/asg.rs"]
mod asg;

use std::time::Duration;

use aws_sdk_s3 as s3;
use aws_sdk_sfn::types::ExecutionStatus;
use harness::data::{create_bucket, s3_client};
use harness::lambda::{LambdaWatch, free_port};
use harness::machines;
use harness::moto::{MotoOptions, MotoServer};
use lifeboat::model::Role;
use lifeboat::store::{RunKind, RunOutcome, Verdict};
use lifeboat::{DynamoStore, Store, UnixMillis, WorkloadSpec};
use serde_json::{Value, json};

/// Where the machines, the functions, the table and the report bucket live.
const HOME: &str = "us-east-2";
const REPORT_BUCKET: &str = "lifeboat-drill-reports";

struct World {
    _moto: MotoServer,
    _watch: LambdaWatch,
    config: aws_types::SdkConfig,
    store: DynamoStore,
    sfn: aws_sdk_sfn::Client,
    machine: String,
    spec: WorkloadSpec,
}

/// The example spec in the US MRSC set: eu-west-1 → us-east-2, ap-southeast-1 →
/// us-west-2 (Regions, switch Regions, set identifiers, names).
fn us_spec(tag: &str) -> WorkloadSpec {
    let text = harness::world::EXAMPLE_SPEC
        .replace("eu-west-1", "us-east-2")
        .replace("ap-southeast-1", "us-west-2")
        .replace("euw1", "use2")
        .replace("apse1", "usw2");
    let mut spec: WorkloadSpec = serde_json::from_str(&text).unwrap();
    for r in &mut spec.regions {
        r.databases.clear();
        r.alarms.clear();
        // Nor its deploy gates' alarms (the failback's soak reads them).
        if let Some(d) = &mut r.deploy {
            d.alarms.clear();
        }
        for b in &mut r.buckets {
            b.name = format!("{}-{tag}", b.name).to_lowercase();
            b.name.truncate(63);
        }
    }
    spec
}

async fn world(tag: &str) -> World {
    let watch_port = free_port().unwrap();
    let moto = MotoServer::start_with(&MotoOptions {
        lambda_endpoint: Some(format!("http://127.0.0.1:{watch_port}")),
        execute_state_machines: true,
        ..MotoOptions::default()
    })
    .unwrap();
    let config = moto.sdk_config(HOME).await;
    let table = harness::table::unique_name("drill");
    harness::table::create(&config, &table, &["us-east-1", "us-west-2"])
        .await
        .unwrap();

    let mut spec = us_spec(tag);
    // Each Region's endpoint on its own loopback address (the twin's workload
    // endpoints), the value of its DNS record: what DNS answers maps to a Region.
    let twin = harness::twin::Twin::new(&moto);
    let mut addresses = std::collections::BTreeMap::new();
    for r in &mut spec.regions {
        let endpoint = twin.workload(&r.region).await.unwrap();
        r.endpoints[0].url.clone_from(&endpoint.url);
        r.endpoints[0].timeout_ms = 500;
        r.endpoints[0].body_contains = Some("ok".into());
        addresses.insert(r.region.clone(), endpoint.address);
    }
    // A pilot light: the primary serves every request, the others none (weight 0,
    // answered by DNS only once the primary's switch is off). Compute: the web tier's
    // Auto Scaling group, two instances in the primary and none in us-west-2, which the
    // failover scales to what the primary ran and the failback returns to standby.
    spec.pattern = lifeboat::model::DrPattern::PilotLight;
    for r in &mut spec.regions {
        r.weight = if r.region == "us-east-1" { 100 } else { 0 };
    }
    let asg = format!("web-{tag}");
    for (region, desired) in [("us-east-1", 2), ("us-west-2", 0)] {
        let r = spec
            .regions
            .iter_mut()
            .find(|r| r.region == region)
            .unwrap();
        r.compute = vec![lifeboat::model::ComputeRef {
            tier: "web".into(),
            resource: lifeboat::model::ComputeResource::AutoScalingGroup { name: asg.clone() },
            full_capacity: Some(2),
        }];
        let autoscaling =
            aws_sdk_autoscaling::Client::new(&lifeboat::aws::for_region(&config, region));
        asg::create(&autoscaling, region, &asg, 0, 2, desired).await;
    }
    // Buckets, the primary's replicating to the others (what s3_flip mirrors).
    for r in &spec.regions {
        create_bucket(&config, &r.region, &r.buckets[0].name)
            .await
            .unwrap();
    }
    let primary = &spec.regions[0];
    let rules: Vec<s3::types::ReplicationRule> = spec.regions[1..]
        .iter()
        .enumerate()
        .map(|(i, r)| {
            s3::types::ReplicationRule::builder()
                .id(format!("to-{}", r.region))
                .priority(i32::try_from(i + 1).unwrap())
                .status(s3::types::ReplicationRuleStatus::Enabled)
                .filter(
                    s3::types::ReplicationRuleFilter::builder()
                        .prefix("")
                        .build(),
                )
                .delete_marker_replication(
                    s3::types::DeleteMarkerReplication::builder()
                        .status(s3::types::DeleteMarkerReplicationStatus::Enabled)
                        .build(),
                )
                .destination(
                    s3::types::Destination::builder()
                        .bucket(format!("arn:aws:s3:::{}", r.buckets[0].name))
                        .build()
                        .unwrap(),
                )
                .build()
                .unwrap()
        })
        .collect();
    s3_client(&config, &primary.region)
        .put_bucket_replication()
        .bucket(&primary.buckets[0].name)
        .replication_configuration(
            s3::types::ReplicationConfiguration::builder()
                .role(primary.buckets[0].replication_role_arn.clone().unwrap())
                .set_rules(Some(rules))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    s3_client(&config, HOME)
        .create_bucket()
        .bucket(REPORT_BUCKET)
        .create_bucket_configuration(
            s3::types::CreateBucketConfiguration::builder()
                .location_constraint(s3::types::BucketLocationConstraint::from(HOME))
                .build(),
        )
        .send()
        .await
        .unwrap();

    let spec = harness::route53::seed_with_addresses(&moto, &spec, &table, &addresses)
        .await
        .unwrap();
    let dns = twin.dns_addr().await.unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &table);
    let spec = store.create_spec(&spec).await.unwrap();
    let now = UnixMillis::now();
    for r in &spec.regions {
        let health = harness::world::settled_health(&r.region, Verdict::Healthy, None, now);
        store.put_health("checkout", &health).await.unwrap();
    }

    let sfn = aws_sdk_sfn::Client::new(&config);
    for nested in ["failover", "failback"] {
        machines::create(&sfn, nested, HOME).await.unwrap();
    }
    let machine = machines::create(&sfn, "drill", HOME).await.unwrap();
    let watch = LambdaWatch::start_stack(
        watch_port,
        &moto,
        HOME,
        &table,
        &[
            ("LIFEBOAT_REPORT_BUCKET", REPORT_BUCKET.into()),
            ("LIFEBOAT_DNS_RESOLVER", dns.to_string()),
        ],
        &[
            "failover-executor",
            "replica-promoter",
            "traffic-shifter",
            "deploy-wave",
            "health-probe",
        ],
    )
    .unwrap();
    World {
        _moto: moto,
        _watch: watch,
        config,
        store,
        sfn,
        machine,
        spec,
    }
}

/// What the local harness does for a simulated drill: moto replicates nothing, so it
/// copies the canary from the primary's bucket to the others' as S3 replication would.
fn copy_canaries(w: &World) -> tokio::task::JoinHandle<()> {
    let config = w.config.clone();
    let buckets: Vec<(String, String)> = w
        .spec
        .regions
        .iter()
        .map(|r| (r.region.clone(), r.buckets[0].name.clone()))
        .collect();
    tokio::spawn(async move {
        let (src_region, src) = buckets[0].clone();
        let source = s3_client(&config, &src_region);
        loop {
            if let Ok(list) = source
                .list_objects_v2()
                .bucket(&src)
                .prefix("lifeboat-canary/")
                .send()
                .await
            {
                for obj in list.contents() {
                    let key = obj.key().unwrap().to_owned();
                    let body = source.get_object().bucket(&src).key(&key).send().await;
                    let Ok(body) = body else { continue };
                    let bytes = body.body.collect().await.unwrap().into_bytes();
                    for (region, dest) in &buckets[1..] {
                        s3_client(&config, region)
                            .put_object()
                            .bucket(dest)
                            .key(&key)
                            .body(bytes.clone().into())
                            .send()
                            .await
                            .unwrap();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
}

async fn run(w: &World, name: &str, input: &Value) -> machines::Finished {
    let exec = w
        .sfn
        .start_execution()
        .state_machine_arn(&w.machine)
        .name(name)
        .input(input.to_string())
        .send()
        .await
        .unwrap();
    machines::wait(&w.sfn, exec.execution_arn(), Duration::from_secs(420))
        .await
        .unwrap()
}

async fn object(w: &World, key: &str) -> String {
    let out = s3_client(&w.config, HOME)
        .get_object()
        .bucket(REPORT_BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{key}: {e:?}"));
    String::from_utf8(out.body.collect().await.unwrap().into_bytes().to_vec()).unwrap()
}

/// Why a drill did not succeed: the error its RUN# record carries.
async fn why(w: &World, id: &str) -> String {
    let runs = w.store.list_runs("checkout").await.unwrap();
    runs.iter()
        .map(|r| {
            format!(
                "{} {:?}: {} (last steps: {:?})",
                r.id,
                r.outcome,
                r.details["error"],
                r.timeline.iter().rev().take(3).collect::<Vec<_>>()
            )
        })
        .chain(std::iter::once(format!("looking for {id}")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `(desired, in service)` of the web tier's Auto Scaling group in `region`.
async fn web_group(w: &World, region: &str) -> (i32, usize) {
    let lifeboat::model::ComputeResource::AutoScalingGroup { name } =
        &w.spec.region(region).unwrap().compute[0].resource
    else {
        panic!("the web tier is an Auto Scaling group");
    };
    let client = aws_sdk_autoscaling::Client::new(&lifeboat::aws::for_region(&w.config, region));
    let (desired, _, in_service) = asg::describe(&client, name).await;
    (desired, in_service)
}

fn roles(spec: &WorkloadSpec) -> Vec<(String, Role, u32)> {
    spec.regions
        .iter()
        .map(|r| (r.region.clone(), r.role, r.weight))
        .collect()
}

fn input(replication: &str) -> Value {
    let mut v: Value =
        serde_json::from_str(include_str!("../../events/drill/local-simulated.json")).unwrap();
    v["target_region"] = json!("us-west-2");
    v["replication"] = json!(replication);
    v["timing"]["canary_max_polls"] = json!(3);
    v
}

#[tokio::test]
async fn a_simulated_drill_fails_over_fails_back_and_reports_rto_and_simulated_rpo() {
    let w = world("sim").await;
    let copier = copy_canaries(&w);
    let end = run(&w, "drill-sim", &input("simulated")).await;
    copier.abort();
    assert_eq!(
        end.status,
        ExecutionStatus::Succeeded,
        "{end:?}\n{}",
        why(&w, "drill-sim").await
    );
    let out: Value = serde_json::from_str(end.output.as_deref().unwrap()).unwrap();
    assert_eq!(out["outcome"], "succeeded", "{out:#}");
    assert_eq!(out["target_region"], "us-west-2");

    // Back where it started: roles and weights, no lease.
    let spec = w.store.get_spec("checkout").await.unwrap();
    assert_eq!(roles(&spec), roles(&w.spec));
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), None);

    // The RUN# record: kind drill, RTO and (simulated) RPO against the objectives.
    let runs = w.store.list_runs("checkout").await.unwrap();
    let drill = runs.iter().find(|r| r.id == "drill-sim").unwrap();
    assert_eq!(
        (drill.kind, drill.outcome),
        (RunKind::Drill, RunOutcome::Succeeded)
    );
    let rto = drill.measured_rto_ms.unwrap();
    assert!(rto > 0 && rto < 300_000, "{rto}");
    assert!(drill.measured_rpo_ms.is_some());
    assert!(drill.rpo_simulated);
    assert_eq!(drill.details["rto"]["objective_ms"], 300_000);
    assert_eq!(drill.details["rto"]["met"], true);
    assert_eq!(drill.details["rpo"]["objective_ms"], 900_000);
    assert_eq!(drill.details["rpo"]["met"], true);
    assert_eq!(drill.details["rpo"]["canary"]["status"], "found");
    // The nested runs are drill runs too (no failover cooldown), failover then failback.
    for (id, op) in [
        ("drill-sim-failover", "failover"),
        ("drill-sim-failback", "failback"),
    ] {
        let r = runs.iter().find(|r| r.id == id).unwrap();
        assert_eq!(
            (r.kind, r.outcome),
            (RunKind::Drill, RunOutcome::Succeeded),
            "{id}"
        );
        assert_eq!(r.details["operation"], op);
    }

    // The report in S3: JSON that parses, Markdown with the timeline.
    let report: Value =
        serde_json::from_str(&object(&w, "drills/checkout/drill-sim.json").await).unwrap();
    assert_eq!(report["rpo"]["simulated"], true);
    assert_eq!(report["rto"]["measured_ms"], rto);
    assert_eq!(
        report["location"]["markdown_key"],
        "drills/checkout/drill-sim.md"
    );
    let md = object(&w, "drills/checkout/drill-sim.md").await;
    assert!(md.starts_with("# DR drill `drill-sim` — checkout"), "{md}");
    // And the self-contained HTML report beside them: the timeline drawn, no scripts.
    assert_eq!(
        report["location"]["html_key"],
        "drills/checkout/drill-sim.html"
    );
    let html = object(&w, "drills/checkout/drill-sim.html").await;
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("drill-sim") && html.contains("<svg"),
        "{html}"
    );
    assert!(!html.contains("<script"), "{html}");
    assert!(md.contains("## Timeline"), "{md}");
    assert!(md.contains("RPO (**simulated**)"), "{md}");
    // What the failover prepared in us-west-2 before traffic moved (issue #15 item 5):
    // the pilot light's web tier scaled from 0 to the primary's 2, in service, and how
    // long that took (the twin launches instances in 2 s); the same in the HTML page.
    let prepared = &report["prepared"];
    assert_eq!(prepared[0]["phase"], "failover", "{prepared:#}");
    assert_eq!(prepared[0]["region"], "us-west-2", "{prepared:#}");
    assert_eq!(prepared[0]["pattern"], "pilot_light", "{prepared:#}");
    let compute = prepared[0]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "compute_status" || s["step"] == "compute_scale")
        .unwrap_or_else(|| panic!("no compute step in {prepared:#}"));
    assert_eq!(compute["status"], "scaled", "{compute:#}");
    assert_eq!(
        compute["resources"][0]["detail"], "2/2 in service",
        "{compute:#}"
    );
    let took = compute["took_ms"].as_u64().unwrap();
    assert!((1_500..60_000).contains(&took), "{took}");
    // Once the failback's traffic had left us-west-2, its web tier went back to its
    // standby size (pilot light: MinSize 0), best effort, in the failback's timeline.
    let (desired, _) = web_group(&w, "us-west-2").await;
    assert_eq!(desired, 0);
    assert!(md.contains("failback:compute_standby"), "{md}");
    assert!(md.contains("best effort: standby"), "{md}");
    assert!(md.contains("## Prepared before traffic moved"), "{md}");
    assert!(
        md.contains("| failover | us-west-2 | pilot_light | compute_status | scaled |"),
        "{md}"
    );
    assert!(
        html.contains("<h2>Prepared before traffic moved</h2>"),
        "{html}"
    );
    for step in [
        "| start |",
        "| failover |",
        "failover:finalize",
        "failback:shift_stage",
        "failback:verify_stage",
        "| report |",
    ] {
        assert!(md.contains(step), "{step} not in\n{md}");
    }
}

#[tokio::test]
async fn a_canary_that_never_arrives_is_reported_as_an_rpo_breach() {
    let w = world("nocopy").await;
    let end = run(&w, "drill-measured", &input("measured")).await;
    assert_eq!(
        end.status,
        ExecutionStatus::Succeeded,
        "{end:?}\n{}",
        why(&w, "drill-measured").await
    );
    let out: Value = serde_json::from_str(end.output.as_deref().unwrap()).unwrap();
    assert_eq!(out["outcome"], "succeeded", "{out:#}");
    assert_eq!(out["objectives_met"], false);
    assert_eq!(out["rpo"]["canary"]["status"], "missing");
    assert_eq!(out["rpo"]["met"], false);
    assert_eq!(out["rpo"]["simulated"], false);
    let runs = w.store.list_runs("checkout").await.unwrap();
    let drill = runs.iter().find(|r| r.id == "drill-measured").unwrap();
    assert!(!drill.rpo_simulated);
    assert_eq!(drill.details["rpo"]["met"], false);
    let md = object(&w, "drills/checkout/drill-measured.md").await;
    assert!(md.contains("data not replicated"), "{md}");
    // The drill still returned everything as it was.
    let spec = w.store.get_spec("checkout").await.unwrap();
    assert_eq!(roles(&spec), roles(&w.spec));
}

/// A drill's dry run: the machine answers the drill's plan — its own steps around the
/// nested failover's and failback's, every AWS call with its Region — and does nothing:
/// no lease, no canary, no nested execution, no run record. Before, a drill had no dry
/// run at all (its plan was only what a real drill would show afterwards).
#[tokio::test]
async fn a_drill_dry_run_returns_its_plan_and_changes_nothing() {
    let w = world("dry").await;
    let mut req = input("simulated");
    req["dry_run"] = json!(true);
    let end = run(&w, "drill-dry", &req).await;
    assert_eq!(end.status, ExecutionStatus::Succeeded, "{end:?}");
    let out: Value = serde_json::from_str(end.output.as_deref().unwrap()).unwrap();
    assert_eq!(out["dry_run"], true, "{out:#}");
    let steps: Vec<&str> = out["plan"]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    for step in [
        "prepare",
        "canary_write",
        "failover:decide",
        "failback:decide",
        "report",
    ] {
        assert!(steps.contains(&step), "{step}: {steps:?}");
    }
    assert!(
        out["plan"]["steps"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["calls"].is_array())
    );
    assert_eq!(w.store.get_lease("checkout").await.unwrap(), None);
    assert!(w.store.list_runs("checkout").await.unwrap().is_empty());
    assert_eq!(w.store.get_spec("checkout").await.unwrap(), w.spec);
    for nested in ["failover", "failback"] {
        let arn = harness::machines::machine_arn(nested, HOME);
        let runs = w
            .sfn
            .list_executions()
            .state_machine_arn(&arn)
            .send()
            .await
            .unwrap();
        assert!(
            runs.executions().is_empty(),
            "{nested}: {:?}",
            runs.executions()
        );
    }
}
