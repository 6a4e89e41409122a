//! Applies events to the read models, a batch at a time: the fold of the events into the
//! view rows. The `board` crate's projector runs it on what it reads from Kafka, and its
//! rebuild on the event store's history.
//!
//! Idempotent and convergent: each row remembers the sequence of the last event of its own
//! aggregate applied to it (`version`). An event at `version + 1` is applied; an older one
//! is a duplicate and changes nothing; a newer one means events are missing (a producer
//! dropped them, or the broker no longer has them), and the batch stops with a [`Gap`]
//! so the caller can fetch them from the event store: nothing is ever skipped. The
//! rows a batch touches are locked while it is decided, so two projectors briefly sharing
//! a partition during a rebalance (or a rebuild handing over to the live projector) cannot
//! both apply one event. Counters (a category's posts, a post's comments) change only
//! together with the state change of the post or comment they count, in the same
//! transaction, so a redelivered event never counts twice; and a counted row may exist
//! before its own creating event arrives, so the order in which different aggregates'
//! events arrive does not matter.
//!
//! An event that cannot be applied (its payload does not decode into its aggregate's
//! events: written by a newer writer than this reader knows, or damaged in the store) goes
//! to the quarantine, `quarantined_events`, with the reason, and its row's version stays
//! where it was. Every later event of that aggregate then waits in the quarantine behind
//! it, in order, even across a gap, and a redelivered one is a duplicate; every other
//! aggregate goes on. Quarantine by aggregate, because neither smaller nor larger works:
//! skipping only the bad event would apply its aggregate's later events to a row that
//! lacks it (and the next of them looked like a gap, which the store filled with the same
//! bad event, for ever); stopping the partition would stall every other aggregate on it.
//! Once the cause is fixed (the data, or an upcaster), [`retry_quarantined`] applies the
//! aggregate's events again. Aggregate types the read models do not follow are skipped.
//!
//! A batch costs a few statements per table, not per event: the rows are loaded with one
//! `SELECT … FOR UPDATE`, changed in memory, and written back with multi-row upserts. The
//! live projector and rebuilds share this code, so they cannot disagree: a rebuild only
//! keeps the rows in memory across batches ([`Bulk`]), since no one else writes its tables.
//!
//! Only [`apply_batch`] does I/O, around a pure core: it decodes the events (`decode`),
//! locks and loads the rows they can touch and their aggregates' quarantine (`plan` says
//! which, `rows` loads them), folds the events into those rows in memory (`fold`, one
//! event at a time by `step`), and writes back the rows that changed. [`share_lock`],
//! [`record_progress`] and [`is_retryable`] serve the caller's transaction around a batch.

mod bulk;
mod decode;
mod plan;
mod rows;
mod step;
#[cfg(test)]
mod tests;
mod transaction;

use std::collections::BTreeSet;

use aggregates::AggregateKind;
use sqlx::MySqlConnection;

use crate::Envelope;
use decode::{Decoded, Event};
use rows::{Aggregate, Rows};
use step::Fate;

pub use bulk::Bulk;
pub use transaction::{is_retryable, record_progress, share_lock};

/// The projector's name in `projection_progress`.
pub const READ_MODELS: &str = "read-models";

/// What a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub applied: usize,
    /// Already applied (redelivered or re-published), or already in quarantine.
    pub duplicates: usize,
    /// Aggregate types these read models do not follow.
    pub skipped: usize,
    /// Put in quarantine: events that cannot be applied, and later events of their
    /// aggregates, waiting behind them.
    pub quarantined: usize,
}

/// Events of one aggregate that must be applied before `events[index]`: sequences
/// `from..=to` of `aggregate_type` `aggregate_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    pub index: usize,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub from: i64,
    pub to: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("events {} to {} of {} {} are missing before this batch", .0.from, .0.to, .0.aggregate_type, .0.aggregate_id)]
    Gap(Gap),
    /// A [`Bulk`] whose earlier batch failed part-way: its rows cannot be trusted.
    #[error("an earlier batch of this replay failed part-way; it cannot go on")]
    Broken,
}

/// Applies `events`, in order, inside the caller's transaction. On a [`Gap`] nothing has
/// been written; roll back, put the missing events in front, and apply again.
pub async fn apply_batch(
    conn: &mut MySqlConnection,
    events: &[Envelope],
) -> Result<Applied, BatchError> {
    run(conn, events, None).await
}

/// Applies again the quarantined events of `kind` `aggregate_id`, inside the caller's
/// transaction: `events` are that aggregate's events as the event store has them now (all
/// of them; those applied before are duplicates). Its quarantined events up to the last of
/// `events` are taken out of quarantine and folded with the rest: what applies now is
/// applied, what still cannot goes back in with its reason, and what waits behind it
/// waits again.
pub async fn retry_quarantined(
    conn: &mut MySqlConnection,
    kind: AggregateKind,
    aggregate_id: &str,
    events: &[Envelope],
) -> Result<Applied, BatchError> {
    run(conn, events, Some((kind, aggregate_id.to_string()))).await
}

