//! The metrics the failover alarms watch, per workload and Region, namespace `Lifeboat`:
//! `RegionHealthy` (1 healthy or not yet known, 0 unhealthy), `ProbeLatencyMs` (slowest
//! endpoint of the round) and `ReplicationLagSeconds` (worst lag into the Region, when
//! one is reported). Dimensions `Workload` and `Region`. One PutMetricData per round.
//!
//! `RegionHealthy` is high resolution (StorageResolution 1): the failover alarms use
//! 10-s periods, and "if you specify a period of 10, 20, or 30 for a metric that does
//! not have sub-minute resolution ... the alarm might often lapse into
//! INSUFFICIENT_DATA status" (CloudWatch API reference, PutMetricAlarm `Period`). No
//! Route 53 health check watches it (Route 53 refuses alarms on high-resolution
//! metrics; the routing switches stay standard: `lifeboat::switch`).

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use aws_smithy_types::DateTime;
use lifeboat::Error;
use lifeboat::store::{HealthRecord, Verdict};

/// The namespace.
pub use lifeboat::metrics::NAMESPACE;

/// StorageResolution of `RegionHealthy`: 1 s (high resolution).
pub const HEALTH_RESOLUTION: i32 = 1;

/// PutMetricData takes at most 1000 datums per call.
const MAX_DATUMS: usize = 1000;

/// The datums of one round of one workload.
pub fn datums(workload: &str, records: &[HealthRecord]) -> Vec<MetricDatum> {
    let mut out = Vec::with_capacity(records.len() * 3);
    for r in records {
        let dims = vec![
            Dimension::builder()
                .name("Workload")
                .value(workload)
                .build(),
            Dimension::builder().name("Region").value(&r.region).build(),
        ];
        let at = DateTime::from_millis(i64::try_from(r.observed_at.0).unwrap_or(i64::MAX));
        let datum = |name: &str, value: f64, unit: StandardUnit| {
            MetricDatum::builder()
                .metric_name(name)
                .set_dimensions(Some(dims.clone()))
                .value(value)
                .unit(unit)
                .timestamp(at)
                .build()
        };
        let healthy = if r.verdict == Verdict::Unhealthy {
            0.0
        } else {
            1.0
        };
        let mut health = datum(
            lifeboat::metrics::REGION_HEALTHY,
            healthy,
            StandardUnit::Count,
        );
        health.storage_resolution = Some(HEALTH_RESOLUTION);
        out.push(health);
        if let Some(ms) = r.probe_latency_ms {
            // Latencies are far below 2^53 ms.
            #[allow(clippy::cast_precision_loss)]
            out.push(datum(
                "ProbeLatencyMs",
                ms as f64,
                StandardUnit::Milliseconds,
            ));
        }
        if let Some(lag) = r.replication_lag_seconds {
            out.push(datum(
                lifeboat::metrics::REPLICATION_LAG_SECONDS,
                lag,
                StandardUnit::Seconds,
            ));
        }
    }
    out
}

/// Publishes datums with as few PutMetricData calls as the API allows (one per round
/// for any workload of fewer than ~330 Regions).
pub async fn publish(
    client: &aws_sdk_cloudwatch::Client,
    datums: Vec<MetricDatum>,
) -> Result<(), Error> {
    for chunk in datums.chunks(MAX_DATUMS) {
        client
            .put_metric_data()
            .namespace(NAMESPACE)
            .set_metric_data(Some(chunk.to_vec()))
            .send()
            .await
            .map_err(|e| Error::from_sdk("cloudwatch", "PutMetricData", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use lifeboat::UnixMillis;

    fn record(region: &str, verdict: Verdict, lag: Option<f64>) -> HealthRecord {
        HealthRecord {
            region: region.into(),
            verdict,
            consecutive_failures: 0,
            consecutive_successes: 1,
            probe_latency_ms: Some(12),
            replication_lag_seconds: lag,
            lag_grade: None,
            observed_at: UnixMillis(1_795_464_293_123),
            detail: None,
        }
    }

    #[test]
    fn one_datum_per_metric_per_region() {
        let d = datums(
            "checkout",
            &[
                record("us-east-1", Verdict::Healthy, None),
                record("eu-west-1", Verdict::Unhealthy, Some(7.5)),
                record("ap-southeast-1", Verdict::Unknown, None),
            ],
        );
        let names: Vec<(&str, f64)> = d
            .iter()
            .map(|m| (m.metric_name().unwrap(), m.value().unwrap()))
            .collect();
        assert_eq!(
            names,
            [
                ("RegionHealthy", 1.0),
                ("ProbeLatencyMs", 12.0),
                ("RegionHealthy", 0.0),
                ("ProbeLatencyMs", 12.0),
                ("ReplicationLagSeconds", 7.5),
                ("RegionHealthy", 1.0),
                ("ProbeLatencyMs", 12.0),
            ]
        );
        let dims: Vec<(&str, &str)> = d[2]
            .dimensions()
            .iter()
            .map(|x| (x.name().unwrap(), x.value().unwrap()))
            .collect();
        assert_eq!(dims, [("Workload", "checkout"), ("Region", "eu-west-1")]);
        assert_eq!(d[0].unit(), Some(&StandardUnit::Count));
        // The failover alarms' 10-s periods need high-resolution data; the rest stays
        // standard (cheaper, and nothing alarms on it at sub-minute periods).
        assert_eq!(d[0].storage_resolution(), Some(1));
        assert_eq!(d[1].storage_resolution(), None);
        assert_eq!(d[1].unit(), Some(&StandardUnit::Milliseconds));
        assert_eq!(d[4].unit(), Some(&StandardUnit::Seconds));
    }
}
