//! Hostile and careless clients: what one client does must not take Board down, or
//! grow it without bound, for the others.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use axum::http::StatusCode;
use board::http::server;
use serde_json::{json, Value};
use testkit::Stack;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::timeout;

use crate::common::TestApp;
use crate::http_client::{self, Reply};
use crate::live::{free_address, ApiProcess};
use crate::pipeline::Pipeline;

/// The request histogram's series in a `/metrics` text: each line's name and labels,
/// without its value.
fn request_series(metrics: &str) -> BTreeSet<String> {
    metrics
        .lines()
        .filter(|line| line.starts_with("http_request_duration_seconds"))
        .filter_map(|line| line.rsplit_once(' ').map(|(series, _)| series.to_string()))
        .collect()
}

/// Every made-up method would be a new label value of the request histogram, kept for
/// the life of the process: 300 of them grew `/metrics` by 4,500 lines; so would every
/// path, were it a label rather than its route. Measured on a `board` process of its own,
/// whose recorder no other test writes to: once each kind of request has been seen, 300
/// more of each add no series.
#[tokio::test]
async fn made_up_methods_and_random_paths_do_not_mint_metric_series() {
    let app = TestApp::spawn().await;
    let read_url = crate::pipeline::fresh_read_database().await;
    let api = ApiProcess::start(&app.stack.database_url, &read_url, free_address()).await;
    let send = |method: String, path: String| async move {
        http_client::send(api.address, &method, &path, None, None)
            .await
            .unwrap()
    };
    let requests = |i: usize| {
        let random = uuid::Uuid::new_v4();
        [
            (format!("X{i}Y"), "/board/categories".to_string()),
            ("GET".to_string(), format!("/{random}")),
            (format!("X{i}Y"), format!("/{random}/{i}")),
            ("GET".to_string(), format!("/board/posts/{random}/content")),
        ]
    };
    let scrape = || send("GET".into(), "/metrics".into());
    for (method, path) in requests(0) {
        send(method, path).await;
    }
    scrape().await;
    let before = request_series(&String::from_utf8_lossy(&scrape().await.body));

    for i in 1..=300 {
        for (method, path) in requests(i) {
            send(method, path).await;
        }
    }
    let metrics = String::from_utf8_lossy(&scrape().await.body).into_owned();
    let after = request_series(&metrics);
    let minted: Vec<&String> = after.difference(&before).collect();
    assert!(
        minted.is_empty(),
        "{} series more, e.g. {:?}",
        minted.len(),
        minted.first()
    );
    assert!(
        metrics.contains("method=\"other\",route=\"/board/categories\",status=\"405\""),
        "made-up methods are counted as `other`"
    );
}

// ---- The server: slow, idle and too many connections ----

/// `board serve`'s server (`http::server::serve`) on a loopback port, for an application
/// configured by `flags`; stopped like SIGTERM stops it when `stop` is sent.
struct Server {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn serve(flags: &[&str]) -> Server {
    let stack = Stack::for_tests()
        .args(flags)
        .build()
        .await
        .expect("a test application (is `make services` up?)");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve(listener, stack.app, async {
        let _ = stopped.await;
    }));
    Server {
        address,
        stop: Some(stop),
        task,
    }
}

/// How long a test waits for the server before calling it a hang. Generous: what is
/// tested is that the server acts at all, not how fast.
const HANG: Duration = Duration::from_secs(30);

/// Reads until the server closes the connection; whatever it sent before is returned.
/// A reset counts as closed too (bytes the client sent after the close provoke one).
async fn read_until_closed(stream: &mut (impl AsyncRead + Unpin)) -> Vec<u8> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let closing = async {
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) => return,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("reading failed: {e}"),
            }
        }
    };
    if timeout(HANG, closing).await.is_err() {
        panic!("the server still held the connection after {HANG:?}");
    }
    received
}

/// Reads one whole answer (the server may keep the connection open after it).
async fn read_answer(stream: &mut (impl AsyncRead + Unpin)) -> Reply {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let answer = async {
        loop {
            let n = stream.read(&mut chunk).await.expect("reading the answer");
            received.extend_from_slice(&chunk[..n]);
            if let Ok(reply) = http_client::parse(&received) {
                return reply;
            }
            assert!(
                n > 0,
                "closed mid-answer: {:?}",
                String::from_utf8_lossy(&received)
            );
        }
    };
    timeout(HANG, answer)
        .await
        .unwrap_or_else(|_| panic!("no answer within {HANG:?}"))
}

async fn connect(server: &Server, first_bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.address).await.unwrap();
    stream.write_all(first_bytes).await.unwrap();
    stream
}

