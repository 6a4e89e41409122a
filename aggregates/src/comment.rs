//! Comments: added by verified accounts to a live post, deleted by their author or an admin.
//!
//! A comment is its own aggregate so that comments on one post never contend with each
//! other or with edits of the post. Whether the post is live is looked up by the
//! application before it sends `CommentCommand::Add`, and travels in it; a post deleted
//! concurrently (after that lookup, before the comment commits) can still gain a comment
//! in that instant, which the read side hides together with the post.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decide::{decide_and_record, Decide};
use crate::facts::PostStatus;
use crate::{rules, Actor, DomainError, EVENT_VERSION_1};

/// `CommentAdded` 2.0 names the text `content`; 1.0 (stored by the first release) named it
/// `text`, and is upcast when read (see `board::store::upcasting`).
pub const COMMENT_ADDED_VERSION: &str = "2.0";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommentCommand {
    Add {
        actor: Actor,
        post_id: Uuid,
        /// Post `post_id`'s status (`Post::status`) when the command was sent.
        post: PostStatus,
        content: String,
    },
    Delete {
        actor: Actor,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CommentEvent {
    CommentAdded {
        post_id: Uuid,
        author_id: Uuid,
        content: String,
    },
    CommentDeleted {
        deleted_by: Uuid,
    },
}

impl DomainEvent for CommentEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CommentAdded { .. } => "CommentAdded",
            Self::CommentDeleted { .. } => "CommentDeleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        match self {
            Self::CommentAdded { .. } => COMMENT_ADDED_VERSION,
            Self::CommentDeleted { .. } => EVENT_VERSION_1,
        }
        .to_string()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment {
    pub created: bool,
    pub deleted: bool,
    pub post_id: Uuid,
    pub author_id: Uuid,
    pub content: String,
}

impl Aggregate for Comment {
    const TYPE: &'static str = "comment";
    type Command = CommentCommand;
    type Event = CommentEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CommentCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        decide_and_record(self, command, sink).await
    }

    fn apply(&mut self, event: CommentEvent) {
        match event {
            CommentEvent::CommentAdded {
                post_id,
                author_id,
                content,
            } => {
                self.created = true;
                self.post_id = post_id;
                self.author_id = author_id;
                self.content = content;
            }
            CommentEvent::CommentDeleted { .. } => self.deleted = true,
        }
    }
}

impl Decide for Comment {
    fn decide(&self, command: CommentCommand) -> Result<Vec<CommentEvent>, DomainError> {
        match command {
            CommentCommand::Add {
                actor,
                post_id,
                post,
                content,
            } => self.add(actor, post_id, post, content),
            CommentCommand::Delete { actor } => self.delete(actor),
        }
    }
}

impl Comment {
    fn add(
        &self,
        actor: Actor,
        post_id: Uuid,
        post: PostStatus,
        content: String,
    ) -> Result<Vec<CommentEvent>, DomainError> {
        if !actor.verified {
            return Err(DomainError::NotVerified);
        }
        rules::comment_content(&content).map_err(|e| DomainError::Invalid(vec![e]))?;
        if self.created {
            // A retried add (same id, same data) is a no-op, not a conflict, whatever the
            // post became since.
            let same = self.author_id == actor.account_id
                && self.post_id == post_id
                && self.content == content;
            return if same {
                Ok(vec![])
            } else {
                Err(DomainError::AlreadyExists("comment"))
            };
        }
        match post {
            PostStatus::Live => Ok(vec![CommentEvent::CommentAdded {
                post_id,
                author_id: actor.account_id,
                content,
            }]),
            PostStatus::Missing | PostStatus::Deleted => Err(DomainError::NotFound("post")),
        }
    }

