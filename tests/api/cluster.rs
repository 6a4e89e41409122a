//! Board as a cluster, started by `scripts/cluster.sh` as `make cluster` starts it: nginx
//! in front of two API replicas, two relays and two projectors, on the test's own
//! databases and topic; every request goes through nginx.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::SemaphorePermit;
use tokio::task::JoinHandle;

use crate::http_client::{self, Reply};
use crate::private_services::{free_ports, room_for_board_processes, Workdir};
use crate::sse_client;

const ADMIN: &str = "admin@example.com";
const PASSWORD: &str = "a long enough password";

/// A cluster on scratch stores, stopped (every process) when dropped.
struct LocalCluster {
    work: Workdir,
    /// Settings of every part beyond the stores' (`NAME`, value).
    settings: Vec<(&'static str, &'static str)>,
    stack: testkit::Stack,
    nginx: SocketAddr,
    replicas: Vec<SocketAddr>,
    /// Each replica's `/metrics`, on an address of its own.
    metrics: Vec<SocketAddr>,
    /// The cluster's place among the processes tests run at once; dropped after `down`.
    _room: SemaphorePermit<'static>,
}

/// What `cluster.sh up` starts: two API replicas, two relays, two projectors.
const PROCESSES: u32 = 6;

impl LocalCluster {
    async fn up() -> Self {
        Self::up_with(&[]).await
    }

    async fn up_with(settings: &[(&'static str, &'static str)]) -> Self {
        let room = room_for_board_processes(PROCESSES).await;
        let stack = testkit::Stack::for_tests()
            .fresh_read_models()
            .scratch_topic(&testkit::brokers(), 3)
            .admin_email(ADMIN)
            .build()
            .await
            .unwrap();
        let [nginx, first, second, first_metrics, second_metrics] =
            free_ports().map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        let cluster = Self {
            work: Workdir::new("board-cluster"),
            settings: settings.to_vec(),
            stack,
            nginx,
            replicas: vec![first, second],
            metrics: vec![first_metrics, second_metrics],
            _room: room,
        };
        let up = cluster.script(&["up"]).await;
        assert!(up.status.success(), "cluster.sh up: {}", describe(&up));
        cluster
    }

    /// `scripts/cluster.sh ARGS` with this cluster's settings and nothing else: not `.env`,
    /// nor what `make` exported from it.
    fn command(&self, args: &[&str]) -> Command {
        let ports = |addresses: &[SocketAddr]| {
            let ports: Vec<String> = addresses.iter().map(|a| a.port().to_string()).collect();
            ports.join(" ")
        };
        let mut command = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/cluster.sh"));
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DOTENV_FILE", "/dev/null")
            .env("CLUSTER_DIR", self.work.path())
            .env("CLUSTER_LISTEN", self.nginx.to_string())
            .env("CLUSTER_API_PORTS", ports(&self.replicas))
            .env("CLUSTER_METRICS_PORTS", ports(&self.metrics))
            .env("BOARD_BIN", env!("CARGO_BIN_EXE_board"))
            .env("DATABASE_URL", &self.stack.database_url)
            .env("READ_DATABASE_URL", &self.stack.read_url)
            .env("KAFKA_BROKERS", &self.stack.brokers)
            .env("KAFKA_TOPIC", &self.stack.topic)
            .env("PROJECTOR_GROUP", &self.stack.group)
            .env("ADMIN_EMAILS", ADMIN)
            .env("MAIL_DIR", &self.stack.mail_dir)
            .env("RUST_LOG", "warn")
            // Killed before its clean-up, this test leaves nothing running.
            .env("CLUSTER_OWNER_PID", std::process::id().to_string())
            .envs(self.settings.iter().copied());
        command
    }

