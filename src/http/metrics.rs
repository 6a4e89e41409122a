//! `/metrics`: what this process recorded ([`crate::metrics`]), then the figures read
//! from the stores and the broker: where the relay and the projectors are against the
//! event store (the same figures `board projections status` prints), and the progress
//! rebuilds publish to the read database.
//!
//! Those figures are read at most once per `STATUS_CACHE_TTL` (1 s), whatever the number
//! of scrapes: a scrape within that time of the last reading gets its text again (see
//! [`crate::cached`]), so a flood of scrapes costs the stores one round of queries per
//! period. They are written straight into the text, never kept in the process-wide
//! recorder. A recorder would keep the last value it was given: a gauge for a relay that
//! is gone, or a lag from before the broker went away, would go on being reported as if
//! measured now; and two servers in one process (the tests) would overwrite each other's.
//!
//! - `board_status_refreshes_total{figures}`: rounds of reading the stores and the broker
//!   this server made, for `metrics` and for `readiness` (`/health/ready`);
//! - `board_status_up`: 1 when the event store and the read database answered for the lag
//!   at the last reading (projector lag is left out on its own while the broker cannot be
//!   asked);
//! - `board_events_head_position`: the global position of the newest event (read off an
//!   index; an exact count of the events would read the whole table at every scrape:
//!   `board projections status` gives one);
//! - `board_relay_lag_events{relay}`, `board_relay_lag_seconds{relay}`;
//! - `board_projector_lag_events{projector,partition}`,
//!   `board_projector_lag_seconds{projector,partition}`;
//! - `board_projector_partition_stalled{projector,partition}`: 1 while a partition is
//!   behind and nobody keeps up with it (see `crate::status::PartitionState`);
//! - `board_projector_quarantined_events{projector}`: events the read models could not
//!   apply, and those of their aggregates waiting behind them (see `projections::fold`);
//! - `board_rebuild_running{projection}` (1 while a rebuild runs, in whatever process;
//!   0 once it ended, or when it has not reported for [`STALE_REBUILD`], having died),
//!   `board_rebuild_events_applied{projection}`, `board_rebuild_events_total{projection}`
//!   and `board_rebuild_report_age_seconds{projection}`;
//! - `board_purge_last_run_age_seconds`: since the last finished round of the purge, by
//!   the database's clock (it grows without bound when no replica runs the purge), and
//!   `board_purge_last_run_rows{kind}`: the rows that round removed of each kind (a gauge
//!   of one round, not a counter).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::problem::PROBLEM_JSON;
use super::schema::Problem;
use crate::app::App;
use crate::jobs::runs::Run;
use crate::metrics::exposition::Family;
use crate::rebuild::RebuildRow;
use crate::status::{PartitionState, PartitionStatus, RelayStatus, Status};

/// A scrape must answer even when a dependency hangs; what could not be read in time is
/// left out (and `board_status_up` says so).
const STATUS_TIMEOUT: Duration = Duration::from_secs(5);
const REBUILD_TIMEOUT: Duration = Duration::from_secs(2);
const JOBS_TIMEOUT: Duration = Duration::from_secs(2);

/// A rebuild publishes its progress every second; one silent for longer than this has
/// died without recording its end (kill -9, a lost host).
const STALE_REBUILD: f64 = 30.0;