    fn delete(&self, actor: Actor) -> Result<Vec<CommentEvent>, DomainError> {
        if !self.created || self.deleted {
            return Err(DomainError::NotFound("comment"));
        }
        if actor.account_id != self.author_id && !actor.is_admin() {
            return Err(DomainError::Forbidden(
                "only the author or an admin may delete a comment",
            ));
        }
        Ok(vec![CommentEvent::CommentDeleted {
            deleted_by: actor.account_id,
        }])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{after, ADMIN, AUTHOR, OTHER, POST};
    use cqrs_es::test::TestFramework;

    fn given() -> TestFramework<Comment> {
        TestFramework::with(())
    }

    /// A comment on `POST`, which has `post` status.
    fn add(actor: Actor, post: PostStatus) -> CommentCommand {
        CommentCommand::Add {
            actor,
            post_id: POST,
            post,
            content: "Nice".into(),
        }
    }

    fn added() -> CommentEvent {
        CommentEvent::CommentAdded {
            post_id: POST,
            author_id: AUTHOR.account_id,
            content: "Nice".into(),
        }
    }

    #[tokio::test]
    async fn verified_account_comments_on_a_live_post() {
        given()
            .given_no_previous_events()
            .when_async(add(AUTHOR, PostStatus::Live))
            .await
            .then_expect_events(vec![added()]);
    }

    #[tokio::test]
    async fn unverified_account_may_not_comment() {
        let unverified = Actor {
            verified: false,
            ..AUTHOR
        };
        given()
            .given_no_previous_events()
            .when_async(add(unverified, PostStatus::Live))
            .await
            .then_expect_error(DomainError::NotVerified);
    }

    #[tokio::test]
    async fn no_comments_on_deleted_or_unknown_posts() {
        for post in [PostStatus::Deleted, PostStatus::Missing] {
            given()
                .given_no_previous_events()
                .when_async(add(AUTHOR, post))
                .await
                .then_expect_error(DomainError::NotFound("post"));
        }
    }

    #[tokio::test]
    async fn content_limits_are_enforced() {
        for content in [String::new(), "c".repeat(2_001)] {
            let result = given()
                .given_no_previous_events()
                .when_async(CommentCommand::Add {
                    actor: AUTHOR,
                    post_id: POST,
                    post: PostStatus::Live,
                    content,
                })
                .await
                .inspect_result();
            assert!(matches!(result, Err(DomainError::Invalid(_))), "{result:?}");
        }
    }

    #[tokio::test]
    async fn retried_add_is_a_no_op() {
        given()
            .given(vec![added()])
            .when_async(add(AUTHOR, PostStatus::Live))
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn author_or_admin_may_delete_someone_else_may_not() {
        for actor in [AUTHOR, ADMIN] {
            given()
                .given(vec![added()])
                .when_async(CommentCommand::Delete { actor })
                .await
                .then_expect_events(vec![CommentEvent::CommentDeleted {
                    deleted_by: actor.account_id,
                }]);
        }
        given()
            .given(vec![added()])
            .when_async(CommentCommand::Delete { actor: OTHER })
            .await
            .then_expect_error(DomainError::Forbidden(
                "only the author or an admin may delete a comment",
            ));
    }

    #[tokio::test]
    async fn deleting_twice_is_not_found() {
        given()
            .given(vec![
                added(),
                CommentEvent::CommentDeleted {
                    deleted_by: AUTHOR.account_id,
                },
            ])
            .when_async(CommentCommand::Delete { actor: AUTHOR })
            .await
            .then_expect_error(DomainError::NotFound("comment"));
    }

    // `decide` on its own: which rule answers first, and what a repeat is compared on.

    #[test]
    fn an_unverified_account_is_refused_before_content_and_post_are_checked() {
        let command = CommentCommand::Add {
            actor: Actor {
                verified: false,
                ..AUTHOR
            },
            post_id: POST,
            post: PostStatus::Missing,
            content: String::new(),
        };
        assert_eq!(
            Comment::default().decide(command),
            Err(DomainError::NotVerified)
        );
    }

    #[test]
    fn bad_content_is_reported_before_a_missing_post() {
        let command = CommentCommand::Add {
            actor: AUTHOR,
            post_id: POST,
            post: PostStatus::Missing,
            content: String::new(),
        };
        let result = Comment::default().decide(command);
        assert!(matches!(result, Err(DomainError::Invalid(_))), "{result:?}");
    }

    /// The command bus decides a command again after losing a race, on the facts it
    /// carries; an add that lost to the same add must not read them.
    #[test]
    fn a_repeated_add_answers_from_the_comment_even_if_the_post_is_deleted_since() {
        let comment: Comment = after([added()]);
        assert_eq!(comment.decide(add(AUTHOR, PostStatus::Deleted)), Ok(vec![]));
    }

    #[test]
    fn a_repeated_add_with_other_content_conflicts() {
        let comment: Comment = after([added()]);
        let other_content = CommentCommand::Add {
            actor: AUTHOR,
            post_id: POST,
            post: PostStatus::Live,
            content: "Nicer".into(),
        };
        assert_eq!(
            comment.decide(other_content),
            Err(DomainError::AlreadyExists("comment"))
        );
    }

    #[test]
    fn deleting_an_unknown_comment_is_not_found() {
        assert_eq!(
            Comment::default().decide(CommentCommand::Delete { actor: ADMIN }),
            Err(DomainError::NotFound("comment"))
        );
    }

    #[test]
    fn a_deleted_comment_is_not_found_before_anyone_is_refused() {
        let comment: Comment = after([
            added(),
            CommentEvent::CommentDeleted {
                deleted_by: AUTHOR.account_id,
            },
        ]);
        assert_eq!(
            comment.decide(CommentCommand::Delete { actor: OTHER }),
            Err(DomainError::NotFound("comment"))
        );
    }
}
