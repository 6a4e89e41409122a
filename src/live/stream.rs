//! One subscriber's stream: `retry:`, then every message after its `Last-Event-ID` that
//! its filter admits (or `event: reset` when that is older than the history), then live
//! ones, with a keep-alive in every silence of `LIVE_KEEPALIVE`.
//!
//! It ends when the server shuts down, or when the feed finds it too far behind; the
//! HTTP layer then also closes the connection ([`Stream::hang_up`]), since a client that
//! does not read would never see the end of the body.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::time::{sleep, Instant, Sleep};

use super::message::{frame, Message};
use super::{token, Admission, Filter, Progress, Shared};
use crate::http::schema::{event_names, LiveReset};
use crate::store::reader::Checkpoint;

pub struct Stream {
    shared: Arc<Shared>,
    filter: Filter,
    /// Where the subscriber asked to start, and the store's end when it asked; taken
    /// when the feed is ready.
    start: Option<(Option<Checkpoint>, Checkpoint)>,
    /// Frames to send before any message.
    pending: VecDeque<Bytes>,
    /// Messages it missed, from the history.
    backlog: VecDeque<Arc<Message>>,
    receiver: broadcast::Receiver<Arc<Message>>,
    /// The last message it has taken, sent or filtered out.
    seen: Checkpoint,
    /// The last `id:` it was sent.
    announced: Checkpoint,
    progress: Arc<Progress>,
    /// Its key among the feed's subscribers, once registered.
    registered: Option<u64>,
    closing: watch::Receiver<bool>,
    hung_up: watch::Receiver<bool>,
    keep_alive: Pin<Box<Sleep>>,
    _admission: Admission,
}

/// What woke a waiting stream.
enum Woken {
    End,
    Message(Arc<Message>),
    Lagged,
    KeepAlive,
}

impl Stream {
    pub(super) fn new(
        shared: Arc<Shared>,
        admission: Admission,
        after: Option<Checkpoint>,
        now: Checkpoint,
        filter: Filter,
    ) -> Self {
        let settings = shared.settings;
        let retry = format!("retry: {}\n\n", settings.retry.as_millis());
        let progress = Arc::new(Progress {
            taken: AtomicU64::new(0),
            hang_up: watch::Sender::new(false),
        });
        crate::metrics::record_live_streams(1);
        Self {
            receiver: shared.sender.subscribe(),
            closing: shared.closing.subscribe(),
            hung_up: progress.hang_up.subscribe(),
            filter,
            start: Some((after, now)),
            pending: VecDeque::from([Bytes::from(retry)]),
            backlog: VecDeque::new(),
            seen: Checkpoint::default(),
            announced: Checkpoint::default(),
            progress,
            registered: None,
            keep_alive: Box::pin(sleep(settings.keep_alive)),
            _admission: admission,
            shared,
        }
    }

    /// Turns true when the feed disconnects this subscriber as too slow.
    pub fn hang_up(&self) -> watch::Receiver<bool> {
        self.progress.hang_up.subscribe()
    }

