//! DynamoDB adapter of the [`Store`] port.
//!
//! Items are native DynamoDB maps (readable in the console), converted with
//! `serde_dynamo`; reads go through `serde_path_to_error` so a bad item is reported with
//! its key and the path of the bad field. Every conditional write that fails is
//! classified by reading the item again (strongly consistent), which gives the same
//! answer on DynamoDB and on moto whatever each returns with the failure.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Put, ReturnValue, TransactWriteItem,
};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::{
    AuditEvent, Fence, HealthRecord, LEASE_SK, Lease, LeasePurpose, LeaseRequest, RunRecord,
    SPEC_SK, Store, SwitchPosition, event_sk, health_sk, run_sk, switch_sk, workload_pk,
};
use crate::error::{Error, Result};
use crate::model::WorkloadSpec;
use crate::time::UnixMillis;

type Item = HashMap<String, AttributeValue>;

const SERVICE: &str = "dynamodb";

/// The table through the DynamoDB API. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn to_item<T: Serialize>(value: &T, pk: &str, sk: &str, kind: &str) -> Result<Item> {
    let mut item: Item = serde_dynamo::to_item(value)
        .map_err(|e| Error::InvalidInput(format!("cannot encode {kind} item: {e}")))?;
    item.insert("pk".into(), s(pk));
    item.insert("sk".into(), s(sk));
    item.insert("item_type".into(), s(kind));
    Ok(item)
}

fn key_of(item: &Item) -> String {
    let part = |k: &str| match item.get(k) {
        Some(AttributeValue::S(v)) => v.clone(),
        _ => "?".to_owned(),
    };
    format!("{}/{}", part("pk"), part("sk"))
}

/// Parses an item, naming its key and the bad field when it does not parse.
pub(crate) fn parse<T: DeserializeOwned>(item: Item) -> Result<T> {
    let key = key_of(&item);
    let av: serde_dynamo::AttributeValue = AttributeValue::M(item).into();
    serde_path_to_error::deserialize(serde_dynamo::Deserializer::from_attribute_value(av)).map_err(
        |e| Error::CorruptItem {
            key,
            field: e.path().to_string(),
            reason: e.inner().to_string(),
        },
    )
}

fn built<T>(operation: &'static str, r: std::result::Result<T, BuildError>) -> Result<T> {
    r.map_err(|e| Error::DependencyFailure {
        service: SERVICE,
        operation,
        source: Box::new(e),
    })
}

fn conditional_failed_put(err: &SdkError<PutItemError, HttpResponse>) -> bool {
    err.as_service_error()
        .is_some_and(PutItemError::is_conditional_check_failed_exception)
}

fn conditional_failed_update(err: &SdkError<UpdateItemError, HttpResponse>) -> bool {
    err.as_service_error()
        .is_some_and(UpdateItemError::is_conditional_check_failed_exception)
}

/// A write's own condition expression with its placeholders.
struct Condition {
    expr: &'static str,
    names: &'static [(&'static str, &'static str)],
    values: Vec<(&'static str, AttributeValue)>,
}

type ConditionParts = (
    Option<String>,
    Option<HashMap<String, String>>,
    Option<HashMap<String, AttributeValue>>,
);

impl Condition {
    fn into_parts(self) -> ConditionParts {
        let names = self
            .names
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let values: HashMap<String, AttributeValue> = self
            .values
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        (
            Some(self.expr.to_owned()),
            Some(names),
            (!values.is_empty()).then_some(values),
        )
    }
}

/// The LEASE item as stored: the epoch survives release.
#[derive(Debug, serde::Deserialize)]
struct LeaseItem {
    epoch: u64,
    #[serde(default)]
    holder: Option<String>,
    #[serde(default)]
    purpose: Option<LeasePurpose>,
    #[serde(default)]
    acquired_at: Option<UnixMillis>,
    #[serde(default)]
    expires_at: Option<UnixMillis>,
}

impl LeaseItem {
    fn held(self, workload: &str) -> Option<Lease> {
        Some(Lease {
            workload: workload.to_owned(),
            holder: self.holder?,
            purpose: self.purpose?,
            epoch: self.epoch,
            acquired_at: self.acquired_at?,
            expires_at: self.expires_at?,
        })
    }

