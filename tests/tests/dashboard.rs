//! The generated dashboard against moto: health-probe's scheduled run puts the
//! workload's dashboard ([`lifeboat::dashboard`]) when there is none, GetDashboard
//! returns what was put, and a second run with the same spec leaves it alone (one
//! GetDashboard, no PutDashboard); a new spec version is put again.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use harness::moto::MotoServer;
use harness::world::{self, HOME_REGION};
use health_probe::{HttpProber, Prober};
use lifeboat::Store;
use lifeboat::aws::RegionalClients;
use lifeboat::dashboard::{self, Stack};
use serde_json::Value;

#[tokio::test]
async fn the_dashboard_is_put_from_the_spec_once_per_version_and_reads_back() {
    let moto = MotoServer::shared();
    let table = harness::table::unique_name("dash");
    let w = world::seed(moto, &table).await.unwrap();
    let machine = format!(
        "arn:aws:states:{HOME_REGION}:123456789012:stateMachine:lifeboat-failover-{HOME_REGION}"
    );
    let stack = Stack {
        region: HOME_REGION.into(),
        state_machines: vec![("failover".into(), machine.clone())],
    };
    let prober = Prober::new(
        w.store.clone(),
        HttpProber::new().unwrap(),
        aws_sdk_route53::Client::new(&w.config),
        RegionalClients::new(&w.config, aws_sdk_cloudwatch::Client::new),
        HOME_REGION,
        Duration::ZERO,
    )
    .with_dashboard(Some(stack.clone()));
    let cw = aws_sdk_cloudwatch::Client::new(&w.config);
    let name = dashboard::name("checkout", HOME_REGION);

    assert!(
        prober.sync_dashboard(&w.spec).await,
        "no dashboard yet: put"
    );
    let got = cw
        .get_dashboard()
        .dashboard_name(&name)
        .send()
        .await
        .unwrap();
    let body: Value = serde_json::from_str(got.dashboard_body().unwrap()).unwrap();
    assert_eq!(body, dashboard::body(&w.spec, &stack));
    assert!(
        body.to_string().contains("Checkout/Api"),
        "the spec's metrics"
    );
    assert!(body.to_string().contains(&machine));

    // Same spec: nothing to do.
    assert!(!prober.sync_dashboard(&w.spec).await);

    // A new spec version (an operator's edit, a failover's roles): put again.
    let mut next = w.spec.clone();
    // The workload renamed its request metric in ap-southeast-1.
    next.regions[2]
        .deploy
        .as_mut()
        .unwrap()
        .metrics
        .requests
        .metric_name = "RequestsV2".into();
    let next = w.store.put_spec(&next, None).await.unwrap();
    assert!(prober.sync_dashboard(&next).await);
    let got = cw
        .get_dashboard()
        .dashboard_name(&name)
        .send()
        .await
        .unwrap();
    assert!(dashboard::is_current(got.dashboard_body().unwrap(), &next));
    assert!(got.dashboard_body().unwrap().contains("RequestsV2"));
}

/// template.yaml as CloudFormation reads it (cfn-lint's YAML loader, as tests/template.rs).
fn template() -> Value {
    harness::moto::bootstrap().unwrap();
    let out = std::process::Command::new(harness::moto::repo_root().join(".venv/bin/python"))
        .arg("-c")
        .arg("import json,sys,pathlib\nfrom cfnlint.decode import cfn_yaml\nprint(json.dumps(cfn_yaml.loads(pathlib.Path(sys.argv[1]).read_text())))")
        .arg(harness::moto::repo_root().join("template.yaml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The template's dashboard is not a hand copy of the spec: it reads only Lifeboat's
/// own metrics and the stack's machines (what the template knows) and points to the
/// generated one; health-probe is given every machine of the stack for the generated
/// one, and may get and put only the generated dashboards.
#[test]
fn the_templates_dashboard_keeps_to_what_the_template_knows() {
    let t = template();
    let r = &t["Resources"];
    let sub = &r["Dashboard"]["Properties"]["DashboardBody"]["Fn::Sub"];
    let text = sub[0].as_str().unwrap();
    // ${...} → a placeholder, then it must be JSON.
    let mut plain = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        plain.push_str(&rest[..i]);
        let j = rest[i..].find('}').unwrap();
        plain.push('X');
        rest = &rest[i + j + 1..];
    }
    plain.push_str(rest);
    let body: Value = serde_json::from_str(&plain).unwrap();
    let mut namespaces = std::collections::BTreeSet::new();
    for w in body["widgets"].as_array().unwrap() {
        for m in w["properties"]["metrics"].as_array().into_iter().flatten() {
            if let Some(ns) = m[0].as_str().filter(|n| *n != "." && *n != "...") {
                namespaces.insert(ns.to_owned());
            }
        }
    }
    assert_eq!(
        namespaces.into_iter().collect::<Vec<_>>(),
        ["AWS/States", "Lifeboat"]
    );
    let spec = world::example_spec().unwrap();
    for region in &spec.regions {
        let m = &region.deploy.as_ref().unwrap().metrics;
        assert!(
            !text.contains(&m.requests.namespace),
            "hand-copied spec metric"
        );
    }
    assert!(text.contains("lifeboat-${WorkloadId}-workload-${ProbeRegion}"));

    // Every machine of the template reaches the generated dashboard.
    let env = &r["HealthProbeFunction"]["Properties"]["Environment"]["Variables"];
    let machines = env[dashboard::ENV_MACHINES]["Fn::Sub"].as_str().unwrap();
    let parsed = dashboard::parse_machines(machines).unwrap();
    let names: Vec<String> = r
        .as_object()
        .unwrap()
        .values()
        .filter(|v| v["Type"] == "AWS::Serverless::StateMachine")
        .map(|v| {
            v["Properties"]["Name"]["Fn::Sub"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(parsed.len(), names.len());
    for n in &names {
        assert!(
            parsed
                .iter()
                .any(|(_, arn)| arn.ends_with(&format!(":stateMachine:{n}"))),
            "{n} not on the dashboard"
        );
        assert!(text.contains("ExecutionsFailed"));
    }
    // The template's failed-executions widget names each machine too.
    for m in [
        "FailoverStateMachine",
        "FailbackStateMachine",
        "DrillStateMachine",
        "DeployWavesStateMachine",
    ] {
        assert!(text.contains(&format!("${{{m}}}")), "{m}");
    }
    let statements = r["HealthProbeFunction"]["Properties"]["Policies"][0]["Statement"]
        .as_array()
        .unwrap();
    let dash = statements
        .iter()
        .find(|s| s["Sid"] == "WorkloadDashboards")
        .unwrap();
    assert!(
        dash["Resource"]["Fn::Sub"]
            .as_str()
            .unwrap()
            .ends_with(":dashboard/lifeboat-*-workload-*")
    );
    assert!(dashboard::name("checkout", "eu-west-1").starts_with("lifeboat-checkout-workload-"));
}
