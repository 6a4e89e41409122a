//! The OpenAPI document against the live server: Swagger UI rendering it in a real
//! headless browser, and schemathesis generating requests from it.
//!
//! Both tools are installed by `scripts/services.sh tools` (`make test` runs it).

use std::path::PathBuf;
use std::process::{Command, Output};

use axum::http::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::common::TestApp;
use crate::devtools::{chromium, HEADLESS};
use crate::pipeline::Pipeline;

/// Serves `app` on a loopback socket, as `board serve` does; returns its base URL.
async fn serve(app: &TestApp) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let served = board::http::server::serve(listener, app.state.clone(), std::future::pending());
    tokio::spawn(served);
    format!("http://{address}")
}

/// Runs a blocking tool to completion off the test's runtime.
async fn run(mut command: Command) -> Output {
    let program = command.get_program().to_string_lossy().into_owned();
    tokio::task::spawn_blocking(move || command.output())
        .await
        .unwrap()
        .unwrap_or_else(|e| {
            panic!("{program} did not start ({e}); run `scripts/services.sh tools`")
        })
}

fn schemathesis() -> PathBuf {
    std::env::var_os("SCHEMATHESIS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".local/schemathesis/bin/st")
        })
}

async fn document(app: &TestApp) -> Value {
    let res = app.get("/openapi.json").send().await;
    assert_eq!(res.status, StatusCode::OK);
    res.json()
}

#[tokio::test]
async fn the_docs_page_renders_every_endpoint_in_a_headless_browser() {
    let app = TestApp::spawn().await;
    let base = serve(&app).await;
    let doc = document(&app).await;
    let profile = tempdir("board-chromium");

    let mut command = Command::new(chromium());
    command.args(HEADLESS).args([
        // Lets Swagger UI fetch /openapi.json and render before the DOM is dumped.
        "--virtual-time-budget=30000",
        "--dump-dom",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command.arg(format!("{base}/docs/"));
    let output = run(command).await;
    let dom = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );

    assert!(dom.contains("Board API"), "the page shows no title:\n{dom}");
    let mut operations = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        // Swagger UI renders each operation as a block with its path in `data-path`.
        let marker = format!("data-path=\"{path}\"");
        let rendered = dom.matches(&marker).count();
        let documented = item.as_object().unwrap().len();
        assert_eq!(
            rendered, documented,
            "{path}: {documented} operations documented, {rendered} rendered"
        );
        operations += rendered;
    }
    assert!(operations >= 20, "only {operations} operations rendered");
    let _ = std::fs::remove_dir_all(profile);
}

/// Property-based: schemathesis generates requests from the document (valid ones and
/// invalid ones), sends them to the live server and checks each answer: never a 5xx,
/// and status, content type, headers and body all as documented.
#[tokio::test]
async fn generated_requests_get_documented_answers_and_never_a_server_error() {
    // A whole pipeline, relay and projector included: the links between operations carry
    // `Event-Position` from a command to its reads, which wait (up to READ_WAIT_TIMEOUT)
    // for the read models to show the command; without a projector every such read
    // would wait its whole bound, and some outlasted the tool's 10-second timeout.
    let pipeline = Pipeline::new(1).await;
    let _relay = pipeline.start_relay();
    let _projector = pipeline.start_projector();
    let app = &pipeline.app;
    let base = serve(app).await;
    // Authenticated as an admin, so generated commands get past 401 to the rules, and
    // on real resources, so they get past 404 to the aggregates.
    let admin = app.admin().await;
    let category = app.category(&admin, "Schemathesis").await;
    let post = app.post_in(&admin, &category).await;
    let res = app
        .post(&format!("/board/posts/{post}/comments"))
        .bearer(&admin.token)
        .json(serde_json::json!({ "content": "A comment" }))
        .send()
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
    let comment = res.json()["commentId"].as_str().unwrap().to_string();

    let work = tempdir("board-schemathesis");
    let config = format!(
        "[parameters]\n\
         \"path.categoryId\" = \"{category}\"\n\
         \"path.postId\" = \"{post}\"\n\
         \"path.commentId\" = \"{comment}\"\n"
    );
    std::fs::write(work.join("schemathesis.toml"), config).unwrap();
    let mut command = Command::new(schemathesis());
    command
        .args(["run", &format!("{base}/openapi.json")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,\
             response_headers_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            // Reproducible: the same requests on every run.
            "--seed",
            "1",
            "--no-color",
            "--suppress-health-check",
            "all",
        ])
        .args([
            "--header",
            &format!("Authorization: Bearer {}", admin.token),
        ])
        .current_dir(&work);
    let output = run(command).await;
    let report = String::from_utf8_lossy(&output.stdout);
    println!("{report}");
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The generated requests reached the aggregates, not only the validation in front:
    // besides what this test seeded, they created and deleted things.
    let events = app.events().await;
    let count = |wanted: &str| events.iter().filter(|(_, t, _, _)| t == wanted).count();
    assert!(
        count("PostCreated") > 1 && count("PostDeleted") + count("CommentDeleted") > 0,
        "the generated commands changed nothing: {:?}",
        events.iter().map(|(_, t, _, _)| t).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(work);
}

fn tempdir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
