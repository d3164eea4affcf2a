//! The thin AWS layer: CloudWatch switches (data plane, in the switch's Region) and
//! Route 53 records, health checks and changes (control plane, us-east-1). Every SDK
//! error goes through [`Error::from_sdk`]; missing resources are
//! [`Error::ResourceNotFound`]. Decisions are not made here.

use std::time::Duration;

use aws_sdk_cloudwatch as cw;
use aws_sdk_route53 as r53;
use aws_smithy_types::DateTime;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use lifeboat::model::RoutingSwitch;
use lifeboat::{Error, Result, UnixMillis};

use crate::plan::{ROUTE53_REGION, SwitchMove};

/// How long to wait for a Route 53 change to be `INSYNC`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsyncWait {
    /// Pause between GetChange calls.
    pub interval: Duration,
    /// GetChange calls before giving up with `VerificationFailed`.
    pub max_polls: u32,
}

impl Default for InsyncWait {
    fn default() -> Self {
        InsyncWait {
            interval: Duration::from_secs(2),
            max_polls: 30,
        }
    }
}

/// What a switch looks like now.
#[derive(Debug, Clone, PartialEq)]
pub struct SwitchState {
    /// Alarm state: `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub alarm_state: String,
    /// The alarm's state reason.
    pub alarm_reason: String,
    /// The value of the latest second with data, when that second holds one value
    /// only; `None` when there is no data in the last 15 minutes or it is ambiguous.
    pub metric_value: Option<f64>,
}

/// The state reason we write with SetAlarmState: it says the metric was written first.
pub fn our_reason(m: &SwitchMove, workload: &str, epoch: u64) -> String {
    format!(
        "Lifeboat: routing switch {} (metric {}) for workload {workload}, region {}, epoch {epoch}",
        m.desired(),
        m.value(),
        m.controls
    )
}

/// Whether a state reason is ours for this desired state.
pub fn is_our_reason(reason: &str, m: &SwitchMove) -> bool {
    reason.starts_with(&format!(
        "Lifeboat: routing switch {} (metric {})",
        m.desired(),
        m.value()
    ))
}

fn not_found(err_code: Option<&str>, codes: &[&str]) -> bool {
    err_code.is_some_and(|c| codes.contains(&c))
}

/// The alarm's state and the metric's latest value, read in the switch's Region.
pub async fn read_switch(client: &cw::Client, switch: &RoutingSwitch) -> Result<SwitchState> {
    let alarms = client
        .describe_alarms()
        .alarm_names(&switch.alarm_name)
        .send();
    let metric = latest_value(client, switch);
    let (alarms, metric) = tokio::join!(alarms, metric);
    let alarms = alarms.map_err(|e| Error::from_sdk("cloudwatch", "DescribeAlarms", e))?;
    let Some(alarm) = alarms
        .metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(switch.alarm_name.as_str()))
    else {
        return Err(Error::ResourceNotFound {
            kind: "CloudWatch alarm",
            id: switch.alarm_name.clone(),
            region: switch.region.clone(),
        });
    };
    Ok(SwitchState {
        alarm_state: alarm
            .state_value()
            .map_or("INSUFFICIENT_DATA", |s| s.as_str())
            .to_owned(),
        alarm_reason: alarm.state_reason().unwrap_or_default().to_owned(),
        metric_value: metric?,
    })
}

fn metric(switch: &RoutingSwitch) -> cw::types::Metric {
    let mut m = cw::types::Metric::builder()
        .namespace(&switch.namespace)
        .metric_name(&switch.metric_name);
    for d in &switch.dimensions {
        m = m.dimensions(
            cw::types::Dimension::builder()
                .name(&d.name)
                .value(&d.value)
                .build(),
        );
    }
    m.build()
}

/// The latest one-minute bucket's value, when its minimum and maximum agree. One
/// minute: the switch metric is standard resolution (see [`put_switch_metric`]), and
/// CloudWatch serves standard-resolution data at periods of 60 s and multiples.
async fn latest_value(client: &cw::Client, switch: &RoutingSwitch) -> Result<Option<f64>> {
    let now = UnixMillis::now();
    let secs = i64::try_from(now.0 / 1000).unwrap_or(i64::MAX);
    let query = |id: &str, stat: &str| {
        cw::types::MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                cw::types::MetricStat::builder()
                    .metric(metric(switch))
                    .period(60)
                    .stat(stat)
                    .build(),
            )
            .return_data(true)
            .build()
    };
    let out = client
        .get_metric_data()
        .metric_data_queries(query("lo", "Minimum"))
        .metric_data_queries(query("hi", "Maximum"))
        .start_time(DateTime::from_secs(secs - 15 * 60))
        .end_time(DateTime::from_secs(secs + 60))
        .scan_by(cw::types::ScanBy::TimestampDescending)
        .send()
        .await
        .map_err(|e| Error::from_sdk("cloudwatch", "GetMetricData", e))?;
    let first = |id: &str| {
        out.metric_data_results()
            .iter()
            .find(|r| r.id() == Some(id))
            .and_then(|r| {
                // Newest first; take the value at the newest timestamp.
                let newest = r
                    .timestamps()
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, t)| (t.secs(), t.subsec_nanos()))
                    .map(|(i, _)| i)?;
                r.values().get(newest).copied()
            })
    };
    Ok(match (first("lo"), first("hi")) {
        (Some(lo), Some(hi)) if lo == hi => Some(lo),
        _ => None,
    })
}

