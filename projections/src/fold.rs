//! Applies events to the read models, a batch at a time.
//!
//! Idempotent and convergent: each row remembers the sequence of the last event of its own
//! aggregate applied to it (`version`). An event at `version + 1` is applied; an older one
//! is a duplicate and changes nothing; a newer one means events are missing (a producer
//! dropped them, or the broker no longer has them), and the batch stops with a [`Gap`]
//! so the caller can fetch them from the event store: nothing is ever skipped. The
//! rows a batch touches are locked while it is decided, so two projectors briefly sharing
//! a partition during a rebalance (or a rebuild handing over to the live projector) cannot
//! both apply one event. Counters (a category's posts, a post's comments) change only
//! together with the state change of the post or comment they count, in the same
//! transaction, so a redelivered event never counts twice; and a counted row may exist
//! before its own creating event arrives, so the order in which different aggregates'
//! events arrive does not matter.
//!
//! A batch costs a few statements per table, not per event: the rows are loaded with one
//! `SELECT … FOR UPDATE`, changed in memory, and written back with multi-row upserts. The
//! live projector and rebuilds share this code, so they cannot disagree.

mod rows;

use std::collections::BTreeSet;

use aggregates::account::AccountEvent;
use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;
use serde::de::DeserializeOwned;
use sqlx::MySqlConnection;

use crate::{Envelope, ProjectionError};
use rows::{Rows, View};

/// The projector's name in `projection_progress`.
pub const READ_MODELS: &str = "read-models";

/// What a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub applied: usize,
    /// Already applied (redelivered or re-published).
    pub duplicates: usize,
    /// Aggregate types these read models do not follow, and malformed events (logged).
    pub skipped: usize,
}

/// An event decoded into its aggregate's event type.
enum Decoded {
    Account(AccountEvent),
    Category(CategoryEvent),
    Post(PostEvent),
    Comment(CommentEvent),
    Skip,
}

fn decode(event: &Envelope) -> Decoded {
    fn parse<E: DeserializeOwned>(event: &Envelope) -> Result<E, ProjectionError> {
        serde_json::from_value(event.tagged_payload()).map_err(|e| ProjectionError::Malformed {
            event_id: event.event_id,
            event_type: event.event_type.clone(),
            version: event.event_version.clone(),
            reason: e.to_string(),
        })
    }
    let decoded = match event.aggregate_type.as_str() {
        "account" => parse(event).map(Decoded::Account),
        "category" => parse(event).map(Decoded::Category),
        "post" => parse(event).map(Decoded::Post),
        "comment" => parse(event).map(Decoded::Comment),
        _ => Ok(Decoded::Skip),
    };
    decoded.unwrap_or_else(|malformed| {
        // One bad event must not stall its partition: log it and go on.
        tracing::error!(error = %malformed, "skipping an event that cannot be projected");
        Decoded::Skip
    })
}

/// Events of one aggregate that must be applied before `events[index]`: sequences
/// `from..=to` of `aggregate_type` `aggregate_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub index: usize,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("events {} to {} of {} {} are missing before this batch", .0.from, .0.to, .0.aggregate_type, .0.aggregate_id)]
    Gap(Gap),
}

/// Applies `events`, in order, inside the caller's transaction. On a [`Gap`] nothing has
/// been written; roll back, put the missing events in front, and apply again.
pub async fn apply_batch(
    conn: &mut MySqlConnection,
    events: &[Envelope],
) -> Result<Applied, BatchError> {
    let decoded: Vec<Decoded> = events.iter().map(decode).collect();
    let mut rows = Rows::default();

    // Lock and load every row the batch can touch. Comments first: a deleted comment names
    // the post whose count drops; then posts, which name the categories whose counts move.
    let ids = |pick: &dyn Fn(&Envelope, &Decoded) -> Vec<String>| -> BTreeSet<String> {
        events
            .iter()
            .zip(&decoded)
            .flat_map(|(e, d)| pick(e, d))
            .collect()
    };
    let comment_ids = ids(&|e, d| match d {
        Decoded::Comment(_) => vec![e.aggregate_id.clone()],
        _ => vec![],
    });
    rows.load(conn, View::Comments, &comment_ids).await?;
    let mut post_ids = ids(&|e, d| match d {
        Decoded::Post(_) => vec![e.aggregate_id.clone()],
        Decoded::Comment(CommentEvent::CommentAdded { post_id, .. }) => vec![post_id.to_string()],
        _ => vec![],
    });
    post_ids.extend(rows.comments.values().filter_map(|c| c.post_id.clone()));
    rows.load(conn, View::Posts, &post_ids).await?;
    let mut category_ids = ids(&|e, d| match d {
        Decoded::Category(_) => vec![e.aggregate_id.clone()],
        Decoded::Post(PostEvent::PostCreated { category_id, .. }) => vec![category_id.to_string()],
        _ => vec![],
    });
    category_ids.extend(rows.posts.values().filter_map(|p| p.category_id.clone()));
    rows.load(conn, View::Categories, &category_ids).await?;
    let account_ids = ids(&|e, d| match d {
        Decoded::Account(_) => vec![e.aggregate_id.clone()],
        _ => vec![],
    });
    rows.load(conn, View::Accounts, &account_ids).await?;

    let mut outcome = Applied::default();
    for (index, (event, decoded)) in events.iter().zip(decoded).enumerate() {
        let step = match decoded {
            Decoded::Skip => {
                outcome.skipped += 1;
                continue;
            }
            Decoded::Account(e) => apply_account(&mut rows, event, e),
            Decoded::Category(e) => apply_category(&mut rows, event, e),
            Decoded::Post(e) => apply_post(&mut rows, event, e),
            Decoded::Comment(e) => apply_comment(&mut rows, event, e),
        };
        match step {
            Step::Applied => outcome.applied += 1,
            Step::Duplicate => outcome.duplicates += 1,
            Step::Missing { from } => {
                return Err(BatchError::Gap(Gap {
                    index,
                    aggregate_type: event.aggregate_type.clone(),
                    aggregate_id: event.aggregate_id.clone(),
                    from,
                    to: event.sequence - 1,
                }));
            }
        }
    }
    rows.write(conn).await?;
    Ok(outcome)
}

