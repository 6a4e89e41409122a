//! Board flows behind the HTTP API: categories, posts and comments.
//!
//! The handlers parse a request and shape the answer; this service runs the command in
//! between. It looks up what the command must carry about other aggregates (does the
//! category exist? is the post live?), sends it to the aggregate's command bus, and turns
//! what the store says (a name claimed by another category, the edited post as the store
//! now has it) into what the handlers need.
//!
//! A command that loses a race is decided again by the bus on the facts it carries, not
//! looked up afresh. That is safe: categories are never deleted, and a post or comment
//! create loses only to a create of the same id, after which the aggregate answers from
//! its own state before it reads the fact.

mod edited_post;

use std::sync::Arc;

use sqlx::PgPool;
use thiserror::Error;
use uuid::Uuid;

use aggregates::category::CategoryCommand;
use aggregates::comment::CommentCommand;
use aggregates::post::PostCommand;
use aggregates::Actor;

use crate::store::{self, ClaimKind, CommandBuses, CommandError, EventStoreLookup, Metadata};

pub use edited_post::EditedPost;

#[derive(Debug, Error)]
pub enum BoardError {
    #[error("a category with this name already exists")]
    CategoryNameTaken,
    #[error(transparent)]
    Command(#[from] CommandError),
}

impl From<sqlx::Error> for BoardError {
    fn from(err: sqlx::Error) -> Self {
        Self::Command(err.into())
    }
}

/// What `POST /board/categories` asks for, already checked against the field rules.
pub struct CategoryDraft {
    pub name: String,
    pub description: String,
}

/// What `POST /board/categories/{categoryId}/posts` asks for, already checked.
pub struct PostDraft {
    pub category_id: Uuid,
    pub title: String,
    pub content: String,
}

/// What `PATCH /board/posts/{postId}` asks to change: at least one of the two, checked.
pub struct PostChanges {
    pub title: Option<String>,
    pub content: Option<String>,
}

pub struct BoardService {
    pool: PgPool,
    buses: Arc<CommandBuses>,
    lookup: EventStoreLookup,
}

impl BoardService {
    pub fn new(pool: PgPool, buses: Arc<CommandBuses>) -> Self {
        Self {
            lookup: EventStoreLookup::new(buses.clone()),
            pool,
            buses,
        }
    }

    /// Creates category `category_id`; returns its version. Running it again with the
    /// same id and data changes nothing.
    pub async fn create_category(
        &self,
        actor: Actor,
        category_id: Uuid,
        draft: CategoryDraft,
        metadata: &Metadata,
    ) -> Result<u64, BoardError> {
        let name = draft.name.trim().to_string();
        let command = CategoryCommand::Create {
            actor,
            name: draft.name,
            description: draft.description,
        };
        match self
            .buses
            .categories
            .execute_create(category_id, command, metadata)
            .await
        {
            Ok(outcome) => Ok(outcome.version),
            // The name claim is written with the event; losing that race is a conflict on
            // a fresh id, so look at who holds the name.
            Err(CommandError::Conflict)
                if store::claim_holder(&self.pool, ClaimKind::CategoryName, &name)
                    .await?
                    .is_some_and(|holder| holder != category_id.to_string()) =>
            {
                Err(BoardError::CategoryNameTaken)
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Writes post `post_id`; returns its version. Harmless to repeat with the same data.
    pub async fn create_post(
        &self,
        actor: Actor,
        post_id: Uuid,
        draft: PostDraft,
        metadata: &Metadata,
    ) -> Result<u64, BoardError> {
        let category = self.lookup.category_status(draft.category_id).await?;
        let command = PostCommand::Create {
            actor,
            category_id: draft.category_id,
            category,
            title: draft.title,
            content: draft.content,
        };
        let outcome = self
            .buses
            .posts
            .execute_create(post_id, command, metadata)
            .await?;
        Ok(outcome.version)
    }

    /// Edits a post and returns it as the event store now has it.
    pub async fn edit_post(
        &self,
        actor: Actor,
        post_id: Uuid,
        changes: PostChanges,
        expected_versions: Option<&[u64]>,
        metadata: &Metadata,
    ) -> Result<EditedPost, BoardError> {
        let command = PostCommand::Edit {
            actor,
            title: changes.title,
            content: changes.content,
        };
        let outcome = self
            .buses
            .posts
            .execute(post_id, command, expected_versions, metadata)
            .await?;
        let (author, _) = self.buses.accounts.load(outcome.state.author_id).await?;
        Ok(EditedPost::read(&self.pool, post_id, outcome, author.nickname).await?)
    }

    /// Deletes a post; returns its version.
    pub async fn delete_post(
        &self,
        actor: Actor,
        post_id: Uuid,
        expected_versions: Option<&[u64]>,
        metadata: &Metadata,
    ) -> Result<u64, BoardError> {
        let outcome = self
            .buses
            .posts
            .execute(
                post_id,
                PostCommand::Delete { actor },
                expected_versions,
                metadata,
            )
            .await?;
        Ok(outcome.version)
    }

    /// Adds comment `comment_id` to a post; returns its version. Harmless to repeat.
    pub async fn add_comment(
        &self,
        actor: Actor,
        comment_id: Uuid,
        post_id: Uuid,
        content: String,
        metadata: &Metadata,
    ) -> Result<u64, BoardError> {
        let post = self.lookup.post_status(post_id).await?;
        let command = CommentCommand::Add {
            actor,
            post_id,
            post,
            content,
        };
        let outcome = self
            .buses
            .comments
            .execute_create(comment_id, command, metadata)
            .await?;
        Ok(outcome.version)
    }

    /// Deletes a comment; returns its version.
    pub async fn delete_comment(
        &self,
        actor: Actor,
        comment_id: Uuid,
        expected_versions: Option<&[u64]>,
        metadata: &Metadata,
    ) -> Result<u64, BoardError> {
        let outcome = self
            .buses
            .comments
            .execute(
                comment_id,
                CommentCommand::Delete { actor },
                expected_versions,
                metadata,
            )
            .await?;
        Ok(outcome.version)
    }
}
