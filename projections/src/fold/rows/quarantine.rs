//! The quarantine as a batch sees it: which sequences of the batch's aggregates are held in
//! `quarantined_events` (locked and loaded after the view rows), the events the batch adds,
//! and, for a retry, the ones it releases. See `fold` for the rules.

use std::collections::{BTreeMap, BTreeSet};

use aggregates::AggregateKind;
use sqlx::{MySqlConnection, QueryBuilder};

use super::{statements, Lock, RowSize};
use crate::fold::READ_MODELS;
use crate::quarantine::TABLE;
use crate::Envelope;

/// An aggregate: its kind and id.
pub type Aggregate = (AggregateKind, String);

/// An event the batch puts in quarantine, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantined {
    pub envelope: Envelope,
    pub reason: String,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Quarantine {
    /// For each aggregate whose quarantine was loaded, the sequences it holds: those in
    /// the table, plus those this batch added.
    pub(super) held: BTreeMap<Aggregate, BTreeSet<i64>>,
    /// The aggregates whose quarantine was loaded (and locked).
    pub(super) loaded: BTreeSet<Aggregate>,
    /// Released by a retry: the aggregate's rows up to this sequence are deleted.
    pub(super) released: BTreeMap<Aggregate, i64>,
    /// Added by this batch, in order.
    pub(super) added: Vec<Quarantined>,
}

/// A reason longer than this is cut: it is for a person to read, and must fit its column.
const REASON_CHARS: usize = 2_000;

impl Quarantine {
    /// Whether `sequence` of `aggregate` is in quarantine already.
    pub fn holds(&self, aggregate: &Aggregate, sequence: i64) -> bool {
        self.held
            .get(aggregate)
            .is_some_and(|held| held.contains(&sequence))
    }

    /// The first sequence of `aggregate` in quarantine, if any.
    pub fn first_held(&self, aggregate: &Aggregate) -> Option<i64> {
        self.held.get(aggregate)?.first().copied()
    }

    /// The aggregates with events in quarantine, in the table or added since it was read.
    pub fn aggregates_held(&self) -> impl Iterator<Item = &Aggregate> {
        self.held
            .iter()
            .filter(|(_, held)| !held.is_empty())
            .map(|(aggregate, _)| aggregate)
    }

    /// How many events this batch added, and roughly how many bytes of text they hold.
    pub fn size(&self) -> (usize, usize) {
        fn text(value: &serde_json::Value) -> usize {
            match value {
                serde_json::Value::String(s) => s.len(),
                serde_json::Value::Array(items) => items.iter().map(text).sum(),
                serde_json::Value::Object(map) => map.iter().map(|(k, v)| k.len() + text(v)).sum(),
                _ => 8,
            }
        }
        let bytes = self
            .added
            .iter()
            .map(|q| q.reason.len() + text(&q.envelope.payload) + text(&q.envelope.metadata))
            .sum();
        (self.added.len(), bytes)
    }

    /// Puts `envelope`, an event of `kind`, in quarantine because of `reason`.
    pub fn add(&mut self, kind: AggregateKind, envelope: &Envelope, reason: String) {
        // Debug only: rebuilds and verify's scratch replays quarantine too. The live
        // projector warns with the count; the table keeps the details.
        tracing::debug!(
            aggregate_type = %envelope.aggregate_type, aggregate_id = %envelope.aggregate_id,
            sequence = envelope.sequence, event_type = %envelope.event_type, %reason,
            "event quarantined"
        );
        let aggregate = (kind, envelope.aggregate_id.clone());
        self.held
            .entry(aggregate)
            .or_default()
            .insert(envelope.sequence);
        let reason = match reason.char_indices().nth(REASON_CHARS) {
            Some((cut, _)) => format!("{}…", &reason[..cut]),
            None => reason,
        };
        self.added.push(Quarantined {
            envelope: envelope.clone(),
            reason,
        });
    }

    /// Takes `aggregate`'s events up to `through` out of quarantine, so that the batch
    /// applies them again (a retry, which brings those events). Later ones stay: they came
    /// in after the caller read the events it brings, and still wait.
    pub fn release(&mut self, aggregate: &Aggregate, through: i64) {
        if let Some(held) = self.held.get_mut(aggregate) {
            held.retain(|sequence| *sequence > through);
        }
        self.released.insert(aggregate.clone(), through);
    }

    /// The aggregates whose quarantine the batch added to without having loaded (and
    /// locked) it: their rows could clash with another applier's.
    #[cfg(test)]
    pub fn not_loaded(&self) -> Vec<Aggregate> {
        self.held
            .keys()
            .filter(|aggregate| !self.loaded.contains(*aggregate))
            .cloned()
            .collect()
    }

    /// Locks and loads what the quarantine holds of `aggregates`. The locks come after the
    /// view rows', in every batch, so two appliers take them in one order.
    pub async fn load(
        &mut self,
        conn: &mut MySqlConnection,
        aggregates: &BTreeSet<Aggregate>,
    ) -> Result<(), sqlx::Error> {
        self.select(conn, aggregates, Lock::ForUpdate).await
    }

