//! The error contract: one enum of stable names that Step Functions retries and catches by.
//!
//! Every function returns [`Error`]; the Lambda runtime reports it through
//! [`lambda_runtime::Diagnostic`] with `errorType` set to the bare [`ErrorName`]
//! (`"LeaseHeld"`, never a Rust type path), so ASL `ErrorEquals` can name it.
//! [`ErrorName::retry`] says once, here, which names a state machine retries.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use serde::{Deserialize, Serialize};

use crate::model::Problem;
use crate::time::UnixMillis;

/// A boxed error kept as the `source` of ours, never stringified on the way.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result with Lifeboat's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The stable names of every error a Lifeboat function can return.
///
/// These strings are a public contract: state machines and operators match on them.
/// Add names; never rename or remove one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ErrorName {
    /// The request is malformed or contradicts itself.
    InvalidInput,
    /// No workload with that id in the table.
    WorkloadNotFound,
    /// A spec fails validation; nothing was written.
    InvalidModel,
    /// An item in the table does not parse; names the item key and field.
    CorruptItem,
    /// Another run holds the workload's lease.
    LeaseHeld,
    /// The caller's fencing epoch is no longer the lease's epoch.
    StaleEpoch,
    /// The spec changed since the caller read it (optimistic concurrency on `version`).
    ConcurrentModification,
    /// The target's replication lag exceeds the RPO budget.
    ReplicaLagTooHigh,
    /// No healthy Region to act on.
    TargetUnhealthy,
    /// The last failover is too recent.
    CooldownActive,
    /// Deploys are frozen while a failover or drill holds the lease.
    DeployFrozen,
    /// An AWS resource named by the spec or the request does not exist (e.g. a DB
    /// instance, bucket, hosted zone or alarm).
    ResourceNotFound,
    /// A step ran but its result could not be verified (e.g. DNS does not answer as
    /// the shift intended within the bound).
    VerificationFailed,
    /// An AWS dependency failed in a way that may pass (throttling, 5xx, timeout).
    TransientDependency,
    /// An AWS dependency refused the call in a way retrying will not fix.
    DependencyFailure,
    /// The function's work is not built yet.
    NotImplemented,
    /// An automatic failover whose Region is not unhealthy by Lifeboat's own fresh
    /// observation (a stalled, throttled or half-broken prober, a stray alarm).
    FailoverUnwarranted,
    /// A failback or drill holds the lease a failover wants: the failover's machine
    /// waits (bounded retries with backoff) and then refuses, naming the holder.
    LeaseBusy,
}

/// What a state machine should do with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Retry with backoff: the same input may succeed later.
    Transient,
    /// Catch and route: retrying the same input gives the same answer.
    Permanent,
}

impl ErrorName {
    /// Every name, for tests that check state machines name only real errors.
    pub const ALL: [ErrorName; 18] = [
        ErrorName::InvalidInput,
        ErrorName::WorkloadNotFound,
        ErrorName::InvalidModel,
        ErrorName::CorruptItem,
        ErrorName::LeaseHeld,
        ErrorName::StaleEpoch,
        ErrorName::ConcurrentModification,
        ErrorName::ReplicaLagTooHigh,
        ErrorName::TargetUnhealthy,
        ErrorName::CooldownActive,
        ErrorName::DeployFrozen,
        ErrorName::ResourceNotFound,
        ErrorName::VerificationFailed,
        ErrorName::TransientDependency,
        ErrorName::DependencyFailure,
        ErrorName::NotImplemented,
        ErrorName::FailoverUnwarranted,
        ErrorName::LeaseBusy,
    ];