/// Found by trying: headers that trickled in over 40 s were served, and a half-sent
/// request line held its connection for good.
#[tokio::test]
async fn a_request_stalled_in_its_headers_is_closed() {
    let server = serve(&["--header-read-timeout", "1s"]).await;
    let mut stream = connect(&server, b"GET /health/li").await;
    let received = read_until_closed(&mut stream).await;
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
}

/// Writes a byte every 200 ms until the server closes (a write fails), for longer than
/// any deadline these tests set.
fn trickle(mut writing: OwnedWriteHalf) -> JoinHandle<()> {
    tokio::spawn(async move {
        for _ in 0..150 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writing.write_all(b"a").await.is_err() {
                return;
            }
        }
    })
}

/// Slowloris: a byte now and then does not move the deadline.
#[tokio::test]
async fn headers_that_trickle_in_are_closed_at_the_deadline() {
    let server = serve(&["--header-read-timeout", "1s"]).await;
    let stream = connect(&server, b"GET /health/live HTTP/1.1\r\nX-Slow: ").await;
    let (mut reading, writing) = stream.into_split();
    let trickling = trickle(writing);
    let received = read_until_closed(&mut reading).await;
    trickling.abort();
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
}

#[tokio::test]
async fn a_kept_alive_connection_is_closed_once_idle() {
    // The header deadline is far off: what closes the connection is idleness.
    let server = serve(&["--idle-timeout", "1s", "--header-read-timeout", "10m"]).await;
    let mut stream = connect(&server, b"GET /health/live HTTP/1.1\r\nHost: board\r\n\r\n").await;
    let reply = read_answer(&mut stream).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let received = read_until_closed(&mut stream).await;
    assert!(
        received.is_empty(),
        "{:?}",
        String::from_utf8_lossy(&received)
    );
}

