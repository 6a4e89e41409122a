//! Closing an account (`DELETE /account`): the password is confirmed, every session ends,
//! the account can no longer log in, its address is free again, and its posts and comments
//! stay, their author shown as a closed account with no nickname, live and after a rebuild.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::common::{TestApp, PASSWORD};
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

/// What a closing deletes after its event, as it stood before: put back, it is what a
/// closing that failed after its event leaves behind.
struct Secrets {
    password_hash: String,
    data_key: Vec<u8>,
    session: Uuid,
}

impl Secrets {
    async fn of(app: &TestApp, account: Uuid) -> Self {
        let pool = &app.pool;
        Self {
            password_hash: sqlx::query_scalar(
                "SELECT password_hash FROM account_credentials WHERE account_id = $1",
            )
            .bind(account)
            .fetch_one(pool)
            .await
            .unwrap(),
            data_key: sqlx::query_scalar(
                "SELECT data_key FROM personal_data_keys WHERE account_id = $1",
            )
            .bind(account)
            .fetch_one(pool)
            .await
            .unwrap(),
            session: sqlx::query_scalar(
                "SELECT session_id FROM sessions WHERE account_id = $1 AND ended_at IS NULL",
            )
            .bind(account)
            .fetch_one(pool)
            .await
            .unwrap(),
        }
    }

    async fn put_back(&self, app: &TestApp, account: Uuid) {
        let pool = &app.pool;
        sqlx::query("INSERT INTO account_credentials (account_id, password_hash) VALUES ($1, $2)")
            .bind(account)
            .bind(&self.password_hash)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("INSERT INTO personal_data_keys (account_id, data_key) VALUES ($1, $2)")
            .bind(account)
            .bind(&self.data_key)
            .execute(pool)
            .await
            .unwrap();
        sqlx::query("UPDATE sessions SET ended_at = NULL, end_reason = NULL WHERE session_id = $1")
            .bind(self.session)
            .execute(pool)
            .await
            .unwrap();
    }
}

/// How many of the account's key, password and open sessions are left.
async fn left_of(app: &TestApp, account: Uuid) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM account_credentials WHERE account_id = $1)
              + (SELECT count(*) FROM personal_data_keys WHERE account_id = $1)
              + (SELECT count(*) FROM sessions WHERE account_id = $1 AND ended_at IS NULL)",
    )
    .bind(account)
    .fetch_one(&app.pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_closing_that_stopped_after_its_event_is_finished_by_a_retry_or_by_the_purge() {
    let app = TestApp::spawn().await;
    let ann = app.member("ann@example.com", "ann").await;
    let bob = app.member("bob@example.com", "bob").await;
    for member in [&ann, &bob] {
        let secrets = Secrets::of(&app, member.id).await;
        let closed = app
            .delete("/account")
            .bearer(&member.token)
            .json(json!({ "password": PASSWORD }))
            .send()
            .await;
        assert_eq!(closed.status, StatusCode::NO_CONTENT, "{}", closed.text());
        assert_eq!(left_of(&app, member.id).await, 0);
        secrets.put_back(&app, member.id).await;
        assert_eq!(left_of(&app, member.id).await, 3);
    }

    // Ann asks again: her closing is finished, and the answer is the closing's.
    let again = app
        .delete("/account")
        .bearer(&ann.token)
        .json(json!({ "password": PASSWORD }))
        .send()
        .await;
    assert_eq!(again.status, StatusCode::NO_CONTENT, "{}", again.text());
    assert_eq!(left_of(&app, ann.id).await, 0);
    // The account stays closed: the address does not log in.
    app.log_in_with("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);

    // Bob never asks again: the purge finishes his once the closing is a minute old.
    sqlx::query(
        "UPDATE events SET recorded_at = recorded_at - interval '2 minutes'
          WHERE aggregate_id = $1 AND event_type = 'AccountClosed'",
    )
    .bind(bob.id.to_string())
    .execute(&app.pool)
    .await
    .unwrap();
    crate::jobs::one_round(&app).await;
    assert_eq!(left_of(&app, bob.id).await, 0);
    app.get("/refresh")
        .bearer(&bob.refresh)
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
}
