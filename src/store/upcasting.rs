//! Event versions. A stored event is never rewritten: an event stored in an old version is
//! raised to the current one whenever it is read, by the upcasters listed here. Both the
//! aggregates (`store::aggregate_loader`) and the global reader (relay, rebuilds, exports)
//! use this one list, so every reader sees the same current shape. An upcaster that
//! changes what an aggregate's events fold to must come with a new `SNAPSHOT_SCHEMA` for
//! that aggregate (`aggregates::Snapshot`), or its old snapshots would still be read.
//!
//! History of changes:
//! - `CommentAdded` 1.0 -> 2.0: the comment's text moved from `text` to `content`, the name
//!   every other event and the API use.

use serde_json::Value;

/// Raises `event_type` at `from` to `to`; `transform` receives and returns the stored
/// payload (`{"<EventType>": {fields}}`).
struct Upcaster {
    event_type: &'static str,
    from: &'static str,
    to: &'static str,
    transform: fn(Value) -> Value,
}

const UPCASTERS: &[Upcaster] = &[Upcaster {
    event_type: "CommentAdded",
    from: "1.0",
    to: "2.0",
    transform: comment_text_to_content,
}];

fn comment_text_to_content(mut payload: Value) -> Value {
    if let Some(fields) = payload
        .get_mut("CommentAdded")
        .and_then(Value::as_object_mut)
    {
        if let Some(text) = fields.remove("text") {
            fields.insert("content".to_string(), text);
        }
    }
    payload
}

/// The upcaster that raises `event_type` from `version`, if any.
fn step_from(event_type: &str, version: &str) -> Option<&'static Upcaster> {
    UPCASTERS
        .iter()
        .find(|u| u.event_type == event_type && u.from == version)
}

/// Whether an event stored at `version` is read as stored (no upcaster raises it).
pub fn is_current(event_type: &str, version: &str) -> bool {
    step_from(event_type, version).is_none()
}

/// Raises a stored event to its current version, step by step.
pub fn upcast(event_type: &str, version: &mut String, payload: &mut Value) {
    while let Some(step) = step_from(event_type, version) {
        *payload = (step.transform)(std::mem::take(payload));
        *version = step.to.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_version_1_comment_is_raised_to_version_2() {
        let mut version = "1.0".to_string();
        let mut payload =
            json!({ "CommentAdded": { "post_id": "p", "author_id": "a", "text": "hi" } });
        upcast("CommentAdded", &mut version, &mut payload);
        assert_eq!(version, "2.0");
        assert_eq!(
            payload,
            json!({ "CommentAdded": { "post_id": "p", "author_id": "a", "content": "hi" } })
        );
    }

    #[test]
    fn current_versions_and_other_events_pass_unchanged() {
        let mut version = "2.0".to_string();
        let mut payload = json!({ "CommentAdded": { "content": "hi" } });
        upcast("CommentAdded", &mut version, &mut payload);
        assert_eq!(
            (
                version.as_str(),
                payload["CommentAdded"]["content"].as_str()
            ),
            ("2.0", Some("hi"))
        );
        let mut version = "1.0".to_string();
        let mut payload = json!({ "PostDeleted": {} });
        upcast("PostDeleted", &mut version, &mut payload);
        assert_eq!(version, "1.0");
    }
}
