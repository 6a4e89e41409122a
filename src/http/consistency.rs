//! Reading your own writes.
//!
//! Every command response carries `Event-Position: <aggregate>:<id>:<version>`. A query
//! that sends one or more of these back (same header, comma-separated) waits until the
//! read models have applied each named aggregate up to that version, then answers. If
//! that takes longer than READ_WAIT_TIMEOUT it answers 503 with `Retry-After`, never
//! stale data. Versions are per aggregate, so this works however partitions are spread
//! over projector processes.
//!
//! The waiting itself is [`crate::read_waits`]: one poll for every waiting request of the
//! process, at most MAX_READ_WAITERS of them (503 with `Retry-After` past it). A position
//! the read models do not show at the first look is checked against the event store: one
//! that names an aggregate the store never recorded, or a version past its last, can never
//! be reached and is a 412 at once instead of a wait for the whole bound. It is 412, not
//! 400: the header is well formed (the document's pattern says what that is), and what
//! failed is its condition, "the store holds this version", as with `If-Match`.

use std::sync::Arc;

use aggregates::AggregateKind;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use projections::ReadError;
use sqlx::PgPool;
use tokio::time::{timeout_at, Instant};

use super::ApiError;
use crate::app::App;
use crate::read_waits::{FirstLook, Position};
use crate::store::positions::last_sequences;

pub const EVENT_POSITION: HeaderName = HeaderName::from_static("event-position");
/// A request's positions are looked up together; it may not ask for many.
pub const MAX_POSITIONS: usize = 10;
/// The longest version accepted: any 18 digits fit in the `i64` the event store keeps.
const VERSION_DIGITS: usize = 18;
/// HTTP's optional whitespace, allowed around each position.
const OWS: [char; 2] = [' ', '\t'];

/// What one `Event-Position` header value may hold, as a pattern for the OpenAPI document:
/// 1 to [`MAX_POSITIONS`] `<aggregate>:<id>:<version>`, comma-separated. The parser below
/// accepts exactly this (a unit test holds them together).
pub fn positions_pattern() -> String {
    let kinds = AggregateKind::ALL.map(AggregateKind::as_str).join("|");
    let hex = |n: usize| format!("[0-9a-fA-F]{{{n}}}");
    let id = [hex(8), hex(4), hex(4), hex(4), hex(12)].join("-");
    let position = format!("[ \\t]*(?:{kinds}):{id}:[0-9]{{1,{VERSION_DIGITS}}}[ \\t]*");
    format!("^{position}(?:,{position}){{0,{}}}$", MAX_POSITIONS - 1)
}

/// The header value that names `version` of aggregate `id`.
pub fn event_position(
    kind: AggregateKind,
    id: impl std::fmt::Display,
    version: u64,
) -> HeaderValue {
    HeaderValue::from_str(&format!("{kind}:{id}:{version}"))
        .expect("type names, ids and digits are valid header text")
}

fn parse(token: &str) -> Result<Position, ApiError> {
    let token = token.trim_matches(OWS);
    let malformed = || {
        ApiError::bad_request(format!(
            "Event-Position `{token}` is not of the form type:id:version"
        ))
    };
    let mut parts = token.splitn(3, ':');
    let kind = parts.next().ok_or_else(malformed)?;
    // The hyphenated form only, the one handed out (`Uuid` also reads others).
    let id = parts
        .next()
        .filter(|id| id.len() == 36)
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .ok_or_else(malformed)?
        .to_string();
    let version = parts
        .next()
        .filter(|v| {
            (1..=VERSION_DIGITS).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit())
        })
        .and_then(|v| v.parse().ok())
        .ok_or_else(malformed)?;
    let kind = kind.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "Event-Position names an unknown aggregate type `{kind}`"
        ))
    })?;
    Ok(Position { kind, id, version })
}

/// Every position the request's `Event-Position` headers name.
fn positions(headers: &HeaderMap) -> Result<Vec<Position>, ApiError> {
    let mut positions = Vec::new();
    for value in headers.get_all(EVENT_POSITION) {
        let text = value
            .to_str()
            .map_err(|_| ApiError::bad_request("Event-Position must be ASCII"))?;
        // An empty value or item is refused too: it names nothing to wait for, and a
        // client sending one has most likely lost the position it meant to send.
        for token in text.split(',') {
            positions.push(parse(token)?);
        }
    }
    if positions.len() > MAX_POSITIONS {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_POSITIONS} Event-Position values per request"
        )));
    }
    Ok(positions)
}

/// The positions a query's `Event-Position` headers name, read (a malformed one is a 400)
/// but not yet waited for: a handler first checks the rest of its request, so a request
/// that is wrong in any part is told so at once, and then calls [`Self::caught_up`].
pub struct ReadAfter(Vec<Position>);

