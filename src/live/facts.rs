//! What a message needs to know beyond its own event: a post's category and title, the
//! post a comment is on, whether that post is deleted, an author's nickname.
//!
//! These facts come from the event store itself, as of the event being rendered, never
//! from the read models: a read model trails the store (it would give a nickname of
//! nobody yet) or runs ahead of a replay (it would show a title edited later), so two
//! replicas, or one replaying an old stretch, could render one event two ways. Here the
//! feed learns each fact from the events it passes, in the global order; a fact it has
//! not seen (an aggregate older than the process, or forgotten to bound memory) is loaded
//! from that aggregate's events before the one being rendered. Either way the answer is
//! the one at that event's place in the order, on every replica.
//!
//! The nickname comes from the account's `AccountRegistered` event, for the same reason,
//! opened with the account's key (`crate::personal_data`): once an account is closed its
//! key is gone, its `AccountClosed` marks it closed, and no message names it again.

use std::collections::HashMap;
use std::hash::Hash;

use serde::de::DeserializeOwned;
use sqlx::PgPool;

use aggregates::account::AccountEvent;
use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;
use aggregates::AggregateKind;
use projections::Envelope;

use crate::personal_data::{self, Reveal, Vault};
use crate::store::reader::{self, Checkpoint, RecordedEvent};

/// Facts kept of each kind before the map is emptied and refilled on demand: memory stays
/// bounded however large the board, and a forgotten fact is only a load away.
const REMEMBERED: usize = 50_000;

/// A stored event decoded into its aggregate's event type.
pub enum BoardEvent {
    Account(AccountEvent),
    Category(CategoryEvent),
    Post(PostEvent),
    Comment(CommentEvent),
}

