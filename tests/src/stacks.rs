//! The workload's Lifeboat stacks, deployed into the twin from `template.yaml` itself
//! (`POST /_twin/stack`, `scripts/twin/stack.py`): one stack per Region of the spec, as
//! `sam deploy --region <r>` would, with the parameters the README's deployment section
//! derives from the spec. Every alarm, Route 53 health check, EventBridge rule and Lambda
//! permission of the world comes from here, never from a copy in the harness.
//!
//! The template places the switches the way the example spec does: the home stack (the
//! spec's first Region) hosts every other Region's switch, and the second Region hosts
//! the home Region's. [`deploy`] refuses a spec that places them otherwise.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use lifeboat::WorkloadSpec;
use serde_json::{Map, Value, json};

use crate::twin::Twin;

/// What to deploy beyond what the spec says.
#[derive(Debug, Clone, Default)]
pub struct StackInputs {
    /// The Lifeboat table's name (`TableName`).
    pub table: String,
    /// The prober's Region (`ProbeRegion`): its stack runs the probe schedule and every
    /// Region's health alarm. `None`: a Region outside the workload, so no stack has
    /// them (tests of one function that do not want the prober's alarm).
    pub probe_region: Option<String>,
    /// Further parameters, named inputs printed by the caller (e.g. `ProbeWindowSeconds`).
    pub parameters: Vec<(String, String)>,
    /// Named local overrides by Region: `{"<LogicalId>": {"<Property>": value}}` for the
    /// stack of that Region (the twin refuses one its stack does not have).
    pub overrides: BTreeMap<String, Value>,
    /// Stack name (`lifeboat` unless tests share one server).
    pub stack_name: Option<String>,
}

/// The stacks as deployed.
#[derive(Debug, Clone, Default)]
pub struct Deployed {
    /// Region → the deploy's answer (resources, skipped, overrides, functions).
    pub stacks: BTreeMap<String, Value>,
    /// Region → the id of the Route 53 health check on its switch (home stack).
    pub health_checks: BTreeMap<String, String>,
    /// Region → the parameters its stack got.
    pub parameters: BTreeMap<String, Map<String, Value>>,
}

/// The Region not in the workload that stands for "no prober" (see [`StackInputs`]).
const NO_PROBER: &str = "us-west-1";

/// Deploys one stack per Region of `spec`, the switch hosts before the home stack (its
/// health checks watch their alarms).
pub async fn deploy(
    twin: &Twin,
    spec: &WorkloadSpec,
    inputs: &StackInputs,
) -> anyhow::Result<Deployed> {
    let regions: Vec<&str> = spec.regions.iter().map(|r| r.region.as_str()).collect();
    let (home, second) = match regions.as_slice() {
        [home, second, ..] if regions.len() <= 3 => (*home, *second),
        _ => bail!(
            "template.yaml deploys two or three Regions; the spec has {}",
            regions.len()
        ),
    };
    // The switch topology the template builds (see the module docs).
    for r in &spec.regions {
        let want = if r.region == home { second } else { home };
        if let Some(s) = &r.routing_switch
            && s.region != want
        {
            bail!(
                "the switch of {} lives in {}; template.yaml hosts it in {want}",
                r.region,
                s.region
            );
        }
    }
    let probe_region = inputs
        .probe_region
        .clone()
        .unwrap_or_else(|| NO_PROBER.to_owned());
    let mut deployed = Deployed::default();
    let mut order: Vec<&str> = regions.iter().copied().filter(|r| *r != home).collect();
    order.push(home);
    for region in order {
        let switches: Vec<&str> = spec
            .regions
            .iter()
            .filter(|r| {
                r.routing_switch
                    .as_ref()
                    .is_some_and(|s| s.region == region)
            })
            .map(|r| r.region.as_str())
            .collect();
        let mut parameters = Map::new();
        for (k, v) in [
            ("HomeRegion", home.to_owned()),
            ("Region2", second.to_owned()),
            (
                "Region3",
                regions.get(2).map_or(String::new(), |r| (*r).to_owned()),
            ),
            ("TableName", inputs.table.clone()),
            ("WorkloadId", spec.workload.clone()),
            ("SwitchRegions", switches.join(",")),
            ("ProbeRegion", probe_region.clone()),
        ] {
            parameters.insert(k.to_owned(), json!(v));
        }
        for (k, v) in &inputs.parameters {
            parameters.insert(k.clone(), json!(v));
        }
        let mut body = json!({
            "region": region,
            "parameters": Value::Object(parameters.clone()),
            "overrides": inputs.overrides.get(region).cloned().unwrap_or_else(|| json!({})),
        });
        if let Some(name) = &inputs.stack_name {
            body["stack_name"] = json!(name);
        }
        let out = twin
            .post("stack", body)
            .await
            .with_context(|| format!("deploying template.yaml in {region}"))?;
        if region == home {
            for (logical, controls) in [
                ("PrimaryRegionHealthCheck", Some(home)),
                ("Region2HealthCheck", Some(second)),
                ("Region3HealthCheck", regions.get(2).copied()),
            ] {
                let (Some(controls), Some(id)) =
                    (controls, out["resources"][logical]["physical_id"].as_str())
                else {
                    continue;
                };
                deployed
                    .health_checks
                    .insert(controls.to_owned(), id.to_owned());
            }
        }
        deployed.parameters.insert(region.to_owned(), parameters);
        deployed.stacks.insert(region.to_owned(), out);
    }
    Ok(deployed)
}
