//! Reading your own writes.
//!
//! Every command response carries `Event-Position: <aggregate>:<id>:<version>`. A query
//! that sends one or more of these back (same header, comma-separated) waits until the
//! read models have applied each named aggregate up to that version, then answers. If
//! that takes longer than READ_WAIT_TIMEOUT it answers 503 with `Retry-After`, never
//! stale data. Versions are per aggregate, so this works however partitions are spread
//! over projector processes.

use std::time::Duration;

use aggregates::AggregateKind;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use tokio::time::Instant;

use super::ApiError;
use crate::app::App;

pub const EVENT_POSITION: HeaderName = HeaderName::from_static("event-position");
const POLL: Duration = Duration::from_millis(10);
/// Each position polls MySQL until it is reached; a request may not ask for many.
const MAX_POSITIONS: usize = 10;

/// The header value that names `version` of aggregate `id`.
pub fn event_position(
    kind: AggregateKind,
    id: impl std::fmt::Display,
    version: u64,
) -> HeaderValue {
    HeaderValue::from_str(&format!("{kind}:{id}:{version}"))
        .expect("type names, ids and digits are valid header text")
}

/// A position the read model must have reached before a query answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub version: i64,
}

fn parse(token: &str) -> Option<Position> {
    let mut parts = token.trim().splitn(3, ':');
    let aggregate_type = parts.next()?.to_string();
    let aggregate_id = uuid::Uuid::parse_str(parts.next()?).ok()?.to_string();
    let version = parts.next()?.parse().ok()?;
    Some(Position {
        aggregate_type,
        aggregate_id,
        version,
    })
}

/// Waits, in the extractor, for every `Event-Position` the request carries.
pub struct CaughtUp;

impl<S> FromRequestParts<S> for CaughtUp
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = App::from_ref(state);
        let mut positions = Vec::new();
        for value in parts.headers.get_all(EVENT_POSITION) {
            let text = value
                .to_str()
                .map_err(|_| ApiError::bad_request("Event-Position must be ASCII"))?;
            for token in text.split(',').filter(|t| !t.trim().is_empty()) {
                positions.push(parse(token).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Event-Position `{}` is not of the form type:id:version",
                        token.trim()
                    ))
                })?);
            }
        }
        if positions.len() > MAX_POSITIONS {
            return Err(ApiError::bad_request(format!(
                "at most {MAX_POSITIONS} Event-Position values per request"
            )));
        }
        let deadline = Instant::now() + state.config.read_wait_timeout;
        for position in positions {
            wait_for(&state, &position, deadline).await?;
        }
        Ok(Self)
    }
}

async fn wait_for(state: &App, position: &Position, deadline: Instant) -> Result<(), ApiError> {
    loop {
        let applied = projections::queries::applied_version(
            &state.read_pool,
            &position.aggregate_type,
            &position.aggregate_id,
        )
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Event-Position names an unknown aggregate type `{}`",
                position.aggregate_type
            ))
        })?;
        if applied >= position.version {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-caught-up",
                "the read model has not caught up with Event-Position yet; retry shortly",
            )
            .with_header(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            ));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_round_trip_through_the_header() {
        let id = uuid::Uuid::now_v7();
        let header = event_position(AggregateKind::Post, id, 3);
        let parsed = parse(header.to_str().unwrap()).unwrap();
        assert_eq!(parsed.aggregate_type, "post");
        assert_eq!(parsed.aggregate_id, id.to_string());
        assert_eq!(parsed.version, 3);
        assert!(parse("post:not-a-uuid:3").is_none());
        assert!(parse("post").is_none());
    }
}
