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
//!   At rest every batch is one command, as before. A command that waited longer for a
//!   writer than the pool lets anyone wait for a connection is answered "unavailable"
//!   (503) without being written, as it was when it waited for the pool itself.
//! - **Each command keeps its own verdict.** A batch commits all of its commands or none.
//!   When PostgreSQL refuses a batch (one command lost a race on its aggregate's
//!   sequence, an email already claimed, a deadlock), nothing of it was stored, and each
//!   command is written again on its own, in the batch's order, so that each gets the
//!   answer it would have had alone. Any other failure (the connection, the server going
//!   away) may come after the commit: every command of the batch gets that error (503),
//!   as it would have alone, and none is written again, which could store it twice.
//! - **One command per aggregate in a batch.** A second command on an aggregate already
//!   in the batch waits for the next one: both would clash on the same sequence and
//!   fail the batch. A batch's commands are ordered by aggregate, so two batches in
//!   flight take their rows' locks in the same order and cannot deadlock on them. (The
//!   order among concurrent commands is the store's to choose; a command's own events
//!   keep theirs.)
//! - **A writer keeps its connection while batches are ready one after another**, and
//!   hands it back to the pool when none is (see [`run_writer`]): sqlx pings every
//!   connection it takes back, one more round trip per batch.
//! - **The readers are woken by the writer**, once the events committed
//!   ([`CommitSignal`]): one wake-up per batch, sent even when the command's caller has
//!   gone away meanwhile.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use cqrs_es::persist::{PersistenceError, SerializedEvent};
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, PgPool, Postgres};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio::time::Instant;

use super::commit_signal::CommitSignal;

/// Batches in flight at once, one per writer, each on a connection of its own; while all
/// are busy, arriving commands queue for the next batch.
const WRITERS: usize = 4;
/// The most rows one batch takes; a command is never split.
const MAX_ROWS: usize = 1_000;
/// How long a writer keeps one connection for batch after batch before it hands it back
/// (checked after each batch, so this and one batch at most), so that the pool's own
/// upkeep (its connections' lifetime) sees each one that often even under a load that
/// never lets up.
const KEEP_AT_MOST: Duration = Duration::from_secs(1);

/// One command's events, with the channel its verdict goes back on.
struct Append {
    aggregate_type: &'static str,
    events: Vec<SerializedEvent>,
    answer: oneshot::Sender<Result<(), PersistenceError>>,
    queued_at: Instant,
}

impl Append {
    /// The aggregate the command is about (all of a command's events are).
    fn aggregate(&self) -> (&'static str, &str) {
        (self.aggregate_type, &self.events[0].aggregate_id)
    }
}

/// Cheap to clone; clones share the writers, started with the first write (construction
/// may happen outside the runtime), which end when the last clone is dropped.
#[derive(Clone)]
pub struct GroupCommit {
    pool: PgPool,
    committed: CommitSignal,
    queue: Arc<OnceLock<mpsc::UnboundedSender<Append>>>,
}

impl GroupCommit {
    pub fn new(pool: PgPool) -> Self {
        Self {
            committed: CommitSignal::new(pool.clone()),
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
            .get_or_init(|| spawn_writers(self.pool.clone(), self.committed.clone()));
        let (answer, verdict) = oneshot::channel();
        let append = Append {
            aggregate_type,
            events,
            answer,
            queued_at: Instant::now(),
        };
        if let Err(mpsc::error::SendError(append)) = queue.send(append) {
            // The writers are gone with the runtime that started them: write alone.
            return insert_alone(&self.pool, &self.committed, &append)
                .await
                .map_err(persistence_error);
        }
        // The writer went away with its runtime, perhaps in the middle of the write:
        // unavailable, whether the events were stored unknown.
        verdict.await.unwrap_or_else(|_| {
            Err(PersistenceError::ConnectionError(
                "the event store's writer stopped before answering".into(),
            ))
        })
    }
}

/// The commands waiting for a writer; the writers take turns at it.
struct Waiting {
    arrivals: mpsc::UnboundedReceiver<Append>,
    /// A command kept out of the last batch: its aggregate was in it.
    held: Option<Append>,
    /// As long as the pool lets anyone wait for a connection.
    longest_wait: Duration,
}

impl Waiting {
    /// The next batch, waiting for its first command if none is there; `None` once every
    /// sender is gone.
    async fn next_batch(&mut self) -> Option<Vec<Append>> {
        loop {
            let first = match self.held.take() {
                Some(append) => append,
                None => self.arrivals.recv().await?,
            };
            if let Some(batch) = self.gather(first) {
                return Some(batch);
            }
        }
    }

    /// A batch of the commands already waiting, if there are any.
    fn ready_batch(&mut self) -> Option<Vec<Append>> {
        loop {
            let first = match self.held.take() {
                Some(append) => append,
                None => self.arrivals.try_recv().ok()?,
            };
            if let Some(batch) = self.gather(first) {
                return Some(batch);
            }
        }
    }

