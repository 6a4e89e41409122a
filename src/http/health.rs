//! Health and metrics: `/health/live` (the process answers), `/health/ready` (each
//! dependency, reported on its own; 503 when any is down, so a load balancer can route
//! around it), and `/metrics` (see [`crate::metrics`]).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::ClientConfig;

use super::schema::{Liveness, Readiness};
use super::AppState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/metrics", get(metrics))
}

/// Prometheus metrics, in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let body = crate::metrics::render(&state).await;
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "operations",
    responses((status = 200, description = "Alive", body = Liveness))
)]
pub(super) async fn live() -> Json<Liveness> {
    Json(Liveness {
        status: "ok".to_string(),
    })
}

/// Whether PostgreSQL, MySQL and the broker each answer.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency is up", body = Readiness),
        (status = 503, description = "Some dependency is down; `checks` says which", body = Readiness),
    )
)]
pub(super) async fn ready(State(state): State<AppState>) -> Response {
    let postgres = async {
        sqlx::query("SELECT 1")
            .execute(&state.pool)
            .await
            .map(|_| ())
    };
    let mysql = async {
        sqlx::query("SELECT 1")
            .execute(&state.read_pool)
            .await
            .map(|_| ())
    };
    let (postgres, mysql, broker) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, postgres),
        tokio::time::timeout(CHECK_TIMEOUT, mysql),
        broker_answers(state.config.kafka_brokers.clone()),
    );
    let up = |result: &Result<Result<(), sqlx::Error>, _>| matches!(result, Ok(Ok(())));
    let checks = [
        ("postgres", up(&postgres)),
        ("mysql", up(&mysql)),
        ("broker", broker),
    ];
    let all_up = checks.iter().all(|(_, ok)| *ok);
    let body = Readiness {
        status: if all_up { "ok" } else { "degraded" }.to_string(),
        checks: checks
            .iter()
            .map(|(name, ok)| {
                (
                    name.to_string(),
                    if *ok { "up" } else { "down" }.to_string(),
                )
            })
            .collect(),
    };
    let status = if all_up {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// True when a broker answers a metadata request (a blocking call, so off the workers).
async fn broker_answers(brokers: String) -> bool {
    tokio::task::spawn_blocking(move || {
        let consumer: Result<BaseConsumer, _> = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("socket.connection.setup.timeout.ms", "1000")
            .create();
        consumer.is_ok_and(|c| c.fetch_metadata(None, CHECK_TIMEOUT).is_ok())
    })
    .await
    .unwrap_or(false)
}
