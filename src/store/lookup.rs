//! Looks up, from the event store itself, the facts about other aggregates that a command
//! carries (`aggregates::facts`), so they are as fresh as the write side (never the
//! lagging read models).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use uuid::Uuid;

use aggregates::facts::{CategoryStatus, PostStatus};

use super::{CommandBuses, CommandError};

/// Loads through the command buses, so a fact is read the way the aggregate itself is
/// (its snapshot and the events after it).
pub struct EventStoreLookup {
    buses: Arc<CommandBuses>,
    /// Categories seen to exist. A category that exists exists for good (it has no command
    /// but its creation, and the store only grows), so remembering one can never answer
    /// stale: every post created in it needs one read less. A missing one is asked again
    /// every time, since it may be created at any moment.
    existing_categories: Mutex<HashSet<Uuid>>,
}

/// The most categories remembered; past it the memory starts over (a board has far
/// fewer, and made-up ids are missing, so they are never remembered).
const CATEGORIES_REMEMBERED: usize = 100_000;

impl EventStoreLookup {
    pub fn new(buses: Arc<CommandBuses>) -> Self {
        Self {
            buses,
            existing_categories: Mutex::new(HashSet::new()),
        }
    }

    pub async fn category_status(&self, category_id: Uuid) -> Result<CategoryStatus, CommandError> {
        if self.remembered().contains(&category_id) {
            return Ok(CategoryStatus::Exists);
        }
        let (category, _) = self
            .buses
            .categories
            .load(category_id)
            .await
            .map_err(unavailable)?;
        let status = category.status();
        if status == CategoryStatus::Exists {
            let mut remembered = self.remembered();
            if remembered.len() >= CATEGORIES_REMEMBERED {
                remembered.clear();
            }
            remembered.insert(category_id);
        }
        Ok(status)
    }

    fn remembered(&self) -> MutexGuard<'_, HashSet<Uuid>> {
        self.existing_categories
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub async fn post_status(&self, post_id: Uuid) -> Result<PostStatus, CommandError> {
        let (post, _) = self.buses.posts.load(post_id).await.map_err(unavailable)?;
        Ok(post.status())
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
