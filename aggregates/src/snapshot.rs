//! Which aggregates may be kept as snapshots, and under which schema (the event store's
//! snapshots are `board`'s `store::aggregate_loader`).

use cqrs_es::Aggregate;

/// An aggregate whose state may be stored beside its events, so that loading it reads the
/// snapshot and the events after it instead of its whole history.
///
/// Only aggregates whose state holds no personal data implement it: a snapshot is stored
/// as it is, while personal data is kept at rest only sealed with its account's key (an
/// account's state holds the plain email and nickname, so accounts have no snapshots).
pub trait Snapshot: Aggregate {
    /// Names the meaning of the serialized state. Change it whenever the state changes
    /// shape or what it is folded from changes (a field added, renamed or computed
    /// differently, an upcaster that changes what the events mean): snapshots of another
    /// schema are then ignored, the history is replayed, and a new snapshot replaces them.
    /// `tests::the_snapshotted_states_keep_their_shape` fails on a change of shape.
    const SNAPSHOT_SCHEMA: &'static str;
}

impl Snapshot for crate::category::Category {
    const SNAPSHOT_SCHEMA: &'static str = "category.1";
}

impl Snapshot for crate::post::Post {
    const SNAPSHOT_SCHEMA: &'static str = "post.1";
}

impl Snapshot for crate::comment::Comment {
    const SNAPSHOT_SCHEMA: &'static str = "comment.1";
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::Snapshot;
    use crate::category::Category;
    use crate::comment::Comment;
    use crate::post::Post;

    fn shape<A: Snapshot>() -> (&'static str, serde_json::Value) {
        (
            A::SNAPSHOT_SCHEMA,
            serde_json::to_value(A::default()).expect("a state serializes"),
        )
    }

    /// When this fails, the state of a snapshotted aggregate changed: change its
    /// `SNAPSHOT_SCHEMA` too (stored snapshots of the old one are then ignored), and update
    /// the expected shape here.
    #[test]
    fn the_snapshotted_states_keep_their_shape() {
        let nil = "00000000-0000-0000-0000-000000000000";
        assert_eq!(
            shape::<Category>(),
            (
                "category.1",
                json!({"created": false, "name": "", "description": ""})
            )
        );
        assert_eq!(
            shape::<Post>(),
            (
                "post.1",
                json!({"created": false, "deleted": false, "category_id": nil,
                       "author_id": nil, "title": "", "content": ""})
            )
        );
        assert_eq!(
            shape::<Comment>(),
            (
                "comment.1",
                json!({"created": false, "deleted": false, "post_id": nil,
                       "author_id": nil, "content": ""})
            )
        );
    }
}
