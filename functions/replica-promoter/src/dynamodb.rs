//! DynamoDB global tables: nothing to promote, only verify the target's replica.

use lifeboat::{Error, Store};

use crate::decide;
use crate::{Ctx, Outcome, Promoter, ResourceOutcome, outcome};

impl<S: Store> Promoter<S> {
    pub(crate) async fn dynamodb_verify(&self, ctx: &Ctx<'_, S>) -> Result<Outcome, Error> {
        let region = ctx.target.region.as_str();
        if ctx.target.dynamodb_tables.is_empty() {
            return Err(Error::InvalidInput(format!(
                "target_region: `{region}` has no dynamodb_tables in the spec, so dynamodb_verify has nothing to check"
            )));
        }
        let client = self.clients.dynamodb.get(region);
        let mut resources = Vec::new();
        let mut done = true;
        let mut first_bad = None;
        for table in &ctx.target.dynamodb_tables {
            let res = client.describe_table().table_name(table).send().await;
            let out = match res {
                Ok(out) => out,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|se| se.is_resource_not_found_exception()) =>
                {
                    return Err(Error::ResourceNotFound {
                        kind: "DynamoDB table",
                        id: table.clone(),
                        region: region.to_owned(),
                    });
                }
                Err(e) => return Err(Error::from_sdk("dynamodb", "DescribeTable", e)),
            };
            let desc = out.table();
            let status = desc
                .and_then(|t| t.table_status())
                .map_or("UNKNOWN", |s| s.as_str())
                .to_owned();
            let replicas: Vec<String> = desc
                .map(|t| t.replicas())
                .unwrap_or_default()
                .iter()
                .map(|r| {
                    format!(
                        "{}={}",
                        r.region_name().unwrap_or("?"),
                        r.replica_status().map_or("UNKNOWN", |s| s.as_str())
                    )
                })
                .collect();
            if !decide::table_active(&status) {
                done = false;
                first_bad.get_or_insert_with(|| status.clone());
            }
            resources.push(ResourceOutcome {
                kind: "dynamodb_table".into(),
                id: table.clone(),
                region: region.to_owned(),
                action: "checked".into(),
                status,
                detail: (!replicas.is_empty())
                    .then(|| format!("replicas: {}", replicas.join(", "))),
            });
        }
        let status = first_bad.unwrap_or_else(|| "ACTIVE".to_owned());
        Ok(outcome(ctx.req, done, status, true, resources))
    }
}
