//! Facts about other aggregates, carried in the commands that need them.
//!
//! The application looks them up from the event store (as fresh as the write side, never
//! the lagging read models) just before it sends the command. A fact can change between
//! that lookup and the command's commit; the aggregate that uses it says what that allows.

use serde::{Deserialize, Serialize};

/// Whether a category exists; see `Category::status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CategoryStatus {
    Missing,
    Exists,
}

/// Whether a post exists and is not deleted; see `Post::status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PostStatus {
    Missing,
    Live,
    Deleted,
}
