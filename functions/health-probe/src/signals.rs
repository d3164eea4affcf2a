//! What AWS says about a Region besides our own probes: Route 53 health-check status,
//! the states of the CloudWatch alarms the spec names, and replication lag from
//! CloudWatch metrics (RDS `ReplicaLag`, Aurora global `AuroraGlobalDBRPOLag`, S3
//! `ReplicationLatency` where replication metrics are on).
//!
//! Each reader returns what it saw as failures and notes for the round's
//! [`Observation`](crate::hysteresis::Observation); only the store and the metric
//! publication return errors.

use std::time::Duration;

use aws_sdk_cloudwatch::types::{
    AlarmType, Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat, ScanBy, StateValue,
};
use aws_sdk_route53::types::HealthCheckObservation;
use aws_smithy_types::DateTime;
use lifeboat::model::{DatabaseRef, RegionSpec, WorkloadSpec};
use lifeboat::{Error, UnixMillis};

/// Route 53 considers an endpoint healthy when more than this share (in percent) of its
/// checkers report it healthy.
const ROUTE53_HEALTHY_PERCENT: usize = 18;

/// What one reader saw.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Seen {
    /// Failed checks.
    pub failures: Vec<String>,
    /// Remarks that do not fail the round.
    pub notes: Vec<String>,
}

/// Whether Route 53's checkers say healthy: more than 18 % of them report `Success`.
/// `None` when there are no observations at all.
pub fn route53_healthy(observations: &[HealthCheckObservation]) -> Option<bool> {
    if observations.is_empty() {
        return None;
    }
    let ok = observations
        .iter()
        .filter(|o| {
            o.status_report()
                .and_then(|r| r.status())
                .is_some_and(|s| s.starts_with("Success"))
        })
        .count();
    Some(ok * 100 > observations.len() * ROUTE53_HEALTHY_PERCENT)
}

/// Reads the status of each Route 53 health check of the Region. A health check that
/// reports unhealthy fails the round; one that does not exist, or a Route 53 API that
/// does not answer (its control plane lives in us-east-1, not in the probed Region), is
/// a note: it says nothing about the Region itself.
///
/// A Region's record health check watches its routing switch: while the switch is off
/// (`switched_off`: Lifeboat recorded it off, or its alarm is in ALARM — an operator's
/// hand counts too), the check is unhealthy because of that decision, not
/// because of the Region, so it is a note too — else a Region switched off by a
/// failover could never be seen healthy again, and never be failed back.
pub async fn route53(
    client: &aws_sdk_route53::Client,
    region: &RegionSpec,
    switched_off: bool,
) -> Seen {
    let mut seen = Seen::default();
    for id in region
        .dns
        .iter()
        .filter_map(|d| d.health_check_id.as_deref())
    {
        match client
            .get_health_check_status()
            .health_check_id(id)
            .send()
            .await
        {
            Ok(out) => match route53_healthy(out.health_check_observations()) {
                Some(true) => {}
                Some(false) if switched_off => seen.notes.push(format!(
                    "Route 53 health check {id} reports unhealthy: the Region's routing switch is off"
                )),
                Some(false) => seen
                    .failures
                    .push(format!("Route 53 health check {id} reports unhealthy")),
                None => seen
                    .notes
                    .push(format!("Route 53 health check {id} has no observations")),
            },
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_no_such_health_check()) =>
            {
                seen.notes
                    .push(format!("Route 53 health check {id} does not exist"));
            }
            Err(e) => {
                let err = Error::from_sdk("route53", "GetHealthCheckStatus", e);
                tracing::warn!(health_check = id, error = %err.chain(), "Cannot read Route 53 health check");
                seen.notes
                    .push(format!("Route 53 health check {id} could not be read"));
            }
        }
    }
    seen
}

