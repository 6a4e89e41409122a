//! Categories: created by admins, each with a name unique across the board.
//!
//! Name uniqueness spans aggregates, so the event store enforces it (a claim table written
//! in the same transaction as `CategoryCreated`). Categories are never deleted.

use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::decide::{decide_and_record, Decide};
use crate::facts::CategoryStatus;
use crate::{rules, Actor, DomainError, EVENT_VERSION_1};

/// A category is only ever created: once it exists it exists for good, which the command
/// side relies on (it remembers the categories it has seen exist, `board`'s
/// `store::EventStoreLookup`). A command that ends a category must change that first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CategoryCommand {
    Create {
        actor: Actor,
        name: String,
        description: String,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CategoryEvent {
    /// `name` is trimmed.
    CategoryCreated {
        name: String,
        description: String,
        created_by: Uuid,
    },
}

impl DomainEvent for CategoryEvent {
    fn event_type(&self) -> String {
        match self {
            Self::CategoryCreated { .. } => "CategoryCreated".to_string(),
        }
    }

    fn event_version(&self) -> String {
        EVENT_VERSION_1.to_string()
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Category {
    pub created: bool,
    pub name: String,
    pub description: String,
}

impl Aggregate for Category {
    const TYPE: &'static str = "category";
    type Command = CategoryCommand;
    type Event = CategoryEvent;
    type Error = DomainError;
    type Services = ();

    async fn handle(
        &mut self,
        command: CategoryCommand,
        _services: &(),
        sink: &EventSink<Self>,
    ) -> Result<(), DomainError> {
        decide_and_record(self, command, sink).await
    }

    fn apply(&mut self, event: CategoryEvent) {
        let CategoryEvent::CategoryCreated {
            name, description, ..
        } = event;
        self.created = true;
        self.name = name;
        self.description = description;
    }
}

impl Decide for Category {
    fn decide(&self, command: CategoryCommand) -> Result<Vec<CategoryEvent>, DomainError> {
        let CategoryCommand::Create {
            actor,
            name,
            description,
        } = command;
        if !actor.is_admin() {
            return Err(DomainError::Forbidden("only admins may create categories"));
        }
        let name = name.trim().to_string();
        let errors = rules::collect([
            rules::category_name(&name),
            rules::category_description(&description),
        ]);
        if !errors.is_empty() {
            return Err(DomainError::Invalid(errors));
        }
        if self.created {
            // A retried create (same id, same data) is a no-op, not a conflict.
            return if self.name == name && self.description == description {
                Ok(vec![])
            } else {
                Err(DomainError::AlreadyExists("category"))
            };
        }
        Ok(vec![CategoryEvent::CategoryCreated {
            name,
            description,
            created_by: actor.account_id,
        }])
    }
}

impl Category {
    /// What a post in this category needs to know of it (see `PostCommand::Create`).
    pub fn status(&self) -> CategoryStatus {
        if self.created {
            CategoryStatus::Exists
        } else {
            CategoryStatus::Missing
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{after, ADMIN};
    use crate::Role;
    use cqrs_es::test::TestFramework;

    fn create(actor: Actor, name: &str) -> CategoryCommand {
        CategoryCommand::Create {
            actor,
            name: name.into(),
            description: "about rust".into(),
        }
    }

    fn created() -> CategoryEvent {
        CategoryEvent::CategoryCreated {
            name: "Rust".into(),
            description: "about rust".into(),
            created_by: ADMIN.account_id,
        }
    }

    #[tokio::test]
    async fn admin_creates_a_category_with_trimmed_name() {
        TestFramework::<Category>::with(())
            .given_no_previous_events()
            .when_async(create(ADMIN, " Rust "))
            .await
            .then_expect_events(vec![created()]);
    }

    #[tokio::test]
    async fn members_may_not_create_categories() {
        let member = Actor {
            role: Role::Member,
            ..ADMIN
        };
        TestFramework::<Category>::with(())
            .given_no_previous_events()
            .when_async(create(member, "Rust"))
            .await
            .then_expect_error(DomainError::Forbidden("only admins may create categories"));
    }

    #[tokio::test]
    async fn name_and_description_limits_are_enforced() {
        let result = TestFramework::<Category>::with(())
            .given_no_previous_events()
            .when_async(CategoryCommand::Create {
                actor: ADMIN,
                name: "n".repeat(51),
                description: "d".repeat(501),
            })
            .await
            .inspect_result();
        let Err(DomainError::Invalid(errors)) = result else {
            panic!("expected invalid input, got {result:?}");
        };
        assert_eq!(errors.len(), 2);
    }

    #[tokio::test]
    async fn retried_create_is_a_no_op_and_a_different_one_conflicts() {
        TestFramework::<Category>::with(())
            .given(vec![created()])
            .when_async(create(ADMIN, "Rust"))
            .await
            .then_expect_events(vec![]);
        TestFramework::<Category>::with(())
            .given(vec![created()])
            .when_async(create(ADMIN, "Go"))
            .await
            .then_expect_error(DomainError::AlreadyExists("category"));
    }

    // `decide` on its own: which rule answers first, and what a repeat is compared on.

    #[test]
    fn a_member_is_refused_before_the_fields_are_checked() {
        let member = Actor {
            role: Role::Member,
            ..ADMIN
        };
        assert_eq!(
            Category::default().decide(create(member, "")),
            Err(DomainError::Forbidden("only admins may create categories"))
        );
    }

    #[test]
    fn a_repeat_is_compared_on_the_trimmed_name_and_the_description() {
        let category: Category = after([created()]);
        assert_eq!(category.decide(create(ADMIN, "  Rust ")), Ok(vec![]));
        let other_description = CategoryCommand::Create {
            actor: ADMIN,
            name: "Rust".into(),
            description: "about crabs".into(),
        };
        assert_eq!(
            category.decide(other_description),
            Err(DomainError::AlreadyExists("category"))
        );
    }

    #[test]
    fn status_says_whether_the_category_exists() {
        assert_eq!(Category::default().status(), CategoryStatus::Missing);
        assert_eq!(
            after::<Category>([created()]).status(),
            CategoryStatus::Exists
        );
    }
}
