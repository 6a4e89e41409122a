//! The envelope of a stored event: how it travels on Kafka, in exports and in replays.
//! The shape itself is the read side's ([`projections::Envelope`]), since the projectors
//! decode it; this is where the write side's record becomes one.

use projections::Envelope;

use crate::store::reader::RecordedEvent;

/// The Kafka envelope of a stored event.
pub fn envelope(event: &RecordedEvent) -> Envelope {
    Envelope {
        event_id: Envelope::event_id_for(
            &event.aggregate_type,
            &event.aggregate_id,
            event.sequence,
        ),
        global_position: event.checkpoint.global_position,
        transaction_id: event.checkpoint.transaction_id,
        aggregate_type: event.aggregate_type.clone(),
        aggregate_id: event.aggregate_id.clone(),
        sequence: event.sequence,
        event_type: event.event_type.clone(),
        event_version: event.event_version.clone(),
        recorded_at: event.recorded_at,
        payload: Envelope::untag(&event.event_type, event.payload.clone()),
        metadata: event.metadata.clone(),
    }
}
