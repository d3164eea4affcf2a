//! Wiring only: see the library for the handler.
//!
//! Environment: `LIFEBOAT_TABLE` (required), `LIFEBOAT_PROBE_WINDOW_SECONDS` (optional,
//! default 0: one round per invocation), `LIFEBOAT_NOTIFICATION_TOPIC_ARN` (optional: the
//! SNS topic notifications go to beside EventBridge), `LIFEBOAT_DASHBOARD_MACHINES` (optional:
//! the stack's state machines as `label=ARN,...`; set, the scheduled run keeps each
//! workload's generated dashboard in step with its spec).

use std::time::Duration;

use health_probe::{HttpProber, Prober};
use lifeboat::DynamoStore;
use lifeboat::aws::RegionalClients;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = lifeboat::aws::load().await;
    let table = std::env::var("LIFEBOAT_TABLE").map_err(|_| "LIFEBOAT_TABLE is not set")?;
    let window = match std::env::var("LIFEBOAT_PROBE_WINDOW_SECONDS") {
        Ok(v) => Duration::from_secs(
            v.parse()
                .map_err(|_| "LIFEBOAT_PROBE_WINDOW_SECONDS is not a whole number of seconds")?,
        ),
        Err(_) => Duration::ZERO,
    };
    let home = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .ok_or("no AWS Region configured")?;
    let dashboard = match std::env::var(lifeboat::dashboard::ENV_MACHINES) {
        Ok(text) => Some(lifeboat::dashboard::Stack {
            region: home.clone(),
            state_machines: lifeboat::dashboard::parse_machines(&text)?,
        }),
        Err(_) => None,
    };
    let prober = Prober::new(
        DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table),
        HttpProber::new()?,
        aws_sdk_route53::Client::new(&config),
        RegionalClients::new(&config, aws_sdk_cloudwatch::Client::new),
        home,
        window,
    )
    .with_notifier(lifeboat::notify::Notifier::new(
        &config,
        std::env::var(lifeboat::notify::ENV_TOPIC).ok(),
    ))
    .with_dashboard(dashboard);
    let prober = &prober;
    lifeboat::serve(move |event| prober.handle(event)).await
}
