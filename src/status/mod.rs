//! Where the relay and the projectors are, against the head of the event store, whether
//! each partition's messages reach the read models, and how many events wait in the read
//! models' quarantine; and whether each dependency answers ([`readiness`]).

pub mod readiness;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{MySqlPool, PgPool};

use crate::kafka::BrokerProbe;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    pub head: Head,
    pub relays: Vec<RelayStatus>,
    /// The relay processes connected now, the active one first: only when asked for
    /// ([`processes`]), as `board projections status` does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_processes: Option<Vec<RelayProcess>>,
    pub projectors: Vec<PartitionStatus>,
    /// The projector processes of the group counted in the split now (`host:pid:nonce`),
    /// whether or not a partition is theirs yet: only when asked for ([`processes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub projector_members: Option<Vec<String>>,
    /// Events the read models could not apply, and those waiting behind them (see
    /// `projections::fold`).
    pub quarantined_events: i64,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Head {
    /// Events in the store, counted exactly: only when asked for ([`count_events`]), as
    /// `board projections status` does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<i64>,
    /// The newest event's position. Positions are never reused, but a command that rolls
    /// back leaves its positions unused, so this is not a count.
    pub global_position: Option<i64>,
    pub recorded_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RelayStatus {
    pub name: String,
    pub global_position: i64,
    pub lag_events: i64,
    /// How long the next event to publish has waited (the first after the checkpoint in
    /// the relay's order, which is the oldest but for a few milliseconds of concurrent
    /// commits); 0 when caught up.
    pub lag_seconds: f64,
    pub updated_at: DateTime<Utc>,
}

/// A relay process in the election (`relay::leader`), as PostgreSQL sees its session: the
/// active one holds the lock, the others wait to take over.
#[derive(Debug, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct RelayProcess {
    /// `host:pid:nonce` (`supervise::process_name`).
    pub process: String,
    pub active: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PartitionStatus {
    pub projector: String,
    pub topic: String,
    pub partition: i32,
    pub next_offset: i64,
    /// The partition's end on the broker; `None` when the broker cannot be asked.
    pub end_offset: Option<i64>,
    pub lag_events: Option<i64>,
    /// Age of the last applied event while behind; 0 when caught up.
    pub lag_seconds: Option<f64>,
    pub last_position: Option<i64>,
    pub updated_by: Option<String>,
    /// The member holding the partition's lease, while the lease runs.
    pub holder: Option<String>,
    /// Seconds since the holder last showed it keeps up (took the lease, applied a batch,
    /// or had read everything); `None` when nobody ever held it.
    pub active_seconds: Option<f64>,
    pub state: PartitionState,
}

/// Whether a partition's messages reach the read models.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionState {
    /// Everything the broker has is applied.
    CaughtUp,
    /// Behind, and its holder keeps up: applying, or it took the partition just now.
    CatchingUp,
    /// Behind, while for [`STALLED_AFTER`] nobody held it, or its holder neither applied
    /// a batch nor read to its end: the read models do not move by themselves.
    Stalled,
    /// The broker could not be asked how far the partition goes.
    Unknown,
}

impl PartitionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CaughtUp => "caught-up",
            Self::CatchingUp => "catching-up",
            Self::Stalled => "stalled",
            Self::Unknown => "unknown",
        }
    }
}

/// How long a partition may stay behind without a sign of its holder before it counts
/// as stalled. Longer than a lease's takeover (`projector::leases::LEASE_TTL` plus one
/// renewal), so that a projector restart is not reported.
pub const STALLED_AFTER: Duration = Duration::from_secs(30);

