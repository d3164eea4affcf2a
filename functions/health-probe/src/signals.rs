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
use lifeboat::model::{DatabaseRef, RegionSpec};
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

/// S3 replication latency into a Region's buckets. S3 publishes `ReplicationLatency`
/// "in the Region of the destination bucket" (S3 User Guide, "Using S3 Replication
/// metrics", https://docs.aws.amazon.com/AmazonS3/latest/userguide/repl-metrics.html),
/// with the dimensions `SourceBucket`, `DestinationBucket` and `RuleId`, and only when
/// the replication rule has metrics on (S3 RTC turns them on). So it is read in the
/// Region replicated *into* — the surviving one in a failover, never the failed
/// source. The rule id is not in the spec, so the metrics are found with ListMetrics
/// by destination bucket; none found means not configured.
pub async fn s3_lag_metrics(
    client: &aws_sdk_cloudwatch::Client,
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
                region: region.region.clone(),
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

/// How far back lag datapoints are looked for (older ones are not even fetched).
const LAG_LOOKBACK: Duration = Duration::from_secs(600);

/// The oldest a lag datapoint may be and still be the lag now: three one-minute
/// periods (RDS publishes its metrics every minute, "Amazon CloudWatch metrics for
/// Amazon RDS", https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/rds-metrics.html;
/// a datapoint is stamped with the start of its period). The failover decision adds
/// its own bound on the probe round's age (failover-executor `decide::lag_fresh_within_ms`).
pub const LAG_DATAPOINT_MAX_AGE: Duration = Duration::from_secs(180);

fn to_datetime(t: UnixMillis) -> DateTime {
    DateTime::from_millis(i64::try_from(t.0).unwrap_or(i64::MAX))
}

/// The latest datapoint of one metric, if any in the lookback.
#[derive(Debug, Clone, PartialEq)]
pub struct LagPoint {
    /// Which metric, e.g. `ReplicaLag DBInstanceIdentifier=checkout-db-replica-euw1`.
    pub metric: String,
    /// Its latest value in seconds and that datapoint's timestamp.
    pub latest: Option<(f64, UnixMillis)>,
}

/// What the lag metrics of one kind (databases, or S3) say, all of them together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LagSeen {
    /// The worst lag in seconds, when every metric has a fresh, finite datapoint;
    /// negative when any replica reports replication not running (RDS: -1). `None`
    /// when any metric has no fresh datapoint: one unknown replica makes the lag
    /// unknown, never the others' value.
    pub seconds: Option<f64>,
    /// Why it is unknown, or remarks.
    pub notes: Vec<String>,
}

/// Combines the latest datapoints of every metric into one lag (pure; see
/// [`LagSeen::seconds`]). No metrics at all: `None` with no note.
pub fn combine(points: &[LagPoint], now: UnixMillis) -> LagSeen {
    let mut seen = LagSeen::default();
    let max_age = u64::try_from(LAG_DATAPOINT_MAX_AGE.as_millis()).unwrap_or(u64::MAX);
    let mut worst: Option<f64> = None;
    let mut negative: Option<f64> = None;
    let mut unknown = false;
    for p in points {
        match p.latest {
            // Not published (no replica, metrics off): unknown, and the usual case for
            // a Region nothing replicates into, so no note on every round.
            None => unknown = true,
            Some((v, at)) if now.since(at) > max_age => {
                unknown = true;
                seen.notes.push(format!(
                    "{}: latest datapoint ({v}) is {} s old, over {} s",
                    p.metric,
                    now.since(at) / 1000,
                    LAG_DATAPOINT_MAX_AGE.as_secs()
                ));
            }
            Some((v, _)) if !v.is_finite() => {
                unknown = true;
                seen.notes.push(format!("{}: not a number", p.metric));
            }
            Some((v, _)) if v < 0.0 => {
                negative = Some(negative.map_or(v, |n: f64| n.min(v)));
                seen.notes
                    .push(format!("{}: {v}, replication is not running", p.metric));
            }
            Some((v, _)) => worst = Some(worst.map_or(v, |w: f64| w.max(v))),
        }
    }
    seen.seconds = match (negative, unknown) {
        (Some(n), _) => Some(n),
        (None, true) => None,
        (None, false) => worst,
    };
    seen
}

/// Reads the latest datapoint of each metric (all in one Region) with GetMetricData
/// (up to 500 queries a call) and [`combine`]s them.
pub async fn read_lag(
    client: &aws_sdk_cloudwatch::Client,
    metrics: &[LagMetric],
    now: UnixMillis,
) -> Result<LagSeen, Error> {
    let mut points: Vec<LagPoint> = metrics
        .iter()
        .map(|m| LagPoint {
            metric: std::iter::once(m.name.to_owned())
                .chain(m.dimensions.iter().map(|(n, v)| format!("{n}={v}")))
                .collect::<Vec<_>>()
                .join(" "),
            latest: None,
        })
        .collect();
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
            let Some(point) = points.get_mut(chunk_no * 500 + index) else {
                continue;
            };
            // Latest first: the first value is the current lag, stamped with its period.
            if let (Some(v), Some(t)) = (result.values().first(), result.timestamps().first()) {
                let at = UnixMillis(u64::try_from(t.to_millis().unwrap_or(0)).unwrap_or(0));
                point.latest = Some((v * m.to_seconds, at));
            }
        }
    }
    Ok(combine(&points, now))
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
        let spec: lifeboat::WorkloadSpec =
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

    #[test]
    fn one_unknown_stale_or_stopped_replica_is_never_hidden_by_the_others() {
        let now = UnixMillis(1_800_000_000_000);
        let point = |metric: &str, latest: Option<(f64, u64)>| LagPoint {
            metric: metric.into(),
            latest: latest.map(|(v, age_ms)| (v, UnixMillis(now.0 - age_ms))),
        };
        assert_eq!(combine(&[], now), LagSeen::default());
        let fresh = combine(
            &[point("a", Some((2.0, 60_000))), point("b", Some((7.0, 0)))],
            now,
        );
        assert_eq!((fresh.seconds, fresh.notes.len()), (Some(7.0), 0));
        // A replica without a datapoint makes the lag unknown, not the other's 2 s.
        let missing = combine(&[point("a", Some((2.0, 0))), point("b", None)], now);
        assert_eq!(missing.seconds, None);
        // Without a note: that is also every round of a Region nothing replicates into.
        assert!(missing.notes.is_empty(), "{missing:?}");
        // Ten minutes old is not the lag now (the bound is three minutes).
        let stale = combine(&[point("a", Some((2.0, 181_000)))], now);
        assert_eq!(stale.seconds, None);
        assert!(stale.notes[0].contains("181 s old"), "{stale:?}");
        let edge = combine(&[point("a", Some((2.0, 180_000)))], now);
        assert_eq!(edge.seconds, Some(2.0));
        // -1 (replication not running) is kept, whatever the others say.
        let stopped = combine(
            &[
                point("a", Some((-1.0, 0))),
                point("b", Some((9.0, 0))),
                point("c", None),
            ],
            now,
        );
        assert_eq!(stopped.seconds, Some(-1.0));
        assert!(
            stopped.notes.iter().any(|n| n.contains("not running")),
            "{stopped:?}"
        );
        let nan = combine(&[point("a", Some((f64::NAN, 0)))], now);
        assert_eq!(nan.seconds, None);
    }
}
