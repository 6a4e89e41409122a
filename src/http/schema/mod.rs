//! The bodies the API sends and receives, as types.
//!
//! Responses are serialized from these types, and request bodies are read into them; the
//! OpenAPI document describes the same types, so it cannot drift from what the server
//! sends and reads. Request bodies are read key by key (see the `requests` module), to
//! name every bad key at once; the length limits the document shows for them are filled
//! in from `aggregates::rules` by [`super::openapi`].

mod live;
mod parameters;
mod requests;
mod responses;

pub use live::*;
pub use parameters::*;
pub use requests::*;
pub use responses::*;
