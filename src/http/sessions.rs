//! Log-in and sessions: `/auth` (two ways), `/refresh` and `/logout`. A log-in opens a
//! session; its refresh token renews it once and is swapped for a new one each time
//! (see [`crate::accounts::sessions`]).

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::json::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use aggregates::rules;

use super::auth::bearer_token;
use super::body::Body;
use super::problem::field_errors;
use super::rate_limit::{AnonymousRateLimit, AuthRateLimit};
use super::schema::{IssuedTokens, LogIn, Problem};
use super::ApiError;
use crate::accounts::Tokens;
use crate::app::App;

pub fn router() -> Router<App> {
    Router::new()
        .route("/auth", get(log_in_basic).post(log_in_json))
        .route("/refresh", get(refresh))
        .route("/logout", post(log_out))
}

/// What both ways of logging in answer.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum LogInAnswers {
    #[response(status = 200, description = "Logged in")]
    LoggedIn(#[to_schema] IssuedTokens),
    #[response(
        status = 401,
        description = "Wrong email or password (the same answer for both)",
        content_type = "application/problem+json",
        headers(("WWW-Authenticate" = String, description = "How to authenticate"))
    )]
    WrongCredentials(#[to_schema] Problem),
    #[response(
        status = 403,
        description = "The email is not verified yet",
        content_type = "application/problem+json"
    )]
    NotVerified(#[to_schema] Problem),
    #[response(
        status = 429,
        description = "Too many attempts from this client address, or too many failed log-ins \
            for this account from anywhere",
        content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "Seconds to wait"))
    )]
    RateLimited(#[to_schema] Problem),
    #[response(
        status = 503,
        description = "Every password-hashing slot stayed busy for `PASSWORD_HASHING_WAIT`, a \
            dependency is down, or the server holds as many connections as it may",
        content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "Seconds to wait"))
    )]
    Busy(#[to_schema] Problem),
}

/// Logs in with `Authorization: Basic base64(email:password)`.
#[utoipa::path(
    get,
    path = "/auth",
    tag = "accounts",
    security(("basic" = [])),
    responses(LogInAnswers)
)]
pub(super) async fn log_in_basic(
    _: AuthRateLimit,
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (email, password) = basic_credentials(&headers).ok_or_else(|| {
        ApiError::unauthorized("an Authorization: Basic header with email:password is required")
            .with_header(
                header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Basic realm=\"board\""),
            )
    })?;
    // The rule `POST /auth`'s body is read by.
    rules::email_length(&email).map_err(|e| ApiError::validation(field_errors(vec![e])))?;
    let tokens = state.accounts.log_in(&email, &password).await?;
    Ok(token_response(tokens))
}

/// Logs in with `{email, password}`.
#[utoipa::path(
    post,
    path = "/auth",
    tag = "accounts",
    request_body(content = LogIn, content_type = "application/json"),
    responses(LogInAnswers)
)]
pub(super) async fn log_in_json(
    _: AuthRateLimit,
    State(state): State<App>,
    body: Body<LogIn>,
) -> Result<Response, ApiError> {
    let LogIn { email, password } = body.read()?;
    let tokens = state.accounts.log_in(&email, &password).await?;
    Ok(token_response(tokens))
}

/// New tokens for the live refresh token of a session; the presented one is spent.
#[utoipa::path(
    get,
    path = "/refresh",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "A new access token and a new refresh token; the presented \
            refresh token is spent", body = IssuedTokens),
        (status = 401, description = "Not a refresh token, expired, or its session has ended. A spent \
            refresh token presented again is taken for a stolen copy: it ends its whole session", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client address (`ANONYMOUS_RATE_PER_MINUTE`), \
            or too many connections from it", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn refresh(
    _: AnonymousRateLimit,
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tokens = state.accounts.refresh(bearer_token(&headers)?).await?;
    Ok(token_response(tokens))
}

/// Ends the session of a refresh token.
#[utoipa::path(
    post,
    path = "/logout",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 204, description = "The session's refresh tokens stop working (access tokens \
            already issued live out their short life); logging out of an ended session is harmless"),
        (status = 401, description = "Not a valid refresh token", body = Problem,
            content_type = "application/problem+json"),
        (status = 429, description = "Too many requests from this client address (`ANONYMOUS_RATE_PER_MINUTE`), \
            or too many connections from it", body = Problem, content_type = "application/problem+json",
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn log_out(
    _: AnonymousRateLimit,
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.accounts.log_out(bearer_token(&headers)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (email, password) = decoded.split_once(':')?;
    Some((email.to_string(), password.to_string()))
}

fn token_response(tokens: Tokens) -> Response {
    let body = IssuedTokens {
        access_token: tokens.access.token,
        token_type: "Bearer".to_string(),
        expires_in: tokens.access.expires_in.as_secs(),
        refresh_token: tokens.refresh.token,
        refresh_expires_in: tokens.refresh.expires_in.as_secs(),
    };
    // Tokens must not linger in caches.
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
