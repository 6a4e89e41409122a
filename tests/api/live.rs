//! Live updates (`GET /board/live`): server-sent events fed by each process's one reader
//! of the event store, across `board` processes, resumable with `Last-Event-ID`.

use std::net::SocketAddr;

use axum::http::StatusCode;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::common::{Member, TestApp, ADMIN_EMAIL};
use crate::http_client;
use crate::pipeline::{board_on, fresh_read_database, Process};
use crate::sse_client::{self, EventStream, Frame, HANG};

/// Shared by the in-process application and the `board` processes, so that a token
/// issued by one is accepted by the others.
pub const JWT_SECRET: &str = "live-updates-test-secret-of-at-least-32-bytes";

pub async fn app(extra: &[&str]) -> TestApp {
    let mut args = vec!["--jwt-secret", JWT_SECRET];
    args.extend_from_slice(extra);
    TestApp::with_args(&args).await
}

/// A `board serve --components api` process.
pub struct ApiProcess {
    pub address: SocketAddr,
    pub process: Process,
}

impl ApiProcess {
    /// Serves on `address` from the event store at `database_url`.
    pub async fn start(database_url: &str, read_url: &str, address: SocketAddr) -> Self {
        let listen = address.to_string();
        let process = Process::spawn(board_on(
            database_url,
            read_url,
            &[
                "--jwt-secret",
                JWT_SECRET,
                "--admin-emails",
                ADMIN_EMAIL,
                "--listen",
                &listen,
                "serve",
                "--components",
                "api",
            ],
        ));
        http_client::wait_until_serving(address).await;
        Self { address, process }
    }
}

/// A loopback address nothing listens on now.
pub fn free_address() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
}

/// An API process on `app`'s event store.
async fn api_process(app: &TestApp, read_url: &str) -> ApiProcess {
    ApiProcess::start(&app.stack.database_url, read_url, free_address()).await
}

/// `app` served on a loopback socket by `board serve`'s server; stopped (as SIGTERM
/// stops it) through the sender.
async fn serve(app: &TestApp) -> (SocketAddr, oneshot::Sender<()>, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let served = board::http::server::serve(listener, app.state.clone(), async {
        let _ = stopped.await;
    });
    let task = tokio::spawn(async move {
        served.await.unwrap();
    });
    (address, stop, task)
}