/// Reads the states of the alarms the Region lists, in the Region. An alarm in `ALARM`
/// fails the round; so does a CloudWatch that does not answer in that Region (after the
/// SDK's retries), since that is a symptom of the Region itself. An alarm that does not
/// exist is a note.
pub async fn alarms(client: &aws_sdk_cloudwatch::Client, region: &RegionSpec) -> Seen {
    let mut seen = Seen::default();
    for names in region.alarms.chunks(100) {
        let res = client
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .alarm_types(AlarmType::MetricAlarm)
            .alarm_types(AlarmType::CompositeAlarm)
            .send()
            .await;
        let out = match res {
            Ok(out) => out,
            Err(e) => {
                let err = Error::from_sdk("cloudwatch", "DescribeAlarms", e);
                tracing::warn!(region = %region.region, error = %err.chain(), "Cannot read alarms");
                seen.failures
                    .push(format!("cannot read alarms in {}", region.region));
                continue;
            }
        };
        let states: Vec<(&str, Option<&StateValue>)> = out
            .metric_alarms()
            .iter()
            .map(|a| (a.alarm_name().unwrap_or_default(), a.state_value()))
            .chain(
                out.composite_alarms()
                    .iter()
                    .map(|a| (a.alarm_name().unwrap_or_default(), a.state_value())),
            )
            .collect();
        for name in names {
            match states.iter().find(|(n, _)| n == name) {
                Some((_, Some(StateValue::Alarm))) => {
                    seen.failures.push(format!("alarm {name} is in ALARM"));
                }
                Some(_) => {}
                None => seen
                    .notes
                    .push(format!("alarm {name} does not exist in {}", region.region)),
            }
        }
    }
    seen
}

/// One lag metric to read: where, what, and how to turn its value into seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct LagMetric {
    /// Region whose CloudWatch holds the metric.
    pub region: String,
    /// Namespace.
    pub namespace: &'static str,
    /// Metric name.
    pub name: &'static str,
    /// Dimensions.
    pub dimensions: Vec<(String, String)>,
    /// Factor to seconds (Aurora reports milliseconds).
    pub to_seconds: f64,
}

/// The lag metrics of a Region's databases, in that Region: RDS `ReplicaLag` (seconds;
/// only replicas publish it) and Aurora global `AuroraGlobalDBRPOLag` (milliseconds;
/// only secondary clusters publish it).
pub fn database_lag_metrics(region: &RegionSpec) -> Vec<LagMetric> {
    region
        .databases
        .iter()
        .map(|db| match db {
            DatabaseRef::RdsInstance { instance_id, .. } => LagMetric {
                region: region.region.clone(),
                namespace: "AWS/RDS",
                name: "ReplicaLag",
                dimensions: vec![("DBInstanceIdentifier".into(), instance_id.clone())],
                to_seconds: 1.0,
            },
            DatabaseRef::AuroraGlobal { cluster_id, .. } => LagMetric {
                region: region.region.clone(),
                namespace: "AWS/RDS",
                name: "AuroraGlobalDBRPOLag",
                dimensions: vec![("DBClusterIdentifier".into(), cluster_id.clone())],
                to_seconds: 0.001,
            },
        })
        .collect()
}

/// S3 replication latency into a secondary Region's buckets: S3 publishes
/// `ReplicationLatency` in the *source* bucket's Region (the primary's) with the
/// dimensions `SourceBucket`, `DestinationBucket` and `RuleId`, and only when the
/// replication rule has metrics on. The rule id is not in the spec, so the metrics are
/// found with ListMetrics by destination bucket; none found means not configured.
pub async fn s3_lag_metrics(
    client: &aws_sdk_cloudwatch::Client,
    source_region: &str,
    region: &RegionSpec,
) -> Result<Vec<LagMetric>, Error> {
    let mut found = vec![];
    for bucket in &region.buckets {
        let out = client
            .list_metrics()
            .namespace("AWS/S3")
            .metric_name("ReplicationLatency")
            .dimensions(
                DimensionFilter::builder()
                    .name("DestinationBucket")
                    .value(&bucket.name)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| Error::from_sdk("cloudwatch", "ListMetrics", e))?;
        for m in out.metrics() {
            found.push(LagMetric {
                region: source_region.to_owned(),
                namespace: "AWS/S3",
                name: "ReplicationLatency",
                dimensions: m
                    .dimensions()
                    .iter()
                    .filter_map(|d| Some((d.name()?.to_owned(), d.value()?.to_owned())))
                    .collect(),
                to_seconds: 1.0,
            });
        }
    }
    Ok(found)
}

/// How far back lag datapoints count.
const LAG_LOOKBACK: Duration = Duration::from_secs(600);

fn to_datetime(t: UnixMillis) -> DateTime {
    DateTime::from_millis(i64::try_from(t.0).unwrap_or(i64::MAX))
}

