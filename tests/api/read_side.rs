//! The whole pipeline through HTTP: command, event, Kafka, MySQL, query.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::{TestApp, ADMIN_EMAIL};
use crate::pipeline::{fresh_read_database, Pipeline};

/// GET `path`, waiting for the read model to reach `position`.
async fn read(app: &TestApp, path: &str, position: Option<&str>) -> Value {
    let mut req = app.get(path);
    if let Some(position) = position {
        req = req.header("event-position", position);
    }
    let res = req.send().await;
    assert_eq!(res.status, StatusCode::OK, "GET {path}: {}", res.text());
    res.json()
}

#[tokio::test]
async fn the_full_client_flow_is_seen_through_the_query_api() {
    let pipeline = Pipeline::new(3).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let app = &pipeline.app;

    let admin = app.admin().await;
    let ann = app.member("ann@example.com", "ann").await;
    let res = app
        .post("/board/categories")
        .bearer(&admin.token)
        .json(json!({ "name": "Rust", "description": "All things Rust" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let category = res.json()["categoryId"].as_str().unwrap().to_string();
    let position = res.header("event-position").unwrap().to_string();
    let categories = read(app, "/board/categories", Some(&position)).await;
    assert_eq!(categories["categories"][0]["name"], "Rust");
    assert_eq!(categories["categories"][0]["postCount"], 0);

    let res = app
        .post(&format!("/board/categories/{category}/posts"))
        .bearer(&ann.token)
        .json(json!({ "title": "Hello", "content": "First post" }))
        .send()
        .await;
    let post = res.json()["postId"].as_str().unwrap().to_string();
    let position = res.header("event-position").unwrap().to_string();
    let content = read(
        app,
        &format!("/board/posts/{post}/content"),
        Some(&position),
    )
    .await;
    assert_eq!(content["title"], "Hello");
    assert_eq!(content["content"], "First post");
    assert_eq!(content["author"]["nickname"], "ann");
    assert_eq!(content["commentCount"], 0);
    let created_at = content["createdAt"].as_str().unwrap();
    assert!(
        created_at.ends_with('Z') && created_at.len() == 24,
        "{created_at}"
    );

    let res = app
        .post(&format!("/board/posts/{post}/comments"))
        .bearer(&admin.token)
        .json(json!({ "content": "Welcome" }))
        .send()
        .await;
    let comment = res.json()["commentId"].as_str().unwrap().to_string();
    let position = res.header("event-position").unwrap().to_string();
    let comments = read(
        app,
        &format!("/board/posts/{post}/comments"),
        Some(&position),
    )
    .await;
    assert_eq!(comments["comments"][0]["content"], "Welcome");
    assert_eq!(comments["comments"][0]["author"]["nickname"], "admin");
    assert_eq!(comments["nextCursor"], Value::Null);
    let posts = read(app, &format!("/board/categories/{category}/posts"), None).await;
    assert_eq!(posts["posts"][0]["commentCount"], 1);
    assert_eq!(
        read(app, "/board/categories", None).await["categories"][0]["postCount"],
        1
    );

    let res = app
        .patch(&format!("/board/posts/{post}"))
        .bearer(&ann.token)
        .json(json!({ "title": "Hello, edited" }))
        .send()
        .await;
    let position = res.header("event-position").unwrap().to_string();
    let content = read(
        app,
        &format!("/board/posts/{post}/content"),
        Some(&position),
    )
    .await;
    assert_eq!(content["title"], "Hello, edited");

    let res = app
        .delete(&format!("/board/comments/{comment}"))
        .bearer(&ann.token)
        .send()
        .await;
    res.problem(StatusCode::FORBIDDEN);
    let res = app
        .delete(&format!("/board/comments/{comment}"))
        .bearer(&admin.token)
        .send()
        .await;
    let position = res.header("event-position").unwrap().to_string();
    let comments = read(
        app,
        &format!("/board/posts/{post}/comments"),
        Some(&position),
    )
    .await;
    assert_eq!(comments["comments"], json!([]));

    let res = app
        .delete(&format!("/board/posts/{post}"))
        .bearer(&ann.token)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    let position = res.header("event-position").unwrap().to_string();
    app.get(&format!("/board/posts/{post}/content"))
        .header("event-position", &position)
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get(&format!("/board/posts/{post}/comments"))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    let posts = read(app, &format!("/board/categories/{category}/posts"), None).await;
    assert_eq!(posts["posts"], json!([]));
    assert_eq!(
        read(app, "/board/categories", None).await["categories"][0]["postCount"],
        0
    );
    let _ = ADMIN_EMAIL;
    pipeline.converged().await;
}

#[tokio::test]
async fn lists_page_by_cursor_without_gaps_or_repeats() {
    let pipeline = Pipeline::new(2).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let app = &pipeline.app;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let mut created = Vec::new();
    let mut position = String::new();
    for i in 0..7 {
        let res = app
            .post(&format!("/board/categories/{category}/posts"))
            .bearer(&admin.token)
            .json(json!({ "title": format!("Post {i}"), "content": "x" }))
            .send()
            .await;
        created.push(res.json()["postId"].as_str().unwrap().to_string());
        if !position.is_empty() {
            position.push(',');
        }
        position.push_str(res.header("event-position").unwrap());
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/board/categories/{category}/posts?size=3"),
            Some(c) => format!("/board/categories/{category}/posts?size=3&cursor={c}"),
        };
        let page = read(app, &path, Some(position.trim_end_matches(','))).await;
        for post in page["posts"].as_array().unwrap() {
            seen.push(post["postId"].as_str().unwrap().to_string());
        }
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    created.reverse();
    assert_eq!(seen, created, "newest first, each once");
    for bad in ["size=0", "size=101", "size=abc", "cursor=nope"] {
        app.get(&format!("/board/categories/{category}/posts?{bad}"))
            .send()
            .await
            .problem(StatusCode::BAD_REQUEST);
    }
    app.get(&format!("/board/categories/{}/posts", uuid::Uuid::now_v7()))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    // A category without posts is an empty page, not a missing category.
    let res = app
        .post("/board/categories")
        .bearer(&admin.token)
        .json(json!({ "name": "Empty", "description": "Nothing yet" }))
        .send()
        .await;
    let (empty, position) = (
        res.json()["categoryId"].as_str().unwrap().to_string(),
        res.header("event-position").unwrap().to_string(),
    );
    let res = app
        .get(&format!("/board/categories/{empty}/posts"))
        .header("event-position", &position)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.json()["posts"], json!([]));
}

#[tokio::test]
async fn a_query_that_cannot_catch_up_says_so_instead_of_answering_stale() {
    // No relay or projector runs: the read model never reaches the position.
    let read_url = fresh_read_database().await;
    let app = TestApp::with_args(&[
        "--read-database-url",
        &read_url,
        "--read-wait-timeout",
        "200ms",
    ])
    .await;
    let admin = app.admin().await;
    let res = app
        .post("/board/categories")
        .bearer(&admin.token)
        .json(json!({ "name": "Rust" }))
        .send()
        .await;
    let position = res.header("event-position").unwrap().to_string();
    let stale = app
        .get("/board/categories")
        .header("event-position", &position)
        .send()
        .await;
    stale.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(stale.header("retry-after"), Some("1"));
    app.get("/board/categories")
        .header("event-position", "garbage")
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn commands_are_accepted_with_the_broker_and_mysql_down() {
    // Nothing listens on port 1: the relay and projector retry, commands do not notice.
    let app = TestApp::with_args(&[
        "--kafka-brokers",
        "127.0.0.1:1",
        "--read-database-url",
        "mysql://board:board@127.0.0.1:1/none",
    ])
    .await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let relay = tokio::spawn(app.state.relay().run(stopped));
    let admin = app.admin().await;
    app.category(&admin, "Rust").await;
    app.get("/board/categories")
        .send()
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
    let _ = stop.send(true);
    relay.await.unwrap();
}

#[tokio::test]
async fn queries_answer_from_mysql_while_postgresql_is_down() {
    let pipeline = Pipeline::new(1).await;
    pipeline.seed_and_project().await;
    // The same read models behind an application whose PostgreSQL is unreachable.
    let offline = TestApp::on_database(
        "postgres://board:board@127.0.0.1:1/board",
        &["--read-database-url", &pipeline.read_url],
        false,
    )
    .await;
    let categories = read(&offline, "/board/categories", None).await;
    assert_eq!(categories["categories"][0]["name"], "Rust");
    offline
        .post("/signup")
        .json(json!({ "email": "x@example.com", "password": "long enough", "nickname": "xx" }))
        .send()
        .await
        .problem(StatusCode::SERVICE_UNAVAILABLE);
}

/// A query that cannot reach MySQL says so: the read models are away, not the event
/// store (which once answered for every database error), and commands go on meanwhile.
#[tokio::test]
async fn a_query_without_mysql_says_the_read_models_are_away() {
    let app = TestApp::with_args(&[
        "--read-database-url",
        "mysql://board:board@127.0.0.1:1/board_read",
    ])
    .await;
    let res = app.get("/board/categories").send().await;
    assert_eq!(res.header("retry-after"), Some("1"), "{}", res.text());
    let problem = res.problem(StatusCode::SERVICE_UNAVAILABLE);
    let detail = problem["detail"].as_str().unwrap();
    assert!(detail.contains("read models"), "{detail}");
    assert!(!detail.contains("event store"), "{detail}");
    app.sign_up("y@example.com", "yy").await;
}

#[tokio::test]
async fn metrics_show_requests_commands_and_lag() {
    let pipeline = Pipeline::new(2).await;
    pipeline.seed_and_project().await;
    let stored = pipeline.stored_events().await;
    {
        let _relay = pipeline.start_relay();
        pipeline.wait_until_relayed(stored).await;
    }
    let res = pipeline
        .app
        .get("/metrics")
        .header("accept", "text/plain")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let text = res.text();
    for expected in [
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/board/categories\",status=\"201\"",
        "board_commands_total{aggregate=\"category\",outcome=\"accepted\"}",
        &format!("board_relay_lag_events{{relay=\"relay:{}\"}} 0", pipeline.topic),
        "board_status_up 1",
        "board_projector_lag_events{projector=\"read-models\",partition=\"0\"} 0",
        "board_projector_lag_seconds{projector=\"read-models\",partition=\"1\"}",
    ] {
        assert!(text.contains(expected), "missing {expected} in:\n{text}");
    }
}

/// Lag is measured at each scrape, by each server, against its own stores. A second
/// server in the same process, on the same stores but unable to reach the broker, must
/// not report the first one's figures as its own: with the lag kept in the process-wide
/// recorder it did, claiming a caught-up projector nobody could measure.
#[tokio::test]
async fn a_server_reports_only_the_lag_it_measured() {
    let pipeline = Pipeline::new(2).await;
    pipeline.seed_and_project().await;
    let scrape = |app: &TestApp| {
        let req = app.get("/metrics").header("accept", "text/plain").send();
        async move { req.await.text() }
    };
    let lag_lines = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| line.starts_with("board_projector_lag_"))
            .map(str::to_string)
            .collect()
    };
    let measured = scrape(&pipeline.app).await;
    assert!(measured.contains("board_status_up 1"), "{measured}");
    assert_eq!(
        lag_lines(&measured).len(),
        4,
        "two partitions, two gauges:\n{measured}"
    );

    let blind = TestApp::on_database(
        &pipeline.database_url,
        &[
            "--read-database-url",
            &pipeline.read_url,
            "--kafka-brokers",
            "127.0.0.1:1",
            "--kafka-topic",
            &pipeline.topic,
        ],
        false,
    )
    .await;
    let unmeasured = scrape(&blind).await;
    assert_eq!(lag_lines(&unmeasured), Vec::<String>::new(), "{unmeasured}");
    // What the stores know is still reported while the broker is away.
    assert!(unmeasured.contains("board_status_up 1"), "{unmeasured}");
    assert!(
        unmeasured.contains("board_relay_lag_events{relay="),
        "{unmeasured}"
    );
}

/// GET /health/ready as JSON.
async fn readiness(app: &TestApp) -> (StatusCode, Value) {
    let res = app.get("/health/ready").send().await;
    (res.status, res.json())
}

/// A partition that is behind while nobody keeps up with it shows everywhere an
/// operator looks: readiness (degraded, still 200), `board projections status` and
/// `/metrics`. Once a projector takes it over, it clears.
#[tokio::test]
async fn a_partition_nobody_keeps_up_with_is_reported_until_a_projector_takes_it() {
    let pipeline = Pipeline::new(2).await;
    let _relay = pipeline.start_relay();
    let admin = pipeline.app.admin().await;
    pipeline.app.category(&admin, "Rust").await;
    let stored = pipeline.stored_events().await;
    pipeline.wait_until_relayed(stored).await;
    // A member that holds every lease and is alive, but never applies anything: the
    // wedge that the group coordinator of Tansu 0.6.0 left behind, in lease form.
    for partition in 0..2 {
        sqlx::query(
            "INSERT INTO partition_leases (member_group, topic, partition_id, holder, expires_at, active_at)
             VALUES (?, ?, ?, 'wedged', NOW(3) + INTERVAL 1 HOUR, NOW(3) - INTERVAL 1 HOUR)",
        )
        .bind(&pipeline.group)
        .bind(&pipeline.topic)
        .bind(partition)
        .execute(&pipeline.read_pool)
        .await
        .unwrap();
    }

    let (status, body) = readiness(&pipeline.app).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "degraded", "{body}");
    assert_eq!(body["checks"]["readModels"], "stalled", "{body}");
    let (code, table) = pipeline.run_board(&["projections", "status"]).await;
    assert_eq!(code, 0);
    assert!(
        table.contains("stalled") && table.contains("wedged"),
        "{table}"
    );
    let metrics = pipeline
        .app
        .get("/metrics")
        .header("accept", "text/plain")
        .send()
        .await
        .text();
    // The three events went where their keys hash: at least one partition is behind.
    assert!(
        metrics.lines().any(
            |line| line.starts_with("board_projector_partition_stalled{") && line.ends_with(" 1")
        ),
        "{metrics}"
    );

    // The wedged member goes away (its lease runs out); a projector takes over.
    sqlx::query("UPDATE partition_leases SET expires_at = NOW(3) WHERE holder = 'wedged'")
        .execute(&pipeline.read_pool)
        .await
        .unwrap();
    let _projector = pipeline.start_projector();
    pipeline.converged().await;
    let mut body = Value::Null;
    for _ in 0..100 {
        body = readiness(&pipeline.app).await.1;
        if body["status"] == "ok" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(body["checks"]["readModels"], "up", "{body}");
    let (code, json) = pipeline
        .run_board(&["projections", "status", "--json"])
        .await;
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&json).unwrap();
    for partition in status["projectors"].as_array().unwrap() {
        assert_eq!(partition["state"], "caught-up", "{status:#}");
        assert!(partition["holder"].is_string(), "{status:#}");
    }
}

/// A Board at rest stays ready: its idle projector, which stops fetching, still shows
/// that it keeps up (it checks the partitions' ends), so readiness never turns to
/// `stalled`, and the broker keeps answering.
#[tokio::test]
async fn an_idle_pipeline_stays_ready() {
    let pipeline = Pipeline::new(3).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    pipeline.seed_and_project().await;
    // Longer than a stall takes to be reported if the idle projector showed no sign of
    // keeping up (`status::STALLED_AFTER`).
    let until = std::time::Instant::now()
        + board::status::STALLED_AFTER
        + std::time::Duration::from_secs(5);
    let mut asked = 0;
    while std::time::Instant::now() < until {
        let (status, body) = readiness(&pipeline.app).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_ne!(body["checks"]["broker"], "down", "{body}");
        assert_eq!(body["checks"]["readModels"], "up", "{body}");
        asked += 1;
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(asked > 0);
}
