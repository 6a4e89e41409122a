//! Request bodies: JSON only, 64 KiB at most, objects with exactly the known keys.
//!
//! [`JsonBody`] answers 415, 413, 408 (`BODY_READ_TIMEOUT`) and malformed JSON with
//! problem documents. [`Fields`] then takes the known keys one by one, checks each
//! against its rule, and reports every bad, missing or unknown key together, so a client
//! fixes all of them in one round.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRef, FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use aggregates::FieldError;

use super::ApiError;
use crate::app::App;

pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// A JSON object body, with the raw bytes kept for idempotency fingerprints.
pub struct JsonBody {
    pub object: Map<String, Value>,
    pub raw: Bytes,
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
        let value: Value = serde_json::from_slice(&raw)
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

/// Takes a body's fields one by one, collecting every problem.
pub struct Fields {
    object: Map<String, Value>,
    errors: BTreeMap<String, Vec<String>>,
}

impl Fields {
    pub fn new(body: JsonBody) -> Self {
        Self {
            object: body.object,
            errors: BTreeMap::new(),
        }
    }

    /// A string that must be present, checked by `rule`.
    pub fn required(
        &mut self,
        name: &'static str,
        rule: fn(&str) -> Result<(), FieldError>,
    ) -> Option<String> {
        match self.object.remove(name) {
            None | Some(Value::Null) => {
                self.fail(name, "is required");
                None
            }
            Some(value) => self.string(name, value, rule),
        }
    }

    /// A string that may be absent or null, checked by `rule` when present.
    pub fn optional(
        &mut self,
        name: &'static str,
        rule: fn(&str) -> Result<(), FieldError>,
    ) -> Option<String> {
        match self.object.remove(name) {
            None | Some(Value::Null) => None,
            Some(value) => self.string(name, value, rule),
        }
    }

    fn string(
        &mut self,
        name: &'static str,
        value: Value,
        rule: fn(&str) -> Result<(), FieldError>,
    ) -> Option<String> {
        let Value::String(text) = value else {
            self.fail(name, "must be a string");
            return None;
        };
        match rule(&text) {
            Ok(()) => Some(text),
            Err(error) => {
                self.fail(name, error.message);
                None
            }
        }
    }

    pub fn fail(&mut self, name: &str, message: impl Into<String>) {
        self.errors
            .entry(name.to_string())
            .or_default()
            .push(message.into());
    }

    /// Rejects leftover (unknown) keys and reports everything collected.
    pub fn finish(mut self) -> Result<(), ApiError> {
        for key in std::mem::take(&mut self.object).keys() {
            self.fail(key, "is not a known field");
        }
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::validation(self.errors))
        }
    }
}

/// For fields with no rule beyond being a string.
pub fn any_string(_: &str) -> Result<(), FieldError> {
    Ok(())
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
}
