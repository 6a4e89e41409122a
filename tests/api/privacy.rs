//! Personal data: an account's email and nickname are in the history only sealed with its
//! key; closing the account destroys the key, after which neither is found anywhere (the
//! events, the topic, the read models, an export, a replay, the server's logs), while its
//! posts and comments stay. Analysts never see an email, open account or closed. The
//! events written before sealing are sealed once, in place, by the migrations.

use std::net::SocketAddr;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::common::{TestApp, ADMIN_EMAIL, PASSWORD};
use crate::http_client;
use crate::pipeline::{Pipeline, Process};

/// A whole `board serve` of `pipeline`, logging at debug level into `log`.
async fn server(
    pipeline: &Pipeline,
    mail_dir: &str,
    log: &std::path::Path,
) -> (SocketAddr, Process) {
    let address = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = std::fs::File::create(log).unwrap();
    let child = pipeline
        .board(&[
            "--listen",
            &address.to_string(),
            "--mail-dir",
            mail_dir,
            "serve",
        ])
        .env("RUST_LOG", "info,board=debug")
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start the board binary");
    let process = Process(child);
    http_client::wait_until_serving(address).await;
    (address, process)
}

async fn call(
    address: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Value {
    let body = (!body.is_null()).then_some(&body);
    let reply = http_client::send(address, method, path, token, body)
        .await
        .unwrap();
    assert!(reply.is_success(), "{method} {path}: {reply:?}");
    reply.json().unwrap_or(Value::Null)
}

/// Signs `email` up through the server, verifies it from the mail, logs in: the token.
async fn member(address: SocketAddr, mail_dir: &str, email: &str, nickname: &str) -> String {
    call(
        address,
        "POST",
        "/signup",
        None,
        json!({ "email": email, "password": PASSWORD, "nickname": nickname }),
    )
    .await;
    let link = std::fs::read_dir(mail_dir)
        .unwrap()
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .find(|text| text.contains(&format!("To: {email}")))
        .and_then(|text| {
            let start = text.find("/verify?verify_id=")?;
            Some(text[start..].split_whitespace().next()?.to_string())
        })
        .expect("a verification mail");
    call(address, "GET", &link, None, Value::Null).await;
    let tokens = call(
        address,
        "POST",
        "/auth",
        None,
        json!({ "email": email, "password": PASSWORD }),
    )
    .await;
    tokens["accessToken"].as_str().unwrap().to_string()
}

/// Asserts that no needle is in `haystack`, and says what was searched (shown with
/// `--nocapture`: the closing note's counts).
fn nothing_in(place: &str, haystack: &str, needles: &[&str]) {
    let found: Vec<&str> = haystack
        .lines()
        .filter(|line| !hits(line, needles).is_empty())
        .collect();
    eprintln!(
        "searched {place}: {} lines, {} bytes: {} hits",
        haystack.lines().count(),
        haystack.len(),
        found.len()
    );
    assert_eq!(found, Vec::<&str>::new(), "{place}");
}

fn hits(haystack: &str, needles: &[&str]) -> Vec<String> {
    let haystack = haystack.to_lowercase();
    needles
        .iter()
        .filter(|needle| haystack.contains(&needle.to_lowercase()))
        .map(|needle| needle.to_string())
        .collect()
}

#[tokio::test]
async fn a_closed_account_leaves_no_email_or_nickname_anywhere_and_its_posts_stay() {
    let pipeline = Pipeline::new(1).await;
    let work = std::env::temp_dir().join(format!("board-privacy-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&work).unwrap();
    let mail_dir = work.join("mail").display().to_string();
    let log = work.join("server.log");
    let (address, server_process) = server(&pipeline, &mail_dir, &log).await;

    let secret = Uuid::new_v4().simple().to_string();
    let local = format!("zq{}", &secret[..12]);
    let email = format!("{local}@example.com");
    let nickname = format!("zq{}", &secret[12..24]);
    let admin = member(address, &mail_dir, ADMIN_EMAIL, "admin").await;
    let category = call(
        address,
        "POST",
        "/board/categories",
        Some(&admin),
        json!({ "name": "Rust" }),
    )
    .await["categoryId"]
        .as_str()
        .unwrap()
        .to_string();
    let token = member(address, &mail_dir, &email, &nickname).await;
    let post = call(
        address,
        "POST",
        &format!("/board/categories/{category}/posts"),
        Some(&token),
        json!({ "title": "Mine", "content": "Written before I left" }),
    )
    .await["postId"]
        .as_str()
        .unwrap()
        .to_string();
    call(
        address,
        "POST",
        &format!("/board/posts/{post}/comments"),
        Some(&token),
        json!({ "content": "And a comment" }),
    )
    .await;
    // A path that names the address, for the logs to show (or not).
    let taken = http_client::send(
        address,
        "GET",
        &format!("/check-duplicate/email/{email}"),
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(taken.status, 409, "{taken:?}");
    // While the account is open, an operator gets its address from the account service.
    let account_id: String = sqlx::query_scalar(
        "SELECT aggregate_id FROM unique_claims WHERE claim_kind = 'account.email' AND claim_value = $1",
    )
    .bind(&email)
    .fetch_one(&pipeline.app.pool)
    .await
    .unwrap();
    let (code, out) = pipeline
        .run_board(&["accounts", "email", &account_id])
        .await;
    assert_eq!((code, out.trim()), (0, email.as_str()));
    call(
        address,
        "DELETE",
        "/account",
        Some(&token),
        json!({ "password": PASSWORD }),
    )
    .await;
    pipeline.converged().await;
    let stored = pipeline.stored_events().await;
    pipeline.wait_until_relayed(stored).await;
    drop(server_process);

    let needles = [local.as_str(), nickname.as_str()];
    // The events table, payloads and metadata as stored.
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT payload::text || metadata::text FROM events")
            .fetch_all(&pipeline.app.pool)
            .await
            .unwrap();
    nothing_in("events (payload, metadata)", &rows.join("\n"), &needles);
    // Every other table of the event store's database, each row as text: what the
    // account service keeps beside the events (claims, sessions, throttles, idempotent
    // answers, keys) holds nothing of a closed account either.
    for (table, text) in every_table_of_postgres(&pipeline.app.pool).await {
        nothing_in(&format!("PostgreSQL {table}"), &text, &needles);
    }
    // Every message of the topic, read by a plain consumer.
    let topic = pipeline.read_topic(stored as usize).await;
    let topic_text = serde_json::to_string(&topic).unwrap();
    nothing_in(
        &format!("the topic's {} messages", topic.len()),
        &topic_text,
        &needles,
    );
    // Every table of the read models' database, each row as text.
    for (table, text) in every_table_of_mysql(&pipeline.read_pool).await {
        nothing_in(&format!("MySQL {table}"), &text, &needles);
    }
    // An export, both formats.
    for format in ["jsonl", "csv"] {
        let file = work.join(format!("export.{format}"));
        let (code, _) = pipeline
            .run_board(&[
                "events",
                "export",
                "--format",
                format,
                "-o",
                file.to_str().unwrap(),
            ])
            .await;
        assert_eq!(code, 0);
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.contains(&post), "the export has the post");
        nothing_in(&format!("export ({format})"), &text, &needles);
    }
    // A replay into a topic of its own (pruned with the tests' topics).
    let replay = format!("board-test-replay-{}", Uuid::new_v4().simple());
    let (code, _) = pipeline
        .run_board(&["events", "replay", "--topic", &replay])
        .await;
    assert_eq!(code, 0);
    let replayed = pipeline.read_topic_named(&replay, stored as usize).await;
    let replayed_text = serde_json::to_string(&replayed).unwrap();
    nothing_in(
        &format!("the replay topic's {} messages", replayed.len()),
        &replayed_text,
        &needles,
    );
    // The server's own logs, at debug level.
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("account closed"), "the log is the server's");
    nothing_in("the server's log (debug)", &logged, &needles);

    // The post and comment stay, their author a closed account; the read models equal a
    // rebuild from the store (`converged` above) and `verify` agrees.
    let closed = json!({ "nickname": null, "closed": true });
    let content = pipeline
        .app
        .get(&format!("/board/posts/{post}/content"))
        .send()
        .await;
    assert_eq!(content.json()["author"]["closed"], closed["closed"]);
    assert_eq!(content.json()["author"]["nickname"], closed["nickname"]);
    // Time travel reads the closed account and its post, fields erased, never an error.
    let account_id = content.json()["author"]["accountId"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        vec!["events", "show", "account", &account_id],
        vec!["events", "show", "account", &account_id, "--version", "1"],
        vec!["events", "show", "post", &post],
    ] {
        let (code, out) = pipeline.run_board(&args).await;
        assert_eq!(code, 0, "{args:?}: {out}");
        nothing_in(&format!("board {}", args.join(" ")), &out, &needles);
    }
    let (code, out) = pipeline.run_board(&["projections", "verify"]).await;
    assert_eq!(code, 0, "{out}");
    // The account service has no address for it any more.
    let (code, out) = pipeline
        .run_board(&["accounts", "email", &account_id])
        .await;
    assert_eq!((code, out.as_str()), (1, ""));
    let _ = std::fs::remove_dir_all(&work);
}

/// Every table of the event store's database (the events and what is kept beside them),
/// each as its rows' text.
async fn every_table_of_postgres(pool: &sqlx::PgPool) -> Vec<(String, String)> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
          WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(tables.len() > 10, "{tables:?}");
    let mut texts = Vec::new();
    for table in tables {
        let text: Option<String> = sqlx::query_scalar(&format!(
            "SELECT string_agg(t::text, E'\\n') FROM {table} t"
        ))
        .fetch_one(pool)
        .await
        .unwrap();
        texts.push((table, text.unwrap_or_default()));
    }
    texts
}

/// Every table of the read models' database, each as its rows' text (every column cast
/// to text and joined).
async fn every_table_of_mysql(pool: &sqlx::MySqlPool) -> Vec<(String, String)> {
    let columns: Vec<(String, String)> = sqlx::query_as(
        "SELECT CAST(table_name AS CHAR), CAST(column_name AS CHAR)
           FROM information_schema.columns WHERE table_schema = DATABASE()
          ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut tables: Vec<(String, Vec<String>)> = Vec::new();
    for (table, column) in columns {
        match tables.last_mut() {
            Some((last, columns)) if *last == table => columns.push(column),
            _ => tables.push((table, vec![column])),
        }
    }
    assert!(
        tables.iter().any(|(t, _)| t == "accounts_view"),
        "{tables:?}"
    );
    let mut texts = Vec::new();
    for (table, columns) in tables {
        let row = columns
            .iter()
            .map(|c| format!("COALESCE(CAST(`{c}` AS CHAR), '')"))
            .collect::<Vec<_>>()
            .join(", '|', ");
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT CONCAT({row}) FROM `{table}`"))
            .fetch_all(pool)
            .await
            .unwrap();
        texts.push((table, rows.join("\n")));
    }
    texts
}

#[tokio::test]
async fn an_export_shows_no_email_of_any_account_and_the_nicknames_of_open_ones() {
    let app = TestApp::spawn().await;
    app.admin().await;
    app.member("ann@example.com", "annie").await;
    app.sign_up("bob@example.com", "bobby").await;
    let (text, _) = app.export_jsonl().await;
    assert!(!text.contains('@'), "no address at all: {text}");
    assert!(text.contains("annie") && text.contains("bobby"), "{text}");
}

#[tokio::test]
async fn the_migration_seals_events_written_before_sealing_once() {
    let app = TestApp::spawn().await;
    // An account as an earlier release stored it: its email and nickname in plain text.
    let account = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('account', $1, 1, 'AccountRegistered', '1.0', $2, '{}')",
    )
    .bind(account.to_string())
    .bind(json!({ "AccountRegistered": { "email": "old@example.com", "nickname": "oldie" } }))
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("DELETE FROM history_rewrites")
        .execute(&app.pool)
        .await
        .unwrap();
    let position_before: i64 =
        sqlx::query_scalar("SELECT global_position FROM events WHERE aggregate_id = $1")
            .bind(account.to_string())
            .fetch_one(&app.pool)
            .await
            .unwrap();

    board::app::migrate_event_store(&app.pool).await.unwrap();

    let (payload, position): (Value, i64) =
        sqlx::query_as("SELECT payload, global_position FROM events WHERE aggregate_id = $1")
            .bind(account.to_string())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(position, position_before, "only the payload changes");
    let text = payload.to_string();
    assert!(!text.contains("old@") && !text.contains("oldie"), "{text}");
    // The aggregate reads it back whole through its key.
    let bus = board::store::CommandBus::<aggregates::account::Account>::without_snapshots(
        app.pool.clone(),
        board::store::GroupCommit::new(app.pool.clone()),
    );
    let (state, _) = bus.load(account).await.unwrap();
    assert_eq!(
        (state.email.as_str(), state.nickname.as_str()),
        ("old@example.com", "oldie")
    );
    // Recorded, so it runs once.
    let rewritten: i64 = sqlx::query_scalar("SELECT rewritten FROM history_rewrites")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(rewritten, 1);
    assert_eq!(
        board::store::history_sealing::seal_history(&app.pool)
            .await
            .unwrap(),
        0
    );
}
