use thiserror::Error;

/// A query against the read models failed. Kept apart from the event store's errors: a
/// MySQL outage must be reported as the read models being away, not the event store.
/// Whether it is worth retrying is the caller's to judge (it knows its database's codes).
#[derive(Debug, Error)]
#[error("the read models failed")]
pub struct ReadError(#[from] pub sqlx::Error);
