//! The read side: the fold that turns events into MySQL rows, and the queries the query
//! API runs against those rows.
//!
//! [`envelope`] is the shape of an event on Kafka. [`fold::apply_batch`] applies a batch of
//! events to the read models, idempotently; the `board` crate's projector (the Kafka
//! consumer) and its rebuild both run it. [`queries`] reads the rows back for the API.
//! [`quarantine`] lists the events the fold could not apply.

pub mod envelope;
mod error;
pub mod fold;
pub mod quarantine;
pub mod queries;
pub mod snapshot;
pub mod time;
pub mod views;

pub use envelope::Envelope;
pub use error::ReadError;

/// The MySQL migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/mysql");
