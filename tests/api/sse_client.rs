//! A server-sent-events client over a plain TCP socket, for the live-update tests: it
//! reads the answer's head, then the chunked body frame by frame, as a browser's
//! `EventSource` would (keeping `Last-Event-ID` from every `id:` line it sees).

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// How long a test waits for the server before calling it a hang; not a measurement.
pub const HANG: Duration = Duration::from_secs(60);

/// One message, or a frame with no `event:` (`retry:`, a keep-alive).
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
    pub retry: Option<u64>,
    pub comment: bool,
}

impl Frame {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or_else(|e| panic!("{e}: {}", self.data))
    }
}

pub struct EventStream {
    stream: TcpStream,
    /// Bytes read and not yet dechunked.
    raw: Vec<u8>,
    /// Body text not yet split into frames.
    text: String,
    ended: bool,
    /// As a browser keeps it: the last `id:` seen.
    pub last_event_id: Option<String>,
}

/// The answer to a `GET`: its status and head, and the stream when it is one.
pub struct Opened {
    pub status: u16,
    pub head: String,
    pub stream: EventStream,
}

/// `GET path` on `addr`, as `EventSource` asks.
pub async fn open(addr: SocketAddr, path: &str, last_event_id: Option<&str>) -> Opened {
    let stream = TcpStream::connect(addr).await.expect("connect");
    open_on(stream, addr, path, last_event_id).await
}

/// The same on a socket whose receive buffer is `bytes` small: a client that stops
/// reading fills it quickly.
pub async fn open_with_small_buffer(addr: SocketAddr, path: &str, bytes: u32) -> Opened {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(bytes).unwrap();
    let stream = socket.connect(addr).await.expect("connect");
    open_on(stream, addr, path, None).await
}

async fn open_on(
    mut stream: TcpStream,
    addr: SocketAddr,
    path: &str,
    last_event_id: Option<&str>,
) -> Opened {
    let mut request =
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
    if let Some(id) = last_event_id {
        request.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut events = EventStream {
        stream,
        raw: Vec::new(),
        text: String::new(),
        ended: false,
        last_event_id: last_event_id.map(str::to_string),
    };
    let head = tokio::time::timeout(HANG, events.read_head())
        .await
        .expect("no answer in time");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .expect("a status line");
    Opened {
        status,
        head,
        stream: events,
    }
}

impl EventStream {
    async fn read_head(&mut self) -> String {
        loop {
            if let Some(end) = self.raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.raw[..end]).into_owned();
                self.raw.drain(..end + 4);
                return head;
            }
            assert!(self.fill().await, "closed before the answer's head");
        }
    }

    /// Reads more; false when the server closed the connection.
    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.stream.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.raw.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next frame; `None` once the server has ended the stream or closed the
    /// connection.
    pub async fn next_frame(&mut self) -> Option<Frame> {
        loop {
            self.dechunk();
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let frame = parse(&block);
                if frame.id.is_some() {
                    self.last_event_id.clone_from(&frame.id);
                }
                return Some(frame);
            }
            if self.ended {
                return None;
            }
            let more = tokio::time::timeout(HANG, self.fill())
                .await
                .unwrap_or_else(|_| panic!("nothing from the server in {HANG:?}"));
            if !more {
                self.ended = true;
            }
        }
    }

    /// The next message with an `event:` name, skipping keep-alives and `retry:`.
    pub async fn next_message(&mut self) -> Option<Frame> {
        let message = async {
            loop {
                let frame = self.next_frame().await?;
                if frame.event.is_some() {
                    return Some(frame);
                }
            }
        };
        // Keep-alives would otherwise hide a message that never comes.
        tokio::time::timeout(HANG, message)
            .await
            .unwrap_or_else(|_| panic!("no message in {HANG:?}, only keep-alives"))
    }

    /// Moves whole chunks of the chunked body into `text`.
    fn dechunk(&mut self) {
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size = std::str::from_utf8(&self.raw[..line_end])
                .ok()
                .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok())
                .expect("a chunk size");
            if size == 0 {
                self.ended = true;
                return;
            }
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            let data = self.raw[line_end + 2..line_end + 2 + size].to_vec();
            self.raw.drain(..line_end + 2 + size + 2);
            self.text
                .push_str(&String::from_utf8(data).expect("UTF-8 frames"));
        }
    }
}

fn parse(block: &str) -> Frame {
    let mut frame = Frame::default();
    for line in block.lines() {
        if line.starts_with(':') {
            frame.comment = true;
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "id" => frame.id = Some(value.to_string()),
            "event" => frame.event = Some(value.to_string()),
            "data" => frame.data.push_str(value),
            "retry" => frame.retry = value.parse().ok(),
            _ => {}
        }
    }
    frame
}
