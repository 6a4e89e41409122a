//! The event store as the command side uses it, with personal data sealed on the way in
//! and opened on the way out (see `crate::personal_data`).
//!
//! A wrapper around postgres-es's repository: `persist` seals the personal fields of the
//! events it is given with their account's key (made on first use) before they are
//! inserted, so no plain email or nickname ever reaches the events table, the relay or
//! the topic; its loads open them again for the aggregate, whole (`Reveal::Everything`), as
//! `store::aggregate_loader` does for the command buses. Events without personal fields
//! pass through untouched, without a key lookup. The insert itself is Board's own: one
//! statement instead of postgres-es's transaction of three, shared with the commands
//! beside it (see [`GroupCommit`]).

use cqrs_es::persist::{
    PersistedEventRepository, PersistenceError, ReplayStream, SerializedEvent, SerializedSnapshot,
};
use cqrs_es::Aggregate;
use postgres_es::PostgresEventRepository;
use serde_json::Value;
use sqlx::PgPool;

use super::GroupCommit;
use crate::personal_data::{self, Reveal, Vault};

pub struct SealingRepository {
    inner: PostgresEventRepository,
    writer: GroupCommit,
    vault: Vault,
}

impl SealingRepository {
    pub fn new(pool: PgPool, vault: Vault, writer: GroupCommit) -> Self {
        Self {
            inner: PostgresEventRepository::new(pool),
            writer,
            vault,
        }
    }

    async fn open(
        &self,
        mut events: Vec<SerializedEvent>,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        self.vault
            .open_all(&mut events, Reveal::Everything)
            .await
            .map_err(unknown)?;
        Ok(events)
    }
}

impl PersistedEventRepository for SealingRepository {
    async fn get_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let events = self.inner.get_events::<A>(aggregate_id).await?;
        self.open(events).await
    }

    async fn get_last_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
        last_sequence: usize,
    ) -> Result<Vec<SerializedEvent>, PersistenceError> {
        let events = self
            .inner
            .get_last_events::<A>(aggregate_id, last_sequence)
            .await?;
        self.open(events).await
    }

    /// Board keeps its snapshots itself (`store::aggregate_loader`) and loads aggregates
    /// there; cqrs-es's event store mode never asks for one.
    async fn get_snapshot<A: Aggregate>(
        &self,
        _aggregate_id: &str,
    ) -> Result<Option<SerializedSnapshot>, PersistenceError> {
        Ok(None)
    }

    async fn persist<A: Aggregate>(
        &self,
        events: &[SerializedEvent],
        snapshot_update: Option<(String, Value, usize)>,
    ) -> Result<(), PersistenceError> {
        // cqrs-es's event-store mode asks for no snapshot; Board keeps its own.
        if snapshot_update.is_some() {
            let refused = "cqrs-es snapshots are not kept by this event store".into();
            return Err(PersistenceError::UnknownError(refused));
        }
        let mut sealed = events.to_vec();
        for event in &mut sealed {
            if personal_data::personal_fields(&event.event_type).is_empty() {
                continue;
            }
            let key = self
                .vault
                .key_for_sealing(&event.aggregate_id)
                .await
                .map_err(unknown)?;
            personal_data::seal_payload(&event.event_type, &mut event.payload, &key);
        }
        self.writer.append(A::TYPE, sealed).await
    }

    /// Not used by Board (its readers of whole streams are `store::reader`); the events
    /// come as stored, sealed.
    async fn stream_events<A: Aggregate>(
        &self,
        aggregate_id: &str,
    ) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_events::<A>(aggregate_id).await
    }

    /// As [`Self::stream_events`].
    async fn stream_all_events<A: Aggregate>(&self) -> Result<ReplayStream, PersistenceError> {
        self.inner.stream_all_events::<A>().await
    }
}

/// A vault failure as the event store reports its own: `CommandError` then tells an
/// unavailable database (503) from a bug by looking at the `sqlx::Error` inside.
fn unknown(error: sqlx::Error) -> PersistenceError {
    PersistenceError::UnknownError(Box::new(error))
}
