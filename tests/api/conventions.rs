//! The contract's conventions, which every endpoint shares.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::TestApp;

#[tokio::test]
async fn root_answers_hello_world_as_text() {
    let app = TestApp::spawn().await;
    let res = app.get("/").send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.text(), "Hello World");
    assert!(res
        .header("content-type")
        .unwrap()
        .starts_with("text/plain"));
}

#[tokio::test]
async fn a_body_that_is_not_json_gets_415() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/signup")
        .raw("text/plain", b"email=a@b.co".to_vec())
        .send()
        .await;
    res.problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
}

#[tokio::test]
async fn an_accept_header_that_rules_out_json_gets_406() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/signup")
        .header("accept", "text/html")
        .json(json!({}))
        .send()
        .await;
    res.problem(StatusCode::NOT_ACCEPTABLE);
    let ok = app
        .get("/check-duplicate/email/a@b.co")
        .header("accept", "text/html, application/json;q=0.5")
        .send()
        .await;
    assert_eq!(ok.status, StatusCode::OK);
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_and_records_nothing() {
    let app = TestApp::spawn().await;
    let big = "x".repeat(board::http::body::MAX_BODY_BYTES + 1);
    let res = app
        .post("/signup")
        .json(json!({ "email": "a@b.co", "password": big, "nickname": "ann" }))
        .send()
        .await;
    res.problem(StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn malformed_json_and_non_objects_get_400() {
    let app = TestApp::spawn().await;
    for body in [&b"{\"email\": "[..], b"[1, 2]", b"\"text\""] {
        let res = app
            .post("/signup")
            .raw("application/json", body.to_vec())
            .send()
            .await;
        res.problem(StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_documents() {
    let app = TestApp::spawn().await;
    app.get("/no/such/thing")
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    app.delete("/signup")
        .send()
        .await
        .problem(StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn the_request_id_and_acting_account_reach_the_event_metadata() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let res = app
        .post("/board/categories")
        .bearer(&admin.token)
        .header("x-request-id", "req-123")
        .header("x-correlation-id", "journey-9")
        .json(json!({ "name": "Rust" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.header("x-request-id"), Some("req-123"));
    let events = app.events().await;
    let (_, event_type, _, metadata) = events.last().unwrap();
    assert_eq!(event_type, "CategoryCreated");
    assert_eq!(metadata["requestId"], "req-123");
    assert_eq!(metadata["correlationId"], "journey-9");
    assert_eq!(metadata["accountId"], admin.id.to_string());
}

#[tokio::test]
async fn a_minted_request_id_is_the_one_in_the_header_and_the_event_metadata() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let res = app
        .post("/board/categories")
        .bearer(&admin.token)
        .json(json!({ "name": "Rust" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let id = res
        .header("x-request-id")
        .expect("a request id")
        .to_string();
    let events = app.events().await;
    let (_, event_type, _, metadata) = events.last().unwrap();
    assert_eq!(event_type, "CategoryCreated");
    assert_eq!(metadata["requestId"], id.as_str());
    // With no correlation id of its own, the request is its own journey.
    assert_eq!(metadata["correlationId"], id.as_str());
}

#[tokio::test]
async fn commands_answer_503_when_postgresql_is_down() {
    // Port 1 on loopback: nothing listens there, so every connection is refused.
    let app = TestApp::on_database("postgres://board:board@127.0.0.1:1/board", &[], false).await;
    let res = app
        .post("/signup")
        .json(json!({ "email": "a@b.co", "password": "long enough", "nickname": "ann" }))
        .send()
        .await;
    res.problem(StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.header("retry-after").is_some());
}

#[tokio::test]
async fn liveness_answers_without_any_dependency() {
    let app = TestApp::on_database("postgres://board:board@127.0.0.1:1/board", &[], false).await;
    let res = app.get("/health/live").send().await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(res.json(), json!({ "status": "ok" }));
}

#[tokio::test]
async fn readiness_reports_each_dependency() {
    // A topic of its own: on the shared default one, events another run published would
    // make the fresh read models look stalled.
    let app = TestApp::built(
        testkit::Stack::for_tests()
            .fresh_read_models()
            .scratch_topic(&testkit::brokers(), 1),
    )
    .await;
    let res = app.get("/health/ready").send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(
        res.json()["checks"],
        json!({ "postgres": "up", "mysql": "up", "broker": "up", "readModels": "up" })
    );
    let degraded = TestApp::on_database(
        "postgres://board:board@127.0.0.1:1/board",
        &["--kafka-brokers", "127.0.0.1:1"],
        false,
    )
    .await;
    let res = degraded.get("/health/ready").send().await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        res.json()["checks"],
        json!({ "postgres": "down", "mysql": "up", "broker": "down", "readModels": "unknown" })
    );
}

#[tokio::test]
async fn every_response_carries_the_security_headers_and_a_request_id() {
    let app = TestApp::spawn().await;
    for res in [
        app.get("/").send().await,
        app.get("/no/such/thing").send().await,
        // Refused before any route runs: the layer answers it itself.
        app.get("/board/categories")
            .header("accept", "text/html")
            .send()
            .await,
    ] {
        let id = res.header("x-request-id").expect("a request id");
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().get_version_num(), 7);
        assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(res.header("x-frame-options"), Some("DENY"));
        assert_eq!(res.header("referrer-policy"), Some("no-referrer"));
        assert!(res.header("content-security-policy").is_some());
    }
}
