//! Who is issuing a command.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An account's role. Admins may create categories and delete anyone's posts and comments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    Member,
    Admin,
}

/// The authenticated account behind a command, as established by the HTTP layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub account_id: Uuid,
    pub role: Role,
    pub verified: bool,
}

impl Actor {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}
