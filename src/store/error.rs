//! What can go wrong when a command runs, with database failures sorted into "the store is
//! unavailable" (503, try again) and "something is broken" (500, a bug to look at).

use cqrs_es::AggregateError;
use thiserror::Error;

use aggregates::DomainError;

use crate::databases::is_unavailable;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

#[derive(Debug, Error)]
pub enum CommandError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// The caller's `If-Match` named another version than the aggregate's current one.
    #[error("the resource is at version {current}, not the expected one")]
    VersionMismatch { current: u64 },
    /// Another command on the same aggregate committed first.
    #[error("the resource was modified concurrently")]
    Conflict,
    #[error("the event store is unavailable")]
    Unavailable(#[source] BoxError),
    #[error("the event store failed")]
    Unexpected(#[source] BoxError),
}

impl CommandError {
    /// The outcome as the `board_commands_total` metric names it.
    pub fn outcome(&self) -> &'static str {
        match self {
            Self::Domain(_) => "rejected",
            Self::Conflict => "conflict",
            Self::VersionMismatch { .. } => "precondition_failed",
            Self::Unavailable(_) => "unavailable",
            Self::Unexpected(_) => "error",
        }
    }
}

impl From<AggregateError<DomainError>> for CommandError {
    fn from(err: AggregateError<DomainError>) -> Self {
        match err {
            AggregateError::UserError(e) => Self::Domain(e),
            AggregateError::AggregateConflict => Self::Conflict,
            AggregateError::DatabaseConnectionError(e) => Self::Unavailable(e),
            // postgres-es reports pool time-outs and refused connections as "unexpected";
            // look inside before calling it a bug.
            AggregateError::UnexpectedError(e) if is_unavailable_boxed(&*e) => Self::Unavailable(e),
            AggregateError::UnexpectedError(e) | AggregateError::DeserializationError(e) => {
                Self::Unexpected(e)
            }
        }
    }
}

impl From<sqlx::Error> for CommandError {
    fn from(err: sqlx::Error) -> Self {
        if is_unavailable(&err) {
            Self::Unavailable(Box::new(err))
        } else {
            Self::Unexpected(Box::new(err))
        }
    }
}

fn is_unavailable_boxed(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<sqlx::Error>()
        .is_some_and(is_unavailable)
}
