//! `shift_version`: a Region's blue/green deploy weights (deploy-wave's planned shifts).
//!
//! The Region's `deploy` section names one weighted record pair (blue and green set
//! identifiers of `record_name` in `hosted_zone_id`). A shift puts `percent` of the
//! Region's traffic on `slot` and the rest on the other slot: UPSERTs of the records
//! whose weight differs, in one change batch, then GetChange until `INSYNC` (bounded),
//! as the Region-to-Region `shift` does. The same input again changes nothing.

use std::collections::BTreeMap;

use lifeboat::model::{DeploySpec, Slot, WorkloadSpec};
use lifeboat::{Error, Result, Store};

use crate::plan::{self, RecordWeight};
use crate::request::{Outcome, Request, ShiftOutcome, ZoneChange};
use crate::{Shifter, cloud};

/// The weights of the pair: `percent` on `slot`, the rest on the other one. Pure.
pub fn version_weights(
    spec: &WorkloadSpec,
    region: &str,
    slot: Option<Slot>,
    percent: Option<u32>,
) -> Result<(DeploySpec, Vec<RecordWeight>)> {
    let r = spec.region(region).ok_or_else(|| {
        Error::InvalidInput(format!(
            "target_region: `{region}` is not a Region of workload `{}`",
            spec.workload
        ))
    })?;
    let Some(d) = &r.deploy else {
        return Err(Error::InvalidInput(format!(
            "target_region: `{region}` has no deploy section in the spec (blue/green records)"
        )));
    };
    let slot = slot.ok_or_else(|| {
        Error::InvalidInput("slot: required for shift_version (blue or green)".into())
    })?;
    let percent =
        percent.ok_or_else(|| Error::InvalidInput("percent: required for shift_version".into()))?;
    if percent > 100 {
        return Err(Error::InvalidInput(format!(
            "percent: {percent} is over 100"
        )));
    }
    let rec = |s: Slot, weight: u32| RecordWeight {
        region: region.to_owned(),
        hosted_zone_id: d.hosted_zone_id.clone(),
        record_name: d.record_name.clone(),
        set_identifier: d.slot(s).set_identifier.clone(),
        weight,
    };
    let mut recs = vec![rec(slot, percent), rec(slot.other(), 100 - percent)];
    // Blue first, always: the same request gives the same batch.
    recs.sort_by_key(|r| r.set_identifier != d.blue.set_identifier);
    Ok((d.clone(), recs))
}

impl<S: Store> Shifter<S> {
    pub(crate) async fn shift_version(
        &self,
        spec: &WorkloadSpec,
        req: &Request,
    ) -> Result<Outcome> {
        let (d, recs) = version_weights(spec, &req.target_region, req.slot, req.percent)?;
        let zone = d.hosted_zone_id.clone();
        // Read first: a missing record, or one that is not weighted, fails here with
        // nothing changed.
        let sets = cloud::read_records(&self.route53, &zone, &d.record_name).await?;
        let mut changed = Vec::new();
        let mut upserts = Vec::new();
        for rec in &recs {
            let differs = crate::reweigh(&sets, rec, &zone, &mut upserts)?;
            if differs {
                changed.push(rec.clone());
            }
        }

        let slot = req.slot.unwrap_or_default();
        let percent = req.percent.unwrap_or_default();
        let mut out = self.outcome(req, "shifted");
        let mut changes = Vec::new();
        if !upserts.is_empty() {
            let count = upserts.len();
            let comment = format!(
                "Lifeboat deploy shift of {} in {}: {percent} % to {}, epoch {}",
                req.workload,
                req.target_region,
                slot.as_str(),
                req.epoch
            );
            let change_id = cloud::upsert(&self.route53, &zone, upserts, comment).await?;
            out.calls.push(plan::change_call(&zone, &changed));
            let polls = cloud::wait_insync(&self.route53, &change_id, self.insync).await?;
            out.calls
                .push(plan::get_change_call(&zone, Some(&change_id)));
            changes.push(ZoneChange {
                hosted_zone_id: zone.clone(),
                change_id,
                status: "INSYNC".into(),
                polls,
                records: count,
            });
        }
        out.already_done = out.calls.is_empty();
        out.data_plane_only = plan::data_plane_only(&out.calls);
        out.shift = Some(ShiftOutcome {
            stage: 0,
            schedule: vec![percent],
            percent,
            next_stage: None,
            weights: recs
                .iter()
                .map(|r| (r.set_identifier.clone(), r.weight))
                .collect::<BTreeMap<_, _>>(),
            changes,
        });
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> WorkloadSpec {
        serde_json::from_str(include_str!("../../../events/model/example-spec.json")).unwrap()
    }

    fn weights(recs: &[RecordWeight]) -> Vec<(&str, u32)> {
        recs.iter()
            .map(|r| (r.set_identifier.as_str(), r.weight))
            .collect()
    }

    #[test]
    fn percent_goes_to_the_slot_and_the_rest_to_the_other_blue_first() {
        let spec = example();
        let (_, recs) = version_weights(&spec, "eu-west-1", Some(Slot::Green), Some(10)).unwrap();
        assert_eq!(weights(&recs), [("euw1-blue", 90), ("euw1-green", 10)]);
        assert_eq!(recs[0].record_name, "euw1.api.checkout.example.com");
        let (_, recs) = version_weights(&spec, "eu-west-1", Some(Slot::Blue), Some(100)).unwrap();
        assert_eq!(weights(&recs), [("euw1-blue", 100), ("euw1-green", 0)]);
    }

    #[test]
    fn bad_requests_are_named() {
        let mut spec = example();
        let cases = [
            ("mars-1", Some(Slot::Green), Some(10), "not a Region"),
            ("eu-west-1", None, Some(10), "slot: required"),
            ("eu-west-1", Some(Slot::Green), None, "percent: required"),
            ("eu-west-1", Some(Slot::Green), Some(101), "over 100"),
        ];
        for (region, slot, percent, want) in cases {
            let err = version_weights(&spec, region, slot, percent).unwrap_err();
            assert_eq!(err.name(), lifeboat::ErrorName::InvalidInput);
            assert!(err.to_string().contains(want), "{err}");
        }
        spec.regions[1].deploy = None;
        let err = version_weights(&spec, "eu-west-1", Some(Slot::Blue), Some(0)).unwrap_err();
        assert!(err.to_string().contains("no deploy section"), "{err}");
    }
}
