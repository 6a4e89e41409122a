//! The `Authenticated` extractor: a valid access token in `Authorization: Bearer`.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};

use aggregates::Actor;

use super::ApiError;
use crate::app::App;
use crate::auth::tokens::TokenKind;

/// The account behind the request. Tokens are only issued to verified accounts.
pub struct Authenticated(pub Actor);

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
        Ok(Self(Actor {
            account_id: claims.sub,
            role: claims.role,
            verified: true,
        }))
    }
}
