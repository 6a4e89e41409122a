//! Personal data in an immutable history, made erasable (crypto-shredding).
//!
//! The personal fields of events ([`PERSONAL_FIELDS`]: an account's email and nickname)
//! are stored sealed with a key of their account ([`cipher`]), kept outside the events
//! ([`vault`]). The event store seals them as it writes (`store::sealing`); whoever reads
//! the history opens them through the key while it exists, and only as much as it may
//! show ([`Reveal`]): the account's own aggregate sees both, the read models, exports and
//! time travel see the nickname (the board shows it anyway) and never the email, and the
//! topic and replays carry both sealed. Closing an account destroys its key, and every
//! sealed value of it then reads as [`ERASED`], wherever a copy of the event went.

pub mod cipher;
pub mod vault;

use projections::Envelope;
use serde_json::Value;

pub use cipher::DataKey;
pub use vault::{destroy_key_in, Vault};

/// The personal fields of each event type that has any. An event that gains one is added
/// here (and the events written before it are sealed by a migration).
pub const PERSONAL_FIELDS: &[(&str, &[&str])] = &[("AccountRegistered", &["email", "nickname"])];

/// Personal fields the public API shows anyway (as an author's name), so the read models,
/// exports and time travel may read them while the key exists.
const PUBLIC_FIELDS: &[&str] = &["nickname"];

/// What an erased field reads as. No live value is empty: the field rules ask for at least
/// two characters of a nickname and a whole address.
pub const ERASED: &str = "";

/// How much of the personal data a reader may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    /// Every field: the account's own aggregate, deciding its commands.
    Everything,
    /// Only [`PUBLIC_FIELDS`]; the others stay sealed (or read as erased if written before
    /// sealing existed): the read models, exports and time travel.
    Public,
}

/// The personal fields of `event_type` (none for most).
pub fn personal_fields(event_type: &str) -> &'static [&'static str] {
    PERSONAL_FIELDS
        .iter()
        .find(|(name, _)| *name == event_type)
        .map_or(&[], |(_, fields)| fields)
}

/// The personal string fields of an event's body (its fields, as an envelope carries
/// them; a stored payload wraps them as `{"<EventType>": {fields}}`).
fn fields_mut<'a>(
    event_type: &str,
    body: &'a mut Value,
) -> impl Iterator<Item = (&'static str, &'a mut Value)> + 'a {
    let fields = personal_fields(event_type);
    body.as_object_mut().into_iter().flat_map(move |body| {
        body.iter_mut().filter_map(move |(name, value)| {
            let field = fields.iter().find(|f| **f == name.as_str())?;
            value.is_string().then_some((*field, value))
        })
    })
}

/// The body of a stored payload.
pub fn stored_body<'a>(event_type: &str, payload: &'a mut Value) -> &'a mut Value {
    if payload.get(event_type).is_some() {
        &mut payload[event_type]
    } else {
        payload
    }
}

/// Seals the personal fields of a stored payload that are still plain text.
pub fn seal_payload(event_type: &str, payload: &mut Value, key: &DataKey) {
    for (field, value) in fields_mut(event_type, stored_body(event_type, payload)) {
        let text = value.as_str().unwrap_or_default();
        if !cipher::is_sealed(text) {
            *value = Value::String(cipher::seal(key, field, text));
        }
    }
}

/// Whether a stored payload has a personal field still in plain text.
pub fn has_plain_fields(event_type: &str, payload: &mut Value) -> bool {
    fields_mut(event_type, stored_body(event_type, payload))
        .any(|(_, value)| !cipher::is_sealed(value.as_str().unwrap_or_default()))
}

/// Opens the personal fields of an event's body that `reveal` allows, with `key` (`None`
/// once destroyed: they read as [`ERASED`]). The others stay sealed; a plain one (written
/// before sealing) that `reveal` does not allow reads as erased too.
fn open_body(event_type: &str, body: &mut Value, key: Option<&DataKey>, reveal: Reveal) {
    for (field, value) in fields_mut(event_type, body) {
        let text = value.as_str().unwrap_or_default();
        let allowed = reveal == Reveal::Everything || PUBLIC_FIELDS.contains(&field);
        let opened = match (cipher::is_sealed(text), allowed, key) {
            (true, true, Some(key)) => cipher::open(key, field, text).unwrap_or_else(|error| {
                tracing::error!(field, %error, "a sealed personal field does not open; it reads as erased");
                ERASED.to_string()
            }),
            (true, true, None) => ERASED.to_string(),
            (true, false, _) | (false, true, _) => continue,
            (false, false, _) => ERASED.to_string(),
        };
        *value = Value::String(opened);
    }
}

