//! One live message: an event rendered once, as it goes on the wire, for every
//! subscriber of the process.

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use aggregates::category::CategoryEvent;
use aggregates::comment::CommentEvent;
use aggregates::post::PostEvent;

use super::facts::{BoardEvent, Facts};
use super::token;
use crate::http::format_time;
use crate::http::schema::{
    event_names, Author, Comment, LiveCategoryCreated, LiveCommentAdded, LiveCommentDeleted,
    LivePostCreated, LivePostDeleted, LivePostEdited,
};
use crate::store::reader::{Checkpoint, RecordedEvent};

/// An event as subscribers receive it.
#[derive(Debug)]
pub struct Message {
    /// Its place in the global order: its resume token.
    pub checkpoint: Checkpoint,
    /// Its number among the messages this process published (from 1), by which a
    /// subscriber's lag is counted.
    pub number: u64,
    /// When the event was recorded, for the delivery lag.
    pub recorded_at: DateTime<Utc>,
    /// What filters look at: the category and the post it belongs to (a category's own
    /// message has no post).
    pub category_id: String,
    pub post_id: Option<String>,
    /// `id:`, `event:` and `data:` lines and the blank line that ends them.
    pub wire: Bytes,
    /// The author it names, if any: kept so that the history can be rewritten when that
    /// account closes (see [`Message::with_author_closed`]).
    author: Option<NamedAuthor>,
}

/// An author as a message's `data:` line names them.
#[derive(Debug)]
struct NamedAuthor {
    account_id: String,
    json: String,
}

impl NamedAuthor {
    fn of(author: &Author) -> Self {
        Self {
            account_id: author.account_id.clone(),
            json: serde_json::to_string(author).expect("an author serializes"),
        }
    }
}

impl Message {
    fn new(
        event: &RecordedEvent,
        name: &str,
        body: &impl Serialize,
        category_id: String,
        post_id: Option<String>,
    ) -> Self {
        Self {
            checkpoint: event.checkpoint,
            number: 0,
            recorded_at: event.recorded_at,
            category_id,
            post_id,
            wire: frame(Some(event.checkpoint), name, body),
            author: None,
        }
    }

    fn naming(mut self, author: NamedAuthor) -> Self {
        self.author = Some(author);
        self
    }

    /// This message as it reads once `account_id` is closed, if it names that account as
    /// its author: no nickname, `closed: true`, as the query API shows it then. A client
    /// resuming from before the closing is replayed this one, never the nickname.
    pub fn with_author_closed(&self, account_id: &str) -> Option<Self> {
        let named = self
            .author
            .as_ref()
            .filter(|a| a.account_id == account_id)?;
        let closed = NamedAuthor::of(&Author::new(account_id, None, Some(true)));
        // The author's JSON object cannot occur inside a string value of the message,
        // where every quote is escaped: the one occurrence is the author.
        let text = std::str::from_utf8(&self.wire).ok()?;
        let wire = Bytes::from(text.replacen(&named.json, &closed.json, 1));
        Some(Self {
            checkpoint: self.checkpoint,
            number: self.number,
            recorded_at: self.recorded_at,
            category_id: self.category_id.clone(),
            post_id: self.post_id.clone(),
            wire,
            author: Some(closed),
        })
    }
}

/// An SSE frame. `serde_json` writes no raw newline, so `data:` is one line.
pub fn frame(id: Option<Checkpoint>, name: &str, body: &impl Serialize) -> Bytes {
    let data = serde_json::to_string(body).expect("a body of strings serializes");
    let mut text = String::with_capacity(data.len() + 64);
    if let Some(id) = id {
        text.push_str("id: ");
        text.push_str(&token::encode(id));
        text.push('\n');
    }
    text.push_str("event: ");
    text.push_str(name);
    text.push_str("\ndata: ");
    text.push_str(&data);
    text.push_str("\n\n");
    Bytes::from(text)
}

/// The message of `event`, if it has one: account events have none, and nothing of a
/// post follows its deletion. Every fact is asked for before any is learnt, so an error
/// (the store away) leaves the facts as they were and the event can be rendered again.
pub async fn render(
    facts: &mut Facts,
    event: &RecordedEvent,
) -> Result<Option<Message>, sqlx::Error> {
    let Some(decoded) = BoardEvent::decode(event) else {
        if event.aggregate_type != "account" {
            tracing::warn!(
                position = event.checkpoint.global_position,
                event_type = %event.event_type,
                "an event that does not decode has no live message"
            );
        }
        return Ok(None);
    };
    let message = message(facts, event, &decoded).await?;
    facts.learn(&event.aggregate_id, &decoded);
    Ok(message)
}

