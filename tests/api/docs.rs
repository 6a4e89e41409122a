//! The OpenAPI document against the live server: Swagger UI rendering it in a real
//! headless browser, and schemathesis generating requests from it.
//!
//! Both tools are installed by `scripts/services.sh tools` (`make test` runs it).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, Output};

use axum::http::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

use crate::common::{Member, TestApp, PASSWORD};
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

/// Who a schemathesis run acts as.
enum Caller {
    /// No credentials at all, as a client before it signs up.
    Anonymous,
    /// A verified member: its access token on every operation that takes one, and its
    /// email and password where `GET /auth` asks for Basic credentials.
    Member { email: String, token: String },
}

/// Property-based, as a client team would run it: schemathesis generates requests from
/// the document (valid and invalid ones, in every phase, the stateful one following the
/// document's links), sends them to the live server and applies every check it has.
/// Never a 5xx; every status, content type, header and body as documented; every
/// request the document calls valid is accepted and every invalid one refused.
#[tokio::test]
async fn generated_requests_of_a_client_without_an_account_get_documented_answers() {
    let seeded = Seeded::new().await;
    let ids = seeded.content_of(&seeded.admin).await;
    seeded.run_schemathesis(Caller::Anonymous, &ids).await;
    // The stateful phase went from a sign-up to a log-in and on to a post: the hook
    // verified the address (as the mailbox's owner would), and the links carried the
    // sign-up's credentials to the log-in and its token to the post.
    let events = seeded.pipeline.app.events().await;
    let authors: BTreeSet<_> = events
        .iter()
        .filter_map(|(_, _, payload, _)| payload.pointer("/PostCreated/author_id"))
        .filter_map(Value::as_str)
        .collect();
    let admin = seeded.admin.id.to_string();
    assert!(
        authors.iter().any(|author| *author != admin),
        "no account the stateful phase signed up wrote a post: authors {authors:?}"
    );
}

#[tokio::test]
async fn generated_requests_of_a_verified_member_get_documented_answers() {
    let seeded = Seeded::new().await;
    let app = &seeded.pipeline.app;
    let email = "member@example.com".to_string();
    let member = app.member(&email, "member").await;
    // The member's own post and comment: generated edits and deletes may succeed.
    let ids = seeded.content_of(&member).await;
    let caller = Caller::Member {
        email,
        token: member.token.clone(),
    };
    seeded.run_schemathesis(caller, &ids).await;
    // The generated requests reached the aggregates, not only the validation in front:
    // the member's commands created and deleted things.
    let events = app.events().await;
    let count = |wanted: &str| events.iter().filter(|(_, t, _, _)| t == wanted).count();
    assert!(
        count("PostCreated") > 1 && count("PostDeleted") + count("CommentDeleted") > 0,
        "the generated commands changed nothing: {:?}",
        events.iter().map(|(_, t, _, _)| t).collect::<Vec<_>>()
    );
}

/// A served pipeline with a category, for the path parameters, so generated requests get
/// past 404 to the rules and the aggregates.
struct Seeded {
    // A whole pipeline, relay and projector included: the links between operations carry
    // `Event-Position` from a command to its reads, which wait (up to READ_WAIT_TIMEOUT)
    // for the read models to show the command; without a projector every such read
    // would wait its whole bound, and some outlasted the tool's timeout.
    pipeline: Pipeline,
    _relay: testkit::Running,
    _projector: testkit::Running,
    base: String,
    admin: Member,
    category: String,
}

impl Seeded {
    async fn new() -> Self {
        let pipeline = Pipeline::new(1).await;
        let relay = pipeline.start_relay();
        let projector = pipeline.start_projector();
        let app = &pipeline.app;
        let base = serve(app).await;
        let admin = app.admin().await;
        let category = app.category(&admin, "Schemathesis").await;
        Self {
            base,
            admin,
            category,
            pipeline,
            _relay: relay,
            _projector: projector,
        }
    }

