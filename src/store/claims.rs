//! Values unique across aggregates: an account's email, a category's name.
//!
//! A category's name is claimed by a trigger on the events table in the transaction of
//! the event that takes it (`unique_claims`); a second claim breaks the primary key, which
//! the command bus reports as a conflict, and the caller then asks here who holds the
//! value. An account's email travels sealed in its event, so the account service claims
//! it itself, just before it records the registration ([`claim`], [`take_over`]).

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

/// Claims `value` for `aggregate_id`; false when someone holds it already.
pub async fn claim(
    pool: &PgPool,
    kind: ClaimKind,
    value: &str,
    aggregate_id: &str,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO unique_claims (claim_kind, claim_value, aggregate_id)
         VALUES ($1, lower($2), $3) ON CONFLICT DO NOTHING",
    )
    .bind(kind.as_str())
    .bind(value)
    .bind(aggregate_id)
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Moves `value` from `holder` to `aggregate_id` if `holder` still holds it and claimed it
/// at least `grace` ago; true when it moved.
pub async fn take_over(
    pool: &PgPool,
    kind: ClaimKind,
    value: &str,
    holder: &str,
    aggregate_id: &str,
    grace: std::time::Duration,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE unique_claims SET aggregate_id = $4, claimed_at = now()
         WHERE claim_kind = $1 AND claim_value = lower($2) AND aggregate_id = $3
           AND claimed_at <= now() - make_interval(secs => $5)",
    )
    .bind(kind.as_str())
    .bind(value)
    .bind(holder)
    .bind(aggregate_id)
    .bind(grace.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives up `aggregate_id`'s claim of `value` (a registration that did not happen).
pub async fn give_up(
    pool: &PgPool,
    kind: ClaimKind,
    value: &str,
    aggregate_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM unique_claims
         WHERE claim_kind = $1 AND claim_value = lower($2) AND aggregate_id = $3",
    )
    .bind(kind.as_str())
    .bind(value)
    .bind(aggregate_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// The aggregate that holds `value`, and whether it has held it for `grace` already.
pub async fn claim_holder_since(
    pool: &PgPool,
    kind: ClaimKind,
    value: &str,
    grace: std::time::Duration,
) -> Result<Option<(String, bool)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT aggregate_id, claimed_at <= now() - make_interval(secs => $3)
         FROM unique_claims WHERE claim_kind = $1 AND claim_value = lower($2)",
    )
    .bind(kind.as_str())
    .bind(value)
    .bind(grace.as_secs_f64())
    .fetch_optional(pool)
    .await
}
