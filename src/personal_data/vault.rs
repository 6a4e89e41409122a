//! The accounts' keys, in PostgreSQL (`personal_data_keys`), beside the events and never in
//! them. A key is made when its account's first personal value is sealed and deleted when
//! the account is closed or its sign-up released: from then on, what was sealed with it
//! reads as erased everywhere (the store, the topic, exports, rebuilds).

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::cipher::DataKey;

#[derive(Clone)]
pub struct Vault {
    pool: PgPool,
}

impl Vault {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// The key of `account_id`, made now if it has none. Only events with personal
    /// fields ask for one, and only a registration has them, which an account records
    /// once, before any closing: so a destroyed key is not made anew in practice. (This
    /// function would make one; the aggregate is what refuses a closed account's events.)
    pub async fn key_for_sealing(&self, account_id: &str) -> Result<DataKey, sqlx::Error> {
        let id = parse(account_id)?;
        sqlx::query(
            "INSERT INTO personal_data_keys (account_id, data_key) VALUES ($1, $2)
             ON CONFLICT (account_id) DO NOTHING",
        )
        .bind(id)
        .bind(DataKey::generate().as_bytes())
        .execute(&self.pool)
        .await?;
        let bytes: Vec<u8> =
            sqlx::query_scalar("SELECT data_key FROM personal_data_keys WHERE account_id = $1")
                .bind(id)
                .fetch_one(&self.pool)
                .await?;
        DataKey::from_bytes(&bytes).ok_or_else(|| damaged(account_id))
    }

    /// The keys that still exist among `account_ids` (destroyed ones are simply absent).
    pub async fn keys(
        &self,
        account_ids: impl IntoIterator<Item = &str>,
    ) -> Result<HashMap<String, DataKey>, sqlx::Error> {
        let ids: Vec<Uuid> = account_ids
            .into_iter()
            .filter_map(|id| id.parse().ok())
            .collect();
        if ids.is_empty() {
            return Ok(HashMap::new());
        }
        let rows: Vec<(Uuid, Vec<u8>)> = sqlx::query_as(
            "SELECT account_id, data_key FROM personal_data_keys WHERE account_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, bytes)| Some((id.to_string(), DataKey::from_bytes(&bytes)?)))
            .collect())
    }
}

/// Destroys `account_id`'s key in the caller's transaction: everything sealed with it is
/// erased for good.
pub async fn destroy_key_in(conn: &mut PgConnection, account_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM personal_data_keys WHERE account_id = $1")
        .bind(account_id)
        .execute(conn)
        .await?;
    Ok(())
}

fn parse(account_id: &str) -> Result<Uuid, sqlx::Error> {
    account_id
        .parse()
        .map_err(|e| sqlx::Error::Decode(format!("account id {account_id:?}: {e}").into()))
}

fn damaged(account_id: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("the key of account {account_id} is not 32 bytes").into())
}
