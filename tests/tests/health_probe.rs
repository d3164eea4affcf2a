//! health-probe against real emulation: moto for DynamoDB and CloudWatch, and one
//! switchable HTTP server per Region on loopback for the endpoints.
//!
//! moto cannot fail a Route 53 health check (GetHealthCheckStatus always reports
//! success), so that case drives Route 53 with aws-smithy-mocks; everything else in that
//! test is still moto.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, DimensionFilter, Metric, MetricDataQuery, MetricDatum,
    MetricStat, ScanBy, StandardUnit, Statistic,
};
use aws_smithy_types::DateTime;
use aws_types::SdkConfig;
use harness::moto::MotoServer;
use health_probe::loopback::LoopbackServer;
use health_probe::{HttpProber, Output, Prober};
use lambda_runtime::{Context, LambdaEvent};
use lifeboat::aws::RegionalClients;
use lifeboat::model::{DatabaseRef, DnsRecord};
use lifeboat::store::{HealthRecord, LagGrade, Verdict};
use lifeboat::{DynamoStore, ErrorName, Store, UnixMillis, WorkloadSpec};
use serde_json::{Value, json};

const HOME: &str = "us-east-1";
const REGIONS: [&str; 3] = ["us-east-1", "eu-west-1", "ap-southeast-1"];

/// A workload like the example, with a fresh id, its endpoints on loopback servers
/// (one per Region), no Route 53 health checks, and its alarms created in moto.
struct Fixture {
    config: SdkConfig,
    store: DynamoStore,
    spec: WorkloadSpec,
    servers: Vec<LoopbackServer>,
    prober: Prober<DynamoStore>,
}

async fn fixture(k: u32, m: u32) -> Fixture {
    fixture_with(k, m, None).await
}

async fn fixture_with(k: u32, m: u32, route53: Option<aws_sdk_route53::Client>) -> Fixture {
    let moto = MotoServer::shared();
    let config = moto.sdk_config(HOME).await;
    let table = harness::table::unique_name("hp");
    harness::table::create(&config, &table, &REGIONS[1..])
        .await
        .unwrap();
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), &table);

    let mut spec = harness::world::example_spec().unwrap();
    spec.workload = harness::table::unique_name("w");
    spec.policy.failure_threshold = k;
    spec.policy.recovery_threshold = m;
    let mut servers = vec![];
    for r in &mut spec.regions {
        let server = LoopbackServer::start().await.unwrap();
        r.endpoints[0].url = server.url("/health");
        r.endpoints[0].timeout_ms = 300;
        for d in &mut r.dns {
            d.health_check_id = None;
        }
        // Database and bucket names unique to this workload: tests share one moto.
        for db in &mut r.databases {
            if let DatabaseRef::RdsInstance { instance_id, .. } = db {
                *instance_id = format!("{}-db-{}", spec.workload, r.region);
            }
        }
        for b in &mut r.buckets {
            b.name = format!("{}-receipts-{}", spec.workload, r.region);
        }
        // Alarm names unique to this workload, created (INSUFFICIENT_DATA) in the Region.
        r.alarms = vec![format!("{}-{}-5xx", spec.workload, r.region)];
        let cw = aws_sdk_cloudwatch::Client::new(&lifeboat::aws::for_region(&config, &r.region));
        cw.put_metric_alarm()
            .alarm_name(&r.alarms[0])
            .namespace("Checkout")
            .metric_name("5xx")
            .dimensions(
                Dimension::builder()
                    .name("Workload")
                    .value(&spec.workload)
                    .build(),
            )
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(10.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .send()
            .await
            .unwrap();
        servers.push(server);
    }
    let spec = store.create_spec(&spec).await.unwrap();
    let route53 = route53.unwrap_or_else(|| aws_sdk_route53::Client::new(&config));
    let prober = Prober::new(
        store.clone(),
        HttpProber::new().unwrap(),
        route53,
        RegionalClients::new(&config, aws_sdk_cloudwatch::Client::new),
        HOME,
        Duration::ZERO,
    );
    Fixture {
        config,
        store,
        spec,
        servers,
        prober,
    }
}

