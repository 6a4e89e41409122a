//! The headers and query parameters the API reads, as types for the OpenAPI document.
//! Handlers read them from the request themselves (`If-Match` by
//! [`crate::http::concurrency::IfMatch`], `Event-Position` by
//! [`crate::http::consistency`], and so on); these types only describe them.

use utoipa::IntoParams;

/// The `Event-Position` request header of every query.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct EventPositionHeader {
    /// `<aggregate>:<id>:<version>` values from command responses, comma-separated (at
    /// most 10). The query waits until the read models show them, or answers 503; one the
    /// event store does not have (an aggregate it never recorded, or a version past its
    /// last) is a 400 at once.
    #[serde(rename = "Event-Position")]
    pub event_position: Option<String>,
}

/// The `If-Match` request header of commands on an existing resource.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IfMatchHeader {
    /// The `ETag` of the version this command is meant for (or `*`, whichever is current);
    /// another entity tag gets 412, a value that is no list of entity tags 400.
    #[serde(rename = "If-Match")]
    pub if_match: Option<String>,
}

/// The `Idempotency-Key` request header of an account's creating commands.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct IdempotencyKeyHeader {
    /// Executes the request at most once per account and key; a retry gets the first
    /// answer. Reusing a key for a different request is a 422.
    #[serde(rename = "Idempotency-Key")]
    pub idempotency_key: Option<String>,
}

/// The `Idempotency-Key` request header of `/signup`, sent before there is an account.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct AnonymousIdempotencyKeyHeader {
    /// Executes the request at most once per key and request; a retry of the identical
    /// request (same body) gets the first answer. Without an account to scope keys by,
    /// a key is scoped by the request itself: another client sending the same key with a
    /// different body makes a request of its own, so keys of different clients never
    /// collide.
    #[serde(rename = "Idempotency-Key")]
    pub idempotency_key: Option<String>,
}

/// The paging parameters of the lists.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct Paging {
    /// Page size (its bounds and default are added by [`Conventions`]).
    pub size: Option<u32>,
    /// The `nextCursor` of the previous page.
    pub cursor: Option<String>,
}

/// The filter of the live updates: at most one of the two.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
pub struct LiveFilter {
    /// Only this category's posts and the comments on them.
    #[param(format = Uuid)]
    pub category_id: Option<String>,
    /// Only this post and its comments.
    #[param(format = Uuid)]
    pub post_id: Option<String>,
}

/// Where a live stream resumes.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct LastEventIdHeader {
    /// The `id:` of the last message received (browsers send it by themselves when they
    /// reconnect): the stream starts with every message after it, or with `event: reset`
    /// when it is older than the server replays.
    #[serde(rename = "Last-Event-ID")]
    pub last_event_id: Option<String>,
}
