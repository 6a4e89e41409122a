//! Live updates through faults: the store that feeds the streams goes away and comes back
//! under a subscriber, and a browser's `EventSource` follows its server through a restart.

use std::net::SocketAddr;
use std::time::Duration;

use crate::devtools::Browser;
use crate::http_client;
use crate::live::{app, comment, message_about, next, subscribe, ApiProcess};
use crate::pipeline::fresh_read_database;
use crate::proxy::Proxy;

/// The host and port of a database URL (`scheme://user:password@host:port/database`).
fn server_of(url: &str) -> SocketAddr {
    let after_credentials = url.rsplit_once('@').map_or(url, |(_, rest)| rest);
    let authority = after_credentials.split('/').next().unwrap();
    authority.parse().expect("a numeric host and port")
}

/// The readiness check of the process at `address` for `dependency`, as it answers now.
async fn readiness_of(address: SocketAddr, dependency: &str) -> String {
    let reply = http_client::send(address, "GET", "/health/ready", None, None)
        .await
        .unwrap();
    reply.json().unwrap()["checks"][dependency]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Waits until the process at `address` reports `dependency` as `state` (its readiness is
/// kept for a moment, and a loss is noticed at the next use). Bounded, for a hang.
async fn until_reported(address: SocketAddr, dependency: &str, state: &str) {
    for _ in 0..600 {
        if readiness_of(address, dependency).await == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{address} never reported {dependency} {state}");
}

#[tokio::test]
async fn the_streams_lose_and_repeat_nothing_when_their_store_goes_away_and_comes_back() {
    // The API process reads the event store through a proxy that the test cuts; the
    // comments are written by the in-process application, straight to PostgreSQL, so
    // the board keeps changing while the process's feed cannot read it.
    let app = app(&[]).await;
    let board = app.with_post().await;
    let proxy = Proxy::start(server_of(&app.stack.database_url)).await;
    let via_proxy = app.stack.database_url.replace(
        &server_of(&app.stack.database_url).to_string(),
        &proxy.addr.to_string(),
    );
    let read_url = fresh_read_database().await;
    let process = ApiProcess::start(&via_proxy, &read_url, crate::live::free_address()).await;
    let path = format!("/board/live?postId={}", board.post);
    let mut stream = subscribe(process.address, &path, None).await;
    let before = comment(&app, &board.ann, &board.post, "before the outage").await;
    message_about(&mut stream, &before).await;

    proxy.cut();
    until_reported(process.address, "postgres", "down").await;
    let mut written = Vec::new();
    for i in 0..20 {
        written.push(comment(&app, &board.ann, &board.post, &format!("during {i}")).await);
    }
    // Still cut: the feed has failed and is retrying, the stream is held open meanwhile.
    until_reported(process.address, "postgres", "down").await;
    proxy.restore();
    for i in 0..5 {
        written.push(comment(&app, &board.ann, &board.post, &format!("after {i}")).await);
    }

    // The same stream, never reopened: every comment once, in the order written.
    let mut received = Vec::new();
    while received.len() < written.len() {
        let message = next(&mut stream).await;
        assert_eq!(
            message.event.as_deref(),
            Some("commentAdded"),
            "{message:?}"
        );
        received.push(message.json()["commentId"].as_str().unwrap().to_string());
    }
    assert_eq!(received, written, "every comment, in order, once");
    until_reported(process.address, "postgres", "up").await;
}

/// What the live page shows: the comments' texts, oldest first, and its connection state.
async fn page_comments(browser: &Browser) -> (Vec<String>, String) {
    let shown = browser
        .evaluate(
            "({ comments: [...document.querySelectorAll('#messages li.commentAdded')]
                   .map(item => item.firstChild.textContent).reverse(),
                state: document.getElementById('state')?.textContent ?? '' })",
        )
        .await;
    let comments = shown["comments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|text| text.as_str().unwrap().to_string())
        .collect();
    (comments, shown["state"].as_str().unwrap().to_string())
}

/// Waits until the page shows `count` comments, and returns them. Bounded, for a hang.
async fn until_page_shows(browser: &Browser, count: usize) -> Vec<String> {
    for _ in 0..600 {
        let (comments, _) = page_comments(browser).await;
        if comments.len() >= count {
            return comments;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the page never showed {count} comments: {:?}",
        page_comments(browser).await
    );
}

/// Waits until the page's connection state reads `state`. Bounded, for a hang.
async fn until_state(browser: &Browser, state: &str) {
    for _ in 0..600 {
        if page_comments(browser).await.1 == state {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "the page never showed {state:?}: {:?}",
        page_comments(browser).await
    );
}

#[tokio::test]
async fn a_browser_follows_its_server_through_a_restart_and_gets_what_it_missed() {
    let app = app(&[]).await;
    let board = app.with_post().await;
    let read_url = fresh_read_database().await;
    let address = crate::live::free_address();
    let server = ApiProcess::start(&app.stack.database_url, &read_url, address).await;
    // The page Board serves, watching the post's category with the browser's EventSource.
    let browser = Browser::open(&format!(
        "http://{address}/live?categoryId={}",
        board.category
    ))
    .await;
    until_state(&browser, "live").await;

    comment(&app, &board.ann, &board.post, "before the restart").await;
    assert_eq!(
        until_page_shows(&browser, 1).await,
        ["ann: before the restart"]
    );

    // Stopped as a deploy stops it: the stream ends, the browser retries meanwhile.
    let stopped = server.process.signal("TERM").await;
    assert!(stopped.success(), "{stopped:?}");
    let mut expected = vec!["ann: before the restart".to_string()];
    for i in 0..5 {
        comment(&app, &board.ann, &board.post, &format!("while down {i}")).await;
        expected.push(format!("ann: while down {i}"));
    }
    until_state(&browser, "reconnecting").await;
    assert_eq!(
        page_comments(&browser).await.0.len(),
        1,
        "nothing arrives while down"
    );

    // The same address again, as a replacement process would take it: the browser
    // reconnects with its Last-Event-ID and gets exactly what it missed, then live ones.
    let _restarted = ApiProcess::start(&app.stack.database_url, &read_url, address).await;
    until_page_shows(&browser, expected.len()).await;
    comment(&app, &board.ann, &board.post, "after the restart").await;
    expected.push("ann: after the restart".to_string());
    assert_eq!(until_page_shows(&browser, expected.len()).await, expected);
    assert_eq!(page_comments(&browser).await.1, "live");
}
