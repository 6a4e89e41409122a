//! Facts about database connections, and creating and naming databases.
//!
//! [`is_unavailable`] tells "the database is away" from "the database refused what we
//! asked", for PostgreSQL and MySQL alike: the first is a 503 and worth retrying, the
//! second a bug.
//!
//! Rebuilds use [`with_database`] to name shadow databases beside the live one.
//!
//! [`checked_when_idle`] is how every long-lived pool checks a connection before it hands
//! it out.

use std::time::Duration;

use sqlx::pool::PoolOptions;
use sqlx::{Connection, Database};

/// How long after its last use a pooled connection is handed out again without a ping.
pub const TRUSTED_AFTER_USE: Duration = Duration::from_millis(500);

/// `options` with the check a connection gets before it is handed out: a ping only when
/// it has been idle for [`TRUSTED_AFTER_USE`] or longer, as HikariCP does
/// (`aliveBypassWindowMs`, also 500 ms).
///
/// sqlx pings every connection it hands out by default (`test_before_acquire`): one more
/// round trip before every transaction and every query on the pool. In a burst of
/// commands it was the sqlx function with the most samples in the benchmark's profile
/// (docs/PERFORMANCE.md). A connection used moments ago is as alive as a ping would show;
/// one idle for longer (the database may have restarted meanwhile) is still checked,
/// and one that fails the ping is closed and another taken, as before.
pub fn checked_when_idle<DB: Database>(options: PoolOptions<DB>) -> PoolOptions<DB> {
    options
        .test_before_acquire(false)
        .before_acquire(|connection, metadata| {
            Box::pin(async move {
                if metadata.idle_for >= TRUSTED_AFTER_USE {
                    connection.ping().await?;
                }
                Ok(true)
            })
        })
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

/// True when the database could not be reached or refused to work for now, as opposed to
/// rejecting what we asked of it.
pub fn is_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01..57P03: shutting down or starting up;
            // 53300: too many connections. (PostgreSQL and MySQL codes alike.)
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
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
}
