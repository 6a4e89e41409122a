//! Per-client limits: a token bucket per client key (an address, an account), `capacity`
//! requests per period with bursts of as many.
//!
//! The buckets live in this process: behind several API replicas each keeps its own, so
//! the effective limit is per replica (a proxy in front can enforce a global one).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Buckets are forgotten once full again; this many make a sweep worth it.
const SWEEP_AT: usize = 10_000;

pub struct RateLimiter {
    capacity: u32,
    period: Duration,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self::per_period(per_minute, Duration::from_secs(60))
    }

    pub fn per_hour(capacity: u32) -> Self {
        Self::per_period(capacity, Duration::from_secs(3_600))
    }

    fn per_period(capacity: u32, period: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            period,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes a token for `client`, or says how long until one is free.
    pub fn take(&self, client: &str) -> Result<(), Duration> {
        let capacity = f64::from(self.capacity);
        let per_second = capacity / self.period.as_secs_f64();
        let now = Instant::now();
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= SWEEP_AT {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = buckets.entry(client.to_string()).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }

    /// Returns a token taken for an attempt that turned out not to count (a log-in that
    /// succeeded, where only failures are limited).
    pub fn give_back(&self, client: &str) {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(bucket) = buckets.get_mut(client) {
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(self.capacity));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_says_when_to_retry() {
        let limiter = RateLimiter::new(3);
        for _ in 0..3 {
            assert_eq!(limiter.take("a"), Ok(()));
        }
        let wait = limiter.take("a").unwrap_err();
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert_eq!(limiter.take("b"), Ok(()), "clients are limited apart");
    }

    #[test]
    fn a_token_given_back_can_be_taken_again() {
        let limiter = RateLimiter::per_hour(1);
        assert_eq!(limiter.take("a"), Ok(()));
        let wait = limiter.take("a").unwrap_err();
        assert!(wait > Duration::from_secs(3_000), "{wait:?}");
        limiter.give_back("a");
        assert_eq!(limiter.take("a"), Ok(()));
    }
}

/// At most `per_key` things in flight per key (an account): a client that sends many
/// commands at once gets the rest refused at once, instead of their queueing up in front
/// of everyone else's on the shared database pools.
pub struct ConcurrencyLimiter {
    per_key: usize,
    in_flight: Mutex<HashMap<String, usize>>,
}

/// One of a key's places; given back when dropped.
pub struct Slot {
    limiter: Arc<ConcurrencyLimiter>,
    key: String,
}

impl ConcurrencyLimiter {
    pub fn new(per_key: usize) -> Self {
        Self {
            per_key: per_key.max(1),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// A place for `key`, or `None` when it has `per_key` in flight already.
    pub fn try_acquire(self: &Arc<Self>, key: &str) -> Option<Slot> {
        let mut in_flight = self.lock();
        let count = in_flight.entry(key.to_string()).or_insert(0);
        if *count >= self.per_key {
            return None;
        }
        *count += 1;
        Some(Slot {
            limiter: Arc::clone(self),
            key: key.to_string(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.in_flight
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut in_flight = self.limiter.lock();
        if let Some(count) = in_flight.get_mut(&self.key) {
            *count -= 1;
            // Keys with nothing in flight are forgotten, so the map stays as small as
            // the number of clients busy right now.
            if *count == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod concurrency_tests {
    use super::*;

    #[test]
    fn a_key_gets_its_places_back_when_they_are_dropped() {
        let limiter = Arc::new(ConcurrencyLimiter::new(2));
        let first = limiter.try_acquire("a").unwrap();
        let second = limiter.try_acquire("a").unwrap();
        assert!(limiter.try_acquire("a").is_none());
        assert!(limiter.try_acquire("b").is_some(), "keys are limited apart");
        drop(first);
        assert!(limiter.try_acquire("a").is_some());
        drop(second);
        assert!(limiter.lock().is_empty(), "idle keys are forgotten");
    }
}
