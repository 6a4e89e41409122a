//! Request bodies: JSON only, 256 KiB at most, objects read into the request types of
//! [`super::schema`], with exactly their keys.
//!
//! A handler takes a [`Body<T>`]. Extracting it answers 415, 413, 408
//! (`BODY_READ_TIMEOUT`) and malformed JSON with problem documents; [`Body::read`] then
//! reads the `T` ([`FromFields`]), reporting every bad, missing or unknown key together,
//! so a client fixes all of them in one round.

pub mod fields;
mod unique_keys;

use std::marker::PhantomData;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use fields::FromFields;

use super::ApiError;
use crate::app::App;

/// The largest body read. It holds the largest valid one, a post with the longest title
/// and content, written as a client's JSON encoder may write it: every character escaped,
/// 12 bytes for one outside the Basic Multilingual Plane (`\\ud83d\\ude00`). Smaller, a valid
/// post could be refused as too large (a unit test holds them together).
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// A request body to be read as a `T`, one of the request types.
///
/// Reading is a step of its own, after extraction, so that each handler keeps what it
/// checks before the fields: a member is refused a category (403) whatever the body says,
/// and a malformed path id or `Idempotency-Key` is reported on its own.
pub struct Body<T> {
    json: JsonBody,
    // `fn() -> T`: a `Body<T>` holds no `T`, so it is `Send` and `Sync` whatever `T` is.
    read_as: PhantomData<fn() -> T>,
}

impl<T: FromFields> Body<T> {
    /// The bytes as sent, for the idempotency fingerprint.
    pub fn raw(&self) -> &[u8] {
        &self.json.raw
    }

    /// The body as a `T`, or a 400 naming every bad, missing or unknown key.
    pub fn read(self) -> Result<T, ApiError> {
        fields::read(self.json.object).map_err(ApiError::validation)
    }
}

impl<S, T> FromRequest<S> for Body<T>
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        Ok(Self {
            json: JsonBody::from_request(req, state).await?,
            read_as: PhantomData,
        })
    }
}

/// A JSON object body, with the raw bytes kept for idempotency fingerprints.
struct JsonBody {
    object: Map<String, Value>,
    raw: Bytes,
}

impl<S> FromRequest<S> for JsonBody
where
    S: Send + Sync,
    App: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // The whole body within the deadline, not each piece: a client trickling a byte
        // at a time would otherwise hold its connection and its handler for ever.
        let deadline = App::from_ref(state).config.body_read_timeout;
        let read = tokio::time::timeout(deadline, Bytes::from_request(req, state))
            .await
            .map_err(|_| body_timeout(deadline))?;
        let raw = read.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload-too-large",
                    format!("the body must be at most {MAX_BODY_BYTES} bytes"),
                )
            } else {
                ApiError::bad_request(format!("the body could not be read: {rejection}"))
            }
        })?;
        match content_type {
            Some(ct) if is_json(&ct) => {}
            None if raw.is_empty() => {
                return Err(ApiError::bad_request("a JSON body is required"));
            }
            _ => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported-media-type",
                    "the body must be JSON, sent with Content-Type: application/json",
                ));
            }
        }
        let value: Value = unique_keys::parse(&raw)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        };
        Ok(Self { object, raw })
    }
}

/// The body's deadline passed. The rest of it may still be on its way, so the connection
/// cannot serve another request: the answer says it closes.
fn body_timeout(deadline: Duration) -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        // `Duration`'s `Debug` reads as the flag is written: `30s`, `250ms`.
        format!("the body did not arrive within {deadline:?}"),
    )
    .with_header(header::CONNECTION, HeaderValue::from_static("close"))
}

/// `application/json`, or any `application/*+json`, with or without parameters.
fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types_are_recognised() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(is_json("application/merge-patch+json"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/x-www-form-urlencoded"));
    }

    #[test]
    fn the_longest_valid_post_fits_however_it_is_escaped() {
        use aggregates::rules::{POST_CONTENT, POST_TITLE};
        let astral = '\u{1F600}';
        let title: String = std::iter::repeat_n(astral, POST_TITLE.max).collect();
        let content: String = std::iter::repeat_n(astral, POST_CONTENT.max).collect();
        // What an encoder that escapes everything but ASCII writes, as Python's does.
        let escaped = |text: &str| -> String {
            text.encode_utf16()
                .map(|unit| format!("\\u{unit:04x}"))
                .collect()
        };
        let body = format!(
            "{{\"title\": \"{}\", \"content\": \"{}\"}}",
            escaped(&title),
            escaped(&content)
        );
        assert!(body.len() <= MAX_BODY_BYTES, "{} bytes", body.len());
    }
}
