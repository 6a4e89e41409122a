//! Health and metrics: `/health/live` (the process answers), `/health/ready` (each
//! dependency, reported on its own; 503 when any is down, so a load balancer can route
//! around it; a slow broker or stalled read models are reported as `degraded`).

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use super::schema::{Liveness, Readiness};
use crate::app::App;
use crate::status::PartitionState;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the broker may take to say where the events topic ends before it counts as
/// down. A healthy local broker answers in milliseconds; this is far above that, and
/// under a load balancer's usual probe limit.
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);
/// Answers slower than this are reported as `slow`.
const BROKER_SLOW: Duration = Duration::from_millis(500);

pub fn router() -> Router<App> {
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
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

/// Whether PostgreSQL, MySQL and the broker each answer, and whether the read models
/// keep up.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers. `status` is `degraded` when the broker answers slowly or a partition of the read models is stalled; `checks` says which", body = Readiness),
        (status = 503, description = "Some dependency is down; `checks` says which", body = Readiness),
    )
)]
pub(super) async fn ready(State(state): State<App>) -> Response {
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
        state.broker.topic_ends(BROKER_TIMEOUT),
    );
    let answered = |result: &Result<Result<(), sqlx::Error>, _>| {
        if matches!(result, Ok(Ok(()))) {
            Check::Up
        } else {
            Check::Down
        }
    };
    let (mysql_check, broker_check) = (
        answered(&mysql),
        match &broker {
            Ok(answer) if answer.took <= BROKER_SLOW => Check::Up,
            Ok(_) => Check::Slow,
            Err(_) => Check::Down,
        },
    );
    let read_models = match (&broker, mysql_check) {
        (Ok(answer), Check::Up) => {
            let partitions = crate::status::partitions(
                &state.read_pool,
                Some(answer.ends.clone()),
                &state.config.kafka_topic,
                &state.config.projector_group,
            );
            match tokio::time::timeout(CHECK_TIMEOUT, partitions).await {
                Ok(Ok(list)) if list.iter().any(|p| p.state == PartitionState::Stalled) => {
                    Check::Stalled
                }
                Ok(Ok(_)) => Check::Up,
                _ => Check::Unknown,
            }
        }
        _ => Check::Unknown,
    };
    let checks = [
        ("postgres", answered(&postgres)),
        ("mysql", mysql_check),
        ("broker", broker_check),
        ("readModels", read_models),
    ];
    let down = checks.iter().any(|(_, check)| *check == Check::Down);
    let all_up = checks.iter().all(|(_, check)| *check == Check::Up);
    let body = Readiness {
        status: if all_up { "ok" } else { "degraded" }.to_string(),
        checks: checks
            .iter()
            .map(|(name, check)| (name.to_string(), check.as_str().to_string()))
            .collect(),
    };
    let status = if down {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}

/// One line of readiness. Only `down` takes the server out of rotation: a slow broker or
/// a stalled projector does not keep this server from answering, and every replica would
/// see the same, so they are reported (status `degraded`) but the answer stays 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Up,
    /// Answered, but slower than [`BROKER_SLOW`].
    Slow,
    Down,
    /// A partition of the read models is behind and nobody keeps up with it.
    Stalled,
    /// Could not be judged (what it rests on is down).
    Unknown,
}

impl Check {
    fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Slow => "slow",
            Self::Down => "down",
            Self::Stalled => "stalled",
            Self::Unknown => "unknown",
        }
    }
}
