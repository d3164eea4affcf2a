//! What a step or request tells people ([`lifeboat::notify`]): pure, from the step's
//! input and its result. Emitted where the facts are decided: `acquire` (a run
//! started, or was refused), `decide`/`decide_failback` (refused before anything
//! moved), `finalize` (succeeded), `release` (partial or failed), an operator's request
//! (refused). Dry runs tell no one.

use lifeboat::notify::{self, Notification};
use lifeboat::store::{Lease, RunRecord};
use lifeboat::{Error, Result, UnixMillis};
use serde_json::Value;

use crate::alarm::fnv1a;
use crate::request::{FailoverRequest, Step};
use crate::steps::run_id;

/// A request's key for a refusal: its `request_id`, else its alarm state change, else
/// a hash of the request (the same request refused twice shares the id).
pub fn request_key(req: &FailoverRequest) -> String {
    if let Some(id) = &req.request_id {
        return id.clone();
    }
    if let Some(t) = &req.trigger {
        return format!("{}-{}", t.alarm_name, t.state_changed_at.0);
    }
    let text = serde_json::to_string(req).unwrap_or_default();
    format!("{}-{:016x}", req.workload, fnv1a(&[&text]))
}

fn operation(req: &FailoverRequest) -> &'static str {
    if req.drill {
        "drill failover"
    } else {
        "failover"
    }
}

/// The notifications of an operator's failover request that ended with `result`.
pub fn for_operator(
    req: &FailoverRequest,
    result: &Result<Value>,
    now: UnixMillis,
) -> Vec<Notification> {
    match result {
        Err(e) if !req.dry_run && notify::is_refusal(e) => vec![notify::run_refused(
            &req.workload,
            operation(req),
            &request_key(req),
            e,
            now,
        )],
        _ => Vec::new(),
    }
}

/// The notifications of `step` that ended with `result`.
pub fn for_step(step: &Step, result: &Result<Value>, now: UnixMillis) -> Vec<Notification> {
    let refused = |workload: &str, op: &str, key: &str, e: &Error| {
        notify::is_refusal(e).then(|| notify::run_refused(workload, op, key, e, now))
    };
    let n = match (step, result) {
        (Step::Decide(i), Err(e)) if !i.request.dry_run => refused(
            &i.request.workload,
            operation(&i.request),
            &request_key(&i.request),
            e,
        ),
        (Step::DecideFailback(i), Err(e)) if !i.request.dry_run => {
            let r = &i.request;
            let key = r.request_id.clone().unwrap_or_else(|| {
                let text = serde_json::to_string(r).unwrap_or_default();
                format!("{}-{:016x}", r.workload, fnv1a(&[&text]))
            });
            let op = if r.drill {
                "drill failback"
            } else {
                "failback"
            };
            refused(&r.workload, op, &key, e)
        }
        (Step::Acquire(i), Err(e)) => refused(
            &i.decision.workload,
            i.decision.operation.as_str(),
            &run_id(&i.holder),
            e,
        ),
        (Step::Acquire(i), Ok(v)) => {
            let d = &i.decision;
            serde_json::from_value::<Lease>(v.clone())
                .ok()
                .map(|lease| {
                    notify::run_started(&notify::Started {
                        workload: &d.workload,
                        run_id: &run_id(&lease.holder),
                        execution: &lease.holder,
                        kind: d.run_kind(),
                        operation: d.operation.as_str(),
                        drill: d.request.drill,
                        from_region: &d.from_region,
                        to_region: &d.to_region,
                        epoch: lease.epoch,
                        requested_by: &d.request.requested_by,
                        reason: &d.request.reason,
                        at: lease.acquired_at,
                    })
                })
        }
        (Step::Finalize(i), Ok(v)) => ended(&i.decision.workload, v, &i.lease.holder),
        (Step::Release(i), Ok(v)) => ended(&i.decision.workload, v, &i.lease.holder),
        _ => None,
    };
    n.into_iter().collect()
}

fn ended(workload: &str, out: &Value, holder: &str) -> Option<Notification> {
    let run: RunRecord = serde_json::from_value(out.get("run")?.clone()).ok()?;
    notify::run_ended(workload, &run, Some(holder))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::request::DecideInput;
    use lifeboat::notify::DetailType;
    use serde_json::json;

    fn request(extra: Value) -> FailoverRequest {
        let mut v = json!({"workload": "checkout", "mode": "planned", "reason": "drill it", "requested_by": "ops"});
        if let (Some(o), Value::Object(e)) = (v.as_object_mut(), extra) {
            o.extend(e);
        }
        serde_json::from_value(v).unwrap()
    }

    fn unhealthy() -> Error {
        Error::TargetUnhealthy {
            workload: "checkout".into(),
            reason: "eu-west-1: 3 failed rounds".into(),
        }
    }

    #[test]
    fn a_refused_decision_is_told_once_per_request_and_a_dry_run_never() {
        let req = request(json!({"request_id": "op-7"}));
        let step = Step::Decide(DecideInput {
            request: req.clone(),
        });
        let n = for_step(&step, &Err(unhealthy()), UnixMillis(1));
        assert_eq!(n.len(), 1);
        assert_eq!(n[0].detail_type, DetailType::RunRefused);
        assert_eq!(n[0].detail["error"], "TargetUnhealthy");
        assert_eq!(n[0].id(), "op-7-refused-TargetUnhealthy");
        // The same request again: the same id.
        assert_eq!(
            for_step(&step, &Err(unhealthy()), UnixMillis(9))[0].id(),
            n[0].id()
        );
        let dry = Step::Decide(DecideInput {
            request: request(json!({"dry_run": true})),
        });
        assert!(for_step(&dry, &Err(unhealthy()), UnixMillis(1)).is_empty());
        assert!(
            for_operator(
                &request(json!({"dry_run": true})),
                &Err(unhealthy()),
                UnixMillis(1)
            )
            .is_empty()
        );
        assert_eq!(
            for_operator(&req, &Err(unhealthy()), UnixMillis(1)).len(),
            1
        );
        // A successful decision is not news: the run's start is (acquire).
        assert!(for_step(&step, &Ok(json!({})), UnixMillis(1)).is_empty());
    }

    #[test]
    fn requests_without_an_id_are_keyed_by_their_content() {
        let a = request(json!({}));
        let b = request(json!({"reason": "other"}));
        assert_eq!(request_key(&a), request_key(&a.clone()));
        assert_ne!(request_key(&a), request_key(&b));
        assert!(request_key(&a).starts_with("checkout-"));
    }
}
