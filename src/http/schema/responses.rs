//! Response bodies, as types: serialized by the handlers, described by the document.

use std::collections::BTreeMap;

use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use projections::queries::{CategoryRecord, CommentRecord, PostRecord};

use crate::http::format_time;

/// An RFC 9457 problem document: every error the API answers.
#[derive(Serialize, ToSchema)]
pub struct Problem {
    /// `urn:board:problem:<slug>`, stable for each kind of error.
    #[serde(rename = "type")]
    #[schema(example = "urn:board:problem:validation")]
    pub kind: String,
    #[schema(example = "Bad Request")]
    pub title: String,
    #[schema(example = 400)]
    pub status: u16,
    pub detail: String,
    /// On validation failures: every bad field, with what is wrong with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<BTreeMap<String, Vec<String>>>,
}

#[derive(Serialize, ToSchema)]
pub struct EmailAvailable {
    pub email: String,
    pub available: bool,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountCreated {
    pub account_id: Uuid,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountVerified {
    pub account_id: Uuid,
    pub verified: bool,
}

/// Tokens from `/auth` and `/refresh`. `refreshToken` comes with a log-in, and from
/// `/refresh` when the old one has less than a third of its life left.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedTokens {
    pub access_token: String,
    #[schema(example = "Bearer")]
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Renews the session at `GET /refresh` (once: each refresh answers a new one) and
    /// ends it at `POST /logout`.
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CategoryCreated {
    pub category_id: Uuid,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostCreated {
    pub post_id: Uuid,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommentCreated {
    pub comment_id: Uuid,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Category {
    #[schema(format = Uuid)]
    pub category_id: String,
    pub name: String,
    pub description: String,
    pub post_count: i32,
    #[schema(format = DateTime, example = "2026-01-15T10:36:39.123Z")]
    pub created_at: String,
}

impl From<CategoryRecord> for Category {
    fn from(row: CategoryRecord) -> Self {
        Self {
            category_id: row.category_id,
            name: row.name,
            description: row.description,
            post_count: row.post_count,
            created_at: format_time(row.created_at),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CategoryList {
    pub categories: Vec<Category>,
}

/// Who wrote a post or comment. `nickname` is null for a closed account (whose
/// personal data is erased), and for a moment while a new account's own events are
/// still on their way to the read model.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Author {
    #[schema(format = Uuid)]
    pub account_id: String,
    pub nickname: Option<String>,
    /// Present, and true, only when the author closed their account.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    #[schema(required = false)]
    pub closed: bool,
}

impl Author {
    pub fn new(
        account_id: impl Into<String>,
        nickname: Option<String>,
        closed: Option<bool>,
    ) -> Self {
        Self {
            account_id: account_id.into(),
            nickname,
            closed: closed.unwrap_or(false),
        }
    }
}

/// A post in a list: everything but its content.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostSummary {
    #[schema(format = Uuid)]
    pub post_id: String,
    #[schema(format = Uuid)]
    pub category_id: String,
    pub title: String,
    pub author: Author,
    pub comment_count: i64,
    #[schema(format = DateTime, example = "2026-01-15T10:36:39.123Z")]
    pub created_at: String,
    #[schema(format = DateTime, example = "2026-01-15T10:36:39.123Z")]
    pub updated_at: String,
}

// The rows are taken, not borrowed: a page's strings move into the answer instead of
// being copied, five allocations a row.
impl From<PostRecord> for PostSummary {
    fn from(row: PostRecord) -> Self {
        Self {
            post_id: row.post_id,
            category_id: row.category_id,
            title: row.title,
            author: Author::new(row.author_id, row.nickname, row.author_closed),
            comment_count: i64::from(row.comment_count),
            created_at: format_time(row.created_at),
            updated_at: format_time(row.updated_at),
        }
    }
}

/// A whole post: its summary and its content.
#[derive(Serialize, ToSchema)]
pub struct Post {
    #[serde(flatten)]
    pub summary: PostSummary,
    pub content: String,
}

impl From<PostRecord> for Post {
    fn from(mut row: PostRecord) -> Self {
        let content = std::mem::take(&mut row.content);
        Self {
            summary: PostSummary::from(row),
            content,
        }
    }
}

/// One page of a category's posts, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PostPage {
    pub posts: Vec<PostSummary>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    #[schema(format = Uuid)]
    pub comment_id: String,
    #[schema(format = Uuid)]
    pub post_id: String,
    pub content: String,
    pub author: Author,
    #[schema(format = DateTime, example = "2026-01-15T10:36:39.123Z")]
    pub created_at: String,
}

impl From<CommentRecord> for Comment {
    fn from(row: CommentRecord) -> Self {
        Self {
            comment_id: row.comment_id,
            post_id: row.post_id,
            content: row.content,
            author: Author::new(row.author_id, row.nickname, row.author_closed),
            created_at: format_time(row.created_at),
        }
    }
}

/// One page of a post's comments, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CommentPage {
    pub comments: Vec<Comment>,
    /// Pass as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Liveness {
    #[schema(example = "ok")]
    pub status: String,
}

/// Each dependency, `up` or `down`.
#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ok`, or `degraded` when any dependency is down.
    pub status: String,
    pub checks: BTreeMap<String, String>,
}