    /// The `errorType` string.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorName::InvalidInput => "InvalidInput",
            ErrorName::WorkloadNotFound => "WorkloadNotFound",
            ErrorName::InvalidModel => "InvalidModel",
            ErrorName::CorruptItem => "CorruptItem",
            ErrorName::LeaseHeld => "LeaseHeld",
            ErrorName::StaleEpoch => "StaleEpoch",
            ErrorName::ConcurrentModification => "ConcurrentModification",
            ErrorName::ReplicaLagTooHigh => "ReplicaLagTooHigh",
            ErrorName::TargetUnhealthy => "TargetUnhealthy",
            ErrorName::CooldownActive => "CooldownActive",
            ErrorName::DeployFrozen => "DeployFrozen",
            ErrorName::ResourceNotFound => "ResourceNotFound",
            ErrorName::VerificationFailed => "VerificationFailed",
            ErrorName::TransientDependency => "TransientDependency",
            ErrorName::DependencyFailure => "DependencyFailure",
            ErrorName::NotImplemented => "NotImplemented",
            ErrorName::FailoverUnwarranted => "FailoverUnwarranted",
            ErrorName::LeaseBusy => "LeaseBusy",
        }
    }

    /// Transient names are retried by the state machines; permanent ones are caught.
    ///
    /// `ConcurrentModification` is transient: the handler re-reads the spec on retry.
    /// `ReplicaLagTooHigh` and `TargetUnhealthy` are permanent for one attempt; a
    /// machine that wants to wait for them does so with an explicit Wait loop.
    pub const fn retry(self) -> Retry {
        match self {
            ErrorName::TransientDependency | ErrorName::ConcurrentModification => Retry::Transient,
            _ => Retry::Permanent,
        }
    }
}

