//! A comparable picture of the read models: every row of every view table, as text.
//! Two read models are equal when their snapshots are.

use std::collections::BTreeMap;

use sqlx::{MySqlPool, Row};

use crate::views;

/// Table name to its rows, each row rendered as one line, in key order.
pub type Snapshot = BTreeMap<&'static str, Vec<String>>;

pub async fn take(pool: &MySqlPool) -> Result<Snapshot, sqlx::Error> {
    let mut snapshot = Snapshot::new();
    for view in views::ALL {
        let (table, key, count) = (view.table, view.key(), view.columns.len());
        let concat = view
            .columns
            .iter()
            .map(|c| format!("COALESCE(CAST({c} AS CHAR), '∅')"))
            .collect::<Vec<_>>()
            .join(", '|', ");
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
