//! The fold for tables no one else writes: a rebuild's shadow database, `verify`'s scratch
//! one. Such a replay needs no locks, and the tables hold nothing it has not written
//! itself, so:
//! - it keeps the rows in memory from one batch to the next, and writes them back only
//!   when memory is full or the caller is done: a post that gains fifty comments over a
//!   replay is written once, not once per batch;
//! - it reads a row from the tables only if it wrote that row before and no longer has it
//!   in memory: a new row is not looked for;
//! - it writes back in the background, on a connection of its own, while the next batches
//!   are folded: the database's time and the fold's overlap instead of adding up. One
//!   write at a time, so they land in order; until one has landed, its rows are taken from
//!   memory, not read.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use sqlx::pool::PoolConnection;
use sqlx::{MySql, MySqlPool};
use tokio::task::JoinHandle;

use super::rows::{Aggregate, Rows, View};
use super::{decode, fold, load, plan, Access, Applied, BatchError};
use crate::Envelope;

/// Rows in memory before they are written back: bounds memory whatever the store's size
/// (twice this while a write is under way).
const MAX_ROWS: usize = 50_000;
const MAX_TEXT_BYTES: usize = 64 * 1024 * 1024;

/// Events applied in memory, in order, batch after batch, and written back to the tables
/// of `pool`. The rows in memory are the truth for these tables.
pub struct Bulk {
    pool: MySqlPool,
    max_rows: usize,
    /// For reading rows written earlier.
    reader: Option<PoolConnection<MySql>>,
    rows: Rows,
    /// The last write-back, if it may not have landed yet.
    writing: Option<Writing>,
    written: Written,
    /// Something failed part-way (a gap, a read, a write): memory and tables may disagree.
    broken: bool,
}

struct Writing {
    rows: Arc<Rows>,
    task: JoinHandle<Result<(), sqlx::Error>>,
}

/// What a [`Bulk`] has written to its tables, as hashes: a row or quarantine whose hash is
/// not here is not in the tables. (Two ids with one hash only cost a read that finds
/// nothing.) Eight bytes a row, where the rows themselves take hundreds.
#[derive(Default)]
pub struct Written {
    hashes: HashSet<u64>,
}

impl Written {
    pub fn may_hold_row(&self, view: View, id: &str) -> bool {
        self.hashes.contains(&hash(&(view, id)))
    }

    pub fn may_hold_quarantine(&self, aggregate: &Aggregate) -> bool {
        self.hashes.contains(&hash(&("quarantine", aggregate)))
    }

    fn record(&mut self, rows: &Rows) {
        let ids = rows
            .accounts
            .keys()
            .map(|id| (View::Accounts, id))
            .chain(rows.categories.keys().map(|id| (View::Categories, id)))
            .chain(rows.posts.keys().map(|id| (View::Posts, id)))
            .chain(rows.comments.keys().map(|id| (View::Comments, id)));
        self.hashes
            .extend(ids.map(|(view, id)| hash(&(view, id.as_str()))));
        for aggregate in rows.quarantine.aggregates_held() {
            self.hashes.insert(hash(&("quarantine", aggregate)));
        }
    }
}

fn hash(value: &impl Hash) -> u64 {
    let mut hasher = DefaultHasher::new();
    value.hash(&mut hasher);
    hasher.finish()
}

impl Bulk {
    /// A replay into the tables of `pool`, which are empty now and which nothing but this
    /// `Bulk` writes until it is dropped.
    pub fn on_empty_tables(pool: MySqlPool) -> Self {
        Self {
            pool,
            max_rows: MAX_ROWS,
            reader: None,
            rows: Rows::default(),
            writing: None,
            written: Written::default(),
            broken: false,
        }
    }

    /// Keeps at most `rows` rows in memory (50,000 unless set) before writing them back.
    pub fn with_max_rows(mut self, rows: usize) -> Self {
        self.max_rows = rows;
        self
    }

    /// Folds `events` into the rows in memory, and starts writing them back if memory is
    /// full. After an error, nothing more can be applied or written.
    pub async fn apply(&mut self, events: &[Envelope]) -> Result<Applied, BatchError> {
        self.usable()?;
        self.broken = true;
        if self.writing.as_ref().is_some_and(|w| w.task.is_finished()) {
            self.landed().await?;
        }
        let conn = match &mut self.reader {
            Some(conn) => conn,
            None => self.reader.insert(self.pool.acquire().await?),
        };
        let events = decode::batch(events);
        let aggregates = plan::aggregates(&events);
        let access = Access::Private {
            writing: self.writing.as_ref().map(|w| &*w.rows),
            written: &self.written,
        };
        load(conn, &mut self.rows, &events, &aggregates, access).await?;
        let applied = fold(&mut self.rows, events).map_err(BatchError::Gap)?;
        if self.is_full() {
            self.write_back().await?;
        }
        self.broken = false;
        Ok(applied)
    }

    /// Writes back everything applied so far and waits until it has landed: the tables
    /// then hold every event applied.
    pub async fn finish(&mut self) -> Result<(), BatchError> {
        self.usable()?;
        self.broken = true;
        self.write_back().await?;
        self.landed().await?;
        self.broken = false;
        Ok(())
    }

    fn usable(&self) -> Result<(), BatchError> {
        if self.broken {
            return Err(BatchError::Broken);
        }
        Ok(())
    }

    fn is_full(&self) -> bool {
        let (rows, bytes) = self.rows.size();
        rows >= self.max_rows || bytes >= MAX_TEXT_BYTES
    }

    /// Starts writing back the rows in memory (every row changed since it was read, new
    /// ones included, and the quarantine's additions) in a transaction of its own, once
    /// the write before it has landed.
    async fn write_back(&mut self) -> Result<(), BatchError> {
        self.landed().await?;
        let rows = Arc::new(std::mem::take(&mut self.rows));
        let (pool, to_write) = (self.pool.clone(), rows.clone());
        let task = tokio::spawn(async move {
            let mut tx = pool.begin().await?;
            to_write.write(&mut tx).await?;
            tx.commit().await
        });
        self.writing = Some(Writing { rows, task });
        Ok(())
    }

    /// Waits for the write under way, if any, and notes what it wrote.
    async fn landed(&mut self) -> Result<(), BatchError> {
        let Some(Writing { rows, task }) = self.writing.take() else {
            return Ok(());
        };
        task.await
            .map_err(|e| sqlx::Error::Io(std::io::Error::other(e)))??;
        self.written.record(&rows);
        Ok(())
    }
}

impl Drop for Bulk {
    fn drop(&mut self) {
        if let Some(writing) = &self.writing {
            writing.task.abort();
        }
    }
}
