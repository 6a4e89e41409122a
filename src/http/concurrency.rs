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

/// What an `If-Match` header may hold, as a pattern for the OpenAPI document: `*`, or a
/// comma-separated list of entity tags (RFC 9110: `"3"`, or weak `W/"3"`). The parser below
/// accepts exactly this (a unit test holds them together).
pub const IF_MATCH_PATTERN: &str =
    r#"^[ \t]*(?:\*|(?:W/)?"[!#-~]*"(?:[ \t]*,[ \t]*(?:W/)?"[!#-~]*")*)[ \t]*$"#;
/// HTTP's optional whitespace, allowed around the list and its items.
const OWS: [char; 2] = [' ', '\t'];

/// The versions an `If-Match` header accepts; `None` when absent or `*`.
///
/// A well-formed tag that is weak or names no version of ours can never match (RFC 9110
/// uses strong comparison for `If-Match`), so the command gets 412. A value that is no
/// list of entity tags at all is a 400, as any malformed input.
pub struct IfMatch(pub Option<Vec<u64>>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(Self(None));
        };
        let malformed = || {
            ApiError::bad_request("If-Match must be `*` or a list of entity tags such as `\"3\"`")
        };
        let value = value.to_str().map_err(|_| malformed())?;
        if value.trim_matches(OWS) == "*" {
            return Ok(Self(None));
        }
        versions(value).map(|v| Self(Some(v))).ok_or_else(malformed)
    }
}

/// The versions a list of entity tags names (its strong tags of the form `"<version>"`);
/// `None` when `list` is not a list of entity tags.
fn versions(list: &str) -> Option<Vec<u64>> {
    let mut versions = Vec::new();
    let mut rest = list.trim_matches(OWS);
    loop {
        let (weak, tag) = match rest.strip_prefix("W/") {
            Some(tag) => (true, tag),
            None => (false, rest),
        };
        let tag = tag.strip_prefix('"')?;
        let end = tag.find('"')?;
        let (opaque, after) = (&tag[..end], &tag[end + 1..]);
        if !opaque
            .bytes()
            .all(|b| b == b'!' || (b'#'..=b'~').contains(&b))
        {
            return None;
        }
        // Strong comparison is character by character: `"02"` is not version 2.
        let version = opaque
            .parse::<u64>()
            .ok()
            .filter(|v| !weak && v.to_string() == opaque);
        versions.extend(version);
        let after = after.trim_start_matches(OWS);
        if after.is_empty() {
            return Some(versions);
        }
        rest = after.strip_prefix(',')?.trim_start_matches(OWS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_if_match_pattern_is_the_rule() {
        let pattern = regex::Regex::new(IF_MATCH_PATTERN).unwrap();
        for (value, parsed) in [
            ("\"3\"", Some(vec![3])),
            (" \"3\" , W/\"4\",\"5\"\t", Some(vec![3, 5])),
            ("\"\"", Some(vec![])),
            ("\"a,b\"", Some(vec![])),
            ("\"02\"", Some(vec![])),
            ("\"+2\"", Some(vec![])),
            ("W/\"3\"", Some(vec![])),
            ("null", None),
            ("0", None),
            ("", None),
            ("\"3", None),
            ("\"3\",", None),
            ("\"3\" \"4\"", None),
            ("w/\"3\"", None),
            ("\"a\\\"\"", None),
            ("\"é\"", None),
            ("*,\"3\"", None),
        ] {
            assert_eq!(versions(value), parsed, "{value:?}");
            assert_eq!(pattern.is_match(value), parsed.is_some(), "{value:?}");
        }
        assert!(pattern.is_match(" * "));
    }
}