/// The idle deadline is for connections the server waits on, not for requests it is
/// working on: a request whose body is being read outlives it.
#[tokio::test]
async fn a_request_in_flight_is_not_idle() {
    let server = serve(&["--idle-timeout", "1s", "--body-read-timeout", "10m"]).await;
    let body = b"{}";
    let head = format!(
        "POST /signup HTTP/1.1\r\nHost: board\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    let mut stream = connect(&server, head.as_bytes()).await;
    let go_on = read_answer(&mut stream).await;
    assert_eq!(
        go_on.status, 100,
        "the handler is reading the body: {go_on:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    stream.write_all(body).await.expect("still open");
    let reply = read_answer(&mut stream).await;
    assert_eq!(reply.status, 400, "{reply:?}");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let server = serve(&["--body-read-timeout", "1s"]).await;
    let head = "POST /signup HTTP/1.1\r\nHost: board\r\nContent-Type: application/json\r\n\
                Content-Length: 200\r\n\r\n{\"email\":";
    let mut stream = connect(&server, head.as_bytes()).await;
    let reply = read_answer(&mut stream).await;
    assert_eq!(reply.status, 408, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(reply.header("connection"), Some("close"));
    let problem = reply.json().expect("a problem document");
    assert_eq!(problem["type"], "urn:board:problem:request-timeout");
}

/// The deadline is for the whole body, not between its bytes.
#[tokio::test]
async fn a_body_that_trickles_in_gets_408() {
    let server = serve(&["--body-read-timeout", "1s"]).await;
    let head = "POST /signup HTTP/1.1\r\nHost: board\r\nContent-Type: application/json\r\n\
                Content-Length: 1000\r\n\r\n";
    let stream = connect(&server, head.as_bytes()).await;
    let (mut reading, writing) = stream.into_split();
    let trickling = trickle(writing);
    let reply = read_answer(&mut reading).await;
    trickling.abort();
    assert_eq!(reply.status, 408, "{reply:?}");
}

/// Before the limit, 2,000 connections holding half a request were all kept (the
/// process may open 20,000).
#[tokio::test]
async fn past_the_connection_limit_new_connections_get_503_and_are_served_once_some_close() {
    const LIMIT: usize = 4;
    let server = serve(&[
        "--max-connections",
        &LIMIT.to_string(),
        "--header-read-timeout",
        "10m",
    ])
    .await;
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        held.push(connect(&server, b"GET /health/li").await);
    }
    // Accepted after the held ones (the backlog is first in, first out): no place left.
    let mut stream = connect(&server, b"GET /health/live HTTP/1.1\r\nHost: board\r\n\r\n").await;
    let reply = http_client::parse(&read_until_closed(&mut stream).await).unwrap();
    assert_eq!(reply.status, 503, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(
        reply.json().unwrap()["type"],
        "urn:board:problem:unavailable"
    );

    drop(held);
    // The server notices the closes on its own time: retry as a client would.
    let served = timeout(HANG, async {
        loop {
            match http_client::send(server.address, "GET", "/health/live", None, None).await {
                Ok(reply) if reply.status == 200 => return,
                Ok(reply) if reply.status == 503 => {}
                other => panic!("{other:?}"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "still turned away {HANG:?} after the held connections closed"
    );
}

/// Before the per-address limit, one client could hold every one of `MAX_CONNECTIONS`.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let server = serve(&[
        "--max-connections-per-address",
        "2",
        "--header-read-timeout",
        "10m",
    ])
    .await;
    let _held = [
        connect(&server, b"GET /health/li").await,
        connect(&server, b"GET /health/li").await,
    ];
    let mut third = connect(&server, b"GET /health/live HTTP/1.1\r\nHost: board\r\n\r\n").await;
    let reply = http_client::parse(&read_until_closed(&mut third).await).unwrap();
    assert_eq!(reply.status, 429, "{reply:?}");
    assert_eq!(reply.header("retry-after"), Some("1"));
    assert_eq!(
        reply.json().unwrap()["type"],
        "urn:board:problem:rate-limited"
    );

    // Another address (all of 127.0.0.0/8 is this machine) is served.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = socket.connect(server.address).await.unwrap();
    other
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: board\r\n\r\n")
        .await
        .unwrap();
    let reply = read_answer(&mut other).await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// SIGTERM: no new connections, the request in flight finishes, and a connection stuck
/// in its headers does not keep the process from exiting after the deadline.
#[tokio::test]
async fn shutdown_lets_the_request_in_flight_finish_and_closes_the_rest_at_the_deadline() {
    let mut server = serve(&[
        "--shutdown-timeout",
        "1s",
        "--header-read-timeout",
        "10m",
        "--body-read-timeout",
        "10m",
    ])
    .await;
    let mut stuck = connect(&server, b"GET /health/li").await;
    let body = b"{}";
    let head = format!(
        "POST /signup HTTP/1.1\r\nHost: board\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    let mut in_flight = connect(&server, head.as_bytes()).await;
    let go_on = read_answer(&mut in_flight).await;
    assert_eq!(
        go_on.status, 100,
        "the handler is reading the body: {go_on:?}"
    );

    server.stop.take().unwrap().send(()).unwrap();
    in_flight.write_all(body).await.unwrap();
    let reply = read_answer(&mut in_flight).await;
    assert_eq!(
        reply.status, 400,
        "the request in flight is answered: {reply:?}"
    );

    let stopped = timeout(HANG, &mut server.task)
        .await
        .expect("the server returns after the deadline");
    stopped.unwrap().unwrap();
    assert!(read_until_closed(&mut stuck).await.is_empty());
    assert!(
        TcpStream::connect(server.address).await.is_err(),
        "a stopped server accepts nothing"
    );
}

/// GET `path` once the read model has reached `position` (the query waits for it, up to
/// the pipeline's read-wait timeout, then answers 503).
async fn read_at(app: &TestApp, path: &str, position: &str) -> Value {
    let res = app
        .get(path)
        .header("event-position", position)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "GET {path}: {}", res.text());
    res.json()
}

/// Writes `events` of post `post` straight into the event store, as a writer this reader
/// does not understand would: (sequence, stored payload).
async fn store_post_events(pipeline: &Pipeline, post: &str, events: &[(i64, Value)]) {
    let mut tx = pipeline.app.pool.begin().await.unwrap();
    for (sequence, payload) in events {
        sqlx::query(
            "INSERT INTO events
                    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
             VALUES ('post', $1, $2, 'PostEdited', '1.0', $3, '{}')",
        )
        .bind(post)
        .bind(sequence)
        .bind(payload)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// Replaces the stored payload of sequence `sequence` of post `post`: the operator's fix.
async fn fix_post_event(pipeline: &Pipeline, post: &str, sequence: i64, payload: Value) {
    sqlx::query(
        "UPDATE events SET payload = $3
          WHERE aggregate_type = 'post' AND aggregate_id = $1 AND sequence = $2",
    )
    .bind(post)
    .bind(sequence)
    .bind(payload)
    .execute(&pipeline.app.pool)
    .await
    .unwrap();
}

/// `board_projector_quarantined_events` as `/metrics` reports it now (once the figures it
/// kept from before have expired).
async fn quarantined_metric(app: &TestApp) -> f64 {
    app.outwait_kept_figures().await;
    let metrics = app
        .get("/metrics")
        .header("accept", "text/plain")
        .send()
        .await
        .text();
    let line = metrics
        .lines()
        .find(|line| line.starts_with("board_projector_quarantined_events{"))
        .unwrap_or_else(|| panic!("no quarantine gauge in:\n{metrics}"));
    assert!(line.contains("projector=\"read-models\""), "{line}");
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// An event the projector cannot decode (here a title that is a number, as a newer writer
/// or a damaged row could leave) used to be skipped without moving its post's version: the
/// post's next event then looked like a gap, the store filled it with the same event, and
/// the partition looped on it for ever, so nothing after it reached the read model.
#[tokio::test]
async fn an_undecodable_event_is_quarantined_while_other_aggregates_reach_the_read_model() {
    // One partition: a stall there would hold up every aggregate.
    let pipeline = Pipeline::new(1).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let app = &pipeline.app;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let poisoned = app.post_in(&admin, &category).await;
    let poisoned_path = format!("/board/posts/{poisoned}/content");
    read_at(app, &poisoned_path, &format!("post:{poisoned}:1")).await;
    store_post_events(
        &pipeline,
        &poisoned,
        &[
            (2, json!({ "PostEdited": { "title": 42 } })),
            (3, json!({ "PostEdited": { "content": "Edited after it" } })),
        ],
    )
    .await;

    let other = app.post_in(&admin, &category).await;
    let content = read_at(
        app,
        &format!("/board/posts/{other}/content"),
        &format!("post:{other}:1"),
    )
    .await;
    assert_eq!(content["title"], "Hello");
    // The poisoned post stays as it was before the event it could not take.
    let content = read_at(app, &poisoned_path, &format!("post:{poisoned}:1")).await;
    assert_eq!(content["content"], "First post");

    let (code, list) = pipeline
        .run_board(&["projections", "quarantine", "list"])
        .await;
    assert_eq!(code, 0, "{list}");
    let rows: Vec<&str> = list
        .lines()
        .filter(|line| line.starts_with(&format!("post:{poisoned}")))
        .collect();
    assert_eq!(rows.len(), 2, "{list}");
    assert!(
        rows[0].contains(" 2  PostEdited 1.0")
            && rows[0].contains("invalid type: integer `42`, expected a string"),
        "{list}"
    );
    assert!(
        rows[1].contains(" 3  PostEdited 1.0") && rows[1].contains("waits behind sequence 2"),
        "{list}"
    );
    assert_eq!(quarantined_metric(app).await, 2.0);
    let (code, status) = pipeline.run_board(&["projections", "status"]).await;
    assert_eq!(code, 0, "{status}");
    assert!(status.contains("quarantined events: 2"), "{status}");
    let (code, verify) = pipeline
        .run_board(&["projections", "verify", "--wait", "1s"])
        .await;
    assert_eq!(code, 1, "{verify}");
    assert!(
        verify.contains(&format!(
            "quarantined_events: post:{poisoned} sequence 2 (PostEdited) not applied"
        )),
        "{verify}"
    );

    // The operator fixes the stored event and retries.
    fix_post_event(
        &pipeline,
        &poisoned,
        2,
        json!({ "PostEdited": { "title": "Fixed" } }),
    )
    .await;
    let (code, retried) = pipeline
        .run_board(&["projections", "quarantine", "retry"])
        .await;
    assert_eq!(code, 0, "{retried}");
    assert!(
        retried.contains(&format!(
            "post:{poisoned}: 2 applied, none left in quarantine"
        )),
        "{retried}"
    );
    let content = read_at(app, &poisoned_path, &format!("post:{poisoned}:3")).await;
    assert_eq!(content["title"], "Fixed");
    assert_eq!(content["content"], "Edited after it");
    assert_eq!(quarantined_metric(app).await, 0.0);
    let (code, list) = pipeline
        .run_board(&["projections", "quarantine", "list"])
        .await;
    assert_eq!((code, list.trim()), (0, "no quarantined events"));
    let (code, verify) = pipeline
        .run_board(&["projections", "verify", "--wait", "10s"])
        .await;
    assert_eq!(code, 0, "{verify}");

    // The live projector goes on with the post from there.
    let res = app
        .patch(&format!("/board/posts/{poisoned}"))
        .bearer(&admin.token)
        .json(json!({ "title": "After the retry" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let position = res.header("event-position").unwrap().to_string();
    assert_eq!(
        read_at(app, &poisoned_path, &position).await["title"],
        "After the retry"
    );
}

/// The quarantine describes the view tables beside it, so a rebuild swaps it in with them:
/// an event the rebuild could apply after a fix must not stay quarantined in the live one.
#[tokio::test]
async fn a_rebuild_after_a_fix_swaps_the_quarantine_out_with_the_views() {
    let pipeline = Pipeline::new(1).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let app = &pipeline.app;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let poisoned = app.post_in(&admin, &category).await;
    store_post_events(
        &pipeline,
        &poisoned,
        &[(2, json!({ "PostEdited": { "title": 42 } }))],
    )
    .await;
    let other = app.post_in(&admin, &category).await;
    read_at(
        app,
        &format!("/board/posts/{other}/content"),
        &format!("post:{other}:1"),
    )
    .await;
    assert_eq!(quarantined_metric(app).await, 1.0);

    fix_post_event(
        &pipeline,
        &poisoned,
        2,
        json!({ "PostEdited": { "title": "Fixed" } }),
    )
    .await;
    let (code, rebuilt) = pipeline
        .run_board(&["projections", "rebuild", "--all"])
        .await;
    assert_eq!(code, 0, "{rebuilt}");
    assert_eq!(quarantined_metric(app).await, 0.0);
    let content = read_at(
        app,
        &format!("/board/posts/{poisoned}/content"),
        &format!("post:{poisoned}:2"),
    )
    .await;
    assert_eq!(content["title"], "Fixed");
}

/// A name that reads as empty, or as another text than it holds, is refused; content
/// keeps such characters, and emoji sequences stay valid everywhere.
#[tokio::test]
async fn names_refuse_invisible_and_bidirectional_control_characters() {
    let app = TestApp::spawn().await;
    for nickname in ["\u{200b}\u{200b}", "ann\u{202e}nimda", "\u{3164}\u{3164}"] {
        let res = app
            .post("/signup")
            .json(json!({"email": "zw@example.com", "password": crate::common::PASSWORD, "nickname": nickname}))
            .send()
            .await;
        assert_eq!(
            res.status,
            StatusCode::BAD_REQUEST,
            "{nickname:?}: {}",
            res.text()
        );
        let message = res.json()["errors"]["nickname"][0]
            .as_str()
            .unwrap()
            .to_string();
        assert!(message.contains("invisible"), "{message}");
    }
    assert_eq!(app.event_count().await, 0, "nothing was recorded");

    let board = app.with_post().await;
    let res = app
        .post(&format!("/board/categories/{}/posts", board.category))
        .bearer(&board.ann.token)
        .json(json!({"title": "invoice\u{202e}fdp.exe", "content": "x"}))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert!(res.json()["errors"]["title"].is_array(), "{}", res.text());

    let res = app
        .post(&format!("/board/categories/{}/posts", board.category))
        .bearer(&board.ann.token)
        .json(json!({
            "title": "Family 👨\u{200d}👩\u{200d}👧",
            "content": "zero\u{200b}width and \u{202e}quoted are writing here"
        }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
}

/// `{"name": "A", "name": "B"}` was read as `B` (201); a proxy or a log in front may
/// have read `A`.
#[tokio::test]
async fn a_body_that_repeats_a_key_is_a_400() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let before = app.event_count().await;
    let res = app
        .post("/board/categories")
        .bearer(&admin.token)
        .raw(
            "application/json",
            br#"{"name": "A", "name": "B"}"#.to_vec(),
        )
        .send()
        .await;
    assert_eq!(res.status, StatusCode::BAD_REQUEST, "{}", res.text());
    assert!(
        res.text().contains("duplicate key `name`"),
        "{}",
        res.text()
    );
    assert_eq!(app.event_count().await, before, "no category was recorded");
}

/// One member's 256 keyed POSTs, 64 at a time, used to answer 503 to most of them and to a
/// log-in sent meanwhile: each request held a pooled connection (the key's row lock) while
/// its command waited for another. Now none is held across the command. The member may
/// have all 64 in flight and the pool is small, so neither the per-account cap nor a
/// large pool can hide a request that holds two connections at once: the pool's four
/// would be held by four requests each waiting for a second, and everyone would get 503.
#[tokio::test]
async fn one_members_flood_of_keyed_commands_does_not_take_the_store_from_others() {
    use futures::stream::{self, StreamExt};

    let app = TestApp::with_args(&[
        "--commands-per-account",
        "64",
        "--event-store-pool-size",
        "4",
    ])
    .await;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let ann = app.member("ann@example.com", "ann").await;
    app.sign_up("bob@example.com", "bob").await;
    app.verify("bob@example.com").await;
    let flood = stream::iter(0..256)
        .map(|i| {
            let (app, token, category) = (app.clone(), ann.token.clone(), category.clone());
            async move {
                app.post(&format!("/board/categories/{category}/posts"))
                    .bearer(&token)
                    .header("idempotency-key", &format!("flood-{i}"))
                    .json(json!({"title": "t", "content": "c"}))
                    .send()
                    .await
                    .status
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<StatusCode>>();
    let log_in = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        app.post("/auth")
            .json(json!({"email": "bob@example.com", "password": crate::common::PASSWORD}))
            .send()
            .await
    };
    let (statuses, log_in) = tokio::join!(flood, log_in);
    assert_eq!(log_in.status, StatusCode::OK, "{}", log_in.text());
    assert!(
        statuses.iter().all(|s| *s == StatusCode::CREATED),
        "every post is created: {statuses:?}"
    );
}

// ---- Routes without an account to count against ----

/// Found by review: `/check-duplicate/email`, `/verify`, `/refresh` and `/logout` had no
/// limit, so one address could keep the commands' connections busy (a spent refresh token
/// replayed without end costs two statements each time) until other clients' log-ins
/// waited out the pool and got 503. Now they share a limit per client address.
#[tokio::test]
async fn one_address_is_limited_on_the_anonymous_routes_that_use_the_event_store() {
    const LIMIT: usize = 8;
    let app = TestApp::with_args(&["--anonymous-rate-per-minute", &LIMIT.to_string()]).await;
    let ann = app.member("ann@example.com", "ann").await;
    let mut served = 0;
    let limited = loop {
        let res = app
            .get("/check-duplicate/email/bob@example.com")
            .send()
            .await;
        if res.status != StatusCode::OK {
            break res;
        }
        served += 1;
        assert!(
            served <= LIMIT,
            "{served} served, past the limit of {LIMIT}"
        );
    };
    let problem = limited.problem(StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(problem["type"], "urn:board:problem:rate-limited");

    // The other routes count against the same limit; the log-ins against their own.
    let others = [
        app.get("/verify?verify_id=anything"),
        app.get("/refresh").bearer(&ann.refresh),
        app.post("/logout").bearer(&ann.refresh),
    ];
    for request in others {
        let res = request.send().await;
        res.problem(StatusCode::TOO_MANY_REQUESTS);
        let wait: u64 = res.header("retry-after").unwrap().parse().unwrap();
        // One token comes back every 60 / LIMIT s.
        assert!((1..=8).contains(&wait), "{wait}");
    }
    app.log_in("ann@example.com").await;
}

/// Found by review: a password waited for a hashing slot with no bound, so a flood of
/// log-ins (or of wrong passwords to `DELETE /account`) queued every other log-in behind
/// it: a hang, not an answer. Now a password that finds no slot in time gets 503.
#[tokio::test]
async fn a_password_that_finds_no_hashing_slot_in_time_gets_503() {
    let app = TestApp::with_args(&[
        "--password-hashing-slots",
        "1",
        "--password-hashing-wait",
        "100ms",
    ])
    .await;
    app.member("ann@example.com", "ann").await;
    let held = app.state.passwords.slot().await.unwrap();

    let turned_away = app
        .log_in_with("ann@example.com", crate::common::PASSWORD)
        .await;
    let problem = turned_away.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "urn:board:problem:busy");
    assert_eq!(turned_away.header("retry-after"), Some("1"));
    let sign_up = app
        .post("/signup")
        .json(json!({"email": "bob@example.com", "password": crate::common::PASSWORD, "nickname": "bob"}))
        .send()
        .await;
    sign_up.problem(StatusCode::SERVICE_UNAVAILABLE);

    drop(held);
    app.log_in("ann@example.com").await;
}

/// Found by review: `/password-reset/confirm` hashed the new password before it looked
/// the token up, so made-up tokens cost a hash each and took the hashing slots.
#[tokio::test]
async fn a_made_up_reset_token_costs_no_hash() {
    let app = TestApp::with_args(&[
        "--password-hashing-slots",
        "1",
        "--password-hashing-wait",
        "100ms",
    ])
    .await;
    let _held = app.state.passwords.slot().await.unwrap();
    app.post("/password-reset/confirm")
        .json(json!({ "token": "made-up", "password": crate::common::PASSWORD }))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
}

/// Found by review: the log-in took an email of any length, and the address tried is a
/// key of the failed log-ins' limit in PostgreSQL, where a long enough one is past what a
/// b-tree entry may hold (a 500). Every route that takes an email refuses one over 254
/// characters.
#[tokio::test]
async fn an_email_over_254_characters_is_a_400_on_every_route_that_takes_one() {
    let app = TestApp::spawn().await;
    let password = crate::common::PASSWORD;
    let just_over = format!("{}@example.com", "a".repeat(255 - "@example.com".len()));
    // 10,000 characters that do not compress much.
    let huge: String = (0..320)
        .map(|_| uuid::Uuid::new_v4().simple().to_string())
        .collect();
    let huge = format!("{huge}@example.com");
    for email in [&just_over, &huge] {
        let answers = [
            app.post("/auth")
                .json(json!({ "email": email, "password": password }))
                .send()
                .await,
            app.get("/auth").basic(email, password).send().await,
            app.post("/signup")
                .json(json!({ "email": email, "password": password, "nickname": "ann" }))
                .send()
                .await,
            app.post("/password-reset")
                .json(json!({ "email": email }))
                .send()
                .await,
            app.get(&format!("/check-duplicate/email/{email}"))
                .send()
                .await,
        ];
        for answer in answers {
            let problem = answer.problem(StatusCode::BAD_REQUEST);
            assert_eq!(
                problem["errors"]["email"][0], "must be at most 254 characters",
                "{problem}"
            );
        }
    }
}

// ---- A mail server that stalls ----

/// An SMTP server that accepts connections and never says a word; its address.
async fn silent_smtp_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = listener.accept().await {
            held.push(connection);
        }
    });
    address
}

/// Found by review: lettre bounds only the connection, so an SMTP server that accepted
/// and then stalled held the sign-up waiting on its verification mail for ever.
#[tokio::test]
async fn a_stalled_mail_server_does_not_hold_a_sign_up() {
    let smtp = format!("smtp://{}", silent_smtp_server().await);
    let app = TestApp::with_args(&[
        "--mail-transport",
        "smtp",
        "--smtp-url",
        &smtp,
        "--mail-timeout",
        "1s",
    ])
    .await;
    let res = app
        .post("/signup")
        .json(json!({"email": "ann@example.com", "password": crate::common::PASSWORD, "nickname": "ann"}))
        .send()
        .await;
    assert_eq!(
        res.status,
        StatusCode::CREATED,
        "the account is recorded; the mail is logged as not sent: {}",
        res.text()
    );
}

/// Found by review: each password-reset mail was a background task of its own, with no
/// bound, so against a stalled mail server a flood of reset requests piled up tasks and
/// connections. Past `RESET_MAILS_IN_FLIGHT` a reset mail is dropped (the answer, 202,
/// never tells whether one went out).
#[tokio::test]
async fn reset_mails_being_sent_at_once_are_bounded() {
    // Ann signs up where mail goes to files; the server under test mails through a
    // mail server that never answers, so the mails it sends stay in flight.
    let signed_up = TestApp::spawn().await;
    signed_up.sign_up("ann@example.com", "ann").await;
    let smtp = format!("smtp://{}", silent_smtp_server().await);
    let app = TestApp::on_database(
        &signed_up.stack.database_url,
        &[
            "--mail-transport",
            "smtp",
            "--smtp-url",
            &smtp,
            "--mail-timeout",
            "10m",
            "--reset-mails-in-flight",
            "2",
        ],
        false,
    )
    .await;
    for _ in 0..3 {
        let res = app
            .post("/password-reset")
            .json(json!({ "email": "ann@example.com" }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{}", res.text());
    }
    let links: i64 = sqlx::query_scalar("SELECT count(*) FROM password_resets")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(links, 2, "the third mail was dropped, and left no link");
}

// ---- Queries waiting on `Event-Position` ----

/// GET /board/categories carrying `position`.
async fn categories_at(app: &TestApp, position: &str) -> crate::common::Res {
    app.get("/board/categories")
        .header("event-position", position)
        .send()
        .await
}

/// Waits until `app`'s shared poll has `count` queries waiting.
async fn until_waiting(app: &TestApp, count: usize) {
    let waiting = timeout(HANG, async {
        while app.state.read_waits.stats().waiting != count {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        waiting.is_ok(),
        "{:?} after {HANG:?}, not {count} waiting",
        app.state.read_waits.stats()
    );
}

/// An application on its own read models, where no projector ever runs: a position the
/// event store has is never shown there.
async fn without_projector(flags: &[&str]) -> TestApp {
    let read_url = crate::pipeline::fresh_read_database().await;
    let mut args = vec!["--read-database-url", read_url.as_str()];
    args.extend_from_slice(flags);
    TestApp::with_args(&args).await
}

/// Before, a position no write ever produced waited out READ_WAIT_TIMEOUT, then 503.
#[tokio::test]
async fn a_position_of_an_aggregate_the_store_never_recorded_is_a_412() {
    let app = without_projector(&[]).await;
    let never = format!("post:{}:1", uuid::Uuid::now_v7());
    let problem = categories_at(&app, &never)
        .await
        .problem(StatusCode::PRECONDITION_FAILED);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&never) && detail.contains("never recorded"),
        "{problem}"
    );
    assert_eq!(app.state.read_waits.stats().waiting, 0);
}

/// Found by schemathesis: the wait came first, so a request wrong in its path or query
/// was answered 412 (or waited) for its position instead of 400 for its mistake.
#[tokio::test]
async fn a_malformed_query_is_refused_before_its_position_is_looked_at() {
    let app = without_projector(&[]).await;
    let never = format!("post:{}:1", uuid::Uuid::now_v7());
    for path in [
        "/board/posts/not-an-id/content".to_string(),
        format!("/board/posts/{}/comments?size=0", uuid::Uuid::now_v7()),
    ] {
        app.get(&path)
            .header("event-position", &never)
            .send()
            .await
            .problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn a_position_past_the_aggregates_last_version_is_a_412_naming_it() {
    let app = without_projector(&[]).await;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let beyond = format!("category:{category}:2");
    // The first position is one the store has: the one it cannot reach is named.
    let problem = categories_at(&app, &format!("category:{category}:1, {beyond}"))
        .await
        .problem(StatusCode::PRECONDITION_FAILED);
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains(&beyond) && detail.contains("last version, 1"),
        "{problem}"
    );
}

/// Before, each waiting query read MySQL every 10 ms for itself: 200 of them made 200
/// reads a round, each on a connection of the read pool.
#[tokio::test]
async fn many_waiting_queries_share_one_poll_and_are_all_answered_when_the_projector_comes() {
    let pipeline = Pipeline::new(2).await;
    let _relay = pipeline.start_relay();
    let app = &pipeline.app;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let mut posts = Vec::new();
    for _ in 0..10 {
        posts.push(app.post_in(&admin, &category).await);
    }
    let queries: Vec<_> = (0..200)
        .map(|i| {
            let (app, post) = (app.clone(), posts[i % posts.len()].clone());
            tokio::spawn(async move {
                app.get(&format!("/board/posts/{post}/content"))
                    .header("event-position", &format!("post:{post}:1"))
                    .send()
                    .await
            })
        })
        .collect();
    until_waiting(app, 200).await;

    let _projector = pipeline.start_projector();
    for query in queries {
        let res = query.await.unwrap();
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.json()["title"], "Hello");
    }
    let stats = app.state.read_waits.stats();
    assert_eq!(stats.waiting, 0);
    assert_eq!(
        stats.largest_read, 10,
        "one read asked for every post: {stats:?}"
    );
    assert!(
        stats.reads <= stats.polls,
        "one read of posts_view a round, whatever the number waiting: {stats:?}"
    );
}

#[tokio::test]
async fn past_max_read_waiters_one_more_waiting_query_gets_503_at_once() {
    let app = without_projector(&["--max-read-waiters", "2", "--read-wait-timeout", "10m"]).await;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    // Recorded, so it is waited for; never projected, so the wait lasts.
    let position = format!("category:{category}:1");
    let held: Vec<_> = (0..2)
        .map(|_| {
            let (app, position) = (app.clone(), position.clone());
            tokio::spawn(async move { categories_at(&app, &position).await })
        })
        .collect();
    until_waiting(&app, 2).await;

    let turned_away = timeout(HANG, categories_at(&app, &position))
        .await
        .unwrap_or_else(|_| panic!("the third waiter still waited after {HANG:?}"));
    let problem = turned_away.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "urn:board:problem:too-many-waiting");
    assert_eq!(turned_away.header("retry-after"), Some("1"));
    // A query that waits for nothing is not held back by the bound.
    let res = app.get("/board/categories").send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    // Clients that go away leave their place.
    for query in held {
        query.abort();
    }
    until_waiting(&app, 0).await;
}

/// Queries keep answering from MySQL while PostgreSQL is away: a position the read models
/// show is answered, and one they do not is waited for as before (503 at the bound), since
/// the store cannot say whether it will come.
#[tokio::test]
async fn with_the_event_store_away_positions_are_waited_for_as_before() {
    let pipeline = Pipeline::new(1).await;
    pipeline.seed_and_project().await;
    let (category, version): (String, i64) =
        sqlx::query_as("SELECT category_id, version FROM categories_view")
            .fetch_one(&pipeline.read_pool)
            .await
            .unwrap();
    let offline = TestApp::on_database(
        "postgres://board:board@127.0.0.1:1/board",
        &[
            "--read-database-url",
            &pipeline.read_url,
            "--read-wait-timeout",
            "1s",
        ],
        false,
    )
    .await;
    let shown = categories_at(&offline, &format!("category:{category}:{version}")).await;
    assert_eq!(shown.status, StatusCode::OK, "{}", shown.text());
    assert_eq!(shown.json()["categories"][0]["name"], "Rust");
    let problem = categories_at(&offline, &format!("post:{}:1", uuid::Uuid::now_v7()))
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(problem["type"], "urn:board:problem:not-caught-up");
}
