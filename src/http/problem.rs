//! The one HTTP error type: every failure becomes an RFC 9457 problem document.
//!
//! Domain, event-store and read-model errors map to a status here and nowhere else. A
//! 5xx carries no cause to the client; the cause travels inside the [`ApiError`] and is
//! logged once, with its whole chain, when the response is made ([`IntoResponse`]): as
//! an error for a 500 (a bug to look at), as a warning for a 503 (a dependency is away).

use std::collections::BTreeMap;

use axum::http::{header, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use aggregates::{DomainError, FieldError};

use super::schema::Problem;
use crate::accounts::AccountError;
use crate::auth::password::HashingError;
use crate::auth::tokens::TokenError;
use crate::board::BoardError;
use crate::databases::is_unavailable;
use crate::store::CommandError;
use projections::ReadError;

pub const PROBLEM_JSON: &str = "application/problem+json";

#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    slug: &'static str,
    detail: String,
    errors: Option<BTreeMap<String, Vec<String>>>,
    headers: Vec<(HeaderName, HeaderValue)>,
    /// What went wrong behind a 5xx, for the log only. Boxed: it is rare, and every
    /// `Result<_, ApiError>` carries the room for it.
    cause: Option<Box<str>>,
}

impl ApiError {
    pub fn new(status: StatusCode, slug: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            slug,
            detail: detail.into(),
            errors: None,
            headers: Vec::new(),
            cause: None,
        }
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 400 naming every bad field.
    pub fn validation(errors: BTreeMap<String, Vec<String>>) -> Self {
        let mut err = Self::new(
            StatusCode::BAD_REQUEST,
            "validation",
            "the request has invalid fields",
        );
        err.errors = Some(errors);
        err
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 401, with the challenge that tells a client how to authenticate.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail).with_header(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"board\""),
        )
    }

    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 429 for a client past a rate limit, with `Retry-After` in whole seconds, rounded up
    /// (a client that waits exactly that long is let in) and at least 1.
    pub fn rate_limited(detail: &str, retry_after: std::time::Duration) -> Self {
        let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            format!("{detail}; retry in {seconds} s"),
        )
        .with_header(
            header::RETRY_AFTER,
            HeaderValue::from_str(&seconds.to_string()).expect("digits are valid"),
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", detail)
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
    }

    /// 500: the client learns only that it was our fault; `cause` is logged.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "an unexpected error occurred; it has been logged",
        )
        .caused_by(cause)
    }

    /// Keeps `cause`, with its chain, for the log line written with the response.
    fn caused_by(mut self, cause: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = cause.to_string();
        let mut source = cause.source();
        while let Some(inner) = source {
            chain.push_str(": ");
            chain.push_str(&inner.to_string());
            source = inner.source();
        }
        self.cause = Some(chain.into_boxed_str());
        self
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            if self.status.is_server_error() && self.status != StatusCode::SERVICE_UNAVAILABLE {
                tracing::error!(status = self.status.as_u16(), error = %cause, "internal error");
            } else {
                tracing::warn!(status = self.status.as_u16(), error = %cause, "{}", self.detail);
            }
        }
        let body = Problem {
            kind: format!("urn:board:problem:{}", self.slug),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            errors: self.errors,
        };
        let body = serde_json::to_string(&body).expect("a problem document always serializes");
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

/// Groups field errors by field, as the `errors` member wants them.
pub fn field_errors(errors: Vec<FieldError>) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for error in errors {
        map.entry(error.field.to_string())
            .or_default()
            .push(error.message);
    }
    map
}

impl From<DomainError> for ApiError {
    fn from(err: DomainError) -> Self {
        match err {
            DomainError::Invalid(errors) => Self::validation(field_errors(errors)),
            DomainError::NotFound(what) => Self::not_found(format!("no such {what}")),
            DomainError::AlreadyExists(what) => {
                Self::conflict(format!("this {what} already exists with other data"))
            }
            DomainError::Forbidden(why) => Self::forbidden(why),
            DomainError::NotVerified => {
                Self::forbidden("only accounts with a verified email may do this")
            }
        }
    }
}

impl From<CommandError> for ApiError {
    fn from(err: CommandError) -> Self {
        match err {
            CommandError::Domain(e) => e.into(),
            CommandError::VersionMismatch { current } => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                format!("If-Match does not match: the resource is at version {current}"),
            )
            .with_header(header::ETAG, crate::http::concurrency::etag(current)),
            CommandError::Conflict => {
                Self::conflict("the resource was modified concurrently; reload it and try again")
            }
            CommandError::Unavailable(cause) => {
                Self::unavailable("the event store is unavailable; try again shortly")
                    .caused_by(&*cause)
            }
            CommandError::Unexpected(cause) => Self::internal(&*cause),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        Self::unauthorized(err.to_string())
    }
}

impl From<AccountError> for ApiError {
    fn from(err: AccountError) -> Self {
        match err {
            AccountError::EmailTaken => Self::conflict(err.to_string()),
            AccountError::InvalidCredentials => {
                Self::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string()).with_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"board\""),
                )
            }
            AccountError::NotVerified | AccountError::WrongPassword => {
                Self::forbidden(err.to_string())
            }
            AccountError::AccountGone => Self::not_found(err.to_string()),
            AccountError::UnknownEmail
            | AccountError::UnknownVerification
            | AccountError::UnknownPasswordReset => Self::not_found(err.to_string()),
            AccountError::TooManyAttempts { retry_after } => {
                Self::rate_limited("too many wrong passwords for this account", retry_after)
            }
            AccountError::Session(e) => Self::unauthorized(e.to_string()),
            AccountError::Token(e) => e.into(),
            AccountError::Command(e) => e.into(),
            AccountError::Hashing(HashingError::Busy) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "busy",
                "too many passwords are being checked right now; retry shortly",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            AccountError::Hashing(e) => Self::internal(&e),
        }
    }
}

impl From<BoardError> for ApiError {
    fn from(err: BoardError) -> Self {
        match err {
            BoardError::CategoryNameTaken => Self::conflict(err.to_string()),
            BoardError::Command(e) => e.into(),
        }
    }
}

impl ApiError {
    /// A query on the event store's database (PostgreSQL) failed: 503 while it is away,
    /// 500 otherwise, as for a command.
    pub fn event_store(err: sqlx::Error) -> Self {
        CommandError::from(err).into()
    }
}

/// A read-model query: a MySQL outage is the read models being away (503), never the
/// event store's.
impl From<ReadError> for ApiError {
    fn from(err: ReadError) -> Self {
        Self::from(&err)
    }
}

/// The same, for an error many requests share (the poll of `read_waits` reads for all).
impl From<&ReadError> for ApiError {
    fn from(err: &ReadError) -> Self {
        if is_unavailable(&err.0) {
            Self::unavailable("the read models are unavailable; try again shortly").caused_by(err)
        } else {
            Self::internal(err)
        }
    }
}
