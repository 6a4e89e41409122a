//! Applies events to the read models.
//!
//! Idempotent and convergent: each row remembers the sequence of the last event of its own
//! aggregate applied to it (`version`), and an event is applied only if it is newer. The
//! row is locked while that is decided, so two projectors briefly sharing a partition
//! during a rebalance cannot both apply one event. Counters (a category's posts, a post's
//! comments) change only together with the state change of the post or comment they count,
//! in the same transaction, so a redelivered event never counts twice; and they are
//! written as upserted deltas, so they are right whichever aggregate's event arrives first.

use aggregates::account::AccountEvent;
use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;
use serde::de::DeserializeOwned;
use sqlx::MySqlConnection;

use crate::{Envelope, ProjectionError};

/// The projector's name in `projection_progress`.
pub const READ_MODELS: &str = "read-models";

/// What `apply` did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    /// Already applied (a redelivery or a re-publication).
    Duplicate,
    /// An aggregate type these read models do not follow.
    Ignored,
}

/// Applies `event` inside the caller's transaction.
pub async fn apply(
    conn: &mut MySqlConnection,
    event: &Envelope,
) -> Result<Outcome, ProjectionError> {
    match event.aggregate_type.as_str() {
        "account" => apply_account(conn, event, decode(event)?).await,
        "category" => apply_category(conn, event, decode(event)?).await,
        "post" => apply_post(conn, event, decode(event)?).await,
        "comment" => apply_comment(conn, event, decode(event)?).await,
        _ => Ok(Outcome::Ignored),
    }
}

fn decode<E: DeserializeOwned>(event: &Envelope) -> Result<E, ProjectionError> {
    serde_json::from_value(event.tagged_payload()).map_err(|e| ProjectionError::Malformed {
        event_id: event.event_id,
        event_type: event.event_type.clone(),
        version: event.event_version.clone(),
        reason: e.to_string(),
    })
}

/// The view tables, each keyed by its aggregate's id.
#[derive(Clone, Copy)]
enum View {
    Accounts,
    Categories,
    Posts,
    Comments,
}

impl View {
    fn table_and_key(self) -> (&'static str, &'static str) {
        match self {
            Self::Accounts => ("accounts_view", "account_id"),
            Self::Categories => ("categories_view", "category_id"),
            Self::Posts => ("posts_view", "post_id"),
            Self::Comments => ("comments_view", "comment_id"),
        }
    }
}

/// Makes sure the row exists, locks it, and says whether `event` is newer than it.
async fn lock_if_newer(
    conn: &mut MySqlConnection,
    view: View,
    event: &Envelope,
) -> Result<bool, sqlx::Error> {
    let (table, key) = view.table_and_key();
    sqlx::query(&format!("INSERT IGNORE INTO {table} ({key}) VALUES (?)"))
        .bind(&event.aggregate_id)
        .execute(&mut *conn)
        .await?;
    let version: i64 = sqlx::query_scalar(&format!(
        "SELECT version FROM {table} WHERE {key} = ? FOR UPDATE"
    ))
    .bind(&event.aggregate_id)
    .fetch_one(&mut *conn)
    .await?;
    Ok(version < event.sequence)
}

