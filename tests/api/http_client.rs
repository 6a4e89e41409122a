//! A minimal HTTP/1.1 client over a plain TCP socket, for tests that call a real `board`
//! process (the other tests call the router in-process). One request per connection
//! (`Connection: close`), so a server killed mid-request shows up as an I/O error on
//! that request alone, never as a broken pooled connection on the next one.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A request that takes longer than this counts as failed (the server may hang while a
/// dependency is away); it is not a test assertion.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Waits until a server on `addr` answers `GET /` with 200 (a process just started).
pub async fn wait_until_serving(addr: SocketAddr) {
    for _ in 0..1_200 {
        if let Ok(reply) = send(addr, "GET", "/", None, None).await {
            if reply.status == 200 {
                return;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the board process never answered on {addr}");
}

/// Sends one request to `addr` and reads the whole answer.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> io::Result<Reply> {
    send_with(addr, method, path, bearer, &[], body).await
}

/// As [`send`], with more header lines (`Idempotency-Key`, ...).
pub async fn send_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> io::Result<Reply> {
    let request = request_text(addr, method, path, bearer, headers, body);
    timed(exchange(None, addr, &request)).await
}

/// A `POST` of `body` as JSON from the local address `source` (any of 127.0.0.0/8 on
/// loopback): to the server, another client machine. `headers` are added as given.
pub async fn post_from(
    source: IpAddr,
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> io::Result<Reply> {
    let request = request_text(addr, "POST", path, None, headers, Some(body));
    timed(exchange(Some(source), addr, &request)).await
}

/// One request, whole, on a connection that closes after the answer.
fn request_text(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> String {
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(token) = bearer {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    request
}

/// An exchange that takes longer than [`REQUEST_TIMEOUT`] counts as failed.
async fn timed(
    exchange: impl std::future::Future<Output = io::Result<Reply>>,
) -> io::Result<Reply> {
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")))
}

async fn exchange(source: Option<IpAddr>, addr: SocketAddr, request: &str) -> io::Result<Reply> {
    let mut stream = match source {
        None => TcpStream::connect(addr).await?,
        Some(source) => {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(source, 0))?;
            socket.connect(addr).await?
        }
    };
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;
    parse(&raw)
}

pub fn parse(raw: &[u8]) -> io::Result<Reply> {
    if raw.is_empty() {
        // The server went away between accepting the connection and answering.
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "closed without an answer",
        ));
    }
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| invalid("the answer ended inside its headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| invalid("headers not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("no status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut reply = Reply {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    };
    if reply
        .header("transfer-encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        reply.body = dechunk(&reply.body).ok_or_else(|| invalid("a broken chunked body"))?;
    } else if let Some(length) = reply.header("content-length") {
        // A server killed mid-answer leaves a body cut short: that is no answer at all.
        let length: usize = length
            .parse()
            .map_err(|_| invalid("a bad Content-Length"))?;
        if reply.body.len() < length {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the answer was cut short",
            ));
        }
    }
    Ok(reply)
}

/// Decodes a `Transfer-Encoding: chunked` body; `None` when it is cut short.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[test]
fn an_answer_cut_short_is_no_answer() {
    let whole = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\n{}";
    assert_eq!(parse(whole).unwrap().json(), Some(serde_json::json!({})));
    let cut = b"HTTP/1.1 201 Created\r\nContent-Length: 20\r\n\r\n{\"id\":";
    assert_eq!(parse(cut).unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
}
