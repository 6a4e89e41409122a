//! Per-client limits.
//!
//! [`RateLimiter`]: `capacity` requests per period per key (a client address, an account's
//! email), with bursts of as many. Kept in PostgreSQL, so that every API replica counts
//! against the same limit: behind N replicas a client gets the limit once, not N times.
//! It is given a pool of its own (`store::connect_limits_lazy`), never the commands'.
//!
//! [`ConcurrencyLimiter`]: things in flight per key, in this process (what is in flight is
//! this process's to bound; a replica's work queue is its own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::PgPool;

/// A token bucket per key, stored as GCRA's "theoretical arrival time" (one timestamp a
/// key; see the `rate_limits` migration): each request moves it `period / capacity` on
/// from now or from where it was, and is refused when that would put it more than a whole
/// period ahead of now. One statement decides and records, so replicas never race.
///
/// A key refused is remembered in this process until its token is due: a client that
/// keeps knocking meanwhile is refused without a database round trip, so a flood of
/// refused requests costs the event store nothing.
pub struct RateLimiter {
    pool: PgPool,
    /// The limit's name in `rate_limits`.
    name: &'static str,
    capacity: u32,
    period: Duration,
    /// Keys refused, and until when.
    refused: Mutex<HashMap<String, Instant>>,
}

/// The most refused keys remembered. Past it the expired ones are swept out, and while
/// none has expired a new one is not remembered (the database still refuses it, at the
/// cost of a round trip): a flood of distinct keys cannot grow the process's memory.
const REMEMBERED_AT_MOST: usize = 10_000;

impl RateLimiter {
    pub fn per_minute(pool: PgPool, name: &'static str, capacity: u32) -> Self {
        Self::per_period(pool, name, capacity, Duration::from_secs(60))
    }

    pub fn per_hour(pool: PgPool, name: &'static str, capacity: u32) -> Self {
        Self::per_period(pool, name, capacity, Duration::from_secs(3_600))
    }

    fn per_period(pool: PgPool, name: &'static str, capacity: u32, period: Duration) -> Self {
        Self {
            pool,
            name,
            capacity: capacity.max(1),
            period,
            refused: Mutex::new(HashMap::new()),
        }
    }

    /// How far one request moves a key's time on.
    fn interval(&self) -> Duration {
        self.period / self.capacity
    }

    /// Takes a token for `key`: `Ok(Err(wait))` when none is left, with how long until
    /// one is.
    pub async fn take(&self, key: &str) -> Result<Result<(), Duration>, sqlx::Error> {
        if let Some(wait) = self.still_refused(key) {
            return Ok(Err(wait));
        }
        let taken: Option<i32> = sqlx::query_scalar(
            "INSERT INTO rate_limits AS r (limiter, key, tat)
             VALUES ($1, $2, now() + make_interval(secs => $3))
             ON CONFLICT (limiter, key) DO UPDATE
                SET tat = greatest(r.tat, now()) + make_interval(secs => $3)
              WHERE greatest(r.tat, now()) + make_interval(secs => $3)
                    <= now() + make_interval(secs => $4)
             RETURNING 1",
        )
        .bind(self.name)
        .bind(key)
        .bind(self.interval().as_secs_f64())
        .bind(self.period.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        if taken.is_some() {
            return Ok(Ok(()));
        }
        // Refused: a token is back once the key's time is less than a period ahead.
        let wait: f64 = sqlx::query_scalar(
            "SELECT greatest(extract(epoch FROM tat + make_interval(secs => $3)
                                     - make_interval(secs => $4) - now())::float8, 0)
               FROM rate_limits WHERE limiter = $1 AND key = $2",
        )
        .bind(self.name)
        .bind(key)
        .bind(self.interval().as_secs_f64())
        .bind(self.period.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?
        .unwrap_or(0.0);
        let wait = Duration::from_secs_f64(wait);
        self.remember_refused(key, wait);
        Ok(Err(wait))
    }

    /// How long `key` is still refused for, if this process refused it lately.
    fn still_refused(&self, key: &str) -> Option<Duration> {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let until = *refused.get(key)?;
        until.checked_duration_since(Instant::now())
    }

    fn remember_refused(&self, key: &str, wait: Duration) {
        let now = Instant::now();
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.len() >= REMEMBERED_AT_MOST {
            refused.retain(|_, until| *until > now);
            if refused.len() >= REMEMBERED_AT_MOST {
                return;
            }
        }
        refused.insert(key.to_string(), now + wait);
    }

    /// Forgets `key` altogether (its client is gone: a closed account's address).
    pub async fn forget(&self, key: &str) -> Result<(), sqlx::Error> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        sqlx::query("DELETE FROM rate_limits WHERE limiter = $1 AND key = $2")
            .bind(self.name)
            .bind(key)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Returns a token taken for an attempt that turned out not to count (a log-in that
    /// succeeded, where only failures are limited).
    pub async fn give_back(&self, key: &str) -> Result<(), sqlx::Error> {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        sqlx::query(
            "UPDATE rate_limits SET tat = tat - make_interval(secs => $3)
              WHERE limiter = $1 AND key = $2",
        )
        .bind(self.name)
        .bind(key)
        .bind(self.interval().as_secs_f64())
        .execute(&self.pool)
        .await?;
        Ok(())
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
