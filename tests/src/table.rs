//! The Lifeboat table in the emulator: one per test, so tests run in parallel.

use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use aws_types::SdkConfig;
use lifeboat::aws::for_region;

/// A table name no other test in any process uses.
pub fn unique_name(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        lifeboat::UnixMillis::now().0,
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Creates the Lifeboat table (`pk`/`sk` strings, on-demand, streams on as a global
/// table needs) in the config's Region and a table of the same name in each of
/// `replicas`. moto ignores global-table replicas and replicates nothing, so each
/// Region's table is independent there: that is as far as the emulator goes.
pub async fn create(config: &SdkConfig, name: &str, replicas: &[&str]) -> anyhow::Result<()> {
    let home = config
        .region()
        .map(|r| r.as_ref().to_owned())
        .context("config without a Region")?;
    for region in std::iter::once(home.as_str()).chain(replicas.iter().copied()) {
        let client = Client::new(&for_region(config, region));
        create_one(&client, name)
            .await
            .with_context(|| format!("creating table {name} in {region}"))?;
    }
    Ok(())
}

async fn create_one(client: &Client, name: &str) -> anyhow::Result<()> {
    let key = |attr: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(attr)
            .key_type(kind)
            .build()
    };
    let def = |attr: &str| {
        AttributeDefinition::builder()
            .attribute_name(attr)
            .attribute_type(ScalarAttributeType::S)
            .build()
    };
    client
        .create_table()
        .table_name(name)
        .key_schema(key("pk", KeyType::Hash)?)
        .key_schema(key("sk", KeyType::Range)?)
        .attribute_definitions(def("pk")?)
        .attribute_definitions(def("sk")?)
        .billing_mode(BillingMode::PayPerRequest)
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()?,
        )
        .send()
        .await?;
    Ok(())
}
