//! The event envelope: how every event travels on Kafka (and in exports and replays).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One event, as published by the relay. JSON, camelCase, keyed on Kafka by
/// `aggregateId` so that one aggregate's events stay in order on one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Stable across re-publication: derived from (aggregate type, id, sequence).
    pub event_id: Uuid,
    pub global_position: i64,
    /// With `globalPosition`, the event's place in the global order (see the reader).
    pub transaction_id: u64,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub recorded_at: DateTime<Utc>,
    /// The event's own fields (e.g. `{"title": ..., "content": ...}`).
    pub payload: Value,
    /// `requestId`, `correlationId`, `accountId` (the acting account).
    pub metadata: Value,
}

/// Namespace for event ids (UUIDv5 of "type/id/sequence").
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c2e_9a4d_4c55_8e0f_b0a2_d1e3_f405);

impl Envelope {
    pub fn event_id_for(aggregate_type: &str, aggregate_id: &str, sequence: i64) -> Uuid {
        let name = format!("{aggregate_type}/{aggregate_id}/{sequence}");
        Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
    }

    /// The event as the aggregate's event enum expects it: cqrs-es stores an event as
    /// `{"<EventType>": {fields}}`; the envelope carries only the fields.
    pub fn tagged_payload(&self) -> Value {
        serde_json::json!({ self.event_type.clone(): self.payload.clone() })
    }

    /// Strips the `{"<EventType>": ...}` wrapper of a stored payload.
    pub fn untag(event_type: &str, stored: Value) -> Value {
        match stored {
            Value::Object(mut map) if map.len() == 1 && map.contains_key(event_type) => {
                map.remove(event_type).unwrap_or(Value::Null)
            }
            other => other,
        }
    }
}
