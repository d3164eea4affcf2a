//! Wiring only: see the library for the handler.

use std::sync::Arc;

use lifeboat::DynamoStore;
use lifeboat::aws::RegionalClients;
use replica_promoter::{Clients, Promoter, TABLE_ENV};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let table = std::env::var(TABLE_ENV).map_err(|e| format!("{TABLE_ENV}: {e}"))?;
    let config = lifeboat::aws::load().await;
    // The table's replica in each Region, from the one configuration, built on first
    // use: this Region's, and the arbiter Region's a request names.
    let dynamo = RegionalClients::new(&config, aws_sdk_dynamodb::Client::new);
    let home = dynamo
        .home()
        .unwrap_or_else(|| aws_sdk_dynamodb::Client::new(&config));
    let store = DynamoStore::new(home, table.clone());
    let promoter = Arc::new(
        Promoter::new(store, Clients::new(&config))
            .with_regional_stores(move |region| DynamoStore::new(dynamo.get(region), &table)),
    );
    lifeboat::serve(move |event| {
        let promoter = Arc::clone(&promoter);
        async move { promoter.handle(event).await }
    })
    .await
}