/// How long the broker may take to tell the partitions' ends. Well under a `/metrics`
/// scrape's own limit, so that while the broker is down the scrape still reports what
/// the stores know (the relay's lag above all).
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn collect(
    pg: &PgPool,
    mysql: &MySqlPool,
    broker: &BrokerProbe,
    group: &str,
) -> anyhow::Result<Status> {
    let now = Utc::now();
    // Each maximum is read off its index. No `count(*)` of the store here: it reads the
    // whole table, and this runs at every `/metrics` scrape. A relay's lag is counted, so
    // it costs in proportion to the lag; its age is the first event in the relay's order
    // (one step down the index), not the minimum over the lag.
    let (global_position, recorded_at): (Option<i64>, Option<DateTime<Utc>>) =
        sqlx::query_as("SELECT max(global_position), max(recorded_at) FROM events")
            .fetch_one(pg)
            .await?;
    let relays = sqlx::query_as::<_, (String, i64, i64, Option<DateTime<Utc>>, DateTime<Utc>)>(
        "SELECT c.relay, c.global_position,
                (SELECT count(*) FROM events e
                  WHERE (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)),
                (SELECT e.recorded_at FROM events e
                  WHERE (e.transaction_id, e.global_position) > (c.transaction_id, c.global_position)
                  ORDER BY e.transaction_id, e.global_position LIMIT 1),
                c.updated_at
           FROM relay_checkpoints c ORDER BY c.relay",
    )
    .fetch_all(pg)
    .await?
    .into_iter()
    .map(|(name, position, lag_events, oldest, updated_at)| RelayStatus {
        name,
        global_position: position,
        lag_events,
        lag_seconds: oldest.map_or(0.0, |t| seconds_between(t, now)),
        updated_at,
    })
    .collect();

    let ends = broker.topic_ends(BROKER_TIMEOUT).await.ok().map(|e| e.ends);
    let projectors = partitions(mysql, ends, broker.topic(), group).await?;
    let quarantined_events = projections::quarantine::count(mysql).await?;
    Ok(Status {
        head: Head {
            events: None,
            global_position,
            recorded_at,
        },
        relays,
        relay_processes: None,
        projectors,
        projector_members: None,
        quarantined_events,
    })
}

/// The processes in the pipeline now, as the stores see them: the relays in their
/// election (and which holds the lock), the projectors counted in `group`'s split of
/// `topic`. For a person or a deploy asking now and then (`board projections status`,
/// `scripts/cluster.sh roll`), not for every scrape.
pub async fn processes(
    pg: &PgPool,
    mysql: &MySqlPool,
    topic: &str,
    group: &str,
) -> anyhow::Result<(Vec<RelayProcess>, Vec<String>)> {
    let projector_members = sqlx::query_scalar(
        "SELECT member FROM projector_members
          WHERE member_group = ? AND topic = ? AND expires_at > NOW(3) ORDER BY member",
    )
    .bind(group)
    .bind(topic)
    .fetch_all(mysql)
    .await?;
    Ok((relay_processes(pg).await?, projector_members))
}

/// The relays' election sessions on this database, and which holds the lock.
async fn relay_processes(pg: &PgPool) -> Result<Vec<RelayProcess>, sqlx::Error> {
    sqlx::query_as(
        "SELECT substr(a.application_name, length($1) + 1) AS process,
                EXISTS (SELECT 1 FROM pg_locks l
                         WHERE l.pid = a.pid AND l.locktype = 'advisory' AND l.granted) AS active
           FROM pg_stat_activity a
          WHERE a.datname = current_database() AND starts_with(a.application_name, $1)
          ORDER BY active DESC, process",
    )
    .bind(crate::relay::leader::APPLICATION_NAME)
    .fetch_all(pg)
    .await
}

/// The events in the store, counted exactly. This reads the whole events table (or its
/// smallest index), which grows for ever: for a person asking now and then, never for
/// what is asked all the time (a scrape, a probe).
pub async fn count_events(pg: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pg)
        .await
}

