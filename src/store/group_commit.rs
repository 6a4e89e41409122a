//! Group commit: the events of commands that arrive together are written with one
//! `INSERT`, in one transaction, and each command is answered for its own events.
//!
//! Each command used to write with a statement of its own: one round trip, one commit and
//! one flush of PostgreSQL's write-ahead log per command, and one more round trip as sqlx
//! hands the connection back to its pool (it pings every connection it takes back). Under
//! load most of PostgreSQL's time went to that, not to the rows (`make bench`,
//! pg_stat_statements and `perf`: 0.14 ms of the statement against 0.55 ms of the server's
//! CPU per command). This is what PostgreSQL does itself for concurrent commits
//! (`commit_delay`), and what event stores with a writer queue do.
//!
//! - **Nothing waits to fill a batch.** A command is written at once when a writer is free;
//!   the commands that arrive while all [`WRITERS`] are busy go together in the next batch.
//!   At rest every batch is one command, as before.
//! - **Each command keeps its own verdict.** A batch commits all of its commands or none.
//!   When PostgreSQL refuses a batch (one command lost a race on its aggregate's
//!   sequence, an email already claimed), nothing of it was stored, and each command is
//!   written again on its own, in arrival order, so that each gets the answer it would
//!   have had alone. When the connection fails, whether the batch committed is unknown:
//!   every command of it gets that error (503), as it would have alone; none is written
//!   again, which could store it twice.
//! - **The order is the arrival order.** The rows are numbered in the statement
//!   (`WITH ORDINALITY`), so the global positions follow the commands' order, and a
//!   command's events stay together.

use std::sync::{Arc, OnceLock};

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot, Semaphore};

/// Batches in flight at once. Each takes a connection; while all are busy, arriving
/// commands queue for the next batch.
const WRITERS: usize = 4;
/// The most rows one batch takes; a command is never split.
const MAX_ROWS: usize = 1_000;

/// One command's events, with the channel its verdict goes back on.
struct Append {
    aggregate_type: &'static str,
    events: Vec<SerializedEvent>,
    answer: oneshot::Sender<Result<(), PersistenceError>>,
}

/// Cheap to clone; clones share one dispatching task, started with the first write
/// (construction may happen outside the runtime), which ends when the last clone is
/// dropped.
#[derive(Clone)]
pub struct GroupCommit {
    pool: PgPool,
    queue: Arc<OnceLock<mpsc::UnboundedSender<Append>>>,
}

impl GroupCommit {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            queue: Arc::new(OnceLock::new()),
        }
    }

    /// Stores one command's events, all or none, and returns once they committed.
    /// Failures are reported as postgres-es reports them (see [`persistence_error`]).
    pub async fn append(
        &self,
        aggregate_type: &'static str,
        events: Vec<SerializedEvent>,
    ) -> Result<(), PersistenceError> {
        if events.is_empty() {
            return Ok(());
        }
        let queue = self
            .queue
            .get_or_init(|| spawn_dispatcher(self.pool.clone()));
        let (answer, verdict) = oneshot::channel();
        let append = Append {
            aggregate_type,
            events,
            answer,
        };
        if let Err(mpsc::error::SendError(append)) = queue.send(append) {
            // The dispatcher is gone with the runtime that started it: write alone.
            return insert(&self.pool, &[&append])
                .await
                .map_err(persistence_error);
        }
        verdict.await.unwrap_or_else(|_| {
            Err(PersistenceError::UnknownError(
                "the event store's writer stopped before answering".into(),
            ))
        })
    }
}

