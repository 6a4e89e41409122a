//! The one task that reads the versions of every pending position and wakes the waiters.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use aggregates::AggregateKind;
use async_trait::async_trait;
use projections::ReadError;
use sqlx::MySqlPool;

use super::{Progress, Shared, POLL_EVERY};

/// Where the versions the read models have applied are read: MySQL, or a fake in tests.
#[async_trait]
pub trait AppliedVersions: Send + Sync + 'static {
    /// The version of each of `ids` (aggregates of `kind`); an id the read models have
    /// no row for may be left out (version 0).
    async fn applied(
        &self,
        kind: AggregateKind,
        ids: &[String],
    ) -> Result<HashMap<String, i64>, ReadError>;
}

#[async_trait]
impl AppliedVersions for MySqlPool {
    async fn applied(
        &self,
        kind: AggregateKind,
        ids: &[String],
    ) -> Result<HashMap<String, i64>, ReadError> {
        projections::queries::applied_versions(self, kind, ids).await
    }
}

/// Versions read in one poll, by kind and id.
type Seen = HashMap<AggregateKind, HashMap<String, i64>>;

/// What one poll looks for: the waiters pending when it started, and their aggregates by
/// kind, each once.
struct Round {
    waiters: Vec<u64>,
    ids: BTreeMap<AggregateKind, Vec<String>>,
}

/// Polls while anyone waits, then ends; the next waiter starts it again.
pub(super) async fn run(shared: Arc<Shared>) {
    let mut running = Running {
        shared: &shared,
        ended_idle: false,
    };
    loop {
        let Some(round) = next_round(&shared) else {
            running.ended_idle = true;
            return;
        };
        shared.polls.fetch_add(1, Ordering::Relaxed);
        crate::metrics::record_read_wait_poll();
        let seen = read(&shared, round.ids).await;
        settle(&shared, round.waiters, seen);
        tokio::time::sleep(POLL_EVERY).await;
    }
}

/// Marks the poll as stopped however its task ends: idle (then [`next_round`] already
/// did, under the same lock that saw no waiter), or dropped with its runtime or by a
/// panic, so that the next waiter starts another instead of waiting for this one.
struct Running<'a> {
    shared: &'a Shared,
    ended_idle: bool,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if !self.ended_idle {
            self.shared.lock().polling = false;
        }
    }
}

/// What the next poll looks for; `None`, with the poll marked stopped, when nobody waits.
fn next_round(shared: &Shared) -> Option<Round> {
    let mut pending = shared.lock();
    if pending.waiters.is_empty() {
        pending.polling = false;
        return None;
    }
    let mut ids: BTreeMap<AggregateKind, BTreeSet<&str>> = BTreeMap::new();
    for entry in pending.waiters.values() {
        for position in &entry.positions {
            ids.entry(position.kind)
                .or_default()
                .insert(position.id.as_str());
        }
    }
    let ids = ids
        .into_iter()
        .map(|(kind, ids)| (kind, ids.into_iter().map(str::to_string).collect()))
        .collect();
    Some(Round {
        waiters: pending.waiters.keys().copied().collect(),
        ids,
    })
}

/// One read per kind, one after the other: the poll never holds more than one of the
/// read pool's connections.
async fn read(
    shared: &Shared,
    ids: BTreeMap<AggregateKind, Vec<String>>,
) -> Result<Seen, ReadError> {
    let mut seen = Seen::new();
    for (kind, ids) in ids {
        shared.reads.fetch_add(1, Ordering::Relaxed);
        shared.largest_read.fetch_max(ids.len(), Ordering::Relaxed);
        seen.insert(kind, shared.versions.applied(kind, &ids).await?);
    }
    Ok(seen)
}

/// Tells each waiter `looked` for what the read showed. Waiters that entered since are
/// left for the next poll; those that left meanwhile are skipped.
fn settle(shared: &Shared, looked: Vec<u64>, seen: Result<Seen, ReadError>) {
    let mut pending = shared.lock();
    let seen = match seen {
        Ok(seen) => seen,
        Err(err) => {
            // As when each request read for itself: every one of them answers the error.
            let err = Arc::new(err);
            for id in looked {
                if let Some(entry) = pending.waiters.remove(&id) {
                    entry.progress.send_replace(Progress::Failed(err.clone()));
                }
            }
            return;
        }
    };
    let applied = |kind: AggregateKind, id: &str| {
        seen.get(&kind)
            .and_then(|versions| versions.get(id))
            .copied()
            .unwrap_or(0)
    };
    for id in looked {
        let Some(entry) = pending.waiters.get_mut(&id) else {
            continue;
        };
        // A version once applied stays applied: the next polls ask only for the rest.
        entry
            .positions
            .retain(|position| applied(position.kind, &position.id) < position.version);
        if entry.positions.is_empty() {
            entry.progress.send_replace(Progress::Reached);
            pending.waiters.remove(&id);
        } else {
            entry.progress.send_if_modified(|progress| {
                let first = matches!(progress, Progress::Unseen);
                if first {
                    *progress = Progress::Behind;
                }
                first
            });
        }
    }
}
