//! Looks up, from the event store itself, the facts about other aggregates that a command
//! carries (`aggregates::facts`), so they are as fresh as the write side (never the
//! lagging read models).

use sqlx::PgPool;
use uuid::Uuid;

use aggregates::category::Category;
use aggregates::facts::{CategoryStatus, PostStatus};
use aggregates::post::Post;

use super::aggregate_loader::AggregateLoader;
use super::CommandError;

pub struct EventStoreLookup {
    categories: AggregateLoader<Category>,
    posts: AggregateLoader<Post>,
}

impl EventStoreLookup {
    pub fn new(pool: PgPool) -> Self {
        Self {
            categories: AggregateLoader::with_snapshots(pool.clone()),
            posts: AggregateLoader::with_snapshots(pool),
        }
    }

    pub async fn category_status(&self, category_id: Uuid) -> Result<CategoryStatus, CommandError> {
        let loaded = self
            .categories
            .load(category_id)
            .await
            .map_err(unavailable)?;
        Ok(loaded.state.status())
    }

    pub async fn post_status(&self, post_id: Uuid) -> Result<PostStatus, CommandError> {
        let loaded = self.posts.load(post_id).await.map_err(unavailable)?;
        Ok(loaded.state.status())
    }
}

/// Without the fact the command cannot be decided, whatever kept the store from answering:
/// the store is unavailable to it (503, try again), as when the aggregate asked itself.
fn unavailable(err: CommandError) -> CommandError {
    match err {
        CommandError::Unavailable(_) => err,
        other => CommandError::Unavailable(Box::new(other)),
    }
}
