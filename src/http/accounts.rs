//! Account endpoints: `/check-duplicate/email/{email}`, `/signup`, `/verify`, `/auth`,
//! `/refresh`.

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;

use aggregates::{rules, AggregateKind};

use super::auth::bearer_token;
use super::body::Body;
use super::concurrency::etag;
use super::consistency::{event_position, EVENT_POSITION};
use super::context::RequestContext;
use super::idempotency::IdempotentRequest;
use super::problem::PROBLEM_JSON;
use super::rate_limit::AuthRateLimit;
use super::schema::{
    AccountCreated, AccountVerified, EmailAvailable, IdempotencyKeyHeader, IssuedTokens, LogIn,
    Problem, SignUp,
};
use super::ApiError;
use crate::accounts::{NewAccount, Tokens};
use crate::app::App;

pub fn router() -> Router<App> {
    Router::new()
        .route("/check-duplicate/email/{email}", get(check_duplicate_email))
        .route("/signup", axum::routing::post(sign_up))
        .route("/verify", get(verify))
        .route("/auth", get(log_in_basic).post(log_in_json))
        .route("/refresh", get(refresh))
}

/// Whether an email is free for a new account.
#[utoipa::path(
    get,
    path = "/check-duplicate/email/{email}",
    tag = "accounts",
    params(("email" = String, Path, description = "The address to check")),
    responses(
        (status = 200, description = "Free", body = EmailAvailable),
        (status = 409, description = "An account has it", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn check_duplicate_email(
    State(state): State<App>,
    Path(email): Path<String>,
) -> Result<Response, ApiError> {
    rules::email(&email)
        .map_err(|e| ApiError::validation(super::problem::field_errors(vec![e])))?;
    if state.accounts.email_available(&email).await? {
        Ok(Json(EmailAvailable {
            email,
            available: true,
        })
        .into_response())
    } else {
        Err(ApiError::conflict(
            "an account with this email already exists",
        ))
    }
}

/// Creates an unverified account and mails a verification link.
#[utoipa::path(
    post,
    path = "/signup",
    tag = "accounts",
    params(IdempotencyKeyHeader),
    request_body(content = SignUp, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the verification mail is on its way", body = AccountCreated),
        (status = 409, description = "The email is taken", body = Problem, content_type = PROBLEM_JSON),
        (status = 429, description = "Too many attempts from this client", body = Problem, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn sign_up(
    _: AuthRateLimit,
    State(state): State<App>,
    context: RequestContext,
    headers: HeaderMap,
    body: Body<SignUp>,
) -> Result<Response, ApiError> {
    let idempotent = IdempotentRequest::new(
        &headers,
        "anonymous".into(),
        "/signup",
        body.raw(),
        state.config.signing_secret(),
    )?;
    let SignUp {
        email,
        password,
        nickname,
    } = body.read()?;
    idempotent
        .run(&state.pool, |account_id| async move {
            let new = NewAccount {
                email,
                password,
                nickname,
            };
            let version = state
                .accounts
                .sign_up(account_id, new, &context.metadata(Some(account_id)))
                .await?;
            Ok((
                StatusCode::CREATED,
                [
                    (header::ETAG, etag(version)),
                    (
                        EVENT_POSITION,
                        event_position(AggregateKind::Account, account_id, version),
                    ),
                ],
                Json(AccountCreated { account_id }),
            )
                .into_response())
        })
        .await
}

#[derive(Deserialize)]
pub(super) struct VerifyQuery {
    verify_id: Option<String>,
}

/// Marks an account verified (the link in the verification mail).
#[utoipa::path(
    get,
    path = "/verify",
    tag = "accounts",
    params(("verify_id" = String, Query, description = "The id from the verification mail")),
    responses(
        (status = 200, description = "Verified (verifying again is harmless)", body = AccountVerified),
        (status = 404, description = "Unknown or expired id", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn verify(
    State(state): State<App>,
    context: RequestContext,
    Query(query): Query<VerifyQuery>,
) -> Result<Response, ApiError> {
    let token = query
        .verify_id
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("the verify_id query parameter is required"))?;
    let account_id = state
        .accounts
        .verify(&token, &context.metadata(None))
        .await?;
    Ok(Json(AccountVerified {
        account_id,
        verified: true,
    })
    .into_response())
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
        description = "Too many attempts from this client",
        content_type = "application/problem+json",
        headers(("Retry-After" = String, description = "Seconds to wait"))
    )]
    RateLimited(#[to_schema] Problem),
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

/// A new access token for a refresh token (and a new refresh token when the old one
/// has less than a third of its life left).
#[utoipa::path(
    get,
    path = "/refresh",
    tag = "accounts",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "New tokens", body = IssuedTokens),
    )
)]
pub(super) async fn refresh(
    State(state): State<App>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let tokens = state.accounts.refresh(bearer_token(&headers)?).await?;
    Ok(token_response(tokens))
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
    let (refresh_token, refresh_expires_in) = match tokens.refresh {
        Some(refresh) => (Some(refresh.token), Some(refresh.expires_in.as_secs())),
        None => (None, None),
    };
    let body = IssuedTokens {
        access_token: tokens.access.token,
        token_type: "Bearer".to_string(),
        expires_in: tokens.access.expires_in.as_secs(),
        refresh_token,
        refresh_expires_in,
    };
    // Tokens must not linger in caches.
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
