//! Each envelope's payload, decoded into its aggregate's event type.

use aggregates::account::AccountEvent;
use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;
use aggregates::AggregateKind;
use serde::de::DeserializeOwned;

use crate::Envelope;

/// One event of a batch: its envelope, and its payload decoded.
pub struct Event<'e> {
    pub envelope: &'e Envelope,
    pub decoded: Decoded,
}

/// What an envelope's payload turned out to be.
pub enum Decoded {
    /// An event of an aggregate the read models follow, ready to apply.
    Event(Payload),
    /// Of an aggregate the read models follow, but its payload does not decode into that
    /// aggregate's events: it cannot be applied, and goes to the quarantine (see `fold`).
    Malformed { kind: AggregateKind, reason: String },
    /// An aggregate type the read models do not follow: skipped.
    Unfollowed,
}

impl Decoded {
    /// The kind of the event's aggregate, unless the read models do not follow it.
    pub fn kind(&self) -> Option<AggregateKind> {
        match self {
            Self::Event(payload) => Some(payload.kind()),
            Self::Malformed { kind, .. } => Some(*kind),
            Self::Unfollowed => None,
        }
    }
}

/// An event decoded into its aggregate's event type.
pub enum Payload {
    Account(AccountEvent),
    Category(CategoryEvent),
    Post(PostEvent),
    Comment(CommentEvent),
}

impl Payload {
    pub fn kind(&self) -> AggregateKind {
        match self {
            Self::Account(_) => AggregateKind::Account,
            Self::Category(_) => AggregateKind::Category,
            Self::Post(_) => AggregateKind::Post,
            Self::Comment(_) => AggregateKind::Comment,
        }
    }
}

/// Decodes every event of a batch, in order.
pub fn batch(events: &[Envelope]) -> Vec<Event<'_>> {
    events
        .iter()
        .map(|envelope| Event {
            envelope,
            decoded: decode(envelope),
        })
        .collect()
}

fn decode(event: &Envelope) -> Decoded {
    fn parse<E: DeserializeOwned>(event: &Envelope) -> Result<E, serde_json::Error> {
        serde_json::from_value(event.tagged_payload())
    }
    let Ok(kind) = event.aggregate_type.parse::<AggregateKind>() else {
        return Decoded::Unfollowed;
    };
    let decoded = match kind {
        AggregateKind::Account => parse(event).map(Payload::Account),
        AggregateKind::Category => parse(event).map(Payload::Category),
        AggregateKind::Post => parse(event).map(Payload::Post),
        AggregateKind::Comment => parse(event).map(Payload::Comment),
    };
    match decoded {
        Ok(payload) => Decoded::Event(payload),
        Err(error) => Decoded::Malformed {
            kind,
            reason: format!("cannot be decoded: {error}"),
        },
    }
}
