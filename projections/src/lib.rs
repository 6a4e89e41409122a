//! The read side: projectors that turn events into MySQL rows, and the queries the query
//! API runs against those rows.
//!
//! [`envelope`] is the shape of an event on Kafka. [`projector::apply`] applies one event
//! to the read models, idempotently. [`queries`] reads them back for the API.

pub mod envelope;
mod error;
pub mod projector;
pub mod queries;
pub mod snapshot;

pub use envelope::Envelope;
pub use error::{ProjectionError, ReadError};

/// The MySQL migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/mysql");
