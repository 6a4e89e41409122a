//! Board commands: categories, posts, comments; with versions, races and idempotency.

use axum::http::StatusCode;
use serde_json::json;

use crate::common::{Board, TestApp};

#[tokio::test]
async fn admins_create_categories_members_may_not() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let member = app.member("ann@example.com", "ann").await;
    let res = app
        .post("/board/categories")
        .bearer(&admin.token)
        .json(json!({ "name": "Rust", "description": "All things Rust" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert_eq!(res.header("etag"), Some("\"1\""));
    assert!(res.json()["categoryId"].is_string());
    app.post("/board/categories")
        .bearer(&member.token)
        .json(json!({ "name": "Go" }))
        .send()
        .await
        .problem(StatusCode::FORBIDDEN);
    app.post("/board/categories")
        .json(json!({ "name": "Go" }))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn category_fields_are_validated_together() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let doc = app
        .post("/board/categories")
        .bearer(&admin.token)
        .json(json!({ "name": "n".repeat(51), "description": "d".repeat(501), "colour": "red" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    let errors = doc["errors"].as_object().unwrap();
    assert!(errors.contains_key("name") && errors.contains_key("description"));
    assert_eq!(errors["colour"][0], "is not a known field");
}

#[tokio::test]
async fn a_duplicate_category_name_gets_409_even_when_racing() {
    // Ten commands of one admin at once: above the default per-account limit.
    let app = TestApp::with_args(&["--commands-per-account", "10"]).await;
    let admin = app.admin().await;
    app.category(&admin, "Rust").await;
    app.post("/board/categories")
        .bearer(&admin.token)
        .json(json!({ "name": " rust " }))
        .send()
        .await
        .problem(StatusCode::CONFLICT);
    let attempts = (0..10).map(|_| {
        app.post("/board/categories")
            .bearer(&admin.token)
            .json(json!({ "name": "Go" }))
            .send()
    });
    let results = futures::future::join_all(attempts.map(tokio::spawn)).await;
    let created = results
        .into_iter()
        .map(|r| r.unwrap().status)
        .filter(|s| *s == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1);
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_first_response_and_writes_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let before = app.event_count().await;
    let send = |name: &str| {
        app.post("/board/categories")
            .bearer(&admin.token)
            .header("idempotency-key", "create-rust")
            .json(json!({ "name": name }))
            .send()
    };
    let first = send("Rust").await;
    let retry = send("Rust").await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(retry.status, StatusCode::CREATED);
    assert_eq!(first.body, retry.body);
    assert_eq!(retry.header("etag"), first.header("etag"));
    assert_eq!(retry.header("idempotent-replayed"), Some("true"));
    assert_eq!(app.event_count().await, before + 1);
    send("Go").await.problem(StatusCode::UNPROCESSABLE_ENTITY);
    // The same key from another admin is another request: it runs (and finds the name
    // taken) instead of replaying the first admin's answer.
    let other = app.member("ann@example.com", "ann").await;
    app.state
        .accounts
        .promote("ann@example.com", &board::store::Metadata::default())
        .await
        .unwrap();
    let other_token = app.log_in("ann@example.com").await["accessToken"]
        .as_str()
        .unwrap()
        .to_string();
    let _ = other;
    let res = app
        .post("/board/categories")
        .bearer(&other_token)
        .header("idempotency-key", "create-rust")
        .json(json!({ "name": "Rust" }))
        .send()
        .await;
    res.problem(StatusCode::CONFLICT);
    assert!(res.header("idempotent-replayed").is_none());
}

#[tokio::test]
async fn a_retry_after_a_lost_response_records_nothing_twice() {
    // The server recorded the post but died before saving the response: the key row has
    // no response. The retry must run with the reserved id and record nothing new.
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let path = format!("/board/categories/{category}/posts");
    let send = || {
        app.post(&path)
            .bearer(&admin.token)
            .header("idempotency-key", "post-1")
            .json(json!({ "title": "Hello", "content": "First" }))
            .send()
    };
    let first = send().await;
    assert_eq!(first.status, StatusCode::CREATED);
    sqlx::query("UPDATE idempotency_keys SET response_status = NULL, response_body = NULL")
        .execute(&app.pool)
        .await
        .unwrap();
    let before = app.event_count().await;
    let retry = send().await;
    assert_eq!(retry.status, StatusCode::CREATED, "{}", retry.text());
    assert_eq!(retry.json(), first.json());
    assert_eq!(app.event_count().await, before);
}

#[tokio::test]
async fn posting_checks_the_category_and_the_fields() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ann = app.member("ann@example.com", "ann").await;
    let category = app.category(&admin, "Rust").await;
    let res = app
        .post(&format!("/board/categories/{category}/posts"))
        .bearer(&ann.token)
        .json(json!({ "title": "Hello", "content": "First post" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let post_id = res.json()["postId"].as_str().unwrap().to_string();
    assert_eq!(
        res.header("location"),
        Some(format!("/board/posts/{post_id}/content").as_str())
    );
    let unknown = uuid::Uuid::now_v7();
    app.post(&format!("/board/categories/{unknown}/posts"))
        .bearer(&ann.token)
        .json(json!({ "title": "Hello", "content": "x" }))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    app.post("/board/categories/not-a-uuid/posts")
        .bearer(&ann.token)
        .json(json!({ "title": "Hello", "content": "x" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    let doc = app
        .post(&format!("/board/categories/{category}/posts"))
        .bearer(&ann.token)
        .json(json!({ "title": "", "content": "c".repeat(20_001) }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(doc["errors"]["title"].is_array() && doc["errors"]["content"].is_array());
    app.post(&format!("/board/categories/{category}/posts"))
        .json(json!({ "title": "Hello", "content": "x" }))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_author_edits_a_post_and_gets_it_back_with_its_new_version() {
    let app = TestApp::spawn().await;
    let Board {
        ann,
        category,
        post,
        ..
    } = app.with_post().await;
    let mut comments = Vec::new();
    for _ in 0..2 {
        let res = app
            .post(&format!("/board/posts/{post}/comments"))
            .bearer(&ann.token)
            .json(json!({ "content": "Nice" }))
            .send()
            .await;
        comments.push(res.json()["commentId"].as_str().unwrap().to_string());
    }
    app.delete(&format!("/board/comments/{}", comments[0]))
        .bearer(&ann.token)
        .send()
        .await;
    let res = app
        .patch(&format!("/board/posts/{post}"))
        .bearer(&ann.token)
        .header("if-match", "\"1\"")
        .json(json!({ "title": "Hello again" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    assert_eq!(res.header("etag"), Some("\"2\""));
    let body = res.json();
    assert_eq!(body["title"], "Hello again");
    assert_eq!(body["content"], "First post");
    assert_eq!(body["author"]["nickname"], "ann");
    assert_eq!(body["categoryId"], category);
    assert_eq!(body["commentCount"], 1, "two comments, one deleted");
    let created = body["createdAt"].as_str().unwrap();
    assert!(created.ends_with('Z') && created.len() == "2026-01-15T10:36:39.123Z".len());
}

#[tokio::test]
async fn edits_are_refused_to_others_to_stale_versions_and_to_bad_bodies() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ann = app.member("ann@example.com", "ann").await;
    let bob = app.member("bob@example.com", "bob").await;
    let category = app.category(&admin, "Rust").await;
    let post = app.post_in(&ann, &category).await;
    let path = format!("/board/posts/{post}");
    for intruder in [&bob, &admin] {
        app.patch(&path)
            .bearer(&intruder.token)
            .json(json!({ "title": "Mine" }))
            .send()
            .await
            .problem(StatusCode::FORBIDDEN);
    }
    let stale = app
        .patch(&path)
        .bearer(&ann.token)
        .header("if-match", "\"7\"")
        .json(json!({ "title": "x" }))
        .send()
        .await;
    stale.problem(StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.header("etag"), Some("\"1\""));
    // No list of entity tags at all: malformed input, not a version that did not match.
    app.patch(&path)
        .bearer(&ann.token)
        .header("if-match", "null")
        .json(json!({ "title": "x" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.patch(&path)
        .bearer(&ann.token)
        .json(json!({}))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.patch(&path)
        .bearer(&ann.token)
        .json(json!({ "title": "t".repeat(201) }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.patch(&format!("/board/posts/{}", uuid::Uuid::now_v7()))
        .bearer(&ann.token)
        .json(json!({ "title": "x" }))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    app.patch(&path)
        .json(json!({ "title": "x" }))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn racing_edits_on_one_version_never_both_win() {
    // Ten commands of one member at once: above the default per-account limit.
    let app = TestApp::with_args(&["--commands-per-account", "10"]).await;
    let Board { ann, post, .. } = app.with_post().await;
    let path = format!("/board/posts/{post}");
    let edits = (0..10).map(|i| {
        app.patch(&path)
            .bearer(&ann.token)
            .header("if-match", "\"1\"")
            .json(json!({ "title": format!("Title {i}") }))
            .send()
    });
    let results = futures::future::join_all(edits.map(tokio::spawn)).await;
    let statuses: Vec<_> = results.into_iter().map(|r| r.unwrap().status).collect();
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(won, 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| matches!(
        *s,
        StatusCode::OK | StatusCode::CONFLICT | StatusCode::PRECONDITION_FAILED
    )));
    let edited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'PostEdited'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(edited, 1);
}

#[tokio::test]
async fn racing_edits_without_if_match_each_apply_to_fresh_state() {
    // Every edit that answers 200 recorded exactly one event; every 409 recorded none.
    // Ten commands of one member at once: above the default per-account limit.
    let app = TestApp::with_args(&["--commands-per-account", "10"]).await;
    let Board { ann, post, .. } = app.with_post().await;
    let path = format!("/board/posts/{post}");
    let edits = (0..10).map(|i| {
        app.patch(&path)
            .bearer(&ann.token)
            .json(json!({ "content": format!("Version {i}") }))
            .send()
    });
    let results = futures::future::join_all(edits.map(tokio::spawn)).await;
    let statuses: Vec<_> = results.into_iter().map(|r| r.unwrap().status).collect();
    assert!(statuses
        .iter()
        .all(|s| matches!(*s, StatusCode::OK | StatusCode::CONFLICT)));
    let won = statuses.iter().filter(|s| **s == StatusCode::OK).count() as i64;
    let edited: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'PostEdited'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(edited, won);
}

#[tokio::test]
async fn the_author_or_an_admin_deletes_a_post_once() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ann = app.member("ann@example.com", "ann").await;
    let bob = app.member("bob@example.com", "bob").await;
    let category = app.category(&admin, "Rust").await;
    let first = app.post_in(&ann, &category).await;
    let second = app.post_in(&ann, &category).await;
    app.delete(&format!("/board/posts/{first}"))
        .bearer(&bob.token)
        .send()
        .await
        .problem(StatusCode::FORBIDDEN);
    app.delete(&format!("/board/posts/{first}"))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.delete(&format!("/board/posts/{first}"))
        .bearer(&ann.token)
        .header("if-match", "\"5\"")
        .send()
        .await
        .problem(StatusCode::PRECONDITION_FAILED);
    let res = app
        .delete(&format!("/board/posts/{first}"))
        .bearer(&ann.token)
        .header("if-match", "\"1\"")
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());
    assert_eq!(res.header("etag"), Some("\"2\""));
    app.delete(&format!("/board/posts/{first}"))
        .bearer(&ann.token)
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    let by_admin = app
        .delete(&format!("/board/posts/{second}"))
        .bearer(&admin.token)
        .send()
        .await;
    assert_eq!(by_admin.status, StatusCode::NO_CONTENT);
    app.patch(&format!("/board/posts/{second}"))
        .bearer(&ann.token)
        .json(json!({ "title": "Back" }))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn comments_go_on_live_posts_only() {
    let app = TestApp::spawn().await;
    let Board { ann, post, .. } = app.with_post().await;
    let res = app
        .post(&format!("/board/posts/{post}/comments"))
        .bearer(&ann.token)
        .json(json!({ "content": "Nice" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    assert!(res.json()["commentId"].is_string());
    app.post(&format!("/board/posts/{post}/comments"))
        .bearer(&ann.token)
        .json(json!({ "content": "" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    app.post(&format!("/board/posts/{post}/comments"))
        .json(json!({ "content": "Nice" }))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
    app.post(&format!("/board/posts/{}/comments", uuid::Uuid::now_v7()))
        .bearer(&ann.token)
        .json(json!({ "content": "Nice" }))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    app.delete(&format!("/board/posts/{post}"))
        .bearer(&ann.token)
        .send()
        .await;
    app.post(&format!("/board/posts/{post}/comments"))
        .bearer(&ann.token)
        .json(json!({ "content": "Too late" }))
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_author_or_an_admin_deletes_a_comment() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let ann = app.member("ann@example.com", "ann").await;
    let bob = app.member("bob@example.com", "bob").await;
    let category = app.category(&admin, "Rust").await;
    let post = app.post_in(&ann, &category).await;
    let mut comments = Vec::new();
    for _ in 0..2 {
        let res = app
            .post(&format!("/board/posts/{post}/comments"))
            .bearer(&ann.token)
            .json(json!({ "content": "Nice" }))
            .send()
            .await;
        comments.push(res.json()["commentId"].as_str().unwrap().to_string());
    }
    app.delete(&format!("/board/comments/{}", comments[0]))
        .bearer(&bob.token)
        .send()
        .await
        .problem(StatusCode::FORBIDDEN);
    app.delete(&format!("/board/comments/{}", comments[0]))
        .send()
        .await
        .problem(StatusCode::UNAUTHORIZED);
    let res = app
        .delete(&format!("/board/comments/{}", comments[0]))
        .bearer(&ann.token)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    app.delete(&format!("/board/comments/{}", comments[0]))
        .bearer(&ann.token)
        .send()
        .await
        .problem(StatusCode::NOT_FOUND);
    let res = app
        .delete(&format!("/board/comments/{}", comments[1]))
        .bearer(&admin.token)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT);
    app.delete("/board/comments/nope")
        .bearer(&ann.token)
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn concurrent_retries_with_one_key_all_get_the_first_answer() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let category = app.category(&admin, "Rust").await;
    let before = app.event_count().await;
    let path = format!("/board/categories/{category}/posts");
    let attempts = (0..6).map(|_| {
        app.post(&path)
            .bearer(&admin.token)
            .header("idempotency-key", "same-post")
            .json(json!({ "title": "Once", "content": "only once" }))
            .send()
    });
    let results = futures::future::join_all(attempts.map(tokio::spawn)).await;
    let responses: Vec<_> = results.into_iter().map(Result::unwrap).collect();
    for res in &responses {
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        assert_eq!(res.body, responses[0].body);
        assert!(res.header("event-position").is_some());
    }
    assert_eq!(app.event_count().await, before + 1);
}

#[tokio::test]
async fn control_characters_in_text_are_a_400_not_a_500() {
    let app = TestApp::spawn().await;
    let admin = app.admin().await;
    let doc = app
        .post("/board/categories")
        .bearer(&admin.token)
        .json(json!({ "name": "Nul\u{0}name" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
    assert!(doc["errors"]["name"].is_array());
    app.post("/signup")
        .json(json!({ "email": "nul@example.com", "password": "12345678\u{0}", "nickname": "nul" }))
        .send()
        .await
        .problem(StatusCode::BAD_REQUEST);
}

/// Creations skip reading the new id's history (`CommandBus::execute_create`), and the
/// command side remembers the categories it has seen exist (`EventStoreLookup`): neither
/// may change what a creation decides.
#[tokio::test]
async fn a_creation_repeated_under_its_id_changes_nothing_and_a_missing_category_is_asked_again() {
    use aggregates::{DomainError, Role};
    use board::board::{BoardError, CategoryDraft, PostDraft};
    use board::store::{CommandError, Metadata};

    let app = TestApp::spawn().await;
    let admin = app.admin().await.actor(Role::Admin);
    let board = &app.state.board;
    let metadata = Metadata::default();
    let (category, post) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let draft = || PostDraft {
        category_id: category,
        title: "Hello".to_string(),
        content: "First post".to_string(),
    };

    // Asked while missing, the category is refused, and asked again once it exists.
    let missing = board.create_post(admin, post, draft(), &metadata).await;
    assert!(
        matches!(
            missing,
            Err(BoardError::Command(CommandError::Domain(
                DomainError::NotFound("category")
            )))
        ),
        "{missing:?}"
    );
    let category_draft = || CategoryDraft {
        name: "Rust".to_string(),
        description: "All things Rust".to_string(),
    };
    let created = board.create_category(admin, category, category_draft(), &metadata);
    assert_eq!(created.await.unwrap(), 1);
    assert_eq!(
        board
            .create_post(admin, post, draft(), &metadata)
            .await
            .unwrap(),
        1
    );

    // The same creations again, as a retry under the same idempotency key makes them:
    // each collides with the history it assumed away, is decided again on it, and
    // records nothing.
    let before = app.event_count().await;
    let again = board.create_category(admin, category, category_draft(), &metadata);
    assert_eq!(again.await.unwrap(), 1);
    assert_eq!(
        board
            .create_post(admin, post, draft(), &metadata)
            .await
            .unwrap(),
        1
    );
    assert_eq!(app.event_count().await, before);
}

/// A refusal decided on the history a creation assumes empty is checked against the
/// stored one: a retried comment on a post deleted since is the no-op it always was.
#[tokio::test]
async fn a_comment_retried_after_its_post_was_deleted_is_still_a_no_op() {
    use aggregates::{DomainError, Role};
    use board::board::BoardError;
    use board::store::{CommandError, Metadata};

    let app = TestApp::spawn().await;
    let Board { ann, post, .. } = app.with_post().await;
    let author = ann.actor(Role::Member);
    let board = &app.state.board;
    let metadata = Metadata::default();
    let (comment, post_id) = (uuid::Uuid::now_v7(), post.parse().unwrap());
    let add = || board.add_comment(author, comment, post_id, "Nice".to_string(), &metadata);
    assert_eq!(add().await.unwrap(), 1);
    let res = app
        .delete(&format!("/board/posts/{post}"))
        .bearer(&ann.token)
        .send()
        .await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text());

    let before = app.event_count().await;
    assert_eq!(
        add().await.unwrap(),
        1,
        "the retry answers as the first add did"
    );
    assert_eq!(app.event_count().await, before);
    // A new comment on the deleted post is still refused.
    let refused = board
        .add_comment(
            author,
            uuid::Uuid::now_v7(),
            post_id,
            "Late".to_string(),
            &metadata,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(BoardError::Command(CommandError::Domain(
                DomainError::NotFound("post")
            )))
        ),
        "{refused:?}"
    );
}