fn prober(f: &Fixture, window: Duration) -> Prober<DynamoStore> {
    Prober::new(
        f.store.clone(),
        HttpProber::new().unwrap(),
        aws_sdk_route53::Client::new(&f.config),
        RegionalClients::new(&f.config, aws_sdk_cloudwatch::Client::new),
        HOME,
        window,
    )
}

fn event(payload: Value) -> LambdaEvent<Value> {
    LambdaEvent::new(payload, Context::default())
}

impl Fixture {
    fn server(&self, region: &str) -> &LoopbackServer {
        let i = REGIONS.iter().position(|r| *r == region).unwrap();
        &self.servers[i]
    }

    async fn round(&self) -> Output {
        self.prober
            .handle(event(json!({ "workload": self.spec.workload })))
            .await
            .unwrap()
    }

    async fn health(&self, region: &str) -> HealthRecord {
        self.store
            .get_health(&self.spec.workload)
            .await
            .unwrap()
            .into_iter()
            .find(|h| h.region == region)
            .unwrap()
    }

    async fn verdict(&self, region: &str) -> Verdict {
        self.health(region).await.verdict
    }

    fn cloudwatch(&self, region: &str) -> aws_sdk_cloudwatch::Client {
        aws_sdk_cloudwatch::Client::new(&lifeboat::aws::for_region(&self.config, region))
    }

    /// Puts one datapoint (seconds, now) into moto's CloudWatch in `region`.
    /// Drives the Region's alarm into `ALARM` (`firing`) or `OK` by its data
    /// (`harness::twin::alarm_to`): the twin's alarms decide from their data, as
    /// CloudWatch's do, and SetAlarmState would last one evaluation.
    async fn alarm_to(&self, region: &str, firing: bool) {
        let alarm = &self.spec.region(region).unwrap().alarms[0];
        harness::twin::alarm_to(&self.config, region, alarm, firing)
            .await
            .unwrap();
    }

    async fn put_seconds(
        &self,
        region: &str,
        namespace: &str,
        name: &str,
        dims: &[(&str, &str)],
        value: f64,
    ) {
        let mut datum = MetricDatum::builder()
            .metric_name(name)
            .value(value)
            .unit(StandardUnit::Seconds)
            .timestamp(DateTime::from_millis(UnixMillis::now().0 as i64));
        for (n, v) in dims {
            datum = datum.dimensions(Dimension::builder().name(*n).value(*v).build());
        }
        self.cloudwatch(region)
            .put_metric_data()
            .namespace(namespace)
            .metric_data(datum.build())
            .send()
            .await
            .unwrap();
    }

    /// The latest value of a Lifeboat metric for a Region, read back from moto.
    async fn metric(&self, name: &str, region: &str) -> Option<f64> {
        let now = UnixMillis::now();
        let out = self
            .cloudwatch(HOME)
            .get_metric_data()
            .metric_data_queries(
                MetricDataQuery::builder()
                    .id("q")
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace("Lifeboat")
                                    .metric_name(name)
                                    .dimensions(
                                        Dimension::builder()
                                            .name("Workload")
                                            .value(&self.spec.workload)
                                            .build(),
                                    )
                                    .dimensions(
                                        Dimension::builder().name("Region").value(region).build(),
                                    )
                                    .build(),
                            )
                            .period(60)
                            .stat("Minimum")
                            .build(),
                    )
                    .build(),
            )
            .start_time(DateTime::from_millis(now.0 as i64 - 600_000))
            .end_time(DateTime::from_millis(now.0 as i64 + 60_000))
            .scan_by(ScanBy::TimestampDescending)
            .send()
            .await
            .unwrap();
        // Newest minute first; Minimum, so one unhealthy round in it shows as 0.
        out.metric_data_results()[0].values().first().copied()
    }
}

