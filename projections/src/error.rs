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
