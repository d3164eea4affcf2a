//! Exit codes scripts can use, and how every failure maps to one.

use lifeboat::{Error, ErrorName};

/// The process exit status of a command (README, "Operating Lifeboat").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Exit {
    /// Done; a run that was followed succeeded.
    Ok = 0,
    /// A run that was followed ended without succeeding (failed, timed out, aborted).
    RunNotSucceeded = 1,
    /// Bad usage or bad input (arguments, a spec file that does not parse or validate).
    Usage = 2,
    /// The workload, run, state machine or resource does not exist.
    NotFound = 3,
    /// A conflict: the spec's version moved, or a lease is held.
    Conflict = 4,
    /// AWS failed or could not be reached (throttling, 5xx, timeout, access denied).
    Aws = 5,
    /// Lifeboat's policy refused (target unhealthy, lag over the RPO, cooldown, ...).
    Refused = 6,
}

impl Exit {
    /// The status as a number.
    pub fn code(self) -> u8 {
        self as u8
    }
}

/// A command's failure: the exit status and what to tell the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The status.
    pub exit: Exit,
    /// The message (one or more lines).
    pub message: String,
}

impl Failure {
    /// Bad usage or input.
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Usage,
            message: message.into(),
        }
    }

    /// Something named does not exist.
    pub fn not_found(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::NotFound,
            message: message.into(),
        }
    }

    /// A followed run that did not succeed.
    pub fn run(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::RunNotSucceeded,
            message: message.into(),
        }
    }

    /// An AWS call that failed.
    pub fn aws(message: impl Into<String>) -> Failure {
        Failure {
            exit: Exit::Aws,
            message: message.into(),
        }
    }
}

/// The exit status of a Lifeboat error name.
pub fn exit_of(name: ErrorName) -> Exit {
    match name {
        ErrorName::InvalidInput | ErrorName::InvalidModel => Exit::Usage,
        ErrorName::WorkloadNotFound | ErrorName::ResourceNotFound => Exit::NotFound,
        ErrorName::ConcurrentModification
        | ErrorName::LeaseHeld
        | ErrorName::LeaseBusy
        | ErrorName::StaleEpoch
        | ErrorName::DeployFrozen => Exit::Conflict,
        ErrorName::TransientDependency | ErrorName::DependencyFailure | ErrorName::CorruptItem => {
            Exit::Aws
        }
        ErrorName::TargetUnhealthy
        | ErrorName::ReplicaLagTooHigh
        | ErrorName::CooldownActive
        | ErrorName::FailoverUnwarranted
        | ErrorName::VerificationFailed
        | ErrorName::NotImplemented => Exit::Refused,
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure {
            exit: exit_of(e.name()),
            message: format!("{}: {}", e.name(), e.chain()),
        }
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure {
            exit: Exit::Usage,
            message: format!("output: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_error_name_has_a_documented_status() {
        for name in ErrorName::ALL {
            let exit = exit_of(name);
            assert!((1..=6).contains(&exit.code()), "{name}: {exit:?}");
        }
        assert_eq!(exit_of(ErrorName::ConcurrentModification), Exit::Conflict);
        assert_eq!(exit_of(ErrorName::WorkloadNotFound), Exit::NotFound);
        assert_eq!(exit_of(ErrorName::InvalidModel), Exit::Usage);
        assert_eq!(exit_of(ErrorName::TransientDependency), Exit::Aws);
    }
}
