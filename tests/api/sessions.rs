//! Sessions: refresh tokens rotate, a replayed one ends its session, logout ends one
//! session, a password reset ends them all, and failed log-ins are limited per account
//! whatever the addresses they come from. Sessions live in PostgreSQL, so two API
//! processes on one event store agree on them.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{Member, TestApp, PASSWORD};

/// A 32-byte key both applications of a replica test sign with.
const SHARED_SECRET: &str = "a-secret-the-replicas-share-0123";

async fn refresh(app: &TestApp, refresh_token: &str) -> crate::common::Res {
    app.get("/refresh").bearer(refresh_token).send().await
}

fn tokens_of(res: &crate::common::Res) -> (String, String) {
    let body = res.json();
    (
        body["accessToken"].as_str().unwrap().to_string(),
        body["refreshToken"].as_str().unwrap().to_string(),
    )
}

#[tokio::test]
async fn a_refresh_token_is_spent_by_its_refresh_and_a_replay_ends_the_session() {
    let app = TestApp::spawn().await;
    let ann = app.member("ann@example.com", "ann").await;

    let first = refresh(&app, &ann.refresh).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let (access, second_refresh) = tokens_of(&first);
    assert_ne!(
        second_refresh, ann.refresh,
        "every refresh hands out a new one"
    );
    assert_eq!(first.json()["refreshExpiresIn"], 14 * 86_400);

    // The spent token again: a stolen copy, as far as the server can tell.
    let replay = refresh(&app, &ann.refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(
        replay["detail"].as_str().unwrap().contains("already used"),
        "{replay}"
    );
    // The whole session is over, the newest token included.
    let after = refresh(&app, &second_refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert!(
        after["detail"].as_str().unwrap().contains("ended"),
        "{after}"
    );
    // Access tokens already handed out live out their short life: this one is still
    // accepted (403: a member may not create categories; an ended token would be 401).
    app.post("/board/categories")
        .bearer(&access)
        .json(json!({ "name": "Rust" }))
        .send()
        .await
        .problem(StatusCode::FORBIDDEN);
    let (reason,): (String,) = sqlx::query_as("SELECT end_reason FROM sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(reason, "refresh token replayed");
}

#[tokio::test]
async fn logout_ends_its_own_session_and_no_other() {
    let app = TestApp::spawn().await;
    let ann = app.member("ann@example.com", "ann").await;
    let other_device = app.log_in("ann@example.com").await;
    let other_refresh = other_device["refreshToken"].as_str().unwrap();

    let out = app.post("/logout").bearer(&ann.refresh).send().await;
    assert_eq!(out.status, StatusCode::NO_CONTENT, "{}", out.text());
    refresh(&app, &ann.refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let again = app.post("/logout").bearer(&ann.refresh).send().await;
    assert_eq!(
        again.status,
        StatusCode::NO_CONTENT,
        "logging out twice is harmless"
    );

    let still = refresh(&app, other_refresh).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.text());
    // Logout takes the refresh token, not the access token.
    app.post("/logout")
        .bearer(&ann.token)
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn two_api_processes_share_the_sessions() {
    let one = TestApp::with_args(&["--jwt-secret", SHARED_SECRET]).await;
    let two = TestApp::on_database(
        &one.stack.database_url,
        &["--jwt-secret", SHARED_SECRET],
        false,
    )
    .await;
    let ann = one.member("ann@example.com", "ann").await;

    // Renewed through the second process...
    let renewed = refresh(&two, &ann.refresh).await;
    assert_eq!(renewed.status, StatusCode::OK, "{}", renewed.text());
    let (_, newer) = tokens_of(&renewed);
    // ...the first process knows the old token is spent, and ends the session.
    refresh(&one, &ann.refresh)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    refresh(&two, &newer)
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn two_api_processes_count_against_the_same_limits() {
    // Two replicas on one store: a guesser that spreads its tries over both gets the
    // account's limit once, not once per replica; the same for the per-address limit.
    let limits = [
        "--jwt-secret",
        SHARED_SECRET,
        "--failed-log-ins-per-account-per-hour",
        "3",
        "--auth-rate-per-minute",
        "1000",
    ];
    let one = TestApp::with_args(&limits).await;
    let two = TestApp::on_database(&one.stack.database_url, &limits, false).await;
    one.member("ann@example.com", "ann").await;
    for replica in [&one, &two, &one] {
        replica
            .log_in_with("ann@example.com", "wrong password")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    two.log_in_with("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);

    let strict = ["--auth-rate-per-minute", "2"];
    let three = TestApp::with_args(&strict).await;
    let four = TestApp::on_database(&three.stack.database_url, &strict, false).await;
    // The tests call the router without a socket: every request is one client's.
    for replica in [&three, &four] {
        replica
            .log_in_with("nobody@example.com", "guess")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    let limited = four.log_in_with("nobody@example.com", "guess").await;
    limited.problem(StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(
        (1..=30).contains(&wait),
        "one token back within half a minute: {wait}"
    );
}

#[tokio::test]
async fn a_password_reset_ends_every_session_of_the_account() {
    let app = TestApp::spawn().await;
    let ann = app.member("ann@example.com", "ann").await;
    let bob = app.member("bob@example.com", "bob").await;
    let laptop = app.log_in("ann@example.com").await;

    let asked = app
        .post("/password-reset")
        .json(json!({ "email": "ANN@example.com" }))
        .send()
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text());
    let token = app.password_reset_token("ann@example.com").await;
    let done = app
        .post("/password-reset/confirm")
        .json(json!({ "token": token, "password": "a brand new secret" }))
        .send()
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());

    for session in [&ann.refresh, laptop["refreshToken"].as_str().unwrap()] {
        refresh(&app, session)
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    let bob_renewed = refresh(&app, &bob.refresh).await;
    assert_eq!(
        bob_renewed.status,
        StatusCode::OK,
        "other accounts keep theirs"
    );
    app.log_in_with("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.log_in_with("ann@example.com", "a brand new secret")
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn failed_log_ins_are_limited_per_account_and_successes_do_not_count() {
    let app = three_failed_log_ins_an_hour().await;
    let _ann: Member = app.member("ann@example.com", "ann").await;
    app.member("bob@example.com", "bob").await;
    for _ in 0..5 {
        assert_eq!(
            app.log_in_with("ann@example.com", PASSWORD).await.status,
            StatusCode::OK,
            "successful log-ins are not limited"
        );
    }
    for _ in 0..3 {
        app.log_in_with("ann@example.com", "wrong password")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    // A guess spread over many addresses is one account's all the same (the tests call
    // the router without a socket, so every request here comes from one "address"; the
    // per-address limit is set out of the way above).
    let limited = app.log_in_with("Ann@Example.com", PASSWORD).await;
    limited.problem(StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!(wait >= 1, "{wait}");
    assert_eq!(
        app.log_in_with("bob@example.com", PASSWORD).await.status,
        StatusCode::OK,
        "other accounts are not limited"
    );
    // An address nobody has is limited the same way, so the answers never tell.
    for _ in 0..3 {
        app.log_in_with("nobody@example.com", "guess")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    app.log_in_with("nobody@example.com", "guess")
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn a_password_reset_lifts_the_failed_log_ins_others_spent_on_the_account() {
    let app = three_failed_log_ins_an_hour().await;
    app.member("ann@example.com", "ann").await;
    // Someone who knows the address uses up its failed log-ins: the owner is refused too.
    for _ in 0..3 {
        app.log_in_with("ann@example.com", "a guess")
            .await
            .problem(StatusCode::UNAUTHORIZED);
    }
    app.log_in_with("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);

    // The owner, who reads the mailbox, resets the password and is let in at once.
    app.reset_password("ann@example.com", "a brand new secret")
        .await;
    assert_eq!(
        app.log_in_with("ann@example.com", "a brand new secret")
            .await
            .status,
        StatusCode::OK
    );
}

/// Found by review: `DELETE /account` checked the password with no limit, so a stolen
/// access token could guess the account's password at leisure. Its wrong passwords now
/// count against the account's limit on failed log-ins, and the reverse.
#[tokio::test]
async fn wrong_passwords_to_close_an_account_count_against_its_failed_log_ins() {
    let app = TestApp::with_args(&["--failed-log-ins-per-account-per-hour", "3"]).await;
    let ann = app.member("ann@example.com", "ann").await;
    let close = |password: &str| {
        app.delete("/account")
            .bearer(&ann.token)
            .json(json!({ "password": password }))
            .send()
    };
    app.log_in_with("ann@example.com", "wrong password")
        .await
        .problem(StatusCode::UNAUTHORIZED);
    for _ in 0..2 {
        close("a guess").await.problem(StatusCode::FORBIDDEN);
    }
    let limited = close(PASSWORD).await;
    limited.problem(StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.header("retry-after").is_some());
    app.log_in_with("Ann@Example.com", PASSWORD)
        .await
        .problem(StatusCode::TOO_MANY_REQUESTS);
}

/// An app whose accounts get 3 failed log-ins an hour, with the per-address limit out of
/// the way so that only the per-account one is seen.
async fn three_failed_log_ins_an_hour() -> TestApp {
    TestApp::with_args(&[
        "--failed-log-ins-per-account-per-hour",
        "3",
        "--auth-rate-per-minute",
        "1000",
    ])
    .await
}
