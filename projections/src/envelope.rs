//! The event envelope: how every event travels on Kafka (and in exports and replays).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// One event, as published by the relay. JSON, camelCase, keyed on Kafka by
/// `aggregateId` so that one aggregate's events stay in order on one partition.
///
/// `J` is how the payload and metadata are held: parsed (`Value`, what every reader that
/// looks inside uses), or as JSON text (`Box<RawValue>`, for a writer that only passes
/// them on, such as the export).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope<J = Value> {
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
    #[serde(serialize_with = "crate::time::serialize_exact")]
    pub recorded_at: DateTime<Utc>,
    /// The event's own fields (e.g. `{"title": ..., "content": ...}`).
    pub payload: J,
    /// `requestId`, `correlationId`, `accountId` (the acting account).
    pub metadata: J,
}

/// Namespace for event ids (UUIDv5 of "type/id/sequence").
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_3c2e_9a4d_4c55_8e0f_b0a2_d1e3_f405);

impl Envelope {
    pub fn event_id_for(aggregate_type: &str, aggregate_id: &str, sequence: i64) -> Uuid {
        // `Uuid::new_v5`'s own SHA-1 is written in plain Rust; this one uses the CPU's SHA
        // instructions where it has them, and the hash was an eighth of an export's time.
        // The id is the same (a test holds it to `new_v5`).
        use sha1::{Digest, Sha1};
        let mut digits = itoa::Buffer::new();
        let digest = Sha1::new()
            .chain_update(EVENT_ID_NAMESPACE.as_bytes())
            .chain_update(aggregate_type)
            .chain_update("/")
            .chain_update(aggregate_id)
            .chain_update("/")
            .chain_update(digits.format(sequence))
            .finalize();
        let mut bytes = [0; 16];
        bytes.copy_from_slice(&digest[..16]);
        uuid::Builder::from_sha1_bytes(bytes).into_uuid()
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

impl<J> Envelope<J> {
    /// The same envelope with its payload and metadata converted by `convert`.
    pub fn map_json<K, E>(
        self,
        mut convert: impl FnMut(J) -> Result<K, E>,
    ) -> Result<Envelope<K>, E> {
        Ok(Envelope {
            payload: convert(self.payload)?,
            metadata: convert(self.metadata)?,
            event_id: self.event_id,
            global_position: self.global_position,
            transaction_id: self.transaction_id,
            aggregate_type: self.aggregate_type,
            aggregate_id: self.aggregate_id,
            sequence: self.sequence,
            event_type: self.event_type,
            event_version: self.event_version,
            recorded_at: self.recorded_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_id_is_the_v5_uuid_of_type_id_and_sequence() {
        assert_eq!(
            Envelope::event_id_for("post", "0192-ab", 12),
            Uuid::new_v5(&EVENT_ID_NAMESPACE, b"post/0192-ab/12")
        );
        // Fixed for good: re-published events keep their ids.
        assert_eq!(
            Envelope::event_id_for("post", "0192-ab", 12).to_string(),
            "b3a3a2d3-2ba0-55e3-8956-ce78ccff2e2f"
        );
        for (aggregate_type, id, sequence) in [
            ("account", "", 0),
            ("comment", "0192f0c4-7a1e-7d3b-9c55-3e1f0a9b8c7d", i64::MAX),
            ("category", "a name with é and / in it", -1),
        ] {
            let name = format!("{aggregate_type}/{id}/{sequence}");
            assert_eq!(
                Envelope::event_id_for(aggregate_type, id, sequence),
                Uuid::new_v5(&EVENT_ID_NAMESPACE, name.as_bytes())
            );
        }
    }
}
