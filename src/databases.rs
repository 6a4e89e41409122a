//! Creating and naming databases.
//!
//! Scratch databases for tests and benchmarks: each run gets new, empty databases on the
//! configured servers, named `<prefix>_<unix time>_<random>`. Ones left behind by runs
//! older than two hours are dropped on the way, so aborted runs do not pile up.
//! Rebuilds use [`with_database`] to name shadow databases beside the live one.

use sqlx::{Connection, MySqlConnection, PgConnection};
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

/// `url` with its database replaced by `name` (or added, for a server-level URL).
pub fn with_database(url: &str, name: &str) -> String {
    let (url, query) = url
        .split_once('?')
        .map_or((url, None), |(u, q)| (u, Some(q)));
    let replaced = url_for(url, name);
    match query {
        Some(query) => format!("{replaced}?{query}"),
        None => replaced,
    }
}

/// The database a URL names (`board_read` in `mysql://u:p@host:3306/board_read`).
pub fn database_name(url: &str) -> Option<String> {
    let url = url.split('?').next()?;
    let (_, after_scheme) = url.split_once("://")?;
    let (_, name) = after_scheme.split_once('/')?;
    (!name.is_empty()).then(|| name.to_string())
}

fn url_for(server_url: &str, name: &str) -> String {
    let base = server_url
        .rsplit_once('/')
        .filter(|(scheme_and_host, _)| !scheme_and_host.ends_with('/'))
        .map_or(server_url.trim_end_matches('/'), |(base, _)| base);
    format!("{base}/{name}")
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
    Ok(url_for(server_url, &name))
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
    Ok(url_for(server_url, &name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_new_database() {
        assert_eq!(
            url_for("postgres://u:p@127.0.0.1:5432/postgres", "x"),
            "postgres://u:p@127.0.0.1:5432/x"
        );
        assert_eq!(
            url_for("mysql://u:p@127.0.0.1:3306", "x"),
            "mysql://u:p@127.0.0.1:3306/x"
        );
        assert_eq!(
            url_for("mysql://u:p@127.0.0.1:3306/", "x"),
            "mysql://u:p@127.0.0.1:3306/x"
        );
    }

    #[test]
    fn database_names_are_read_and_replaced() {
        let url = "mysql://u:p@127.0.0.1:3306/board_read?ssl-mode=disabled";
        assert_eq!(database_name(url).as_deref(), Some("board_read"));
        assert_eq!(
            with_database(url, "board_read__rebuild"),
            "mysql://u:p@127.0.0.1:3306/board_read__rebuild?ssl-mode=disabled"
        );
        assert_eq!(database_name("mysql://u:p@127.0.0.1:3306"), None);
    }

    #[test]
    fn only_old_scratch_databases_are_stale() {
        assert!(is_stale("board_test_1000_abc", "board_test"));
        let now = chrono::Utc::now().timestamp();
        assert!(!is_stale(&format!("board_test_{now}_abc"), "board_test"));
        assert!(!is_stale("board_read", "board_test"));
    }
}
