//! A value read from the stores and the broker, kept for a short time and refreshed by
//! one caller for all: what `/metrics` and `/health/ready` read (see
//! [`crate::app::App::readiness`]).
//!
//! Without it, every scrape and every probe ran its own queries, so a flood of them became
//! a flood of queries on the databases and of requests to the broker. With it, the stores
//! see at most one round per `ttl`, whatever the number of callers: a caller within `ttl`
//! of the last refresh gets its value; the first one past it starts a refresh, and those
//! arriving while it runs wait for that same one.
//!
//! The refresh runs as a task of its own. A caller that goes away (a client hanging up)
//! does not cancel it, so the others still get its value and a client cannot make it
//! start over and over.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// Cheap to clone; clones share the value.
pub struct Cached<T> {
    inner: Arc<Inner<T>>,
}

impl<T> Clone for Cached<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<T> {
    ttl: Duration,
    slot: Mutex<Slot<T>>,
    refreshes: AtomicU64,
}

struct Slot<T> {
    /// The last value, and when the refresh that read it finished.
    latest: Option<(Instant, T)>,
    /// The refresh under way, if any: it sends its value here.
    under_way: Option<watch::Receiver<Option<T>>>,
}

impl<T: Clone + Send + Sync + 'static> Cached<T> {
    /// Values are kept for `ttl` after the refresh that read them finished. With a `ttl`
    /// of zero every call refreshes, but callers at the same time still share one refresh.
    pub fn new(ttl: Duration) -> Self {
        Self {
            inner: Arc::new(Inner {
                ttl,
                slot: Mutex::new(Slot {
                    latest: None,
                    under_way: None,
                }),
                refreshes: AtomicU64::new(0),
            }),
        }
    }

    /// The value, no older than `ttl`: the kept one, or the one `refresh` reads (started
    /// now, or already under way for another caller).
    ///
    /// # Panics
    ///
    /// When the refresh panicked; the next call starts another.
    pub async fn get<F, Fut>(&self, refresh: F) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        let mut under_way = {
            let mut slot = self.inner.lock();
            if let Some((read_at, value)) = &slot.latest {
                if read_at.elapsed() < self.inner.ttl {
                    return value.clone();
                }
            }
            match &slot.under_way {
                Some(under_way) => under_way.clone(),
                None => {
                    let (sender, receiver) = watch::channel(None);
                    slot.under_way = Some(receiver.clone());
                    self.inner.refreshes.fetch_add(1, Ordering::Relaxed);
                    tokio::spawn(Self::refresh(self.inner.clone(), refresh(), sender));
                    receiver
                }
            }
        };
        let value = match under_way.wait_for(Option::is_some).await {
            Ok(value) => value.clone().expect("waited for a value"),
            Err(_) => panic!("refreshing a cached value panicked"),
        };
        value
    }

    /// How many refreshes were started so far.
    pub fn refreshes(&self) -> u64 {
        self.inner.refreshes.load(Ordering::Relaxed)
    }

    async fn refresh(
        inner: Arc<Inner<T>>,
        reading: impl Future<Output = T>,
        sender: watch::Sender<Option<T>>,
    ) {
        let refreshing = Refreshing { inner, sender };
        let value = reading.await;
        refreshing.inner.lock().latest = Some((Instant::now(), value.clone()));
        refreshing.sender.send_replace(Some(value));
    }
}

impl<T> Inner<T> {
    /// Nothing panics while holding the lock, but a poisoned one would still hold a
    /// consistent slot.
    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A refresh under way. Dropped when it ends, or while unwinding from a panic of the
/// reading: either way the next caller past `ttl` starts another. The slot is cleared
/// before the sender goes, so no caller can join a refresh that will never answer.
struct Refreshing<T> {
    inner: Arc<Inner<T>>,
    sender: watch::Sender<Option<T>>,
}

impl<T> Drop for Refreshing<T> {
    fn drop(&mut self) {
        self.inner.lock().under_way = None;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use tokio::sync::Notify;

    use super::*;

    /// A refresh that counts itself and waits for `go` before answering its number.
    fn gated(
        count: &Arc<AtomicUsize>,
        go: &Arc<Notify>,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = usize> + Send>> {
        let (count, go) = (count.clone(), go.clone());
        move || {
            Box::pin(async move {
                let n = count.fetch_add(1, Ordering::SeqCst) + 1;
                go.notified().await;
                n
            })
        }
    }

    fn counter(count: &Arc<AtomicUsize>) -> impl Future<Output = usize> + Send + 'static {
        let count = count.clone();
        async move { count.fetch_add(1, Ordering::SeqCst) + 1 }
    }

    #[tokio::test]
    async fn callers_during_a_refresh_share_it() {
        let cached = Cached::new(Duration::from_secs(3600));
        let (count, go) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let callers: Vec<_> = (0..20)
            .map(|_| {
                let (cached, refresh) = (cached.clone(), gated(&count, &go));
                tokio::spawn(async move { cached.get(refresh).await })
            })
            .collect();
        while count.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        go.notify_one();
        for caller in callers {
            assert_eq!(caller.await.unwrap(), 1);
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
        assert_eq!(cached.refreshes(), 1);
    }

    #[tokio::test]
    async fn a_value_is_kept_for_its_ttl_and_read_again_after() {
        let ttl = Duration::from_millis(50);
        let cached = Cached::new(ttl);
        let count = Arc::new(AtomicUsize::new(0));
        assert_eq!(cached.get(|| counter(&count)).await, 1);
        assert_eq!(cached.get(|| counter(&count)).await, 1);
        tokio::time::sleep(ttl).await;
        assert_eq!(cached.get(|| counter(&count)).await, 2);
        assert_eq!(cached.refreshes(), 2);
    }

    #[tokio::test]
    async fn without_a_ttl_every_call_reads_again() {
        let cached = Cached::new(Duration::ZERO);
        let count = Arc::new(AtomicUsize::new(0));
        assert_eq!(cached.get(|| counter(&count)).await, 1);
        assert_eq!(cached.get(|| counter(&count)).await, 2);
    }

    /// A client that hangs up does not cancel the refresh it started.
    #[tokio::test]
    async fn a_refresh_outlives_the_caller_that_started_it() {
        let cached = Cached::new(Duration::from_secs(3600));
        let (count, go) = (Arc::new(AtomicUsize::new(0)), Arc::new(Notify::new()));
        let first = tokio::spawn({
            let (cached, refresh) = (cached.clone(), gated(&count, &go));
            async move { cached.get(refresh).await }
        });
        while count.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        first.abort();
        let second = tokio::spawn({
            let (cached, refresh) = (cached.clone(), gated(&count, &go));
            async move { cached.get(refresh).await }
        });
        go.notify_one();
        assert_eq!(second.await.unwrap(), 1);
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn after_a_refresh_panics_the_next_call_reads_again() {
        let cached: Cached<usize> = Cached::new(Duration::from_secs(3600));
        let failed = tokio::spawn({
            let cached = cached.clone();
            async move { cached.get(|| async { panic!("the store said no") }).await }
        });
        assert!(failed.await.is_err());
        let count = Arc::new(AtomicUsize::new(0));
        assert_eq!(cached.get(|| counter(&count)).await, 1);
        assert_eq!(cached.refreshes(), 2);
    }
}
