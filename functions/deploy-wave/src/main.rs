//! Wiring only: one SDK configuration, clients built once, env read once; see the
//! library for the handler.

// The handler's future (seven steps over the DynamoDB store and CloudWatch) is deeper
// than rustc's default layout query limit of 128.
#![recursion_limit = "256"]

use std::sync::Arc;

use deploy_wave::{Deployer, ENV_TABLE};
use lifeboat::DynamoStore;
use lifeboat::aws::RegionalClients;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let config = lifeboat::aws::load().await;
    let table = std::env::var(ENV_TABLE).map_err(|_| format!("{ENV_TABLE} is not set"))?;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table.clone());
    let cloudwatch = RegionalClients::new(&config, aws_sdk_cloudwatch::Client::new);
    let home = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .ok_or("the SDK configuration has no Region")?;
    // The lease lives in the lease Region's replica, whichever Region this stack is in.
    let replicas = RegionalClients::new(&config, aws_sdk_dynamodb::Client::new);
    let deployer = Arc::new(
        Deployer::new(store, cloudwatch)
            .with_replicas(home, move |region| {
                DynamoStore::new(replicas.get(region), table.clone())
            })
            .with_notifier(lifeboat::notify::Notifier::new(
                &config,
                std::env::var(lifeboat::notify::ENV_TOPIC).ok(),
            )),
    );
    lifeboat::serve(move |event| {
        let deployer = Arc::clone(&deployer);
        async move { deployer.handle(event).await }
    })
    .await
}
