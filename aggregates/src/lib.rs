//! The Board domain: commands, events and the four aggregates that decide them.
//!
//! Nothing here does I/O. Each aggregate (`account`, `category`, `post`, `comment`) has
//! the one shape of [`Decide`]: a pure `decide` checks a command against the aggregate's
//! own state and the field rules in [`rules`], and either returns the events to record or
//! a [`DomainError`]. Facts an aggregate cannot know by itself (does this category exist?
//! is that post deleted?) are looked up by the application before it sends the command,
//! and travel in it ([`facts`]).
//!
//! Start reading at [`post`]: it shows every pattern the others use.

pub mod account;
pub mod actor;
pub mod category;
pub mod comment;
mod decide;
mod error;
pub mod facts;
pub mod kind;
pub mod post;
pub mod rules;
pub mod snapshot;
#[cfg(test)]
mod testing;

pub use actor::{Actor, Role};
pub use decide::Decide;
pub use error::{DomainError, FieldError};
pub use kind::AggregateKind;
pub use snapshot::Snapshot;

/// Every event type starts at this version; an upcaster raises older ones (see `board`'s
/// event store module).
pub const EVENT_VERSION_1: &str = "1.0";
