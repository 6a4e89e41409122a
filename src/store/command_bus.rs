//! Runs commands against aggregates in the event store.
//!
//! This does what `cqrs_es::CqrsFramework::execute` does (load, handle, commit) but also
//! checks an expected version and returns the new version and state, which the HTTP layer
//! needs for `If-Match` and `ETag`. Concurrency control is postgres-es's: the events are
//! inserted at sequence numbers after the loaded one, and a primary-key clash means another
//! command won the race (`CommandError::Conflict`).
//!
//! Aggregates take no cqrs-es services: what they need to know of other aggregates is in
//! the command (`aggregates::facts`), looked up before it is sent.

use std::collections::HashMap;

use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::{EventStoreAggregateContext, PersistedEventStore};
use cqrs_es::{Aggregate, EventStore};
use sqlx::PgPool;
use tracing::instrument;
use uuid::Uuid;

use aggregates::account::Account;
use aggregates::category::Category;
use aggregates::comment::Comment;
use aggregates::post::Post;
use aggregates::{DomainError, Snapshot};

use super::aggregate_loader::{AggregateLoader, Loaded};
use super::group_commit::GroupCommit;
use super::sealing::SealingRepository;
use super::CommandError;
use crate::personal_data::Vault;

/// Who and what caused a command; stored with every event it writes.
#[derive(Debug, Clone, Default)]
pub struct Metadata {
    pub request_id: String,
    pub correlation_id: String,
    pub account_id: Option<Uuid>,
}

impl Metadata {
    fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            ("requestId".to_string(), self.request_id.clone()),
            ("correlationId".to_string(), self.correlation_id.clone()),
        ]);
        if let Some(account_id) = self.account_id {
            map.insert("accountId".to_string(), account_id.to_string());
        }
        map
    }
}

/// The result of an accepted command.
#[derive(Debug)]
pub struct CommandOutcome<A> {
    /// The aggregate's version (its last event's sequence number) after the command.
    pub version: u64,
    /// How many events the command recorded; 0 for a no-op such as a retried create.
    pub recorded: usize,
    /// The aggregate's state after the command.
    pub state: A,
}

pub struct CommandBus<A: Aggregate> {
    loader: AggregateLoader<A>,
    /// Writes the events: cqrs-es numbers them and adds their metadata, postgres-es
    /// inserts them in one transaction, sealed on the way (`SealingRepository`).
    store: PersistedEventStore<SealingRepository, A>,
}

/// How often a command is decided again after losing a race, when the client did not ask
/// for a specific version.
const ATTEMPTS: usize = 3;

/// What a command's attempt is decided on.
#[derive(Clone, Copy)]
enum Start {
    /// The aggregate as the store has it.
    Load,
    /// No history: the first attempt of a creation under a new id.
    Empty,
}

