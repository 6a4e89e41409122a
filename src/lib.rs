//! Board: an event-sourced CQRS backend for a community board.
//!
//! # Layout
//!
//! - [`aggregates`] (its own crate) decides commands: accounts, categories, posts and
//!   comments, with their rules. No I/O.
//! - [`store`] keeps the events in PostgreSQL (postgres-es), runs commands against
//!   aggregates ([`store::CommandBus`]) and reads the store in global order without gaps
//!   ([`store::reader`]).
//! - [`http`] is the axum API: problem documents, validation, auth, `ETag`/`If-Match`,
//!   `Idempotency-Key`.
//! - [`relay`] publishes every event to Kafka in global order; [`projector`] consumes them
//!   into the MySQL read models (the `projections` crate) that [`http`] queries.
//! - [`accounts`] holds the sign-up, verification and log-in flows shared by HTTP and the
//!   command line; [`board`] runs the category, post and comment commands for HTTP;
//!   [`auth`] hashes passwords and signs tokens; [`mail`] sends mail.
//! - [`cli`] wires it all into the `board` binary; [`config`] is its configuration.
//!
//! Start reading at [`cli::serve`], then [`http::app`].

pub mod accounts;
pub mod auth;
pub mod board;
pub mod cli;
pub mod config;
pub mod databases;
pub mod history;
pub mod http;
pub mod kafka;
pub mod mail;
pub mod metrics;
pub mod projector;
pub mod rebuild;
pub mod relay;
pub mod status;
pub mod store;
pub mod telemetry;
