//! Health: `/health/live` (the process answers) and `/health/ready` (each dependency,
//! reported on its own; 503 when any is down, so a load balancer can route around it; a
//! slow broker or stalled read models are reported as `degraded`). The checks themselves
//! are [`crate::status::readiness`].
//!
//! Readiness is read at most once per `STATUS_CACHE_TTL` whatever the number of probes
//! (see [`crate::cached`]), so a probe may answer from a round of checks up to that old:
//! a dependency that stops answering turns readiness 503 within `STATUS_CACHE_TTL` plus
//! two rounds of checks (at most [`readiness::LONGEST_ROUND`] each: the round under way
//! may have asked before the outage).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::json::Json;

use super::schema::{Liveness, Readiness};
use crate::app::App;
use crate::status::readiness;

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
/// keep up, as checked at most `STATUS_CACHE_TTL` ago.
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
    let checks = state.readiness.clone();
    let readiness = checks
        .get(move || async move {
            readiness::check(
                &state.pool,
                &state.read_pool,
                &state.broker,
                &state.config.projector_group,
            )
            .await
        })
        .await;
    let body = Readiness {
        status: if readiness.all_up() { "ok" } else { "degraded" }.to_string(),
        checks: readiness
            .checks
            .iter()
            .map(|(name, check)| (name.to_string(), check.as_str().to_string()))
            .collect(),
    };
    let status = if readiness.any_down() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (status, Json(body)).into_response()
}
