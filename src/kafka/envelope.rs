//! The envelope of a stored event: how it travels on Kafka, in exports and in replays.
//! The shape itself is the read side's ([`projections::Envelope`]), since the projectors
//! decode it; this is where the write side's record becomes one.

use projections::Envelope;

use crate::store::reader::RecordedEvent;

/// The Kafka envelope of a stored event.
pub fn envelope(event: &RecordedEvent) -> Envelope {
    into_envelope(event.clone())
}

/// The same, taking the event: a reader that is done with it (an export) moves its
/// payload and metadata instead of copying them.
pub fn into_envelope(event: RecordedEvent) -> Envelope {
    Envelope {
        event_id: Envelope::event_id_for(
            &event.aggregate_type,
            &event.aggregate_id,
            event.sequence,
        ),
        global_position: event.checkpoint.global_position,
        transaction_id: event.checkpoint.transaction_id,
        payload: Envelope::untag(&event.event_type, event.payload),
        aggregate_type: event.aggregate_type,
        aggregate_id: event.aggregate_id,
        sequence: event.sequence,
        event_type: event.event_type,
        event_version: event.event_version,
        recorded_at: event.recorded_at,
        metadata: event.metadata,
    }
}
