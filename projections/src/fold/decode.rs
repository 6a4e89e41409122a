//! Each envelope's payload, decoded into its aggregate's event type.

use aggregates::account::AccountEvent;
use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;
use aggregates::AggregateKind;
use serde::de::DeserializeOwned;

use crate::{Envelope, ProjectionError};

/// One event of a batch: its envelope, and its payload decoded.
pub struct Event<'e> {
    pub envelope: &'e Envelope,
    /// `None` for an event the read models skip: an aggregate type they do not follow, or
    /// a payload that does not decode (logged).
    pub payload: Option<Payload>,
}

/// An event decoded into its aggregate's event type.
pub enum Payload {
    Account(AccountEvent),
    Category(CategoryEvent),
    Post(PostEvent),
    Comment(CommentEvent),
}

/// Decodes every event of a batch, in order.
pub fn batch(events: &[Envelope]) -> Vec<Event<'_>> {
    events
        .iter()
        .map(|envelope| Event {
            envelope,
            payload: decode(envelope),
        })
        .collect()
}

fn decode(event: &Envelope) -> Option<Payload> {
    fn parse<E: DeserializeOwned>(event: &Envelope) -> Result<E, ProjectionError> {
        serde_json::from_value(event.tagged_payload()).map_err(|e| ProjectionError::Malformed {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            version: event.event_version.clone(),
            reason: e.to_string(),
        })
    }
    let Ok(kind) = event.aggregate_type.parse::<AggregateKind>() else {
        return None;
    };
    let decoded = match kind {
        AggregateKind::Account => parse(event).map(Payload::Account),
        AggregateKind::Category => parse(event).map(Payload::Category),
        AggregateKind::Post => parse(event).map(Payload::Post),
        AggregateKind::Comment => parse(event).map(Payload::Comment),
    };
    decoded
        .map_err(|malformed| {
            // One bad event must not stall its partition: log it and go on.
            tracing::error!(error = %malformed, "skipping an event that cannot be projected");
        })
        .ok()
}
