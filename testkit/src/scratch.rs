//! Scratch databases: each test or benchmark run gets new, empty databases on the
//! configured servers, named `<prefix>_<unix time>_<random>`. Ones left behind by runs
//! older than two hours are dropped on the way, so aborted runs do not pile up.

use board::databases::with_database;
use sqlx::{Connection, MySqlConnection, MySqlPool, PgConnection};
use uuid::Uuid;

const STALE_AFTER_SECS: i64 = 7_200;

fn fresh_name(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}",
        chrono::Utc::now().timestamp(),
        &Uuid::new_v4().simple().to_string()[..12]
    )
}

/// True for a scratch database of `prefix` created more than two hours ago.
fn is_stale(name: &str, prefix: &str) -> bool {
    let created = name
        .strip_prefix(prefix)
        .and_then(|rest| rest.trim_start_matches('_').split('_').next())
        .and_then(|t| t.parse::<i64>().ok());
    created.is_some_and(|t| t < chrono::Utc::now().timestamp() - STALE_AFTER_SECS)
}

/// A new PostgreSQL database on the server of `server_url`; returns its URL.
pub async fn scratch_postgres(server_url: &str, prefix: &str) -> Result<String, sqlx::Error> {
    let mut admin = PgConnection::connect(server_url).await?;
    let names: Vec<String> =
        sqlx::query_scalar("SELECT datname FROM pg_database WHERE datname LIKE $1 || '\\_%'")
            .bind(prefix)
            .fetch_all(&mut admin)
            .await?;
    for name in names.iter().filter(|n| is_stale(n, prefix)) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await;
    }
    let name = fresh_name(prefix);
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    Ok(with_database(server_url, &name))
}

/// A new MySQL database on the server of `server_url`; returns its URL.
pub async fn scratch_mysql(server_url: &str, prefix: &str) -> Result<String, sqlx::Error> {
    let mut admin = MySqlConnection::connect(server_url).await?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(schema_name AS CHAR) FROM information_schema.schemata WHERE schema_name LIKE CONCAT(?, '\\_%')",
    )
    .bind(prefix)
    .fetch_all(&mut admin)
    .await?;
    for name in names.iter().filter(|n| is_stale(n, prefix)) {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await;
    }
    let name = fresh_name(prefix);
    sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        .execute(&mut admin)
        .await?;
    Ok(with_database(server_url, &name))
}

/// A new MySQL database on the server of `server_url` with the read models' schema;
/// returns its URL.
pub async fn migrated_mysql(server_url: &str, prefix: &str) -> anyhow::Result<String> {
    let url = scratch_mysql(server_url, prefix).await?;
    let pool = MySqlPool::connect(&url).await?;
    board::app::migrate_read_models(&pool).await?;
    pool.close().await;
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_scratch_databases_are_stale() {
        assert!(is_stale("board_test_1000_abc", "board_test"));
        let now = chrono::Utc::now().timestamp();
        assert!(!is_stale(&format!("board_test_{now}_abc"), "board_test"));
        assert!(!is_stale("board_read", "board_test"));
        assert!(!is_stale(&fresh_name("board_test"), "board_test"));
    }
}
