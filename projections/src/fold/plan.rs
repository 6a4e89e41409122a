//! Which rows a batch can touch, so that they are locked and loaded before the fold: the
//! fold must find every row it changes already loaded, since a row written back without
//! its lock could overwrite another applier's change. The same holds for the quarantine:
//! the fold reads and adds to the quarantine of every aggregate it sees an event of.

use std::collections::BTreeSet;

use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;

use super::decode::{Decoded, Event, Payload};
use super::rows::{Aggregate, Rows, View};

/// The order in which the views are loaded: some ids are known only from rows loaded
/// before. Comments first: a deleted comment names the post whose count drops; then posts,
/// which name the categories whose counts move; accounts depend on nothing.
pub const LOAD_ORDER: [View; 4] = [
    View::Comments,
    View::Posts,
    View::Categories,
    View::Accounts,
];

/// The ids of `view` the fold of `events` can touch. `before` are the ids planned for the
/// view before it in [`LOAD_ORDER`], whose rows are already in `loaded`.
pub fn ids_to_load(
    view: View,
    events: &[Event<'_>],
    loaded: &Rows,
    before: &BTreeSet<String>,
) -> BTreeSet<String> {
    let named = events.iter().filter_map(|event| named(view, event));
    match view {
        View::Comments | View::Accounts => named.collect(),
        // A `CommentDeleted` does not name its post: the comment's row does.
        View::Posts => named
            .chain(
                before
                    .iter()
                    .filter_map(|id| loaded.comments.get(id)?.post_id.clone()),
            )
            .collect(),
        // A `PostDeleted` does not name its category: the post's row does.
        View::Categories => named
            .chain(
                before
                    .iter()
                    .filter_map(|id| loaded.posts.get(id)?.category_id.clone()),
            )
            .collect(),
    }
}

/// The aggregates whose quarantine the fold of `events` reads: those of every event of an
/// aggregate the read models follow (loaded after the view rows, whose locks come first).
pub fn aggregates(events: &[Event<'_>]) -> BTreeSet<Aggregate> {
    events
        .iter()
        .filter_map(|event| Some((event.decoded.kind()?, event.envelope.aggregate_id.clone())))
        .collect()
}

/// The id of `view` that `event` names, if any: its own aggregate's, or one its payload
/// refers to (the post a comment is added to, the category a post is created in). An
/// event that does not decode names only its own row, whose version says whether it is
/// that row's next event.
fn named(view: View, event: &Event<'_>) -> Option<String> {
    let own = || Some(event.envelope.aggregate_id.clone());
    let payload = match &event.decoded {
        Decoded::Event(payload) => payload,
        Decoded::Malformed { kind, .. } if *kind == view.kind() => return own(),
        Decoded::Malformed { .. } | Decoded::Unfollowed => return None,
    };
    match (view, payload) {
        (View::Accounts, Payload::Account(_)) => own(),
        (View::Categories, Payload::Category(_)) => own(),
        (View::Categories, Payload::Post(PostEvent::PostCreated { category_id, .. })) => {
            Some(category_id.to_string())
        }
        (View::Posts, Payload::Post(_)) => own(),
        (View::Posts, Payload::Comment(CommentEvent::CommentAdded { post_id, .. })) => {
            Some(post_id.to_string())
        }
        (View::Comments, Payload::Comment(_)) => own(),
        _ => None,
    }
}
