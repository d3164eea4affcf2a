//! Wiring only: one SDK configuration, clients built once, env read once; see the
//! library for the handler.

use std::sync::Arc;

use lifeboat::DynamoStore;
use lifeboat::aws::{RegionalClients, for_region};
use traffic_shifter::{
    ENV_INSYNC_INTERVAL_MS, ENV_INSYNC_MAX_POLLS, ENV_TABLE, Shifter, insync_from_env,
    plan::ROUTE53_REGION,
};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = lifeboat::aws::load().await;
    let table = std::env::var(ENV_TABLE).map_err(|_| format!("{ENV_TABLE} is not set"))?;
    let insync = insync_from_env(
        std::env::var(ENV_INSYNC_INTERVAL_MS).ok(),
        std::env::var(ENV_INSYNC_MAX_POLLS).ok(),
    )?;
    // The table's replica in each Region, from the one configuration, built on first
    // use: this Region's, and the arbiter Region's a request names.
    let dynamo = RegionalClients::new(&config, aws_sdk_dynamodb::Client::new);
    let home = dynamo
        .home()
        .unwrap_or_else(|| aws_sdk_dynamodb::Client::new(&config));
    let store = DynamoStore::new(home, table.clone());
    let cloudwatch = RegionalClients::new(&config, aws_sdk_cloudwatch::Client::new);
    let route53 = aws_sdk_route53::Client::new(&for_region(&config, ROUTE53_REGION));
    // The resolver the `resolve` step asks: LIFEBOAT_DNS_RESOLVER, else resolv.conf's.
    // None found is the step's ResourceNotFound, not a failure to start: every other
    // step works without it.
    let resolver = traffic_shifter::resolve::resolver(
        std::env::var(traffic_shifter::resolve::ENV_RESOLVER)
            .ok()
            .as_deref(),
        std::fs::read_to_string("/etc/resolv.conf").ok().as_deref(),
    );
    let resolver = match resolver {
        Ok(r) => Some(r),
        Err(e) if e.name() == lifeboat::ErrorName::InvalidInput => return Err(e.into()),
        Err(_) => None,
    };
    let shifter = Arc::new(
        Shifter::new(store, cloudwatch, route53, insync)
            .with_regional_stores(move |region| DynamoStore::new(dynamo.get(region), &table))
            .with_resolver(resolver),
    );
    lifeboat::serve(move |event| {
        let shifter = Arc::clone(&shifter);
        async move { shifter.handle(event).await }
    })
    .await
}
