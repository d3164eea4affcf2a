//! # lifeboat-shared
//!
//! The crate every Lifeboat function builds on:
//!
//! - [`model`]: the deployment model ([`WorkloadSpec`]) and its validation;
//! - [`store`]: the single-table layout, the [`Store`] port and its DynamoDB adapter,
//!   with optimistic concurrency on the spec and a fenced lease;
//! - [`dashboard`]: the workload's CloudWatch dashboard, generated from its spec;
//! - [`error`]: the stable error names Step Functions retries and catches by;
//! - [`aws`]: one SDK configuration, clients per Region on demand;
//! - `switch` (feature `cloudwatch`): how a routing switch's metric is written;
//! - [`notify`]: the notifications (EventBridge events and SNS messages) and, with
//!   feature `notify`, their best-effort sender;
//! - [`report`]: the HTML run report (failover, failback, drill) and its keys;
//! - [`rto`]: the projected recovery time on AWS, term by term (docs/rto.md);
//! - [`time`] and [`regions`]: Unix-millisecond time and the AWS Region codes.

pub mod aws;
pub mod dashboard;
pub mod error;
pub mod input;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod regions;
pub mod report;
pub mod rto;
pub mod store;
#[cfg(feature = "cloudwatch")]
pub mod switch;
pub mod time;

pub use error::{Error, ErrorName, Result, Retry};
pub use model::{Problem, Validation, Warning, WorkloadSpec};
pub use store::{DynamoStore, Store};
pub use time::UnixMillis;

/// Starts a Lambda function: JSON logs (honouring `AWS_LAMBDA_LOG_FORMAT` and
/// `AWS_LAMBDA_LOG_LEVEL`), then the runtime loop with `handler`. Every `main.rs` calls
/// this after building its clients once.
pub async fn serve<F, Fut, I, O>(handler: F) -> Result<(), lambda_runtime::Error>
where
    F: Fn(lambda_runtime::LambdaEvent<I>) -> Fut,
    Fut: std::future::Future<Output = Result<O, Error>>,
    I: serde::de::DeserializeOwned,
    O: serde::Serialize,
{
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(lambda_runtime::service_fn(handler)).await
}
