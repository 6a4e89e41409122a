//! Waiting for the read models to show positions (read-your-writes): one shared poll per
//! process.
//!
//! A query that carries `Event-Position` waits until the read models have applied each
//! named aggregate up to a version. Polling MySQL once per waiting request would make the
//! read pool's load grow with the number of waiters (and every waiter would hold a
//! connection at each look); here a waiting request only enters its positions in
//! [`ReadWaits`] and sleeps. One task reads the versions of every pending position (one
//! statement per kind of aggregate, `WHERE id IN (...)`) every [`POLL_EVERY`], and wakes
//! the waiters whose positions are all reached. It runs only while someone waits.
//!
//! The number of waiters is bounded ([`ReadWaits::enter`] refuses past it), so a flood of
//! waiting queries costs a bounded amount of memory and never a bigger statement.

mod poll;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aggregates::AggregateKind;
use projections::ReadError;
use tokio::sync::watch;

pub use poll::AppliedVersions;

/// How often the read models are read while someone waits.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// A version of one aggregate that the read models must have applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub kind: AggregateKind,
    /// The aggregate's id, as the views key it (a lowercase UUID).
    pub id: String,
    pub version: i64,
}

/// As the `Event-Position` header writes it: `post:<id>:3`.
impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.kind, self.id, self.version)
    }
}

/// Every waiting request of one process; cheap to clone (clones share the waiters).
#[derive(Clone)]
pub struct ReadWaits {
    shared: Arc<Shared>,
}

/// Too many requests wait already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// What the poll has done so far, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests waiting now.
    pub waiting: usize,
    /// Rounds of reading the read models.
    pub polls: u64,
    /// Reads of one kind's versions (at most one per kind in each poll).
    pub reads: u64,
    /// The most aggregates one read asked for.
    pub largest_read: usize,
}

struct Shared {
    versions: Box<dyn AppliedVersions>,
    max_waiters: usize,
    pending: Mutex<Pending>,
    polls: AtomicU64,
    reads: AtomicU64,
    largest_read: AtomicUsize,
}

#[derive(Default)]
struct Pending {
    waiters: HashMap<u64, Entry>,
    next_id: u64,
    /// Whether a poll task runs; the first waiter to find none starts one.
    polling: bool,
}

/// One waiting request: its positions not yet reached, and where it hears of progress.
struct Entry {
    positions: Vec<Position>,
    progress: watch::Sender<Progress>,
}

#[derive(Debug, Clone)]
enum Progress {
    /// The poll has not read these positions yet.
    Unseen,
    /// The read models did not show every position at the last look.
    Behind,
    Reached,
    /// The read models could not be read (the entry is gone: the request answers the error).
    Failed(Arc<ReadError>),
}

/// What the poll saw at its first look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLook {
    Reached,
    Behind,
}

impl ReadWaits {
    /// Waits on the versions `versions` reads, for at most `max_waiters` requests at once.
    pub fn new(versions: impl AppliedVersions, max_waiters: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                versions: Box::new(versions),
                max_waiters,
                pending: Mutex::default(),
                polls: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                largest_read: AtomicUsize::new(0),
            }),
        }
    }

    /// Enters a request that waits for `positions`, or refuses it when `max_waiters`
    /// requests wait already. It waits until the [`Waiter`] is dropped or answered.
    pub fn enter(&self, positions: Vec<Position>) -> Result<Waiter, Full> {
        let (sender, receiver) = watch::channel(Progress::Unseen);
        let mut pending = self.shared.lock();
        if pending.waiters.len() >= self.shared.max_waiters {
            return Err(Full);
        }
        let id = pending.next_id;
        pending.next_id += 1;
        pending.waiters.insert(
            id,
            Entry {
                positions,
                progress: sender,
            },
        );
        if !pending.polling {
            pending.polling = true;
            tokio::spawn(poll::run(self.shared.clone()));
        }
        Ok(Waiter {
            id,
            shared: self.shared.clone(),
            progress: receiver,
        })
    }

    pub fn stats(&self) -> Stats {
        Stats {
            waiting: self.shared.lock().waiters.len(),
            polls: self.shared.polls.load(Ordering::Relaxed),
            reads: self.shared.reads.load(Ordering::Relaxed),
            largest_read: self.shared.largest_read.load(Ordering::Relaxed),
        }
    }
}

impl Shared {
    /// The lock is never held across an await, and nothing under it can leave the
    /// waiters half-changed, so a panic elsewhere does not make them unusable.
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One request's wait; dropping it (answered, timed out, or the client went away) leaves.
pub struct Waiter {
    id: u64,
    shared: Arc<Shared>,
    progress: watch::Receiver<Progress>,
}

impl Waiter {
    /// What the poll saw the first time it read this request's positions.
    pub async fn first_look(&mut self) -> Result<FirstLook, Arc<ReadError>> {
        match self.settled(|p| !matches!(p, Progress::Unseen)).await {
            Progress::Reached => Ok(FirstLook::Reached),
            Progress::Failed(err) => Err(err),
            _ => Ok(FirstLook::Behind),
        }
    }

    /// Until the read models show every position.
    pub async fn reached(&mut self) -> Result<(), Arc<ReadError>> {
        match self
            .settled(|p| matches!(p, Progress::Reached | Progress::Failed(_)))
            .await
        {
            Progress::Failed(err) => Err(err),
            _ => Ok(()),
        }
    }

    async fn settled(&mut self, done: impl FnMut(&Progress) -> bool) -> Progress {
        let settled = self.progress.wait_for(done).await.map(|p| p.clone());
        match settled {
            Ok(progress) => progress,
            // The sender lives in this waiter's entry, which only this waiter's drop
            // removes unless the poll answered it first (then `done` held): never here.
            Err(_) => std::future::pending().await,
        }
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.shared.lock().waiters.remove(&self.id);
    }
}
