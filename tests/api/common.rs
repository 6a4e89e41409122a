//! The test harness: a real Board application on its own fresh PostgreSQL database,
//! called through its router without a socket, plus helpers that read as the client flow.

use std::path::PathBuf;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};
use sqlx::PgPool;
use tower::ServiceExt;
use uuid::Uuid;

use board::app::App;
use testkit::{Stack, StackBuilder};

pub use testkit::ADMIN_EMAIL;
pub const PASSWORD: &str = "correct horse battery";

/// One test's application, called through its router without a socket.
#[derive(Clone)]
pub struct TestApp {
    pub router: Router,
    pub state: App,
    pub pool: PgPool,
    pub mail_dir: PathBuf,
    /// All of it, as built (databases, topic, how to start the relay and projector).
    pub stack: Stack,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::with_args(&[]).await
    }

    /// An application configured by `board`'s own flags, plus `extra`.
    pub async fn with_args(extra: &[&str]) -> Self {
        Self::built(Stack::for_tests().args(extra)).await
    }

    /// An application on the event store at `database_url` (which may be unreachable).
    pub async fn on_database(database_url: &str, extra: &[&str], migrate: bool) -> Self {
        Self::built(
            Stack::for_tests()
                .event_store(database_url)
                .migrate(migrate)
                .args(extra),
        )
        .await
    }

    pub async fn built(builder: StackBuilder) -> Self {
        let stack = builder
            .build()
            .await
            .expect("a test application (is `make services` up?)");
        Self {
            router: stack.router.clone(),
            state: stack.app.clone(),
            pool: stack.app.pool.clone(),
            mail_dir: stack.mail_dir.clone(),
            stack,
        }
    }

    pub fn request(&self, method: Method, path: &str) -> Req {
        Req {
            router: self.router.clone(),
            method,
            path: path.to_string(),
            headers: HeaderMap::new(),
            body: Vec::new(),
        }
    }

    /// Waits until what `/metrics` and `/health/ready` keep of the stores (for
    /// `STATUS_CACHE_TTL`) has expired: their next answer is read after this call.
    pub async fn outwait_kept_figures(&self) {
        tokio::time::sleep(self.state.config.status_cache_ttl).await;
    }

    pub fn get(&self, path: &str) -> Req {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Req {
        self.request(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Req {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Req {
        self.request(Method::DELETE, path)
    }

    /// Signs up; returns the account id.
    pub async fn sign_up(&self, email: &str, nickname: &str) -> Uuid {
        self.sign_up_with(email, nickname, PASSWORD).await
    }

    /// Signs up with `password`; returns the account id.
    pub async fn sign_up_with(&self, email: &str, nickname: &str, password: &str) -> Uuid {
        let res = self
            .post("/signup")
            .json(json!({ "email": email, "password": password, "nickname": nickname }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()["accountId"].as_str().unwrap().parse().unwrap()
    }

    /// The messages mailed to `email` so far, oldest first, read from the file transport's
    /// folder (its file names are UUIDv7s, so they sort by time).
    pub fn mails_to(&self, email: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(&self.mail_dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.extension().is_some_and(|e| e == "eml"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| std::fs::read_to_string(path).unwrap())
            .filter(|text| text.contains(&format!("To: {email}")))
            .collect()
    }

    /// The verification link of the first mail to `email`.
    pub fn verification_link(&self, email: &str) -> String {
        self.verification_links(email)
            .into_iter()
            .next()
            .unwrap_or_else(|| panic!("no mail to {email} in {}", self.mail_dir.display()))
    }

    /// Every verification link mailed to `email`, oldest first.
    pub fn verification_links(&self, email: &str) -> Vec<String> {
        self.mails_to(email)
            .iter()
            .filter_map(|text| word_after(text, "http://board.test/verify?verify_id="))
            .collect()
    }

    /// A whole password reset by the owner of `email`'s mailbox: asks for a link, reads it
    /// from the mail and sets `new_password` through it.
    pub async fn reset_password(&self, email: &str, new_password: &str) {
        let asked = self
            .post("/password-reset")
            .json(json!({ "email": email }))
            .send()
            .await;
        assert_eq!(asked.status, StatusCode::ACCEPTED, "{}", asked.text());
        let token = self.password_reset_token(email).await;
        let done = self
            .post("/password-reset/confirm")
            .json(json!({ "token": token, "password": new_password }))
            .send()
            .await;
        assert_eq!(done.status, StatusCode::NO_CONTENT, "{}", done.text());
    }

    /// The token of the newest password-reset mail to `email`. The mail goes out in the
    /// background after the 202, so this waits for it to be written.
    pub async fn password_reset_token(&self, email: &str) -> String {
        for _ in 0..500 {
            let token = self.mails_to(email).iter().rev().find_map(|text| {
                text.contains("Subject: Reset your Board password")
                    .then(|| reset_token(text))
                    .flatten()
            });
            if let Some(token) = token {
                return token;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!(
            "no password-reset mail to {email} in {}",
            self.mail_dir.display()
        );
    }

    /// Follows the mailed link; returns the `GET /verify` path and query.
    pub async fn verify(&self, email: &str) {
        let link = self.verification_link(email);
        let path = link.trim_start_matches("http://board.test");
        let res = self.get(path).send().await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
    }

    /// `POST /auth` with `password`, whatever it answers.
    pub async fn log_in_with(&self, email: &str, password: &str) -> Res {
        self.post("/auth")
            .json(json!({ "email": email, "password": password }))
            .send()
            .await
    }

    pub async fn log_in(&self, email: &str) -> Value {
        let res = self
            .post("/auth")
            .json(json!({ "email": email, "password": PASSWORD }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text());
        res.json()
    }

    /// A verified, logged-in account.
    pub async fn member(&self, email: &str, nickname: &str) -> Member {
        let id = self.sign_up(email, nickname).await;
        self.verify(email).await;
        let tokens = self.log_in(email).await;
        Member {
            id,
            token: tokens["accessToken"].as_str().unwrap().to_string(),
            refresh: tokens["refreshToken"].as_str().unwrap().to_string(),
        }
    }

    /// The admin listed in the configuration, verified and logged in.
    pub async fn admin(&self) -> Member {
        self.member(ADMIN_EMAIL, "admin").await
    }

    /// `events export` of the whole store as JSON Lines, and how many events it wrote.
    pub async fn export_jsonl(&self) -> (String, u64) {
        let mut out = Vec::new();
        let (count, _) = board::history::export(
            &self.pool,
            &Default::default(),
            board::history::Format::Jsonl,
            &mut out,
            &|_| {},
            &tokio::sync::watch::channel(false).1,
        )
        .await
        .unwrap();
        (String::from_utf8(out).unwrap(), count)
    }

    /// Creates a category as `admin`; returns its id.
    pub async fn category(&self, admin: &Member, name: &str) -> String {
        let res = self
            .post("/board/categories")
            .bearer(&admin.token)
            .json(json!({ "name": name }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()["categoryId"].as_str().unwrap().to_string()
    }

    /// Creates a post; returns its id.
    pub async fn post_in(&self, author: &Member, category_id: &str) -> String {
        let res = self
            .post(&format!("/board/categories/{category_id}/posts"))
            .bearer(&author.token)
            .json(json!({ "title": "Hello", "content": "First post" }))
            .send()
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text());
        res.json()["postId"].as_str().unwrap().to_string()
    }

    /// The usual starting point: Ann (a verified member) and her post in a category that
    /// the configured admin created.
    pub async fn with_post(&self) -> Board {
        let admin = self.admin().await;
        let ann = self.member("ann@example.com", "ann").await;
        let category = self.category(&admin, "Rust").await;
        let post = self.post_in(&ann, &category).await;
        Board {
            ann,
            category,
            post,
        }
    }

    /// Every stored event as (aggregate type, event type, payload, metadata), in global order.
    pub async fn events(&self) -> Vec<(String, String, Value, Value)> {
        sqlx::query_as(
            "SELECT aggregate_type, event_type, payload, metadata FROM events
              ORDER BY transaction_id, global_position",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

/// The characters of `text` from `prefix` up to the next white space, prefix included.
fn word_after(text: &str, prefix: &str) -> Option<String> {
    let start = text.find(prefix)?;
    Some(
        text[start..]
            .chars()
            .take_while(|c| !c.is_whitespace())
            .collect(),
    )
}

/// The token in a password-reset mail: the line after the one naming the endpoint.
fn reset_token(text: &str) -> Option<String> {
    let mut lines = text
        .lines()
        .skip_while(|line| !line.contains("/password-reset/confirm"));
    lines.next()?;
    lines
        .map(str::trim)
        .find(|line| !line.is_empty())
        .map(str::to_string)
}

pub struct Board {
    pub ann: Member,
    pub category: String,
    pub post: String,
}

#[derive(Clone)]
pub struct Member {
    pub id: Uuid,
    pub token: String,
    pub refresh: String,
}

impl Member {
    /// The verified member as the command side sees it, for tests that call the board
    /// service directly.
    pub fn actor(&self, role: aggregates::Role) -> aggregates::Actor {
        aggregates::Actor {
            account_id: self.id,
            role,
            verified: true,
        }
    }
}

/// A request under construction.
pub struct Req {
    router: Router,
    method: Method,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Req {
    pub fn json(self, value: Value) -> Self {
        self.raw("application/json", value.to_string().into_bytes())
    }

    pub fn raw(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(content_type).unwrap(),
        );
        self.body = body;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.insert(
            HeaderName::try_from(name).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub fn basic(self, email: &str, password: &str) -> Self {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{email}:{password}"));
        self.header("authorization", &format!("Basic {encoded}"))
    }

    pub async fn send(self) -> Res {
        let mut request = Request::builder()
            .method(self.method)
            .uri(self.path)
            .body(Body::from(self.body))
            .unwrap();
        *request.headers_mut() = self.headers;
        let response = self.router.oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
        Res {
            status,
            headers,
            body: body.to_vec(),
        }
    }
}

pub struct Res {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Res {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem document with `status`; returns it.
    #[track_caller]
    pub fn problem(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "{}", self.text());
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text()
        );
        let doc = self.json();
        assert_eq!(doc["status"], status.as_u16(), "{doc}");
        assert!(doc["type"].is_string() && doc["title"].is_string() && doc["detail"].is_string());
        doc
    }
}
