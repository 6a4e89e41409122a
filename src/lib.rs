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
//!   into the MySQL read models (the `projections` crate) that [`http`] queries;
//!   [`read_waits`] is the one poll behind every query waiting to read its writes;
//!   [`live`] is the one reader of the store behind every live-update stream.
//! - [`accounts`] holds the sign-up, verification and log-in flows shared by HTTP and the
//!   command line; [`board`] runs the category, post and comment commands for HTTP;
//!   [`auth`] hashes passwords and signs tokens; [`mail`] sends mail.
//! - [`app`] assembles the parts from [`config`] once, for `board serve`, the other
//!   commands, the tests and the benchmarks alike; [`cli`] is the `board` binary.
//! - [`metrics`] records what each process sees; [`status`] reads where the pipeline
//!   stands and whether each dependency answers, which [`cached`] keeps for a moment so
//!   that scrapes and probes cannot flood the stores; [`quarantine`] retries the events
//!   the read models could not apply; [`limits`] holds per-client limits.
//! - [`jobs`] runs what must happen once across all replicas, under a lease in PostgreSQL:
//!   the purge of idempotency keys and expired links.
//!
//! Start reading at [`app`], then [`cli::serve`] and [`http::app`].

pub mod accounts;
pub mod app;
pub mod auth;
pub mod board;
pub mod cached;
pub mod cli;
pub mod config;
pub mod databases;
pub mod history;
pub mod http;
pub mod jobs;
pub mod kafka;
pub mod limits;
pub mod live;
pub mod mail;
pub mod metrics;
pub mod personal_data;
pub mod projector;
pub mod quarantine;
pub mod read_waits;
pub mod rebuild;
pub mod relay;
pub mod status;
pub mod store;
pub mod supervise;
pub mod telemetry;

/// mimalloc instead of glibc's malloc, for every binary built on this crate: an export
/// spent a third of its time in glibc's `malloc` and `free`, and a rebuild went from 0.49x
/// to 0.58x of its baseline with this alone (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
