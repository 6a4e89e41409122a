//! Values unique across aggregates: an account's email, a category's name.
//!
//! A trigger on the events table claims the value in the transaction of the event that
//! takes it (`unique_claims`); a second claim breaks the primary key, which the command bus
//! reports as a conflict, and the caller then asks here who holds the value.

use sqlx::PgPool;

/// Which kind of unique value a claim protects; see the `unique_claims` table.
#[derive(Debug, Clone, Copy)]
pub enum ClaimKind {
    AccountEmail,
    CategoryName,
}

impl ClaimKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::AccountEmail => "account.email",
            Self::CategoryName => "category.name",
        }
    }
}

/// The aggregate that holds a unique value (compared case-insensitively), if any.
pub async fn claim_holder(
    pool: &PgPool,
    kind: ClaimKind,
    value: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT aggregate_id FROM unique_claims WHERE claim_kind = $1 AND claim_value = lower($2)",
    )
    .bind(kind.as_str())
    .bind(value)
    .fetch_optional(pool)
    .await
}
