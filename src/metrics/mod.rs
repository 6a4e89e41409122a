//! Prometheus metrics, served at `/metrics` (expose it to your scraper, not the public).
//!
//! - `http_request_duration_seconds{method,route,status}`: a histogram per route template;
//! - `board_commands_total{aggregate,outcome}`: accepted, rejected (by a rule), conflict,
//!   precondition_failed, unavailable, error;
//! - `board_relay_lag_events{relay}`, `board_relay_lag_seconds{relay}` and
//!   `board_projector_lag_events{partition}`, `board_projector_lag_seconds{partition}`:
//!   measured at scrape time, the same figures `board projections status` prints;
//! - `board_events_total`: events in the store.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::http::AppState;
use crate::store::CommandError;

const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".into()),
                &LATENCY_BUCKETS,
            )
            .expect("the buckets are not empty")
            .install_recorder()
            .expect("no other metrics recorder is installed")
    })
}

pub fn record_request(method: &str, route: &str, status: u16, elapsed: Duration) {
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method.to_string(),
        "route" => route.to_string(),
        "status" => status.to_string(),
    )
    .record(elapsed.as_secs_f64());
}

pub fn record_command<T>(aggregate: &'static str, result: &Result<T, CommandError>) {
    let outcome = match result {
        Ok(_) => "accepted",
        Err(CommandError::Domain(_)) => "rejected",
        Err(CommandError::Conflict) => "conflict",
        Err(CommandError::VersionMismatch { .. }) => "precondition_failed",
        Err(CommandError::Unavailable(_)) => "unavailable",
        Err(CommandError::Unexpected(_)) => "error",
    };
    metrics::counter!("board_commands_total", "aggregate" => aggregate, "outcome" => outcome)
        .increment(1);
}

/// Renders every metric, after measuring the pipeline's lag.
pub async fn render(state: &AppState) -> String {
    let status = tokio::time::timeout(
        Duration::from_secs(5),
        crate::status::collect(&state.pool, &state.read_pool, &state.config.kafka()),
    )
    .await;
    match status {
        Ok(Ok(status)) => {
            metrics::gauge!("board_events_total").set(status.head.events as f64);
            for relay in &status.relays {
                metrics::gauge!("board_relay_lag_events", "relay" => relay.name.clone())
                    .set(relay.lag_events as f64);
                metrics::gauge!("board_relay_lag_seconds", "relay" => relay.name.clone())
                    .set(relay.lag_seconds);
            }
            for partition in &status.projectors {
                let label = partition.partition.to_string();
                if let Some(lag) = partition.lag_events {
                    metrics::gauge!("board_projector_lag_events", "partition" => label.clone())
                        .set(lag as f64);
                }
                if let Some(lag) = partition.lag_seconds {
                    metrics::gauge!("board_projector_lag_seconds", "partition" => label).set(lag);
                }
            }
        }
        Ok(Err(error)) => tracing::warn!(error = %format!("{error:#}"), "lag metrics unavailable"),
        Err(_) => tracing::warn!("lag metrics timed out"),
    }
    handle().render()
}
