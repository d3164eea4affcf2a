//! The thin CloudWatch layer: one GetMetricData per measurement (errors, requests,
//! p95, p99 of one slot over one window) and DescribeAlarms for the gate alarms, in the
//! Region deployed. Every SDK error goes through [`Error::from_sdk`]. No decisions here.

use aws_sdk_cloudwatch as cw;
use aws_smithy_types::DateTime;
use lifeboat::model::{DeployMetrics, DeploySlot, Dimension, GateValues, MetricQuery};
use lifeboat::{Error, Result, UnixMillis};

use crate::decide;

/// The period that covers a window in one bucket: 1, 5, 10, 30 or a multiple of 60 s
/// (what CloudWatch accepts).
pub fn period_for(window_seconds: u64) -> i32 {
    let p = match window_seconds {
        0..=1 => 1,
        2..=5 => 5,
        6..=10 => 10,
        11..=30 => 30,
        w => w.div_ceil(60) * 60,
    };
    i32::try_from(p).unwrap_or(i32::MAX - 59)
}

fn dims(q: &MetricQuery, slot: &DeploySlot) -> Vec<cw::types::Dimension> {
    q.dimensions
        .iter()
        .chain(slot.dimensions.iter())
        .map(|d: &Dimension| {
            cw::types::Dimension::builder()
                .name(&d.name)
                .value(&d.value)
                .build()
        })
        .collect()
}

fn query(
    id: &str,
    q: &MetricQuery,
    slot: &DeploySlot,
    default_stat: &str,
    period: i32,
) -> cw::types::MetricDataQuery {
    cw::types::MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            cw::types::MetricStat::builder()
                .metric(
                    cw::types::Metric::builder()
                        .namespace(&q.namespace)
                        .metric_name(&q.metric_name)
                        .set_dimensions(Some(dims(q, slot)))
                        .build(),
                )
                .period(period)
                .stat(q.stat.as_deref().unwrap_or(default_stat))
                .build(),
        )
        .return_data(true)
        .build()
}

fn to_datetime(t: UnixMillis) -> DateTime {
    DateTime::from_millis(i64::try_from(t.0).unwrap_or(i64::MAX))
}

/// The slot's errors, requests, p95 and p99 over `[end - window, end]`.
///
/// Counts add up over the buckets; latencies take the worst bucket.
pub async fn measure(
    client: &cw::Client,
    metrics: &DeployMetrics,
    slot: &DeploySlot,
    end: UnixMillis,
    window_seconds: u64,
) -> Result<GateValues> {
    let period = period_for(window_seconds);
    let start = UnixMillis(end.0.saturating_sub(window_seconds.saturating_mul(1000)));
    // CloudWatch (and moto) truncate the end time to the second and exclude it: end at
    // the next whole second so the last moments of the bake count.
    let end = UnixMillis((end.0 / 1000 + 1) * 1000);
    let mut req = client
        .get_metric_data()
        .metric_data_queries(query("errors", &metrics.errors, slot, "Sum", period))
        .metric_data_queries(query("requests", &metrics.requests, slot, "Sum", period))
        .metric_data_queries(query("p95", &metrics.latency_p95, slot, "p95", period))
        .start_time(to_datetime(start))
        .end_time(to_datetime(end));
    if let Some(q) = &metrics.latency_p99 {
        req = req.metric_data_queries(query("p99", q, slot, "p99", period));
    }
    let mut values: std::collections::HashMap<String, Vec<f64>> = Default::default();
    let mut token: Option<String> = None;
    // Bounded: four queries over one or two buckets fit one page; a few more at most.
    for _ in 0..10 {
        let out = req
            .clone()
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| Error::from_sdk("cloudwatch", "GetMetricData", e))?;
        for r in out.metric_data_results() {
            if let Some(id) = r.id() {
                values
                    .entry(id.to_owned())
                    .or_default()
                    .extend(r.values().iter().copied().filter(|v| v.is_finite()));
            }
        }
        match out.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    let sum = |id: &str| {
        values
            .get(id)
            .filter(|v| !v.is_empty())
            .map(|v| v.iter().sum::<f64>())
    };
    let worst = |id: &str| {
        values
            .get(id)
            .and_then(|v| v.iter().copied().reduce(f64::max))
    };
    let errors = sum("errors");
    let requests = sum("requests");
    Ok(GateValues {
        requests,
        errors,
        error_rate: decide::error_rate(errors, requests),
        p95_ms: worst("p95"),
        p99_ms: worst("p99"),
        alarms_in_alarm: Vec::new(),
    })
}

/// The named alarms in `ALARM`; a name that is not an alarm in the Region is
/// [`Error::ResourceNotFound`].
pub async fn alarms_in_alarm(
    client: &cw::Client,
    region: &str,
    names: &[String],
) -> Result<Vec<String>> {
    let mut firing = Vec::new();
    for chunk in names.chunks(100) {
        let out = client
            .describe_alarms()
            .set_alarm_names(Some(chunk.to_vec()))
            .alarm_types(cw::types::AlarmType::MetricAlarm)
            .alarm_types(cw::types::AlarmType::CompositeAlarm)
            .send()
            .await
            .map_err(|e| Error::from_sdk("cloudwatch", "DescribeAlarms", e))?;
        for name in chunk {
            let metric = out
                .metric_alarms()
                .iter()
                .find(|a| a.alarm_name() == Some(name.as_str()))
                .map(|a| a.state_value().cloned());
            let composite = out
                .composite_alarms()
                .iter()
                .find(|a| a.alarm_name() == Some(name.as_str()))
                .map(|a| a.state_value().cloned());
            match metric.or(composite) {
                None => {
                    return Err(Error::ResourceNotFound {
                        kind: "CloudWatch alarm",
                        id: name.clone(),
                        region: region.to_owned(),
                    });
                }
                Some(Some(cw::types::StateValue::Alarm)) => firing.push(name.clone()),
                Some(_) => {}
            }
        }
    }
    Ok(firing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_bucket_covers_the_window() {
        assert_eq!(period_for(1), 1);
        assert_eq!(period_for(3), 5);
        assert_eq!(period_for(20), 30);
        assert_eq!(period_for(60), 60);
        assert_eq!(period_for(900), 900);
        assert_eq!(period_for(901), 960);
    }
}
