//! Facts about the emulator our design relies on (README, "Running without AWS"; docs/twin.md), checked so a moto
//! upgrade that changes them fails here first, with a clear name.

// Test code: a panic here is a failed test, which is what it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StandardUnit};
use harness::moto::MotoServer;

/// `aws-sdk-cloudwatch` is pinned to 1.99.0 (query protocol) because moto does not
/// answer the CBOR protocol of later releases. This is the call health-probe and
/// traffic-shifter depend on; if it breaks, the pin's reason has changed.
#[tokio::test]
async fn pinned_cloudwatch_client_puts_and_reads_metrics_in_moto() {
    let moto = MotoServer::shared();
    let config = moto.sdk_config("eu-west-1").await;
    let cw = aws_sdk_cloudwatch::Client::new(&config);
    let namespace = harness::table::unique_name("Lifeboat/Test");
    cw.put_metric_data()
        .namespace(&namespace)
        .metric_data(
            MetricDatum::builder()
                .metric_name("RegionEnabled")
                .dimensions(
                    Dimension::builder()
                        .name("Region")
                        .value("us-east-1")
                        .build(),
                )
                .value(0.0)
                .unit(StandardUnit::Count)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let listed = cw
        .list_metrics()
        .namespace(&namespace)
        .send()
        .await
        .unwrap();
    let names: Vec<_> = listed
        .metrics()
        .iter()
        .filter_map(|m| m.metric_name())
        .collect();
    assert_eq!(names, ["RegionEnabled"]);

    // State is per Region in moto, as in AWS.
    let other = aws_sdk_cloudwatch::Client::new(&moto.sdk_config("us-east-1").await);
    let listed = other
        .list_metrics()
        .namespace(&namespace)
        .send()
        .await
        .unwrap();
    assert!(listed.metrics().is_empty());
}
