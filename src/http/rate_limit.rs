//! Rate limits for the endpoints that guess passwords, create accounts or send mail
//! (`/auth`, `/signup`, `/password-reset`, `/password-reset/confirm`): `AUTH_RATE_PER_MINUTE` requests a minute per client address, with bursts
//! of as many (see [`crate::limits::RateLimiter`]). Past it, 429 with `Retry-After`.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;

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
        let state = App::from_ref(state);
        let client = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "unknown".to_string(), |c| c.0.ip().to_string());
        state
            .auth_limiter
            .take(&client)
            .map(|()| Self)
            .map_err(|wait| ApiError::rate_limited("too many attempts", wait))
    }
}
