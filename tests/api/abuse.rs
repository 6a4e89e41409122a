//! Hostile and careless clients: what one client does must not take Board down, or
//! grow it without bound, for the others.

use axum::http::{Method, StatusCode};
use serde_json::{json, Value};

use crate::common::TestApp;
use crate::pipeline::Pipeline;

/// Every made-up method would be a new label value of the request histogram, kept for
/// the life of the process: 300 of them grew `/metrics` by 4,500 lines.
#[tokio::test]
async fn made_up_methods_do_not_mint_metric_series() {
    let app = TestApp::spawn().await;
    for i in 0..300 {
        let method = Method::from_bytes(format!("X{i}Y").as_bytes()).unwrap();
        let res = app.request(method, "/board/categories").send().await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{}", res.text());
    }
    let metrics = app
        .get("/metrics")
        .header("accept", "text/plain")
        .send()
        .await
        .text();
    let minted: Vec<&str> = metrics
        .lines()
        .filter(|line| line.contains("method=\"X"))
        .collect();
    assert!(
        minted.is_empty(),
        "{} series name a made-up method, e.g. {:?}",
        minted.len(),
        minted.first()
    );
    assert!(
        metrics.contains("method=\"other\",route=\"/board/categories\",status=\"405\""),
        "made-up methods are counted as `other`"
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

/// `board_projector_quarantined_events` as `/metrics` reports it now.
async fn quarantined_metric(app: &TestApp) -> f64 {
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
