//! A workload's blue/green deploy wiring in the emulator, for deploy-wave's tests: each
//! Region's weighted record pair, its gate alarms, and traffic metrics put into
//! CloudWatch to drive the gates.
//!
//! moto's GetMetricData computes `Sum`, `Average`, `Minimum`, `Maximum` and
//! `SampleCount`, not percentiles (`p95` answers nothing), so the seeded spec reads
//! latency from metrics that already are percentiles (`LatencyP95Ms`, `LatencyP99Ms`,
//! statistic `Maximum`) — as an application publishing its own percentiles would. The
//! percentile statistic itself is tested with aws-smithy-mocks. moto also ignores the
//! namespace of a query that has dimensions, so every metric gets a `Test` dimension
//! unique to the test.

use anyhow::Context;
use aws_sdk_cloudwatch as cw;
use aws_sdk_route53 as r53;
use aws_types::SdkConfig;
use lifeboat::WorkloadSpec;
use lifeboat::aws::for_region;
use lifeboat::model::{Dimension, MetricQuery, Slot};

use crate::moto::MotoServer;
use crate::route53::ROUTE53_REGION;

fn tag_query(q: &mut MetricQuery, tag: &str, name: Option<&str>) {
    q.dimensions.push(Dimension {
        name: "Test".into(),
        value: tag.to_owned(),
    });
    if let Some(n) = name {
        q.metric_name = n.to_owned();
        q.stat = Some("Maximum".into());
    }
}

/// The template of one of the workload's own alarms (not Lifeboat's).
pub const WORKLOAD_ALARM: &str = "tests/fixtures/workload-alarm.yaml";

/// Seeds the deploy wiring of `seeded` (a spec already through
/// [`crate::route53::seed`], whose zone ids are real) and returns it rewritten: metrics
/// tagged and read as moto can, alarm names suffixed by `tag` and created `OK` in their
/// Region, and for each Region's `deploy` the blue and green weighted `A` records
/// (live slot 100, the other 0) in the zone its `dns` record lives in.
pub async fn seed(
    moto: &MotoServer,
    original: &WorkloadSpec,
    seeded: &WorkloadSpec,
    tag: &str,
) -> anyhow::Result<WorkloadSpec> {
    let base = moto.sdk_config(ROUTE53_REGION).await;
    let route53 = r53::Client::new(&base);
    let mut spec = seeded.clone();
    // Alarms to bring to OK by their data once created (all at once: each takes an
    // evaluation or two).
    let mut quiet: Vec<(String, String)> = Vec::new();
    for (i, r) in spec.regions.iter_mut().enumerate() {
        let Some(d) = r.deploy.as_mut() else { continue };
        // The placeholder zone id maps to the zone route53::seed created for it.
        let zone = original
            .regions
            .iter()
            .zip(&seeded.regions)
            .flat_map(|(o, s)| o.dns.iter().zip(&s.dns))
            .find(|(o, _)| o.hosted_zone_id == d.hosted_zone_id)
            .map(|(_, s)| s.hosted_zone_id.clone())
            .with_context(|| format!("no seeded zone for {}", d.hosted_zone_id))?;
        d.hosted_zone_id = zone.clone();
        tag_query(&mut d.metrics.errors, tag, None);
        tag_query(&mut d.metrics.requests, tag, None);
        tag_query(&mut d.metrics.latency_p95, tag, Some("LatencyP95Ms"));
        if let Some(q) = d.metrics.latency_p99.as_mut() {
            tag_query(q, tag, Some("LatencyP99Ms"));
        }
        let twin = crate::twin::Twin::new(moto);
        for a in &mut d.alarms {
            *a = format!("{a}-{tag}");
            // The workload's own alarm, from its (the user's) template.
            twin.post(
                "stack",
                serde_json::json!({
                    "region": r.region,
                    "stack_name": a.as_str(),
                    "template": crate::moto::repo_root().join(WORKLOAD_ALARM).display().to_string(),
                    "parameters": {"AlarmName": a.as_str(), "Namespace": format!("Checkout/Alarms/{tag}")},
                }),
            )
            .await
            .with_context(|| format!("deploying the workload alarm {a}"))?;
            quiet.push((r.region.clone(), a.clone()));
        }
        let mut changes = Vec::new();
        for slot in [Slot::Blue, Slot::Green] {
            let weight = if slot == d.live { 100 } else { 0 };
            let set = r53::types::ResourceRecordSet::builder()
                .name(&d.record_name)
                .r#type(r53::types::RrType::A)
                .set_identifier(&d.slot(slot).set_identifier)
                .weight(weight)
                .ttl(60)
                .resource_records(
                    r53::types::ResourceRecord::builder()
                        .value(format!(
                            "198.51.100.{}",
                            i * 2 + usize::from(slot == Slot::Green) + 10
                        ))
                        .build()?,
                )
                .build()?;
            changes.push(
                r53::types::Change::builder()
                    .action(r53::types::ChangeAction::Create)
                    .resource_record_set(set)
                    .build()?,
            );
        }
        route53
            .change_resource_record_sets()
            .hosted_zone_id(&zone)
            .change_batch(
                r53::types::ChangeBatch::builder()
                    .set_changes(Some(changes))
                    .build()?,
            )
            .send()
            .await
            .with_context(|| format!("creating the deploy records of {}", r.region))?;
    }
    let quieted = futures_util::future::join_all(
        quiet
            .iter()
            .map(|(region, alarm)| set_alarm(&base, region, alarm, false)),
    )
    .await;
    for q in quieted {
        q?;
    }
    Ok(spec)
}

