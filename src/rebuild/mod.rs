//! Rebuilding and verifying read models from the event store, the source of truth
//! whatever Kafka still retains.
//!
//! A rebuild replays every event, in global order and through the same projector code as
//! the live path, into a shadow database beside the live one, then swaps the view tables
//! in with one `RENAME TABLE` (atomic: queries see the old tables or the new ones, never
//! neither). The quarantine is swapped with them: it tells which events their rows lack,
//! so the old one would be wrong about the new rows (an event quarantined before a fix
//! that the rebuild applied would go on holding its aggregate's later events back). While
//! it runs, the live projector keeps the old tables current, so the query API answers
//! throughout.
//!
//! Hand-over: for its last catch-up and the swap, the rebuild holds the projection's lock
//! exclusively, which the live projector takes in shared mode for every batch. So the live
//! projector pauses between two batches; every event it had applied was readable in the
//! store before that, so the last catch-up has it too. After the swap the live projector
//! goes on where it was: what the rebuild already applied, it finds applied (every row
//! remembers its version), and nothing is missing. Reads never go backwards.
//!
//! Interrupting (Ctrl-C) before the swap drops the shadow database and leaves the live
//! read model untouched. A run starts by dropping whatever an interrupted run left behind.

mod published;

use std::time::{Duration, Instant};

use anyhow::Context;
use sqlx::mysql::MySqlPoolOptions;
use sqlx::{MySqlPool, PgPool};
use tokio::sync::watch;

use projections::fold::{self, Bulk};

use crate::personal_data::{Reveal, Vault};
use projections::views;
use projections::{quarantine, snapshot};

use crate::databases::{database_name, with_database};
use crate::kafka::into_envelope;
use crate::store::reader::{self, Checkpoint, Filter, ReadAhead};

pub use published::{read as published_progress, RebuildRow};
use published::{Ended, PublishedProgress};

/// Events read from the store at a time.
const PAGE: i64 = 1_000;

/// Called with the number of events just applied.
pub type Progress<'a> = &'a (dyn Fn(u64) + Sync);

/// Applies every readable event after `from` to the read models `bulk` writes: a database
/// no one else writes (a rebuild's shadow, verify's scratch), so the rows stay in memory
/// between pages and are written back in large transactions, the last one landed before
/// this returns. Returns the number of events and the checkpoint reached, or `None` when
/// `cancel` turned true (the database then holds part of them).
pub async fn replay(
    source: &PgPool,
    bulk: &mut Bulk,
    from: Checkpoint,
    progress: Progress<'_>,
    cancel: Option<&watch::Receiver<bool>>,
) -> anyhow::Result<Option<(u64, Checkpoint)>> {
    let mut checkpoint = from;
    let mut count = 0u64;
    let vault = Vault::new(source.clone());
    let mut pages = ReadAhead::start(source, Filter::default(), from, PAGE);
    loop {
        if cancel.is_some_and(|c| *c.borrow()) {
            return Ok(None);
        }
        let events = pages.next_page().await?;
        let Some(last) = events.last() else {
            bulk.finish().await?;
            return Ok(Some((count, checkpoint)));
        };
        checkpoint = last.checkpoint;
        let applied = events.len() as u64;
        let mut envelopes: Vec<_> = events.into_iter().map(into_envelope).collect();
        vault.open_all(&mut envelopes, Reveal::Public).await?;
        // The store is read in global order, so a gap here is a bug, not a lost message.
        bulk.apply(&envelopes).await?;
        count += applied;
        progress(applied);
    }
}

#[derive(Debug)]
pub enum RebuildOutcome {
    /// The new tables are live. `events` counts every event applied.
    Swapped { events: u64, elapsed: Duration },
    /// Interrupted before the swap: the live read model is untouched.
    Interrupted,
}

