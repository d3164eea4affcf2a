//! Wiring only: see the library for the handler.

use cost_reporter::request::{CurLocation, Defaults, OutputLocation};
use cost_reporter::{DEFAULT_TAG_KEY, Reporter};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = lifeboat::aws::load().await;
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let custom_s3_endpoint =
        config.endpoint_url().is_some() || env("AWS_ENDPOINT_URL_S3").is_some();
    let defaults = Defaults {
        cur: env("CUR_BUCKET").map(|bucket| CurLocation {
            bucket,
            prefix: env("CUR_PREFIX").unwrap_or_default(),
        }),
        output: env("REPORT_BUCKET").map(|bucket| OutputLocation {
            bucket,
            prefix: env("REPORT_PREFIX").unwrap_or_default(),
        }),
        workload: env("WORKLOAD"),
        skip_bad_rows: env("SKIP_BAD_ROWS").is_some_and(|v| v == "true"),
    };
    let reporter = Reporter {
        s3: cost_reporter::s3_client(&config, custom_s3_endpoint),
        cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
        store: env("LIFEBOAT_TABLE")
            .map(|table| lifeboat::DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table)),
        defaults,
        tag_key: env("WORKLOAD_TAG_KEY").unwrap_or_else(|| DEFAULT_TAG_KEY.to_owned()),
        // Set by the Lambda runtime (MB): bounds the parts read at once.
        memory_bytes: env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
            .and_then(|mb| mb.parse::<u64>().ok())
            .map(|mb| mb * 1024 * 1024),
    };
    let reporter = &reporter;
    lifeboat::serve(move |event| reporter.handle(event)).await
}
