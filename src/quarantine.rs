//! Retrying the read models' quarantined events once their cause is fixed: the event's data
//! in the store, or an upcaster in a new release (`board projections quarantine retry`).
//!
//! Each aggregate is retried in one transaction of its own, under the projection's share
//! lock (so a rebuild swaps tables before or after, never during): its events are read
//! again from the event store, through the upcasters, and the fold applies them in place
//! of its quarantined ones (`projections::fold::retry_quarantined`). What still cannot be
//! applied goes back into quarantine in the same transaction, so a failed retry leaves
//! everything as it was. The live projector may run meanwhile: the fold locks the
//! aggregate's rows, and what it then receives of the aggregate is a duplicate or its
//! next event.

use std::fmt;
use std::str::FromStr;

use aggregates::AggregateKind;
use sqlx::{MySqlPool, PgPool};

use projections::fold::{self, BatchError};

use crate::personal_data::{Reveal, Vault};
use projections::quarantine::{self, Entry};
use projections::Envelope;

use crate::kafka::envelope;
use crate::store::reader;

/// One aggregate, as `TYPE:ID` on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggregateRef {
    pub kind: AggregateKind,
    pub id: String,
}

impl FromStr for AggregateRef {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let (kind, id) = text
            .split_once(':')
            .ok_or_else(|| format!("`{text}` is not TYPE:ID (post:0190…)"))?;
        let kind = kind.parse().map_err(|e| format!("{e}"))?;
        Ok(Self {
            kind,
            id: id.to_string(),
        })
    }
}

impl fmt::Display for AggregateRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

/// What a retry did for one aggregate.
#[derive(Debug)]
pub struct Retried {
    pub aggregate: AggregateRef,
    /// Events applied now.
    pub applied: usize,
    /// Its events still in quarantine, with their reasons.
    pub left: Vec<Entry>,
}

/// How often an aggregate's retry is tried again after losing a lock conflict to the live
/// projector (a deadlock: each waited for rows the other held).
const ATTEMPTS: usize = 10;

/// Retries every aggregate with quarantined events, or only `only`; returns what became
/// of each (none: nothing was in quarantine).
pub async fn retry(
    store: &PgPool,
    read: &MySqlPool,
    only: Option<&AggregateRef>,
) -> anyhow::Result<Vec<Retried>> {
    let mut aggregates = Vec::new();
    for (aggregate_type, id) in quarantine::aggregates(read).await? {
        // The fold quarantines only the kinds it follows, so each parses.
        let kind = aggregate_type.parse()?;
        let aggregate = AggregateRef { kind, id };
        if only.is_none_or(|only| *only == aggregate) {
            aggregates.push(aggregate);
        }
    }
    let mut retried = Vec::new();
    for aggregate in aggregates {
        retried.push(retry_one(store, read, aggregate).await?);
    }
    Ok(retried)
}

async fn retry_one(
    store: &PgPool,
    read: &MySqlPool,
    aggregate: AggregateRef,
) -> anyhow::Result<Retried> {
    let mut attempt = 1;
    loop {
        let mut tx = read.begin().await?;
        fold::share_lock(&mut tx).await?;
        // All of its events, upcast: those applied before are duplicates, and any the
        // projector never received fill the gap they left.
        let mut events: Vec<Envelope> =
            reader::aggregate_events(store, aggregate.kind.as_str(), &aggregate.id)
                .await?
                .iter()
                .map(envelope)
                .collect();
        Vault::new(store.clone())
            .open_all(&mut events, Reveal::Public)
            .await?;
        match fold::retry_quarantined(&mut tx, aggregate.kind, &aggregate.id, &events).await {
            Ok(applied) => {
                let left =
                    quarantine::list(&mut *tx, Some((aggregate.kind.as_str(), &aggregate.id)))
                        .await?;
                tx.commit().await?;
                return Ok(Retried {
                    aggregate,
                    applied: applied.applied,
                    left,
                });
            }
            Err(BatchError::Database(error))
                if fold::is_retryable(&error) && attempt < ATTEMPTS =>
            {
                attempt += 1;
                tracing::debug!(%error, attempt, %aggregate, "retrying after a lock conflict");
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context(format!("retrying {aggregate}")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_aggregate_is_named_by_type_and_id() {
        let post: AggregateRef = "post:0190-abc".parse().unwrap();
        assert_eq!(post.kind, AggregateKind::Post);
        assert_eq!(post.id, "0190-abc");
        assert_eq!(post.to_string(), "post:0190-abc");
        assert!("0190-abc".parse::<AggregateRef>().is_err());
        assert!("posts:0190-abc".parse::<AggregateRef>().is_err());
    }
}