    /// The stream as a response body.
    pub fn into_body(self) -> Body {
        Body::from_stream(futures_util::stream::unfold(
            self,
            |mut stream| async move {
                let frame = stream.next_frame().await?;
                Some((Ok::<_, Infallible>(frame), stream))
            },
        ))
    }

    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Some(self.sent(frame));
            }
            if let Some((after, now)) = self.start {
                if !self.wait_until_ready().await {
                    return None;
                }
                self.join(after, now);
                self.start = None;
                continue;
            }
            if let Some(message) = self.backlog.pop_front() {
                if let Some(frame) = self.take(&message, false) {
                    return Some(frame);
                }
                continue;
            }
            match self.wait().await {
                Woken::End => return None,
                Woken::Lagged => {
                    if let Some(key) = self.registered.take() {
                        if self.shared.lock().subscribers.remove(&key).is_some() {
                            self.shared.count_dropped();
                        }
                    }
                    return None;
                }
                Woken::Message(message) => {
                    if let Some(frame) = self.take(&message, true) {
                        return Some(frame);
                    }
                }
                Woken::KeepAlive => return Some(self.keep_alive_frame()),
            }
        }
    }

    /// False when the stream must end instead.
    async fn wait_until_ready(&mut self) -> bool {
        let mut ready = self.shared.ready.subscribe();
        tokio::select! {
            ready = ready.wait_for(|ready| *ready) => ready.is_ok(),
            _ = self.closing.wait_for(|closing| *closing) => false,
        }
    }

    /// Takes its place among the subscribers: the messages after `after` still in the
    /// history become its backlog, and the broadcast brings the rest. Both are read under
    /// the lock the feed publishes under, so each message comes exactly once. Without
    /// `after`, or after a reset, it starts at `now`, the store's end when it asked: the
    /// feed may be a little behind or ahead of that, and this way neither matters.
    fn join(&mut self, after: Option<Checkpoint>, now: Checkpoint) {
        let mut history = self.shared.lock();
        self.receiver = self.shared.sender.subscribe();
        let from = match after {
            // A place past the store's end was not handed out here (another store's, or
            // one restored from an older backup): waiting for the store to get there would
            // drop every message until then, so the client is told to reload instead.
            Some(after) if after >= history.floor && after <= now => after,
            Some(after) => {
                let detail = if after > now {
                    "Last-Event-ID is past the end of this server's event store: reload \
                     through the query API"
                        .to_string()
                } else {
                    format!(
                        "Last-Event-ID is older than the last {} messages this server \
                         replays: reload through the query API",
                        self.shared.settings.replay
                    )
                };
                let reset = LiveReset { detail };
                self.pending
                    .push_back(frame(Some(now), event_names::RESET, &reset));
                now
            }
            None => now,
        };
        self.backlog = history
            .messages
            .iter()
            .filter(|message| message.checkpoint > from)
            .cloned()
            .collect();
        self.seen = from;
        self.announced = from;
        self.progress.taken.store(history.count, Ordering::Relaxed);
        let key = history.next_subscriber;
        history.next_subscriber += 1;
        history.subscribers.insert(key, self.progress.clone());
        self.registered = Some(key);
    }

    async fn wait(&mut self) -> Woken {
        tokio::select! {
            biased;
            _ = self.closing.wait_for(|closing| *closing) => Woken::End,
            _ = self.hung_up.wait_for(|hung_up| *hung_up) => Woken::End,
            received = self.receiver.recv() => match received {
                Ok(message) => Woken::Message(message),
                Err(RecvError::Lagged(_)) => Woken::Lagged,
                Err(RecvError::Closed) => Woken::End,
            },
            () = &mut self.keep_alive => Woken::KeepAlive,
        }
    }

    /// The frame of `message` if this subscriber is to get it: once, and if it passes the
    /// filter.
    fn take(&mut self, message: &Message, live: bool) -> Option<Bytes> {
        self.progress
            .taken
            .fetch_max(message.number, Ordering::Relaxed);
        if message.checkpoint <= self.seen {
            return None;
        }
        self.seen = message.checkpoint;
        if !self.filter.admits(message) {
            return None;
        }
        self.announced = message.checkpoint;
        let lag = live.then(|| {
            (Utc::now() - message.recorded_at)
                .to_std()
                .unwrap_or_default()
        });
        crate::metrics::record_live_message_sent(lag);
        Some(self.sent(message.wire.clone()))
    }

    /// A comment line; with an `id:` too when the filter has passed over messages since
    /// the last one sent, so that a resume starts after them (an `id:` without `data:`
    /// moves a browser's `Last-Event-ID` and dispatches nothing).
    fn keep_alive_frame(&mut self) -> Bytes {
        let frame = if self.seen > self.announced {
            self.announced = self.seen;
            format!(": keep-alive\nid: {}\n\n", token::encode(self.seen))
        } else {
            ": keep-alive\n\n".to_string()
        };
        self.sent(Bytes::from(frame))
    }

    /// Restarts the silence count for a frame about to go out.
    fn sent(&mut self, frame: Bytes) -> Bytes {
        let next = Instant::now() + self.shared.settings.keep_alive;
        self.keep_alive.as_mut().reset(next);
        frame
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if let Some(key) = self.registered {
            self.shared.lock().subscribers.remove(&key);
        }
        crate::metrics::record_live_streams(-1);
    }
}