async fn run(
    conn: &mut MySqlConnection,
    events: &[Envelope],
    retried: Option<Aggregate>,
) -> Result<Applied, BatchError> {
    let events = decode::batch(events);
    let mut rows = Rows::default();
    let mut aggregates = plan::aggregates(&events);
    aggregates.extend(retried.clone());
    load(conn, &mut rows, &events, &aggregates, Access::Shared).await?;
    if let Some(aggregate) = &retried {
        release(&mut rows, aggregate, &events);
    }
    let applied = fold(&mut rows, events).map_err(BatchError::Gap)?;
    rows.write(conn).await?;
    Ok(applied)
}

/// How a batch reaches the rows it can touch.
#[derive(Clone, Copy)]
enum Access<'a> {
    /// Tables other appliers write too (the live projector's): each row is locked, a
    /// placeholder inserted first if need be, and the quarantine of `aggregates` after
    /// them.
    Shared,
    /// Tables no one else writes ([`Bulk`]): nothing is locked, and a row not in memory
    /// is taken from the rows being written back (`writing`), or read if the tables may
    /// hold it (`written`).
    Private {
        writing: Option<&'a Rows>,
        written: &'a bulk::Written,
    },
}

/// Brings into `rows` every row the fold of `events` can touch (see `plan`), and the
/// quarantine of `aggregates`.
async fn load(
    conn: &mut MySqlConnection,
    rows: &mut Rows,
    events: &[Event<'_>],
    aggregates: &BTreeSet<Aggregate>,
    access: Access<'_>,
) -> Result<(), sqlx::Error> {
    let mut before = BTreeSet::new();
    for view in plan::LOAD_ORDER {
        let ids = plan::ids_to_load(view, events, rows, &before);
        match access {
            Access::Shared => rows.load(conn, view, &ids).await?,
            Access::Private { writing, written } => {
                let stored = |id: &str| written.may_hold_row(view, id);
                rows.load_unlocked(conn, view, &ids, writing, stored)
                    .await?
            }
        }
        before = ids;
    }
    match access {
        Access::Shared => rows.quarantine.load(conn, aggregates).await,
        Access::Private { writing, written } => {
            let writing = writing.map(|rows| &rows.quarantine);
            let stored = |aggregate: &Aggregate| written.may_hold_quarantine(aggregate);
            let quarantine = &mut rows.quarantine;
            quarantine
                .load_unlocked(conn, aggregates, writing, stored)
                .await
        }
    }
}

/// Takes `aggregate`'s quarantined events out of quarantine, up to the last of `events`
/// (what the caller brings to apply in their place).
fn release(rows: &mut Rows, aggregate: &Aggregate, events: &[Event<'_>]) {
    let through = events
        .iter()
        .filter(|e| e.decoded.kind() == Some(aggregate.0) && e.envelope.aggregate_id == aggregate.1)
        .map(|e| e.envelope.sequence)
        .max()
        .unwrap_or(0);
    rows.quarantine.release(aggregate, through);
}

/// Folds `events` into `rows`, in order, with no I/O: every state change of a batch
/// happens here. `rows` must hold every row the events can touch, and their aggregates'
/// quarantine (see `plan`).
///
/// Stops at the first event whose row lacks earlier events; the rows are then partly
/// folded and must not be written.
fn fold(rows: &mut Rows, events: Vec<Event<'_>>) -> Result<Applied, Gap> {
    let mut outcome = Applied::default();
    for (index, Event { envelope, decoded }) in events.into_iter().enumerate() {
        let (kind, payload) = match decoded {
            Decoded::Event(payload) => (payload.kind(), Ok(payload)),
            Decoded::Malformed { kind, reason } => (kind, Err(reason)),
            Decoded::Unfollowed => {
                outcome.skipped += 1;
                continue;
            }
        };
        let aggregate = (kind, envelope.aggregate_id.clone());
        let version = *step::version(rows, envelope, kind);
        match step::fate(version, envelope.sequence, &rows.quarantine, &aggregate) {
            Fate::Next => match payload {
                Ok(payload) => {
                    // The version moves together with the state change, so that a
                    // redelivery of this event is a duplicate.
                    *step::version(rows, envelope, kind) = envelope.sequence;
                    step::apply(rows, envelope, payload);
                    outcome.applied += 1;
                }
                // The version stays: the event is not applied, and what comes after it
                // of its aggregate waits behind it.
                Err(reason) => {
                    rows.quarantine.add(kind, envelope, reason);
                    outcome.quarantined += 1;
                }
            },
            Fate::Duplicate => outcome.duplicates += 1,
            Fate::WaitsBehind { first } => {
                let reason = format!("waits behind sequence {first}, in quarantine");
                rows.quarantine.add(kind, envelope, reason);
                outcome.quarantined += 1;
            }
            Fate::Missing { from } => {
                return Err(Gap {
                    index,
                    aggregate_type: envelope.aggregate_type.clone(),
                    aggregate_id: envelope.aggregate_id.clone(),
                    from,
                    to: envelope.sequence - 1,
                });
            }
        }
    }
    Ok(outcome)
}