    /// Brings into memory, without locks, what the quarantine holds of those of
    /// `aggregates` not loaded yet, for a table no one else writes (see `fold::Bulk`):
    /// from `writing` (a quarantine being written back) if it holds the aggregate, else
    /// from the table if `stored` says it may.
    pub async fn load_unlocked(
        &mut self,
        conn: &mut MySqlConnection,
        aggregates: &BTreeSet<Aggregate>,
        writing: Option<&Quarantine>,
        stored: impl Fn(&Aggregate) -> bool,
    ) -> Result<(), sqlx::Error> {
        let mut to_read = BTreeSet::new();
        for aggregate in aggregates.difference(&self.loaded) {
            if let Some(held) = writing.and_then(|w| w.held.get(aggregate)) {
                self.held.insert(aggregate.clone(), held.clone());
            } else if stored(aggregate) {
                to_read.insert(aggregate.clone());
            }
        }
        self.select(conn, &to_read, Lock::None).await?;
        self.loaded.extend(aggregates.iter().cloned());
        Ok(())
    }

    async fn select(
        &mut self,
        conn: &mut MySqlConnection,
        aggregates: &BTreeSet<Aggregate>,
        lock: Lock,
    ) -> Result<(), sqlx::Error> {
        if aggregates.is_empty() {
            return Ok(());
        }
        let mut by_kind: BTreeMap<AggregateKind, Vec<&str>> = BTreeMap::new();
        for (kind, id) in aggregates {
            by_kind.entry(*kind).or_default().push(id);
        }
        // One range of the primary key per kind (a row-constructor IN is not planned as a
        // range everywhere, and a locking read that scanned would lock every row).
        let mut select = QueryBuilder::new(format!(
            "SELECT aggregate_type, aggregate_id, sequence FROM {TABLE} WHERE projection = "
        ));
        select.push_bind(READ_MODELS).push(" AND (");
        for (i, (kind, ids)) in by_kind.into_iter().enumerate() {
            if i > 0 {
                select.push(" OR ");
            }
            select
                .push("(aggregate_type = ")
                .push_bind(kind.as_str())
                .push(" AND aggregate_id IN (");
            let mut list = select.separated(", ");
            for id in ids {
                list.push_bind(id);
            }
            select.push("))");
        }
        select.push(")");
        if lock == Lock::ForUpdate {
            select.push(" FOR UPDATE");
        }
        let rows: Vec<(String, String, i64)> = select.build_query_as().fetch_all(conn).await?;
        self.loaded.extend(aggregates.iter().cloned());
        for (aggregate_type, id, sequence) in rows {
            if let Ok(kind) = aggregate_type.parse() {
                self.held.entry((kind, id)).or_default().insert(sequence);
            }
        }
        Ok(())
    }

    /// Deletes what a retry released, then inserts what the batch added.
    pub async fn write(&self, conn: &mut MySqlConnection) -> Result<(), sqlx::Error> {
        for ((kind, id), through) in &self.released {
            sqlx::query(&format!(
                "DELETE FROM {TABLE}
                  WHERE projection = ? AND aggregate_type = ? AND aggregate_id = ? AND sequence <= ?"
            ))
            .bind(READ_MODELS)
            .bind(kind.as_str())
            .bind(id)
            .bind(through)
            .execute(&mut *conn)
            .await?;
        }
        let added: Vec<Insert<'_>> = self
            .added
            .iter()
            .map(|quarantined| Insert {
                quarantined,
                envelope: serde_json::to_string(&quarantined.envelope)
                    .expect("an envelope always serializes"),
            })
            .collect();
        for chunk in statements(&added) {
            let mut insert = QueryBuilder::new(format!(
                "INSERT INTO {TABLE} (projection, aggregate_type, aggregate_id, sequence,
                        event_id, event_type, event_version, reason, envelope, quarantined_at) "
            ));
            insert.push_values(chunk, |mut b, row| {
                let envelope = &row.quarantined.envelope;
                b.push_bind(READ_MODELS)
                    .push_bind(&envelope.aggregate_type)
                    .push_bind(&envelope.aggregate_id)
                    .push_bind(envelope.sequence)
                    .push_bind(envelope.event_id.to_string())
                    .push_bind(&envelope.event_type)
                    .push_bind(&envelope.event_version)
                    .push_bind(&row.quarantined.reason)
                    .push_bind(&row.envelope)
                    .push("UTC_TIMESTAMP(3)");
            });
            insert.build().execute(&mut *conn).await?;
        }
        Ok(())
    }
}

/// A row to insert, its envelope as JSON.
struct Insert<'a> {
    quarantined: &'a Quarantined,
    envelope: String,
}

impl RowSize for Insert<'_> {
    fn text_bytes(&self) -> usize {
        self.envelope.len() + self.quarantined.reason.len()
    }
}