fn spawn_dispatcher(pool: PgPool) -> mpsc::UnboundedSender<Append> {
    let (queue, mut arrivals) = mpsc::unbounded_channel::<Append>();
    tokio::spawn(async move {
        let writers = Arc::new(Semaphore::new(WRITERS));
        while let Some(first) = arrivals.recv().await {
            // Waiting for a writer is what lets commands gather behind the first.
            let Ok(writer) = writers.clone().acquire_owned().await else {
                return;
            };
            let mut rows = first.events.len();
            let mut batch = vec![first];
            while rows < MAX_ROWS {
                match arrivals.try_recv() {
                    Ok(next) => {
                        rows += next.events.len();
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            let pool = pool.clone();
            tokio::spawn(async move {
                write(&pool, batch).await;
                drop(writer);
            });
        }
    });
    queue
}

/// Writes a batch and answers each of its commands.
async fn write(pool: &PgPool, batch: Vec<Append>) {
    let all: Vec<&Append> = batch.iter().collect();
    let outcome = insert(pool, &all).await;
    match outcome {
        Ok(()) => {
            for append in batch {
                let _ = append.answer.send(Ok(()));
            }
        }
        // PostgreSQL refused the statement, so nothing of it was stored: each command on
        // its own, for its own verdict. (Alone, its error is its own already.)
        Err(sqlx::Error::Database(_)) if batch.len() > 1 => {
            for append in batch {
                let alone = insert(pool, &[&append]).await.map_err(persistence_error);
                let _ = append.answer.send(alone);
            }
        }
        // The batch may or may not have committed: the same error for each command.
        Err(error) => {
            let mut batch = batch.into_iter();
            let first = batch.next().expect("a batch is never empty");
            for append in batch {
                let _ = append
                    .answer
                    .send(Err(persistence_error(same_failure(&error))));
            }
            let _ = first.answer.send(Err(persistence_error(error)));
        }
    }
}

/// Another error of the same kind as `error`, for each command of a batch that failed
/// with it (`sqlx::Error` cannot be cloned); kinds that decide 503 against 500 are kept.
fn same_failure(error: &sqlx::Error) -> sqlx::Error {
    match error {
        sqlx::Error::Io(io) => sqlx::Error::Io(std::io::Error::new(io.kind(), io.to_string())),
        sqlx::Error::Tls(tls) => sqlx::Error::Tls(tls.to_string().into()),
        sqlx::Error::PoolTimedOut => sqlx::Error::PoolTimedOut,
        sqlx::Error::PoolClosed => sqlx::Error::PoolClosed,
        sqlx::Error::WorkerCrashed => sqlx::Error::WorkerCrashed,
        other => sqlx::Error::Protocol(other.to_string()),
    }
}

/// One `INSERT` of the commands' events into postgres-es's `events` table, as one
/// transaction. With `WITH ORDINALITY` and `ORDER BY` the global positions follow the
/// commands' order and each command's own.
async fn insert(pool: &PgPool, batch: &[&Append]) -> Result<(), sqlx::Error> {
    let events = || batch.iter().flat_map(|a| a.events.iter());
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         SELECT aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata
           FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[],
                       $6::jsonb[], $7::jsonb[])
                WITH ORDINALITY AS e(aggregate_type, aggregate_id, sequence, event_type,
                                     event_version, payload, metadata, n)
          ORDER BY n",
    )
    .bind(
        batch
            .iter()
            .flat_map(|a| std::iter::repeat_n(a.aggregate_type, a.events.len()))
            .collect::<Vec<_>>(),
    )
    .bind(
        events()
            .map(|e| e.aggregate_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(events().map(|e| e.sequence as i64).collect::<Vec<_>>())
    .bind(events().map(|e| e.event_type.as_str()).collect::<Vec<_>>())
    .bind(
        events()
            .map(|e| e.event_version.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(events().map(|e| &e.payload).collect::<Vec<_>>())
    .bind(events().map(|e| &e.metadata).collect::<Vec<_>>())
    .execute(pool)
    .await
    .map(|_| ())
}

/// postgres-es's classification of a failed write (its own is not public): a clash on
/// the primary key (aggregate type, id, sequence), another command having stored those
/// sequences first, is an optimistic-lock error; a broken connection a connection error;
/// anything else unknown, the `sqlx::Error` inside.
fn persistence_error(error: sqlx::Error) -> PersistenceError {
    match &error {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => {
            PersistenceError::OptimisticLockError
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            PersistenceError::ConnectionError(Box::new(error))
        }
        _ => PersistenceError::UnknownError(Box::new(error)),
    }
}
