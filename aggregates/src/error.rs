//! The domain's one error type.

use thiserror::Error;

/// One field that broke a rule, named as the client sent it (`title`, `contact.email`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Why an aggregate refused a command. Every variant maps to exactly one HTTP status.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    /// One or more fields break the rules in [`crate::rules`].
    #[error("invalid input: {}", .0.iter().map(|e| format!("{} {}", e.field, e.message)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
    /// The aggregate (or one it refers to) does not exist or was deleted.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A create command hit an aggregate that already exists with other data.
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// The actor is authenticated but not allowed to do this.
    #[error("forbidden: {0}")]
    Forbidden(&'static str),
    /// Only verified accounts may post or comment.
    #[error("the account is not verified")]
    NotVerified,
}

impl DomainError {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, message)])
    }
}