/// An event as one reader or another holds it: what opening its personal fields needs.
pub trait PersonalEvent {
    fn aggregate_id(&self) -> &str;
    fn event_type(&self) -> &str;
    /// Its fields (`{field: value}`), inside whatever wrapping the reader's shape has.
    fn body_mut(&mut self) -> &mut Value;
}

/// The read side's events (from the topic or the store) carry their fields unwrapped.
impl PersonalEvent for Envelope {
    fn aggregate_id(&self) -> &str {
        &self.aggregate_id
    }
    fn event_type(&self) -> &str {
        &self.event_type
    }
    fn body_mut(&mut self) -> &mut Value {
        &mut self.payload
    }
}

/// cqrs-es's events carry the stored payload, `{"<EventType>": {fields}}`.
impl PersonalEvent for cqrs_es::persist::SerializedEvent {
    fn aggregate_id(&self) -> &str {
        &self.aggregate_id
    }
    fn event_type(&self) -> &str {
        &self.event_type
    }
    fn body_mut(&mut self) -> &mut Value {
        stored_body(&self.event_type, &mut self.payload)
    }
}

impl Vault {
    /// Opens what `reveal` allows of the events' personal fields, with one key lookup for
    /// all of them (none when no event has personal fields).
    pub async fn open_all<E: PersonalEvent>(
        &self,
        events: &mut [E],
        reveal: Reveal,
    ) -> Result<(), sqlx::Error> {
        let personal = events
            .iter()
            .filter(|e| !personal_fields(e.event_type()).is_empty())
            .map(|e| e.aggregate_id());
        let keys = self.keys(personal).await?;
        for event in events {
            if personal_fields(event.event_type()).is_empty() {
                continue;
            }
            let key = keys.get(event.aggregate_id()).cloned();
            let event_type = event.event_type().to_string();
            open_body(&event_type, event.body_mut(), key.as_ref(), reveal);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn open_payload(event_type: &str, payload: &mut Value, key: Option<&DataKey>, reveal: Reveal) {
        open_body(event_type, stored_body(event_type, payload), key, reveal);
    }

    fn registered(email: &str, nickname: &str) -> Value {
        json!({ "AccountRegistered": { "email": email, "nickname": nickname } })
    }

    #[test]
    fn only_personal_fields_are_sealed_and_each_reader_sees_its_share() {
        let key = DataKey::generate();
        let mut payload = registered("ann@example.com", "ann");
        seal_payload("AccountRegistered", &mut payload, &key);
        let text = payload.to_string();
        assert!(!text.contains("ann"), "{text}");
        assert!(!has_plain_fields("AccountRegistered", &mut payload));

        let mut own = payload.clone();
        open_payload(
            "AccountRegistered",
            &mut own,
            Some(&key),
            Reveal::Everything,
        );
        assert_eq!(own, registered("ann@example.com", "ann"));

        let mut public = payload.clone();
        open_payload("AccountRegistered", &mut public, Some(&key), Reveal::Public);
        assert_eq!(public["AccountRegistered"]["nickname"], "ann");
        assert!(cipher::is_sealed(
            public["AccountRegistered"]["email"].as_str().unwrap()
        ));

        let mut erased = payload;
        open_payload("AccountRegistered", &mut erased, None, Reveal::Everything);
        assert_eq!(erased, registered(ERASED, ERASED));
    }

    #[test]
    fn a_plain_payload_written_before_sealing_never_shows_its_email_publicly() {
        let mut payload = registered("ann@example.com", "ann");
        assert!(has_plain_fields("AccountRegistered", &mut payload));
        open_payload("AccountRegistered", &mut payload, None, Reveal::Public);
        assert_eq!(payload, registered(ERASED, "ann"));
    }

    #[test]
    fn other_events_are_left_alone() {
        let key = DataKey::generate();
        let mut payload = json!({ "PostCreated": { "title": "t", "nickname": "x" } });
        let before = payload.clone();
        seal_payload("PostCreated", &mut payload, &key);
        assert_eq!(payload, before);
    }
}
