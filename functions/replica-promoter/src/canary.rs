//! The drill's RPO canary: `canary_write` puts a small object in the primary's first
//! bucket before the failover, `canary_read` looks for it in the target's first bucket
//! after (buckets pair by position, as for `s3_flip`). The key is
//! `lifeboat-canary/<run id>`; the body records when it was written.
//!
//! These steps take no lease and present no epoch: they run before the drill's failover
//! takes the lease and after it is released, and they write only under
//! `lifeboat-canary/` in the workload's own bucket. A missing canary in the target is an
//! answer (`status: "missing"`, `done: false`), not an error: the drill polls a bounded
//! number of times and reports the data as not replicated.

use aws_sdk_s3::error::ProvideErrorMetadata;
use lifeboat::{Error, Store, UnixMillis, WorkloadSpec};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Promoter;

/// The key prefix of every canary.
pub const PREFIX: &str = "lifeboat-canary/";

/// A canary step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStep {
    /// Put the canary in the primary's first bucket (once: a retry keeps the first).
    CanaryWrite,
    /// Look for it in `region`'s first bucket.
    CanaryRead,
}

impl CanaryStep {
    /// As `step` spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            CanaryStep::CanaryWrite => "canary_write",
            CanaryStep::CanaryRead => "canary_read",
        }
    }
}

/// Input of the canary steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// Workload id.
    pub workload: String,
    /// Which step.
    pub step: CanaryStep,
    /// The drill's run id: the canary's key is `lifeboat-canary/<run_id>`.
    pub run_id: String,
    /// `canary_write`: the Region written (default: the spec's primary).
    /// `canary_read`: the Region read (required: the failover's target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// What a canary step saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryOutcome {
    /// Workload id.
    pub workload: String,
    /// The step.
    pub step: CanaryStep,
    /// Run id.
    pub run_id: String,
    /// The Region written or read.
    pub region: String,
    /// The bucket (empty with `no_bucket`).
    pub bucket: String,
    /// The key.
    pub key: String,
    /// `written`, `already_written`, `found`, `missing` or `no_bucket`.
    pub status: String,
    /// `canary_read`: found, or nothing to look in. Route on it.
    pub done: bool,
    /// When the canary was written (from its body), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_at: Option<UnixMillis>,
    /// `canary_read`: when it looked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_at: Option<UnixMillis>,
}

/// Whether `payload` is a canary step (its `step` starts with `canary_`).
pub fn is_canary(payload: &Value) -> bool {
    payload
        .get("step")
        .and_then(Value::as_str)
        .is_some_and(|s| s.starts_with("canary_"))
}

/// The canary's key.
pub fn key(run_id: &str) -> String {
    format!("{PREFIX}{run_id}")
}

/// Where the step acts: the Region and its first bucket (`None`: no bucket).
pub fn place(spec: &WorkloadSpec, req: &CanaryRequest) -> Result<(String, Option<String>), Error> {
    if req.run_id.trim().is_empty() {
        return Err(Error::InvalidInput("run_id: must not be empty".into()));
    }
    if req.run_id.contains('/') {
        return Err(Error::InvalidInput(format!(
            "run_id: `{}` must not contain '/'",
            req.run_id
        )));
    }
    let region = match (req.step, &req.region) {
        (_, Some(r)) => spec.region(r).ok_or_else(|| {
            Error::InvalidInput(format!(
                "region: `{r}` is not a Region of workload `{}`",
                spec.workload
            ))
        })?,
        (CanaryStep::CanaryWrite, None) => spec.primary().ok_or_else(|| {
            Error::InvalidInput(format!(
                "workload `{}` has no primary to write the canary in",
                spec.workload
            ))
        })?,
        (CanaryStep::CanaryRead, None) => {
            return Err(Error::InvalidInput(
                "region: canary_read needs the Region to read the canary in".into(),
            ));
        }
    };
    Ok((
        region.region.clone(),
        region.buckets.first().map(|b| b.name.clone()),
    ))
}

/// The canary's body.
pub fn body(workload: &str, run_id: &str, region: &str, at: UnixMillis) -> Vec<u8> {
    serde_json::json!({
        "workload": workload, "run_id": run_id, "region": region,
        "written_at": at.0, "written_at_rfc3339": at.rfc3339(),
        "note": "Lifeboat DR drill canary: written in the primary, read back in the target"
    })
    .to_string()
    .into_bytes()
}

/// When a canary body says it was written (`None` if it does not parse).
pub fn written_at(body: &[u8]) -> Option<UnixMillis> {
    let v: Value = serde_json::from_slice(body).ok()?;
    v.get("written_at").and_then(Value::as_u64).map(UnixMillis)
}

