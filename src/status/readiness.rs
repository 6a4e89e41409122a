//! Readiness: whether PostgreSQL, MySQL and the broker each answer, and whether the read
//! models keep up. `/health/ready` serves it (`http::health`).

use std::time::Duration;

use sqlx::{MySqlPool, PgPool};

use super::PartitionState;
use crate::kafka::BrokerProbe;

/// How long each database may take to answer `SELECT 1`, and MySQL the partitions' state.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the broker may take to say where the events topic ends before it counts as
/// down. A healthy local broker answers in milliseconds; this is far above that, and
/// under a load balancer's usual probe limit.
const BROKER_TIMEOUT: Duration = Duration::from_secs(3);
/// Answers slower than this are reported as `slow`.
const BROKER_SLOW: Duration = Duration::from_millis(500);

/// The longest a round of checks takes: the broker's limit, then the partitions' check.
pub const LONGEST_ROUND: Duration = BROKER_TIMEOUT.saturating_add(CHECK_TIMEOUT);

/// One line of readiness. Only `down` takes the server out of rotation: a slow broker or
/// a stalled projector does not keep this server from answering, and every replica would
/// see the same, so they are reported (status `degraded`) but the answer stays 200.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Up,
    /// Answered, but slower than `BROKER_SLOW` (500 ms).
    Slow,
    Down,
    /// A partition of the read models is behind and nobody keeps up with it.
    Stalled,
    /// Could not be judged (what it rests on is down).
    Unknown,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Up => "up",
            Self::Slow => "slow",
            Self::Down => "down",
            Self::Stalled => "stalled",
            Self::Unknown => "unknown",
        }
    }
}

/// Each dependency's check, by name.
#[derive(Debug, Clone)]
pub struct Readiness {
    pub checks: [(&'static str, Check); 4],
}

impl Readiness {
    pub fn any_down(&self) -> bool {
        self.checks.iter().any(|(_, check)| *check == Check::Down)
    }

    pub fn all_up(&self) -> bool {
        self.checks.iter().all(|(_, check)| *check == Check::Up)
    }
}

/// Asks each dependency now; takes at most [`LONGEST_ROUND`].
pub async fn check(pg: &PgPool, mysql: &MySqlPool, broker: &BrokerProbe, group: &str) -> Readiness {
    let postgres = async { sqlx::query("SELECT 1").execute(pg).await.map(|_| ()) };
    let mysql_answers = async { sqlx::query("SELECT 1").execute(mysql).await.map(|_| ()) };
    let (postgres, mysql_answers, broker_answer) = tokio::join!(
        tokio::time::timeout(CHECK_TIMEOUT, postgres),
        tokio::time::timeout(CHECK_TIMEOUT, mysql_answers),
        broker.topic_ends(BROKER_TIMEOUT),
    );
    let answered = |result: &Result<Result<(), sqlx::Error>, _>| {
        if matches!(result, Ok(Ok(()))) {
            Check::Up
        } else {
            Check::Down
        }
    };
    let (mysql_check, broker_check) = (
        answered(&mysql_answers),
        match &broker_answer {
            Ok(answer) if answer.took <= BROKER_SLOW => Check::Up,
            Ok(_) => Check::Slow,
            Err(_) => Check::Down,
        },
    );
    let read_models = match (&broker_answer, mysql_check) {
        (Ok(answer), Check::Up) => {
            let partitions =
                super::partitions(mysql, Some(answer.ends.clone()), broker.topic(), group);
            match tokio::time::timeout(CHECK_TIMEOUT, partitions).await {
                Ok(Ok(list)) if list.iter().any(|p| p.state == PartitionState::Stalled) => {
                    Check::Stalled
                }
                Ok(Ok(_)) => Check::Up,
                _ => Check::Unknown,
            }
        }
        _ => Check::Unknown,
    };
    Readiness {
        checks: [
            ("postgres", answered(&postgres)),
            ("mysql", mysql_check),
            ("broker", broker_check),
            ("readModels", read_models),
        ],
    }
}
