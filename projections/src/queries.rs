//! The queries the query API runs against the read models.
//!
//! Lists page by keyset: the cursor is the last id of the previous page, and each page is
//! one index range scan (`posts_by_category`, `comments_by_post`), so its cost does not
//! grow with the page's depth. Ids are UUIDv7, so id order is creation order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{FromRow, MySqlPool};
use uuid::Uuid;

use aggregates::AggregateKind;

use crate::{views, ReadError};

mod cursor;
pub use cursor::{decode as decode_cursor, CURSOR_PATTERN};

// What the queries read: live rows only, joined with the author's nickname where the API
// shows it. Named apart from the fold's rows (`fold::rows`), which are whole table rows
// including the not-yet-created and the deleted.

#[derive(Debug, Clone, FromRow)]
pub struct CategoryRecord {
    pub category_id: String,
    pub name: String,
    pub description: String,
    pub post_count: i32,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct PostRecord {
    pub post_id: String,
    pub category_id: String,
    pub title: String,
    pub content: String,
    pub author_id: String,
    pub nickname: Option<String>,
    /// Whether the author closed their account (`None` while the account's row is not
    /// in the read model yet).
    pub author_closed: Option<bool>,
    pub comment_count: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct CommentRecord {
    pub comment_id: String,
    pub post_id: String,
    pub content: String,
    pub author_id: String,
    pub nickname: Option<String>,
    pub author_closed: Option<bool>,
    pub created_at: DateTime<Utc>,
}

/// One page of a list, and where the next one starts.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

pub async fn categories(pool: &MySqlPool) -> Result<Vec<CategoryRecord>, ReadError> {
    sqlx::query_as(
        "SELECT category_id, name, COALESCE(description, '') AS description, post_count, created_at
           FROM categories_view
          WHERE created_at IS NOT NULL
          ORDER BY name, category_id",
    )
    .fetch_all(pool)
    .await
    .map_err(ReadError)
}

pub async fn category_exists(pool: &MySqlPool, category_id: Uuid) -> Result<bool, ReadError> {
    let found: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM categories_view WHERE category_id = ? AND created_at IS NOT NULL",
    )
    .bind(category_id.to_string())
    .fetch_optional(pool)
    .await?;
    Ok(found.is_some())
}

const POST_COLUMNS: &str = "p.post_id, p.category_id, p.title, p.content, p.author_id, a.nickname,
        a.closed AS author_closed, p.comment_count, p.created_at, p.updated_at
   FROM posts_view p LEFT JOIN accounts_view a ON a.account_id = p.author_id";

/// A category's live posts, newest first.
pub async fn posts_in_category(
    pool: &MySqlPool,
    category_id: Uuid,
    after: Option<Uuid>,
    size: u32,
) -> Result<Page<PostRecord>, ReadError> {
    let after = after.map(|id| id.to_string());
    // One extra row tells whether there is a next page.
    let rows: Vec<PostRecord> = sqlx::query_as(&format!(
        "SELECT {POST_COLUMNS}
          WHERE p.category_id = ? AND p.deleted = FALSE AND p.created_at IS NOT NULL
            AND (? IS NULL OR p.post_id < ?)
          ORDER BY p.post_id DESC
          LIMIT ?"
    ))
    .bind(category_id.to_string())
    .bind(after.as_deref())
    .bind(after.as_deref())
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(rows, size, |p| &p.post_id))
}

/// A live post, with its content.
pub async fn post(pool: &MySqlPool, post_id: Uuid) -> Result<Option<PostRecord>, ReadError> {
    sqlx::query_as(&format!(
        "SELECT {POST_COLUMNS}
          WHERE p.post_id = ? AND p.deleted = FALSE AND p.created_at IS NOT NULL"
    ))
    .bind(post_id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(ReadError)
}

/// A post's live comments, oldest first.
pub async fn comments(
    pool: &MySqlPool,
    post_id: Uuid,
    after: Option<Uuid>,
    size: u32,
) -> Result<Page<CommentRecord>, ReadError> {
    let after = after.map(|id| id.to_string());
    let rows: Vec<CommentRecord> = sqlx::query_as(
        "SELECT c.comment_id, c.post_id, c.content, c.author_id, a.nickname,
                a.closed AS author_closed, c.created_at
           FROM comments_view c LEFT JOIN accounts_view a ON a.account_id = c.author_id
          WHERE c.post_id = ? AND c.deleted = FALSE AND c.created_at IS NOT NULL
            AND (? IS NULL OR c.comment_id > ?)
          ORDER BY c.comment_id
          LIMIT ?",
    )
    .bind(post_id.to_string())
    .bind(after.as_deref())
    .bind(after.as_deref())
    .bind(size + 1)
    .fetch_all(pool)
    .await?;
    Ok(page(rows, size, |c| &c.comment_id))
}

fn page<T>(mut rows: Vec<T>, size: u32, id: impl Fn(&T) -> &String) -> Page<T> {
    let more = rows.len() > size as usize;
    rows.truncate(size as usize);
    let next_cursor = if more {
        // Ids come from the views, where only UUIDs are written: one that is not would
        // end the list here, so it is said.
        rows.last().and_then(|last| match Uuid::parse_str(id(last)) {
            Ok(last) => Some(cursor::encode(last)),
            Err(error) => {
                tracing::error!(id = id(last), %error, "a read model holds an id that is no UUID");
                None
            }
        })
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

/// The version (last applied sequence) of an aggregate's row, for read-your-writes.
/// `None` for an aggregate type with no view.
pub async fn applied_version(
    pool: &MySqlPool,
    aggregate_type: &str,
    aggregate_id: &str,
) -> Result<Option<i64>, ReadError> {
    let Ok(kind) = aggregate_type.parse::<AggregateKind>() else {
        return Ok(None);
    };
    let view = views::of(kind);
    let (table, key) = (view.table, view.key());
    let version: Option<i64> =
        sqlx::query_scalar(&format!("SELECT version FROM {table} WHERE {key} = ?"))
            .bind(aggregate_id)
            .fetch_optional(pool)
            .await?;
    Ok(Some(version.unwrap_or(0)))
}

/// Ids per statement of [`applied_versions`]: far under MySQL's 65,535 placeholders, and a
/// statement whose text stays small.
const IDS_PER_STATEMENT: usize = 1_000;

/// The versions of many aggregates of one kind, for the shared poll of read-your-writes:
/// one statement (per [`IDS_PER_STATEMENT`] ids) instead of one per aggregate. An id whose
/// row does not exist yet is absent from the answer (version 0).
pub async fn applied_versions(
    pool: &MySqlPool,
    kind: AggregateKind,
    ids: &[String],
) -> Result<HashMap<String, i64>, ReadError> {
    let view = views::of(kind);
    let (table, key) = (view.table, view.key());
    let mut versions = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        let placeholders = vec!["?"; chunk.len()].join(", ");
        let sql = format!("SELECT {key}, version FROM {table} WHERE {key} IN ({placeholders})");
        // Not kept prepared: every count of ids is another statement, and a connection
        // would otherwise hold one of each.
        let mut query = sqlx::query_as::<_, (String, i64)>(&sql).persistent(false);
        for id in chunk {
            query = query.bind(id);
        }
        versions.extend(query.fetch_all(pool).await?);
    }
    Ok(versions)
}