/// What one event does to its row.
enum Step {
    Applied,
    Duplicate,
    /// Sequences `from..event.sequence` have not been applied yet.
    Missing {
        from: i64,
    },
}

/// Decides by the row's version; on [`Step::Applied`] the version has moved and the caller
/// applies the event's changes.
fn next(version: &mut i64, event: &Envelope) -> Step {
    if event.sequence <= *version {
        Step::Duplicate
    } else if event.sequence > *version + 1 {
        Step::Missing { from: *version + 1 }
    } else {
        *version = event.sequence;
        Step::Applied
    }
}

/// Returns early from an `apply_*` unless the event is the row's next one.
macro_rules! unless_next {
    ($version:expr, $event:expr) => {
        match next(&mut $version, $event) {
            Step::Applied => {}
            other => return other,
        }
    };
}

fn apply_account(rows: &mut Rows, event: &Envelope, payload: AccountEvent) -> Step {
    let row = rows.account(&event.aggregate_id);
    unless_next!(row.version, event);
    if let AccountEvent::AccountRegistered { nickname, .. } = payload {
        row.nickname = Some(nickname);
    }
    Step::Applied
}

fn apply_category(rows: &mut Rows, event: &Envelope, payload: CategoryEvent) -> Step {
    let row = rows.category(&event.aggregate_id);
    unless_next!(row.version, event);
    let CategoryEvent::CategoryCreated {
        name, description, ..
    } = payload;
    row.name = Some(name);
    row.description = Some(description);
    row.created_at = Some(event.recorded_at);
    Step::Applied
}

fn apply_post(rows: &mut Rows, event: &Envelope, payload: PostEvent) -> Step {
    let row = rows.post(&event.aggregate_id);
    unless_next!(row.version, event);
    match payload {
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
            row.created_at = Some(event.recorded_at);
            row.updated_at = Some(event.recorded_at);
            rows.category(&category_id.to_string()).post_count += 1;
        }
        PostEvent::PostEdited { title, content } => {
            if title.is_some() {
                row.title = title;
            }
            if content.is_some() {
                row.content = content;
            }
            row.updated_at = Some(event.recorded_at);
        }
        PostEvent::PostDeleted { .. } => {
            row.deleted = true;
            if let Some(category_id) = row.category_id.clone() {
                rows.category(&category_id).post_count -= 1;
            }
        }
    }
    Step::Applied
}

fn apply_comment(rows: &mut Rows, event: &Envelope, payload: CommentEvent) -> Step {
    let row = rows.comment(&event.aggregate_id);
    unless_next!(row.version, event);
    match payload {
        CommentEvent::CommentAdded {
            post_id,
            author_id,
            content,
        } => {
            row.post_id = Some(post_id.to_string());
            row.author_id = Some(author_id.to_string());
            row.content = Some(content);
            row.created_at = Some(event.recorded_at);
            rows.post(&post_id.to_string()).comment_count += 1;
        }
        CommentEvent::CommentDeleted { .. } => {
            row.deleted = true;
            if let Some(post_id) = row.post_id.clone() {
                rows.post(&post_id).comment_count -= 1;
            }
        }
    }
    Step::Applied
}

/// Takes the projection's lock in shared mode for the caller's transaction: the live
/// projector does this first in every batch, so that a rebuild (which takes it
/// exclusively) can swap tables between two batches, never during one.
pub async fn share_lock(conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT projection FROM projection_locks WHERE projection = ? LOCK IN SHARE MODE")
        .bind(READ_MODELS)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(())
}

/// Records how far a projector has come on a partition, in the caller's transaction.
pub async fn record_progress(
    conn: &mut MySqlConnection,
    projector: &str,
    topic: &str,
    partition: i32,
    next_offset: i64,
    last: &Envelope,
    member: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO projection_progress
                (projector, topic, partition_id, next_offset, last_position, last_recorded_at,
                 updated_by, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, UTC_TIMESTAMP(3))
         ON DUPLICATE KEY UPDATE
                next_offset = GREATEST(next_offset, VALUES(next_offset)),
                last_position = VALUES(last_position),
                last_recorded_at = VALUES(last_recorded_at),
                updated_by = VALUES(updated_by),
                updated_at = VALUES(updated_at)",
    )
    .bind(projector)
    .bind(topic)
    .bind(partition)
    .bind(next_offset)
    .bind(last.global_position)
    .bind(last.recorded_at)
    .bind(member)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// True for the errors after which the same batch may simply be tried again: a deadlock
/// or lock wait time-out between two appliers.
pub fn is_retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("40001") | Some("HY000"))
                && (db.message().contains("Deadlock") || db.message().contains("Lock wait timeout"))
        }
        _ => false,
    }
}