/// Prometheus metrics, in the text exposition format. Served on this port only while
/// `METRICS_ADDR` is unset in development; otherwise on that address alone (in
/// production `127.0.0.1:9464` by default), and this port answers 404. The figures read
/// from the databases and the broker are at most `STATUS_CACHE_TTL` (1 s) old.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
        (status = 404, description = "`/metrics` is served on `METRICS_ADDR`, not on this port", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn metrics(State(state): State<App>) -> Response {
    let read = {
        let state = state.clone();
        move || async move { read_figures(&state).await }
    };
    let figures = state.scrape_figures.get(read).await;
    let mut body = crate::metrics::handle().render();
    body.push_str(&figures);
    write_refreshes(&mut body, &state);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// The figures from the stores and the broker, written out: what is kept between scrapes.
async fn read_figures(state: &App) -> Arc<str> {
    let (status, rebuilds, purge) = tokio::join!(status(state), rebuilds(state), last_purge(state));
    let mut out = String::new();
    write_lag(&mut out, status.as_ref());
    write_rebuilds(&mut out, &rebuilds);
    write_purge(&mut out, purge.as_ref());
    out.into()
}

fn write_refreshes(out: &mut String, state: &App) {
    Family::counter(
        out,
        "board_status_refreshes_total",
        "Rounds of reading the stores and the broker, at most one per STATUS_CACHE_TTL each",
    )
    .sample(
        &[("figures", "metrics")],
        state.scrape_figures.refreshes() as f64,
    )
    .sample(
        &[("figures", "readiness")],
        state.readiness.refreshes() as f64,
    );
}

async fn status(state: &App) -> Option<Status> {
    let collect = crate::status::collect(
        &state.pool,
        &state.read_pool,
        &state.broker,
        &state.config.projector_group,
    );
    match tokio::time::timeout(STATUS_TIMEOUT, collect).await {
        Ok(Ok(status)) => Some(status),
        Ok(Err(error)) => {
            tracing::warn!(error = %format!("{error:#}"), "lag metrics unavailable");
            None
        }
        Err(_) => {
            tracing::warn!("lag metrics timed out");
            None
        }
    }
}

async fn rebuilds(state: &App) -> Vec<RebuildRow> {
    let read = crate::rebuild::published_progress(&state.read_pool);
    match tokio::time::timeout(REBUILD_TIMEOUT, read).await {
        Ok(Ok(rows)) => rows,
        Ok(Err(error)) => {
            tracing::warn!(%error, "rebuild progress unavailable");
            Vec::new()
        }
        Err(_) => {
            tracing::warn!("reading rebuild progress timed out");
            Vec::new()
        }
    }
}

async fn last_purge(state: &App) -> Option<Run> {
    let read = crate::jobs::runs::latest(&state.pool, crate::jobs::purge::JOB, true);
    match tokio::time::timeout(JOBS_TIMEOUT, read).await {
        Ok(Ok(run)) => run,
        Ok(Err(error)) => {
            tracing::warn!(%error, "the purge's last round is unavailable");
            None
        }
        Err(_) => {
            tracing::warn!("reading the purge's last round timed out");
            None
        }
    }
}

fn write_lag(out: &mut String, status: Option<&Status>) {
    let up = if status.is_some() { 1.0 } else { 0.0 };
    Family::gauge(out, "board_status_up", "1 when the stores answered").sample(&[], up);
    let Some(status) = status else { return };
    if let Some(position) = status.head.global_position {
        Family::gauge(
            out,
            "board_events_head_position",
            "Global position of the newest event in the store",
        )
        .sample(&[], position as f64);
    }

    type RelayValue = fn(&RelayStatus) -> f64;
    let relays: [(&'static str, &str, RelayValue); 2] = [
        ("board_relay_lag_events", "Events not yet published", |r| {
            r.lag_events as f64
        }),
        (
            "board_relay_lag_seconds",
            "Age of the oldest event not yet published",
            |r| r.lag_seconds,
        ),
    ];
    for (name, help, value) in relays {
        let mut gauge = Family::gauge(out, name, help);
        for relay in &status.relays {
            gauge.sample(&[("relay", &relay.name)], value(relay));
        }
    }

    // A partition whose end the broker could not tell has no lag to report.
    type PartitionValue = fn(&PartitionStatus) -> Option<f64>;
    let partitions: [(&'static str, &str, PartitionValue); 3] = [
        (
            "board_projector_lag_events",
            "Messages not yet applied, per partition",
            |p| p.lag_events.map(|lag| lag as f64),
        ),
        (
            "board_projector_lag_seconds",
            "Age of the last applied event while behind, per partition",
            |p| p.lag_seconds,
        ),
        (
            "board_projector_partition_stalled",
            "1 while a partition is behind and nobody keeps up with it",
            |p| match p.state {
                PartitionState::Unknown => None,
                PartitionState::Stalled => Some(1.0),
                _ => Some(0.0),
            },
        ),
    ];
    for (name, help, value) in partitions {
        let mut gauge = Family::gauge(out, name, help);
        for p in &status.projectors {
            if let Some(lag) = value(p) {
                let partition = p.partition.to_string();
                gauge.sample(
                    &[("projector", &p.projector), ("partition", &partition)],
                    lag,
                );
            }
        }
    }

    Family::gauge(
        out,
        "board_projector_quarantined_events",
        "Events not applied: those that could not be, and those waiting behind them",
    )
    .sample(
        &[("projector", projections::fold::READ_MODELS)],
        status.quarantined_events as f64,
    );
}

fn write_rebuilds(out: &mut String, rows: &[RebuildRow]) {
    type Value = fn(&RebuildRow) -> f64;
    let families: [(&'static str, &str, Value); 4] = [
        ("board_rebuild_running", "1 while a rebuild runs", |row| {
            let running = row.state == "running" && row.age_seconds < STALE_REBUILD;
            if running {
                1.0
            } else {
                0.0
            }
        }),
        (
            "board_rebuild_events_applied",
            "Events the last rebuild has applied",
            |row| row.events_applied as f64,
        ),
        (
            "board_rebuild_events_total",
            "Events the last rebuild set out to apply",
            |row| row.events_total as f64,
        ),
        (
            "board_rebuild_report_age_seconds",
            "Seconds since the rebuild last reported",
            |row| row.age_seconds,
        ),
    ];
    for (name, help, value) in families {
        let mut gauge = Family::gauge(out, name, help);
        for row in rows {
            gauge.sample(&[("projection", &row.projection)], value(row));
        }
    }
}

/// Nothing when no round ever finished (or the event store did not answer): an age made
/// up for a round that never ran would read as a healthy one.
fn write_purge(out: &mut String, run: Option<&Run>) {
    let Some(run) = run else { return };
    Family::gauge(
        out,
        "board_purge_last_run_age_seconds",
        "Seconds since the purge of stored helpers last finished a round",
    )
    .sample(&[], run.age_seconds);
    let mut rows = Family::gauge(
        out,
        "board_purge_last_run_rows",
        "Rows the purge's last finished round removed, by kind",
    );
    for (kind, count) in &run.removed {
        rows.sample(&[("kind", kind)], *count as f64);
    }
}
