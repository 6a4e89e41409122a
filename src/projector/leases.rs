//! Who projects which partition: membership and partition leases in the read database.
//!
//! Every projector process of a group renews a membership row every [`RENEW_EVERY`]. The
//! live members, sorted by name, split the partitions round-robin: partition `p` belongs
//! to member `p mod n`. Each member computes the same split from the same rows, releases
//! the leases it holds beyond its share, and takes the leases of its share once they are
//! free (released, or expired because their holder died). A member applies a partition
//! only while it holds its lease, and every batch re-reads its leases, locked, inside the
//! batch's own transaction ([`held_in`]): a taker's UPDATE of a lease waits for that
//! transaction, and a batch that starts after the takeover sees the lease gone. So two
//! members never apply one partition at once, whatever the timing.
//!
//! Why not the broker's consumer-group coordinator: the read model's liveness would then
//! rest on the broker's group state, and Tansu 0.6.0 can keep a dead member in a group
//! for good after a broker restart (see docs/ARCHITECTURE.md). Progress already lives in
//! this database, in the same transaction as the rows; ownership now lives beside it, on
//! the same clock, and comes back with it.

use std::collections::BTreeSet;
use std::time::Duration;

use sqlx::{MySqlConnection, MySqlPool};

/// How often a member renews its membership and its leases.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long a membership or a lease lasts unrenewed. A killed member's partitions are
/// taken over at most this long (plus one renewal) after its last renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(6);

/// One member's view of its group on one topic.
pub struct Leases {
    pool: MySqlPool,
    group: String,
    topic: String,
    member: String,
}

impl Leases {
    pub fn new(pool: MySqlPool, group: &str, topic: &str, member: &str) -> Self {
        Self {
            pool,
            group: group.to_string(),
            topic: topic.to_string(),
            member: member.to_string(),
        }
    }

