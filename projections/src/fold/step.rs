//! One event's step: whether it is the next event of its row (by the row's `version` and
//! its aggregate's quarantine), and what it changes when it is.

use aggregates::account::AccountEvent;
use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;
use aggregates::AggregateKind;

use super::decode::Payload;
use super::rows::{Aggregate, Quarantine, Rows};
use crate::Envelope;

/// Where an event stands against the `version` of its aggregate's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionCheck {
    /// The row's next event: it is applied.
    Next,
    /// Already applied (redelivered or re-published): it changes nothing.
    Duplicate,
    /// Sequences `from..` the event's have not been applied yet.
    Missing { from: i64 },
}

pub fn check_version(version: i64, sequence: i64) -> VersionCheck {
    if sequence <= version {
        VersionCheck::Duplicate
    } else if sequence > version + 1 {
        VersionCheck::Missing { from: version + 1 }
    } else {
        VersionCheck::Next
    }
}

/// What becomes of an event, given its row's `version` and its aggregate's quarantine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// Its row's next event, and nothing of its aggregate waits in quarantine before it:
    /// applied (or, if it does not decode, quarantined itself).
    Next,
    /// Applied before, or already in quarantine: it changes nothing.
    Duplicate,
    /// Later than an event of its aggregate in quarantine (sequence `first`): it waits
    /// there too, so that the aggregate's events still apply in order once that one does.
    /// Not a gap either, even with sequences missing between: fetching them would only
    /// bring them to wait as well.
    WaitsBehind { first: i64 },
    /// Sequences `from..` have not been applied yet.
    Missing { from: i64 },
}

/// The [`Fate`] of `aggregate`'s event at `sequence`, its row at `version`.
pub fn fate(version: i64, sequence: i64, quarantine: &Quarantine, aggregate: &Aggregate) -> Fate {
    if quarantine.holds(aggregate, sequence) {
        return Fate::Duplicate;
    }
    match (
        check_version(version, sequence),
        quarantine.first_held(aggregate),
    ) {
        (VersionCheck::Duplicate, _) => Fate::Duplicate,
        (_, Some(first)) if sequence > first => Fate::WaitsBehind { first },
        (VersionCheck::Next, _) => Fate::Next,
        (VersionCheck::Missing { from }, _) => Fate::Missing { from },
    }
}

/// The `version` of the row of `envelope`'s own aggregate, of `kind` (an empty row if none
/// is loaded, as with every [`Rows`] accessor).
pub fn version<'r>(rows: &'r mut Rows, envelope: &Envelope, kind: AggregateKind) -> &'r mut i64 {
    let id = &envelope.aggregate_id;
    match kind {
        AggregateKind::Account => &mut rows.account(id).version,
        AggregateKind::Category => &mut rows.category(id).version,
        AggregateKind::Post => &mut rows.post(id).version,
        AggregateKind::Comment => &mut rows.comment(id).version,
    }
}

/// Applies the changes of an event that is its row's next one (see [`check_version`]),
/// counters included; the caller has moved the row's version.
pub fn apply(rows: &mut Rows, envelope: &Envelope, payload: Payload) {
    match payload {
        Payload::Account(event) => apply_account(rows, envelope, event),
        Payload::Category(event) => apply_category(rows, envelope, event),
        Payload::Post(event) => apply_post(rows, envelope, event),
        Payload::Comment(event) => apply_comment(rows, envelope, event),
    }
}

fn apply_account(rows: &mut Rows, envelope: &Envelope, event: AccountEvent) {
    let row = rows.account(&envelope.aggregate_id);
    match event {
        AccountEvent::AccountRegistered { nickname, .. } => row.nickname = Some(nickname),
        // The closed account's posts and comments stay; their author shows no nickname.
        // A released sign-up (never verified, so the author of nothing) is gone alike:
        // its key went with it, so a rebuild could not read its nickname either.
        AccountEvent::AccountClosed {} | AccountEvent::SignUpReleased { .. } => {
            row.nickname = None;
            row.closed = true;
        }
        AccountEvent::AccountVerified {}
        | AccountEvent::AccountPromoted { .. }
        | AccountEvent::PasswordReset {} => {}
    }
}

fn apply_category(rows: &mut Rows, envelope: &Envelope, event: CategoryEvent) {
    let row = rows.category(&envelope.aggregate_id);
    let CategoryEvent::CategoryCreated {
        name, description, ..
    } = event;
    row.name = Some(name);
    row.description = Some(description);
    row.created_at = Some(envelope.recorded_at);
}

fn apply_post(rows: &mut Rows, envelope: &Envelope, event: PostEvent) {
    let row = rows.post(&envelope.aggregate_id);
    match event {
        PostEvent::PostCreated {
            category_id,
            author_id,
            title,
            content,
        } => {
            row.category_id = Some(category_id.to_string());
            row.author_id = Some(author_id.to_string());
            row.title = Some(title);
            row.content = Some(content);
            row.created_at = Some(envelope.recorded_at);
            row.updated_at = Some(envelope.recorded_at);
            rows.category(&category_id.to_string()).post_count += 1;
        }
        PostEvent::PostEdited { title, content } => {
            if title.is_some() {
                row.title = title;
            }
            if content.is_some() {
                row.content = content;
            }
            row.updated_at = Some(envelope.recorded_at);
        }
        PostEvent::PostDeleted { .. } => {
            row.deleted = true;
            if let Some(category_id) = row.category_id.clone() {
                rows.category(&category_id).post_count -= 1;
            }
        }
    }
}

fn apply_comment(rows: &mut Rows, envelope: &Envelope, event: CommentEvent) {
    let row = rows.comment(&envelope.aggregate_id);
    match event {
        CommentEvent::CommentAdded {
            post_id,
            author_id,
            content,
        } => {
            row.post_id = Some(post_id.to_string());
            row.author_id = Some(author_id.to_string());
            row.content = Some(content);
            row.created_at = Some(envelope.recorded_at);
            rows.post(&post_id.to_string()).comment_count += 1;
        }
        CommentEvent::CommentDeleted { .. } => {
            row.deleted = true;
            if let Some(post_id) = row.post_id.clone() {
                rows.post(&post_id).comment_count -= 1;
            }
        }
    }
}
