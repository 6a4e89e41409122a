//! Rate limits per client address (behind `TRUSTED_PROXIES`, the address they forward),
//! with bursts of as many (see [`crate::limits::RateLimiter`]); past one, 429 with
//! `Retry-After`:
//!
//! - [`AuthRateLimit`], on the endpoints that guess passwords, create accounts or send
//!   mail (`/auth`, `/signup`, `/password-reset`, `/password-reset/confirm`):
//!   `AUTH_RATE_PER_MINUTE` requests a minute.
//! - [`AnonymousRateLimit`], on the other routes that take no access token and use the
//!   event store (`/check-duplicate/email`, `/verify`, `/refresh`, `/logout`):
//!   `ANONYMOUS_RATE_PER_MINUTE`. Commands are bounded per account; these have no account
//!   to count against, so without it one address could keep the commands' connections
//!   busy until other clients waited them out.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::client_address::ClientAddress;
use super::ApiError;
use crate::app::App;
use crate::limits::RateLimiter;

/// Passes when the client has `AUTH_RATE_PER_MINUTE` tokens left; otherwise answers 429.
pub struct AuthRateLimit;

impl<S> FromRequestParts<S> for AuthRateLimit
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let app = App::from_ref(state);
        take_for_client(parts, state, &app.auth_limiter, "too many attempts").await?;
        Ok(Self)
    }
}

/// Passes when the client has `ANONYMOUS_RATE_PER_MINUTE` tokens left; otherwise 429.
pub struct AnonymousRateLimit;

impl<S> FromRequestParts<S> for AnonymousRateLimit
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let app = App::from_ref(state);
        take_for_client(parts, state, &app.anonymous_limiter, "too many requests").await?;
        Ok(Self)
    }
}

/// Takes one of `limiter`'s tokens for the request's client address.
async fn take_for_client<S>(
    parts: &mut Parts,
    state: &S,
    limiter: &RateLimiter,
    refusal: &str,
) -> Result<(), ApiError>
where
    S: Send + Sync,
    App: FromRef<S>,
{
    let Ok(ClientAddress(client)) = ClientAddress::from_request_parts(parts, state).await;
    limiter
        .take(&client)
        .await
        .map_err(ApiError::event_store)?
        .map_err(|wait| ApiError::rate_limited(refusal, wait))
}
