//! `GET /live`: a page a person can open to watch a category's activity as it happens,
//! through the browser's own `EventSource` on `/board/live`. Its script is a file of its
//! own (`/live/page.js`), so the page runs under a CSP that allows no inline script.

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::super::paths::LIVE_PAGE_PATH;
use crate::app::App;

const PAGE: &str = include_str!("page.html");
const SCRIPT: &str = include_str!("page.js");

pub fn router() -> Router<App> {
    Router::new()
        .route(LIVE_PAGE_PATH, get(page))
        .route("/live/page.js", get(script))
}

async fn page() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE)
}

async fn script() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
}
