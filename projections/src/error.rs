use thiserror::Error;

/// An event that cannot be projected.
#[derive(Debug, Error)]
pub enum ProjectionError {
    /// An event whose payload does not match its type: it is logged and skipped, so that
    /// one bad event cannot stall its partition.
    #[error("event {event_id} ({event_type} {version}) cannot be decoded: {reason}")]
    Malformed {
        event_id: uuid::Uuid,
        event_type: String,
        version: String,
        reason: String,
    },
}

/// A query against the read models failed. Kept apart from the event store's errors: a
/// MySQL outage must be reported as the read models being away, not the event store.
/// Whether it is worth retrying is the caller's to judge (it knows its database's codes).
#[derive(Debug, Error)]
#[error("the read models failed")]
pub struct ReadError(#[from] pub sqlx::Error);
