//! The HTTP API: one router built from each part's routes, with the layers every request
//! passes through (request id, 406, 256 KiB body limit) and problem documents for 404/405.

mod accounts;
mod auth;
mod board;
pub mod body;
pub mod client_address;
pub mod concurrency;
pub mod consistency;
pub mod context;
mod health;
pub mod idempotency;
mod json;
mod layer;
mod live;
mod metrics;
pub mod openapi;
mod paths;
pub mod problem;
mod queries;
pub mod rate_limit;
pub mod schema;
pub mod server;
mod sessions;
mod time;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tower::ServiceBuilder;
use uuid::Uuid;

pub use problem::ApiError;
pub use time::format_time;

use crate::app::App;

/// The whole API. Tests call this directly, without a socket. `/metrics` is among its
/// routes unless it has an address of its own (`Config::metrics_address`), where
/// [`metrics_app`] serves it.
pub fn app(state: App) -> Router {
    let public_metrics = state.config.metrics_address().is_none();
    layers(routes(public_metrics)).with_state(state)
}

/// `/metrics` alone, for the address of its own that keeps it from the public.
pub fn metrics_app(state: App) -> Router {
    layers(with_fallbacks(metrics_routes())).with_state(state)
}

/// What every request passes through, on either address: its context, then the body
/// limit. One `layer` call, not one per layer: axum boxes each call's services again for
/// every route, and each box is a clone and a call more on every request.
fn layers(routes: Router<App>) -> Router<App> {
    routes.layer(
        ServiceBuilder::new()
            .layer(layer::EveryRequestLayer)
            .layer(DefaultBodyLimit::max(body::MAX_BODY_BYTES)),
    )
}

/// Every route of the API's address, before the layers and the state; `/metrics` too
/// when `with_metrics`.
fn routes(with_metrics: bool) -> Router<App> {
    let routes = Router::new()
        .route("/", get(hello))
        .merge(accounts::router())
        .merge(sessions::router())
        .merge(board::router())
        .merge(queries::router())
        .merge(live::router())
        .merge(health::router())
        .merge(openapi::router());
    let routes = if with_metrics {
        routes.merge(metrics_routes())
    } else {
        routes
    };
    with_fallbacks(routes)
}

fn metrics_routes() -> Router<App> {
    Router::new().route("/metrics", get(metrics::metrics))
}

/// Problem documents for what no route matches.
fn with_fallbacks(routes: Router<App>) -> Router<App> {
    routes
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
}

/// A greeting: the server is up.
#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    responses((status = 200, description = "Always `Hello World`", body = String, content_type = "text/plain"))
)]
async fn hello() -> &'static str {
    "Hello World"
}

async fn no_such_route() -> ApiError {
    ApiError::not_found("no such resource")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "this method is not allowed on this resource",
    )
}

/// Parses an id from the path; a malformed one is a 400, not a 404.
pub fn parse_id(name: &str, raw: &str) -> Result<Uuid, ApiError> {
    // The hyphenated form only, the document's `format: uuid` (`Uuid` also reads the
    // 32-digit, braced and URN forms).
    Some(raw)
        .filter(|raw| raw.len() == 36)
        .and_then(|raw| Uuid::parse_str(raw).ok())
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be a UUID")))
}
