//! Who owns an email address: a verified account does; a sign-up nobody verified is
//! replaced by the next sign-up for the address and released by the purge once its link
//! expired; whoever controls the mailbox takes an account back through a password reset.

use axum::http::StatusCode;
use serde_json::json;
use uuid::Uuid;

use crate::common::{TestApp, ADMIN_EMAIL, PASSWORD};

const SQUATTER_PASSWORD: &str = "the squatter's own password";
const OWNER_PASSWORD: &str = "the owner's own password";

/// Opens `link` (a verification link) as a mail scanner or a person would.
async fn open(app: &TestApp, link: &str) -> crate::common::Res {
    app.get(link.trim_start_matches("http://board.test"))
        .send()
        .await
}

async fn account_events(app: &TestApp, account_id: Uuid) -> Vec<(String, serde_json::Value)> {
    sqlx::query_as(
        "SELECT event_type, payload FROM events
          WHERE aggregate_type = 'account' AND aggregate_id = $1 ORDER BY sequence",
    )
    .bind(account_id.to_string())
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

/// Makes every claimed address look claimed two minutes ago (past `CLAIM_GRACE`).
async fn held_since_two_minutes(app: &TestApp) {
    sqlx::query("UPDATE unique_claims SET claimed_at = now() - interval '2 minutes'")
        .execute(&app.pool)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_sign_up_replaces_one_nobody_verified_and_the_old_link_opens_nothing() {
    let app = TestApp::spawn().await;
    let squatter = app
        .sign_up_with(ADMIN_EMAIL, "squatter", SQUATTER_PASSWORD)
        .await;
    // Within a minute of a sign-up its address is held whatever happens, so that of
    // sign-ups racing for one address exactly one wins.
    app.post("/signup")
        .json(json!({ "email": ADMIN_EMAIL, "password": OWNER_PASSWORD, "nickname": "owner" }))
        .send()
        .await
        .problem(StatusCode::CONFLICT);
    held_since_two_minutes(&app).await;
    let owner = app.sign_up_with(ADMIN_EMAIL, "owner", OWNER_PASSWORD).await;
    assert_ne!(squatter, owner);

    let links = app.verification_links(ADMIN_EMAIL);
    assert_eq!(links.len(), 2);
    open(&app, &links[0]).await.problem(StatusCode::NOT_FOUND);
    assert_eq!(open(&app, &links[1]).await.status, StatusCode::OK);

    app.log_in_with(ADMIN_EMAIL, SQUATTER_PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let owner_in = app.log_in_with(ADMIN_EMAIL, OWNER_PASSWORD).await;
    assert_eq!(owner_in.status, StatusCode::OK, "{}", owner_in.text());
    let admin = owner_in.json()["accessToken"].as_str().unwrap().to_string();
    let created = app
        .post("/board/categories")
        .bearer(&admin)
        .json(json!({ "name": "Rust" }))
        .send()
        .await;
    assert_eq!(
        created.status,
        StatusCode::CREATED,
        "the owner is the admin"
    );

    let released = account_events(&app, squatter).await;
    assert_eq!(released.len(), 2);
    assert_eq!(
        released[1],
        (
            "SignUpReleased".to_string(),
            json!({ "SignUpReleased": { "reason": "replaced" } })
        )
    );
    let secrets: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM account_credentials WHERE account_id = $1)
              + (SELECT count(*) FROM email_verifications WHERE account_id = $1)",
    )
    .bind(squatter)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        secrets, 0,
        "the released sign-up's password and links are gone"
    );
}

