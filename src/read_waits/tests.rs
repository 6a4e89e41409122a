//! The shared poll against a fake read model that counts what it is asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aggregates::AggregateKind;
use async_trait::async_trait;
use projections::ReadError;
use tokio::time::timeout;

use super::*;

/// Versions by id, and every read asked of it: (kind, number of ids).
#[derive(Clone, Default)]
struct Fake {
    versions: Arc<Mutex<HashMap<String, i64>>>,
    reads: Arc<Mutex<Vec<(AggregateKind, usize)>>>,
    failing: Arc<AtomicBool>,
}

impl Fake {
    fn set(&self, id: &str, version: i64) {
        self.versions
            .lock()
            .unwrap()
            .insert(id.to_string(), version);
    }

    fn reads(&self) -> Vec<(AggregateKind, usize)> {
        self.reads.lock().unwrap().clone()
    }
}

#[async_trait]
impl AppliedVersions for Fake {
    async fn applied(
        &self,
        kind: AggregateKind,
        ids: &[String],
    ) -> Result<HashMap<String, i64>, ReadError> {
        self.reads.lock().unwrap().push((kind, ids.len()));
        if self.failing.load(Ordering::Relaxed) {
            return Err(ReadError(sqlx::Error::PoolTimedOut));
        }
        let versions = self.versions.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| Some((id.clone(), *versions.get(id)?)))
            .collect())
    }
}

fn position(kind: AggregateKind, id: &str, version: i64) -> Position {
    Position {
        kind,
        id: id.to_string(),
        version,
    }
}

/// Waits for `condition`; a test that never sees it fails here instead of hanging.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let seen = timeout(Duration::from_secs(30), async {
        while !condition() {
            tokio::time::sleep(POLL_EVERY).await;
        }
    })
    .await;
    assert!(seen.is_ok(), "never saw: {what}");
}

#[tokio::test]
async fn many_waiters_are_served_by_one_read_per_kind_and_poll() {
    let fake = Fake::default();
    let waits = ReadWaits::new(fake.clone(), 1024);
    let posts: Vec<String> = (0..10).map(|i| format!("post-{i}")).collect();
    let comments: Vec<String> = (0..5).map(|i| format!("comment-{i}")).collect();
    let mut tasks = Vec::new();
    for i in 0..200 {
        let mut positions = vec![position(AggregateKind::Post, &posts[i % 10], 2)];
        if i % 2 == 0 {
            positions.push(position(AggregateKind::Comment, &comments[i % 5], 1));
        }
        let mut waiter = waits.enter(positions).unwrap();
        tasks.push(tokio::spawn(async move { waiter.reached().await }));
    }
    // Every waiter is pending, and one poll asked for all their aggregates at once.
    until("a read of all 10 posts", || {
        fake.reads().contains(&(AggregateKind::Post, 10))
    })
    .await;
    assert_eq!(waits.stats().waiting, 200);

    for post in &posts {
        fake.set(post, 2);
    }
    for comment in &comments {
        fake.set(comment, 1);
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let stats = waits.stats();
    assert_eq!(stats.waiting, 0);
    assert_eq!(stats.largest_read, 10, "each aggregate is asked for once");
    assert_eq!(stats.reads, fake.reads().len() as u64);
    assert!(
        stats.reads <= 2 * stats.polls,
        "at most one read per kind and poll: {stats:?}"
    );
}

#[tokio::test]
async fn the_first_look_tells_positions_shown_from_those_behind() {
    let fake = Fake::default();
    fake.set("a", 3);
    let waits = ReadWaits::new(fake.clone(), 8);
    let mut shown = waits
        .enter(vec![position(AggregateKind::Post, "a", 2)])
        .unwrap();
    assert_eq!(shown.first_look().await.unwrap(), FirstLook::Reached);
    // A version 0 is shown even before the aggregate has a row.
    let mut nothing = waits
        .enter(vec![position(AggregateKind::Comment, "b", 0)])
        .unwrap();
    assert_eq!(nothing.first_look().await.unwrap(), FirstLook::Reached);

    let mut behind = waits
        .enter(vec![
            position(AggregateKind::Post, "a", 3),
            position(AggregateKind::Post, "a", 4),
        ])
        .unwrap();
    assert_eq!(behind.first_look().await.unwrap(), FirstLook::Behind);
    fake.set("a", 4);
    behind.reached().await.unwrap();
}

#[tokio::test]
async fn past_the_bound_a_waiter_is_refused_until_one_leaves() {
    let waits = ReadWaits::new(Fake::default(), 2);
    let never = || vec![position(AggregateKind::Post, "never", 1)];
    let first = waits.enter(never()).unwrap();
    let _second = waits.enter(never()).unwrap();
    assert!(matches!(waits.enter(never()), Err(Full)));
    drop(first);
    assert_eq!(waits.stats().waiting, 1);
    let _third = waits.enter(never()).unwrap();
}

#[tokio::test]
async fn a_failed_read_answers_every_waiter_it_was_for() {
    let fake = Fake::default();
    fake.failing.store(true, Ordering::Relaxed);
    let waits = ReadWaits::new(fake.clone(), 8);
    let mut first = waits
        .enter(vec![position(AggregateKind::Post, "a", 1)])
        .unwrap();
    let mut second = waits
        .enter(vec![position(AggregateKind::Account, "b", 1)])
        .unwrap();
    assert!(first.first_look().await.is_err());
    assert!(second.reached().await.is_err());
    assert_eq!(waits.stats().waiting, 0);
}

#[tokio::test]
async fn the_poll_runs_only_while_someone_waits() {
    let fake = Fake::default();
    let waits = ReadWaits::new(fake.clone(), 8);
    let waiter = waits
        .enter(vec![position(AggregateKind::Post, "a", 1)])
        .unwrap();
    until("a poll", || waits.stats().polls > 0).await;
    drop(waiter);
    until("the poll stopping", || !waits.shared.lock().polling).await;
    let polls = waits.stats().polls;
    tokio::time::sleep(POLL_EVERY * 5).await;
    assert_eq!(waits.stats().polls, polls, "nobody waits: nothing is read");

    // The next waiter starts it again.
    fake.set("a", 1);
    let mut waiter = waits
        .enter(vec![position(AggregateKind::Post, "a", 1)])
        .unwrap();
    waiter.reached().await.unwrap();
}
