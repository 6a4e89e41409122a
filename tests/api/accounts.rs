//! Accounts: sign-up, verification, log-in, refresh, promotion.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{TestApp, PASSWORD};

#[tokio::test]
async fn check_duplicate_says_free_taken_or_malformed() {
    let app = TestApp::spawn().await;
    let res = app
        .get("/check-duplicate/email/ann@example.com")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK);
    assert_eq!(
        res.json(),
        json!({ "email": "ann@example.com", "available": true })
    );
    app.sign_up("ann@example.com", "ann").await;
    app.get("/check-duplicate/email/ANN@example.com")
        .send()
        .await
        .problem(StatusCode::CONFLICT);
    let bad = app.get("/check-duplicate/email/not-an-email").send().await;
    assert!(bad.problem(StatusCode::BAD_REQUEST)["errors"]["email"].is_array());
}

#[tokio::test]
async fn sign_up_records_an_unverified_account_and_mails_a_link() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/signup")
        .json(json!({ "email": "Ann@Example.com", "password": PASSWORD, "nickname": " ann " }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.header("etag"), Some("\"1\""));
    let id = res.json()["accountId"].as_str().unwrap().to_string();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 7);
    let link = app.verification_link("ann@example.com");
    assert!(link.starts_with("http://board.test/verify?verify_id="));
    let events = app.events().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].1, "AccountRegistered");
    // Personal fields are stored sealed with the account's key (see `privacy`).
    let registered = &events[0].2["AccountRegistered"];
    for field in ["email", "nickname"] {
        let stored = registered[field].as_str().unwrap();
        assert!(
            stored.starts_with("pd1:") && !stored.contains("ann"),
            "{stored}"
        );
    }
}

#[tokio::test]
async fn no_password_or_hash_ever_appears_in_an_event() {
    let app = TestApp::spawn().await;
    app.member("ann@example.com", "ann").await;
    for (_, _, payload, metadata) in app.events().await {
        let text = format!("{payload}{metadata}");
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains("argon2"), "{text}");
    }
    let hash: String = sqlx::query_scalar("SELECT password_hash FROM account_credentials")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert!(hash.starts_with("$argon2id$"));
}

#[tokio::test]
async fn sign_up_names_every_bad_field_and_unknown_key() {
    let app = TestApp::spawn().await;
    let res = app
        .post("/signup")
        .json(json!({ "email": "nope", "password": "short", "nickname": 7, "nickName": "x" }))
        .send()
        .await;
    let doc = res.problem(StatusCode::BAD_REQUEST);
    let errors = doc["errors"].as_object().unwrap();
    let mut fields: Vec<_> = errors.keys().cloned().collect();
    fields.sort();
    assert_eq!(fields, ["email", "nickName", "nickname", "password"]);
    let missing = app.post("/signup").json(json!({})).send().await;
    let doc = missing.problem(StatusCode::BAD_REQUEST);
    assert_eq!(doc["errors"]["email"][0], "is required");
    assert_eq!(app.event_count().await, 0);
}

#[tokio::test]
async fn a_taken_email_gets_409_whatever_its_case() {
    let app = TestApp::spawn().await;
    // Verified: a sign-up nobody verified would be replaced instead (see `ownership`).
    app.member("ann@example.com", "ann").await;
    let res = app
        .post("/signup")
        .json(json!({ "email": "ANN@example.com", "password": PASSWORD, "nickname": "ann2" }))
        .send()
        .await;
    res.problem(StatusCode::CONFLICT);
    let orphans: i64 = sqlx::query_scalar("SELECT count(*) FROM account_credentials")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(orphans, 1, "the loser's credentials are not kept");
}

