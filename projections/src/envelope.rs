//! The event envelope: how every event travels on Kafka (and in exports and replays).

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
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
        // Built by hand: this runs for every event an export or the relay writes, and
        // `format!` took about half as long as the hash itself.
        let mut digits = itoa::Buffer::new();
        let sequence = digits.format(sequence);
        let mut name =
            Vec::with_capacity(aggregate_type.len() + aggregate_id.len() + 2 + sequence.len());
        for part in [aggregate_type, "/", aggregate_id, "/", sequence] {
            name.extend_from_slice(part.as_bytes());
        }
        Uuid::new_v5(&EVENT_ID_NAMESPACE, &name)
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

    /// [`Envelope::untag`] on JSON text, without parsing the fields: the body of a stored
    /// payload `{"<event_type>": body}`, or `None` for any other shape.
    pub fn untag_text<'a>(event_type: &str, stored: &'a str) -> Option<&'a RawValue> {
        let tagged: OneEntry = serde_json::from_str(stored).ok()?;
        (tagged.key == event_type).then_some(tagged.value)
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

/// A JSON object of exactly one entry, borrowed from its text: a key without escapes and
/// its value unparsed.
struct OneEntry<'a> {
    key: &'a str,
    value: &'a RawValue,
}

impl<'de> Deserialize<'de> for OneEntry<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneEntryVisitor;
        impl<'de> Visitor<'de> for OneEntryVisitor {
            type Value = OneEntry<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of one entry")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<OneEntry<'de>, M::Error> {
                let (key, value) = map
                    .next_entry()?
                    .ok_or_else(|| de::Error::invalid_length(0, &self))?;
                if map.next_key::<IgnoredAny>()?.is_some() {
                    return Err(de::Error::invalid_length(2, &self));
                }
                Ok(OneEntry { key, value })
            }
        }
        deserializer.deserialize_map(OneEntryVisitor)
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
    }

    #[test]
    fn untag_text_reads_only_an_object_of_the_event_type_alone() {
        let body = |stored: &str| {
            Envelope::untag_text("PostEdited", stored).map(|body| body.get().to_string())
        };
        assert_eq!(
            body(r#"{"PostEdited": {"title": "a"}}"#).as_deref(),
            Some(r#"{"title": "a"}"#)
        );
        assert_eq!(body(r#"{"PostDeleted": {}}"#), None);
        assert_eq!(body(r#"{"PostEdited": {}, "extra": 1}"#), None);
        assert_eq!(body(r#"{}"#), None);
        assert_eq!(body(r#"["PostEdited"]"#), None);
    }
}