/// A comment through the HTTP API of `address`; returns its id.
async fn comment_at(address: SocketAddr, member: &Member, post: &str, content: &str) -> String {
    let reply = http_client::send(
        address,
        "POST",
        &format!("/board/posts/{post}/comments"),
        Some(&member.token),
        Some(&json!({ "content": content })),
    )
    .await
    .unwrap();
    assert_eq!(
        reply.status,
        201,
        "{:?}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json().unwrap()["commentId"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A comment through the in-process router; returns its id.
pub async fn comment(app: &TestApp, member: &Member, post: &str, content: &str) -> String {
    let res = app
        .post(&format!("/board/posts/{post}/comments"))
        .bearer(&member.token)
        .json(json!({ "content": content }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    res.json()["commentId"].as_str().unwrap().to_string()
}

pub async fn subscribe(
    address: SocketAddr,
    path: &str,
    last_event_id: Option<&str>,
) -> EventStream {
    let opened = sse_client::open(address, path, last_event_id).await;
    assert_eq!(opened.status, 200, "{}", opened.head);
    let head = opened.head.to_ascii_lowercase();
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let mut stream = opened.stream;
    let first = stream.next_frame().await.expect("the retry: frame");
    assert!(first.retry.is_some(), "{first:?}");
    stream
}

/// The next message, which must exist.
pub async fn next(stream: &mut EventStream) -> Frame {
    stream.next_message().await.expect("the stream ended")
}

/// `(event, the id of its subject)` of a message, to compare sequences.
pub fn summary(frame: &Frame) -> (String, String) {
    let data = frame.json();
    let event = frame.event.clone().unwrap();
    let key = match event.as_str() {
        "categoryCreated" => "categoryId",
        "postCreated" | "postEdited" | "postDeleted" => "postId",
        _ => "commentId",
    };
    (event, data[key].as_str().unwrap().to_string())
}

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

#[tokio::test]
async fn a_subscriber_on_one_process_sees_a_comment_posted_through_another() {
    let app = app(&[]).await;
    let board = app.with_post().await;
    let read_url = fresh_read_database().await;
    let (writer, reader) = tokio::join!(api_process(&app, &read_url), api_process(&app, &read_url));
    let mut stream = subscribe(
        reader.address,
        &format!("/board/live?postId={}", board.post),
        None,
    )
    .await;

    let comment_id = comment_at(writer.address, &board.ann, &board.post, "Seen everywhere").await;

    let message = message_about(&mut stream, &comment_id).await;
    assert_eq!(message.event.as_deref(), Some("commentAdded"));
    assert!(message.id.is_some());
    let data = message.json();
    assert_eq!(
        keys(&data),
        [
            "author",
            "commentId",
            "content",
            "createdAt",
            "eventPosition",
            "postId"
        ]
    );
    assert_eq!(data["commentId"], comment_id.as_str());
    assert_eq!(data["postId"], board.post.as_str());
    assert_eq!(data["content"], "Seen everywhere");
    assert_eq!(
        data["author"],
        json!({ "accountId": board.ann.id.to_string(), "nickname": "ann" })
    );
    assert_eq!(
        data["eventPosition"],
        format!("comment:{comment_id}:1").as_str()
    );
    // What the query API shows of the same comment, and nothing more: no email.
    assert!(!message.data.contains('@'), "{}", message.data);
    let listed = app
        .get(&format!("/board/posts/{}/comments", board.post))
        .header("event-position", data["eventPosition"].as_str().unwrap())
        .send()
        .await;
    if listed.status == StatusCode::OK {
        let shown = &listed.json()["comments"][0];
        assert_eq!(shown["createdAt"], data["createdAt"]);
    }
}

#[tokio::test]
async fn a_subscriber_resuming_on_the_other_process_gets_exactly_what_it_missed() {
    let app = app(&[]).await;
    let board = app.with_post().await;
    let read_url = fresh_read_database().await;
    let (first, second) = tokio::join!(api_process(&app, &read_url), api_process(&app, &read_url));
    let path = format!("/board/live?postId={}", board.post);
    let mut stream = subscribe(first.address, &path, None).await;
    let before = comment_at(first.address, &board.ann, &board.post, "before").await;
    let seen = message_about(&mut stream, &before).await;
    drop(stream);

    let mut missed = Vec::new();
    for i in 0..100 {
        missed.push(
            comment_at(
                first.address,
                &board.ann,
                &board.post,
                &format!("missed {i}"),
            )
            .await,
        );
    }
    let mut resumed = subscribe(second.address, &path, seen.id.as_deref()).await;
    let mut received = Vec::new();
    for _ in 0..100 {
        let message = next(&mut resumed).await;
        assert_eq!(message.event.as_deref(), Some("commentAdded"));
        received.push(message.json()["commentId"].as_str().unwrap().to_string());
    }
    assert_eq!(received, missed, "every missed comment, in order, once");
    let live = comment_at(second.address, &board.ann, &board.post, "after").await;
    let message = next(&mut resumed).await;
    assert_eq!(
        message.json()["commentId"],
        live.as_str(),
        "then live ones, with nothing repeated"
    );
}

#[tokio::test]
async fn filters_keep_exactly_what_they_promise() {
    let app = app(&[]).await;
    let admin = app.admin().await;
    let ann = app.member("ann@example.com", "ann").await;
    let (address, _stop, _server) = serve(&app).await;
    let rust = app.category(&admin, "Rust").await;
    let go = app.category(&admin, "Go").await;
    let mut everything = subscribe(address, "/board/live", None).await;
    let mut in_rust = subscribe(address, &format!("/board/live?categoryId={rust}"), None).await;

    let rust_post = app.post_in(&ann, &rust).await;
    let mut on_post = subscribe(address, &format!("/board/live?postId={rust_post}"), None).await;
    let other_rust_post = app.post_in(&ann, &rust).await;
    let go_post = app.post_in(&ann, &go).await;
    let on_other = comment(&app, &ann, &other_rust_post, "other post").await;
    let on_go = comment(&app, &ann, &go_post, "other category").await;
    let edited = app
        .patch(&format!("/board/posts/{rust_post}"))
        .bearer(&ann.token)
        .json(json!({ "content": "changed, not the title" }))
        .send()
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.text());
    let on_rust = comment(&app, &ann, &rust_post, "the last").await;

    let mut expected_everything = vec![
        ("postCreated".to_string(), rust_post.clone()),
        ("postCreated".to_string(), other_rust_post.clone()),
        ("postCreated".to_string(), go_post.clone()),
        ("commentAdded".to_string(), on_other.clone()),
        ("commentAdded".to_string(), on_go.clone()),
        ("postEdited".to_string(), rust_post.clone()),
        ("commentAdded".to_string(), on_rust.clone()),
    ];
    // A new stream starts at the end of what the store can be read to, which another
    // transaction on the server may hold back a little: the categories made just before
    // may come first.
    let mut received = Vec::new();
    while received.len() < expected_everything.len() {
        let message = summary(&next(&mut everything).await);
        if message.0 != "categoryCreated" {
            received.push(message);
        }
    }
    assert_eq!(received, expected_everything);

    expected_everything.retain(|(_, id)| *id != go_post && *id != on_go);
    let mut received = Vec::new();
    while received.len() < expected_everything.len() {
        received.push(summary(&next(&mut in_rust).await));
    }
    assert_eq!(
        received, expected_everything,
        "the category's posts and their comments"
    );

    let mut first = next(&mut on_post).await;
    if summary(&first) == ("postCreated".to_string(), rust_post.clone()) {
        first = next(&mut on_post).await;
    }
    assert_eq!(
        summary(&first),
        ("postEdited".to_string(), rust_post.clone())
    );
    assert_eq!(
        first.json()["title"],
        "Hello",
        "the title after an edit of the content"
    );
    assert_eq!(
        summary(&next(&mut on_post).await),
        ("commentAdded".to_string(), on_rust),
        "one post and its comments"
    );
}

#[tokio::test]
async fn nothing_of_a_deleted_post_appears_after_its_deletion() {
    let app = app(&[]).await;
    let board = app.with_post().await;
    let (address, _stop, _server) = serve(&app).await;
    let bob = app.member("bob@example.com", "bob").await;
    let mut stream = subscribe(address, "/board/live", None).await;
    let doomed_comment = comment(&app, &bob, &board.post, "on a post about to go").await;
    message_about(&mut stream, &doomed_comment).await;

    let deleted = app
        .delete(&format!("/board/posts/{}", board.post))
        .bearer(&board.ann.token)
        .send()
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT, "{}", deleted.text());
    // The comment's author may still delete it; the store records that.
    let res = app
        .delete(&format!("/board/comments/{doomed_comment}"))
        .bearer(&bob.token)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    let other_post = app.post_in(&board.ann, &board.category).await;
    let marker = comment(&app, &bob, &other_post, "the marker").await;

    let mut received = Vec::new();
    loop {
        let message = summary(&next(&mut stream).await);
        let done = message.1 == marker;
        received.push(message);
        if done {
            break;
        }
    }
    assert_eq!(
        received,
        [
            ("postDeleted".to_string(), board.post.clone()),
            ("postCreated".to_string(), other_post),
            ("commentAdded".to_string(), marker),
        ],
        "the deletion, then nothing of that post or its comments"
    );
}

/// Found in review: every token of the published form is accepted, and one past the
/// store's end (another store's) would have had the stream drop every message until the
/// store got there.
#[tokio::test]
async fn a_token_past_the_end_of_the_store_gets_a_reset() {
    let app = app(&[]).await;
    let board = app.with_post().await;
    let (address, _stop, _server) = serve(&app).await;
    let path = format!("/board/live?postId={}", board.post);
    let mut resumed = subscribe(address, &path, Some("999999999999999999-1")).await;
    let reset = next(&mut resumed).await;
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert!(
        reset.json()["detail"]
            .as_str()
            .unwrap()
            .contains("past the end"),
        "{:?}",
        reset.json()
    );
    // From there the stream is live.
    let added = comment(&app, &board.ann, &board.post, "after the reset").await;
    message_about(&mut resumed, &added).await;
}

#[tokio::test]
async fn a_token_older_than_the_replayed_messages_gets_one_reset() {
    let app = app(&["--live-replay-events", "3"]).await;
    let board = app.with_post().await;
    let (address, _stop, _server) = serve(&app).await;
    let path = format!("/board/live?postId={}", board.post);
    let mut stream = subscribe(address, &path, None).await;
    let first = comment(&app, &board.ann, &board.post, "seen").await;
    let seen = message_about(&mut stream, &first).await;
    let mut missed = Vec::new();
    for i in 0..5 {
        missed.push(comment(&app, &board.ann, &board.post, &format!("missed {i}")).await);
    }
    // Once the first stream has the last of them, the process's feed has passed them all
    // (under load it may trail the commands), so `seen` is out of its last 3 for sure.
    comments_until(&mut stream, missed.last().unwrap()).await;
    drop(stream);

    let mut resumed = subscribe(address, &path, seen.id.as_deref()).await;
    let reset = next(&mut resumed).await;
    assert_eq!(reset.event.as_deref(), Some("reset"));
    assert!(
        reset.id.is_some(),
        "a reset moves the client's Last-Event-ID on"
    );
    assert!(reset.json()["detail"].as_str().unwrap().contains("reload"));
    let live = comment(&app, &board.ann, &board.post, "live").await;
    // The reset starts at the end of what the store could be read to (another
    // transaction on the server may hold that back a little): the last missed ones may
    // still come, then the live one.
    let after_reset = comments_until(&mut resumed, &live).await;
    assert!(
        after_reset.iter().all(|id| missed.contains(id)),
        "{after_reset:?}"
    );

    // A recent token is still replayed.
    let mut recent = subscribe(address, &path, reset.id.as_deref()).await;
    assert_eq!(comments_until(&mut recent, &live).await, after_reset);
}

#[tokio::test]
async fn a_client_resuming_from_before_a_closing_is_not_replayed_the_nickname() {
    let app = app(&[]).await;
    let board = app.with_post().await;
    let (address, _stop, _server) = serve(&app).await;
    let leaver = app.member("leaver@example.com", "zqleaver").await;
    let path = format!("/board/live?postId={}", board.post);
    let mut stream = subscribe(address, &path, None).await;
    let before = comment(&app, &board.ann, &board.post, "before").await;
    let resume_from = message_about(&mut stream, &before).await;
    let theirs = comment(&app, &leaver, &board.post, "soon anonymous").await;
    let live = message_about(&mut stream, &theirs).await;
    assert_eq!(
        live.json()["author"]["nickname"],
        "zqleaver",
        "{}",
        live.data
    );

    let closed = app
        .delete("/account")
        .bearer(&leaver.token)
        .json(json!({ "password": crate::common::PASSWORD }))
        .send()
        .await;
    assert_eq!(closed.status, StatusCode::NO_CONTENT, "{}", closed.text());
    // Once a later message arrives, the feed has read the closing before it.
    let after = comment(&app, &board.ann, &board.post, "after").await;
    message_about(&mut stream, &after).await;

    let mut resumed = subscribe(address, &path, resume_from.id.as_deref()).await;
    let replayed = message_about(&mut resumed, &theirs).await;
    assert_eq!(
        replayed.json()["author"],
        json!({ "accountId": leaver.id.to_string(), "nickname": null, "closed": true }),
        "{}",
        replayed.data
    );
    let rest = comments_until(&mut resumed, &after).await;
    assert!(rest.is_empty(), "{rest:?}");
    assert!(!replayed.data.contains("zqleaver"));
}

/// The message about `id`, skipping what comes before it: a new stream starts at the end
/// of what the store can be read to, which another test's open transaction on the server
/// may hold back, so messages of the setup just before may come first.
pub async fn message_about(stream: &mut EventStream, id: &str) -> Frame {
    loop {
        let message = next(stream).await;
        if summary(&message).1 == id {
            return message;
        }
    }
}

/// The ids of the comments a stream brings before `last`, which must come.
pub async fn comments_until(stream: &mut EventStream, last: &str) -> Vec<String> {
    let mut before = Vec::new();
    loop {
        let id = next(stream).await.json()["commentId"]
            .as_str()
            .unwrap()
            .to_string();
        if id == last {
            return before;
        }
        before.push(id);
    }
}

#[tokio::test]
async fn bad_filters_and_tokens_are_refused() {
    let app = app(&[]).await;
    let board = app.with_post().await;
    let unknown = uuid::Uuid::now_v7();
    for (path, status) in [
        (
            format!(
                "/board/live?categoryId={}&postId={}",
                board.category, board.post
            ),
            StatusCode::BAD_REQUEST,
        ),
        (
            "/board/live?categoryId=rust".to_string(),
            StatusCode::BAD_REQUEST,
        ),
        ("/board/live?postId=42".to_string(), StatusCode::BAD_REQUEST),
        // Misspelt, as a list's unknown parameter is refused rather than ignored.
        (
            format!("/board/live?postid={}", board.post),
            StatusCode::BAD_REQUEST,
        ),
        (
            format!("/board/live?categoryId={unknown}"),
            StatusCode::NOT_FOUND,
        ),
        (
            format!("/board/live?postId={unknown}"),
            StatusCode::NOT_FOUND,
        ),
        // A category's id is no post's.
        (
            format!("/board/live?postId={}", board.category),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let res = app
            .get(&path)
            .header("accept", "text/event-stream")
            .send()
            .await;
        res.problem(status);
    }
    // Not tokens as the document's pattern says them (too many digits for the server).
    for token in ["yesterday", "1-1234567890123456789"] {
        let res = app
            .get("/board/live")
            .header("last-event-id", token)
            .send()
            .await;
        res.problem(StatusCode::BAD_REQUEST);
    }

    let deleted = app
        .delete(&format!("/board/posts/{}", board.post))
        .bearer(&board.ann.token)
        .send()
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let res = app
        .get(&format!("/board/live?postId={}", board.post))
        .send()
        .await;
    res.problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_is_dropped_while_the_others_keep_receiving() {
    let app = app(&["--live-subscriber-buffer", "8"]).await;
    let board = app.with_post().await;
    let (address, _stop, _server) = serve(&app).await;
    let path = format!("/board/live?postId={}", board.post);
    let slow = sse_client::open_with_small_buffer(address, &path, 4096).await;
    assert_eq!(slow.status, 200);
    let mut reader = subscribe(address, &path, None).await;
    let long = "x".repeat(2_000);

    // Until the feed finds the slow one behind: the kernel's and the server's buffers
    // take some first. Bounded, in case it never does.
    let mut sent = Vec::new();
    while app.state.live.stats().dropped == 0 {
        assert!(
            sent.len() < 3_000,
            "the subscriber that does not read was never dropped"
        );
        sent.push(comment(&app, &board.ann, &board.post, &long).await);
        message_about(&mut reader, sent.last().unwrap()).await;
    }
    let after = comment(&app, &board.ann, &board.post, "after the drop").await;
    message_about(&mut reader, &after).await;

    // The slow one finds its stream closed once it reads what was buffered.
    let mut slow = slow.stream;
    let mut read = 0;
    while slow.next_frame().await.is_some() {
        read += 1;
    }
    assert!(
        read < sent.len() + 2,
        "it was cut off, not served everything"
    );
    assert_eq!(app.state.live.stats().open_streams, 1);
}

#[tokio::test]
async fn streams_are_limited_per_address_and_per_process() {
    let app = app(&["--live-streams-per-address", "2", "--max-live-streams", "3"]).await;
    let (address, _stop, _server) = serve(&app).await;
    let _first = subscribe(address, "/board/live", None).await;
    let _second = subscribe(address, "/board/live", None).await;
    let third = sse_client::open(address, "/board/live", None).await;
    assert_eq!(third.status, 429, "{}", third.head);
    let head = third.head.to_ascii_lowercase();
    assert!(head.contains("retry-after:"), "{head}");
    assert!(head.contains("application/problem+json"), "{head}");

    // Through the router the client address is unknown: one more address, and the
    // process's last place.
    let _through_router = app.state.live.admit("another").expect("a place");
    let refused = app.get("/board/live").send().await;
    refused.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(refused.header("retry-after").is_some());
}

#[tokio::test]
async fn shutting_down_ends_the_streams() {
    let app = app(&["--shutdown-timeout", "10m"]).await;
    let (address, stop, server) = serve(&app).await;
    let mut stream = subscribe(address, "/board/live", None).await;
    stop.send(()).unwrap();
    let after_stop = stream.next_frame().await;
    assert!(
        after_stop.is_none(),
        "the stream ends, so the client reconnects elsewhere: {after_stop:?}"
    );
    tokio::time::timeout(HANG, server)
        .await
        .expect("the server stopped without waiting for its shutdown deadline")
        .unwrap();
}

#[tokio::test]
async fn the_live_page_is_served_with_its_script() {
    let app = app(&[]).await;
    let page = app.get("/live").header("accept", "text/html").send().await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("/live/page.js"));
    let csp = page.header("content-security-policy").unwrap();
    assert!(
        csp.contains("script-src 'self'") && csp.contains("connect-src 'self'"),
        "{csp}"
    );
    let script = app.get("/live/page.js").send().await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(script.text().contains("new EventSource"));
}