impl fmt::Display for ErrorName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every error a Lifeboat function returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed.
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// The workload is not in the table.
    #[error("workload `{0}` not found")]
    WorkloadNotFound(String),

    /// The spec fails validation; every problem is listed.
    #[error("invalid model for workload `{workload}`: {}", join(problems))]
    InvalidModel {
        /// Workload id as given.
        workload: String,
        /// Every problem found, not just the first.
        problems: Vec<Problem>,
    },

    /// A stored item does not parse.
    #[error("item {key} does not parse at field `{field}`: {reason}")]
    CorruptItem {
        /// `pk/sk` of the item.
        key: String,
        /// Path of the offending field, e.g. `regions[1].role`.
        field: String,
        /// What the parser said.
        reason: String,
    },

    /// Another run holds the lease.
    #[error(
        "lease on workload `{workload}` is held by `{holder}` for {purpose} (epoch {epoch}) until {expires_at}"
    )]
    LeaseHeld {
        /// Workload id.
        workload: String,
        /// Current holder (an execution ARN).
        holder: String,
        /// What the holder is doing.
        purpose: String,
        /// Current epoch.
        epoch: u64,
        /// When the lease expires unless renewed.
        expires_at: UnixMillis,
    },

    /// The caller's epoch has been superseded (or the lease was released).
    #[error("stale epoch {presented} on workload `{workload}`: {current}")]
    StaleEpoch {
        /// Workload id.
        workload: String,
        /// Epoch the caller presented.
        presented: u64,
        /// What the lease says now.
        current: String,
    },

    /// The spec's version moved since the caller read it.
    #[error(
        "workload `{workload}` was modified concurrently: expected version {expected}, found {found}"
    )]
    ConcurrentModification {
        /// Workload id.
        workload: String,
        /// Version the caller read.
        expected: u64,
        /// Version in the table now (0 when absent).
        found: u64,
    },

    /// Replication lag too high for the RPO budget.
    #[error(
        "replication lag in {region} is {lag_seconds} s, over the RPO budget of {budget_seconds} s"
    )]
    ReplicaLagTooHigh {
        /// Target Region.
        region: String,
        /// Observed lag.
        lag_seconds: f64,
        /// RPO objective.
        budget_seconds: u64,
    },

    /// The target's replication lag is not known to be within the budget: no fresh
    /// datapoint, a negative value (replication not running), or a stale one. Named
    /// `ReplicaLagTooHigh`: the gate fails closed.
    #[error("replication lag into {region} is not known to be within the budget: {reason}")]
    ReplicaLagUnknown {
        /// Target Region.
        region: String,
        /// Why the lag does not count.
        reason: String,
    },

    /// No eligible healthy Region.
    #[error("no healthy target for workload `{workload}`: {reason}")]
    TargetUnhealthy {
        /// Workload id.
        workload: String,
        /// Why each candidate was refused.
        reason: String,
    },

    /// An automatic failover away from a Region Lifeboat does not see unhealthy.
    #[error("no automatic failover of workload `{workload}` away from {region}: {reason}")]
    FailoverUnwarranted {
        /// Workload id.
        workload: String,
        /// The Region the alarm would fail away from.
        region: String,
        /// What Lifeboat's own observation says.
        reason: String,
    },

    /// A failback or drill holds the lease a failover wants (the machine waits, bounded).
    #[error(
        "workload `{workload}`: the lease is held by `{holder}` for {purpose} (epoch {epoch}) until {expires_at}; a failover waits for it, then refuses (an operator may force it: force, reason, requested_by)"
    )]
    LeaseBusy {
        /// Workload id.
        workload: String,
        /// Current holder.
        holder: String,
        /// Its purpose.
        purpose: String,
        /// Its epoch.
        epoch: u64,
        /// When it lapses unless renewed.
        expires_at: UnixMillis,
    },

    /// Inside the cooldown after the last failover.
    #[error("workload `{workload}` is in cooldown until {until}")]
    CooldownActive {
        /// Workload id.
        workload: String,
        /// End of the cooldown.
        until: UnixMillis,
    },

    /// A failover or drill holds the lease.
    #[error(
        "deploys of workload `{workload}` are frozen: `{holder}` holds the lease for {purpose}"
    )]
    DeployFrozen {
        /// Workload id.
        workload: String,
        /// Lease holder.
        holder: String,
        /// Lease purpose.
        purpose: String,
    },

    /// An AWS resource does not exist.
    #[error("{kind} `{id}` not found in {region}")]
    ResourceNotFound {
        /// What, e.g. `DB instance`.
        kind: &'static str,
        /// Its identifier.
        id: String,
        /// Where we looked.
        region: String,
    },

    /// A result could not be verified.
    #[error("verification failed: {0}")]
    VerificationFailed(String),

    /// An AWS call failed in a way that may pass.
    #[error("{service}.{operation} failed transiently")]
    TransientDependency {
        /// Service, e.g. `dynamodb`.
        service: &'static str,
        /// Operation, e.g. `UpdateItem`.
        operation: &'static str,
        /// The SDK error.
        #[source]
        source: BoxError,
    },

    /// An AWS call was refused for good.
    #[error("{service}.{operation} failed")]
    DependencyFailure {
        /// Service, e.g. `rds`.
        service: &'static str,
        /// Operation.
        operation: &'static str,
        /// The SDK error.
        #[source]
        source: BoxError,
    },

    /// Not built yet.
    #[error("{function} does not implement this yet")]
    NotImplemented {
        /// The function's name.
        function: &'static str,
    },
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl Error {
    /// The stable name of this error.
    pub fn name(&self) -> ErrorName {
        match self {
            Error::InvalidInput(_) => ErrorName::InvalidInput,
            Error::WorkloadNotFound(_) => ErrorName::WorkloadNotFound,
            Error::InvalidModel { .. } => ErrorName::InvalidModel,
            Error::CorruptItem { .. } => ErrorName::CorruptItem,
            Error::LeaseHeld { .. } => ErrorName::LeaseHeld,
            Error::StaleEpoch { .. } => ErrorName::StaleEpoch,
            Error::ConcurrentModification { .. } => ErrorName::ConcurrentModification,
            Error::ReplicaLagTooHigh { .. } => ErrorName::ReplicaLagTooHigh,
            Error::ReplicaLagUnknown { .. } => ErrorName::ReplicaLagTooHigh,
            Error::TargetUnhealthy { .. } => ErrorName::TargetUnhealthy,
            Error::FailoverUnwarranted { .. } => ErrorName::FailoverUnwarranted,
            Error::LeaseBusy { .. } => ErrorName::LeaseBusy,
            Error::CooldownActive { .. } => ErrorName::CooldownActive,
            Error::DeployFrozen { .. } => ErrorName::DeployFrozen,
            Error::ResourceNotFound { .. } => ErrorName::ResourceNotFound,
            Error::VerificationFailed(_) => ErrorName::VerificationFailed,
            Error::TransientDependency { .. } => ErrorName::TransientDependency,
            Error::DependencyFailure { .. } => ErrorName::DependencyFailure,
            Error::NotImplemented { .. } => ErrorName::NotImplemented,
        }
    }

    /// Whether a state machine should retry this error.
    pub fn retry(&self) -> Retry {
        self.name().retry()
    }

    /// The message with its whole source chain, for logs and `errorMessage`.
    pub fn chain(&self) -> String {
        let mut out = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(err) = source {
            out.push_str(": ");
            out.push_str(&err.to_string());
            source = err.source();
        }
        out
    }

    /// Classifies an AWS SDK error once: throttling, 5xx, timeouts and connection
    /// failures are [`Error::TransientDependency`]; everything else is
    /// [`Error::DependencyFailure`]. The SDK error is kept as the source.
    pub fn from_sdk<E>(
        service: &'static str,
        operation: &'static str,
        err: SdkError<E, HttpResponse>,
    ) -> Error
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        if is_transient(&err) {
            Error::TransientDependency {
                service,
                operation,
                source: Box::new(err),
            }
        } else {
            Error::DependencyFailure {
                service,
                operation,
                source: Box::new(err),
            }
        }
    }
}

