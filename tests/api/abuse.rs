//! Hostile and careless clients: what one client does must not take Board down, or
//! grow it without bound, for the others.

use axum::http::{Method, StatusCode};

use crate::common::TestApp;

/// Every made-up method would be a new label value of the request histogram, kept for
/// the life of the process: 300 of them grew `/metrics` by 4,500 lines.
#[tokio::test]
async fn made_up_methods_do_not_mint_metric_series() {
    let app = TestApp::spawn().await;
    for i in 0..300 {
        let method = Method::from_bytes(format!("X{i}Y").as_bytes()).unwrap();
        let res = app.request(method, "/board/categories").send().await;
        assert_eq!(res.status, StatusCode::METHOD_NOT_ALLOWED, "{}", res.text());
    }
    let metrics = app
        .get("/metrics")
        .header("accept", "text/plain")
        .send()
        .await
        .text();
    let minted: Vec<&str> = metrics
        .lines()
        .filter(|line| line.contains("method=\"X"))
        .collect();
    assert!(
        minted.is_empty(),
        "{} series name a made-up method, e.g. {:?}",
        minted.len(),
        minted.first()
    );
    assert!(
        metrics.contains("method=\"other\",route=\"/board/categories\",status=\"405\""),
        "made-up methods are counted as `other`"
    );
}