/// Rebuilds the read models of the database `read_url` names, without downtime.
/// `total` is the number of events the caller counted for its progress bar; it is
/// published with the progress (events arriving meanwhile are replayed too).
pub async fn rebuild(
    source: &PgPool,
    read_url: &str,
    total: u64,
    progress: Progress<'_>,
    cancel: watch::Receiver<bool>,
) -> anyhow::Result<RebuildOutcome> {
    let live = database_name(read_url).context("READ_DATABASE_URL names no database")?;
    let admin = MySqlPool::connect(read_url)
        .await
        .context("connecting to the read models")?;
    let published = PublishedProgress::start(admin.clone(), fold::READ_MODELS, total).await;
    let report = |events: u64| {
        progress(events);
        published.add(events);
    };
    let outcome = swap_in_rebuilt(source, &admin, read_url, &live, &report, cancel).await;
    let ended = match &outcome {
        Ok(RebuildOutcome::Swapped { .. }) => Ended::Swapped,
        Ok(RebuildOutcome::Interrupted) => Ended::Interrupted,
        Err(_) => Ended::Failed,
    };
    published.finish(ended).await;
    outcome
}

/// The rebuild itself: shadow database, bulk pass, catch-up, locked hand-over, swap.
async fn swap_in_rebuilt(
    source: &PgPool,
    admin: &MySqlPool,
    read_url: &str,
    live: &str,
    progress: Progress<'_>,
    cancel: watch::Receiver<bool>,
) -> anyhow::Result<RebuildOutcome> {
    let started = Instant::now();
    let shadow = format!("{live}__rebuild");
    let previous = format!("{live}__previous");
    let _only_writer = OnlyWriter::of(admin, &shadow).await?;
    for leftover in [&shadow, &previous] {
        drop_database(admin, leftover).await?;
    }
    let shadow_pool = fresh_database(admin, read_url, &shadow).await?;
    let mut bulk = Bulk::on_empty_tables(shadow_pool.clone());
    // Everything committed before the rebuild began is in it, whatever else is running.
    reader::settle(source, Duration::from_secs(30)).await?;

    // A bulk pass, then a catch-up pass, so that the swap leaves little to hand over.
    let mut events = 0;
    let mut checkpoint = Checkpoint::default();
    for _pass in 0..2 {
        match replay(source, &mut bulk, checkpoint, progress, Some(&cancel)).await? {
            Some((count, reached)) => {
                events += count;
                checkpoint = reached;
            }
            None => {
                drop(bulk);
                shadow_pool.close().await;
                drop_database(admin, &shadow).await?;
                return Ok(RebuildOutcome::Interrupted);
            }
        }
    }

    // Pause the live projector between batches, catch up the last events, swap.
    // RENAME TABLE commits implicitly, so the lock is held on a connection of its own.
    let mut lock = admin.begin().await?;
    sqlx::query("SELECT projection FROM projection_locks WHERE projection = ? FOR UPDATE")
        .bind(fold::READ_MODELS)
        .fetch_optional(&mut *lock)
        .await?;
    let (last, _) = replay(source, &mut bulk, checkpoint, progress, None)
        .await?
        .expect("no cancel signal was given");
    events += last;
    drop(bulk);
    shadow_pool.close().await;
    sqlx::query(&format!("CREATE DATABASE {}", quoted(&previous)?))
        .execute(admin)
        .await?;
    // The view tables and their quarantine: progress and migrations stay where they are.
    let tables = views::ALL.iter().map(|view| view.table);
    let renames = tables
        .chain([quarantine::TABLE])
        .map(|table| {
            Ok(format!(
                "{live}.{table} TO {previous}.{table}, {shadow}.{table} TO {live}.{table}",
                live = quoted(live)?,
                previous = quoted(&previous)?,
                shadow = quoted(&shadow)?,
            ))
        })
        .collect::<anyhow::Result<Vec<_>>>()?
        .join(", ");
    sqlx::query(&format!("RENAME TABLE {renames}"))
        .execute(admin)
        .await
        .context("swapping the rebuilt tables in")?;
    lock.commit().await?;
    tracing::info!(
        events,
        "rebuilt tables swapped in; the live projector goes on from here"
    );
    for database in [&shadow, &previous] {
        drop_database(admin, database).await?;
    }
    Ok(RebuildOutcome::Swapped {
        events,
        elapsed: started.elapsed(),
    })
}

