//! Rate limits for the endpoints that guess passwords, create accounts or send mail
//! (`/auth`, `/signup`, `/password-reset`, `/password-reset/confirm`):
//! `AUTH_RATE_PER_MINUTE` requests a minute per client address (behind `TRUSTED_PROXIES`,
//! the address they forward), with bursts of as many (see [`crate::limits::RateLimiter`]).
//! Past it, 429 with `Retry-After`.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;

use super::client_address::ClientAddress;
use super::ApiError;
use crate::app::App;

/// Passes when the client has tokens left; otherwise answers 429.
pub struct AuthRateLimit;

impl<S> FromRequestParts<S> for AuthRateLimit
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Ok(ClientAddress(client)) = ClientAddress::from_request_parts(parts, state).await;
        let state = App::from_ref(state);
        state
            .auth_limiter
            .take(&client)
            .await
            .map_err(ApiError::event_store)?
            .map(|()| Self)
            .map_err(|wait| ApiError::rate_limited("too many attempts", wait))
    }
}
