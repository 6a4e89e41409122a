//! The headers and query parameters the API reads, as types for the OpenAPI document.
//! Handlers read them from the request themselves (`If-Match` by
//! [`crate::http::concurrency::IfMatch`], `Event-Position` by
//! [`crate::http::consistency`], and so on); these types only describe them.

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::schema::{
    AdditionalProperties, KnownFormat, ObjectBuilder, SchemaFormat, Type,
};
use utoipa::IntoParams;

/// The `Event-Position` request header of every query.
#[derive(serde::Deserialize, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct EventPositionHeader {
    /// `<aggregate>:<id>:<version>` values from command responses, comma-separated (at
    /// most 10). The query waits until the read models show them, or answers 503; one the
    /// event store does not have (an aggregate it never recorded, or a version past its
    /// last) is a 412 at once.
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

/// The filter of the live updates: `categoryId` (that category's posts and the comments on
/// them) or `postId` (that post and its comments), at most one of the two.
///
/// Two query parameters cannot say "not both" to each other, so the document declares the
/// filter as one object parameter, exploded into the query (`?categoryId=…`, the same URL
/// as two plain parameters), whose schema allows one property at most and no others.
pub struct LiveFilter;

/// The names of [`LiveFilter`]'s two query parameters, as the handler reads them.
pub const LIVE_FILTERS: [&str; 2] = ["categoryId", "postId"];

impl IntoParams for LiveFilter {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let id = |description: &str| {
            ObjectBuilder::new()
                .schema_type(Type::String)
                .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                .description(Some(description))
        };
        let filter = ObjectBuilder::new()
            .schema_type(Type::Object)
            .property(
                LIVE_FILTERS[0],
                id("Only this category's posts and the comments on them"),
            )
            .property(LIVE_FILTERS[1], id("Only this post and its comments"))
            .max_properties(Some(1))
            .additional_properties(Some(AdditionalProperties::FreeForm(false)));
        vec![ParameterBuilder::new()
            .name("filter")
            .parameter_in(ParameterIn::Query)
            .description(Some(
                "At most one of `categoryId` and `postId`, each a query parameter of its own",
            ))
            .style(Some(ParameterStyle::Form))
            .explode(Some(true))
            .schema(Some(filter))
            .build()]
    }
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
