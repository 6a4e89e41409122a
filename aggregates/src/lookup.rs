//! Facts from outside one aggregate, asked for while it decides a command.
//!
//! These are the cqrs-es `Services` of the post and comment aggregates. The application
//! answers them from the event store, so they are as fresh as the write side.

use async_trait::async_trait;
use uuid::Uuid;

/// What the comment aggregate needs to know about a post.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostStatus {
    Missing,
    Live,
    Deleted,
}

#[async_trait]
pub trait BoardLookup: Send + Sync {
    async fn category_exists(&self, category_id: Uuid) -> Result<bool, String>;
    async fn post_status(&self, post_id: Uuid) -> Result<PostStatus, String>;
}