    /// `first` and the commands queued behind it, ordered by aggregate; `None` when every
    /// one of them waited too long and was answered so.
    fn gather(&mut self, first: Append) -> Option<Vec<Append>> {
        let mut batch: Vec<Append> = Vec::new();
        let mut rows = 0;
        let mut next = Some(first);
        while let Some(append) = next.take() {
            if append.queued_at.elapsed() > self.longest_wait {
                let _ = append.answer.send(Err(waited_too_long(self.longest_wait)));
            } else if batch.iter().any(|b| b.aggregate() == append.aggregate()) {
                self.held = Some(append);
                break;
            } else {
                rows += append.events.len();
                batch.push(append);
            }
            if rows < MAX_ROWS {
                next = self.arrivals.try_recv().ok();
            }
        }
        if batch.is_empty() {
            return None;
        }
        batch.sort_by(|a, b| a.aggregate().cmp(&b.aggregate()));
        Some(batch)
    }
}

fn spawn_writers(pool: PgPool, committed: CommitSignal) -> mpsc::UnboundedSender<Append> {
    let (queue, arrivals) = mpsc::unbounded_channel::<Append>();
    let waiting = Arc::new(Mutex::new(Waiting {
        arrivals,
        held: None,
        longest_wait: pool.options().get_acquire_timeout(),
    }));
    for _ in 0..WRITERS {
        tokio::spawn(run_writer(waiting.clone(), pool.clone(), committed.clone()));
    }
    queue
}

/// One writer: takes a batch, writes it, answers its commands, and again.
///
/// While batches are ready one after another it keeps its connection: sqlx pings every
/// connection it takes back (`PoolConnection::return_to_pool`: with MySQL's pings, 6.5 %
/// of Board's samples under a burst, docs/PERFORMANCE.md). It hands the connection back
/// - when no batch is ready, before it waits: an idle writer holds none;
/// - when the pool is closing: closing waits for the batch in hand only;
/// - when the pool has no connection to spare, so that whoever waits for one (a command
///   loading its aggregate, another writer) gets it in the pool's order, not after every
///   batch this writer can find;
/// - when a statement on it failed in any way other than PostgreSQL refusing it: the
///   pool's ping on its return decides whether it is kept;
/// - after [`KEEP_AT_MOST`].
async fn run_writer(waiting: Arc<Mutex<Waiting>>, pool: PgPool, committed: CommitSignal) {
    let mut kept: Option<(PoolConnection<Postgres>, Instant)> = None;
    loop {
        let next = match kept.take() {
            // Only a batch that is there now. The lock is busy while another writer waits
            // for arrivals (there is nothing to take) or gathers a batch (it takes what
            // there is): either way this writer has none.
            Some(connection) => match waiting.try_lock().ok().and_then(|mut w| w.ready_batch()) {
                Some(batch) => Some((batch, Some(connection))),
                None => {
                    drop(connection);
                    continue;
                }
            },
            // Waiting here, behind the writer that waits for the first command, is what
            // lets commands gather behind it.
            None => waiting
                .lock()
                .await
                .next_batch()
                .await
                .map(|batch| (batch, None)),
        };
        let Some((batch, connection)) = next else {
            return;
        };
        let (connection, taken_at) = match connection {
            Some(kept) => kept,
            None => match pool.acquire().await {
                Ok(connection) => (connection, Instant::now()),
                Err(error) => {
                    answer_all(batch, error);
                    continue;
                }
            },
        };
        let connection = write(&pool, connection, &committed, batch).await;
        if let Some(connection) = connection {
            if !pool.is_closed() && !exhausted(&pool) && taken_at.elapsed() < KEEP_AT_MOST {
                kept = Some((connection, taken_at));
            }
        }
    }
}

/// Whether every connection the pool may open is in use, so that anyone else who asks
/// for one waits.
fn exhausted(pool: &PgPool) -> bool {
    pool.num_idle() == 0 && pool.size() >= pool.options().get_max_connections()
}

/// As the pool answers a caller that waited `limit` for a connection.
fn waited_too_long(limit: Duration) -> PersistenceError {
    tracing::debug!(
        ?limit,
        "a command waited too long for the event store's writer"
    );
    PersistenceError::UnknownError(Box::new(sqlx::Error::PoolTimedOut))
}

/// Writes a batch and answers each of its commands. Gives the connection back for the
/// next batch when every statement on it succeeded or was refused by PostgreSQL: sqlx
/// reads on to the server's ready-for-query after an error, and the refused statement's
/// implicit transaction is rolled back by then, so the connection is as it was.
async fn write(
    pool: &PgPool,
    mut connection: PoolConnection<Postgres>,
    committed: &CommitSignal,
    batch: Vec<Append>,
) -> Option<PoolConnection<Postgres>> {
    let all: Vec<&Append> = batch.iter().collect();
    match insert(&mut connection, committed, &all).await {
        Ok(()) => {
            for append in batch {
                let _ = append.answer.send(Ok(()));
            }
            Some(connection)
        }
        // PostgreSQL refused the statement, so nothing of it was stored: each command on
        // its own, for its own verdict. (Alone, its error is its own already.) Once the
        // connection fails otherwise, the rest are written on connections of the pool's,
        // so that one broken connection is one command's error, not all of theirs.
        Err(error) if batch.len() > 1 && refused(&error) => {
            let mut connection = Some(connection);
            for append in batch {
                let alone = match connection.as_mut() {
                    Some(connection) => insert(connection, committed, &[&append]).await,
                    None => insert_alone(pool, committed, &append).await,
                };
                if alone.as_ref().is_err_and(|error| !refused(error)) {
                    connection = None;
                }
                let _ = append.answer.send(alone.map_err(persistence_error));
            }
            connection
        }
        Err(error) => {
            let sound = refused(&error);
            answer_all(batch, error);
            sound.then_some(connection)
        }
    }
}

/// The same error for each command of a batch: the batch's write failed in a way that
/// may have come after its commit, or no connection could be had for it.
fn answer_all(batch: Vec<Append>, error: sqlx::Error) {
    let mut batch = batch.into_iter();
    let first = batch.next().expect("a batch is never empty");
    for append in batch {
        let _ = append
            .answer
            .send(Err(persistence_error(same_failure(&error))));
    }
    let _ = first.answer.send(Err(persistence_error(error)));
}

/// Whether PostgreSQL refused the statement, so that its transaction surely rolled back:
/// bad data (22), a constraint (23), a deadlock or serialization failure (40), a
/// statement it cannot run (42), a limit (54), an error raised by a trigger (P0). Other
/// errors (the connection, the server shutting down, a crash) can come after the
/// commit.
fn refused(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    db.code().is_some_and(|code| {
        ["22", "23", "40", "42", "54", "P0"]
            .iter()
            .any(|class| code.starts_with(class))
    })
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

/// One command's events on a connection of its own, taken from the pool and given back.
async fn insert_alone(
    pool: &PgPool,
    committed: &CommitSignal,
    append: &Append,
) -> Result<(), sqlx::Error> {
    let mut connection = pool.acquire().await?;
    insert(&mut connection, committed, &[append]).await
}

/// One `INSERT` of the commands' events into postgres-es's `events` table, as one
/// transaction, then the readers' wake-up. With `WITH ORDINALITY` and `ORDER BY` the
/// global positions follow the commands' order and each command's own.
async fn insert(
    connection: &mut PgConnection,
    committed: &CommitSignal,
    batch: &[&Append],
) -> Result<(), sqlx::Error> {
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
    .execute(connection)
    .await?;
    committed.committed();
    Ok(())
}

/// postgres-es's classification of a failed write (its own is not public): a clash on
/// the primary key (aggregate type, id, sequence), another command having stored those
/// sequences first, is an optimistic-lock error; a broken connection a connection error;
/// anything else unknown, the `sqlx::Error` inside. A deadlock or serialization failure
/// (class 40: two commands' rows locked in opposite orders, the claims of unique values
/// among them) counts as a lost race too: the command bus decides the command again on
/// the current state.
fn persistence_error(error: sqlx::Error) -> PersistenceError {
    match &error {
        sqlx::Error::Database(db)
            if db
                .code()
                .is_some_and(|code| code == "23505" || code.starts_with("40")) =>
        {
            PersistenceError::OptimisticLockError
        }
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => {
            PersistenceError::ConnectionError(Box::new(error))
        }
        _ => PersistenceError::UnknownError(Box::new(error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::databases::is_unavailable;
    use crate::store::CommandError;

    /// Whether the caller of a command that failed with `error` is answered 503 (else 500).
    fn answered_unavailable(error: sqlx::Error) -> bool {
        let error: CommandError =
            cqrs_es::AggregateError::<aggregates::DomainError>::from(persistence_error(error))
                .into();
        matches!(error, CommandError::Unavailable(_))
    }

    #[test]
    fn every_command_of_a_failed_batch_gets_the_answer_the_first_one_gets() {
        let failures = || {
            [
                sqlx::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "reset",
                )),
                sqlx::Error::Tls("handshake".into()),
                sqlx::Error::PoolTimedOut,
                sqlx::Error::PoolClosed,
                sqlx::Error::WorkerCrashed,
                sqlx::Error::RowNotFound,
                sqlx::Error::Protocol("garbled".into()),
            ]
        };
        for (error, again) in failures().into_iter().zip(failures()) {
            let copy = same_failure(&again);
            assert_eq!(is_unavailable(&copy), is_unavailable(&error), "{error:?}");
            assert_eq!(
                answered_unavailable(copy),
                answered_unavailable(error),
                "{again:?}"
            );
        }
    }
}