/// Each partition of `topic` against its end on the broker (`ends`, `None` when the
/// broker could not be asked): progress, lease and state.
pub async fn partitions(
    mysql: &MySqlPool,
    ends: Option<Vec<i64>>,
    topic: &str,
    group: &str,
) -> Result<Vec<PartitionStatus>, sqlx::Error> {
    let now = Utc::now();
    let (progress, leases) = tokio::join!(progress(mysql, topic), leases(mysql, group, topic));
    let (progress, leases) = (progress?, leases?);
    let ends: Vec<Option<i64>> = match ends {
        Some(ends) => ends.into_iter().map(Some).collect(),
        // The broker cannot be asked: report what MySQL knows.
        None => {
            let known = progress.iter().map(|r| r.partition + 1);
            let count = known.chain(leases.iter().map(|l| l.partition + 1)).max();
            vec![None; count.unwrap_or(0) as usize]
        }
    };
    Ok(ends
        .iter()
        .enumerate()
        .map(|(partition, end)| {
            let partition = partition as i32;
            let row = progress.iter().find(|r| r.partition == partition);
            let lease = leases.iter().find(|l| l.partition == partition);
            let next_offset = row.map_or(0, |r| r.next_offset);
            let lag_events = end.map(|end| (end - next_offset).max(0));
            let active_seconds = lease.and_then(|l| l.active_seconds);
            let state = match lag_events {
                None => PartitionState::Unknown,
                Some(0) => PartitionState::CaughtUp,
                Some(_) if active_seconds.is_some_and(|s| s < STALLED_AFTER.as_secs_f64()) => {
                    PartitionState::CatchingUp
                }
                Some(_) => PartitionState::Stalled,
            };
            PartitionStatus {
                projector: row.map_or_else(
                    || projections::fold::READ_MODELS.to_string(),
                    |r| r.projector.clone(),
                ),
                topic: topic.to_string(),
                partition,
                next_offset,
                end_offset: *end,
                lag_events,
                lag_seconds: lag_events.map(|lag| {
                    if lag == 0 {
                        0.0
                    } else {
                        row.map_or(0.0, |r| seconds_between(r.last_recorded_at, now))
                    }
                }),
                last_position: row.map(|r| r.last_position),
                updated_by: row.map(|r| r.updated_by.clone()),
                holder: lease.and_then(|l| l.holder.clone()),
                active_seconds,
                state,
            }
        })
        .collect())
}

#[derive(sqlx::FromRow)]
struct ProgressRow {
    projector: String,
    #[sqlx(rename = "partition_id")]
    partition: i32,
    next_offset: i64,
    last_position: i64,
    last_recorded_at: DateTime<Utc>,
    updated_by: String,
}

async fn progress(mysql: &MySqlPool, topic: &str) -> Result<Vec<ProgressRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT projector, partition_id, next_offset, last_position, last_recorded_at, updated_by
           FROM projection_progress WHERE topic = ? ORDER BY projector, partition_id",
    )
    .bind(topic)
    .fetch_all(mysql)
    .await
}

struct LeaseRow {
    partition: i32,
    /// Only while the lease runs.
    holder: Option<String>,
    active_seconds: Option<f64>,
}

/// The partition leases of `group`, aged on the read database's own clock.
async fn leases(mysql: &MySqlPool, group: &str, topic: &str) -> Result<Vec<LeaseRow>, sqlx::Error> {
    let rows: Vec<(i32, Option<String>, Option<i64>)> = sqlx::query_as(
        "SELECT partition_id,
                IF(expires_at > NOW(3), holder, NULL),
                CAST(TIMESTAMPDIFF(MICROSECOND, active_at, NOW(3)) AS SIGNED)
           FROM partition_leases WHERE member_group = ? AND topic = ?",
    )
    .bind(group)
    .bind(topic)
    .fetch_all(mysql)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(partition, holder, active)| LeaseRow {
            partition,
            holder,
            active_seconds: active.map(|us| us.max(0) as f64 / 1e6),
        })
        .collect())
}

fn seconds_between(earlier: DateTime<Utc>, later: DateTime<Utc>) -> f64 {
    (later - earlier).num_milliseconds().max(0) as f64 / 1000.0
}
