//! A comparable picture of the read models: every row of every view table, as text.
//! Two read models are equal when their snapshots are.

use std::collections::BTreeMap;

use sqlx::{MySqlPool, Row};

/// The view tables and the columns that make up their content, keyed first.
const VIEWS: [(&str, &str); 4] = [
    ("accounts_view", "account_id, nickname, version"),
    (
        "categories_view",
        "category_id, name, description, post_count, created_at, version",
    ),
    (
        "posts_view",
        "post_id, category_id, author_id, title, content, comment_count, created_at, updated_at, \
         deleted, version",
    ),
    (
        "comments_view",
        "comment_id, post_id, author_id, content, created_at, deleted, version",
    ),
];

/// Table name to its rows, each row rendered as one line, in key order.
pub type Snapshot = BTreeMap<&'static str, Vec<String>>;

pub async fn take(pool: &MySqlPool) -> Result<Snapshot, sqlx::Error> {
    let mut snapshot = Snapshot::new();
    for (table, columns) in VIEWS {
        let count = columns.split(',').count();
        let concat = columns
            .split(',')
            .map(|c| format!("COALESCE(CAST({} AS CHAR), '∅')", c.trim()))
            .collect::<Vec<_>>()
            .join(", '|', ");
        let key = columns.split(',').next().unwrap_or_default();
        let rows = sqlx::query(&format!(
            "SELECT CONCAT({concat}) AS line FROM {table} ORDER BY {key}"
        ))
        .fetch_all(pool)
        .await?;
        let lines = rows
            .iter()
            .map(|row| row.try_get::<String, _>("line"))
            .collect::<Result<Vec<_>, _>>()?;
        debug_assert!(lines.iter().all(|l| l.matches('|').count() >= count - 1));
        snapshot.insert(table, lines);
    }
    Ok(snapshot)
}

/// Lines present in one snapshot and not in the other, per table (`-` left, `+` right).
pub fn differences(left: &Snapshot, right: &Snapshot) -> Vec<String> {
    use std::collections::BTreeSet;
    let mut out = Vec::new();
    for (table, left_rows) in left {
        let left_set: BTreeSet<&String> = left_rows.iter().collect();
        let right_set: BTreeSet<&String> = right.get(table).into_iter().flatten().collect();
        for row in left_set.difference(&right_set) {
            out.push(format!("{table}: - {row}"));
        }
        for row in right_set.difference(&left_set) {
            out.push(format!("{table}: + {row}"));
        }
    }
    out
}
