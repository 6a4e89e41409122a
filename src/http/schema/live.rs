//! The bodies of the live updates (`GET /board/live`): each message's `data:`, shaped
//! like the query API's bodies and showing nothing they would not, plus `eventPosition`.

use serde::Serialize;
use utoipa::ToSchema;

use super::{Author, Comment};

/// `event: categoryCreated`
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveCategoryCreated {
    #[schema(format = Uuid)]
    pub category_id: String,
    pub name: String,
    pub description: String,
    #[schema(format = DateTime, example = "2026-01-15T10:36:39.123Z")]
    pub created_at: String,
    /// Send it back as `Event-Position` on a query to read a state at least this new.
    #[schema(example = "category:0194b2a4-7c1e-7d4a-9f00-5c1d2e3f4a5b:1")]
    pub event_position: String,
}

/// `event: postCreated`
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LivePostCreated {
    #[schema(format = Uuid)]
    pub post_id: String,
    #[schema(format = Uuid)]
    pub category_id: String,
    pub title: String,
    pub author: Author,
    #[schema(format = DateTime, example = "2026-01-15T10:36:39.123Z")]
    pub created_at: String,
    pub event_position: String,
}

/// `event: postEdited`: the post's title after the edit, whether or not it changed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LivePostEdited {
    #[schema(format = Uuid)]
    pub post_id: String,
    #[schema(format = Uuid)]
    pub category_id: String,
    pub title: String,
    #[schema(format = DateTime, example = "2026-01-15T10:36:39.123Z")]
    pub updated_at: String,
    pub event_position: String,
}

/// `event: postDeleted`: nothing more of this post or its comments follows.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LivePostDeleted {
    #[schema(format = Uuid)]
    pub post_id: String,
    #[schema(format = Uuid)]
    pub category_id: String,
    pub event_position: String,
}

/// `event: commentAdded`: the comment as the query API lists it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveCommentAdded {
    #[serde(flatten)]
    pub comment: Comment,
    pub event_position: String,
}

/// `event: commentDeleted`
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LiveCommentDeleted {
    #[schema(format = Uuid)]
    pub comment_id: String,
    #[schema(format = Uuid)]
    pub post_id: String,
    pub event_position: String,
}

/// `event: reset`: the `Last-Event-ID` was older than this server replays. Reload what
/// the page shows through the query API; the messages after this one are live.
#[derive(Serialize, ToSchema)]
pub struct LiveReset {
    pub detail: String,
}
