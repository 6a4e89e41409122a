//! Prometheus metrics, served at `/metrics` (expose it to your scraper, not the public).
//!
//! Two kinds, rendered into one text:
//! - events this process saw, kept in the process-wide recorder:
//!   `http_request_duration_seconds{method,route,status}` (a histogram per route
//!   template) and `board_commands_total{aggregate,outcome}` (accepted, rejected by a
//!   rule, conflict, precondition_failed, unavailable, error) and
//!   `board_read_wait_polls_total` (rounds of the poll behind `Event-Position` waits),
//!   and the live updates' `board_live_streams` (open now),
//!   `board_live_messages_sent_total`, `board_live_subscribers_dropped_total` (too slow)
//!   and `board_live_delivery_lag_seconds` (event recorded to message sent, a histogram);
//! - facts about the databases and the broker, read fresh at each scrape by the
//!   `/metrics` handler (`http::metrics`): the pipeline's lag and the progress of
//!   rebuilds, written with [`exposition`].
//!
//! This module records and renders; it knows nothing of the application above it, so
//! every layer may record into it.

pub mod exposition;

use std::sync::OnceLock;
use std::time::Duration;

use axum::http::Method;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

const LATENCY_BUCKETS: [f64; 12] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// How often the histograms' recorded samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The process-wide recorder, installed on first use, with its upkeep.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = install();
        spawn_upkeep(handle.clone());
        handle
    })
}

/// The recorder keeps every sample of a histogram until something folds them into the
/// buckets: a scrape does, and so does `run_upkeep`, which `install_recorder` leaves to
/// its caller. Without it, a process nobody scrapes grew by 16 bytes for every request
/// and every live message, for ever (measured: 32 MiB more after each 2,000,000 requests;
/// with the upkeep, no growth after the first interval). A thread of its own, not a
/// task: the recorder is the process's, not one runtime's.
fn spawn_upkeep(handle: PrometheusHandle) {
    std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        })
        .expect("a thread for the metrics' upkeep");
}

fn install() -> PrometheusHandle {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            &LATENCY_BUCKETS,
        )
        .expect("the buckets are not empty")
        .set_buckets_for_metric(
            Matcher::Full("board_live_delivery_lag_seconds".into()),
            &LATENCY_BUCKETS,
        )
        .expect("the buckets are not empty")
        .install_recorder()
        .expect("no other metrics recorder is installed")
}

/// Records one request. `route` must be a route template (or `unmatched`), never a raw
/// path, and methods outside the standard ones count as `other`: a label takes one value
/// per series kept for ever, so a client must not be able to mint new ones.
pub fn record_request(method: &Method, route: &str, status: u16, elapsed: Duration) {
    metrics::histogram!(
        "http_request_duration_seconds",
        "method" => method_label(method),
        "route" => route.to_string(),
        "status" => status.to_string(),
    )
    .record(elapsed.as_secs_f64());
}

/// Counts one command by its aggregate and outcome (`accepted`, or
/// [`crate::store::CommandError::outcome`]).
pub fn record_command(aggregate: &'static str, outcome: &'static str) {
    metrics::counter!("board_commands_total", "aggregate" => aggregate, "outcome" => outcome)
        .increment(1);
}

/// Counts one round of the shared poll that serves the queries waiting on
/// `Event-Position` (`read_waits`): it grows with time spent waiting, not with waiters.
pub fn record_read_wait_poll() {
    metrics::counter!("board_read_wait_polls_total").increment(1);
}

/// A live-update stream opened (`1`) or ended (`-1`): `board_live_streams` is the number
/// open now.
pub fn record_live_streams(change: i8) {
    metrics::gauge!("board_live_streams").increment(f64::from(change));
}

/// One live message sent to one subscriber; `lag` (from the event's recording to its
/// sending) for a live message, `None` for one replayed after `Last-Event-ID`.
pub fn record_live_message_sent(lag: Option<Duration>) {
    metrics::counter!("board_live_messages_sent_total").increment(1);
    if let Some(lag) = lag {
        metrics::histogram!("board_live_delivery_lag_seconds").record(lag.as_secs_f64());
    }
}

/// One live subscriber disconnected for falling too far behind.
pub fn record_live_subscriber_dropped() {
    metrics::counter!("board_live_subscribers_dropped_total").increment(1);
}

/// The method as a label: one of the standard methods, or `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_label() {
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        for made_up in ["X1Y", "FETCH", "get"] {
            let method = Method::from_bytes(made_up.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{made_up}");
        }
    }
}