    fn describe(&self) -> String {
        match &self.holder {
            Some(h) => format!("lease is at epoch {} held by `{h}`", self.epoch),
            None => format!("lease is at epoch {} and released", self.epoch),
        }
    }
}

impl DynamoStore {
    /// The write that makes `req.holder` the lease's holder with the next epoch, for
    /// `req.ttl` from `now`; the caller adds when it may happen (its condition).
    fn lease_update(
        &self,
        req: &LeaseRequest,
        purpose: AttributeValue,
        now: UnixMillis,
    ) -> aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(workload_pk(&req.workload)))
            .key("sk", s(LEASE_SK))
            .update_expression(
                "SET #holder = :holder, #purpose = :purpose, #acquired = :now, #expires = :expires, #item_type = :item_type ADD #epoch :one",
            )
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_names("#purpose", "purpose")
            .expression_attribute_names("#acquired", "acquired_at")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#item_type", "item_type")
            .expression_attribute_names("#epoch", "epoch")
            .expression_attribute_values(":holder", s(&req.holder))
            .expression_attribute_values(":purpose", purpose)
            .expression_attribute_values(":now", n(now.0))
            .expression_attribute_values(":expires", n(now.plus(req.ttl).0))
            .expression_attribute_values(":item_type", s("lease"))
            .expression_attribute_values(":one", n(1))
    }

    /// A store over `table` (the table must exist).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table.into(),
        }
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get_item(&self, pk: &str, sk: &str) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| Error::from_sdk(SERVICE, "GetItem", e))?;
        Ok(out.item)
    }

    async fn lease_item(&self, workload: &str) -> Result<Option<LeaseItem>> {
        match self.get_item(&workload_pk(workload), LEASE_SK).await? {
            Some(item) => parse(item).map(Some),
            None => Ok(None),
        }
    }

    async fn spec_version(&self, workload: &str) -> Result<Option<u64>> {
        #[derive(serde::Deserialize)]
        struct Version {
            version: u64,
        }
        match self.get_item(&workload_pk(workload), SPEC_SK).await? {
            Some(item) => parse::<Version>(item).map(|v| Some(v.version)),
            None => Ok(None),
        }
    }

    async fn query_prefix<T: DeserializeOwned>(
        &self,
        workload: &str,
        prefix: &str,
    ) -> Result<Vec<T>> {
        let items: Vec<Item> = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":pk", s(workload_pk(workload)))
            .expression_attribute_values(":prefix", s(prefix))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk(SERVICE, "Query", e))?;
        items.into_iter().map(parse).collect()
    }

    /// The condition every fenced write carries: the lease is held at exactly `epoch` by
    /// exactly `holder`.
    fn fence_check(&self, workload: &str, fence: &Fence) -> Result<TransactWriteItem> {
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(workload_pk(workload)))
            .key("sk", s(LEASE_SK))
            .condition_expression("#epoch = :epoch AND #holder = :holder")
            .expression_attribute_names("#epoch", "epoch")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_values(":epoch", n(fence.epoch))
            .expression_attribute_values(":holder", s(&fence.holder))
            .build();
        Ok(TransactWriteItem::builder()
            .condition_check(built("TransactWriteItems", check)?)
            .build())
    }

    async fn stale_epoch(&self, workload: &str, presented: u64) -> Result<Error> {
        let current = match self.lease_item(workload).await? {
            Some(item) => item.describe(),
            None => "no lease was ever taken".to_owned(),
        };
        Ok(Error::StaleEpoch {
            workload: workload.to_owned(),
            presented,
            current,
        })
    }

    /// Whether the lease is held at `fence.epoch` by `fence.holder` right now.
    async fn fence_holds(&self, workload: &str, fence: &Fence) -> Result<bool> {
        Ok(self
            .lease_item(workload)
            .await?
            .is_some_and(|l| l.epoch == fence.epoch && l.holder.as_deref() == Some(&fence.holder)))
    }

    /// Puts `item` under `condition`, and under the fence when there is one.
    /// Returns `Ok(false)` when the write's own condition (not the fence) failed.
    async fn put_conditional(
        &self,
        workload: &str,
        item: Item,
        condition: Option<Condition>,
        fence: Option<Fence>,
    ) -> Result<bool> {
        let (expr, names, values) = match condition {
            Some(c) => c.into_parts(),
            None => (None, None, None),
        };
        match fence {
            None => {
                let res = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .set_condition_expression(expr)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .send()
                    .await;
                match res {
                    Ok(_) => Ok(true),
                    Err(e) if conditional_failed_put(&e) => Ok(false),
                    Err(e) => Err(Error::from_sdk(SERVICE, "PutItem", e)),
                }
            }
            Some(fence) => {
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .set_condition_expression(expr)
                    .set_expression_attribute_names(names)
                    .set_expression_attribute_values(values)
                    .build();
                let res = self
                    .client
                    .transact_write_items()
                    .transact_items(self.fence_check(workload, &fence)?)
                    .transact_items(
                        TransactWriteItem::builder()
                            .put(built("TransactWriteItems", put)?)
                            .build(),
                    )
                    .send()
                    .await;
                match res {
                    Ok(_) => Ok(true),
                    Err(e)
                        if e.as_service_error()
                            .is_some_and(|se| se.is_transaction_canceled_exception()) =>
                    {
                        if self.fence_holds(workload, &fence).await? {
                            Ok(false)
                        } else {
                            Err(self.stale_epoch(workload, fence.epoch).await?)
                        }
                    }
                    Err(e) => Err(Error::from_sdk(SERVICE, "TransactWriteItems", e)),
                }
            }
        }
    }

    async fn write_spec(&self, spec: &WorkloadSpec, fence: Option<Fence>) -> Result<WorkloadSpec> {
        spec.check()?;
        let mut next = spec.clone();
        next.version = spec.version + 1;
        let pk = workload_pk(&spec.workload);
        let item = to_item(&next, &pk, SPEC_SK, "spec")?;
        let condition = if spec.version == 0 {
            Condition {
                expr: "attribute_not_exists(#pk)",
                names: &[("#pk", "pk")],
                values: vec![],
            }
        } else {
            Condition {
                expr: "#v = :v",
                names: &[("#v", "version")],
                values: vec![(":v", n(spec.version))],
            }
        };
        if self
            .put_conditional(&spec.workload, item, Some(condition), fence)
            .await?
        {
            return Ok(next);
        }
        match self.spec_version(&spec.workload).await? {
            None => Err(Error::WorkloadNotFound(spec.workload.clone())),
            Some(found) => Err(Error::ConcurrentModification {
                workload: spec.workload.clone(),
                expected: spec.version,
                found,
            }),
        }
    }
}

