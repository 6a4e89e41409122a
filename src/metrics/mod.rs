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

use std::collections::HashMap;
use std::sync::{OnceLock, PoisonError, RwLock};
use std::time::Duration;

use axum::http::Method;
use metrics::Histogram;
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
    RequestHistograms::global().record(method_label(method), route, status, elapsed);
}

/// The request histograms seen so far, by route, then method and status.
///
/// `histogram!` finds its histogram by building the whole key on every call (the route and
/// the status formatted into new strings, the key hashed and then compared label by label
/// in the recorder's registry). A query's whole HTTP path is a few tens of microseconds,
/// and that was a measurable part of it (docs/PERFORMANCE.md, "Queries"); a request here
/// finds its handle under a read lock, with no allocation. The handles are the recorder's
/// own, so what `/metrics` renders is unchanged. They stay valid because the recorder
/// never drops a series (no `idle_timeout` in [`install`]); with one, a kept handle
/// would record into a series no longer rendered.
struct RequestHistograms(RwLock<HashMap<String, Vec<RequestSeries>>>);

/// One route's histogram for one method and status.
struct RequestSeries {
    method: &'static str,
    status: u16,
    histogram: Histogram,
}

impl RequestHistograms {
    fn global() -> &'static Self {
        static SEEN: OnceLock<RequestHistograms> = OnceLock::new();
        SEEN.get_or_init(|| {
            // A handle taken before the recorder is installed would record nowhere.
            handle();
            Self(RwLock::default())
        })
    }

    fn record(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let seen = self.0.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(route_series) = seen.get(route) {
            if let Some(index) = Self::position(route_series, method, status) {
                route_series[index].histogram.record(seconds);
                return;
            }
        }
        drop(seen);
        let mut seen = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let route_series = seen.entry(route.to_string()).or_default();
        // Another request may have added it between the two locks.
        let index = Self::position(route_series, method, status).unwrap_or_else(|| {
            route_series.push(RequestSeries {
                method,
                status,
                histogram: metrics::histogram!(
                    "http_request_duration_seconds",
                    "method" => method,
                    "route" => route.to_string(),
                    "status" => status.to_string(),
                ),
            });
            route_series.len() - 1
        });
        route_series[index].histogram.record(seconds);
    }

    fn position(route_series: &[RequestSeries], method: &str, status: u16) -> Option<usize> {
        route_series
            .iter()
            .position(|series| series.method == method && series.status == status)
    }
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

    #[test]
    fn each_request_is_counted_in_its_own_series() {
        let route = "/metrics-test/{id}";
        for status in [200, 200, 404] {
            record_request(&Method::GET, route, status, Duration::from_millis(3));
        }
        record_request(&Method::POST, route, 200, Duration::from_millis(3));
        let text = handle().render();
        let count = |method: &str, status: &str| {
            let series = format!(
                "http_request_duration_seconds_count{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} "
            );
            text.lines()
                .find_map(|line| line.strip_prefix(&series))
                .unwrap_or_else(|| panic!("no {series} in\n{text}"))
                .to_string()
        };
        assert_eq!(count("GET", "200"), "2");
        assert_eq!(count("GET", "404"), "1");
        assert_eq!(count("POST", "200"), "1");
    }
}
