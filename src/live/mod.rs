//! Live updates: the board's events as server-sent events (`GET /board/live`), to every
//! subscriber of every replica, resumable with no gap and no duplicate.
//!
//! # Layout
//!
//! - [`feed`]: the process's one reader of the event store. It follows the gap-safe
//!   global order ([`crate::store::reader`]), renders each event once ([`message`], with
//!   the facts of [`facts`]), keeps the last `LIVE_REPLAY_EVENTS` messages for resuming
//!   clients, and hands each new one to every subscriber through one broadcast channel.
//! - [`stream`]: one subscriber's stream: what it missed after its `Last-Event-ID`, then
//!   live messages, through its filter, with keep-alives; it ends when the subscriber
//!   falls too far behind or the server shuts down.
//! - [`token`]: the resume token (`id:`), a place in the global order that means the same
//!   on every replica.
//!
//! Why the event store and not the Kafka topic: see `docs/ARCHITECTURE.md`, "Live updates".

mod facts;
mod feed;
mod message;
mod stream;
pub mod subject;
pub mod token;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use tokio::sync::{broadcast, watch, OwnedSemaphorePermit, Semaphore};

use crate::limits::{ConcurrencyLimiter, Slot};
use crate::store::reader::{self, Checkpoint};
use message::Message;
pub use stream::Stream;

/// How the live updates behave; from configuration (`LIVE_*`, `MAX_LIVE_STREAMS`).
#[derive(Debug, Clone, Copy)]
pub struct LiveSettings {
    /// Messages kept for resuming clients; an older `Last-Event-ID` gets `event: reset`.
    pub replay: usize,
    /// Messages a subscriber may fall behind the feed before it is disconnected.
    pub subscriber_buffer: usize,
    /// The longest silence on a stream: a comment line is sent after it.
    pub keep_alive: Duration,
    /// The reconnection delay a browser is told (`retry:`).
    pub retry: Duration,
    /// Streams open at once in this process (503 past it).
    pub max_streams: usize,
    /// Streams open at once from one client address (429 past it).
    pub streams_per_address: usize,
}

/// Which messages a subscriber wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    All,
    /// A category's posts and the comments on them.
    Category(String),
    /// One post and its comments.
    Post(String),
}

impl Filter {
    fn admits(&self, message: &Message) -> bool {
        match self {
            Self::All => true,
            Self::Category(id) => message.post_id.is_some() && message.category_id == *id,
            Self::Post(id) => message.post_id.as_deref() == Some(id.as_str()),
        }
    }
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The process holds `MAX_LIVE_STREAMS`.
    ProcessFull,
    /// The client's address holds `LIVE_STREAMS_PER_ADDRESS`.
    AddressFull,
}

/// A subscriber's places under the limits; given back when its stream ends.
pub struct Admission {
    _process: OwnedSemaphorePermit,
    _address: Slot,
}

/// What the live updates have done so far, for tests and operators.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub open_streams: usize,
    /// Messages the feed has rendered since the process started.
    pub published: u64,
    /// Subscribers disconnected for falling behind.
    pub dropped: u64,
}

/// The live updates of one process; cheap to clone (clones share the feed).
#[derive(Clone)]
pub struct Live {
    shared: Arc<Shared>,
}

struct Shared {
    pool: PgPool,
    settings: LiveSettings,
    history: Mutex<History>,
    /// Each new message, to every subscriber. Sent under the `history` lock, so that a
    /// subscriber joining sees each message once: in the history it copied, or here.
    sender: broadcast::Sender<Arc<Message>>,
    /// True once the history holds the store's recent messages (the feed has primed it).
    ready: watch::Sender<bool>,
    /// True once the server shuts down: every stream ends, and so does the feed.
    closing: watch::Sender<bool>,
    feed_started: AtomicBool,
    streams: Arc<Semaphore>,
    per_address: Arc<ConcurrencyLimiter>,
    dropped: AtomicU64,
    published: AtomicU64,
}

/// The recent messages, and the subscribers' progress through them.
struct History {
    messages: VecDeque<Arc<Message>>,
    /// Everything after this is in `messages`: a token at or past it can be replayed.
    floor: Checkpoint,
    /// The last event the feed has read (with or without a message).
    head: Checkpoint,
    /// Messages published so far; each subscriber's progress is counted against it.
    count: u64,
    subscribers: HashMap<u64, Arc<Progress>>,
    next_subscriber: u64,
}

/// How far one subscriber has taken messages, and the switch that disconnects it.
struct Progress {
    /// `History::count` when it joined, then the number of the last message it took.
    taken: AtomicU64,
    hang_up: watch::Sender<bool>,
}

impl Live {
    pub fn new(pool: PgPool, settings: LiveSettings) -> Self {
        // Room for a batch of the feed past the subscriber's own buffer: the feed checks
        // who fell behind after each batch, before the channel itself would overflow.
        let capacity = settings.subscriber_buffer + feed::BATCH as usize;
        let (sender, _) = broadcast::channel(capacity);
        Self {
            shared: Arc::new(Shared {
                pool,
                history: Mutex::new(History {
                    messages: VecDeque::new(),
                    floor: Checkpoint::default(),
                    head: Checkpoint::default(),
                    count: 0,
                    subscribers: HashMap::new(),
                    next_subscriber: 0,
                }),
                sender,
                ready: watch::Sender::new(false),
                closing: watch::Sender::new(false),
                feed_started: AtomicBool::new(false),
                streams: Arc::new(Semaphore::new(settings.max_streams)),
                per_address: Arc::new(ConcurrencyLimiter::new(settings.streams_per_address)),
                dropped: AtomicU64::new(0),
                published: AtomicU64::new(0),
                settings,
            }),
        }
    }

    pub fn settings(&self) -> &LiveSettings {
        &self.shared.settings
    }

    /// A place for one more stream from `address`, or why not.
    pub fn admit(&self, address: &str) -> Result<Admission, Refused> {
        let process = self
            .shared
            .streams
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refused::ProcessFull)?;
        let address = self
            .shared
            .per_address
            .try_acquire(address)
            .ok_or(Refused::AddressFull)?;
        Ok(Admission {
            _process: process,
            _address: address,
        })
    }

    /// A stream of the messages after `after` (from the store's end when `None`) that
    /// `filter` admits. The feed starts with the first subscriber.
    pub async fn subscribe(
        &self,
        admission: Admission,
        after: Option<Checkpoint>,
        filter: Filter,
    ) -> Result<Stream, sqlx::Error> {
        let now = reader::read_last(&self.shared.pool, 1)
            .await?
            .last()
            .map_or_else(Checkpoint::default, |event| event.checkpoint);
        self.start_feed();
        Ok(Stream::new(
            self.shared.clone(),
            admission,
            after,
            now,
            filter,
        ))
    }

    /// Ends every stream and the feed (graceful shutdown): clients reconnect elsewhere
    /// with their `Last-Event-ID`.
    pub fn close(&self) {
        self.shared.closing.send_replace(true);
    }

    pub fn stats(&self) -> Stats {
        Stats {
            open_streams: self.shared.settings.max_streams
                - self.shared.streams.available_permits(),
            published: self.shared.published.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    fn start_feed(&self) {
        if !self.shared.feed_started.swap(true, Ordering::SeqCst) {
            tokio::spawn(feed::run(self.shared.clone()));
        }
    }
}

impl Shared {
    /// Nothing under the lock can leave the history half-changed, so a panic elsewhere
    /// does not make it unusable.
    fn lock(&self) -> MutexGuard<'_, History> {
        self.history.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