/// Error codes AWS services use for throttling and passing server trouble.
const TRANSIENT_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "TransactionInProgressException",
    "RequestLimitExceeded",
    "BandwidthLimitExceeded",
    "RequestThrottled",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
];

/// Whether an SDK error is worth retrying.
pub fn is_transient<E>(err: &SdkError<E, HttpResponse>) -> bool
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            let code_transient = service
                .err()
                .code()
                .is_some_and(|code| TRANSIENT_CODES.contains(&code));
            code_transient || service.raw().status().is_server_error()
        }
        // ConstructionFailure and anything new: our request is wrong, retrying will not help.
        _ => false,
    }
}

impl From<Error> for lambda_runtime::Diagnostic {
    fn from(err: Error) -> Self {
        lambda_runtime::Diagnostic {
            error_type: err.name().as_str().to_owned(),
            error_message: err.chain(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_their_own_strings_and_unique() {
        let mut seen = std::collections::HashSet::new();
        for name in ErrorName::ALL {
            assert_eq!(format!("{name:?}"), name.as_str());
            assert!(seen.insert(name.as_str()));
            let json = serde_json::to_string(&name).unwrap();
            assert_eq!(json, format!("\"{}\"", name.as_str()));
        }
        for required in [
            "InvalidInput",
            "WorkloadNotFound",
            "LeaseHeld",
            "ReplicaLagTooHigh",
            "TargetUnhealthy",
            "ConcurrentModification",
            "TransientDependency",
            "NotImplemented",
            "StaleEpoch",
            "CooldownActive",
            "DeployFrozen",
        ] {
            assert!(seen.contains(required), "{required} missing");
        }
    }

    #[test]
    fn diagnostic_carries_the_bare_name_and_the_source_chain() {
        let err = Error::TransientDependency {
            service: "dynamodb",
            operation: "GetItem",
            source: "connection reset".into(),
        };
        let diag = lambda_runtime::Diagnostic::from(err);
        assert_eq!(diag.error_type, "TransientDependency");
        assert_eq!(
            diag.error_message,
            "dynamodb.GetItem failed transiently: connection reset"
        );
    }

    #[test]
    fn only_dependency_trouble_and_version_races_are_retried() {
        let transient: Vec<_> = ErrorName::ALL
            .into_iter()
            .filter(|n| n.retry() == Retry::Transient)
            .collect();
        assert_eq!(
            transient,
            [
                ErrorName::ConcurrentModification,
                ErrorName::TransientDependency
            ]
        );
    }
}
