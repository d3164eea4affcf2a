//! A workload's routing in the emulator: the Lifeboat stacks of `template.yaml`
//! deployed into the twin (routing-switch alarms, Route 53 `CLOUDWATCH_METRIC` health
//! checks, rules, permissions: [`crate::stacks`]), then what the user's own stack has:
//! the hosted zone and its weighted records, each on its Region's health check.
//! Used by traffic-shifter's tests and the drill's world.
//!
//! The twin's alarms evaluate themselves and its Route 53 health checks follow their
//! alarm's data, as on AWS: a switch is its metric. The seed puts every switch on as
//! an operator does after deploying (the metric at 1, and the alarm confirmed `OK` so a
//! test need not wait for an evaluation).

use std::collections::BTreeMap;

use anyhow::Context;
use aws_sdk_cloudwatch as cw;
use aws_sdk_route53 as r53;
use aws_types::SdkConfig;
use lifeboat::WorkloadSpec;
use lifeboat::aws::for_region;

use crate::moto::MotoServer;
use crate::stacks::{self, Deployed, StackInputs};
use crate::twin::Twin;

/// Route 53's API Region.
pub const ROUTE53_REGION: &str = "us-east-1";

/// The state reason of the alarms the seed confirms `OK`.
pub const SEED_REASON: &str = "seeded by the harness";

/// The zone a record lives in: the record name without its first label.
fn zone_name(record: &str) -> String {
    match record.split_once('.') {
        Some((_, rest)) if rest.contains('.') => rest.to_owned(),
        _ => record.to_owned(),
    }
}

/// The workload id the stacks of `tag` are deployed for: tests share one server, whose
/// CloudWatch is per Region only, so each test's alarms and switch dimensions carry it.
pub fn workload_id(spec: &WorkloadSpec, tag: &str) -> String {
    if tag.is_empty() {
        spec.workload.clone()
    } else {
        format!("{}-{tag}", spec.workload)
    }
}

/// Seeds the routing of `spec` with stacks that have no prober (see [`seed_world`]).
pub async fn seed(
    moto: &MotoServer,
    spec: &WorkloadSpec,
    tag: &str,
) -> anyhow::Result<WorkloadSpec> {
    let inputs = StackInputs {
        table: format!("lifeboat-{tag}"),
        stack_name: Some(format!("lifeboat-{tag}")),
        ..StackInputs::default()
    };
    let addresses = BTreeMap::new();
    Ok(seed_world(moto, spec, tag, &inputs, &addresses).await?.0)
}

/// [`seed`], with each Region's records answering its address in `addresses` (the
/// twin's workload endpoints), so what DNS answers maps back to Regions.
pub async fn seed_with_addresses(
    moto: &MotoServer,
    spec: &WorkloadSpec,
    tag: &str,
    addresses: &BTreeMap<String, String>,
) -> anyhow::Result<WorkloadSpec> {
    let inputs = StackInputs {
        table: format!("lifeboat-{tag}"),
        stack_name: Some(format!("lifeboat-{tag}")),
        ..StackInputs::default()
    };
    Ok(seed_world(moto, spec, tag, &inputs, addresses).await?.0)
}

/// Deploys the stacks for `spec` (with `inputs`), puts every switch on, and creates the
/// hosted zones and weighted records. Returns the spec rewritten with the real hosted
/// zone and health-check ids and the deployed switch names, and what was deployed.
///
/// For every Region with DNS records: a weighted `A` record per entry (TTL 60, the
/// Region's address in `addresses`, else a TEST-NET-3 one; the Region's weight; its
/// switch's health check).
pub async fn seed_world(
    moto: &MotoServer,
    spec: &WorkloadSpec,
    tag: &str,
    inputs: &StackInputs,
    addresses: &BTreeMap<String, String>,
) -> anyhow::Result<(WorkloadSpec, Deployed)> {
    let base = moto.sdk_config(ROUTE53_REGION).await;
    let route53 = r53::Client::new(&base);
    let twin = Twin::new(moto);
    let mut spec = spec.clone();
    let id = workload_id(&spec, tag);

    // The spec names the switches the stacks create (template.yaml: alarm
    // `lifeboat-<WorkloadId>-<Region>-switch`, dimensions Workload and Region).
    for r in &mut spec.regions {
        let Some(s) = r.routing_switch.as_mut() else {
            continue;
        };
        s.alarm_name = format!("lifeboat-{id}-{}-switch", r.region);
        for d in &mut s.dimensions {
            if d.name == "Workload" {
                d.value.clone_from(&id);
            }
        }
    }
    let mut for_stacks = spec.clone();
    for_stacks.workload.clone_from(&id);
    let deployed = stacks::deploy(&twin, &for_stacks, inputs).await?;

    // Every switch on: its metric at 1 and its alarm confirmed OK.
    for r in &spec.regions {
        let Some(s) = r.routing_switch.as_ref() else {
            continue;
        };
        let cw = cw::Client::new(&for_region(&base, &s.region));
        lifeboat::switch::put(&cw, s, true)
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

    // Weighted records, each on its Region's health check (from the home stack).
    let mut batches: BTreeMap<String, Vec<r53::types::Change>> = BTreeMap::new();
    for (i, r) in spec.regions.iter_mut().enumerate() {
        let health_check_id = deployed.health_checks.get(&r.region).cloned();
        let address = addresses
            .get(&r.region)
            .cloned()
            .unwrap_or_else(|| format!("203.0.113.{}", i + 10));
        for d in &mut r.dns {
            let zone = zones
                .get(&d.hosted_zone_id)
                .cloned()
                .context("zone seeded above")?;
            d.hosted_zone_id = zone.clone();
            d.health_check_id = health_check_id.clone();
            let set = r53::types::ResourceRecordSet::builder()
                .name(&d.record_name)
                .r#type(r53::types::RrType::A)
                .set_set_identifier(d.set_identifier.clone())
                .weight(i64::from(r.weight))
                .ttl(60)
                .resource_records(
                    r53::types::ResourceRecord::builder()
                        .value(&address)
                        .build()?,
                )
                .set_health_check_id(health_check_id.clone())
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
    Ok((spec, deployed))
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
