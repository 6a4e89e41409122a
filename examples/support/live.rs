//! Live updates under load: a `board serve --components api` process of its own, on a
//! stack's databases, holding many open streams while the stack's commands go on; what
//! each subscriber received, and when.
//!
//! The server is a process of its own so that its memory can be read alone; the
//! subscribers are plain sockets in this process, reading the streams as a browser would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

use super::processes::BoardProcess;
use super::Stack;

/// Connections opened at once while a fleet grows.
const OPENING_AT_ONCE: usize = 200;
/// How long a subscriber may take to receive the load's last messages once the load is
/// over; what has not arrived by then counts as missing.
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// A limit high enough never to be the one a figure meets.
const UNLIMITED: &str = "1000000";

/// An API process serving the live streams, with its limits out of the way.
pub struct ApiServer {
    process: BoardProcess,
    pub address: SocketAddr,
}

impl ApiServer {
    pub async fn start(stack: &Stack) -> anyhow::Result<Self> {
        let process = BoardProcess::api(
            stack,
            &[
                "--max-connections",
                UNLIMITED,
                "--max-connections-per-address",
                "0",
                "--max-live-streams",
                UNLIMITED,
                "--live-streams-per-address",
                UNLIMITED,
            ],
        )
        .await?;
        let address = process.address.expect("an API process listens");
        Ok(Self { process, address })
    }

    /// The process's resident memory now, in KiB.
    pub fn rss_kib(&self) -> u64 {
        self.process.rss_kib()
    }
}

/// Sends `GET path` on a new connection and reads the answer's head; the connection stays
/// open (keep-alive) for the caller.
async fn get(address: SocketAddr, path: &str) -> anyhow::Result<(TcpStream, Vec<u8>)> {
    let mut socket = TcpStream::connect(address).await?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream, application/json\r\n\r\n");
    socket.write_all(request.as_bytes()).await?;
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = socket.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "closed before the answer's head");
        received.extend_from_slice(&chunk[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    anyhow::ensure!(
        received.starts_with(b"HTTP/1.1 200"),
        "{path}: {}",
        String::from_utf8_lossy(&received[..head_end])
    );
    Ok((socket, received.split_off(head_end)))
}

/// Idle keep-alive connections, each after one small request: what a connection costs
/// the server whatever it carries (the baseline of a stream's memory).
pub async fn idle_connections(address: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpStream>> {
    stream::iter(0..count)
        .map(|_| async move { get(address, "/health/live").await.map(|(socket, _)| socket) })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// One open stream: the posts it announced and when, and whether it ended.
struct Subscriber {
    arrivals: Mutex<Vec<(Uuid, Instant)>>,
    ended: AtomicBool,
}

/// Open live streams, each read by a task of its own.
#[derive(Default)]
pub struct Fleet {
    subscribers: Vec<Arc<Subscriber>>,
    readers: Vec<tokio::task::JoinHandle<()>>,
}

impl Fleet {
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }

    /// Opens streams on `path` until the fleet has `size`.
    pub async fn grow(
        &mut self,
        address: SocketAddr,
        path: &str,
        size: usize,
    ) -> anyhow::Result<()> {
        let wanted = size.saturating_sub(self.len());
        let opened: Vec<_> = stream::iter(0..wanted)
            .map(|_| get(address, path))
            .buffer_unordered(OPENING_AT_ONCE)
            .collect()
            .await;
        for opened in opened {
            let (socket, already) = opened?;
            let subscriber = Arc::new(Subscriber {
                arrivals: Mutex::new(Vec::new()),
                ended: AtomicBool::new(false),
            });
            self.readers
                .push(tokio::spawn(read(socket, already, subscriber.clone())));
            self.subscribers.push(subscriber);
        }
        Ok(())
    }

    /// Waits until every open stream announced every post of `sent` (or [`DRAIN_GRACE`]
    /// passed), then takes what arrived: each post's delivery latency to each subscriber.
    pub async fn delivered(&self, sent: &[(String, Instant)]) -> Delivery {
        let sent: HashMap<Uuid, Instant> = sent
            .iter()
            .map(|(id, at)| (id.parse().expect("a post id"), *at))
            .collect();
        let complete = |subscriber: &Subscriber| {
            subscriber.ended.load(Ordering::SeqCst)
                || subscriber.arrivals.lock().unwrap().len() >= sent.len()
        };
        let grace = Instant::now() + DRAIN_GRACE;
        while Instant::now() < grace && !self.subscribers.iter().all(|s| complete(s)) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut delivery = Delivery::default();
        for subscriber in &self.subscribers {
            let arrivals = std::mem::take(&mut *subscriber.arrivals.lock().unwrap());
            let mut received = 0;
            for (post, at) in arrivals {
                if let Some(sent_at) = sent.get(&post) {
                    delivery.latencies.push(at - *sent_at);
                    received += 1;
                }
            }
            delivery.missing += sent.len() - received.min(sent.len());
            if subscriber.ended.load(Ordering::SeqCst) {
                delivery.ended += 1;
            }
        }
        delivery
    }

    /// Forgets what arrived so far (messages of an earlier stretch).
    pub fn clear(&self) {
        for subscriber in &self.subscribers {
            subscriber.arrivals.lock().unwrap().clear();
        }
    }

    pub fn close(self) {
        for reader in self.readers {
            reader.abort();
        }
    }
}

/// What a load's posts did on their way to the subscribers.
#[derive(Default)]
pub struct Delivery {
    /// One per post and subscriber that received it.
    pub latencies: Vec<Duration>,
    /// Post announcements that never arrived (summed over the subscribers).
    pub missing: usize,
    /// Streams the server ended (a subscriber too slow is disconnected).
    pub ended: usize,
}

impl Delivery {
    /// Every stream open, every message received.
    pub fn complete(&self) -> bool {
        self.missing == 0 && self.ended == 0
    }
}

/// Reads one stream to its end, noting when each post's announcement arrives. Only the
/// post id is looked for (`"postId":"<uuid>"`), not the whole frame decoded: with
/// thousands of streams in this process, the client's own work must stay small beside the
/// server's.
async fn read(mut socket: TcpStream, mut pending: Vec<u8>, subscriber: Arc<Subscriber>) {
    const KEY: &[u8] = b"\"postId\":\"";
    const ID: usize = 36;
    let mut chunk = vec![0u8; 4096];
    let mut arrived = Instant::now();
    loop {
        let mut consumed = 0;
        while let Some(at) = find(&pending[consumed..], KEY) {
            let start = consumed + at + KEY.len();
            if start + ID > pending.len() {
                break;
            }
            if let Some(post) = std::str::from_utf8(&pending[start..start + ID])
                .ok()
                .and_then(|id| id.parse().ok())
            {
                subscriber.arrivals.lock().unwrap().push((post, arrived));
            }
            consumed = start + ID;
        }
        // Keep a tail that may hold the start of a key cut by the read.
        let keep_from = consumed.max(pending.len().saturating_sub(KEY.len() + ID));
        pending.drain(..keep_from);
        match socket.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                arrived = Instant::now();
                pending.extend_from_slice(&chunk[..n]);
            }
        }
    }
    subscriber.ended.store(true, Ordering::SeqCst);
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
