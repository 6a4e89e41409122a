//! Command-to-read-model latency at rest, on the real PostgreSQL, Kafka broker and MySQL.
//!
//!     make latency            (or: cargo run --release --example latency -- [COUNT])
//!
//! Starts the API, the relay and the projector in this process on scratch databases and
//! a scratch topic, then creates COUNT posts one at a time (nothing else running: "at
//! rest"). For each it measures the time from sending the command to the read model
//! showing it, and, within that, from the command's answer to the read model. It prints
//! percentiles, beside a baseline measured in the same run: a plain INSERT of one row
//! into MySQL and reading it back, the floor any read model update stands on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::http::Request;
use clap::Parser;
use serde_json::{json, Value};
use sqlx::MySqlPool;
use tokio::sync::watch;
use tower::ServiceExt;

use board::cli::{self, Cli};
use board::projector::Projector;
use board::relay::Relay;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

async fn call(
    app: &axum::Router,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json");
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::from(body.to_string())).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}

fn report(label: &str, mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p50 = percentile(&samples, 0.5);
    println!(
        "{label:<44} p50 {:>7.2} ms   p90 {:>7.2} ms   p99 {:>7.2} ms   max {:>7.2} ms",
        ms(p50),
        ms(percentile(&samples, 0.9)),
        ms(percentile(&samples, 0.99)),
        ms(*samples.last().unwrap()),
    );
    p50
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let count: usize = std::env::args().nth(1).map_or(Ok(200), |n| n.parse())?;
    let pg_server = env_or(
        "TEST_DATABASE_URL",
        "postgres://board:board@127.0.0.1:5432/postgres",
    );
    let mysql_server = env_or(
        "TEST_READ_DATABASE_URL",
        "mysql://board:board@127.0.0.1:3306",
    );
    let database_url = board::databases::scratch_postgres(&pg_server, "board_bench").await?;
    let read_url = board::databases::scratch_mysql(&mysql_server, "board_bench").await?;
    let topic = format!("board-bench-{}", uuid::Uuid::new_v4().simple());
    let mail_dir = std::env::temp_dir().join(format!("board-bench-mail-{}", uuid::Uuid::new_v4()));
    let mail_dir = mail_dir.display().to_string();
    let brokers = env_or("KAFKA_BROKERS", "127.0.0.1:9092");
    let cli = Cli::try_parse_from([
        "board",
        "--database-url",
        &database_url,
        "--read-database-url",
        &read_url,
        "--kafka-brokers",
        &brokers,
        "--kafka-topic",
        &topic,
        "--kafka-partitions",
        "3",
        "--projector-group",
        &topic,
        "--mail-dir",
        &mail_dir,
        "--admin-emails",
        "bench@example.com",
        "serve",
    ])?;
    let state = cli::build_state(Arc::new(cli.config))?;
    cli::migrate(&state.pool).await?;
    cli::migrate_read_models(&state.read_pool).await?;
    let (stop, stopped) = watch::channel(false);
    let relay =
        tokio::spawn(Relay::new(state.pool.clone(), state.config.kafka()).run(stopped.clone()));
    let projector = tokio::spawn(
        Projector::new(
            state.read_pool.clone(),
            state.pool.clone(),
            state.config.kafka(),
            topic.clone(),
        )
        .run(stopped),
    );
    let app = board::http::app(state.clone());

    // An admin to post with.
    let (status, _) = call(&app, "POST", "/signup", None,
        json!({"email": "bench@example.com", "password": "benchmark password", "nickname": "bench"})).await;
    assert_eq!(status, 201);
    let mail = std::fs::read_dir(&mail_dir)?.next().unwrap()?.path();
    let text = std::fs::read_to_string(mail)?;
    let start = text.find("/verify?").unwrap();
    let verify: String = text[start..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect();
    assert_eq!(call(&app, "GET", &verify, None, Value::Null).await.0, 200);
    let (_, tokens) = call(
        &app,
        "POST",
        "/auth",
        None,
        json!({"email": "bench@example.com", "password": "benchmark password"}),
    )
    .await;
    let token = tokens["accessToken"].as_str().unwrap().to_string();
    let (_, category) = call(
        &app,
        "POST",
        "/board/categories",
        Some(&token),
        json!({"name": "Bench"}),
    )
    .await;
    let category = category["categoryId"].as_str().unwrap().to_string();
    let read_pool = MySqlPool::connect(&read_url).await?;

    let mut end_to_end = Vec::with_capacity(count);
    let mut after_answer = Vec::with_capacity(count);
    for i in 0..count + 20 {
        let sent = Instant::now();
        let (status, body) = call(
            &app,
            "POST",
            &format!("/board/categories/{category}/posts"),
            Some(&token),
            json!({"title": format!("Post {i}"), "content": "x"}),
        )
        .await;
        assert_eq!(status, 201);
        let answered = Instant::now();
        let id = body["postId"].as_str().unwrap().to_string();
        loop {
            let version = projections::queries::applied_version(&read_pool, "post", &id).await?;
            if version >= Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        if i >= 20 {
            // The first 20 warm up connections and caches.
            end_to_end.push(sent.elapsed());
            after_answer.push(answered.elapsed());
        }
    }

    // Baseline: one row inserted into MySQL (autocommit) and read back, same connection pool.
    sqlx::query("CREATE TABLE bench_baseline (id CHAR(36) PRIMARY KEY, v BIGINT)")
        .execute(&read_pool)
        .await?;
    let mut baseline = Vec::with_capacity(count);
    for _ in 0..count {
        let id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        sqlx::query("INSERT INTO bench_baseline VALUES (?, 1)")
            .bind(&id)
            .execute(&read_pool)
            .await?;
        let _: i64 = sqlx::query_scalar("SELECT v FROM bench_baseline WHERE id = ?")
            .bind(&id)
            .fetch_one(&read_pool)
            .await?;
        baseline.push(started.elapsed());
    }

    println!(
        "\ncommand-to-read-model latency at rest ({count} posts, one at a time, 3 partitions)\n"
    );
    let total = report("command sent -> visible in read model", end_to_end);
    report("command answered -> visible in read model", after_answer);
    let base = report("baseline: MySQL insert + read back", baseline);
    println!(
        "\nratio (end to end / baseline, p50): {:.1}x",
        total.as_secs_f64() / base.as_secs_f64()
    );

    let _ = stop.send(true);
    let _ = tokio::join!(relay, projector);
    Ok(())
}
