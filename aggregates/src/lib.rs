//! The Board domain: commands, events and the four aggregates that decide them.
//!
//! Nothing here does I/O. Each aggregate (`account`, `category`, `post`, `comment`) takes a
//! command, checks it against its own state and the field rules in [`rules`], and either
//! emits events or returns a [`DomainError`]. Facts an aggregate cannot know by itself (does
//! this category exist? is that post deleted?) come through a small lookup trait in
//! [`lookup`], which the application implements against the event store.
//!
//! Start reading at [`post`]: it shows every pattern the others use.

pub mod account;
pub mod actor;
pub mod category;
pub mod comment;
mod error;
pub mod lookup;
pub mod post;
pub mod rules;
#[cfg(test)]
mod testing;

pub use actor::{Actor, Role};
pub use error::{DomainError, FieldError};

/// Every event type starts at this version; an upcaster raises older ones (see `board`'s
/// event store module).
pub const EVENT_VERSION_1: &str = "1.0";
