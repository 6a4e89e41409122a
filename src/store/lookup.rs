//! Answers the aggregates' questions about other aggregates from the event store itself,
//! so the answers are as fresh as the write side (never the lagging read models).

use async_trait::async_trait;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::EventStore;
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use uuid::Uuid;

use aggregates::category::Category;
use aggregates::lookup::{BoardLookup, PostStatus};
use aggregates::post::Post;

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
}

#[async_trait]
impl BoardLookup for EventStoreLookup {
    async fn category_exists(&self, category_id: Uuid) -> Result<bool, String> {
        let context = self
            .categories
            .load_aggregate(&category_id.to_string())
            .await
            .map_err(|e| e.to_string())?;
        Ok(context.aggregate.created)
    }

    async fn post_status(&self, post_id: Uuid) -> Result<PostStatus, String> {
        let context = self
            .posts
            .load_aggregate(&post_id.to_string())
            .await
            .map_err(|e| e.to_string())?;
        let post = context.aggregate;
        Ok(match (post.created, post.deleted) {
            (false, _) => PostStatus::Missing,
            (true, false) => PostStatus::Live,
            (true, true) => PostStatus::Deleted,
        })
    }
}
