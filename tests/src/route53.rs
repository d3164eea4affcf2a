//! A workload's routing in the emulator: hosted zones, weighted records, Route 53
//! `CLOUDWATCH_METRIC` health checks and the routing-switch alarms and metrics they
//! watch, seeded from a spec. Used by traffic-shifter's tests and the drill's world.
//!
//! moto keeps health checks but not their `AlarmIdentifier`, never evaluates alarms and
//! always reports health-check status as success: the seeded alarm starts `OK` with the
//! metric at 1, and whoever flips the switch moves the alarm (SetAlarmState) too.

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_cloudwatch as cw;
use aws_sdk_route53 as r53;
use aws_types::SdkConfig;
use lifeboat::WorkloadSpec;
use lifeboat::aws::for_region;

use crate::moto::MotoServer;

/// Route 53's API Region.
pub const ROUTE53_REGION: &str = "us-east-1";

/// The state reason the seeded alarms carry.
pub const SEED_REASON: &str = "seeded by the harness";

/// The zone a record lives in: the record name without its first label.
fn zone_name(record: &str) -> String {
    match record.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest.to_owned(),
        _ => record.to_owned(),
    }
}

/// Seeds the routing of `spec` and returns the spec rewritten with the real hosted
/// zone and health-check ids, and with alarm names and switch namespaces suffixed by
/// `tag` (tests share one moto server, whose CloudWatch state is per Region only).
///
/// For every Region with DNS records: a weighted `A` record per entry (TTL 60, a
/// TEST-NET-3 address, the Region's weight, its health check); a `CLOUDWATCH_METRIC`
/// health check on the Region's switch alarm (insufficient data: last known status);
/// the switch alarm in the switch's Region (`Minimum` < 1 over 10 s, missing data
/// ignored) with the metric at 1 two minutes ago and the alarm `OK`.
pub async fn seed(
    moto: &MotoServer,
    spec: &WorkloadSpec,
    tag: &str,
) -> anyhow::Result<WorkloadSpec> {
    let base = moto.sdk_config(ROUTE53_REGION).await;
    let route53 = r53::Client::new(&base);
    let mut spec = spec.clone();

    // Switches first: tagged names, alarm, metric at 1, alarm OK.
    for r in &mut spec.regions {
        let Some(s) = r.routing_switch.as_mut() else {
            continue;
        };
        s.alarm_name = format!("{}-{tag}", s.alarm_name);
        s.namespace = format!("{}/{tag}", s.namespace);
        let cw = cw::Client::new(&for_region(&base, &s.region));
        let dims = cw_dimensions(&s.dimensions);
        cw.put_metric_alarm()
            .alarm_name(&s.alarm_name)
            .namespace(&s.namespace)
            .metric_name(&s.metric_name)
            .set_dimensions(Some(dims.clone()))
            .statistic(cw::types::Statistic::Minimum)
            .period(10)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(cw::types::ComparisonOperator::LessThanThreshold)
            .treat_missing_data("ignore")
            .send()
            .await
            .with_context(|| format!("PutMetricAlarm {} in {}", s.alarm_name, s.region))?;
        let two_minutes_ago = lifeboat::UnixMillis::now().0.saturating_sub(120_000);
        cw.put_metric_data()
            .namespace(&s.namespace)
            .metric_data(
                cw::types::MetricDatum::builder()
                    .metric_name(&s.metric_name)
                    .set_dimensions(Some(dims))
                    .value(1.0)
                    .storage_resolution(1)
                    .timestamp(aws_smithy_types_datetime(two_minutes_ago))
                    .build(),
            )
            .send()
            .await
            .with_context(|| format!("PutMetricData {} in {}", s.namespace, s.region))?;
        cw.set_alarm_state()
            .alarm_name(&s.alarm_name)
            .state_value(cw::types::StateValue::Ok)
            .state_reason(SEED_REASON)
            .send()
            .await
            .with_context(|| format!("SetAlarmState {}", s.alarm_name))?;
    }

    // Hosted zones: one per placeholder id in the spec.
    let mut zones: BTreeMap<String, String> = BTreeMap::new();
    for r in &spec.regions {
        for d in &r.dns {
            if zones.contains_key(&d.hosted_zone_id) {
                continue;
            }
            let out = route53
                .create_hosted_zone()
                .name(zone_name(&d.record_name))
                .caller_reference(format!("{tag}-{}", d.hosted_zone_id))
                .send()
                .await
                .with_context(|| format!("CreateHostedZone for {}", d.record_name))?;
            let id = out
                .hosted_zone()
                .map(|z| z.id().trim_start_matches("/hostedzone/").to_owned())
                .context("CreateHostedZone without a zone")?;
            zones.insert(d.hosted_zone_id.clone(), id);
        }
    }

    // Health checks and weighted records.
    let mut batches: BTreeMap<String, Vec<r53::types::Change>> = BTreeMap::new();
    for (i, r) in spec.regions.iter_mut().enumerate() {
        let switch = r.routing_switch.clone();
        for (j, d) in r.dns.iter_mut().enumerate() {
            let zone = zones
                .get(&d.hosted_zone_id)
                .cloned()
                .context("zone seeded above")?;
            d.hosted_zone_id = zone.clone();
            let mut health_check_id = None;
            if let Some(s) = &switch {
                let config = r53::types::HealthCheckConfig::builder()
                    .r#type(r53::types::HealthCheckType::CloudwatchMetric)
                    .alarm_identifier(
                        r53::types::AlarmIdentifier::builder()
                            .region(r53::types::CloudWatchRegion::from(s.region.as_str()))
                            .name(&s.alarm_name)
                            .build()?,
                    )
                    .insufficient_data_health_status(
                        r53::types::InsufficientDataHealthStatus::LastKnownStatus,
                    )
                    .build()?;
                let out = route53
                    .create_health_check()
                    .caller_reference(format!("{tag}-{i}-{j}"))
                    .health_check_config(config)
                    .send()
                    .await
                    .with_context(|| format!("CreateHealthCheck for {}", r.region))?;
                health_check_id = out.health_check().map(|h| h.id().to_owned());
            }
            d.health_check_id = health_check_id.clone();
            let set = r53::types::ResourceRecordSet::builder()
                .name(&d.record_name)
                .r#type(r53::types::RrType::A)
                .set_set_identifier(d.set_identifier.clone())
                .weight(i64::from(r.weight))
                .ttl(60)
                .resource_records(
                    r53::types::ResourceRecord::builder()
                        .value(format!("203.0.113.{}", i + 10))
                        .build()?,
                )
                .set_health_check_id(health_check_id)
                .build()?;
            batches.entry(zone).or_default().push(
                r53::types::Change::builder()
                    .action(r53::types::ChangeAction::Create)
                    .resource_record_set(set)
                    .build()?,
            );
        }
    }
    for (zone, changes) in batches {
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
            .with_context(|| format!("creating records in {zone}"))?;
    }
    Ok(spec)
}

