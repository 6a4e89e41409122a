//! What the benchmarks share: a whole Board (API, relay, projector) on scratch databases
//! and a scratch topic, driven through its router, and percentile reporting.

#![allow(dead_code)] // each benchmark uses part of it

pub mod flood;
pub mod http;
pub mod kafka_leg;
pub mod live;
pub mod long_history;
pub mod machine;
pub mod processes;

use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::http::Request;
use serde_json::{json, Value};
use sqlx::MySqlPool;
use tower::ServiceExt;

use board::app::App;

/// The stack's one account: an admin, verified, logged in as [`Stack::token`].
pub const MEMBER_EMAIL: &str = "bench@example.com";
pub const MEMBER_PASSWORD: &str = "benchmark password";

pub struct Stack {
    pub app: axum::Router,
    pub state: App,
    pub database_url: String,
    pub read_url: String,
    pub read_pool: MySqlPool,
    pub topic: String,
    pub token: String,
    pub category: String,
    /// The relay and the projector, as started.
    parts: std::sync::Mutex<Vec<testkit::Running>>,
}

impl Stack {
    /// A migrated Board on fresh databases, with an admin logged in and one category.
    /// `relay` and `projector` say which background components run.
    ///
    /// Every command of a benchmark is one account's, many at a time; the per-account limit
    /// on commands in flight (fairness between accounts, which one account cannot measure)
    /// is raised above any benchmark's concurrency. [`Stack::start_as_deployed`] keeps it.
    pub async fn start(relay: bool, projector: bool) -> anyhow::Result<Self> {
        Self::start_with(relay, projector, &["--commands-per-account", "1024"]).await
    }

    /// A stack with the server's own limits, for figures about them.
    pub async fn start_as_deployed(relay: bool, projector: bool) -> anyhow::Result<Self> {
        Self::start_with(relay, projector, &[]).await
    }

    async fn start_with(relay: bool, projector: bool, args: &[&str]) -> anyhow::Result<Self> {
        // Logs only when asked for: `RUST_LOG=board=debug make bench`.
        if std::env::var_os("RUST_LOG").is_some() {
            board::telemetry::init(board::config::LogFormat::Text);
        }
        let built = testkit::Stack::for_benchmarks()
            .fresh_read_models()
            .scratch_topic(&testkit::brokers(), 3)
            .admin_email(MEMBER_EMAIL)
            .args(args)
            .build()
            .await?;
        board::app::migrate_read_models(&built.app.read_pool).await?;
        let mut parts = Vec::new();
        if relay {
            parts.push(built.start_relay());
        }
        if projector {
            parts.push(built.start_projector()?);
        }
        let (state, database_url, read_url, topic, mail_dir) = (
            built.app.clone(),
            built.database_url.clone(),
            built.read_url.clone(),
            built.topic.clone(),
            built.mail_dir.clone(),
        );
        let app = board::http::app(state.clone());
        let (status, _) = call(
            &app,
            "POST",
            "/signup",
            None,
            json!({"email": MEMBER_EMAIL, "password": MEMBER_PASSWORD, "nickname": "bench"}),
        )
        .await;
        anyhow::ensure!(status == 201, "sign-up failed: {status}");
        let mail = std::fs::read_dir(&mail_dir)?.next().unwrap()?.path();
        let text = std::fs::read_to_string(mail)?;
        let start = text.find("/verify?").unwrap();
        let verify: String = text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect();
        anyhow::ensure!(
            call(&app, "GET", &verify, None, Value::Null).await.0 == 200,
            "verify failed"
        );
        let (_, tokens) = call(
            &app,
            "POST",
            "/auth",
            None,
            json!({"email": MEMBER_EMAIL, "password": MEMBER_PASSWORD}),
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
        if relay && projector {
            // Ready once an event went all the way: the producer and the consumer have
            // met the broker, so no figure measures their first connection.
            while projections::queries::applied_version(&read_pool, "category", &category)
                .await?
                .is_none()
            {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        Ok(Self {
            app,
            state,
            database_url,
            read_url,
            read_pool,
            topic,
            token,
            category,
            parts: std::sync::Mutex::new(parts),
        })
    }

    /// The name of another scratch topic: it begins as the stack's own, so the same
    /// clean-up removes it (`scripts/services.sh prune`).
    pub fn scratch_topic(&self, suffix: &str) -> String {
        format!("{}-{suffix}", self.topic)
    }

    pub async fn create_post(&self, i: usize) -> (u16, Value) {
        call(
            &self.app,
            "POST",
            &format!("/board/categories/{}/posts", self.category),
            Some(&self.token),
            json!({"title": format!("Post {i}"), "content": "benchmark content"}),
        )
        .await
    }

    /// Waits until the read model shows post `id`, looking every `poll`.
    pub async fn wait_visible(&self, id: &str, poll: Duration) -> anyhow::Result<()> {
        loop {
            let version =
                projections::queries::applied_version(&self.read_pool, "post", id).await?;
            if version >= Some(1) {
                return Ok(());
            }
            tokio::time::sleep(poll).await;
        }
    }

    /// Stops the relay and the projector (the API goes on): the Kafka leg at rest.
    pub async fn stop_background(&self) {
        let parts = std::mem::take(&mut *self.parts.lock().unwrap());
        for part in parts {
            part.stop().await;
        }
    }

    pub async fn stop(self) {
        self.stop_background().await;
    }
}

/// `GET path` with no credentials; returns the status and the body's length. The body
/// is read to its end but not parsed: a query's figure is what the server does, and
/// parsing its answer was work of this load generator on the same two cores.
pub async fn get(app: &axum::Router, path: &str) -> (u16, usize) {
    let request = Request::builder()
        .method("GET")
        .uri(path)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, bytes.len())
}

pub async fn call(
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
    let body = if body.is_null() {
        Body::empty()
    } else {
        Body::from(body.to_string())
    };
    let response = app
        .clone()
        .oneshot(request.body(body).unwrap())
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// p50, p99 and max of `samples`, in milliseconds.
pub fn percentiles(mut samples: Vec<Duration>) -> (f64, f64, f64) {
    samples.sort();
    let at = |p: f64| {
        samples[((samples.len() as f64 - 1.0) * p).round() as usize].as_secs_f64() * 1000.0
    };
    (
        at(0.5),
        at(0.99),
        samples.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    )
}

pub fn report(label: &str, samples: Vec<Duration>) -> f64 {
    let (p50, p99, max) = percentiles(samples);
    println!("{label:<44} p50 {p50:>7.2} ms   p99 {p99:>7.2} ms   max {max:>7.2} ms");
    p50
}

/// The floor any read-model update stands on: one row inserted into MySQL and read back.
pub async fn mysql_round_trip(
    pool: &sqlx::MySqlPool,
    count: usize,
) -> anyhow::Result<Vec<Duration>> {
    sqlx::query("CREATE TABLE IF NOT EXISTS bench_round_trip (id CHAR(36) PRIMARY KEY, v BIGINT)")
        .execute(pool)
        .await?;
    let mut samples = Vec::with_capacity(count);
    for _ in 0..count {
        let id = uuid::Uuid::now_v7().to_string();
        let started = Instant::now();
        sqlx::query("INSERT INTO bench_round_trip VALUES (?, 1)")
            .bind(&id)
            .execute(pool)
            .await?;
        let _: i64 = sqlx::query_scalar("SELECT v FROM bench_round_trip WHERE id = ?")
            .bind(&id)
            .fetch_one(pool)
            .await?;
        samples.push(started.elapsed());
    }
    Ok(samples)
}
