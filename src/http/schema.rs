//! The bodies the API sends and receives, as types.
//!
//! Responses are serialized from these types, and the OpenAPI document describes them
//! from the same types, so the document cannot drift from what the server sends.
//! Request bodies are parsed field by field by [`super::body::Fields`] (to name every bad
//! field at once); their types here describe them for the document, and the length limits
//! are filled in from `aggregates::rules` by [`super::openapi`].

mod requests;
mod responses;

pub use requests::*;
pub use responses::*;