#[tokio::test]
async fn a_verified_account_keeps_its_address() {
    let app = TestApp::spawn().await;
    app.member("ann@example.com", "ann").await;
    app.post("/signup")
        .json(json!({ "email": "ann@example.com", "password": PASSWORD, "nickname": "xy" }))
        .send()
        .await
        .problem(StatusCode::CONFLICT);
    assert_eq!(
        app.log_in_with("ann@example.com", PASSWORD).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_mailbox_owner_takes_back_an_account_a_squatter_got_verified() {
    let app = TestApp::spawn().await;
    app.sign_up_with(ADMIN_EMAIL, "squatter", SQUATTER_PASSWORD)
        .await;
    // A mail scanner on the owner's side opens the link: the squatter's account is now
    // verified, with the owner's address and the squatter's password.
    assert_eq!(
        open(&app, &app.verification_link(ADMIN_EMAIL)).await.status,
        StatusCode::OK
    );
    let squatter = app.log_in_with(ADMIN_EMAIL, SQUATTER_PASSWORD).await;
    assert_eq!(squatter.status, StatusCode::OK);
    let squatter_refresh = squatter.json()["refreshToken"]
        .as_str()
        .unwrap()
        .to_string();

    // The owner cannot sign up again; the reset link reaches the mailbox instead.
    let asked = app
        .post("/password-reset")
        .json(json!({ "email": ADMIN_EMAIL }))
        .send()
        .await;
    assert_eq!(asked.status, StatusCode::ACCEPTED);
    let token = app.password_reset_token(ADMIN_EMAIL).await;
    let confirmed = app
        .post("/password-reset/confirm")
        .json(json!({ "token": token, "password": OWNER_PASSWORD }))
        .send()
        .await;
    assert_eq!(
        confirmed.status,
        StatusCode::NO_CONTENT,
        "{}",
        confirmed.text()
    );

    app.log_in_with(ADMIN_EMAIL, SQUATTER_PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.get("/refresh")
        .bearer(&squatter_refresh)
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.log_in_with(ADMIN_EMAIL, OWNER_PASSWORD).await.status,
        StatusCode::OK
    );
    // The link is single use.
    app.post("/password-reset/confirm")
        .json(json!({ "token": token, "password": "yet another password" }))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_password_reset_never_tells_whether_an_address_has_an_account() {
    let app = TestApp::spawn().await;
    app.sign_up("ann@example.com", "ann").await;
    for email in ["nobody@example.com", "ann@example.com"] {
        let res = app
            .post("/password-reset")
            .json(json!({ "email": email }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::ACCEPTED, "{email}");
        assert!(res.body.is_empty());
    }
    // Only the account's address gets a mail.
    app.password_reset_token("ann@example.com").await;
    assert!(app.mails_to("nobody@example.com").is_empty());

    // An unverified account counts as verified once the reset link proved the mailbox.
    let token = app.password_reset_token("ann@example.com").await;
    let done = app
        .post("/password-reset/confirm")
        .json(json!({ "token": token, "password": OWNER_PASSWORD }))
        .send()
        .await;
    assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    assert_eq!(
        app.log_in_with("ann@example.com", OWNER_PASSWORD)
            .await
            .status,
        StatusCode::OK
    );

    let bad = app
        .post("/password-reset/confirm")
        .json(json!({ "token": "not-a-token", "password": "short" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(bad["errors"]["password"].is_array(), "{bad}");
    app.post("/password-reset/confirm")
        .json(json!({ "token": "not-a-token", "password": OWNER_PASSWORD }))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    app.post("/password-reset")
        .json(json!({ "email": "not-an-email" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_purge_releases_a_sign_up_whose_link_expired() {
    let app = TestApp::spawn().await;
    let ann = app.sign_up("ann@example.com", "ann").await;
    let bob = app.sign_up("bob@example.com", "bob").await;
    app.get("/check-duplicate/email/ann@example.com")
        .send()
        .await
        .problem(StatusCode::CONFLICT);
    // Ann signed up three days ago and her link expired unused; Bob's is live.
    sqlx::query(
        "UPDATE pending_sign_ups SET registered_at = now() - interval '3 days'
          WHERE account_id = $1::text",
    )
    .bind(ann)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE email_verifications SET expires_at = now() - interval '1 day' WHERE account_id = $1",
    )
    .bind(ann)
    .execute(&app.pool)
    .await
    .unwrap();
    let free = app
        .get("/check-duplicate/email/ann@example.com")
        .send()
        .await;
    assert_eq!(
        free.status,
        StatusCode::OK,
        "an expired sign-up holds nothing"
    );

    // Two addresses claimed by sign-ups that died before recording anything: one two
    // minutes ago (past the grace), one just now (its sign-up may still be under way).
    for (address, age) in [
        ("dead@example.com", "2 minutes"),
        ("busy@example.com", "0 seconds"),
    ] {
        sqlx::query(&format!(
            "INSERT INTO unique_claims (claim_kind, claim_value, aggregate_id, claimed_at)
             VALUES ('account.email', $1, gen_random_uuid()::text, now() - interval '{age}')"
        ))
        .bind(address)
        .execute(&app.pool)
        .await
        .unwrap();
    }

    crate::jobs::one_round(&app).await;

    let claimed: Vec<String> = sqlx::query_scalar(
        "SELECT claim_value FROM unique_claims WHERE claim_value IN ('dead@example.com', 'busy@example.com')",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(
        claimed,
        ["busy@example.com"],
        "only the abandoned claim is purged"
    );

    let events = account_events(&app, ann).await;
    assert_eq!(
        events.last().unwrap().1,
        json!({ "SignUpReleased": { "reason": "expired" } })
    );
    assert_eq!(
        account_events(&app, bob).await.len(),
        1,
        "Bob's link is live"
    );
    let pending: Vec<String> = sqlx::query_scalar("SELECT account_id FROM pending_sign_ups")
        .fetch_all(&app.pool)
        .await
        .unwrap();
    assert_eq!(pending, [bob.to_string()]);
    let runs: serde_json::Value = sqlx::query_scalar("SELECT to_jsonb(removed) FROM job_runs")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(runs["expired_sign_ups"], 1);
    assert_eq!(runs["abandoned_email_claims"], 1);
    // The address is free for anyone again, and nobody can log in with the old password.
    app.log_in_with("ann@example.com", PASSWORD)
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.sign_up("ann@example.com", "ann again").await;
}