    async fn script(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().expect("run scripts/cluster.sh"))
            .await
            .unwrap()
    }

    /// A verified account, signed up through nginx; logged in on `replica`.
    async fn account(&self, email: &str, nickname: &str, replica: SocketAddr) -> String {
        let signed_up = http_client::send(
            self.nginx,
            "POST",
            "/signup",
            None,
            Some(&json!({ "email": email, "password": PASSWORD, "nickname": nickname })),
        )
        .await
        .unwrap();
        assert_eq!(signed_up.status, 201, "{signed_up:?}");
        let link = verification_link(&self.stack.mail_dir, email);
        let verified = http_client::send(self.nginx, "GET", &link, None, None)
            .await
            .unwrap();
        assert_eq!(verified.status, 200, "{verified:?}");
        let logged_in = http_client::send(
            replica,
            "POST",
            "/auth",
            None,
            Some(&json!({ "email": email, "password": PASSWORD })),
        )
        .await
        .unwrap();
        assert_eq!(logged_in.status, 200, "{logged_in:?}");
        logged_in.json().unwrap()["accessToken"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// How many `GET /board/categories` replica `replica` (0 or 1) has answered, by its
    /// metrics.
    async fn lists_served_by(&self, replica: usize) -> f64 {
        let metrics = http_client::send(self.metrics[replica], "GET", "/metrics", None, None)
            .await
            .unwrap();
        String::from_utf8_lossy(&metrics.body)
            .lines()
            .filter(|line| {
                line.starts_with("http_request_duration_seconds_count{")
                    && line.contains("method=\"GET\"")
                    && line.contains("route=\"/board/categories\"")
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        let _ = self.command(&["down"]).output();
    }
}

fn describe(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The verification link mailed to `email` (the `file` transport writes one file a mail).
fn verification_link(mail_dir: &std::path::Path, email: &str) -> String {
    for entry in std::fs::read_dir(mail_dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        if text.contains(email) {
            if let Some(start) = text.find("/verify?") {
                return text[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace())
                    .collect();
            }
        }
    }
    panic!("no verification mail for {email}");
}

#[tokio::test]
async fn requests_spread_over_the_replicas_and_a_token_from_one_is_accepted_by_the_other() {
    let cluster = LocalCluster::up().await;
    let (first, second) = (cluster.replicas[0], cluster.replicas[1]);
    let token = cluster.account(ADMIN, "admin", first).await;
    // Issued by the first replica, with the secret the script generated for the cluster.
    let on_second = http_client::send(
        second,
        "POST",
        "/board/categories",
        Some(&token),
        Some(&json!({ "name": "Clustered" })),
    )
    .await
    .unwrap();
    assert_eq!(on_second.status, 201, "{on_second:?}");

    let before = [
        cluster.lists_served_by(0).await,
        cluster.lists_served_by(1).await,
    ];
    for _ in 0..40 {
        let reply = http_client::send(cluster.nginx, "GET", "/board/categories", None, None)
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    let after = [
        cluster.lists_served_by(0).await,
        cluster.lists_served_by(1).await,
    ];
    let served: Vec<f64> = (0..2).map(|i| after[i] - before[i]).collect();
    assert_eq!(served.iter().sum::<f64>(), 40.0, "{served:?}");
    assert!(
        served.iter().all(|n| *n >= 10.0),
        "nginx spreads the requests over both replicas: {served:?}"
    );
}

/// What a load through nginx sent and got.
#[derive(Debug, Default)]
struct Tally {
    sent: usize,
    answered: usize,
    /// Requests that got no answer or a 5xx, after the client's retries.
    failed: Vec<String>,
    /// Posts the load was told were created: (idempotency key, post id).
    created: Vec<(String, String)>,
}

/// Clients creating posts and reading lists through nginx until stopped. A post that
/// fails is retried with its Idempotency-Key, as a careful client does, up to 10 times.
struct Load {
    stop: Arc<AtomicBool>,
    clients: Vec<JoinHandle<Tally>>,
}

impl Load {
    fn start(nginx: SocketAddr, token: &str, category: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let clients = (0..clients)
            .map(|client| {
                let (stop, token) = (stop.clone(), token.to_string());
                let category = category.to_string();
                tokio::spawn(async move {
                    let mut tally = Tally::default();
                    let mut turn = 0;
                    while !stop.load(Ordering::SeqCst) {
                        turn += 1;
                        if turn % 2 == 0 {
                            read(nginx, &category, &mut tally).await;
                        } else {
                            let key = format!("load-{client}-{turn}");
                            create(nginx, &token, &category, &key, &mut tally).await;
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    tally
                })
            })
            .collect();
        Self { stop, clients }
    }

    async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        let mut total = Tally::default();
        for client in self.clients {
            let tally = client.await.unwrap();
            total.sent += tally.sent;
            total.answered += tally.answered;
            total.failed.extend(tally.failed);
            total.created.extend(tally.created);
        }
        total
    }
}

fn failure(reply: &std::io::Result<Reply>) -> Option<String> {
    match reply {
        Ok(reply) if reply.status < 500 => None,
        Ok(reply) => Some(format!(
            "{} {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )),
        Err(e) => Some(e.to_string()),
    }
}

async fn read(nginx: SocketAddr, category: &str, tally: &mut Tally) {
    tally.sent += 1;
    let path = format!("/board/categories/{category}/posts");
    let reply = http_client::send(nginx, "GET", &path, None, None).await;
    match failure(&reply) {
        None => tally.answered += 1,
        Some(why) => tally.failed.push(format!("GET {path}: {why}")),
    }
}

async fn create(nginx: SocketAddr, token: &str, category: &str, key: &str, tally: &mut Tally) {
    tally.sent += 1;
    let path = format!("/board/categories/{category}/posts");
    let body = json!({ "title": "Under load", "content": key });
    let mut last = String::new();
    for _ in 0..10 {
        let reply = http_client::send_with(
            nginx,
            "POST",
            &path,
            Some(token),
            &[("Idempotency-Key", key)],
            Some(&body),
        )
        .await;
        let pause = match &reply {
            // The first attempt's claim on the key is held by a replica that died: it
            // runs out (30 s) and a retry then takes the key over.
            Ok(reply) if reply.status == 409 && reply.header("retry-after").is_some() => {
                let seconds = reply.header("retry-after").unwrap().parse().unwrap();
                last = "409, the first attempt still running".into();
                Duration::from_secs(seconds)
            }
            Ok(reply) if reply.status < 500 => {
                assert_eq!(reply.status, 201, "{reply:?}");
                let post = reply.json().unwrap()["postId"]
                    .as_str()
                    .unwrap()
                    .to_string();
                tally.answered += 1;
                tally.created.push((key.to_string(), post));
                return;
            }
            other => {
                last = failure(other).unwrap();
                Duration::from_millis(200)
            }
        };
        tokio::time::sleep(pause).await;
    }
    tally.failed.push(format!("POST {path} ({key}): {last}"));
}

/// Every post the load was told about is in the event store once: no key made two.
async fn assert_created_once(cluster: &LocalCluster, tally: &Tally) {
    let pool = sqlx::PgPool::connect(&cluster.stack.database_url)
        .await
        .unwrap();
    let stored: Vec<(String, String)> = sqlx::query_as(
        "SELECT aggregate_id, payload->'PostCreated'->>'content' FROM events
          WHERE event_type = 'PostCreated'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut per_key: HashMap<String, usize> = HashMap::new();
    for (_, content) in &stored {
        *per_key.entry(content.clone()).or_default() += 1;
    }
    let stored_ids: HashSet<&str> = stored.iter().map(|(id, _)| id.as_str()).collect();
    for (key, post) in &tally.created {
        assert!(
            stored_ids.contains(post.as_str()),
            "{key}: post {post} not stored"
        );
        assert_eq!(
            per_key.get(key),
            Some(&1),
            "{key} created {:?} posts",
            per_key.get(key)
        );
    }
}

/// An admin's token and a category, made through nginx.
async fn seeded(cluster: &LocalCluster) -> (String, String) {
    let token = cluster.account(ADMIN, "admin", cluster.nginx).await;
    let category = http_client::send(
        cluster.nginx,
        "POST",
        "/board/categories",
        Some(&token),
        Some(&json!({ "name": "Load" })),
    )
    .await
    .unwrap();
    assert_eq!(category.status, 201, "{category:?}");
    let id = category.json().unwrap()["categoryId"]
        .as_str()
        .unwrap()
        .to_string();
    (token, id)
}

#[tokio::test]
async fn a_rolling_restart_under_load_fails_no_request_and_creates_nothing_twice() {
    let cluster = LocalCluster::up().await;
    let (token, category) = seeded(&cluster).await;
    let load = Load::start(cluster.nginx, &token, &category, 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rolled = cluster.script(&["roll"]).await;
    assert!(
        rolled.status.success(),
        "cluster.sh roll: {}",
        describe(&rolled)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let tally = load.stop().await;
    println!(
        "rolling restart under load: {} sent, {} answered, {} failed",
        tally.sent,
        tally.answered,
        tally.failed.len()
    );
    assert!(tally.sent > 50, "the load ran through the roll: {tally:?}");
    assert_eq!(tally.failed, Vec::<String>::new(), "no request failed");
    assert_eq!(tally.answered, tally.sent);
    assert_created_once(&cluster, &tally).await;
}

#[tokio::test]
async fn a_replica_killed_under_load_loses_no_accepted_command() {
    let cluster = LocalCluster::up().await;
    let (token, category) = seeded(&cluster).await;
    let load = Load::start(cluster.nginx, &token, &category, 4);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = cluster.script(&["kill", "api-1"]).await;
    assert!(
        killed.status.success(),
        "cluster.sh kill: {}",
        describe(&killed)
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let tally = load.stop().await;
    println!(
        "one replica killed under load: {} sent, {} answered, {} failed",
        tally.sent,
        tally.answered,
        tally.failed.len()
    );
    // A request in flight on the killed replica may fail (a POST is not retried by nginx
    // once sent); the client's retry with its key then lands on the other replica.
    assert_eq!(
        tally.failed,
        Vec::<String>::new(),
        "no request failed for good"
    );
    assert_created_once(&cluster, &tally).await;

    // Everything now goes to the survivor.
    let before = cluster.lists_served_by(1).await;
    for _ in 0..10 {
        let reply = http_client::send(cluster.nginx, "GET", "/board/categories", None, None)
            .await
            .unwrap();
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    assert_eq!(cluster.lists_served_by(1).await - before, 10.0);
}

#[tokio::test]
async fn each_client_behind_nginx_has_its_own_limits() {
    // Two client machines (two loopback addresses) log in badly through nginx. Every
    // request reaches a replica from nginx's address; the replicas count each client by
    // the address nginx forwards, so one client's exhausted limit leaves the other's, and
    // a client cannot spend another's by naming it.
    // A low limit, so that one client meets it sooner than it refills however slowly the
    // machine answers.
    let cluster = LocalCluster::up_with(&[("AUTH_RATE_PER_MINUTE", "2")]).await;
    let (flooder, bystander) = ("127.0.0.2".parse().unwrap(), "127.0.0.3".parse().unwrap());
    let attempt = json!({ "email": "nobody@example.com", "password": "wrong password" });
    // The flooder also claims to be the bystander: nginx appends the address it really
    // came from, and that right-most hop is the one counted.
    let forged = [("X-Forwarded-For", "127.0.0.3")];
    let mut refused = None;
    for sent in 1..=20 {
        let reply = http_client::post_from(flooder, cluster.nginx, "/auth", &forged, &attempt)
            .await
            .unwrap();
        if reply.status == 429 {
            refused = Some(sent);
            break;
        }
        assert_eq!(reply.status, 401, "{reply:?}");
    }
    assert!(refused.is_some(), "one client was never limited");
    let other = http_client::post_from(bystander, cluster.nginx, "/auth", &[], &attempt)
        .await
        .unwrap();
    assert_eq!(
        other.status, 401,
        "another client is not limited: {other:?}"
    );
}

#[tokio::test]
async fn live_updates_pass_through_nginx_as_they_happen() {
    let cluster = LocalCluster::up().await;
    let (token, category) = seeded(&cluster).await;
    let path = format!("/board/live?categoryId={category}");
    let opened = sse_client::open(cluster.nginx, &path, None).await;
    assert_eq!(opened.status, 200, "{}", opened.head);
    let mut stream = opened.stream;
    let post = http_client::send(
        cluster.nginx,
        "POST",
        &format!("/board/categories/{category}/posts"),
        Some(&token),
        Some(&json!({ "title": "Through nginx", "content": "as it happens" })),
    )
    .await
    .unwrap();
    assert_eq!(post.status, 201, "{post:?}");
    let post = post.json().unwrap()["postId"].as_str().unwrap().to_string();
    // On the stream opened before it, through nginx, while the stream stays open.
    let message = loop {
        let message = stream.next_message().await.expect("the stream ended");
        if message.json()["postId"] == post.as_str() {
            break message;
        }
    };
    assert_eq!(message.event.as_deref(), Some("postCreated"));
}