impl<S: Store> Promoter<S> {
    /// Runs a canary step (see the module docs).
    pub async fn canary(&self, req: &CanaryRequest) -> Result<CanaryOutcome, Error> {
        if req.workload.is_empty() {
            return Err(Error::InvalidInput("workload: must not be empty".into()));
        }
        let spec = self.store.get_spec(&req.workload).await?;
        let (region, bucket) = place(&spec, req)?;
        let key = key(&req.run_id);
        let mut out = CanaryOutcome {
            workload: req.workload.clone(),
            step: req.step,
            run_id: req.run_id.clone(),
            region: region.clone(),
            bucket: bucket.clone().unwrap_or_default(),
            key: key.clone(),
            status: "no_bucket".into(),
            done: true,
            written_at: None,
            read_at: None,
        };
        let Some(bucket) = bucket else {
            return Ok(out);
        };
        let existing = self.get_canary(&region, &bucket, &key).await?;
        match req.step {
            CanaryStep::CanaryWrite => match existing {
                Some(b) => {
                    out.status = "already_written".into();
                    out.written_at = written_at(&b);
                }
                None => {
                    let now = UnixMillis::now();
                    let res = self
                        .clients
                        .s3
                        .get(&region)
                        .put_object()
                        .bucket(&bucket)
                        .key(&key)
                        .content_type("application/json")
                        .body(body(&req.workload, &req.run_id, &region, now).into())
                        .send()
                        .await;
                    match res {
                        Ok(_) => {}
                        Err(e)
                            if e.as_service_error().and_then(|se| se.code())
                                == Some("NoSuchBucket") =>
                        {
                            return Err(no_bucket(&bucket, &region));
                        }
                        Err(e) => return Err(Error::from_sdk("s3", "PutObject", e)),
                    }
                    out.status = "written".into();
                    out.written_at = Some(now);
                }
            },
            CanaryStep::CanaryRead => {
                out.read_at = Some(UnixMillis::now());
                match existing {
                    Some(b) => {
                        out.status = "found".into();
                        out.written_at = written_at(&b);
                    }
                    None => {
                        out.status = "missing".into();
                        out.done = false;
                    }
                }
            }
        }
        tracing::info!(
            workload = %req.workload,
            step = req.step.as_str(),
            region = %region,
            bucket = %bucket,
            status = %out.status,
            "Canary step finished"
        );
        Ok(out)
    }

    /// GetObject: the body, `None` when there is no such key.
    async fn get_canary(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Vec<u8>>, Error> {
        let res = self
            .clients
            .s3
            .get(region)
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await;
        match res {
            Ok(out) => {
                let bytes = out
                    .body
                    .collect()
                    .await
                    .map_err(|e| Error::TransientDependency {
                        service: "s3",
                        operation: "GetObject",
                        source: Box::new(e),
                    })?;
                Ok(Some(bytes.into_bytes().to_vec()))
            }
            Err(e) => match e.as_service_error().and_then(|se| se.code()) {
                Some("NoSuchKey") => Ok(None),
                Some("NoSuchBucket") => Err(no_bucket(bucket, region)),
                _ => Err(Error::from_sdk("s3", "GetObject", e)),
            },
        }
    }
}

fn no_bucket(bucket: &str, region: &str) -> Error {
    Error::ResourceNotFound {
        kind: "S3 bucket",
        id: bucket.to_owned(),
        region: region.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../events/model/example-spec.json");

    fn spec() -> WorkloadSpec {
        serde_json::from_str(EXAMPLE).unwrap()
    }

    fn req(step: CanaryStep, region: Option<&str>) -> CanaryRequest {
        CanaryRequest {
            workload: "checkout".into(),
            step,
            run_id: "d1".into(),
            region: region.map(str::to_owned),
        }
    }

    #[test]
    fn the_canary_goes_to_the_primarys_first_bucket_and_is_read_in_the_targets() {
        let (r, b) = place(&spec(), &req(CanaryStep::CanaryWrite, None)).unwrap();
        assert_eq!(
            (r.as_str(), b.as_deref()),
            ("us-east-1", Some("checkout-receipts-use1"))
        );
        let (r, b) = place(&spec(), &req(CanaryStep::CanaryRead, Some("eu-west-1"))).unwrap();
        assert_eq!(
            (r.as_str(), b.as_deref()),
            ("eu-west-1", Some("checkout-receipts-euw1"))
        );
        let err = place(&spec(), &req(CanaryStep::CanaryRead, None)).unwrap_err();
        assert!(err.to_string().contains("canary_read needs"), "{err}");
        let err = place(&spec(), &req(CanaryStep::CanaryRead, Some("us-west-2"))).unwrap_err();
        assert!(err.to_string().contains("not a Region"), "{err}");
        let mut s = spec();
        s.regions[1].buckets.clear();
        let (_, b) = place(&s, &req(CanaryStep::CanaryRead, Some("eu-west-1"))).unwrap();
        assert_eq!(b, None);
        let mut bad = req(CanaryStep::CanaryWrite, None);
        bad.run_id = "a/b".into();
        assert!(place(&spec(), &bad).is_err());
        assert_eq!(key("d1"), "lifeboat-canary/d1");
    }

    #[test]
    fn the_body_says_when_it_was_written() {
        let b = body("checkout", "d1", "us-east-1", UnixMillis(1_795_464_000_000));
        assert_eq!(written_at(&b), Some(UnixMillis(1_795_464_000_000)));
        assert_eq!(written_at(b"not json"), None);
        assert!(is_canary(&serde_json::json!({"step": "canary_read"})));
        assert!(!is_canary(&serde_json::json!({"step": "rds_status"})));
    }
}