impl BoardEvent {
    /// `None` for an aggregate type the board does not know, or a payload that does not
    /// decode (written by a newer release, or damaged): such an event has no message.
    pub fn decode(event: &RecordedEvent) -> Option<Self> {
        fn parse<E: DeserializeOwned>(event: &RecordedEvent) -> Option<E> {
            let payload = Envelope::untag(&event.event_type, event.payload.clone());
            serde_json::from_value(serde_json::json!({ event.event_type.clone(): payload })).ok()
        }
        Some(match event.aggregate_type.parse::<AggregateKind>().ok()? {
            AggregateKind::Account => Self::Account(parse(event)?),
            AggregateKind::Category => Self::Category(parse(event)?),
            AggregateKind::Post => Self::Post(parse(event)?),
            AggregateKind::Comment => Self::Comment(parse(event)?),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostFacts {
    pub category_id: String,
    pub title: String,
    pub deleted: bool,
}

impl PostFacts {
    /// The post after `event`; `None` before it was created.
    pub fn after(facts: Option<Self>, event: &PostEvent) -> Option<Self> {
        match event {
            PostEvent::PostCreated {
                category_id, title, ..
            } => Some(Self {
                category_id: category_id.to_string(),
                title: title.clone(),
                deleted: false,
            }),
            PostEvent::PostEdited { title, .. } => facts.map(|mut post| {
                if let Some(title) = title {
                    post.title.clone_from(title);
                }
                post
            }),
            PostEvent::PostDeleted { .. } => facts.map(|post| Self {
                deleted: true,
                ..post
            }),
        }
    }
}

/// The facts of the board as of the feed's place in the global order.
pub struct Facts {
    pool: PgPool,
    posts: Remembered<PostFacts>,
    /// A comment's post.
    comments: Remembered<String>,
    /// An account as an author: its nickname (`None`: no registration, or erased) and
    /// whether it is closed.
    authors: Remembered<AuthorFacts>,
    /// The accounts' keys, to open nicknames.
    vault: Vault,
}

/// What a message shows of an author.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthorFacts {
    pub nickname: Option<String>,
    pub closed: bool,
}

impl Facts {
    pub fn new(pool: PgPool) -> Self {
        Self {
            vault: Vault::new(pool.clone()),
            pool,
            posts: Remembered::default(),
            comments: Remembered::default(),
            authors: Remembered::default(),
        }
    }

    /// The post `id` just before `at`; `None` when it did not exist then.
    pub async fn post(
        &mut self,
        id: &str,
        at: Checkpoint,
    ) -> Result<Option<PostFacts>, sqlx::Error> {
        if let Some(known) = self.posts.get(id) {
            return Ok(Some(known.clone()));
        }
        let mut post = None;
        for event in self.history(AggregateKind::Post, id, at).await? {
            if let Some(BoardEvent::Post(event)) = BoardEvent::decode(&event) {
                post = PostFacts::after(post, &event);
            }
        }
        if let Some(post) = &post {
            self.posts.put(id.to_string(), post.clone());
        }
        Ok(post)
    }

    /// The post the comment `id` is on, just before `at`.
    pub async fn comment_post(
        &mut self,
        id: &str,
        at: Checkpoint,
    ) -> Result<Option<String>, sqlx::Error> {
        if let Some(known) = self.comments.get(id) {
            return Ok(Some(known.clone()));
        }
        let post = self
            .first_in_history(AggregateKind::Comment, id, at, |event| match event {
                BoardEvent::Comment(CommentEvent::CommentAdded { post_id, .. }) => {
                    Some(post_id.to_string())
                }
                _ => None,
            })
            .await?;
        if let Some(post) = &post {
            self.comments.put(id.to_string(), post.clone());
        }
        Ok(post)
    }

    /// The account `id` as an author, just before `at`.
    pub async fn author(&mut self, id: &str, at: Checkpoint) -> Result<AuthorFacts, sqlx::Error> {
        if let Some(known) = self.authors.get(id) {
            return Ok(known.clone());
        }
        let mut author = AuthorFacts::default();
        for event in self.history(AggregateKind::Account, id, at).await? {
            match BoardEvent::decode(&event) {
                Some(BoardEvent::Account(AccountEvent::AccountRegistered { nickname, .. })) => {
                    author.nickname = Some(nickname).filter(|n| n != personal_data::ERASED);
                }
                Some(BoardEvent::Account(AccountEvent::AccountClosed {})) => {
                    author = AuthorFacts {
                        nickname: None,
                        closed: true,
                    };
                }
                _ => {}
            }
        }
        self.authors.put(id.to_string(), author.clone());
        Ok(author)
    }

    /// What an event passing the feed teaches. Call it only after every fact the event's
    /// message needed was asked for: those loads stop just before the event.
    pub fn learn(&mut self, aggregate_id: &str, event: &BoardEvent) {
        match event {
            // Its nickname passes sealed: the next message that needs it loads it, opened.
            BoardEvent::Account(AccountEvent::AccountRegistered { .. }) => {
                self.authors.forget(aggregate_id);
            }
            BoardEvent::Account(AccountEvent::AccountClosed {}) => {
                self.authors.put(
                    aggregate_id.to_string(),
                    AuthorFacts {
                        nickname: None,
                        closed: true,
                    },
                );
            }
            BoardEvent::Post(event) => {
                let known = self.posts.get(aggregate_id).cloned();
                if let Some(post) = PostFacts::after(known, event) {
                    self.posts.put(aggregate_id.to_string(), post);
                }
            }
            BoardEvent::Comment(CommentEvent::CommentAdded { post_id, .. }) => {
                self.comments
                    .put(aggregate_id.to_string(), post_id.to_string());
            }
            _ => {}
        }
    }

    /// One aggregate's events before `at`, in order.
    async fn history(
        &self,
        kind: AggregateKind,
        id: &str,
        at: Checkpoint,
    ) -> Result<Vec<RecordedEvent>, sqlx::Error> {
        let mut events = reader::aggregate_events(&self.pool, kind.as_str(), id).await?;
        events.retain(|event| event.checkpoint < at);
        self.vault.open_all(&mut events, Reveal::Public).await?;
        Ok(events)
    }

    /// The first thing `pick` finds in one aggregate's events before `at`.
    async fn first_in_history<T>(
        &self,
        kind: AggregateKind,
        id: &str,
        at: Checkpoint,
        pick: impl Fn(BoardEvent) -> Option<T>,
    ) -> Result<Option<T>, sqlx::Error> {
        let events = self.history(kind, id, at).await?;
        Ok(events.iter().filter_map(BoardEvent::decode).find_map(pick))
    }
}

/// A map that forgets everything when it is full (see [`REMEMBERED`]).
struct Remembered<V> {
    entries: HashMap<String, V>,
}

impl<V> Default for Remembered<V> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<V> Remembered<V> {
    fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        String: std::borrow::Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key)
    }

    fn put(&mut self, key: String, value: V) {
        if self.entries.len() >= REMEMBERED && !self.entries.contains_key(&key) {
            self.entries.clear();
        }
        self.entries.insert(key, value);
    }

    fn forget(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn a_post_keeps_its_category_takes_new_titles_and_stays_deleted() {
        let category = Uuid::now_v7();
        let created = PostEvent::PostCreated {
            category_id: category,
            author_id: Uuid::now_v7(),
            title: "First".into(),
            content: "x".into(),
        };
        let post = PostFacts::after(None, &created);
        let content_only = PostEvent::PostEdited {
            title: None,
            content: Some("y".into()),
        };
        let post = PostFacts::after(post, &content_only);
        assert_eq!(post.as_ref().unwrap().title, "First");
        let retitled = PostEvent::PostEdited {
            title: Some("Second".into()),
            content: None,
        };
        let post = PostFacts::after(post, &retitled);
        let deleted = PostEvent::PostDeleted {
            deleted_by: Uuid::now_v7(),
        };
        let post = PostFacts::after(post, &deleted).unwrap();
        assert_eq!(
            post,
            PostFacts {
                category_id: category.to_string(),
                title: "Second".into(),
                deleted: true,
            }
        );
        assert_eq!(
            PostFacts::after(None, &retitled),
            None,
            "no post before its creation"
        );
    }

    #[test]
    fn a_full_map_forgets_and_goes_on() {
        let mut map = Remembered::default();
        for i in 0..=REMEMBERED {
            map.put(i.to_string(), i);
        }
        assert_eq!(map.entries.len(), 1);
        assert_eq!(map.get(REMEMBERED.to_string().as_str()), Some(&REMEMBERED));
    }
}
