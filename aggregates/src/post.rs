//! Posts: written by verified accounts into a category, edited by their author, deleted by
//! their author or an admin. A deleted post takes no edits and no comments.
//!
//! Whether the category exists is looked up by the application and travels in
//! `PostCommand::Create`; categories are never deleted, so the answer cannot go stale.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decide::{decide_and_record, Decide};
use crate::facts::{CategoryStatus, PostStatus};
use crate::{rules, Actor, DomainError, EVENT_VERSION_1};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PostCommand {
    Create {
        actor: Actor,
        category_id: Uuid,
        /// Category `category_id`'s status (`Category::status`) when the command was sent.
        category: CategoryStatus,
        title: String,
        content: String,
    },
    /// At least one of the two; a field equal to the current value is not recorded.
    Edit {
        actor: Actor,
        title: Option<String>,
        content: Option<String>,
    },
    Delete {
        actor: Actor,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PostEvent {
    PostCreated {
        category_id: Uuid,
        author_id: Uuid,
        title: String,
        content: String,
    },
    /// Only the fields that changed are present.
    PostEdited {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        title: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<String>,
    },
    PostDeleted {
        deleted_by: Uuid,
    },
}

impl DomainEvent for PostEvent {
    fn event_type(&self) -> String {
        match self {
            Self::PostCreated { .. } => "PostCreated",
            Self::PostEdited { .. } => "PostEdited",
            Self::PostDeleted { .. } => "PostDeleted",
        }
        .to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_string()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Post {
    pub created: bool,
    pub deleted: bool,
    pub category_id: Uuid,
    pub author_id: Uuid,
    pub title: String,
    pub content: String,
}

impl Aggregate for Post {
    const TYPE: &'static str = "post";
    type Command = PostCommand;
    type Event = PostEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: PostCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        decide_and_record(self, command, sink).await
    }

    fn apply(&mut self, event: PostEvent) {
        match event {
            PostEvent::PostCreated {
                category_id,
                author_id,
                title,
                content,
            } => {
                self.created = true;
                self.category_id = category_id;
                self.author_id = author_id;
                self.title = title;
                self.content = content;
            }
            PostEvent::PostEdited { title, content } => {
                if let Some(title) = title {
                    self.title = title;
                }
                if let Some(content) = content {
                    self.content = content;
                }
            }
            PostEvent::PostDeleted { .. } => self.deleted = true,
        }
    }
}

impl Decide for Post {
    fn decide(&self, command: PostCommand) -> Result<Vec<PostEvent>, DomainError> {
        match command {
            PostCommand::Create {
                actor,
                category_id,
                category,
                title,
                content,
            } => self.create(actor, category_id, category, title, content),
            PostCommand::Edit {
                actor,
                title,
                content,
            } => self.edit(actor, title, content),
            PostCommand::Delete { actor } => self.delete(actor),
        }
    }
}

impl Post {
    /// What a comment on this post needs to know of it (see `CommentCommand::Add`).
    pub fn status(&self) -> PostStatus {
        match (self.created, self.deleted) {
            (false, _) => PostStatus::Missing,
            (true, false) => PostStatus::Live,
            (true, true) => PostStatus::Deleted,
        }
    }

    fn create(
        &self,
        actor: Actor,
        category_id: Uuid,
        category: CategoryStatus,
        title: String,
        content: String,
    ) -> Result<Vec<PostEvent>, DomainError> {
        if !actor.verified {
            return Err(DomainError::NotVerified);
        }
        let errors = rules::collect([rules::post_title(&title), rules::post_content(&content)]);
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors));
        }
        if self.created {
            // A retried create (same id, same data) is a no-op, not a conflict.
            let same = self.author_id == actor.account_id
                && self.category_id == category_id
                && self.title == title
                && self.content == content;
            return if same {
                Ok(vec![])
            } else {
                Err(DomainError::AlreadyExists("post"))
            };
        }
        match category {
            CategoryStatus::Exists => Ok(vec![PostEvent::PostCreated {
                category_id,
                author_id: actor.account_id,
                title,
                content,
            }]),
            CategoryStatus::Missing => Err(DomainError::NotFound("category")),
        }
    }

    fn edit(
        &self,
        actor: Actor,
        title: Option<String>,
        content: Option<String>,
    ) -> Result<Vec<PostEvent>, DomainError> {
        self.require_live()?;
        if actor.account_id != self.author_id {
            return Err(DomainError::Forbidden("only the author may edit a post"));
        }
        rules::post_edit(title.as_deref(), content.as_deref())
            .map_err(|error| DomainError::Invalid(vec![error]))?;
        let errors = rules::collect([
            title.as_deref().map_or(Ok(()), rules::post_title),
            content.as_deref().map_or(Ok(()), rules::post_content),
        ]);
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors));
        }
        let title = title.filter(|t| *t != self.title);
        let content = content.filter(|c| *c != self.content);
        if title.is_none() && content.is_none() {
            return Ok(vec![]);
        }
        Ok(vec![PostEvent::PostEdited { title, content }])
    }

    fn delete(&self, actor: Actor) -> Result<Vec<PostEvent>, DomainError> {
        self.require_live()?;
        if actor.account_id != self.author_id && !actor.is_admin() {
            return Err(DomainError::Forbidden(
                "only the author or an admin may delete a post",
            ));
        }
        Ok(vec![PostEvent::PostDeleted {
            deleted_by: actor.account_id,
        }])
    }

    fn require_live(&self) -> Result<(), DomainError> {
        if self.created && !self.deleted {
            Ok(())
        } else {
            Err(DomainError::NotFound("post"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{after, ADMIN, AUTHOR, CATEGORY, OTHER};
    use cqrs_es::test::TestFramework;

    fn given() -> TestFramework<Post> {
        TestFramework::with(())
    }

    /// A post into `CATEGORY`, which has `category` status.
    fn create(actor: Actor, category: CategoryStatus) -> PostCommand {
        PostCommand::Create {
            actor,
            category_id: CATEGORY,
            category,
            title: "Hello".into(),
            content: "First post".into(),
        }
    }

    fn created() -> PostEvent {
        PostEvent::PostCreated {
            category_id: CATEGORY,
            author_id: AUTHOR.account_id,
            title: "Hello".into(),
            content: "First post".into(),
        }
    }

    fn deleted() -> PostEvent {
        PostEvent::PostDeleted {
            deleted_by: AUTHOR.account_id,
        }
    }

    fn edit(actor: Actor, title: Option<&str>, content: Option<&str>) -> PostCommand {
        PostCommand::Edit {
            actor,
            title: title.map(Into::into),
            content: content.map(Into::into),
        }
    }

    #[tokio::test]
    async fn verified_account_creates_a_post() {
        given()
            .given_no_previous_events()
            .when_async(create(AUTHOR, CategoryStatus::Exists))
            .await
            .then_expect_events(vec![created()]);
    }

    #[tokio::test]
    async fn unverified_account_may_not_post() {
        let unverified = Actor {
            verified: false,
            ..AUTHOR
        };
        given()
            .given_no_previous_events()
            .when_async(create(unverified, CategoryStatus::Exists))
            .await
            .then_expect_error(DomainError::NotVerified);
    }

    #[tokio::test]
    async fn posting_into_an_unknown_category_is_not_found() {
        given()
            .given_no_previous_events()
            .when_async(create(AUTHOR, CategoryStatus::Missing))
            .await
            .then_expect_error(DomainError::NotFound("category"));
    }

    #[tokio::test]
    async fn title_and_content_limits_are_enforced_together() {
        let result = given()
            .given_no_previous_events()
            .when_async(PostCommand::Create {
                actor: AUTHOR,
                category_id: CATEGORY,
                category: CategoryStatus::Exists,
                title: String::new(),
                content: "c".repeat(20_001),
            })
            .await
            .inspect_result();
        let Err(DomainError::Invalid(errors)) = result else {
            panic!("expected invalid input, got {result:?}");
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["title", "content"]);
    }

    #[tokio::test]
    async fn retried_create_is_a_no_op_and_a_different_one_conflicts() {
        given()
            .given(vec![created()])
            .when_async(create(AUTHOR, CategoryStatus::Exists))
            .await
            .then_expect_events(vec![]);
        given()
            .given(vec![created()])
            .when_async(create(OTHER, CategoryStatus::Exists))
            .await
            .then_expect_error(DomainError::AlreadyExists("post"));
    }

    #[tokio::test]
    async fn author_edits_only_what_changed() {
        given()
            .given(vec![created()])
            .when_async(edit(AUTHOR, Some("Hello"), Some("New text")))
            .await
            .then_expect_events(vec![PostEvent::PostEdited {
                title: None,
                content: Some("New text".into()),
            }]);
    }

    #[tokio::test]
    async fn edit_that_changes_nothing_records_nothing() {
        given()
            .given(vec![created()])
            .when_async(edit(AUTHOR, Some("Hello"), None))
            .await
            .then_expect_events(vec![]);
    }

    #[tokio::test]
    async fn edit_needs_at_least_one_field() {
        given()
            .given(vec![created()])
            .when_async(edit(AUTHOR, None, None))
            .await
            .then_expect_error(DomainError::invalid(
                "title",
                "at least one of title and content is required",
            ));
    }

    #[tokio::test]
    async fn only_the_author_may_edit_not_even_an_admin() {
        for actor in [OTHER, ADMIN] {
            given()
                .given(vec![created()])
                .when_async(edit(actor, Some("Mine now"), None))
                .await
                .then_expect_error(DomainError::Forbidden("only the author may edit a post"));
        }
    }

    #[tokio::test]
    async fn deleted_post_takes_no_edits() {
        given()
            .given(vec![created(), deleted()])
            .when_async(edit(AUTHOR, Some("Back"), None))
            .await
            .then_expect_error(DomainError::NotFound("post"));
    }

    #[tokio::test]
    async fn editing_an_unknown_post_is_not_found() {
        given()
            .given_no_previous_events()
            .when_async(edit(AUTHOR, Some("x"), None))
            .await
            .then_expect_error(DomainError::NotFound("post"));
    }

    #[tokio::test]
    async fn author_or_admin_may_delete() {
        given()
            .given(vec![created()])
            .when_async(PostCommand::Delete { actor: AUTHOR })
            .await
            .then_expect_events(vec![deleted()]);
        given()
            .given(vec![created()])
            .when_async(PostCommand::Delete { actor: ADMIN })
            .await
            .then_expect_events(vec![PostEvent::PostDeleted {
                deleted_by: ADMIN.account_id,
            }]);
    }

    #[tokio::test]
    async fn someone_else_may_not_delete() {
        given()
            .given(vec![created()])
            .when_async(PostCommand::Delete { actor: OTHER })
            .await
            .then_expect_error(DomainError::Forbidden(
                "only the author or an admin may delete a post",
            ));
    }

    #[tokio::test]
    async fn deleting_twice_is_not_found() {
        given()
            .given(vec![created(), deleted()])
            .when_async(PostCommand::Delete { actor: AUTHOR })
            .await
            .then_expect_error(DomainError::NotFound("post"));
    }

    // `decide` on its own: which rule answers first.

    fn invalid_fields(result: Result<Vec<PostEvent>, DomainError>) -> Vec<&'static str> {
        match result {
            Err(DomainError::Invalid(errors)) => errors.iter().map(|e| e.field).collect(),
            other => panic!("expected invalid input, got {other:?}"),
        }
    }

    #[test]
    fn an_unverified_account_is_refused_before_the_fields_are_checked() {
        let unverified = Actor {
            verified: false,
            ..AUTHOR
        };
        let command = PostCommand::Create {
            actor: unverified,
            category_id: CATEGORY,
            category: CategoryStatus::Missing,
            title: String::new(),
            content: String::new(),
        };
        assert_eq!(
            Post::default().decide(command),
            Err(DomainError::NotVerified)
        );
    }

    #[test]
    fn bad_fields_are_reported_before_a_missing_category() {
        let command = PostCommand::Create {
            actor: AUTHOR,
            category_id: CATEGORY,
            category: CategoryStatus::Missing,
            title: String::new(),
            content: "First post".into(),
        };
        assert_eq!(invalid_fields(Post::default().decide(command)), ["title"]);
    }

    /// The command bus decides a command again after losing a race, on the facts it
    /// carries; a create that lost to the same create must not read them.
    #[test]
    fn a_repeated_create_answers_from_the_post_not_from_the_category_fact() {
        let post: Post = after([created()]);
        assert_eq!(
            post.decide(create(AUTHOR, CategoryStatus::Missing)),
            Ok(vec![])
        );
    }

    #[test]
    fn an_edit_checks_each_field_it_carries() {
        let post: Post = after([created()]);
        let too_long = "c".repeat(20_001);
        assert_eq!(
            invalid_fields(post.decide(edit(AUTHOR, Some(""), None))),
            ["title"]
        );
        assert_eq!(
            invalid_fields(post.decide(edit(AUTHOR, None, Some(&too_long)))),
            ["content"]
        );
    }

    #[test]
    fn a_deleted_post_is_not_found_before_anyone_is_refused() {
        let post: Post = after([created(), deleted()]);
        assert_eq!(
            post.decide(edit(OTHER, Some("Mine now"), None)),
            Err(DomainError::NotFound("post"))
        );
        assert_eq!(
            post.decide(PostCommand::Delete { actor: OTHER }),
            Err(DomainError::NotFound("post"))
        );
    }

    #[test]
    fn deleting_an_unknown_post_is_not_found() {
        assert_eq!(
            Post::default().decide(PostCommand::Delete { actor: ADMIN }),
            Err(DomainError::NotFound("post"))
        );
    }

    #[test]
    fn status_follows_the_post_from_missing_to_live_to_deleted() {
        assert_eq!(Post::default().status(), PostStatus::Missing);
        assert_eq!(after::<Post>([created()]).status(), PostStatus::Live);
        assert_eq!(
            after::<Post>([created(), deleted()]).status(),
            PostStatus::Deleted
        );
    }
}