/// PutMetricData of the switch's desired value (`lifeboat::switch`: standard
/// resolution, the only kind a Route 53 health check's alarm may watch).
pub async fn put_switch_metric(client: &cw::Client, m: &SwitchMove) -> Result<()> {
    lifeboat::switch::put(client, &m.switch, m.on).await
}

/// SetAlarmState to the switch's desired state.
pub async fn set_switch_alarm(client: &cw::Client, m: &SwitchMove, reason: String) -> Result<()> {
    let state = if m.on {
        cw::types::StateValue::Ok
    } else {
        cw::types::StateValue::Alarm
    };
    client
        .set_alarm_state()
        .alarm_name(&m.switch.alarm_name)
        .state_value(state)
        .state_reason(reason)
        .send()
        .await
        .map_err(|e| {
            if not_found(e.code(), &["ResourceNotFound", "ResourceNotFoundException"]) {
                Error::ResourceNotFound {
                    kind: "CloudWatch alarm",
                    id: m.switch.alarm_name.clone(),
                    region: m.switch.region.clone(),
                }
            } else {
                Error::from_sdk("cloudwatch", "SetAlarmState", e)
            }
        })?;
    Ok(())
}

/// Route 53 names compare without the trailing dot and case.
pub fn same_name(a: &str, b: &str) -> bool {
    a.trim_end_matches('.')
        .eq_ignore_ascii_case(b.trim_end_matches('.'))
}

/// A Route 53 error on a hosted zone: `NoSuchHostedZone` is `ResourceNotFound`, the
/// rest is classified as usual.
fn zone_error<E>(
    zone: &str,
    operation: &'static str,
    err: r53::error::SdkError<E, r53::config::http::HttpResponse>,
) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    if not_found(err.code(), &["NoSuchHostedZone"]) {
        Error::ResourceNotFound {
            kind: "Route 53 hosted zone",
            id: zone.to_owned(),
            region: format!("Route 53 ({ROUTE53_REGION})"),
        }
    } else {
        Error::from_sdk("route53", operation, err)
    }
}

/// Every record set named `name` in `zone` (all types and set identifiers).
pub async fn read_records(
    client: &r53::Client,
    zone: &str,
    name: &str,
) -> Result<Vec<r53::types::ResourceRecordSet>> {
    let mut found = Vec::new();
    let mut start_name = name.to_owned();
    let mut start_type: Option<r53::types::RrType> = None;
    let mut start_id: Option<String> = None;
    // Bounded: 50 pages of 300 records is far more than one name has.
    for _ in 0..50 {
        let out = client
            .list_resource_record_sets()
            .hosted_zone_id(zone)
            .start_record_name(&start_name)
            .set_start_record_type(start_type.take())
            .set_start_record_identifier(start_id.take())
            .send()
            .await
            .map_err(|e| zone_error(zone, "ListResourceRecordSets", e))?;
        let mut past = false;
        for set in out.resource_record_sets() {
            if same_name(set.name(), name) {
                found.push(set.clone());
            } else {
                // Listed from our name on, sorted: another name ends the search.
                past = true;
                break;
            }
        }
        if past || !out.is_truncated() {
            break;
        }
        match out.next_record_name() {
            Some(n) => start_name = n.to_owned(),
            None => break,
        }
        start_type = out.next_record_type().cloned();
        start_id = out.next_record_identifier().map(str::to_owned);
    }
    Ok(found)
}

