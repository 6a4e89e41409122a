//! Turning a connection away when the server (503) or its client's address (429) holds as
//! many as it may: an answer with `Retry-After`, written straight to the socket (it never
//! reaches hyper or the router), then closed.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{to_bytes, Bytes};
use axum::response::IntoResponse;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

use crate::http::context::add_security_headers;
use crate::http::ApiError;

/// How long a turned-away connection may take to be answered and closed.
const LINGER: Duration = Duration::from_secs(2);

pub struct TurnAway {
    /// The whole answer as it goes on the wire, made once.
    answer: Bytes,
    /// Connections being turned away at once.
    lingering: Arc<Semaphore>,
}

impl TurnAway {
    /// Turns away with `answer` at most `at_once` connections at a time; past that (a
    /// flood), they are closed without an answer, so that turning away costs bounded
    /// sockets and memory.
    pub async fn new(answer: ApiError, at_once: usize) -> Self {
        Self {
            answer: on_the_wire(answer).await,
            lingering: Arc::new(Semaphore::new(at_once)),
        }
    }

    pub fn turn_away(&self, mut stream: TcpStream) {
        let Ok(permit) = self.lingering.clone().try_acquire_owned() else {
            return;
        };
        let answer = self.answer.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let _ = tokio::time::timeout(LINGER, async {
                stream.write_all(&answer).await?;
                // Closing with the client's request unread would reset the connection,
                // and a reset can destroy the answer before the client has read it:
                // close our side, then read what the client sends until it closes too.
                stream.shutdown().await?;
                let mut sink = [0u8; 1024];
                while stream.read(&mut sink).await? > 0 {}
                Ok::<_, io::Error>(())
            })
            .await;
        });
    }
}

/// When the server holds `MAX_CONNECTIONS`.
pub fn server_full() -> ApiError {
    ApiError::unavailable(
        "the server has as many connections as it may take; retry after Retry-After seconds",
    )
}

/// When the client's address holds `MAX_CONNECTIONS_PER_ADDRESS`.
pub fn address_full() -> ApiError {
    ApiError::rate_limited(
        "this address has as many connections open as it may",
        Duration::from_secs(1),
    )
}

/// `error` as a handler would answer it (problem document, `Retry-After`, security
/// headers), as HTTP/1.1 bytes that say the connection closes.
async fn on_the_wire(error: ApiError) -> Bytes {
    let mut response = error.into_response();
    add_security_headers(response.headers_mut(), false);
    let (parts, body) = response.into_parts();
    let body = to_bytes(body, usize::MAX)
        .await
        .expect("a problem document is already in memory");
    // `StatusCode`'s `Display` is the code and its reason: `503 Service Unavailable`.
    let mut wire = format!("HTTP/1.1 {}\r\n", parts.status).into_bytes();
    for (name, value) in &parts.headers {
        wire.extend_from_slice(name.as_str().as_bytes());
        wire.extend_from_slice(b": ");
        wire.extend_from_slice(value.as_bytes());
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(
        format!(
            "content-length: {}\r\nconnection: close\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    wire.extend_from_slice(&body);
    wire.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_answer_is_a_503_problem_document_that_says_when_to_retry() {
        let answer = on_the_wire(server_full()).await;
        let text = std::str::from_utf8(&answer).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let mut lines = head.lines();
        assert_eq!(lines.next(), Some("HTTP/1.1 503 Service Unavailable"));
        let headers: Vec<&str> = lines.collect();
        for expected in [
            "retry-after: 1",
            "content-type: application/problem+json",
            "connection: close",
            "x-content-type-options: nosniff",
            &format!("content-length: {}", body.len()),
        ] {
            assert!(headers.contains(&expected), "{expected} in {headers:?}");
        }
        let problem: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(problem["status"], 503);
        assert_eq!(problem["type"], "urn:board:problem:unavailable");
    }

    #[tokio::test]
    async fn an_address_past_its_limit_gets_a_429() {
        let answer = on_the_wire(address_full()).await;
        let text = std::str::from_utf8(&answer).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 429 Too Many Requests\r\n"),
            "{text}"
        );
        assert!(text.contains("retry-after: 1\r\n"), "{text}");
    }
}
