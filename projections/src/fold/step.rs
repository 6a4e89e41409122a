//! One event's step: whether it is the next event of its row (by the row's `version`), and
//! what it changes when it is.

use aggregates::account::AccountEvent;
use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;

use super::decode::Payload;
use super::rows::Rows;
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

/// The `version` of the row of `envelope`'s own aggregate (an empty row if none is loaded,
/// as with every [`Rows`] accessor).
pub fn version<'r>(rows: &'r mut Rows, envelope: &Envelope, payload: &Payload) -> &'r mut i64 {
    let id = &envelope.aggregate_id;
    match payload {
        Payload::Account(_) => &mut rows.account(id).version,
        Payload::Category(_) => &mut rows.category(id).version,
        Payload::Post(_) => &mut rows.post(id).version,
        Payload::Comment(_) => &mut rows.comment(id).version,
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
    if let AccountEvent::AccountRegistered { nickname, .. } = event {
        row.nickname = Some(nickname);
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
