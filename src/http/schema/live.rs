//! The bodies of the live updates (`GET /board/live`): each message's `data:`, shaped
//! like the query API's bodies and showing nothing they would not, plus `eventPosition`.

use serde::Serialize;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

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

/// The `event:` names of the stream's messages: the feed writes these, and the document
/// lists them with their bodies ([`LIVE_EVENTS`]).
pub mod event_names {
    pub const CATEGORY_CREATED: &str = "categoryCreated";
    pub const POST_CREATED: &str = "postCreated";
    pub const POST_EDITED: &str = "postEdited";
    pub const POST_DELETED: &str = "postDeleted";
    pub const COMMENT_ADDED: &str = "commentAdded";
    pub const COMMENT_DELETED: &str = "commentDeleted";
    pub const RESET: &str = "reset";
}

/// Each `event:` name of the stream and the schema of its `data:`.
pub const LIVE_EVENTS: [(&str, &str); 7] = [
    (event_names::CATEGORY_CREATED, "LiveCategoryCreated"),
    (event_names::POST_CREATED, "LivePostCreated"),
    (event_names::POST_EDITED, "LivePostEdited"),
    (event_names::POST_DELETED, "LivePostDeleted"),
    (event_names::COMMENT_ADDED, "LiveCommentAdded"),
    (event_names::COMMENT_DELETED, "LiveCommentDeleted"),
    (event_names::RESET, "LiveReset"),
];

/// One message of the stream as an SSE parser hands it over: `event`, `id` (the token to
/// resume after it) and `data`, a JSON text of the schema its `event` names. Under
/// OpenAPI 3.1 the schema of a `text/event-stream` answer describes each message.
pub struct LiveMessage;

impl PartialSchema for LiveMessage {
    fn schema() -> RefOr<Schema> {
        let mut messages = OneOfBuilder::new();
        for (event, body) in LIVE_EVENTS {
            let data = ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .content_schema(Some(Ref::from_schema_name(body)));
            let message = ObjectBuilder::new()
                .property(
                    "event",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .enum_values(Some([event])),
                )
                .required("event")
                .property(
                    "id",
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(crate::live::token::PATTERN)),
                )
                .required("id")
                .property("data", data)
                .required("data")
                .property(
                    "retry",
                    ObjectBuilder::new()
                        .schema_type(Type::Integer)
                        .minimum(Some(0)),
                );
            messages = messages.item(message);
        }
        messages.into()
    }
}

impl ToSchema for LiveMessage {}
