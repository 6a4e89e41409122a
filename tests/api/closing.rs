//! Closing an account (`DELETE /account`): the password is confirmed, every session ends,
//! the account can no longer log in, its address is free again, and its posts and comments
//! stay, their author shown as a closed account with no nickname, live and after a rebuild.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::PASSWORD;
use crate::pipeline::Pipeline;

#[tokio::test]
async fn closing_an_account_ends_its_sessions_frees_its_address_and_keeps_its_posts() {
    let pipeline = Pipeline::new(1).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let app = &pipeline.app;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let ann = app.member("ann@example.com", "ann").await;
    let post = app.post_in(&ann, &category).await;
    let comment = app
        .post(&format!("/board/posts/{post}/comments"))
        .bearer(&ann.token)
        .json(json!({ "content": "Me again" }))
        .send()
        .await;
    assert_eq!(comment.status, StatusCode::CREATED, "{}", comment.text());

    let close = |password: &str| {
        app.delete("/account")
            .bearer(&ann.token)
            .json(json!({ "password": password }))
    };
    close("not my password")
        .send()
        .await
        .problem(StatusCode::FORBIDDEN);
    let closed = close(PASSWORD).send().await;
    assert_eq!(closed.status, StatusCode::NO_CONTENT, "{}", closed.text());
    close(PASSWORD).send().await.problem(StatusCode::NOT_FOUND);

    app.log_in_with("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.get("/refresh")
        .bearer(&ann.refresh)
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let again = app.sign_up("ann@example.com", "ann").await;
    assert_ne!(again, ann.id, "the address is free for a new account");

    // The read model equals a rebuild from the event store, and shows the posts.
    pipeline.converged().await;
    let closed_author =
        json!({ "accountId": ann.id.to_string(), "nickname": null, "closed": true });
    let content = app
        .get(&format!("/board/posts/{post}/content"))
        .send()
        .await;
    assert_eq!(content.status, StatusCode::OK, "{}", content.text());
    assert_eq!(content.json()["author"], closed_author);
    let comments = app
        .get(&format!("/board/posts/{post}/comments"))
        .send()
        .await;
    assert_eq!(comments.json()["comments"][0]["author"], closed_author);
    let list = app
        .get(&format!("/board/categories/{category}/posts"))
        .send()
        .await;
    assert_eq!(list.json()["posts"][0]["author"], closed_author);
    // An open account's author has no `closed` key at all.
    let admin_post = app.post_in(&admin, &category).await;
    pipeline.converged().await;
    let open = app
        .get(&format!("/board/posts/{admin_post}/content"))
        .send()
        .await;
    assert_eq!(
        open.json()["author"],
        json!({ "accountId": open.json()["author"]["accountId"], "nickname": "admin" })
    );

    let reasons: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT end_reason FROM sessions WHERE account_id = $1")
            .bind(ann.id)
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(reasons, ["account closed"]);
}
