//! The `Authenticated` extractor: a valid access token in `Authorization: Bearer`.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};

use aggregates::Actor;

use super::ApiError;
use crate::app::App;
use crate::auth::tokens::TokenKind;
use crate::limits::Slot;

/// The account behind a command, holding one of its places for commands in flight
/// (`COMMANDS_PER_ACCOUNT`) until the handler returns. Tokens are only issued to verified
/// accounts. Handlers bind the slot as `_slot` (not `_`, which would drop it at once).
pub struct Authenticated(pub Actor, pub Slot);

/// The token in `Authorization: Bearer <token>`.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::unauthorized("an Authorization: Bearer token is required"))?
        .to_str()
        .map_err(|_| ApiError::unauthorized("the Authorization header is malformed"))?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(token.trim())
        }
        _ => Err(ApiError::unauthorized(
            "the Authorization header must be `Bearer <token>`",
        )),
    }
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let state = App::from_ref(state);
        let claims = state
            .tokens
            .verify(bearer_token(&parts.headers)?, TokenKind::Access)?;
        let slot = state
            .command_slots
            .try_acquire(&claims.sub.to_string())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too-many-commands",
                    "this account has too many commands in flight; retry shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            })?;
        let actor = Actor {
            account_id: claims.sub,
            role: claims.role,
            verified: true,
        };
        Ok(Self(actor, slot))
    }
}
