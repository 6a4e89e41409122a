//! Aggregates with long histories load from their snapshot and the events after it
//! (`store::aggregate_loader`), and a snapshot the code cannot trust is never used.

use axum::http::StatusCode;
use serde_json::{json, Value};

use crate::common::{Board, Member, TestApp};

/// Edits `post`'s content and returns the answer's title and version.
async fn edit_content(
    app: &TestApp,
    author: &Member,
    post: &str,
    content: &str,
) -> (Value, String) {
    let res = app
        .patch(&format!("/board/posts/{post}"))
        .bearer(&author.token)
        .json(json!({ "content": content }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    let etag = res.header("etag").unwrap().to_string();
    (res.json()["title"].clone(), etag)
}

async fn snapshot_of(app: &TestApp, post: &str) -> (i64, String, Value) {
    sqlx::query_as(
        "SELECT sequence, schema, payload FROM snapshots
          WHERE aggregate_type = 'post' AND aggregate_id = $1",
    )
    .bind(post)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_long_history_loads_from_its_snapshot_and_an_untrusted_snapshot_is_replayed_over() {
    let app = TestApp::spawn().await;
    let Board { ann, post, .. } = app.with_post().await;
    // 150 edits of the title, written straight into the store as the post's own edits
    // would record them: a history from before snapshots existed.
    testkit::history::append_title_edits(&app.pool, &post, 150)
        .await
        .unwrap();

    // The first command replays the whole history, then keeps a snapshot of the result.
    let (title, etag) = edit_content(&app, &ann, &post, "one").await;
    assert_eq!((title, etag.as_str()), (json!("Edit 151"), "\"152\""));
    let (sequence, schema, state) = snapshot_of(&app, &post).await;
    assert_eq!((sequence, schema.as_str()), (152, "post.1"));
    assert_eq!(
        (&state["title"], &state["content"]),
        (&json!("Edit 151"), &json!("one"))
    );

    // The next one starts from the snapshot: what the snapshot says is what it sees.
    sqlx::query(
        "UPDATE snapshots SET payload = jsonb_set(payload, '{title}', '\"From the snapshot\"')",
    )
    .execute(&app.pool)
    .await
    .unwrap();
    let (title, etag) = edit_content(&app, &ann, &post, "two").await;
    assert_eq!(
        (title, etag.as_str()),
        (json!("From the snapshot"), "\"153\"")
    );

    // A snapshot of another schema is ignored: the history is replayed, and a snapshot
    // of the current schema replaces it.
    sqlx::query("UPDATE snapshots SET schema = 'post.0'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (title, etag) = edit_content(&app, &ann, &post, "three").await;
    assert_eq!((title, etag.as_str()), (json!("Edit 151"), "\"154\""));
    let (sequence, schema, state) = snapshot_of(&app, &post).await;
    assert_eq!((sequence, schema.as_str()), (154, "post.1"));
    assert_eq!(state["content"], "three");

    // So is one of the current schema that does not read as the current state.
    sqlx::query("UPDATE snapshots SET payload = '{\"title\": 5}'")
        .execute(&app.pool)
        .await
        .unwrap();
    let (title, etag) = edit_content(&app, &ann, &post, "four").await;
    assert_eq!((title, etag.as_str()), (json!("Edit 151"), "\"155\""));
    assert_eq!(snapshot_of(&app, &post).await.0, 155);

    // A command on another aggregate that looks the post up reads it the same way.
    let res = app
        .post(&format!("/board/posts/{post}/comments"))
        .bearer(&ann.token)
        .json(json!({ "content": "Still here" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
}
