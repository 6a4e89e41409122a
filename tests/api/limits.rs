//! The shared rate limiter (`board::limits::RateLimiter`) on a real PostgreSQL: a burst
//! of `capacity`, then a wait until one token is back; keys apart; a token given back.

use std::time::Duration;

use board::limits::RateLimiter;

use crate::common::TestApp;

#[tokio::test]
async fn a_key_has_its_burst_then_is_told_when_to_retry() {
    let app = TestApp::spawn().await;
    let limiter = RateLimiter::per_minute(app.pool.clone(), "test", 3);
    for _ in 0..3 {
        assert_eq!(limiter.take("a").await.unwrap(), Ok(()));
    }
    let wait = limiter.take("a").await.unwrap().unwrap_err();
    // One token comes back every 20 s.
    assert!(
        wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );
    assert_eq!(
        limiter.take("b").await.unwrap(),
        Ok(()),
        "keys are limited apart"
    );
    let other = RateLimiter::per_minute(app.pool.clone(), "other", 3);
    assert_eq!(other.take("a").await.unwrap(), Ok(()), "limits are apart");
}

#[tokio::test]
async fn a_token_given_back_can_be_taken_again() {
    let app = TestApp::spawn().await;
    let limiter = RateLimiter::per_hour(app.pool.clone(), "test", 1);
    assert_eq!(limiter.take("a").await.unwrap(), Ok(()));
    let wait = limiter.take("a").await.unwrap().unwrap_err();
    assert!(wait > Duration::from_secs(3_000), "{wait:?}");
    limiter.give_back("a").await.unwrap();
    assert_eq!(limiter.take("a").await.unwrap(), Ok(()));
}
