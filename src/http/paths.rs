//! Paths the request layers treat apart from the API's own: the docs page and the
//! document it reads are HTML, scripts and JSON for browsers, not API answers.

/// The OpenAPI document.
pub const DOCUMENT_PATH: &str = "/openapi.json";
/// Swagger UI, and its assets below it.
pub const DOCS_PATH: &str = "/docs";
/// The live updates (server-sent events).
pub const LIVE_PATH: &str = "/board/live";
/// The page that shows them, and its script below it.
pub const LIVE_PAGE_PATH: &str = "/live";