/// Reads the latest datapoint of each metric (all in one Region) with one GetMetricData
/// call, and returns the worst lag in seconds (`None` when no metric has data).
pub async fn read_lag(
    client: &aws_sdk_cloudwatch::Client,
    metrics: &[LagMetric],
    now: UnixMillis,
) -> Result<Option<f64>, Error> {
    if metrics.is_empty() {
        return Ok(None);
    }
    let mut worst: Option<f64> = None;
    // GetMetricData takes up to 500 queries.
    for (chunk_no, chunk) in metrics.chunks(500).enumerate() {
        let queries: Vec<MetricDataQuery> = chunk
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let metric = Metric::builder()
                    .namespace(m.namespace)
                    .metric_name(m.name)
                    .set_dimensions(Some(
                        m.dimensions
                            .iter()
                            .map(|(n, v)| Dimension::builder().name(n).value(v).build())
                            .collect(),
                    ))
                    .build();
                MetricDataQuery::builder()
                    .id(format!("m{chunk_no}_{i}"))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(metric)
                            .period(60)
                            .stat("Maximum")
                            .build(),
                    )
                    .return_data(true)
                    .build()
            })
            .collect();
        let start = UnixMillis(
            now.0
                .saturating_sub(u64::try_from(LAG_LOOKBACK.as_millis()).unwrap_or(u64::MAX)),
        );
        let out = client
            .get_metric_data()
            .set_metric_data_queries(Some(queries))
            .start_time(to_datetime(start))
            .end_time(to_datetime(now.plus(Duration::from_secs(60))))
            .scan_by(ScanBy::TimestampDescending)
            .send()
            .await
            .map_err(|e| Error::from_sdk("cloudwatch", "GetMetricData", e))?;
        for result in out.metric_data_results() {
            let Some(index) = result
                .id()
                .and_then(|id| id.rsplit('_').next())
                .and_then(|i| i.parse::<usize>().ok())
            else {
                continue;
            };
            let Some(m) = chunk.get(index) else { continue };
            // Latest first: the first value is the current lag.
            if let Some(v) = result.values().first() {
                let secs = v * m.to_seconds;
                worst = Some(worst.map_or(secs, |w: f64| w.max(secs)));
            }
        }
    }
    Ok(worst)
}

/// The Region S3 replicates from: the primary's (the writer's) Region.
pub fn replication_source(spec: &WorkloadSpec) -> Option<&RegionSpec> {
    spec.primary()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_route53::types::StatusReport;

    fn obs(status: &str) -> HealthCheckObservation {
        HealthCheckObservation::builder()
            .status_report(StatusReport::builder().status(status).build())
            .build()
    }

    #[test]
    fn route53_is_healthy_when_more_than_18_percent_of_checkers_say_so() {
        assert_eq!(route53_healthy(&[]), None);
        let ok = || obs("Success: HTTP Status Code 200, OK");
        let bad = || obs("Failure: Connection timed out.");
        assert_eq!(route53_healthy(&[ok()]), Some(true));
        assert_eq!(route53_healthy(&[bad()]), Some(false));
        // 1 of 5 = 20 % > 18 %: healthy. 1 of 6 = 16.7 %: unhealthy.
        let mut five = vec![ok()];
        five.extend((0..4).map(|_| bad()));
        assert_eq!(route53_healthy(&five), Some(true));
        let mut six = vec![ok()];
        six.extend((0..5).map(|_| bad()));
        assert_eq!(route53_healthy(&six), Some(false));
    }

    #[test]
    fn database_lag_metrics_follow_the_engine() {
        let spec: WorkloadSpec =
            serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap();
        let mut eu = spec.region("eu-west-1").unwrap().clone();
        let m = database_lag_metrics(&eu);
        assert_eq!(m.len(), 1);
        assert_eq!((m[0].namespace, m[0].name), ("AWS/RDS", "ReplicaLag"));
        assert_eq!(
            m[0].dimensions,
            [(
                "DBInstanceIdentifier".to_owned(),
                "checkout-db-replica-euw1".to_owned()
            )]
        );
        eu.databases = vec![DatabaseRef::AuroraGlobal {
            global_cluster_id: "g".into(),
            cluster_id: "c-euw1".into(),
        }];
        let m = database_lag_metrics(&eu);
        assert_eq!(m[0].name, "AuroraGlobalDBRPOLag");
        assert!((m[0].to_seconds - 0.001).abs() < f64::EPSILON);
    }
}