fn cw_dimensions(dims: &[lifeboat::model::Dimension]) -> Vec<cw::types::Dimension> {
    dims.iter()
        .map(|d| {
            cw::types::Dimension::builder()
                .name(&d.name)
                .value(&d.value)
                .build()
        })
        .collect()
}

fn aws_smithy_types_datetime(millis: u64) -> cw::primitives::DateTime {
    cw::primitives::DateTime::from_millis(i64::try_from(millis).unwrap_or(i64::MAX))
}

/// Weight of every weighted record named `name` in `zone`, by set identifier.
pub async fn weights(
    config: &SdkConfig,
    zone: &str,
    name: &str,
) -> anyhow::Result<BTreeMap<String, i64>> {
    let out = r53::Client::new(&for_region(config, ROUTE53_REGION))
        .list_resource_record_sets()
        .hosted_zone_id(zone)
        .send()
        .await
        .context("ListResourceRecordSets")?;
    Ok(out
        .resource_record_sets()
        .iter()
        .filter(|s| s.name().trim_end_matches('.') == name.trim_end_matches('.'))
        .filter_map(|s| Some((s.set_identifier()?.to_owned(), s.weight()?)))
        .collect())
}

/// An alarm's state and state reason in `region`.
pub async fn alarm(
    config: &SdkConfig,
    region: &str,
    name: &str,
) -> anyhow::Result<(String, String)> {
    let out = cw::Client::new(&for_region(config, region))
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .context("DescribeAlarms")?;
    let a = out
        .metric_alarms()
        .first()
        .with_context(|| format!("alarm {name} not in {region}"))?;
    Ok((
        a.state_value()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        a.state_reason().unwrap_or_default().to_owned(),
    ))
}

/// How many datapoints of `namespace` moto holds in `region` over the last 15 minutes
/// (any metric, any dimensions): a Region nothing was sent to has only the seed's.
pub async fn datapoints(
    config: &SdkConfig,
    region: &str,
    namespace: &str,
    metric_name: &str,
    dimensions: &[lifeboat::model::Dimension],
) -> anyhow::Result<usize> {
    let now = i64::try_from(lifeboat::UnixMillis::now().0 / 1000).unwrap_or(i64::MAX);
    let dims = cw_dimensions(dimensions);
    let out = cw::Client::new(&for_region(config, region))
        .get_metric_statistics()
        .namespace(namespace)
        .metric_name(metric_name)
        .set_dimensions(Some(dims))
        .start_time(cw::primitives::DateTime::from_secs(now - 15 * 60))
        .end_time(cw::primitives::DateTime::from_secs(now + 60))
        .period(1)
        .statistics(cw::types::Statistic::SampleCount)
        .send()
        .await
        .context("GetMetricStatistics")?;
    Ok(out
        .datapoints()
        .iter()
        .map(|d| d.sample_count().unwrap_or(0.0))
        .sum::<f64>() as usize)
}