    /// Renews this member, adjusts its leases to its share of `partitions`, marks the held
    /// partitions in `keeping_up` as active, and returns the partitions it now holds.
    pub async fn renew(
        &mut self,
        partitions: i32,
        keeping_up: &BTreeSet<i32>,
    ) -> Result<BTreeSet<i32>, sqlx::Error> {
        let ttl = LEASE_TTL.as_millis() as i64 * 1000;
        sqlx::query(
            "INSERT INTO projector_members (member_group, topic, member, expires_at)
             VALUES (?, ?, ?, NOW(3) + INTERVAL ? MICROSECOND)
             ON DUPLICATE KEY UPDATE expires_at = VALUES(expires_at)",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(&self.member)
        .bind(ttl)
        .execute(&self.pool)
        .await?;
        let members: Vec<String> = sqlx::query_scalar(
            "SELECT member FROM projector_members
              WHERE member_group = ? AND topic = ? AND expires_at > NOW(3)
              ORDER BY member",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .fetch_all(&self.pool)
        .await?;
        let share = share(&members, &self.member, partitions);

        // A row for every partition, free to take (one statement; rows that exist stay).
        let mut rows = sqlx::QueryBuilder::new(
            "INSERT IGNORE INTO partition_leases (member_group, topic, partition_id, holder, expires_at) ",
        );
        rows.push_values(0..partitions, |mut row, partition| {
            row.push_bind(&self.group)
                .push_bind(&self.topic)
                .push_bind(partition)
                .push("NULL")
                .push("NOW(3)");
        });
        rows.build().execute(&self.pool).await?;
        let held = self.held().await?;
        // Hand back what another member should have: it takes it at its next renewal.
        for partition in held.difference(&share) {
            sqlx::query(
                "UPDATE partition_leases SET holder = NULL, expires_at = NOW(3)
                  WHERE member_group = ? AND topic = ? AND partition_id = ? AND holder = ?",
            )
            .bind(&self.group)
            .bind(&self.topic)
            .bind(partition)
            .bind(&self.member)
            .execute(&self.pool)
            .await?;
        }
        // Renew ours, and take the free ones of our share. Taking one over from another
        // member counts as activity (the new holder starts on it now); taking back our own
        // expired lease does not. MySQL assigns left to right: active_at reads the old
        // holder.
        for partition in &share {
            sqlx::query(
                "UPDATE partition_leases
                    SET active_at = IF(? OR NOT (holder <=> ?), NOW(3), active_at),
                        holder = ?, expires_at = NOW(3) + INTERVAL ? MICROSECOND
                  WHERE member_group = ? AND topic = ? AND partition_id = ?
                    AND (holder = ? OR holder IS NULL OR expires_at <= NOW(3))",
            )
            .bind(keeping_up.contains(partition))
            .bind(&self.member)
            .bind(&self.member)
            .bind(ttl)
            .bind(&self.group)
            .bind(&self.topic)
            .bind(partition)
            .bind(&self.member)
            .execute(&self.pool)
            .await?;
        }
        // Members long gone leave no rows behind.
        sqlx::query(
            "DELETE FROM projector_members
              WHERE member_group = ? AND topic = ? AND expires_at < NOW(3) - INTERVAL 1 HOUR",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .execute(&self.pool)
        .await?;
        self.held().await
    }

    /// The partitions whose unexpired lease this member holds.
    async fn held(&self) -> Result<BTreeSet<i32>, sqlx::Error> {
        let rows: Vec<i32> = sqlx::query_scalar(
            "SELECT partition_id FROM partition_leases
              WHERE member_group = ? AND topic = ? AND holder = ? AND expires_at > NOW(3)",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(&self.member)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().collect())
    }

    /// Gives every lease back (a clean shutdown), so that another member need not wait for
    /// them to expire.
    pub async fn release_all(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE partition_leases SET holder = NULL, expires_at = NOW(3)
              WHERE member_group = ? AND topic = ? AND holder = ?",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(&self.member)
        .execute(&self.pool)
        .await?;
        sqlx::query(
            "DELETE FROM projector_members WHERE member_group = ? AND topic = ? AND member = ?",
        )
        .bind(&self.group)
        .bind(&self.topic)
        .bind(&self.member)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn member(&self) -> &str {
        &self.member
    }
}

/// Which of `partitions` `member` holds an unexpired lease on, read on `conn` with those
/// lease rows share-locked until the caller's transaction ends, so that nobody can take
/// them over while it writes. Only the named rows are locked, by their whole primary key:
/// members working on other partitions are never held up.
pub async fn held_in(
    conn: &mut MySqlConnection,
    group: &str,
    topic: &str,
    member: &str,
    partitions: &BTreeSet<i32>,
) -> Result<BTreeSet<i32>, sqlx::Error> {
    if partitions.is_empty() {
        return Ok(BTreeSet::new());
    }
    let mut query = sqlx::QueryBuilder::new("SELECT partition_id, CAST(holder <=> ");
    query
        .push_bind(member)
        .push(" AND expires_at > NOW(3) AS SIGNED) FROM partition_leases WHERE member_group = ")
        .push_bind(group)
        .push(" AND topic = ")
        .push_bind(topic)
        .push(" AND partition_id IN (");
    let mut list = query.separated(", ");
    for partition in partitions {
        list.push_bind(*partition);
    }
    query.push(") LOCK IN SHARE MODE");
    let rows: Vec<(i32, i64)> = query.build_query_as().fetch_all(&mut *conn).await?;
    Ok(rows
        .into_iter()
        .filter(|(_, ours)| *ours == 1)
        .map(|(partition, _)| partition)
        .collect())
}

/// The partitions `member` should hold when `members` (sorted) split `partitions`
/// round-robin. A member not (yet) among them gets none.
pub fn share(members: &[String], member: &str, partitions: i32) -> BTreeSet<i32> {
    let Some(index) = members.iter().position(|m| m == member) else {
        return BTreeSet::new();
    };
    let count = members.len() as i32;
    (0..partitions)
        .filter(|p| p % count == index as i32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::share;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn one_member_takes_every_partition() {
        assert_eq!(
            share(&names(&["a"]), "a", 6),
            (0..6).collect::<std::collections::BTreeSet<_>>()
        );
    }

    #[test]
    fn members_split_the_partitions_without_overlap_or_gap() {
        let members = names(&["a", "b", "c", "d"]);
        let mut seen = std::collections::BTreeSet::new();
        for member in &members {
            let mine = share(&members, member, 6);
            assert!(mine.len() == 1 || mine.len() == 2, "{member}: {mine:?}");
            for partition in mine {
                assert!(seen.insert(partition), "partition {partition} twice");
            }
        }
        assert_eq!(seen.len(), 6);
    }

    #[test]
    fn a_member_not_yet_counted_takes_nothing() {
        assert!(share(&names(&["a", "b"]), "c", 6).is_empty());
    }
}
