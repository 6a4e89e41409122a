//! Per-request plumbing: a request id on every request and response (carried into event
//! metadata so one user action can be followed end to end), the access log line, and the
//! `Accept` check that answers 406 when a client rules out JSON.

use std::borrow::Cow;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use axum::extract::{FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tracing::Span;
use uuid::Uuid;

use super::ApiError;
use crate::store::Metadata;

pub const REQUEST_ID: &str = "x-request-id";
pub const CORRELATION_ID: &str = "x-correlation-id";

/// Identifies one request, and the larger user action it belongs to.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub request_id: String,
    pub correlation_id: String,
}

impl RequestContext {
    pub fn metadata(&self, account_id: Option<Uuid>) -> Metadata {
        Metadata {
            request_id: self.request_id.clone(),
            correlation_id: self.correlation_id.clone(),
            account_id,
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestContext {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<RequestContext>()
            .cloned()
            .ok_or_else(|| ApiError::internal(&std::io::Error::other("request context missing")))
    }
}

/// A client-supplied id is kept if it is short and printable; otherwise we mint one.
fn client_id(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let ok = !value.is_empty() && value.len() <= 128 && value.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| value.to_string())
}

/// A request id of our own: a UUIDv7, so that ids sort by arrival to the millisecond in
/// the logs and the event metadata (within a millisecond they are in no order), with its
/// 74 other bits from the thread's random generator, which goes back to the kernel only
/// to reseed. `Uuid::now_v7` made a `getrandom` system call on every request
/// (docs/PERFORMANCE.md, "Queries"); an id needs to be unique, not secret.
fn new_request_id() -> String {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &rand::random()).into_uuid();
    id.hyphenated()
        .encode_lower(&mut Uuid::encode_buffer())
        .to_owned()
}

/// What every request passes through ([`super::layer::EveryRequestLayer`] calls these two):
/// its context (request id, span, access log, metrics), the `Accept` check, and the
/// security headers on whatever answers.
///
/// The start: the request's ids, its context in its extensions, and its span. Returns
/// what the answer needs, and the 406 when the `Accept` check refuses the request.
pub fn start(req: &mut Request) -> (Started, Option<Response>) {
    let request_id = client_id(req.headers(), REQUEST_ID).unwrap_or_else(new_request_id);
    let correlation_id =
        client_id(req.headers(), CORRELATION_ID).unwrap_or_else(|| request_id.clone());
    let span = tracing::info_span!(
        "request",
        method = %req.method(),
        path = %loggable_path(req.uri().path()),
        request_id = %request_id,
    );
    let started = Started {
        method: req.method().clone(),
        route: req.extensions().get::<MatchedPath>().cloned(),
        docs_page: is_docs_page(req.uri().path()),
        at: Instant::now(),
        request_id,
        span,
    };
    let refused = refusal(req, started.docs_page);
    if refused.is_none() {
        req.extensions_mut().insert(RequestContext {
            request_id: started.request_id.clone(),
            correlation_id,
        });
    }
    (started, refused)
}

/// What a request's start leaves for its answer.
pub struct Started {
    request_id: String,
    method: Method,
    route: Option<MatchedPath>,
    docs_page: bool,
    at: Instant,
    span: Span,
}

impl Started {
    /// The request's span, for everything that answers it.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// The answer as it leaves: its figure for `/metrics`, the security headers, the
    /// request id, and the access log line.
    pub fn finish(self, mut response: Response) -> Response {
        record(&self.method, self.route.as_ref(), &response, self.at);
        add_security_headers(response.headers_mut(), self.docs_page);
        if let Ok(value) = HeaderValue::from_str(&self.request_id) {
            response.headers_mut().insert(REQUEST_ID, value);
        }
        self.span.in_scope(|| {
            tracing::info!(
                status = response.status().as_u16(),
                elapsed_ms = self.at.elapsed().as_secs_f64() * 1000.0,
                "request finished"
            );
        });
        response
    }
}

/// The request's figure for `/metrics`, by its route's pattern (or `unmatched`).
fn record(method: &Method, route: Option<&MatchedPath>, response: &Response, started: Instant) {
    let route = route.map_or("unmatched", MatchedPath::as_str);
    crate::metrics::record_request(method, route, response.status().as_u16(), started.elapsed());
}

/// The path as logged: a segment that holds an email address (an `@`, written plain or
/// percent-encoded), such as `/check-duplicate/email/{email}`'s, is replaced by `{email}`,
/// so that no address reaches the logs, matched route or not. Every request passes here:
/// a path without an `@` is logged as it is, with no copy.
fn loggable_path(path: &str) -> Cow<'_, str> {
    let holds_address =
        |segment: &str| segment.contains('@') || segment.to_ascii_lowercase().contains("%40");
    if !path.contains('@') && !path.contains('%') {
        return Cow::Borrowed(path);
    }
    let segments: Vec<&str> = path
        .split('/')
        .map(|segment| {
            if holds_address(segment) {
                "{email}"
            } else {
                segment
            }
        })
        .collect();
    Cow::Owned(segments.join("/"))
}