/// Compares the live read models with ones rebuilt from the store. Waits up to `patience`
/// for the live ones to catch up; returns the differences that remain (none: equal), then
/// one for each event in quarantine: those are not applied, whatever the rows say (a
/// rebuild would quarantine them too, so the rows alone could agree).
pub async fn verify(
    source: &PgPool,
    read_url: &str,
    patience: Duration,
    progress: Progress<'_>,
) -> anyhow::Result<Vec<String>> {
    let live = database_name(read_url).context("READ_DATABASE_URL names no database")?;
    let scratch = format!("{live}__verify");
    let admin = MySqlPool::connect(read_url)
        .await
        .context("connecting to the read models")?;
    let _only_writer = OnlyWriter::of(&admin, &scratch).await?;
    drop_database(&admin, &scratch).await?;
    let reference = fresh_database(&admin, read_url, &scratch).await?;
    let mut bulk = Bulk::on_empty_tables(reference.clone());
    let deadline = Instant::now() + patience;
    let mut checkpoint = Checkpoint::default();
    let differences = loop {
        // Bring the reference up to the store's head, then compare.
        let (_, reached) = replay(source, &mut bulk, checkpoint, progress, None)
            .await?
            .expect("no cancel signal was given");
        checkpoint = reached;
        let expected = snapshot::take(&reference).await?;
        let actual = snapshot::take(&admin).await?;
        let differences = snapshot::differences(&actual, &expected);
        if differences.is_empty() || Instant::now() >= deadline {
            break differences;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    drop(bulk);
    reference.close().await;
    drop_database(&admin, &scratch).await?;
    let quarantined = quarantine::list(&admin, None).await?;
    Ok(differences
        .into_iter()
        .chain(quarantined.iter().map(|entry| {
            format!(
                "{}: {}:{} sequence {} ({}) not applied: {}",
                quarantine::TABLE,
                entry.aggregate_type,
                entry.aggregate_id,
                entry.sequence,
                entry.event_type,
                entry.reason
            )
        }))
        .collect())
}

/// MySQL's named lock on a shadow or scratch database, held while a rebuild or `verify`
/// uses it: the replay into it (`fold::Bulk`) must be its only writer, and a second
/// rebuild of the same read models would drop and recreate it under the first. Released
/// when dropped (the lock's connection is closed, not returned to the pool).
struct OnlyWriter {
    _connection: sqlx::MySqlConnection,
}

impl OnlyWriter {
    async fn of(admin: &MySqlPool, database: &str) -> anyhow::Result<Self> {
        let mut connection = admin.acquire().await?.detach();
        let taken: Option<i64> = sqlx::query_scalar("SELECT GET_LOCK(?, 0)")
            .bind(database)
            .fetch_one(&mut connection)
            .await?;
        anyhow::ensure!(
            taken == Some(1),
            "another rebuild or verify is using database {database}; run this once it has ended"
        );
        Ok(Self {
            _connection: connection,
        })
    }
}

/// Creates database `name` next to the live one, with the read-model schema.
async fn fresh_database(
    admin: &MySqlPool,
    read_url: &str,
    name: &str,
) -> anyhow::Result<MySqlPool> {
    sqlx::query(&format!(
        "CREATE DATABASE {} CHARACTER SET utf8mb4",
        quoted(name)?
    ))
    .execute(admin)
    .await
    .with_context(|| format!("creating database {name}"))?;
    let pool = MySqlPoolOptions::new()
        .max_connections(2)
        .connect(&with_database(read_url, name))
        .await?;
    projections::MIGRATOR.run(&pool).await?;
    Ok(pool)
}

async fn drop_database(admin: &MySqlPool, name: &str) -> anyhow::Result<()> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS {}", quoted(name)?))
        .execute(admin)
        .await
        .with_context(|| format!("dropping database {name}"))?;
    Ok(())
}

/// A database name as an SQL identifier. Names come from configuration; anything beyond
/// letters, digits and underscores is refused rather than escaped.
fn quoted(name: &str) -> anyhow::Result<String> {
    anyhow::ensure!(
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
        "database name `{name}` must be letters, digits and underscores"
    );
    Ok(format!("`{name}`"))
}