#[tokio::test]
async fn twenty_racing_sign_ups_for_one_email_make_exactly_one_account() {
    let app = TestApp::spawn().await;
    let attempts = (0..20).map(|i| {
        app.post("/signup")
            .json(json!({ "email": "race@example.com", "password": PASSWORD, "nickname": format!("racer{i}") }))
            .send()
    });
    let results = futures::future::join_all(attempts.map(tokio::spawn)).await;
    let statuses: Vec<_> = results.into_iter().map(|r| r.unwrap().status).collect();
    let created = statuses
        .iter()
        .filter(|s| **s == StatusCode::CREATED)
        .count();
    let conflicts = statuses
        .iter()
        .filter(|s| **s == StatusCode::CONFLICT)
        .count();
    assert_eq!((created, conflicts), (1, 19), "{statuses:?}");
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn verify_marks_the_account_verified_and_is_harmless_twice() {
    let app = TestApp::spawn().await;
    let id = app.sign_up("ann@example.com", "ann").await;
    let link = app.verification_link("ann@example.com");
    let path = link.trim_start_matches("http://board.test");
    for _ in 0..2 {
        let res = app.get(path).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        assert_eq!(res.json(), json!({ "accountId": id, "verified": true }));
    }
    let verified: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'AccountVerified'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(verified, 1);
}

#[tokio::test]
async fn verify_with_an_unknown_or_missing_id_fails_cleanly() {
    let app = TestApp::spawn().await;
    app.get("/verify?verify_id=nope")
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    app.get("/verify")
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_expired_verification_link_is_not_found() {
    let app = TestApp::with_args(&["--verification-ttl", "0s"]).await;
    app.sign_up("ann@example.com", "ann").await;
    let link = app.verification_link("ann@example.com");
    app.get(link.trim_start_matches("http://board.test"))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn log_in_with_basic_or_json_gives_bearer_tokens() {
    let app = TestApp::spawn().await;
    app.sign_up("ann@example.com", "ann").await;
    app.verify("ann@example.com").await;
    let basic = app
        .get("/auth")
        .basic("ANN@example.com", PASSWORD)
        .send()
        .await;
    assert_eq!(basic.status, StatusCode::OK, "{}", basic.text());
    let body = basic.json();
    assert_eq!(body["tokenType"], "Bearer");
    assert_eq!(body["expiresIn"], 900);
    assert!(body["accessToken"].is_string() && body["refreshToken"].is_string());
    assert_eq!(basic.header("cache-control"), Some("no-store"));
    let json = app.log_in("ann@example.com").await;
    assert!(json["accessToken"].is_string());
}

#[tokio::test]
async fn wrong_password_and_unknown_email_get_the_same_401() {
    let app = TestApp::spawn().await;
    app.member("ann@example.com", "ann").await;
    let wrong = app
        .get("/auth")
        .basic("ann@example.com", "wrong password")
        .send()
        .await;
    let unknown = app
        .get("/auth")
        .basic("bob@example.com", PASSWORD)
        .send()
        .await;
    let wrong = wrong.problem(StatusCode::UNAUTHORIZED);
    let unknown = unknown.problem(StatusCode::UNAUTHORIZED);
    assert_eq!(wrong, unknown);
    app.get("/auth")
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.post("/auth")
        .json(json!({ "email": "ann@example.com" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_unverified_account_may_not_log_in() {
    let app = TestApp::spawn().await;
    app.sign_up("ann@example.com", "ann").await;
    app.get("/auth")
        .basic("ann@example.com", PASSWORD)
        .send()
        .await
        .problem(StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn access_and_refresh_tokens_are_not_interchangeable() {
    let app = TestApp::spawn().await;
    let ann = app.member("ann@example.com", "ann").await;
    app.get("/refresh")
        .bearer(&ann.token)
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.post("/board/categories")
        .bearer(&ann.refresh)
        .json(json!({ "name": "x" }))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn expired_and_forged_tokens_get_401() {
    let app = TestApp::spawn().await;
    let ann = app.member("ann@example.com", "ann").await;
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({ "sub": ann.id, "role": "member", "typ": "access", "iat": 1, "exp": 60,
                 "jti": uuid::Uuid::now_v7() }),
        &jsonwebtoken::EncodingKey::from_secret(app.state.config.signing_secret()),
    )
    .unwrap();
    let doc = app
        .post("/board/categories")
        .bearer(&expired)
        .json(json!({ "name": "x" }))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(doc["detail"].as_str().unwrap().contains("expired"));
    let forged = format!("{}x", ann.token);
    app.post("/board/categories")
        .bearer(&forged)
        .json(json!({ "name": "x" }))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_promoted_account_becomes_admin_at_its_next_log_in() {
    let app = TestApp::spawn().await;
    let bob = app.member("bob@example.com", "bob").await;
    app.post("/board/categories")
        .bearer(&bob.token)
        .json(json!({ "name": "Rust" }))
        .send()
        .await
        .problem(StatusCode::FORBIDDEN);
    let metadata = board::store::Metadata::default();
    app.state
        .accounts
        .promote("BOB@example.com", &metadata)
        .await
        .unwrap();
    let token = app.log_in("bob@example.com").await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .post("/board/categories")
        .bearer(&token)
        .json(json!({ "name": "Rust" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
}

#[tokio::test]
async fn a_retried_sign_up_with_an_idempotency_key_returns_the_first_answer() {
    let app = TestApp::spawn().await;
    let send = || {
        app.post("/signup")
            .header("idempotency-key", "signup-1")
            .json(json!({ "email": "ann@example.com", "password": PASSWORD, "nickname": "ann" }))
            .send()
    };
    let first = send().await;
    let second = send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.body, second.body);
    assert_eq!(second.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.event_count().await, 1);
}

#[tokio::test]
async fn anonymous_clients_that_pick_the_same_idempotency_key_do_not_block_each_other() {
    // Keys are chosen by clients: two strangers signing up may well both send `1`.
    let app = TestApp::spawn().await;
    let sign_up = |email: &'static str, nickname: &'static str| {
        app.post("/signup")
            .header("idempotency-key", "1")
            .json(json!({ "email": email, "password": PASSWORD, "nickname": nickname }))
            .send()
    };
    let ann = sign_up("ann@example.com", "ann").await;
    let bob = sign_up("bob@example.com", "bob").await;
    assert_eq!(ann.status, StatusCode::CREATED, "{}", ann.text());
    assert_eq!(bob.status, StatusCode::CREATED, "{}", bob.text());
    assert_ne!(ann.json()["accountId"], bob.json()["accountId"]);
    // Each one's retry still gets its own first answer.
    let ann_again = sign_up("ann@example.com", "ann").await;
    assert_eq!(ann_again.body, ann.body);
    assert_eq!(ann_again.header("idempotent-replayed"), Some("true"));
}

#[tokio::test]
async fn verifying_several_times_at_once_is_harmless() {
    // A mail scanner prefetching the link while its owner clicks it.
    let app = TestApp::spawn().await;
    app.sign_up("ann@example.com", "ann").await;
    let link = app.verification_link("ann@example.com");
    let path = link.trim_start_matches("http://board.test").to_string();
    let clicks = (0..4).map(|_| app.get(&path).send());
    let results = futures::future::join_all(clicks.map(tokio::spawn)).await;
    for res in results {
        let res = res.unwrap();
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }
}

#[tokio::test]
async fn a_retried_sign_up_mails_the_link_the_first_attempt_could_not() {
    let app = TestApp::spawn().await;
    let send = || {
        app.post("/signup")
            .json(json!({ "email": "ann@example.com", "password": PASSWORD, "nickname": "ann" }))
            .header("idempotency-key", "signup-ann")
            .send()
    };
    assert_eq!(send().await.status, StatusCode::CREATED);
    // As if the first attempt died after recording the account, before saving its answer
    // and writing the link.
    sqlx::query("DELETE FROM email_verifications")
        .execute(&app.pool)
        .await
        .unwrap();
    sqlx::query("UPDATE idempotency_keys SET response_status = NULL, response_body = NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    std::fs::remove_dir_all(&app.mail_dir).unwrap();
    assert_eq!(send().await.status, StatusCode::CREATED);
    app.verify("ann@example.com").await;
}

#[tokio::test]
async fn log_in_attempts_past_the_rate_limit_get_429_with_retry_after() {
    let app = TestApp::with_args(&["--auth-rate-per-minute", "3"]).await;
    for _ in 0..3 {
        app.get("/auth")
            .basic("ann@example.com", "guess")
            .send()
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    let limited = app
        .get("/auth")
        .basic("ann@example.com", "guess")
        .send()
        .await;
    limited.problem(StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    app.post("/signup")
        .json(json!({ "email": "x@example.com", "password": PASSWORD, "nickname": "xx" }))
        .send()
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
}
