//! The application: its long-lived parts and how they are put together.
//!
//! [`App::assemble`] is the one place that turns a [`Config`] into connection pools, command
//! buses, services and clients. `board serve`, every other `board` command, the tests and
//! the benchmarks all start here, so none of them can wire the system differently from
//! production. Connections open lazily: a process starts (and serves what it can) while a
//! database is away.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{MySqlPool, PgPool};

use crate::accounts::AccountService;
use crate::auth::password::Passwords;
use crate::auth::tokens::TokenIssuer;
use crate::board::BoardService;
use crate::cached::Cached;
use crate::config::Config;
use crate::jobs::purge::Purge;
use crate::kafka::BrokerProbe;
use crate::limits::{ConcurrencyLimiter, RateLimiter};
use crate::live::Live;
use crate::mail::Mailer;
use crate::projector::Projector;
use crate::read_waits::ReadWaits;
use crate::relay::Relay;
use crate::status::readiness::Readiness;
use crate::store::{self, CommandBuses};

/// How long a request waits for a pooled MySQL connection before it is answered 503.
const READ_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// Everything a request handler or a command may need ([`Parts`]), behind one `Arc`:
/// axum clones the state for every request, and one reference count is cheaper to move
/// than the dozen the parts hold.
#[derive(Clone)]
pub struct App(Arc<Parts>);

impl std::ops::Deref for App {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// What an [`App`] holds.
pub struct Parts {
    pub config: Arc<Config>,
    /// The event store (PostgreSQL): commands.
    pub pool: PgPool,
    /// The read models (MySQL): queries.
    pub read_pool: MySqlPool,
    /// The queries waiting for the read models to show `Event-Position`s, served by one
    /// poll of `read_pool` for the whole process.
    pub read_waits: ReadWaits,
    /// Sign-up, verification, log-in.
    pub accounts: Arc<AccountService>,
    /// Category, post and comment commands.
    pub board: Arc<BoardService>,
    pub tokens: TokenIssuer,
    /// Password hashing, a bounded number at a time (`PASSWORD_HASHING_SLOTS`).
    pub passwords: Arc<Passwords>,
    /// Per-client limits on `/auth`, `/signup` and the password-reset endpoints.
    pub auth_limiter: Arc<RateLimiter>,
    /// Per-client limits on the other routes that take no access token and use the event
    /// store (`/check-duplicate/email`, `/verify`, `/refresh`, `/logout`).
    pub anonymous_limiter: Arc<RateLimiter>,
    /// Per-account limit on commands in flight.
    pub command_slots: Arc<ConcurrencyLimiter>,
    /// Live updates: the process's one reader of the event store, fanned out to every
    /// `GET /board/live` stream.
    pub live: Live,
    /// The one client that asks the broker for readiness, status and `/metrics`.
    pub broker: Arc<BrokerProbe>,
    /// `/health/ready`'s checks, made at most once per `STATUS_CACHE_TTL` whatever the
    /// number of probes.
    pub readiness: Cached<Readiness>,
    /// `/metrics`' figures from the stores and the broker, written out; read at most once
    /// per `STATUS_CACHE_TTL` whatever the number of scrapes.
    pub scrape_figures: Cached<Arc<str>>,
}

impl App {
    /// Builds every part from configuration, without connecting yet.
    pub fn assemble(config: Arc<Config>) -> anyhow::Result<Self> {
        crate::metrics::handle();
        let pool = store::connect_lazy(config.database_url.expose(), config.event_store_pool_size)
            .context("the event store's address (DATABASE_URL)")?;
        let limits_pool = store::connect_limits_lazy(config.database_url.expose())
            .context("the event store's address (DATABASE_URL)")?;
        let read_pool = connect_read_models(&config, config.read_pool_size)?;
        let buses = Arc::new(CommandBuses::new(pool.clone()));
        let tokens = TokenIssuer::new(
            config.signing_secret(),
            config.access_token_ttl,
            config.refresh_token_ttl,
        );
        let mailer = Mailer::from_config(&config)?;
        let passwords = Arc::new(Passwords::new(
            config.password_hashing_slots,
            config.password_hashing_wait,
        ));
        let accounts = Arc::new(AccountService::new(
            pool.clone(),
            limits_pool.clone(),
            buses.clone(),
            tokens.clone(),
            passwords.clone(),
            mailer,
            config.clone(),
        ));
        let board = Arc::new(BoardService::new(pool.clone(), buses));
        Ok(Self(Arc::new(Parts {
            auth_limiter: Arc::new(RateLimiter::per_minute(
                limits_pool.clone(),
                "auth",
                config.auth_rate_per_minute,
            )),
            anonymous_limiter: Arc::new(RateLimiter::per_minute(
                limits_pool,
                "anonymous",
                config.anonymous_rate_per_minute,
            )),
            command_slots: Arc::new(ConcurrencyLimiter::new(config.commands_per_account)),
            broker: Arc::new(BrokerProbe::new(&config.kafka())),
            readiness: Cached::new(config.status_cache_ttl),
            scrape_figures: Cached::new(config.status_cache_ttl),
            read_waits: ReadWaits::new(read_pool.clone(), config.max_read_waiters),
            live: Live::new(pool.clone(), config.live()),
            config,
            pool,
            read_pool,
            accounts,
            board,
            tokens,
            passwords,
        })))
    }

    /// The relay publishing this application's event store to its topic.
    pub fn relay(&self) -> Relay {
        Relay::new(self.pool.clone(), self.config.kafka())
    }

    /// The purge of stored helpers, as this process would run it (see [`crate::jobs`]).
    pub fn purge(&self) -> Purge {
        Purge::new(
            self.pool.clone(),
            self.accounts.clone(),
            self.config.purge(),
        )
    }

    /// A projector of this application's group. It gets a pool of its own, so that
    /// queries (which may wait on `Event-Position`) can never starve the projector they
    /// are waiting for.
    pub fn projector(&self) -> anyhow::Result<Projector> {
        Ok(Projector::new(
            connect_read_models(&self.config, self.config.projector_pool_size)?,
            self.pool.clone(),
            self.config.kafka(),
            self.config.projector_group.clone(),
        ))
    }
}

fn connect_read_models(config: &Config, max_connections: u32) -> anyhow::Result<MySqlPool> {
    crate::databases::checked_when_idle(MySqlPoolOptions::new())
        .max_connections(max_connections)
        .acquire_timeout(READ_ACQUIRE_TIMEOUT)
        .connect_lazy(config.read_database_url.expose())
        .context("the read models' address (READ_DATABASE_URL)")
}

/// Applies the event store's pending migrations (PostgreSQL), then the rewrite of history
/// that seals the personal data of events written before sealing (once per store).
pub async fn migrate_event_store(pool: &PgPool) -> anyhow::Result<()> {
    store::MIGRATOR
        .run(pool)
        .await
        .context("migrating the event store (PostgreSQL)")?;
    store::history_sealing::seal_history(pool)
        .await
        .context("sealing the personal data of earlier events")?;
    Ok(())
}

/// Applies the read models' pending migrations (MySQL).
pub async fn migrate_read_models(pool: &MySqlPool) -> anyhow::Result<()> {
    ::projections::MIGRATOR
        .run(pool)
        .await
        .context("migrating the read models (MySQL)")
}