impl<A> CommandBus<A>
where
    A: Aggregate<Error = DomainError, Services = ()> + Clone,
    A::Command: Clone,
{
    /// A bus that replays each aggregate's whole history on every command.
    pub fn without_snapshots(pool: PgPool, writer: GroupCommit) -> Self {
        Self::with_loader(
            AggregateLoader::without_snapshots(pool.clone()),
            pool,
            writer,
        )
    }

    fn with_loader(loader: AggregateLoader<A>, pool: PgPool, writer: GroupCommit) -> Self {
        let vault = Vault::new(pool.clone());
        let repository = SealingRepository::new(pool, vault, writer);
        Self {
            loader,
            store: PersistedEventStore::new_event_store(repository),
        }
    }

    /// Runs `command` on aggregate `id`. With `expected_versions` (from `If-Match`), the
    /// command is applied only if the aggregate is at one of those versions. Without them,
    /// a command that lost a race is decided again on the new state (it is never applied
    /// to a stale one), a few times before answering `Conflict`.
    #[instrument(skip_all, fields(aggregate = A::TYPE, %id))]
    pub async fn execute(
        &self,
        id: Uuid,
        command: A::Command,
        expected_versions: Option<&[u64]>,
        metadata: &Metadata,
    ) -> Result<CommandOutcome<A>, CommandError> {
        self.run(id, command, expected_versions, metadata, Start::Load)
            .await
    }

    /// Runs a command that creates aggregate `id`, an id made for it. Its first attempt
    /// is decided on an empty history without reading one, since a new id has none: one
    /// statement less per creation. If the id had a history after all (a retry under the
    /// same idempotency key), the write at sequence 1 collides with it on the events'
    /// primary key, and the command is decided again on the loaded state, as after any
    /// lost race; a refusal, which writes nothing to collide, is decided again on the
    /// loaded state too.
    #[instrument(skip_all, fields(aggregate = A::TYPE, %id))]
    pub async fn execute_create(
        &self,
        id: Uuid,
        command: A::Command,
        metadata: &Metadata,
    ) -> Result<CommandOutcome<A>, CommandError> {
        self.run(id, command, None, metadata, Start::Empty).await
    }

    async fn run(
        &self,
        id: Uuid,
        command: A::Command,
        expected_versions: Option<&[u64]>,
        metadata: &Metadata,
        mut start: Start,
    ) -> Result<CommandOutcome<A>, CommandError> {
        let mut attempt = 1;
        loop {
            let result = self
                .attempt(id, command.clone(), expected_versions, metadata, start)
                .await;
            match result {
                // Only a write tells that the history was empty (it collides otherwise):
                // a refusal decided on an assumed-empty history may be wrong for the
                // real one (a retried comment on a post deleted since is a no-op there).
                Err(CommandError::Domain(_)) if matches!(start, Start::Empty) => {
                    start = Start::Load;
                    tracing::debug!(
                        "refused on an assumed-empty history; deciding on the stored one"
                    );
                }
                Err(CommandError::Conflict)
                    if expected_versions.is_none() && attempt < ATTEMPTS =>
                {
                    attempt += 1;
                    start = Start::Load;
                    tracing::debug!(attempt, "lost a race; deciding again on the new state");
                }
                other => {
                    let outcome = other
                        .as_ref()
                        .map_or_else(CommandError::outcome, |_| "accepted");
                    crate::metrics::record_command(A::TYPE, outcome);
                    return other;
                }
            }
        }
    }

    async fn attempt(
        &self,
        id: Uuid,
        command: A::Command,
        expected_versions: Option<&[u64]>,
        metadata: &Metadata,
        start: Start,
    ) -> Result<CommandOutcome<A>, CommandError> {
        let loaded = match start {
            Start::Load => self.loader.load(id).await?,
            Start::Empty => Loaded::nothing(),
        };
        let current = loaded.version;
        if expected_versions.is_some_and(|expected| !expected.contains(&current)) {
            return Err(CommandError::VersionMismatch { current });
        }
        let mut context = EventStoreAggregateContext {
            aggregate_id: id.to_string(),
            aggregate: loaded.state,
            current_sequence: current as usize,
            current_snapshot: None,
        };
        let sink = EventSink::default();
        context.aggregate.handle(command, &(), &sink).await?;
        let events = sink.collect().await;
        let recorded = events.len();
        // The sink applied each event to the aggregate as it was written.
        let state = context.aggregate.clone();
        self.store
            .commit(events, context, metadata.to_map())
            .await?;
        let version = current + recorded as u64;
        tracing::debug!(recorded, "command accepted");
        self.loader
            .keep_snapshot(id, loaded.snapshot_version, version, &state)
            .await;
        Ok(CommandOutcome {
            version,
            recorded,
            state,
        })
    }

    /// The aggregate's current state and version (0 when it has no events).
    pub async fn load(&self, id: Uuid) -> Result<(A, u64), CommandError> {
        let loaded = self.loader.load(id).await?;
        Ok((loaded.state, loaded.version))
    }
}

impl<A> CommandBus<A>
where
    A: Snapshot<Error = DomainError, Services = ()> + Clone,
    A::Command: Clone,
{
    /// A bus that loads aggregates from their snapshots and keeps those up to date.
    pub fn with_snapshots(pool: PgPool, writer: GroupCommit) -> Self {
        Self::with_loader(AggregateLoader::with_snapshots(pool.clone()), pool, writer)
    }
}

/// One command bus per aggregate type, sharing one pool and one writer (commands of
/// every type are written together).
pub struct CommandBuses {
    pub accounts: CommandBus<Account>,
    pub categories: CommandBus<Category>,
    pub posts: CommandBus<Post>,
    pub comments: CommandBus<Comment>,
}

impl CommandBuses {
    pub fn new(pool: PgPool) -> Self {
        // Writes the events of every type, and wakes the event store's readers after.
        let writer = GroupCommit::new(pool.clone());
        Self {
            // An account's state holds its plain email and nickname, which are kept at
            // rest only sealed: no snapshots (an account's history stays short anyway).
            accounts: CommandBus::without_snapshots(pool.clone(), writer.clone()),
            categories: CommandBus::with_snapshots(pool.clone(), writer.clone()),
            posts: CommandBus::with_snapshots(pool.clone(), writer.clone()),
            comments: CommandBus::with_snapshots(pool, writer),
        }
    }
}
