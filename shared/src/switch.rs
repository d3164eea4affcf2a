//! Routing switches: the CloudWatch metric a switch alarm watches, written the one way
//! that holds on AWS (feature `cloudwatch`).
//!
//! A Route 53 `CLOUDWATCH_METRIC` health check follows the switch alarm, and an alarm
//! decides from its metric's data, not from who last set its state: `SetAlarmState` lasts
//! until the next evaluation (CloudWatch API reference, SetAlarmState). So a switch is
//! its metric. The metric is written at standard resolution (Route 53 does not support
//! alarms on high-resolution metrics: Route 53 API reference, `AlarmIdentifier`), and
//! the template's switch alarm keeps its state while no data arrives
//! (`TreatMissingData: ignore`), so a switch stays where Lifeboat put it even when
//! nothing writes for a while; health-probe re-asserts every recorded position each
//! round ([`crate::store::SwitchPosition`]) so the metric never goes stale either.

use aws_sdk_cloudwatch as cw;
use aws_smithy_types::DateTime;

use crate::model::RoutingSwitch;
use crate::{Error, Result, UnixMillis};

/// Standard resolution, in seconds.
pub const STORAGE_RESOLUTION: i32 = 60;

/// The metric value of a position: 1 = on (the Region may take traffic), 0 = off.
pub fn value(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// The datum that puts `switch` in position `on` at `at`.
pub fn datum(switch: &RoutingSwitch, on: bool, at: UnixMillis) -> cw::types::MetricDatum {
    let mut datum = cw::types::MetricDatum::builder()
        .metric_name(&switch.metric_name)
        .value(value(on))
        .storage_resolution(STORAGE_RESOLUTION)
        .timestamp(DateTime::from_millis(
            i64::try_from(at.0).unwrap_or(i64::MAX),
        ));
    for d in &switch.dimensions {
        datum = datum.dimensions(
            cw::types::Dimension::builder()
                .name(&d.name)
                .value(&d.value)
                .build(),
        );
    }
    datum.build()
}

/// PutMetricData of position `on` for `switch`, with a client of the switch's Region.
pub async fn put(client: &cw::Client, switch: &RoutingSwitch, on: bool) -> Result<()> {
    client
        .put_metric_data()
        .namespace(&switch.namespace)
        .metric_data(datum(switch, on, UnixMillis::now()))
        .send()
        .await
        .map_err(|e| Error::from_sdk("cloudwatch", "PutMetricData", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Dimension;

    #[test]
    fn a_position_is_a_standard_resolution_datum_on_the_switch_metric() {
        let switch = RoutingSwitch {
            region: "eu-west-1".into(),
            namespace: "Lifeboat/RoutingSwitch".into(),
            metric_name: "RegionEnabled".into(),
            dimensions: vec![Dimension {
                name: "Region".into(),
                value: "us-east-1".into(),
            }],
            alarm_name: "a".into(),
        };
        let off = datum(&switch, false, UnixMillis(1_000));
        assert_eq!(off.value(), Some(0.0));
        assert_eq!(off.storage_resolution(), Some(60));
        assert_eq!(off.metric_name(), Some("RegionEnabled"));
        assert_eq!(off.dimensions()[0].value(), Some("us-east-1"));
        assert_eq!(off.timestamp().map(|t| t.secs()), Some(1));
        assert_eq!(datum(&switch, true, UnixMillis(0)).value(), Some(1.0));
    }
}