#[tokio::test]
async fn a_region_going_down_is_detected_after_exactly_k_rounds_and_back_after_m() {
    let f = fixture(3, 2).await;
    let out = f.round().await;
    assert_eq!(out.workloads[0].rounds, 1);
    assert_eq!(
        out.workloads[0].changes.len(),
        3,
        "unknown -> healthy for each Region"
    );
    for r in REGIONS {
        assert_eq!(f.verdict(r).await, Verdict::Healthy, "{r}");
    }

    f.server("eu-west-1").set_answer(503, "down");
    for round in 1..=2 {
        let out = f.round().await;
        assert!(out.workloads[0].changes.is_empty(), "round {round}");
        let h = f.health("eu-west-1").await;
        assert_eq!(
            h.verdict,
            Verdict::Healthy,
            "still healthy after {round} failed rounds"
        );
        assert_eq!(h.consecutive_failures, round);
    }
    let out = f.round().await;
    let changes = &out.workloads[0].changes;
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (changes[0].region.as_str(), changes[0].from, changes[0].to),
        ("eu-west-1", Verdict::Healthy, Verdict::Unhealthy)
    );
    let h = f.health("eu-west-1").await;
    assert_eq!(h.verdict, Verdict::Unhealthy);
    assert!(
        h.detail
            .as_deref()
            .unwrap()
            .contains("status 503, expected 200"),
        "{h:?}"
    );
    assert_eq!(f.verdict("us-east-1").await, Verdict::Healthy);
    assert_eq!(f.metric("RegionHealthy", "eu-west-1").await, Some(0.0));

    f.server("eu-west-1").set_healthy();
    f.round().await;
    assert_eq!(
        f.verdict("eu-west-1").await,
        Verdict::Unhealthy,
        "one good round is not enough"
    );
    let out = f.round().await;
    assert_eq!(out.workloads[0].changes.len(), 1);
    assert_eq!(f.verdict("eu-west-1").await, Verdict::Healthy);

    let events = f.store.list_events(&f.spec.workload).await.unwrap();
    let eu: Vec<(String, String)> = events
        .iter()
        .filter(|e| e.after.as_ref().unwrap()["region"] == "eu-west-1")
        .map(|e| {
            (
                e.before.as_ref().unwrap()["verdict"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                e.after.as_ref().unwrap()["verdict"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();
    assert_eq!(
        eu,
        [
            ("unknown".to_owned(), "healthy".to_owned()),
            ("healthy".to_owned(), "unhealthy".to_owned()),
            ("unhealthy".to_owned(), "healthy".to_owned()),
        ]
    );
    assert_eq!(events.len(), 5, "3 first verdicts + down + up");
    assert!(
        events
            .iter()
            .all(|e| e.action == "verdict_changed" && e.actor == "health-probe")
    );
}

#[tokio::test]
async fn a_flapping_endpoint_does_not_flip_the_verdict() {
    let f = fixture(3, 3).await;
    f.round().await;
    let server = f.server("ap-southeast-1");
    for _ in 0..3 {
        server.set_answer(500, "oops");
        f.round().await;
        f.round().await;
        server.set_healthy();
        f.round().await;
        assert_eq!(f.verdict("ap-southeast-1").await, Verdict::Healthy);
    }
    let events = f.store.list_events(&f.spec.workload).await.unwrap();
    assert_eq!(events.len(), 3, "only the first verdicts: {events:?}");
    assert!(server.hits() >= 10);
}

#[tokio::test]
async fn timeouts_wrong_bodies_and_alarms_fail_a_round() {
    let f = fixture(1, 1).await;
    // Far beyond the 300 ms probe timeout, so the bound below holds on a loaded machine
    // (it was 800 ms against a 790 ms bound, and a busy CI round took 822 ms).
    f.server("us-east-1").set_delay(Duration::from_secs(10));
    f.server("eu-west-1")
        .set_answer(200, r#"{"status":"degraded"}"#);
    let apse1_alarm = &f.spec.region("ap-southeast-1").unwrap().alarms[0];
    f.alarm_to("ap-southeast-1", true).await;
    let started = std::time::Instant::now();
    f.round().await;
    // The three Regions are probed concurrently: one slow endpoint does not delay the
    // others, and the 300 ms timeout bounds the round, nowhere near the 10 s answer.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let use1 = f.health("us-east-1").await;
    assert_eq!(use1.verdict, Verdict::Unhealthy);
    assert!(
        use1.detail.as_deref().unwrap().contains("timed out"),
        "{use1:?}"
    );
    let euw1 = f.health("eu-west-1").await;
    assert_eq!(euw1.verdict, Verdict::Unhealthy);
    assert!(
        euw1.detail
            .as_deref()
            .unwrap()
            .contains(r#"body does not contain "\"status\":\"ok\"""#),
        "{euw1:?}"
    );
    let apse1 = f.health("ap-southeast-1").await;
    assert_eq!(apse1.verdict, Verdict::Unhealthy);
    assert_eq!(
        apse1.detail.as_deref(),
        Some(format!("alarm {apse1_alarm} is in ALARM").as_str())
    );

    f.server("us-east-1").set_delay(Duration::ZERO);
    f.server("eu-west-1").set_healthy();
    f.alarm_to("ap-southeast-1", false).await;
    f.round().await;
    for r in REGIONS {
        assert_eq!(f.verdict(r).await, Verdict::Healthy, "{r}");
    }
}

#[tokio::test]
async fn replication_lag_is_read_graded_recorded_and_published() {
    let f = fixture(3, 3).await;
    // The eu-west-1 replica reports 12 s of lag in its Region (warning at 5, critical at 30).
    let replica = format!("{}-db-eu-west-1", f.spec.workload);
    f.put_seconds(
        "eu-west-1",
        "AWS/RDS",
        "ReplicaLag",
        &[("DBInstanceIdentifier", &replica)],
        12.0,
    )
    .await;
    f.round().await;
    let eu = f.health("eu-west-1").await;
    assert_eq!(eu.replication_lag_seconds, Some(12.0));
    assert_eq!(eu.lag_grade, Some(LagGrade::Warning));
    assert_eq!(eu.verdict, Verdict::Healthy, "lag is graded, not a failure");
    let use1 = f.health("us-east-1").await;
    assert_eq!(
        use1.replication_lag_seconds, None,
        "the primary has no lag metric"
    );

    assert_eq!(
        f.metric("ReplicationLagSeconds", "eu-west-1").await,
        Some(12.0)
    );
    assert_eq!(f.metric("RegionHealthy", "eu-west-1").await, Some(1.0));
    assert!(f.metric("ProbeLatencyMs", "us-east-1").await.is_some());
    let listed = f
        .cloudwatch(HOME)
        .list_metrics()
        .namespace("Lifeboat")
        .dimensions(
            DimensionFilter::builder()
                .name("Workload")
                .value(&f.spec.workload)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut names: Vec<(String, String)> = listed
        .metrics()
        .iter()
        .map(|m| {
            let region = m
                .dimensions()
                .iter()
                .find(|d| d.name() == Some("Region"))
                .and_then(|d| d.value())
                .unwrap()
                .to_owned();
            (m.metric_name().unwrap().to_owned(), region)
        })
        .collect();
    names.sort();
    names.dedup();
    assert_eq!(
        names,
        [
            ("ProbeLatencyMs".to_owned(), "ap-southeast-1".to_owned()),
            ("ProbeLatencyMs".to_owned(), "eu-west-1".to_owned()),
            ("ProbeLatencyMs".to_owned(), "us-east-1".to_owned()),
            ("RegionHealthy".to_owned(), "ap-southeast-1".to_owned()),
            ("RegionHealthy".to_owned(), "eu-west-1".to_owned()),
            ("RegionHealthy".to_owned(), "us-east-1".to_owned()),
            ("ReplicationLagSeconds".to_owned(), "eu-west-1".to_owned()),
        ]
    );
}

#[tokio::test]
async fn a_route53_health_check_reporting_failure_fails_the_round() {
    // moto's GetHealthCheckStatus always reports success: Route 53 is mocked here with
    // aws-smithy-mocks; the store, CloudWatch and the endpoints are still moto/loopback.
    use aws_sdk_route53::operation::get_health_check_status::GetHealthCheckStatusOutput;
    use aws_sdk_route53::types::{HealthCheckObservation, StatusReport};
    use aws_smithy_mocks::{RuleMode, mock, mock_client};
    let failing = mock!(aws_sdk_route53::Client::get_health_check_status)
        .match_requests(|r| r.health_check_id() == Some("hc-euw1"))
        .then_output(|| {
            let obs = |s: &str| {
                HealthCheckObservation::builder()
                    .region(aws_sdk_route53::types::HealthCheckRegion::UsEast1)
                    .status_report(StatusReport::builder().status(s).build())
                    .build()
            };
            GetHealthCheckStatusOutput::builder()
                .health_check_observations(obs("Failure: Connection timed out."))
                .health_check_observations(obs("Failure: Connection timed out."))
                .build()
                .unwrap()
        });
    let route53 = mock_client!(aws_sdk_route53, RuleMode::MatchAny, [&failing]);
    let mut f = fixture_with(1, 1, Some(route53)).await;
    let mut spec = f.spec.clone();
    spec.regions[1].dns = vec![DnsRecord {
        hosted_zone_id: "Z0CHECKOUTEXAMPLE".into(),
        record_name: "api.checkout.example.com".into(),
        set_identifier: Some("eu-west-1".into()),
        health_check_id: Some("hc-euw1".into()),
    }];
    f.spec = f.store.put_spec(&spec, None).await.unwrap();
    f.round().await;
    let eu = f.health("eu-west-1").await;
    assert_eq!(eu.verdict, Verdict::Unhealthy);
    assert_eq!(
        eu.detail.as_deref(),
        Some("Route 53 health check hc-euw1 reports unhealthy")
    );
    assert_eq!(f.verdict("us-east-1").await, Verdict::Healthy);
    assert_eq!(failing.num_calls(), 1);
}

#[tokio::test]
async fn the_scheduled_event_probes_every_workload_in_the_table() {
    let f = fixture(3, 3).await;
    let mut second = f.spec.clone();
    second.workload = harness::table::unique_name("w2");
    second.version = 0;
    f.store.create_spec(&second).await.unwrap();
    let fixture_event: Value = serde_json::from_str(include_str!(
        "../../events/health-probe/scheduled-event.json"
    ))
    .unwrap();
    let out = f.prober.handle(event(fixture_event)).await.unwrap();
    let mut ids: Vec<&str> = out.workloads.iter().map(|w| w.workload.as_str()).collect();
    ids.sort_unstable();
    let mut want = vec![f.spec.workload.as_str(), second.workload.as_str()];
    want.sort_unstable();
    assert_eq!(ids, want);
    for w in &out.workloads {
        assert_eq!(w.error, None);
        assert_eq!(w.regions.len(), 3);
        assert!(w.regions.iter().all(|r| r.verdict == Verdict::Healthy));
    }
    assert_eq!(f.store.get_health(&second.workload).await.unwrap().len(), 3);
}

#[tokio::test]
async fn bad_input_gets_a_named_error_and_writes_nothing() {
    let f = fixture(3, 3).await;
    let cases = [
        (json!({"workload": 42}), ErrorName::InvalidInput),
        (
            json!({"detail-type": "Object Created", "source": "aws.s3", "detail": {}}),
            ErrorName::InvalidInput,
        ),
        (json!("checkout"), ErrorName::InvalidInput),
        (
            json!({"workload": "no-such-workload"}),
            ErrorName::WorkloadNotFound,
        ),
        (
            json!({"workload": f.spec.workload, "regions": ["eu-central-1"]}),
            ErrorName::InvalidInput,
        ),
    ];
    for (input, name) in cases {
        let err = f.prober.handle(event(input.clone())).await.unwrap_err();
        assert_eq!(err.name(), name, "{input}: {err}");
        let diag = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diag.error_type, name.as_str());
    }
    assert!(
        f.store
            .get_health(&f.spec.workload)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        f.store
            .get_health("no-such-workload")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        f.store
            .list_events(&f.spec.workload)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(f.metric("RegionHealthy", "us-east-1").await, None);
    assert!(
        f.servers.iter().all(|s| s.hits() == 0),
        "nothing was probed"
    );
}

#[tokio::test]
async fn one_invocation_runs_rounds_at_the_interval_within_the_window_and_the_deadline() {
    let mut f = fixture(3, 3).await;
    let mut spec = f.spec.clone();
    spec.policy.probe_interval_seconds = 1;
    f.spec = f.store.put_spec(&spec, None).await.unwrap();
    f.server("eu-west-1").set_answer(503, "down");

    // A state machine's one-workload probe is one round whatever the window: the
    // machine does its own waiting between polls.
    let out = prober(&f, Duration::from_secs(30))
        .handle(event(json!({ "workload": f.spec.workload })))
        .await
        .unwrap();
    assert_eq!(out.workloads[0].rounds, 1);
    assert_eq!(f.server("us-east-1").hits(), 1);

    // The schedule's run: a 2.5 s window at a 1 s interval gives rounds at 0, 1 and 2 s,
    // so a Region down from the start is unhealthy at the third, within one invocation.
    let scheduled: serde_json::Value = serde_json::from_str(include_str!(
        "../../events/health-probe/scheduled-event.json"
    ))
    .unwrap();
    let started = std::time::Instant::now();
    let out = prober(&f, Duration::from_millis(2_500))
        .handle(event(scheduled.clone()))
        .await
        .unwrap();
    let elapsed = started.elapsed();
    let w = &out.workloads[0];
    assert_eq!(w.rounds, 3);
    assert!(elapsed >= Duration::from_secs(2), "{elapsed:?}");
    let eu: Vec<_> = w
        .changes
        .iter()
        .filter(|c| c.region == "eu-west-1")
        .collect();
    assert_eq!(eu.len(), 1);
    assert_eq!(
        (eu[0].from, eu[0].to),
        (Verdict::Unknown, Verdict::Unhealthy)
    );
    assert_eq!(f.verdict("eu-west-1").await, Verdict::Unhealthy);
    assert_eq!(f.server("us-east-1").hits(), 1 + 3);

    // The Lambda deadline bounds the window: with 1.5 s left there is no time for a
    // second round (1 s wait + 300 ms probe timeout + 2 s margin).
    let mut ctx = Context::default();
    ctx.deadline = UnixMillis::now().0 + 1_500;
    let out = prober(&f, Duration::from_secs(30))
        .handle(LambdaEvent::new(scheduled, ctx))
        .await
        .unwrap();
    assert_eq!(out.workloads[0].rounds, 1);
}

#[tokio::test]
async fn s3_replication_latency_is_read_in_the_destination_region_and_graded_by_its_own_levels() {
    let f = fixture(3, 3).await;
    // S3 publishes ReplicationLatency "in the Region of the destination bucket" (S3 User
    // Guide, "Using S3 Replication metrics"): here ap-southeast-1, replicated into.
    let source = format!("{}-receipts-us-east-1", f.spec.workload);
    let destination = format!("{}-receipts-ap-southeast-1", f.spec.workload);
    let dims = [
        ("SourceBucket", source.as_str()),
        ("DestinationBucket", destination.as_str()),
        ("RuleId", "receipts-to-apse1"),
    ];
    f.put_seconds(
        "ap-southeast-1",
        "AWS/S3",
        "ReplicationLatency",
        &dims,
        4_000.0,
    )
    .await;
    let replica = format!("{}-db-ap-southeast-1", f.spec.workload);
    f.put_seconds(
        "ap-southeast-1",
        "AWS/RDS",
        "ReplicaLag",
        &[("DBInstanceIdentifier", &replica)],
        2.0,
    )
    .await;
    f.round().await;
    let apse1 = f.health("ap-southeast-1").await;
    // The database lag is what the RPO gate weighs; S3's 4000 s is graded by S3's
    // levels (warning at 1 h), where the database levels (critical at 30 s) would
    // call it critical.
    assert_eq!(apse1.replication_lag_seconds, Some(2.0));
    assert_eq!(apse1.lag_grade, Some(LagGrade::Warning));
    // eu-west-1's replica publishes nothing: its lag is unknown.
    assert_eq!(f.health("eu-west-1").await.replication_lag_seconds, None);
}

/// The failover's verification probes the target only (`regions`): the Region it failed
/// away from is neither probed nor recorded, and the others' records stay as they were.
/// The failover's verification (`regions` + `avoid_regions`) makes no call at all to an
/// avoided Region, not even for the probed Region's routing-switch alarm hosted there
/// (the recorded switch position stands, and the record says so); the same probe
/// without `avoid_regions` reads that alarm. CloudWatch in ap-southeast-1 is a loopback
/// server here, counting every request that reaches it.
#[tokio::test]
async fn a_probe_makes_no_call_to_an_avoided_region_not_even_for_a_switch_it_hosts() {
    let f = fixture(3, 3).await;
    let mut spec = f.store.get_spec(&f.spec.workload).await.unwrap();
    let eu = spec
        .regions
        .iter_mut()
        .find(|r| r.region == "eu-west-1")
        .unwrap();
    eu.routing_switch.as_mut().unwrap().region = "ap-southeast-1".into();
    f.store.put_spec(&spec, None).await.unwrap();
    let avoided = LoopbackServer::start().await.unwrap();
    let url = avoided.url("/");
    let cloudwatch = RegionalClients::new(&f.config, move |c: &SdkConfig| {
        if c.region().is_some_and(|r| r.as_ref() == "ap-southeast-1") {
            let conf = aws_sdk_cloudwatch::config::Builder::from(c)
                .endpoint_url(url.clone())
                .build();
            aws_sdk_cloudwatch::Client::from_conf(conf)
        } else {
            aws_sdk_cloudwatch::Client::new(c)
        }
    });
    let prober = Prober::new(
        f.store.clone(),
        HttpProber::new().unwrap(),
        aws_sdk_route53::Client::new(&f.config),
        cloudwatch,
        HOME,
        Duration::ZERO,
    );
    let out = prober
        .handle(event(json!({
            "workload": f.spec.workload, "regions": ["eu-west-1"],
            "avoid_regions": ["ap-southeast-1"],
        })))
        .await
        .unwrap();
    assert_eq!(avoided.hits(), 0, "a call reached the avoided Region");
    let eu = &out.workloads[0].regions[0];
    assert_eq!(eu.region, "eu-west-1");
    let detail = eu.detail.as_deref().unwrap_or_default();
    assert!(
        detail.contains("routing-switch alarm in ap-southeast-1 not read"),
        "{detail}"
    );

    prober
        .handle(event(
            json!({ "workload": f.spec.workload, "regions": ["eu-west-1"] }),
        ))
        .await
        .unwrap();
    assert!(
        avoided.hits() > 0,
        "without avoid_regions the alarm is read there"
    );

    let err = prober
        .handle(event(json!({
            "workload": f.spec.workload, "regions": ["eu-west-1"],
            "avoid_regions": ["us-west-2"],
        })))
        .await
        .unwrap_err();
    assert_eq!(err.name(), ErrorName::InvalidInput, "{err}");
    assert!(
        err.to_string().contains("avoid_regions[0]: `us-west-2`"),
        "{err}"
    );
}

#[tokio::test]
async fn a_probe_of_named_regions_observes_and_records_only_those() {
    let f = fixture(3, 3).await;
    let out = f
        .prober
        .handle(event(
            json!({ "workload": f.spec.workload, "regions": ["eu-west-1"] }),
        ))
        .await
        .unwrap();
    let regions: Vec<&str> = out.workloads[0]
        .regions
        .iter()
        .map(|r| r.region.as_str())
        .collect();
    assert_eq!(regions, ["eu-west-1"]);
    assert_eq!(f.server("eu-west-1").hits(), 1);
    assert_eq!(
        f.server("us-east-1").hits(),
        0,
        "the primary was not probed"
    );
    let recorded: Vec<String> = f
        .store
        .get_health(&f.spec.workload)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.region)
        .collect();
    assert_eq!(recorded, ["eu-west-1"]);
}