impl Store for DynamoStore {
    async fn list_workloads(&self) -> Result<Vec<String>> {
        let items: Vec<Item> = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("#sk = :spec")
            .projection_expression("#pk, #sk")
            .expression_attribute_names("#pk", "pk")
            .expression_attribute_names("#sk", "sk")
            .expression_attribute_values(":spec", s(SPEC_SK))
            .consistent_read(true)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(|e| Error::from_sdk(SERVICE, "Scan", e))?;
        let mut ids: Vec<String> = items
            .iter()
            .filter_map(|item| match item.get("pk") {
                Some(AttributeValue::S(pk)) => pk.strip_prefix("WORKLOAD#").map(str::to_owned),
                _ => None,
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn get_spec(&self, workload: &str) -> Result<WorkloadSpec> {
        match self.get_item(&workload_pk(workload), SPEC_SK).await? {
            Some(item) => parse(item),
            None => Err(Error::WorkloadNotFound(workload.to_owned())),
        }
    }

    async fn create_spec(&self, spec: &WorkloadSpec) -> Result<WorkloadSpec> {
        if spec.version != 0 {
            return Err(Error::InvalidInput(format!(
                "a new spec starts at version 0, not {}",
                spec.version
            )));
        }
        self.write_spec(spec, None).await
    }

    async fn put_spec(&self, spec: &WorkloadSpec, fence: Option<Fence>) -> Result<WorkloadSpec> {
        if spec.version == 0 {
            return Err(Error::InvalidInput(
                "put_spec replaces a stored spec: give the version you read (create_spec makes new ones)".into(),
            ));
        }
        self.write_spec(spec, fence).await
    }

    async fn get_lease(&self, workload: &str) -> Result<Option<Lease>> {
        Ok(self
            .lease_item(workload)
            .await?
            .and_then(|l| l.held(workload)))
    }

    async fn acquire_lease(&self, req: &LeaseRequest, now: UnixMillis) -> Result<Lease> {
        if req.holder.is_empty() || req.ttl.is_zero() {
            return Err(Error::InvalidInput(
                "a lease needs a holder and a ttl above zero".into(),
            ));
        }
        let purpose = serde_dynamo::to_attribute_value::<_, AttributeValue>(req.purpose)
            .map_err(|e| Error::InvalidInput(format!("cannot encode purpose: {e}")))?;
        // Two tries: the lease may be released between our failed write and our read.
        for _ in 0..2 {
            let res = self
                .lease_update(req, purpose.clone(), now)
                .condition_expression("attribute_not_exists(#holder) OR #expires <= :now")
                .return_values(ReturnValue::AllNew)
                .send()
                .await;
            match res {
                Ok(out) => {
                    let item: LeaseItem = parse(out.attributes.unwrap_or_default())?;
                    return item.held(&req.workload).ok_or_else(|| Error::CorruptItem {
                        key: format!("{}/{LEASE_SK}", workload_pk(&req.workload)),
                        field: "holder".into(),
                        reason: "missing right after acquisition".into(),
                    });
                }
                Err(e) if conditional_failed_update(&e) => {
                    match self.get_lease(&req.workload).await? {
                        Some(l) if l.holder == req.holder && !l.is_expired(now) => return Ok(l),
                        Some(l) if !l.is_expired(now) => {
                            return Err(l.held());
                        }
                        // Released or expired meanwhile: try again.
                        _ => continue,
                    }
                }
                Err(e) => return Err(Error::from_sdk(SERVICE, "UpdateItem", e)),
            }
        }
        Err(Error::ConcurrentModification {
            workload: req.workload.clone(),
            expected: 0,
            found: 0,
        })
    }

    async fn take_over_lease(
        &self,
        req: &LeaseRequest,
        from: &Lease,
        now: UnixMillis,
    ) -> Result<Lease> {
        if req.holder.is_empty() || req.ttl.is_zero() {
            return Err(Error::InvalidInput(
                "a lease needs a holder and a ttl above zero".into(),
            ));
        }
        if req.workload != from.workload {
            return Err(Error::InvalidInput(format!(
                "take_over_lease: the lease of `{}` cannot be taken over for `{}`",
                from.workload, req.workload
            )));
        }
        let purpose = serde_dynamo::to_attribute_value::<_, AttributeValue>(req.purpose)
            .map_err(|e| Error::InvalidInput(format!("cannot encode purpose: {e}")))?;
        let res = self
            .lease_update(req, purpose, now)
            .condition_expression("#holder = :from_holder AND #epoch = :from_epoch")
            .expression_attribute_values(":from_holder", s(&from.holder))
            .expression_attribute_values(":from_epoch", n(from.epoch))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item: LeaseItem = parse(out.attributes.unwrap_or_default())?;
                item.held(&req.workload).ok_or_else(|| Error::CorruptItem {
                    key: format!("{}/{LEASE_SK}", workload_pk(&req.workload)),
                    field: "holder".into(),
                    reason: "missing right after a take-over".into(),
                })
            }
            Err(e) if conditional_failed_update(&e) => match self.get_lease(&req.workload).await? {
                Some(l) if l.holder == req.holder => Ok(l),
                Some(l) => Err(l.held()),
                // Released meanwhile: take it the ordinary way.
                None => self.acquire_lease(req, now).await,
            },
            Err(e) => Err(Error::from_sdk(SERVICE, "UpdateItem", e)),
        }
    }

    async fn renew_lease(
        &self,
        workload: &str,
        holder: &str,
        epoch: u64,
        ttl: Duration,
        now: UnixMillis,
    ) -> Result<Lease> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(workload_pk(workload)))
            .key("sk", s(LEASE_SK))
            .update_expression("SET #expires = :expires")
            .condition_expression("#holder = :holder AND #epoch = :epoch")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_names("#epoch", "epoch")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":epoch", n(epoch))
            .expression_attribute_values(":expires", n(now.plus(ttl).0))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match res {
            Ok(out) => {
                let item: LeaseItem = parse(out.attributes.unwrap_or_default())?;
                item.held(workload)
                    .ok_or_else(|| Error::InvalidInput("lease vanished during renewal".into()))
            }
            Err(e) if conditional_failed_update(&e) => {
                Err(self.stale_epoch(workload, epoch).await?)
            }
            Err(e) => Err(Error::from_sdk(SERVICE, "UpdateItem", e)),
        }
    }

    async fn release_lease(
        &self,
        workload: &str,
        holder: &str,
        epoch: u64,
        now: UnixMillis,
    ) -> Result<bool> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(workload_pk(workload)))
            .key("sk", s(LEASE_SK))
            .update_expression("REMOVE #holder, #purpose, #acquired, #expires SET #released = :now")
            .condition_expression("#holder = :holder AND #epoch = :epoch")
            .expression_attribute_names("#holder", "holder")
            .expression_attribute_names("#purpose", "purpose")
            .expression_attribute_names("#acquired", "acquired_at")
            .expression_attribute_names("#expires", "expires_at")
            .expression_attribute_names("#released", "released_at")
            .expression_attribute_names("#epoch", "epoch")
            .expression_attribute_values(":holder", s(holder))
            .expression_attribute_values(":epoch", n(epoch))
            .expression_attribute_values(":now", n(now.0))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if conditional_failed_update(&e) => match self.lease_item(workload).await? {
                Some(l) if l.epoch == epoch && l.holder.is_none() => Ok(false),
                _ => Err(self.stale_epoch(workload, epoch).await?),
            },
            Err(e) => Err(Error::from_sdk(SERVICE, "UpdateItem", e)),
        }
    }

    async fn put_health(&self, workload: &str, health: &HealthRecord) -> Result<bool> {
        let pk = workload_pk(workload);
        let item = to_item(health, &pk, &health_sk(&health.region), "health")?;
        let condition = Condition {
            expr: "attribute_not_exists(#sk) OR #observed < :observed",
            names: &[("#sk", "sk"), ("#observed", "observed_at")],
            values: vec![(":observed", n(health.observed_at.0))],
        };
        self.put_conditional(workload, item, Some(condition), None)
            .await
    }

    async fn get_health(&self, workload: &str) -> Result<Vec<HealthRecord>> {
        self.query_prefix(workload, "HEALTH#").await
    }

    async fn append_event(&self, workload: &str, event: &AuditEvent) -> Result<bool> {
        if event.id.is_empty() {
            return Err(Error::InvalidInput("an audit event needs an id".into()));
        }
        let pk = workload_pk(workload);
        let item = to_item(event, &pk, &event_sk(event.at, &event.id), "event")?;
        let condition = Condition {
            expr: "attribute_not_exists(#sk)",
            names: &[("#sk", "sk")],
            values: vec![],
        };
        self.put_conditional(workload, item, Some(condition), None)
            .await
    }

    async fn list_events(&self, workload: &str) -> Result<Vec<AuditEvent>> {
        self.query_prefix(workload, "EVENT#").await
    }

    async fn put_run(&self, workload: &str, run: &RunRecord, fence: Option<Fence>) -> Result<()> {
        if run.id.is_empty() {
            return Err(Error::InvalidInput("a run record needs an id".into()));
        }
        let pk = workload_pk(workload);
        let item = to_item(run, &pk, &run_sk(run.started_at, &run.id), "run")?;
        let epoch = fence.as_ref().map_or(0, |f| f.epoch);
        if self.put_conditional(workload, item, None, fence).await? {
            Ok(())
        } else {
            // No condition of its own: a cancelled transaction with the fence holding
            // means a concurrent transaction on the same items.
            Err(Error::ConcurrentModification {
                workload: workload.to_owned(),
                expected: epoch,
                found: epoch,
            })
        }
    }

    async fn list_runs(&self, workload: &str) -> Result<Vec<RunRecord>> {
        self.query_prefix(workload, "RUN#").await
    }

    async fn put_switch(
        &self,
        workload: &str,
        position: &SwitchPosition,
        fence: Fence,
    ) -> Result<()> {
        let pk = workload_pk(workload);
        let item = to_item(position, &pk, &switch_sk(&position.region), "switch")?;
        let epoch = fence.epoch;
        if self
            .put_conditional(workload, item, None, Some(fence))
            .await?
        {
            Ok(())
        } else {
            Err(Error::ConcurrentModification {
                workload: workload.to_owned(),
                expected: epoch,
                found: epoch,
            })
        }
    }

    async fn get_switches(&self, workload: &str) -> Result<Vec<SwitchPosition>> {
        self.query_prefix(workload, "SWITCH#").await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_item_names_its_key_and_field() {
        let item: Item = HashMap::from([
            ("pk".to_owned(), s("WORKLOAD#w")),
            ("sk".to_owned(), s("HEALTH#us-east-1")),
            ("region".to_owned(), s("us-east-1")),
            ("verdict".to_owned(), s("sideways")),
            ("consecutive_failures".to_owned(), n(1)),
            ("consecutive_successes".to_owned(), n(0)),
            ("observed_at".to_owned(), n(5)),
        ]);
        let err = parse::<HealthRecord>(item).unwrap_err();
        let Error::CorruptItem { key, field, reason } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(key, "WORKLOAD#w/HEALTH#us-east-1");
        assert_eq!(field, "verdict");
        assert!(reason.contains("sideways"), "{reason}");
    }

    #[test]
    fn items_round_trip_through_attribute_values() {
        let ev = AuditEvent {
            at: UnixMillis(1_795_464_293_123),
            id: "e1".into(),
            actor: "arn:aws:states:us-east-1:123456789012:execution:failover:x".into(),
            action: "verdict_changed".into(),
            reason: "3 failed rounds".into(),
            before: Some(serde_json::json!({"verdict": "healthy", "lag": 1.5})),
            after: Some(serde_json::json!({"verdict": "unhealthy", "n": [1, 2]})),
        };
        let item = to_item(&ev, "WORKLOAD#w", "EVENT#x", "event").unwrap();
        assert_eq!(item.get("item_type"), Some(&s("event")));
        let back: AuditEvent = parse(item).unwrap();
        assert_eq!(back, ev);
    }
}
