//! Fixtures the aggregates' tests share: who acts, and the ids they act on.

use async_trait::async_trait;
use uuid::Uuid;

use crate::lookup::{BoardLookup, PostStatus};
use crate::{Actor, Role};

/// A verified member who writes the posts and comments under test.
pub const AUTHOR: Actor = Actor {
    account_id: Uuid::from_u128(10),
    role: Role::Member,
    verified: true,
};
/// A verified member who wrote none of them.
pub const OTHER: Actor = Actor {
    account_id: Uuid::from_u128(11),
    ..AUTHOR
};
pub const ADMIN: Actor = Actor {
    account_id: Uuid::from_u128(12),
    role: Role::Admin,
    verified: true,
};
pub const CATEGORY: Uuid = Uuid::from_u128(100);
pub const LIVE_POST: Uuid = Uuid::from_u128(200);
pub const DELETED_POST: Uuid = Uuid::from_u128(201);

/// A board with one category and one post of each status.
pub struct FixedBoard;

#[async_trait]
impl BoardLookup for FixedBoard {
    async fn category_exists(&self, category_id: Uuid) -> Result<bool, String> {
        Ok(category_id == CATEGORY)
    }
    async fn post_status(&self, post_id: Uuid) -> Result<PostStatus, String> {
        Ok(match post_id {
            LIVE_POST => PostStatus::Live,
            DELETED_POST => PostStatus::Deleted,
            _ => PostStatus::Missing,
        })
    }
}
