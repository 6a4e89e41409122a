//! Versions on the wire: `ETag` carries an aggregate's version, `If-Match` asks that a
//! command apply only to that version.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};

use super::ApiError;

/// The strong entity tag of a version: `"3"`.
pub fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).expect("digits and quotes are valid")
}

/// The versions an `If-Match` header accepts; `None` when absent or `*`.
///
/// Weak or malformed tags can never match (RFC 9110 uses strong comparison for
/// `If-Match`), so they yield an empty list and the command gets 412.
pub struct IfMatch(pub Option<Vec<u64>>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        let value = value.to_str().unwrap_or("");
        if value.trim() == "*" {
            return Ok(Self(None));
        }
        let versions = value
            .split(',')
            .filter_map(|tag| {
                let tag = tag.trim();
                tag.strip_prefix('"')?.strip_suffix('"')?.parse().ok()
            })
            .collect();
        Ok(Self(Some(versions)))
    }
}
