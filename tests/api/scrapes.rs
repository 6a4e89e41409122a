//! Scrapes and probes: what `/metrics` and `/health/ready` cost the stores whatever the
//! number of callers, how soon readiness still tells an outage, and where `/metrics` is
//! served.

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use axum::http::StatusCode;
use futures::future::join_all;
use testkit::Stack;

use crate::common::TestApp;
use crate::http_client;
use crate::private_services::{free_ports, Daemon, Workdir};
use crate::proxy::Proxy;

/// Callers at once in the floods below.
const FLOOD: usize = 50;

/// `board_status_refreshes_total{figures="<figures>"}` as `/metrics` reports it now.
async fn refreshes(app: &TestApp, figures: &str) -> u64 {
    let text = app.get("/metrics").send().await.text();
    let prefix = format!("board_status_refreshes_total{{figures=\"{figures}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix}in:\n{text}"))
        .parse()
        .unwrap()
}

/// `FLOOD` GETs of `path` at once, each answered 200; their bodies.
async fn flood(app: &TestApp, path: &str) -> Vec<String> {
    let calls = (0..FLOOD).map(|_| app.get(path).send());
    join_all(calls)
        .await
        .into_iter()
        .map(|res| {
            assert_eq!(res.status, StatusCode::OK, "{}", res.text());
            res.text()
        })
        .collect()
}

/// Each scrape ran every query of the figures (a full count of the events table among
/// them) and asked the broker: a flood of scrapes was a flood of queries.
#[tokio::test]
async fn a_flood_of_scrapes_reads_the_stores_once_per_period() {
    // A period longer than the test: every call below falls in the first one.
    let app = TestApp::with_args(&["--status-cache-ttl", "1h"]).await;
    for text in flood(&app, "/metrics").await {
        assert!(text.contains("board_status_up "), "{text}");
    }
    assert_eq!(refreshes(&app, "metrics").await, 1);
}

#[tokio::test]
async fn a_flood_of_readiness_probes_checks_once_per_period() {
    let app = TestApp::with_args(&["--status-cache-ttl", "1h"]).await;
    flood(&app, "/health/ready").await;
    assert_eq!(refreshes(&app, "readiness").await, 1);
}

/// Kept answers must not hide an outage for long: once the last round of checks is older
/// than the period, the next probe checks again and sees the dependency down.
#[tokio::test]
async fn readiness_tells_an_outage_once_its_last_checks_are_a_period_old() {
    let ttl = Duration::from_millis(500);
    let proxy = Proxy::start("127.0.0.1:3306".parse().unwrap()).await;
    let read_url = crate::pipeline::fresh_read_database().await;
    let via_proxy = read_url.replace("127.0.0.1:3306", &proxy.addr.to_string());
    let app = TestApp::built(
        Stack::for_tests()
            .read_models_at(&read_url, Some(&via_proxy))
            .args(&["--status-cache-ttl", &format!("{}ms", ttl.as_millis())]),
    )
    .await;
    let res = app.get("/health/ready").send().await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text());

    proxy.cut();
    // Not a limit: the kept answer is no longer fresh once this has passed.
    tokio::time::sleep(ttl).await;
    let res = app.get("/health/ready").send().await;
    assert_eq!(
        res.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        res.text()
    );
    assert_eq!(res.json()["checks"]["mysql"], "down", "{}", res.text());
}

/// `board serve` with METRICS_ADDR: `/metrics` there and nowhere else, the API on its
/// own port, and both stopped by one SIGTERM.
#[tokio::test]
async fn metrics_are_served_only_on_their_own_address() {
    let stack = Stack::for_tests()
        .fresh_read_models()
        .build()
        .await
        .unwrap();
    let work = Workdir::new("board-metrics-addr");
    let [api, metrics] = free_ports().map(loopback);
    let mut command = Command::new(env!("CARGO_BIN_EXE_board"));
    command
        .args(["--database-url", &stack.database_url])
        .args(["--read-database-url", &stack.read_url])
        .args(["--listen", &api.to_string()])
        .args(["--metrics-addr", &metrics.to_string()])
        .args(["serve", "--components", "api"])
        .env("RUST_LOG", "warn");
    let mut server = Daemon::new(
        "server",
        &command,
        work.path().join("server.log"),
        Some(api.port()),
    );
    server.start().await;

    let scraped = get(metrics, "/metrics").await;
    assert_eq!(scraped.status, 200, "{scraped:?}");
    let text = String::from_utf8_lossy(&scraped.body);
    assert!(text.contains("board_status_up "), "{text}");
    assert_eq!(get(api, "/metrics").await.status, 404);
    assert_eq!(get(api, "/health/live").await.status, 200);
    // The scraper's address serves nothing else.
    assert_eq!(get(metrics, "/health/live").await.status, 404);

    let status = server.stop().await;
    assert_eq!(status.code(), Some(0), "{}", server.log_tail());
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

async fn get(address: SocketAddr, path: &str) -> http_client::Reply {
    http_client::send(address, "GET", path, None, None)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on {address}: {e}"))
}