async fn message(
    facts: &mut Facts,
    event: &RecordedEvent,
    decoded: &BoardEvent,
) -> Result<Option<Message>, sqlx::Error> {
    let at = event.checkpoint;
    let id = &event.aggregate_id;
    let position = format!("{}:{}:{}", event.aggregate_type, id, event.sequence);
    let time = format_time(event.recorded_at);
    Ok(match decoded {
        BoardEvent::Account(_) => None,
        BoardEvent::Category(CategoryEvent::CategoryCreated {
            name, description, ..
        }) => {
            let body = LiveCategoryCreated {
                category_id: id.clone(),
                name: name.clone(),
                description: description.clone(),
                created_at: time,
                event_position: position,
            };
            Some(Message::new(
                event,
                event_names::CATEGORY_CREATED,
                &body,
                id.clone(),
                None,
            ))
        }
        BoardEvent::Post(PostEvent::PostCreated {
            category_id,
            author_id,
            title,
            ..
        }) => {
            let author = author(facts, &author_id.to_string(), at).await?;
            let named = NamedAuthor::of(&author);
            let body = LivePostCreated {
                post_id: id.clone(),
                category_id: category_id.to_string(),
                title: title.clone(),
                author,
                created_at: time,
                event_position: position,
            };
            let category = category_id.to_string();
            Some(
                Message::new(
                    event,
                    event_names::POST_CREATED,
                    &body,
                    category,
                    Some(id.clone()),
                )
                .naming(named),
            )
        }
        BoardEvent::Post(PostEvent::PostEdited { title, .. }) => {
            let Some(post) = facts.post(id, at).await?.filter(|p| !p.deleted) else {
                return Ok(None);
            };
            let body = LivePostEdited {
                post_id: id.clone(),
                category_id: post.category_id.clone(),
                title: title.clone().unwrap_or(post.title),
                updated_at: time,
                event_position: position,
            };
            Some(Message::new(
                event,
                event_names::POST_EDITED,
                &body,
                post.category_id,
                Some(id.clone()),
            ))
        }
        BoardEvent::Post(PostEvent::PostDeleted { .. }) => {
            let Some(post) = facts.post(id, at).await?.filter(|p| !p.deleted) else {
                return Ok(None);
            };
            let body = LivePostDeleted {
                post_id: id.clone(),
                category_id: post.category_id.clone(),
                event_position: position,
            };
            Some(Message::new(
                event,
                event_names::POST_DELETED,
                &body,
                post.category_id,
                Some(id.clone()),
            ))
        }
        BoardEvent::Comment(CommentEvent::CommentAdded {
            post_id,
            author_id,
            content,
        }) => {
            let post_id = post_id.to_string();
            let Some(post) = facts.post(&post_id, at).await?.filter(|p| !p.deleted) else {
                return Ok(None);
            };
            let author = author(facts, &author_id.to_string(), at).await?;
            let named = NamedAuthor::of(&author);
            let body = LiveCommentAdded {
                comment: Comment {
                    comment_id: id.clone(),
                    post_id: post_id.clone(),
                    content: content.clone(),
                    author,
                    created_at: time,
                },
                event_position: position,
            };
            Some(
                Message::new(
                    event,
                    event_names::COMMENT_ADDED,
                    &body,
                    post.category_id,
                    Some(post_id),
                )
                .naming(named),
            )
        }
        BoardEvent::Comment(CommentEvent::CommentDeleted { .. }) => {
            let Some(post_id) = facts.comment_post(id, at).await? else {
                return Ok(None);
            };
            let Some(post) = facts.post(&post_id, at).await?.filter(|p| !p.deleted) else {
                return Ok(None);
            };
            let body = LiveCommentDeleted {
                comment_id: id.clone(),
                post_id: post_id.clone(),
                event_position: position,
            };
            Some(Message::new(
                event,
                event_names::COMMENT_DELETED,
                &body,
                post.category_id,
                Some(post_id),
            ))
        }
    })
}

/// As the query API shows an author: the account id and its nickname, nothing else.
async fn author(
    facts: &mut Facts,
    account_id: &str,
    at: Checkpoint,
) -> Result<Author, sqlx::Error> {
    let author = facts.author(account_id, at).await?;
    Ok(Author::new(
        account_id,
        author.nickname.clone(),
        Some(author.closed),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::schema::LiveReset;

    #[test]
    fn a_frame_is_id_event_and_one_data_line() {
        let id = Checkpoint {
            transaction_id: 7,
            global_position: 3,
        };
        let body = LiveReset {
            detail: "two\nlines".into(),
        };
        let wire = frame(Some(id), event_names::RESET, &body);
        assert_eq!(
            std::str::from_utf8(&wire).unwrap(),
            "id: 7-3\nevent: reset\ndata: {\"detail\":\"two\\nlines\"}\n\n"
        );
    }
}
