//! Wiring only: see the library for the handler.

use std::sync::Arc;

use lifeboat::DynamoStore;
use replica_promoter::{Clients, Promoter, TABLE_ENV};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    let table = std::env::var(TABLE_ENV).map_err(|e| format!("{TABLE_ENV}: {e}"))?;
    let config = lifeboat::aws::load().await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&config), table);
    let promoter = Arc::new(Promoter::new(store, Clients::new(&config)));
    lifeboat::serve(move |event| {
        let promoter = Arc::clone(&promoter);
        async move { promoter.handle(event).await }
    })
    .await
}