/// Puts an alarm in `ALARM` (`firing`) or `OK` by its data, as a real breach would
/// ([`crate::twin::alarm_to`]).
pub async fn set_alarm(
    config: &SdkConfig,
    region: &str,
    name: &str,
    firing: bool,
) -> anyhow::Result<()> {
    crate::twin::alarm_to(config, region, name, firing).await
}

/// Traffic of one slot over a moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    /// Requests.
    pub requests: f64,
    /// Failed requests.
    pub errors: f64,
    /// p95 latency, ms.
    pub p95_ms: f64,
    /// p99 latency, ms.
    pub p99_ms: f64,
}

impl Traffic {
    /// 1000 requests, 0.02 % errors, 80/120 ms: healthy.
    pub const HEALTHY: Traffic = Traffic {
        requests: 1000.0,
        errors: 0.2,
        p95_ms: 80.0,
        p99_ms: 120.0,
    };
    /// 1000 requests, 5 % errors: a bad version.
    pub const FAILING: Traffic = Traffic {
        requests: 1000.0,
        errors: 50.0,
        p95_ms: 90.0,
        p99_ms: 140.0,
    };
}

/// Puts `traffic` for `region`'s `slot` at `at_millis`, as the spec (seeded by
/// [`seed`]) reads it.
pub async fn put_traffic(
    config: &SdkConfig,
    spec: &WorkloadSpec,
    region: &str,
    slot: Slot,
    traffic: Traffic,
    at_millis: u64,
) -> anyhow::Result<()> {
    let d = spec
        .region(region)
        .and_then(|r| r.deploy.as_ref())
        .with_context(|| format!("{region} has no deploy section"))?;
    let cw = cw::Client::new(&for_region(config, region));
    let slot_dims = &d.slot(slot).dimensions;
    let mut queries = vec![
        (&d.metrics.errors, traffic.errors),
        (&d.metrics.requests, traffic.requests),
        (&d.metrics.latency_p95, traffic.p95_ms),
    ];
    if let Some(q) = &d.metrics.latency_p99 {
        queries.push((q, traffic.p99_ms));
    }
    for (q, value) in queries {
        let dims: Vec<cw::types::Dimension> = q
            .dimensions
            .iter()
            .chain(slot_dims)
            .map(|d| {
                cw::types::Dimension::builder()
                    .name(&d.name)
                    .value(&d.value)
                    .build()
            })
            .collect();
        cw.put_metric_data()
            .namespace(&q.namespace)
            .metric_data(
                cw::types::MetricDatum::builder()
                    .metric_name(&q.metric_name)
                    .set_dimensions(Some(dims))
                    .value(value)
                    .storage_resolution(1)
                    .timestamp(cw::primitives::DateTime::from_millis(
                        i64::try_from(at_millis).unwrap_or(i64::MAX),
                    ))
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("PutMetricData {} in {region}", q.metric_name))?;
    }
    Ok(())
}
