//! Looks up, from the event store itself, the facts about other aggregates that a command
//! carries (`aggregates::facts`), so they are as fresh as the write side (never the
//! lagging read models).

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, EventStore};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use uuid::Uuid;

use aggregates::category::Category;
use aggregates::facts::{CategoryStatus, PostStatus};
use aggregates::post::Post;
use aggregates::DomainError;

use super::CommandError;

pub struct EventStoreLookup {
    categories: PersistedEventStore<PostgresEventRepository, Category>,
    posts: PersistedEventStore<PostgresEventRepository, Post>,
}

impl EventStoreLookup {
    pub fn new(pool: PgPool) -> Self {
        Self {
            categories: PersistedEventStore::new_event_store(PostgresEventRepository::new(
                pool.clone(),
            ))
            .with_upcasters(super::upcasting::for_event_store()),
            posts: PersistedEventStore::new_event_store(PostgresEventRepository::new(pool))
                .with_upcasters(super::upcasting::for_event_store()),
        }
    }

    pub async fn category_status(&self, category_id: Uuid) -> Result<CategoryStatus, CommandError> {
        let context = self
            .categories
            .load_aggregate(&category_id.to_string())
            .await
            .map_err(unavailable)?;
        Ok(context.aggregate.status())
    }

    pub async fn post_status(&self, post_id: Uuid) -> Result<PostStatus, CommandError> {
        let context = self
            .posts
            .load_aggregate(&post_id.to_string())
            .await
            .map_err(unavailable)?;
        Ok(context.aggregate.status())
    }
}

/// Without the fact the command cannot be decided, whatever kept the store from answering:
/// the store is unavailable to it (503, try again), as when the aggregate asked itself.
fn unavailable(err: AggregateError<DomainError>) -> CommandError {
    CommandError::Unavailable(Box::new(err))
}