impl<S> FromRequestParts<S> for ReadAfter
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        positions(&parts.headers).map(Self)
    }
}

impl ReadAfter {
    /// Waits until the read models show every position, within READ_WAIT_TIMEOUT.
    pub async fn caught_up(self, state: &App) -> Result<(), ApiError> {
        let positions = self.0;
        if positions.is_empty() {
            return Ok(());
        }
        let deadline = Instant::now() + state.config.read_wait_timeout;
        let mut waiter = state
            .read_waits
            .enter(positions.clone())
            .map_err(|_| too_many_waiting())?;
        let read_failed = |err: Arc<ReadError>| ApiError::from(&*err);
        let caught_up = async {
            // Most positions a client sends back are shown already: the event store is
            // asked only about those that are not.
            if waiter.first_look().await.map_err(read_failed)? == FirstLook::Reached {
                return Ok(());
            }
            let reached = waiter.reached();
            tokio::pin!(reached);
            tokio::select! {
                outcome = &mut reached => return outcome.map_err(read_failed),
                checked = check_in_store(&state.pool, &positions) => checked?,
            }
            reached.await.map_err(read_failed)
        };
        match timeout_at(deadline, caught_up).await {
            Ok(outcome) => outcome,
            Err(_) => Err(not_caught_up()),
        }
    }
}

/// A 412 naming the first position the event store does not have (the read models, fed
/// from it, will never show it). Ok when it has them all, and also when it cannot say:
/// queries must keep working while PostgreSQL is away, so they wait as if it had.
async fn check_in_store(pool: &PgPool, positions: &[Position]) -> Result<(), ApiError> {
    let aggregates: Vec<_> = positions.iter().map(|p| (p.kind, p.id.clone())).collect();
    let last = match last_sequences(pool, &aggregates).await {
        Ok(last) => last,
        Err(err) => {
            tracing::debug!(error = %err, "Event-Position not checked in the event store");
            return Ok(());
        }
    };
    for (position, aggregate) in positions.iter().zip(&aggregates) {
        match last.get(aggregate) {
            None => {
                return Err(unreachable(format!(
                    "Event-Position `{position}` names a {} the event store has never recorded",
                    position.kind
                )))
            }
            Some(&last) if last < position.version => {
                return Err(unreachable(format!(
                    "Event-Position `{position}` is past the {}'s last version, {last}",
                    position.kind
                )))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn unreachable(detail: String) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition-failed",
        detail,
    )
}

fn not_caught_up() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "not-caught-up",
        "the read model has not caught up with Event-Position yet; retry shortly",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

fn too_many_waiting() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "too-many-waiting",
        "too many queries are waiting on Event-Position; retry shortly",
    )
    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_the_header() {
        let id = uuid::Uuid::now_v7();
        let header = event_position(AggregateKind::Post, id, 3);
        let parsed = parse(header.to_str().unwrap()).unwrap();
        assert_eq!(parsed.kind, AggregateKind::Post);
        assert_eq!(parsed.id, id.to_string());
        assert_eq!(parsed.version, 3);
        assert_eq!(parsed.to_string(), header.to_str().unwrap());
        assert!(parse("post:not-a-uuid:3").is_err());
        assert!(parse("post").is_err());
        let unknown = parse(&format!("thread:{id}:1")).unwrap_err();
        assert_eq!(unknown.status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn the_published_pattern_accepts_exactly_what_the_parser_does() {
        let pattern = regex::Regex::new(&positions_pattern()).unwrap();
        let one = format!("post:{}:3", uuid::Uuid::now_v7());
        let upper = one.to_uppercase().replace("POST", "post");
        let ten = [one.as_str(); MAX_POSITIONS].join(",");
        let eleven = [one.as_str(); MAX_POSITIONS + 1].join(",");
        let simple_id = format!("post:{}:3", uuid::Uuid::now_v7().simple());
        let cases = [
            one.clone(),
            upper,
            format!(" {one}\t, {one} "),
            ten,
            format!(
                "account:{}:{}",
                uuid::Uuid::nil(),
                "9".repeat(VERSION_DIGITS)
            ),
            String::new(),
            "null".into(),
            format!("{one},"),
            eleven,
            simple_id,
            format!("post:{}:+3", uuid::Uuid::nil()),
            format!(
                "post:{}:{}",
                uuid::Uuid::nil(),
                "9".repeat(VERSION_DIGITS + 1)
            ),
            format!("Post:{}:3", uuid::Uuid::nil()),
        ];
        for value in cases {
            let mut headers = HeaderMap::new();
            headers.insert(EVENT_POSITION, HeaderValue::from_str(&value).unwrap());
            assert_eq!(
                pattern.is_match(&value),
                positions(&headers).is_ok(),
                "{value:?}"
            );
        }
    }
}
