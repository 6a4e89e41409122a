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
use serde_json::json;

use aggregates::rules;

use super::auth::bearer_token;
use super::body::{any_string, Fields, JsonBody};
use super::concurrency::etag;
use super::consistency::{event_position, EVENT_POSITION};
use super::context::RequestContext;
use super::rate_limit::AuthRateLimit;
use super::{ApiError, AppState};
use crate::accounts::{NewAccount, Tokens};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/check-duplicate/email/{email}", get(check_duplicate_email))
        .route("/signup", axum::routing::post(sign_up))
        .route("/verify", get(verify))
        .route("/auth", get(log_in_basic).post(log_in_json))
        .route("/refresh", get(refresh))
}

async fn check_duplicate_email(
    State(state): State<AppState>,
    Path(email): Path<String>,
) -> Result<Response, ApiError> {
    rules::email(&email)
        .map_err(|e| ApiError::validation(super::problem::field_errors(vec![e])))?;
    if state.accounts.email_available(&email).await? {
        Ok(Json(json!({ "email": email, "available": true })).into_response())
    } else {
        Err(ApiError::conflict(
            "an account with this email already exists",
        ))
    }
}

async fn sign_up(
    _: AuthRateLimit,
    State(state): State<AppState>,
    context: RequestContext,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let idempotent = state.idempotent(&headers, "anonymous".into(), "/signup", &body.raw)?;
    let mut fields = Fields::new(body);
    let email = fields.required("email", rules::email);
    let password = fields.required("password", rules::password);
    let nickname = fields.required("nickname", rules::nickname);
    fields.finish()?;
    let (Some(email), Some(password), Some(nickname)) = (email, password, nickname) else {
        unreachable!("finish() reports every missing field");
    };
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
                        event_position("account", account_id, version),
                    ),
                ],
                Json(json!({ "accountId": account_id })),
            )
                .into_response())
        })
        .await
}

#[derive(Deserialize)]
struct VerifyQuery {
    verify_id: Option<String>,
}

async fn verify(
    State(state): State<AppState>,
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
    Ok(Json(json!({ "accountId": account_id, "verified": true })).into_response())
}

/// `GET /auth` with `Authorization: Basic base64(email:password)`.
async fn log_in_basic(
    _: AuthRateLimit,
    State(state): State<AppState>,
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

/// `POST /auth` with `{email, password}`.
async fn log_in_json(
    _: AuthRateLimit,
    State(state): State<AppState>,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let mut fields = Fields::new(body);
    let email = fields.required("email", any_string);
    let password = fields.required("password", any_string);
    fields.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        unreachable!("finish() reports every missing field");
    };
    let tokens = state.accounts.log_in(&email, &password).await?;
    Ok(token_response(tokens))
}

async fn refresh(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
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
    let mut body = json!({
        "accessToken": tokens.access.token,
        "tokenType": "Bearer",
        "expiresIn": tokens.access.expires_in.as_secs(),
    });
    if let Some(refresh) = tokens.refresh {
        body["refreshToken"] = json!(refresh.token);
        body["refreshExpiresIn"] = json!(refresh.expires_in.as_secs());
    }
    // Tokens must not linger in caches.
    ([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}