/// UPSERTs the record sets in one change batch; returns the change id.
pub async fn upsert(
    client: &r53::Client,
    zone: &str,
    sets: Vec<r53::types::ResourceRecordSet>,
    comment: String,
) -> Result<String> {
    let build = |e: aws_smithy_types::error::operation::BuildError| {
        Error::InvalidInput(format!("cannot build the change batch for {zone}: {e}"))
    };
    let mut changes = Vec::with_capacity(sets.len());
    for set in sets {
        changes.push(
            r53::types::Change::builder()
                .action(r53::types::ChangeAction::Upsert)
                .resource_record_set(set)
                .build()
                .map_err(build)?,
        );
    }
    let batch = r53::types::ChangeBatch::builder()
        .set_changes(Some(changes))
        .comment(comment)
        .build()
        .map_err(build)?;
    let out = client
        .change_resource_record_sets()
        .hosted_zone_id(zone)
        .change_batch(batch)
        .send()
        .await
        .map_err(|e| zone_error(zone, "ChangeResourceRecordSets", e))?;
    let info = out.change_info().ok_or_else(|| {
        Error::VerificationFailed(format!(
            "ChangeResourceRecordSets on {zone} answered without ChangeInfo"
        ))
    })?;
    Ok(info.id().to_owned())
}

/// Polls GetChange until `INSYNC`, at most `wait.max_polls` times; returns the polls.
pub async fn wait_insync(client: &r53::Client, change_id: &str, wait: InsyncWait) -> Result<u32> {
    let mut last = String::from("unknown");
    for poll in 1..=wait.max_polls.max(1) {
        let out = client
            .get_change()
            .id(change_id)
            .send()
            .await
            .map_err(|e| Error::from_sdk("route53", "GetChange", e))?;
        if let Some(info) = out.change_info() {
            if *info.status() == r53::types::ChangeStatus::Insync {
                return Ok(poll);
            }
            last = info.status().as_str().to_owned();
        }
        if poll < wait.max_polls && !wait.interval.is_zero() {
            tokio::time::sleep(wait.interval).await;
        }
    }
    Err(Error::VerificationFailed(format!(
        "Route 53 change {change_id} is still {last} after {} GetChange calls",
        wait.max_polls.max(1)
    )))
}

/// A health check as `verify` needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheckView {
    /// `CLOUDWATCH_METRIC`, `HTTPS`, ...
    pub kind: String,
    /// The watched alarm's Region and name, when the check names one.
    pub alarm: Option<(String, String)>,
    /// `InsufficientDataHealthStatus`.
    pub insufficient_data: Option<String>,
    /// Inverted.
    pub inverted: bool,
    /// Disabled.
    pub disabled: bool,
}

/// GetHealthCheck.
pub async fn read_health_check(client: &r53::Client, id: &str) -> Result<HealthCheckView> {
    let out = client
        .get_health_check()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| {
            if not_found(e.code(), &["NoSuchHealthCheck"]) {
                Error::ResourceNotFound {
                    kind: "Route 53 health check",
                    id: id.to_owned(),
                    region: format!("Route 53 ({ROUTE53_REGION})"),
                }
            } else {
                Error::from_sdk("route53", "GetHealthCheck", e)
            }
        })?;
    let Some(config) = out.health_check().and_then(|h| h.health_check_config()) else {
        return Err(Error::VerificationFailed(format!(
            "GetHealthCheck {id} answered without a configuration"
        )));
    };
    Ok(HealthCheckView {
        kind: config.r#type().as_str().to_owned(),
        alarm: config
            .alarm_identifier()
            .map(|a| (a.region().as_str().to_owned(), a.name().to_owned())),
        insufficient_data: config
            .insufficient_data_health_status()
            .map(|s| s.as_str().to_owned()),
        inverted: config.inverted().unwrap_or(false),
        disabled: config.disabled().unwrap_or(false),
    })
}

/// GetHealthCheckStatus: (observations reporting success, all observations).
pub async fn read_health_status(client: &r53::Client, id: &str) -> Result<(usize, usize)> {
    let out = client
        .get_health_check_status()
        .health_check_id(id)
        .send()
        .await
        .map_err(|e| Error::from_sdk("route53", "GetHealthCheckStatus", e))?;
    let obs = out.health_check_observations();
    let ok = obs
        .iter()
        .filter(|o| {
            o.status_report()
                .and_then(|r| r.status())
                .is_some_and(|s| s.starts_with("Success"))
        })
        .count();
    Ok((ok, obs.len()))
}

/// The alarm state alone (for `verify`), in the alarm's Region.
pub async fn read_alarm_state(client: &cw::Client, region: &str, name: &str) -> Result<String> {
    let out = client
        .describe_alarms()
        .alarm_names(name)
        .send()
        .await
        .map_err(|e| Error::from_sdk("cloudwatch", "DescribeAlarms", e))?;
    out.metric_alarms()
        .iter()
        .find(|a| a.alarm_name() == Some(name))
        .map(|a| {
            a.state_value()
                .map_or("INSUFFICIENT_DATA", |s| s.as_str())
                .to_owned()
        })
        .ok_or_else(|| Error::ResourceNotFound {
            kind: "CloudWatch alarm",
            id: name.to_owned(),
            region: region.to_owned(),
        })
}