/// Adds `delta` to a counter of the row `id`, creating the row if its own creating event
/// has not arrived yet.
async fn add_to_counter(
    conn: &mut MySqlConnection,
    view: View,
    counter: &str,
    id: &str,
    delta: i32,
) -> Result<(), sqlx::Error> {
    let (table, key) = view.table_and_key();
    sqlx::query(&format!(
        "INSERT INTO {table} ({key}, {counter}) VALUES (?, ?)
         ON DUPLICATE KEY UPDATE {counter} = {counter} + ?"
    ))
    .bind(id)
    .bind(delta)
    .bind(delta)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn apply_account(
    conn: &mut MySqlConnection,
    event: &Envelope,
    payload: AccountEvent,
) -> Result<Outcome, ProjectionError> {
    if !lock_if_newer(conn, View::Accounts, event).await? {
        return Ok(Outcome::Duplicate);
    }
    let nickname = match payload {
        AccountEvent::AccountRegistered { nickname, .. } => Some(nickname),
        AccountEvent::AccountVerified {} | AccountEvent::AccountPromoted { .. } => None,
    };
    sqlx::query(
        "UPDATE accounts_view SET nickname = COALESCE(?, nickname), version = ? WHERE account_id = ?",
    )
    .bind(nickname)
    .bind(event.sequence)
    .bind(&event.aggregate_id)
    .execute(&mut *conn)
    .await?;
    Ok(Outcome::Applied)
}

async fn apply_category(
    conn: &mut MySqlConnection,
    event: &Envelope,
    payload: CategoryEvent,
) -> Result<Outcome, ProjectionError> {
    if !lock_if_newer(conn, View::Categories, event).await? {
        return Ok(Outcome::Duplicate);
    }
    let CategoryEvent::CategoryCreated {
        name, description, ..
    } = payload;
    sqlx::query(
        "UPDATE categories_view SET name = ?, description = ?, created_at = ?, version = ?
          WHERE category_id = ?",
    )
    .bind(name)
    .bind(description)
    .bind(event.recorded_at)
    .bind(event.sequence)
    .bind(&event.aggregate_id)
    .execute(&mut *conn)
    .await?;
    Ok(Outcome::Applied)
}

async fn apply_post(
    conn: &mut MySqlConnection,
    event: &Envelope,
    payload: PostEvent,
) -> Result<Outcome, ProjectionError> {
    if !lock_if_newer(conn, View::Posts, event).await? {
        return Ok(Outcome::Duplicate);
    }
    let id = &event.aggregate_id;
    match payload {
        PostEvent::PostCreated {
            category_id,
            author_id,
            title,
            content,
        } => {
            sqlx::query(
                "UPDATE posts_view SET category_id = ?, author_id = ?, title = ?, content = ?,
                        created_at = ?, updated_at = ?, version = ?
                  WHERE post_id = ?",
            )
            .bind(category_id.to_string())
            .bind(author_id.to_string())
            .bind(title)
            .bind(content)
            .bind(event.recorded_at)
            .bind(event.recorded_at)
            .bind(event.sequence)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            add_to_counter(
                conn,
                View::Categories,
                "post_count",
                &category_id.to_string(),
                1,
            )
            .await?;
        }
        PostEvent::PostEdited { title, content } => {
            sqlx::query(
                "UPDATE posts_view SET title = COALESCE(?, title), content = COALESCE(?, content),
                        updated_at = ?, version = ?
                  WHERE post_id = ?",
            )
            .bind(title)
            .bind(content)
            .bind(event.recorded_at)
            .bind(event.sequence)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        PostEvent::PostDeleted { .. } => {
            let category_id: Option<String> =
                sqlx::query_scalar("SELECT category_id FROM posts_view WHERE post_id = ?")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
            sqlx::query("UPDATE posts_view SET deleted = TRUE, version = ? WHERE post_id = ?")
                .bind(event.sequence)
                .bind(id)
                .execute(&mut *conn)
                .await?;
            if let Some(category_id) = category_id {
                add_to_counter(conn, View::Categories, "post_count", &category_id, -1).await?;
            }
        }
    }
    Ok(Outcome::Applied)
}

async fn apply_comment(
    conn: &mut MySqlConnection,
    event: &Envelope,
    payload: CommentEvent,
) -> Result<Outcome, ProjectionError> {
    if !lock_if_newer(conn, View::Comments, event).await? {
        return Ok(Outcome::Duplicate);
    }
    let id = &event.aggregate_id;
    match payload {
        CommentEvent::CommentAdded {
            post_id,
            author_id,
            content,
        } => {
            sqlx::query(
                "UPDATE comments_view SET post_id = ?, author_id = ?, content = ?, created_at = ?,
                        version = ?
                  WHERE comment_id = ?",
            )
            .bind(post_id.to_string())
            .bind(author_id.to_string())
            .bind(content)
            .bind(event.recorded_at)
            .bind(event.sequence)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            add_to_counter(conn, View::Posts, "comment_count", &post_id.to_string(), 1).await?;
        }
        CommentEvent::CommentDeleted { .. } => {
            let post_id: Option<String> =
                sqlx::query_scalar("SELECT post_id FROM comments_view WHERE comment_id = ?")
                    .bind(id)
                    .fetch_one(&mut *conn)
                    .await?;
            sqlx::query(
                "UPDATE comments_view SET deleted = TRUE, version = ? WHERE comment_id = ?",
            )
            .bind(event.sequence)
            .bind(id)
            .execute(&mut *conn)
            .await?;
            if let Some(post_id) = post_id {
                add_to_counter(conn, View::Posts, "comment_count", &post_id, -1).await?;
            }
        }
    }
    Ok(Outcome::Applied)
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