    /// A post and a comment of `author` in the category: the ids of every path parameter.
    async fn content_of(&self, author: &Member) -> [(&'static str, String); 3] {
        let app = &self.pipeline.app;
        let post = app.post_in(author, &self.category).await;
        let res = app
            .post(&format!("/board/posts/{post}/comments"))
            .bearer(&author.token)
            .json(serde_json::json!({ "content": "A comment" }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        let comment = res.json()["commentId"].as_str().unwrap().to_string();
        [
            ("categoryId", self.category.clone()),
            ("postId", post),
            ("commentId", comment),
        ]
    }

    /// Runs schemathesis with every check and phase as `caller`, and fails on any failure.
    async fn run_schemathesis(&self, caller: Caller, ids: &[(&str, String)]) {
        let app = &self.pipeline.app;
        let work = tempdir("board-schemathesis");
        let config = schemathesis_config(&document(app).await, ids, &caller);
        std::fs::write(work.join("schemathesis.toml"), &config).unwrap();
        let hooks = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/schemathesis");
        let mut command = Command::new(schemathesis());
        command
            .args(["run", &format!("{}/openapi.json", self.base)])
            .args([
                "--checks",
                "all",
                "--max-examples",
                "40",
                // Reproducible: the same requests on every run.
                "--seed",
                "1",
                "--no-color",
                "--suppress-health-check",
                "all",
            ])
            .env("PYTHONPATH", &hooks)
            .env("SCHEMATHESIS_HOOKS", "board_hooks")
            .env("BOARD_TEST_MAIL_DIR", &app.mail_dir)
            .current_dir(&work);
        let output = run(command).await;
        let report = String::from_utf8_lossy(&output.stdout);
        println!("{report}");
        assert!(
            output.status.success(),
            "schemathesis found failures:\n{report}\n{}\nconfig:\n{config}",
            String::from_utf8_lossy(&output.stderr)
        );
        let _ = std::fs::remove_dir_all(work);
    }
}

/// The run's `schemathesis.toml`: the seeded ids, the caller's credentials, and for each
/// operation the answers a valid request may get besides the tool's defaults.
///
/// A schema says which requests are well formed, not what state they meet. The tool
/// already allows 404 and 409 for that; an operation that documents 412 (a condition in
/// `If-Match` or `Event-Position` that the store does not meet) or 422 (an account's
/// `Idempotency-Key` used before for another request) may answer those too. 400 is never
/// among them: a request the document calls valid that gets one is a failure.
fn schemathesis_config(doc: &Value, ids: &[(&str, String)], caller: &Caller) -> String {
    // The stateful phase's sequences are drawn at random, a few steps each; longer and
    // more of them make the chain sign-up, log-in, post, read a likely one.
    let mut config =
        String::from("[phases.stateful]\nmax-steps = 10\ngeneration.max-examples = 150\n\n");
    // A body over MAX_BODY_BYTES is refused before it is read, with the documented 413,
    // which the tool does not count among refusals of invalid data.
    config += "[checks.negative_data_rejection]\nexpected-statuses = [\"400\", \"401\", \
        \"403\", \"404\", \"405\", \"406\", \"409\", \"413\", \"415\", \"422\", \"428\", \
        \"429\", \"5xx\"]\n\n[parameters]\n";
    for (name, id) in ids {
        config += &format!("\"path.{name}\" = \"{id}\"\n");
    }
    match caller {
        // Left to itself the tool signs up, and (the hook verifying the address) logs in,
        // and then sends that account's token everywhere: not a client without one.
        Caller::Anonymous => config += "\n[auth]\nauto-signup = false\n",
        Caller::Member { email, token } => {
            config += &format!(
                "\n[auth.openapi.bearer]\nbearer = \"{token}\"\n\
                 \n[auth.openapi.basic]\nusername = \"{email}\"\npassword = \"{PASSWORD}\"\n"
            )
        }
    }
    const DEFAULT: [&str; 8] = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let mut settings = String::new();
            let documented = |status: &str| operation["responses"].get(status).is_some();
            let extra: Vec<_> = ["412", "422"]
                .into_iter()
                .filter(|s| documented(s))
                .collect();
            if !extra.is_empty() {
                let statuses: Vec<String> = DEFAULT
                    .iter()
                    .chain(&extra)
                    .map(|s| format!("\"{s}\""))
                    .collect();
                settings += &format!(
                    "checks.positive_data_acceptance.expected-statuses = [{}]\n",
                    statuses.join(", ")
                );
            }
            // A stream stays open: the tool reads it until its request timeout (10 s by
            // default, for each of the 40 examples), then checks the messages it got.
            if operation["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some()
            {
                settings += "request-timeout = 1.0\n";
            }
            if !settings.is_empty() {
                let name = format!("{} {path}", method.to_uppercase());
                config += &format!("\n[[operations]]\ninclude-name = \"{name}\"\n{settings}");
            }
        }
    }
    config
}

fn tempdir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("{prefix}-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
