//! Account endpoints: `/check-duplicate/email/{email}`, `/signup`, `/verify`,
//! `/password-reset`, `/password-reset/confirm` and `DELETE /account`. Log-in and sessions are in
//! [`super::sessions`].

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;

use super::json::Json;
use serde::Deserialize;

use aggregates::{rules, AggregateKind};

use super::auth::Authenticated;
use super::body::Body;
use super::concurrency::etag;
use super::consistency::{event_position, EVENT_POSITION};
use super::context::RequestContext;
use super::idempotency::{IdempotentRequest, Scope};
use super::problem::PROBLEM_JSON;
use super::rate_limit::{AnonymousRateLimit, AuthRateLimit};
use super::schema::{
    AccountCreated, AccountVerified, AnonymousIdempotencyKeyHeader, CloseAccount, EmailAvailable,
    PasswordResetConfirm, PasswordResetRequest, Problem, SignUp,
};
use super::ApiError;
use crate::accounts::NewAccount;
use crate::app::App;

pub fn router() -> Router<App> {
    Router::new()
        .route("/check-duplicate/email/{email}", get(check_duplicate_email))
        .route("/signup", post(sign_up))
        .route("/verify", get(verify))
        .route("/password-reset", post(request_password_reset))
        .route("/password-reset/confirm", post(confirm_password_reset))
        .route("/account", delete(close_account))
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
        (status = 429, description = "Too many requests from this client address (`ANONYMOUS_RATE_PER_MINUTE`), \
            or too many connections from it", body = Problem, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn check_duplicate_email(
    _: AnonymousRateLimit,
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
    params(AnonymousIdempotencyKeyHeader),
    request_body(content = SignUp, content_type = "application/json"),
    responses(
        (status = 201, description = "Created; the verification mail is on its way", body = AccountCreated),
        (status = 409, description = "The email is taken", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Every password-hashing slot stayed busy for `PASSWORD_HASHING_WAIT`, \
            a dependency is down, or the server holds as many connections as it may", body = Problem,
            content_type = PROBLEM_JSON, headers(("Retry-After" = String, description = "Seconds to wait"))),
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
        Scope::Anonymous,
        "/signup",
        body.raw(),
        state.config.signing_secret(),
    )?;
    let SignUp {
        email,
        password,
        nickname,
    } = body.read()?;
    let accounts = &state.accounts;
    idempotent
        .run(&state.pool, |account_id| async move {
            let new = NewAccount {
                email,
                password,
                nickname,
            };
            let version = accounts
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
        (status = 429, description = "Too many requests from this client address (`ANONYMOUS_RATE_PER_MINUTE`), \
            or too many connections from it", body = Problem, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn verify(
    _: AnonymousRateLimit,
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

/// Mails a password-reset link if an account has this address.
#[utoipa::path(
    post,
    path = "/password-reset",
    tag = "accounts",
    request_body(content = PasswordResetRequest, content_type = "application/json"),
    responses(
        (status = 202, description = "Accepted, whether or not an account has the address (the answer never tells); \
            when one has, a mail with a single-use token valid for one hour is on its way"),
        (status = 429, description = "Too many attempts from this client", body = Problem, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn request_password_reset(
    _: AuthRateLimit,
    State(state): State<App>,
    body: Body<PasswordResetRequest>,
) -> Result<StatusCode, ApiError> {
    let PasswordResetRequest { email } = body.read()?;
    state.accounts.request_password_reset(&email).await?;
    Ok(StatusCode::ACCEPTED)
}

/// Sets a new password with the token from the password-reset mail.
#[utoipa::path(
    post,
    path = "/password-reset/confirm",
    tag = "accounts",
    request_body(content = PasswordResetConfirm, content_type = "application/json"),
    responses(
        (status = 204, description = "The new password is set, the account counts as verified, \
            and every session of the account has ended"),
        (status = 404, description = "Unknown, used or expired token", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Every password-hashing slot stayed busy for `PASSWORD_HASHING_WAIT`, \
            a dependency is down, or the server holds as many connections as it may", body = Problem,
            content_type = PROBLEM_JSON, headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 429, description = "Too many attempts from this client", body = Problem, content_type = PROBLEM_JSON,
            headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn confirm_password_reset(
    _: AuthRateLimit,
    State(state): State<App>,
    context: RequestContext,
    body: Body<PasswordResetConfirm>,
) -> Result<StatusCode, ApiError> {
    let PasswordResetConfirm { token, password } = body.read()?;
    state
        .accounts
        .confirm_password_reset(&token, password, &context.metadata(None))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Closes the caller's account and erases its personal data from the read models.
#[utoipa::path(
    delete,
    path = "/account",
    tag = "accounts",
    security(("bearer" = [])),
    request_body(content = CloseAccount, content_type = "application/json"),
    responses(
        (status = 204, description = "Closed: every session has ended, the account cannot log in, \
            its address is free for a new sign-up, and its posts and comments stay, their author \
            shown as `{accountId, nickname: null, closed: true}`"),
        (status = 403, description = "The password does not match", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "The account is already closed", body = Problem, content_type = PROBLEM_JSON),
        (status = 503, description = "Every password-hashing slot stayed busy for `PASSWORD_HASHING_WAIT`, \
            a dependency is down, or the server holds as many connections as it may", body = Problem,
            content_type = PROBLEM_JSON, headers(("Retry-After" = String, description = "Seconds to wait"))),
        (status = 429, description = "This account has too many commands in flight, or too many \
            wrong passwords (`FAILED_LOG_INS_PER_ACCOUNT_PER_HOUR`, shared with log-ins)", body = Problem,
            content_type = PROBLEM_JSON, headers(("Retry-After" = String, description = "Seconds to wait"))),
    )
)]
pub(super) async fn close_account(
    Authenticated(actor, _slot): Authenticated,
    State(state): State<App>,
    context: RequestContext,
    body: Body<CloseAccount>,
) -> Result<StatusCode, ApiError> {
    let CloseAccount { password } = body.read()?;
    state
        .accounts
        .close_account(
            actor.account_id,
            &password,
            &context.metadata(Some(actor.account_id)),
        )
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
