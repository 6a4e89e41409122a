//! JSON answers: axum's `Json` as a response, serialized straight into a `Vec`.
//!
//! axum's own grows a `BytesMut` from 128 bytes through a `Writer`, a capacity check and a
//! copy for every piece serde writes; a page of posts is about 10 KiB written in a few
//! thousand pieces. This serializes into a `Vec` sized for a page and hands it to the body
//! without a copy.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::ApiError;

/// Room for most answers at once: an object or a short page.
const INITIAL_CAPACITY: usize = 1024;

/// A `200`-style JSON answer (`application/json`) of `T`.
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(INITIAL_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                body,
            )
                .into_response(),
            // Only a type whose `Serialize` can fail (a map with non-string keys) gets
            // here: a bug, answered as one.
            Err(error) => ApiError::internal(&error).into_response(),
        }
    }
}
