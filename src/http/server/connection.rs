//! One connection: HTTP/1.1 through hyper, with the peer address handed to the handlers
//! and a watchdog that closes it when the client keeps it waiting too long.
//!
//! Why a watchdog of our own and not hyper's `header_read_timeout`: hyper starts that
//! timer as soon as a connection goes idle, so it would also close every kept-alive
//! connection after the header timeout, and an idle timeout longer than it could not
//! exist. Here the two are apart: the header deadline counts from the connection's
//! opening or from the first byte of a next request; the idle deadline from the end of
//! the last handler.
//!
//! A handler counts as running until its response body is done, not only until it
//! returns: a stream (the live updates) is the server's own time, however long. Such a
//! response may carry a [`Hangup`]: when it turns true, the connection is closed at once,
//! since a client that stopped reading would never let the body end.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use axum::Router;
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, OwnedSemaphorePermit};
use tokio::time::{sleep_until, Instant};
use tower::ServiceExt;

use crate::limits::Slot;

/// In a response's extensions: close its connection when this turns true.
#[derive(Debug, Clone)]
pub struct Hangup(pub watch::Receiver<bool>);

#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub header_read: Duration,
    pub idle: Duration,
}

/// Serves `stream` until the client closes it, a deadline passes, or a graceful shutdown
/// (through `watcher`) has let its request in flight finish. `_places` are its places
/// under the connection limits (the server's, its address's), given back when this
/// returns.
pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    timeouts: Timeouts,
    watcher: Watcher,
    _places: (OwnedSemaphorePermit, Option<Slot>),
) {
    let activity = Activity::new();
    let handlers = activity.clone();
    let hangups = Arc::new(watch::Sender::new(None::<Hangup>));
    let hangup = hangups.subscribe();
    let service = service_fn(move |mut request: hyper::Request<Incoming>| {
        // What `into_make_service_with_connect_info` did: per-client rate limits read it.
        request.extensions_mut().insert(ConnectInfo(peer));
        let busy = handlers.busy();
        let router = router.clone();
        let hangups = hangups.clone();
        async move {
            let response = router.oneshot(request).await?;
            if let Some(asked) = response.extensions().get::<Hangup>() {
                hangups.send_replace(Some(asked.clone()));
            }
            Ok::<_, std::convert::Infallible>(
                response.map(|body| Body::new(WhileBusy { body, _busy: busy })),
            )
        }
    });
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let connection = http1::Builder::new()
        // The watchdog below keeps the deadlines (see the module's comment).
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::select! {
        served = watcher.watch(connection) => {
            if let Err(error) = served {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        }
        expired = activity.expired(timeouts) => {
            // Dropping the connection closes the socket.
            tracing::debug!(%peer, "closing the connection: {expired}");
        }
        () = hung_up(hangup) => {
            tracing::debug!(%peer, "closing the connection: its response asked to");
        }
    }
}

/// Resolves when the [`Hangup`] of the response being sent turns true.
async fn hung_up(mut current: watch::Receiver<Option<Hangup>>) {
    loop {
        let asked = current.borrow_and_update().clone();
        let hung_up = async {
            match asked {
                // Its sender gone, the response ended by itself: nothing to close.
                Some(Hangup(mut signal)) => {
                    let asked = signal.wait_for(|hung_up| *hung_up).await.is_ok();
                    if !asked {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = hung_up => return,
            changed = current.changed() => {
                if changed.is_err() {
                    // The service is gone, and the connection with it.
                    return std::future::pending().await;
                }
            }
        }
    }
}

/// A response body that keeps its connection [`Busy`] until it is done.
struct WhileBusy {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for WhileBusy {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Where a connection stands, for its deadlines.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request's headers since the connection opened, or since the first
    /// byte of a next request arrived.
    Head(Instant),
    /// A handler is running. No deadline: reading its body has one of its own
    /// (`BODY_READ_TIMEOUT`), and the rest is the server's own time.
    Busy,
    /// Waiting on the client since the last handler returned: to read the answer, or to
    /// send another request.
    Idle(Instant),
}

/// A connection's phase, shared by its reads, its handlers and its watchdog.
#[derive(Clone)]
struct Activity(Arc<watch::Sender<Phase>>);

impl Activity {
    fn new() -> Self {
        Self(Arc::new(watch::Sender::new(Phase::Head(Instant::now()))))
    }

    /// Bytes came in: on an idle connection, they begin a next request.
    fn bytes_arrived(&self) {
        self.0.send_if_modified(|phase| match phase {
            Phase::Idle(_) => {
                *phase = Phase::Head(Instant::now());
                true
            }
            _ => false,
        });
    }

    /// A handler starts; the connection is idle again when the guard is dropped (the
    /// handler returned, or hyper gave up on it).
    fn busy(&self) -> Busy {
        self.0.send_replace(Phase::Busy);
        Busy(self.clone())
    }

    fn idle(&self) {
        self.0.send_replace(Phase::Idle(Instant::now()));
    }

    /// Resolves when the deadline of the phase the connection is in passes; says which.
    async fn expired(&self, timeouts: Timeouts) -> &'static str {
        let mut phase = self.0.subscribe();
        loop {
            let deadline = phase.borrow_and_update().deadline(timeouts);
            let wait = async {
                match deadline {
                    Some((at, why)) => {
                        sleep_until(at).await;
                        why
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                why = wait => return why,
                // `self` holds the sender, so this cannot fail.
                _ = phase.changed() => {}
            }
        }
    }

    #[cfg(test)]
    fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, &'static str)> {
        self.0.borrow().deadline(timeouts)
    }
}

impl Phase {
    /// When a connection in this phase is closed, and why.
    fn deadline(&self, timeouts: Timeouts) -> Option<(Instant, &'static str)> {
        match *self {
            Phase::Head(since) => Some((
                since + timeouts.header_read,
                "the request headers did not arrive in time",
            )),
            Phase::Idle(since) => Some((since + timeouts.idle, "idle for too long")),
            Phase::Busy => None,
        }
    }
}

struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.idle();
    }
}

/// The socket, telling the connection's [`Activity`] when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Activity,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let read = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.bytes_arrived();
        }
        read
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUTS: Timeouts = Timeouts {
        header_read: Duration::from_secs(10),
        idle: Duration::from_secs(60),
    };

    fn deadline(activity: &Activity) -> Option<Duration> {
        activity
            .deadline(TIMEOUTS)
            .map(|(at, _)| at.saturating_duration_since(Instant::now()))
    }

    /// Within a second of `expected` (the test's own time passes too).
    fn about(actual: Option<Duration>, expected: Duration) -> bool {
        actual.is_some_and(|d| d <= expected && expected - d < Duration::from_secs(1))
    }

    #[tokio::test]
    async fn a_new_connection_has_the_header_deadline() {
        let activity = Activity::new();
        assert!(about(deadline(&activity), TIMEOUTS.header_read));
        let (_, why) = activity.deadline(TIMEOUTS).unwrap();
        assert!(why.contains("headers"), "{why}");
    }

    #[tokio::test]
    async fn a_running_handler_has_no_deadline_and_then_the_connection_is_idle() {
        let activity = Activity::new();
        let busy = activity.busy();
        assert_eq!(deadline(&activity), None);
        activity.bytes_arrived();
        assert_eq!(deadline(&activity), None, "its body's bytes change nothing");
        drop(busy);
        assert!(about(deadline(&activity), TIMEOUTS.idle));
    }

    #[tokio::test]
    async fn the_first_byte_of_a_next_request_starts_the_header_deadline_and_no_more() {
        let activity = Activity::new();
        drop(activity.busy());
        activity.bytes_arrived();
        let (first, _) = activity.deadline(TIMEOUTS).unwrap();
        assert!(about(deadline(&activity), TIMEOUTS.header_read));
        activity.bytes_arrived();
        let (later, _) = activity.deadline(TIMEOUTS).unwrap();
        assert_eq!(
            first, later,
            "a head that trickles in keeps its first deadline"
        );
    }

    #[tokio::test]
    async fn the_watchdog_wakes_at_the_deadline_of_the_phase_it_is_in() {
        let timeouts = Timeouts {
            header_read: Duration::from_millis(50),
            idle: Duration::from_secs(3600),
        };
        let activity = Activity::new();
        let why = tokio::time::timeout(Duration::from_secs(30), activity.expired(timeouts))
            .await
            .expect("the header deadline passes");
        assert!(why.contains("headers"), "{why}");
    }
}
