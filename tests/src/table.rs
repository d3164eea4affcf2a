//! The Lifeboat table in the emulator: one per test, so tests run in parallel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, StreamSpecification, StreamViewType,
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

/// The ordering an item carries, for last-writer-wins between two Regions' copies:
/// the spec's `version`, the lease's `epoch` (a released lease after a held one of the
/// same epoch), a health item's `observed_at`, a switch position's `set_at`;
/// append-only items (audit, runs) have none and are copied when absent.
fn order(item: &HashMap<String, AttributeValue>) -> Option<(u64, u64)> {
    let n = |name: &str| {
        item.get(name)
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let sk = item.get("sk").and_then(|v| v.as_s().ok())?;
    if sk == "SPEC" {
        Some((n("version")?, 0))
    } else if sk == "LEASE" {
        // Released after held at one epoch: a release removes the holder (a held item
        // may still carry the previous epoch's `released_at`).
        Some((n("epoch")?, u64::from(!item.contains_key("holder"))))
    } else if sk.starts_with("HEALTH#") {
        Some((n("observed_at")?, 0))
    } else if sk.starts_with("SWITCH#") {
        Some((n("set_at")?, 0))
    } else {
        None
    }
}

/// Stands in for global-table replication, which moto does not do: copies every item
/// of `table` in `from` to the same table in each of `to` where it is absent or older
/// (see [`order`]), as the replication of each write would have left it. Returns the
/// number of items copied.
pub async fn replicate(
    config: &SdkConfig,
    table: &str,
    from: &str,
    to: &[&str],
) -> anyhow::Result<usize> {
    let source = Client::new(&for_region(config, from));
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let out = source
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .with_context(|| format!("Scan {table} in {from}"))?;
        items.extend(out.items().iter().cloned());
        start = out.last_evaluated_key().cloned();
        if start.is_none() {
            break;
        }
    }
    let mut copied = 0;
    for region in to {
        let target = Client::new(&for_region(config, region));
        for item in &items {
            let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk")) else {
                continue;
            };
            let there = target
                .get_item()
                .table_name(table)
                .key("pk", pk.clone())
                .key("sk", sk.clone())
                .send()
                .await
                .with_context(|| format!("GetItem in {region}"))?;
            let newer = match there.item() {
                None => true,
                Some(old) => match (order(item), order(old)) {
                    (Some(a), Some(b)) => a > b,
                    _ => false,
                },
            };
            if newer {
                target
                    .put_item()
                    .table_name(table)
                    .set_item(Some(item.clone()))
                    .send()
                    .await
                    .with_context(|| format!("PutItem in {region}"))?;
                copied += 1;
            }
        }
    }
    Ok(copied)
}
