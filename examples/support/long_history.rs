//! A command on a post with a long history, beside the same command on a fresh post
//! (issue 12): every command loads its aggregate, so what a long history costs shows here.

use std::time::Instant;

use serde_json::json;

use super::{call, percentiles, Stack};

/// The earlier events of the long-lived post.
pub const EARLIER_EVENTS: i64 = 5_000;
/// Edits timed on each post, one after another.
const EDITS: usize = 200;

/// p50 and p99 (ms) of an edit of a post with [`EARLIER_EVENTS`] events before it, and
/// the p50 of the same edit of a fresh post.
pub async fn edit_latencies(stack: &Stack) -> anyhow::Result<(f64, f64, f64)> {
    let long = new_post(stack, "long").await?;
    // Its history, written straight into the store (each of 5,000 edits through the API
    // would first load an ever longer history).
    testkit::history::append_title_edits(&stack.state.pool, &long, EARLIER_EVENTS).await?;
    let fresh = new_post(stack, "fresh").await?;
    let (fresh_p50, _, _) = percentiles(edits(stack, &fresh).await);
    let (long_p50, long_p99, _) = percentiles(edits(stack, &long).await);
    Ok((long_p50, long_p99, fresh_p50))
}

async fn new_post(stack: &Stack, title: &str) -> anyhow::Result<String> {
    let (status, body) = call(
        &stack.app,
        "POST",
        &format!("/board/categories/{}/posts", stack.category),
        Some(&stack.token),
        json!({"title": title, "content": "benchmark content"}),
    )
    .await;
    anyhow::ensure!(status == 201, "creating the post answered {status}: {body}");
    Ok(body["postId"].as_str().unwrap_or_default().to_string())
}

/// The latency of each of [`EDITS`] edits of `post`, one after another.
async fn edits(stack: &Stack, post: &str) -> Vec<std::time::Duration> {
    let mut latencies = Vec::with_capacity(EDITS);
    for i in 0..EDITS {
        let started = Instant::now();
        let (status, body) = call(
            &stack.app,
            "PATCH",
            &format!("/board/posts/{post}"),
            Some(&stack.token),
            json!({"title": format!("Timed edit {i}")}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        latencies.push(started.elapsed());
    }
    latencies
}
