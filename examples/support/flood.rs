//! One member flooding Board with keyed commands, and what a log-in costs meanwhile: the
//! figure behind "one client must never take Board down for the others".

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use serde_json::json;

use super::{call, Stack, MEMBER_EMAIL, MEMBER_PASSWORD};

/// What the flood was answered.
#[derive(Debug, Default)]
pub struct Answers {
    pub sent: usize,
    pub unavailable: usize,
    pub refused_for_the_limit: usize,
}

/// `n` log-ins, one after another; each one's latency.
pub async fn log_ins(stack: &Stack, n: usize) -> Vec<Duration> {
    let mut latencies = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let (status, _) = call(
            &stack.app,
            "POST",
            "/auth",
            None,
            json!({"email": MEMBER_EMAIL, "password": MEMBER_PASSWORD}),
        )
        .await;
        assert_eq!(status, 200, "log-in failed");
        latencies.push(started.elapsed());
    }
    latencies
}

/// Runs `log_in` while the stack's member sends keyed posts to unknown categories,
/// `concurrency` at a time (the flood); returns its result and the flood's answers.
pub async fn while_flooding<T>(
    stack: &Arc<Stack>,
    concurrency: usize,
    log_in: impl std::future::Future<Output = T>,
) -> (T, Answers) {
    let flooding = Arc::new(AtomicBool::new(true));
    let (sent, unavailable, limited) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let clients = (0..concurrency).map(|client| {
        let (stack, flooding) = (stack.clone(), flooding.clone());
        let (sent, unavailable, limited) = (sent.clone(), unavailable.clone(), limited.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while flooding.load(Ordering::SeqCst) {
                i += 1;
                let category = uuid::Uuid::now_v7();
                let request = axum::http::Request::builder()
                    .method("POST")
                    .uri(format!("/board/categories/{category}/posts"))
                    .header("content-type", "application/json")
                    .header("authorization", format!("Bearer {}", stack.token))
                    .header("idempotency-key", format!("flood-{client}-{i}"))
                    .body(axum::body::Body::from(
                        json!({"title": "t", "content": "c"}).to_string(),
                    ))
                    .unwrap();
                let status = tower::ServiceExt::oneshot(stack.app.clone(), request)
                    .await
                    .unwrap()
                    .status()
                    .as_u16();
                sent.fetch_add(1, Ordering::Relaxed);
                match status {
                    503 => unavailable.fetch_add(1, Ordering::Relaxed),
                    429 => limited.fetch_add(1, Ordering::Relaxed),
                    _ => 0,
                };
                // A refusal can complete without ever waiting: without this, 64 clients
                // calling the router in-process would hold the runtime's threads and
                // starve everything else, which no client over a network could do.
                tokio::task::yield_now().await;
            }
        })
    });
    let clients: Vec<_> = clients.collect();
    // The flood first fills whatever it can fill; then the log-ins.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let result = log_in.await;
    flooding.store(false, Ordering::SeqCst);
    join_all(clients).await;
    let answers = Answers {
        sent: sent.load(Ordering::Relaxed),
        unavailable: unavailable.load(Ordering::Relaxed),
        refused_for_the_limit: limited.load(Ordering::Relaxed),
    };
    (result, answers)
}