/// The API's own answers are data: nothing in them may run or be embedded.
const API_CSP: &str = "default-src 'none'; frame-ancestors 'none'";
/// The docs page (Swagger UI) runs its own scripts and styles, sets inline styles, draws
/// `data:` icons and fetches `/openapi.json`; nothing from elsewhere.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

/// The HTML pages and their assets, which browsers load (see [`DOCS_CSP`]): the docs
/// and the live page.
fn is_docs_page(path: &str) -> bool {
    [super::paths::DOCS_PATH, super::paths::LIVE_PAGE_PATH]
        .iter()
        .any(|page| {
            path.strip_prefix(page)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// Headers that keep browsers from misreading or framing what this API returns: on every
/// answer of the router ([`Started::finish`]), and on those made outside it (the server's
/// 503 when it holds as many connections as it may).
pub fn add_security_headers(headers: &mut HeaderMap, docs_page: bool) {
    let csp = if docs_page { DOCS_CSP } else { API_CSP };
    for (name, value) in [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CONTENT_SECURITY_POLICY, csp),
    ] {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
}

/// The 406 for a request whose `Accept` header rules out JSON, if it does. `GET /` and
/// `/metrics` answer plain text, and the pages HTML, CSS and scripts: they are exempt.
/// The live updates answer an event stream (or a problem document): either will do.
fn refusal(req: &Request, docs_page: bool) -> Option<Response> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())?;
    let path = req.uri().path();
    let not_json = matches!(path, "/" | "/metrics") || docs_page;
    let acceptable =
        accepts_json(accept) || (path == super::paths::LIVE_PATH && accepts_event_stream(accept));
    (!not_json && !acceptable).then(|| {
        ApiError::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "this API answers with application/json only",
        )
        .into_response()
    })
}

/// True when some media range in `accept` (with q > 0) admits application/json or
/// application/problem+json.
fn accepts_json(accept: &str) -> bool {
    accepts_any(
        accept,
        &[
            "*/*",
            "application/*",
            "application/json",
            "application/problem+json",
        ],
    )
}

/// True when some media range in `accept` (with q > 0) admits text/event-stream.
fn accepts_event_stream(accept: &str) -> bool {
    accepts_any(accept, &["*/*", "text/*", "text/event-stream"])
}

/// True when some media range in `accept` with q > 0 is one of `ranges`.
fn accepts_any(accept: &str, ranges: &[&str]) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let refused = parts.any(|p| {
            let p = p.trim().replace(' ', "");
            p == "q=0" || p == "q=0.0" || p == "q=0.00" || p == "q=0.000"
        });
        !refused && ranges.contains(&media.as_str())
    })
}

#[cfg(test)]
mod tests {
    use super::{accepts_event_stream, accepts_json, loggable_path};

    #[test]
    fn no_address_is_logged_in_a_path() {
        assert_eq!(
            loggable_path("/check-duplicate/email/ann@example.com"),
            "/check-duplicate/email/{email}"
        );
        assert_eq!(
            loggable_path("/check-duplicate/email/ann%40example.com/x"),
            "/check-duplicate/email/{email}/x"
        );
        assert_eq!(
            loggable_path("/board/posts/0190-ab"),
            "/board/posts/0190-ab"
        );
        assert_eq!(loggable_path("/a%20b/c"), "/a%20b/c");
        // The common path is logged without a copy.
        assert!(matches!(
            loggable_path("/board/posts/0190-ab"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn minted_request_ids_are_distinct_version_7_uuids() {
        let ids: std::collections::HashSet<String> =
            (0..1000).map(|_| super::new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in &ids {
            let parsed = uuid::Uuid::parse_str(id).expect("a UUID");
            assert_eq!(parsed.get_version_num(), 7);
            assert_eq!(&parsed.hyphenated().to_string(), id);
            let (seconds, _) = parsed.get_timestamp().expect("a time").to_unix();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(seconds.abs_diff(now) <= 1, "{id} is not of now");
        }
    }

    #[test]
    fn accept_headers_are_read_by_media_range() {
        assert!(accepts_json("application/json"));
        assert!(accepts_json("text/html, */*;q=0.8"));
        assert!(accepts_json("application/*"));
        assert!(!accepts_json("text/html"));
        assert!(!accepts_json("application/json;q=0, text/plain"));
        assert!(!accepts_json("application/xml"));
        assert!(accepts_event_stream("text/event-stream"));
        assert!(!accepts_json("text/event-stream"));
        assert!(!accepts_event_stream("text/event-stream;q=0"));
    }
}
