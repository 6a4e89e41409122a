//! `GET /board/live`: the live updates as server-sent events (see [`crate::live`]), and
//! the page that shows them to a person ([`page`]).

mod page;

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::client_address::ClientAddress;
use super::paths::LIVE_PATH;
use super::problem::PROBLEM_JSON;
use super::schema::{LastEventIdHeader, LiveFilter, LiveMessage, Problem, LIVE_FILTERS};
use super::server::Hangup;
use super::{parse_id, ApiError};
use crate::app::App;
use crate::live::subject::{self, Subject};
use crate::live::{token, Filter, Refused};

const EVENT_STREAM: &str = "text/event-stream";

pub fn router() -> Router<App> {
    Router::new()
        .route(LIVE_PATH, get(live))
        .merge(page::router())
}

/// Board activity as it happens, as server-sent events.
///
/// Each message is `id:` (a resume token), `event:` (one of `categoryCreated`,
/// `postCreated`, `postEdited`, `postDeleted`, `commentAdded`, `commentDeleted`, or
/// `reset`) and `data:` (a JSON body: the schema of the same name, `LivePostCreated` for
/// `postCreated` and so on). Messages come in the event store's global order, each once,
/// on every replica. Reconnecting with `Last-Event-ID` first brings every message missed,
/// then live ones. A comment line comes at least every 15 s; `retry:` says how long to
/// wait before reconnecting. A subscriber that reads too slowly is disconnected and
/// resumes with `Last-Event-ID`. Nothing of a deleted post follows its `postDeleted`.
#[utoipa::path(
    get,
    path = "/board/live",
    tag = "queries",
    params(LiveFilter, LastEventIdHeader),
    responses(
        (status = 200, description = "The stream: `id:`, `event:` and `data:` lines per message. \
            The bodies, by `event:` name: categoryCreated `LiveCategoryCreated`, postCreated \
            `LivePostCreated`, postEdited `LivePostEdited`, postDeleted `LivePostDeleted`, \
            commentAdded `LiveCommentAdded`, commentDeleted `LiveCommentDeleted`, reset \
            `LiveReset`", content_type = "text/event-stream", body = LiveMessage),
        (status = 400, description = "Both filters, another query parameter, a malformed id, or a `Last-Event-ID` that is no message's `id:`", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such category or post (a deleted post without `Last-Event-ID`: nothing more can come)", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "This client address has as many live streams (or connections) open as it may; retry after `Retry-After`", body = Problem, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 503, description = "The server has as many live streams (or connections) open as it may, or the event store is down; retry after `Retry-After`", body = Problem, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn live(
    State(state): State<App>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let filter = filter(&params)?;
    let after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(value.to_str().ok().and_then(token::decode).ok_or_else(|| {
            ApiError::bad_request("Last-Event-ID must be the id: of a message of this stream")
        })?),
    };
    let admission = state.live.admit(&address).map_err(refused)?;
    check_subject(&state, &filter, after.is_some()).await?;
    let stream = state
        .live
        .subscribe(admission, after, filter)
        .await
        .map_err(ApiError::event_store)?;
    let hang_up = stream.hang_up();
    let mut response = stream.into_body().into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(EVENT_STREAM));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies such as nginx would otherwise hold messages back to fill their buffers.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response.extensions_mut().insert(Hangup(hang_up));
    Ok(response)
}

/// `?categoryId=` or `?postId=`, not both.
fn filter(params: &HashMap<String, String>) -> Result<Filter, ApiError> {
    if let Some(unknown) = params.keys().find(|k| !LIVE_FILTERS.contains(&k.as_str())) {
        return Err(ApiError::bad_request(format!(
            "`{unknown}` is not a query parameter of the live updates (categoryId, postId)"
        )));
    }
    let [category, post] = LIVE_FILTERS;
    match (params.get(category), params.get(post)) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "filter by categoryId or by postId, not both",
        )),
        (Some(id), None) => Ok(Filter::Category(parse_id("categoryId", id)?.to_string())),
        (None, Some(id)) => Ok(Filter::Post(parse_id("postId", id)?.to_string())),
        (None, None) => Ok(Filter::All),
    }
}

/// A filter must name something that exists. A deleted post is one only for a client
/// that resumes: it may have missed the deletion, and must receive it.
async fn check_subject(state: &App, filter: &Filter, resuming: bool) -> Result<(), ApiError> {
    let found = match filter {
        Filter::All => return Ok(()),
        Filter::Category(id) => subject::category(&state.pool, id.parse().expect("parsed"))
            .await
            .map_err(ApiError::event_store)?,
        Filter::Post(id) => subject::post(&state.pool, id.parse().expect("parsed"))
            .await
            .map_err(ApiError::event_store)?,
    };
    match (found, filter) {
        (Subject::Live, _) => Ok(()),
        (Subject::Deleted, _) if resuming => Ok(()),
        (_, Filter::Category(_)) => Err(ApiError::not_found("no such category")),
        _ => Err(ApiError::not_found("no such post")),
    }
}

fn refused(why: Refused) -> ApiError {
    match why {
        Refused::ProcessFull => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too-many-streams",
            "this server has as many live streams open as it may; retry shortly",
        ),
        Refused::AddressFull => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-streams",
            "this address has as many live streams open as it may; close one or retry later",
        ),
    }
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("5"))
}
