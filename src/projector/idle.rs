//! When the projector stops fetching, and when it starts again.
//!
//! A consumer fetches without end, even with nothing to fetch. On Apache Kafka an empty
//! fetch waits at the broker (`fetch.wait.max.ms`) and costs little; Tansu 0.6.0 sleeps
//! after every fetch whatever it found, so the wait must stay short for latency, and a
//! short wait on six partitions is a hundred store queries a second at rest. So a
//! projector with nothing to do pauses its partitions, and resumes them when the relay
//! says it has published (a PostgreSQL notification, `board_relayed`).
//!
//! "Nothing to do" is known, never guessed from a quiet moment. The relay's notification
//! says where each partition it published to ends ([`Published`]): once a batch brings
//! the projector to those ends in every partition it holds, it pauses at once, and the
//! next notification whose ends are ahead of it resumes it. (Fetching on between two
//! commands cost the broker two thirds of a core at 5 to 100 commands a second: each
//! empty fetch is a round of store queries.) A notification still on its way when the
//! projector paused resumes it when it arrives, so only a lost one delays anything.
//!
//! Without such ends (none came yet, or the listener reconnected and may have missed
//! some), the projector asks the broker: once no message came for [`IDLE_AFTER`], it
//! compares its positions with the partitions' ends, and pauses only if it has read
//! everything. (A consumer just resumed can take longer than that to bring its first
//! message; pausing it on quiet alone paused it again before it ever fetched.) While
//! paused it compares again every [`END_CHECK`]: behind (a notification was lost, or
//! something other than the relay wrote) it resumes; caught up, it has shown that it
//! keeps up.
//!
//! This type decides; the caller pauses, resumes and asks the broker.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use tokio::time::Instant;

use crate::relay::Published;

/// Quiet for this long (no message, no wake-up), the projector asks whether it has read
/// everything.
pub const IDLE_AFTER: Duration = Duration::from_millis(100);
/// Fetching but behind with nothing arriving, how often it asks again.
pub const BEHIND_CHECK: Duration = Duration::from_secs(1);
/// While paused, how often the positions are compared with the partitions' ends.
pub const END_CHECK: Duration = Duration::from_secs(2);
/// How often the caller should call [`Idle::tick`].
pub const TICK: Duration = Duration::from_millis(50);

/// What the caller should do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Action {
    Pause,
    Resume,
    /// Compare the positions with the partitions' ends, and report with
    /// [`Idle::on_end_check`].
    CheckEnds,
}

pub struct Idle {
    paused: bool,
    last_message: Instant,
    last_wake: Instant,
    last_end_check: Instant,
    /// What the last end check found, if nothing arrived since.
    behind: Option<bool>,
    /// Partitions that brought messages since the last [`Idle::keeping_up`].
    moved: BTreeSet<i32>,
    /// Partitions the last end check found read to their end.
    at_end: BTreeSet<i32>,
    /// Where each partition was last known to end, from the relay's notifications and
    /// the end checks: never past its true end, since ends only grow.
    known_ends: BTreeMap<i32, i64>,
}

impl Idle {
    /// Starts fetching: a new assignment is read at once.
    pub fn new(now: Instant) -> Self {
        Self {
            paused: false,
            last_message: now,
            last_wake: now,
            last_end_check: now,
            behind: None,
            moved: BTreeSet::new(),
            at_end: BTreeSet::new(),
            known_ends: BTreeMap::new(),
        }
    }

    pub fn on_message(&mut self, partition: i32, now: Instant) {
        self.last_message = now;
        self.behind = None;
        self.moved.insert(partition);
        self.at_end.remove(&partition);
    }

    /// Something may have been published, nobody says where it ends (a listener that
    /// reconnected may have missed notifications): what was known of the ends may be
    /// behind, so it is forgotten. Returns `Resume` when paused.
    pub fn on_wake(&mut self, now: Instant) -> Option<Action> {
        self.last_wake = now;
        self.known_ends.clear();
        self.resume()
    }

    /// The relay published up to `published.ends`; `positions` are the held partitions'
    /// next offsets. Returns `Resume` when paused and one of them is behind; a
    /// notification without ends (an older relay) wakes as [`Idle::on_wake`] does.
    pub fn on_published(
        &mut self,
        now: Instant,
        published: &Published,
        positions: &BTreeMap<i32, i64>,
    ) -> Option<Action> {
        if published.ends.is_empty() {
            return self.on_wake(now);
        }
        self.last_wake = now;
        self.learn_ends(&published.ends);
        let behind = published
            .ends
            .iter()
            .any(|(partition, end)| positions.get(partition).is_some_and(|next| next < end));
        if behind {
            self.resume()
        } else {
            None
        }
    }

    /// A batch was applied, bringing the held partitions to `positions`: when each of
    /// them is known to end there, there is nothing more to fetch. Returns `Pause` then.
    pub fn after_batch(&mut self, positions: &BTreeMap<i32, i64>) -> Option<Action> {
        let read_to_the_end = !positions.is_empty()
            && positions.iter().all(|(partition, next)| {
                self.known_ends
                    .get(partition)
                    .is_some_and(|end| next >= end)
            });
        if self.paused || !read_to_the_end {
            return None;
        }
        self.paused = true;
        Some(Action::Pause)
    }

    /// Called every [`TICK`].
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        let since_check = now - self.last_end_check;
        if self.paused {
            return (since_check >= END_CHECK).then_some(Action::CheckEnds);
        }
        // Nothing arrived for a while, and no wake-up so recent that its messages may
        // still be on their way: ask whether everything is read. Behind, ask again only
        // now and then.
        let quiet = |at: Instant| now - at >= IDLE_AFTER;
        let due = match self.behind {
            None => since_check >= IDLE_AFTER,
            Some(true) => since_check >= BEHIND_CHECK,
            Some(false) => false,
        };
        (quiet(self.last_message) && quiet(self.last_wake) && due).then_some(Action::CheckEnds)
    }

    /// What an end check found: where each held partition ends, beside `positions`, their
    /// next offsets; `None` when the broker could not be asked, which counts as behind
    /// (fetching on is always safe, pausing is not). Paused and behind, it resumes;
    /// fetching and nothing behind, it pauses.
    pub fn on_end_check(
        &mut self,
        now: Instant,
        ends: Option<&BTreeMap<i32, i64>>,
        positions: &BTreeMap<i32, i64>,
    ) -> Option<Action> {
        self.last_end_check = now;
        let (at_end, behind) = match ends {
            None => (BTreeSet::new(), true),
            Some(ends) => {
                self.learn_ends(ends);
                let end = |partition: &i32| ends.get(partition).copied();
                let at_end = positions
                    .iter()
                    .filter(|&(partition, &next)| end(partition).is_some_and(|end| next >= end))
                    .map(|(&partition, _)| partition)
                    .collect();
                let behind = positions
                    .iter()
                    .any(|(partition, &next)| end(partition).is_some_and(|end| next < end));
                (at_end, behind)
            }
        };
        self.at_end = at_end;
        self.behind = Some(behind);
        match (self.paused, behind) {
            (true, true) => self.resume(),
            (false, false) if now - self.last_wake >= IDLE_AFTER => {
                self.paused = true;
                Some(Action::Pause)
            }
            _ => None,
        }
    }

    /// The partitions that showed, since the last call, that this member keeps up with
    /// them: they brought messages, or the last end check found them read to the end.
    pub fn keeping_up(&mut self) -> BTreeSet<i32> {
        let moved = std::mem::take(&mut self.moved);
        moved.union(&self.at_end).copied().collect()
    }

    fn learn_ends(&mut self, ends: &BTreeMap<i32, i64>) {
        for (&partition, &end) in ends {
            let known = self.known_ends.entry(partition).or_insert(end);
            *known = (*known).max(end);
        }
    }

    fn resume(&mut self) -> Option<Action> {
        self.behind = None;
        if !self.paused {
            return None;
        }
        self.paused = false;
        Some(Action::Resume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[i32]) -> BTreeSet<i32> {
        list.iter().copied().collect()
    }

    fn published(ends: &[(i32, i64)]) -> Published {
        Published {
            topic: "events".into(),
            ends: ends.iter().copied().collect(),
        }
    }

    fn positions(list: &[(i32, i64)]) -> BTreeMap<i32, i64> {
        list.iter().copied().collect()
    }

    /// Runs ticks until one asks for something.
    fn next_action(idle: &mut Idle, mut now: Instant) -> (Instant, Action) {
        loop {
            now += TICK;
            if let Some(action) = idle.tick(now) {
                return (now, action);
            }
        }
    }

    #[test]
    fn pauses_only_once_the_broker_says_everything_is_read() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        let (at, action) = next_action(&mut idle, start);
        assert_eq!(action, Action::CheckEnds);
        assert!(at - start >= IDLE_AFTER);
        let held = positions(&[(0, 3), (1, 2)]);
        assert_eq!(
            idle.on_end_check(at, Some(&positions(&[(0, 5), (1, 2)])), &held),
            None,
            "behind: fetch on"
        );
        let (again, action) = next_action(&mut idle, at);
        assert_eq!(action, Action::CheckEnds);
        assert!(
            again - at >= BEHIND_CHECK,
            "behind, it asks only now and then"
        );
        assert_eq!(
            idle.on_end_check(again, None, &held),
            None,
            "a broker that cannot be asked counts as behind"
        );
        let (last, _) = next_action(&mut idle, again);
        assert_eq!(
            idle.on_end_check(last, Some(&held), &held),
            Some(Action::Pause)
        );
        assert_eq!(idle.keeping_up(), set(&[0, 1]), "both read to the end");
    }

    #[test]
    fn a_wake_up_resumes_and_a_message_keeps_it_fetching() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        let (at, _) = next_action(&mut idle, start);
        assert_eq!(
            idle.on_end_check(at, Some(&positions(&[(0, 3)])), &positions(&[(0, 3)])),
            Some(Action::Pause)
        );
        assert_eq!(idle.on_wake(at + TICK), Some(Action::Resume));
        assert_eq!(idle.on_wake(at + TICK), None, "already fetching");
        idle.on_message(0, at + IDLE_AFTER);
        assert_eq!(idle.tick(at + IDLE_AFTER + TICK), None);
    }

    #[test]
    fn while_paused_it_checks_the_ends_and_resumes_when_behind() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        let (at, _) = next_action(&mut idle, start);
        let held = positions(&[(0, 3)]);
        assert_eq!(
            idle.on_end_check(at, Some(&held), &held),
            Some(Action::Pause)
        );
        assert_eq!(idle.tick(at + END_CHECK - TICK), None);
        assert_eq!(idle.tick(at + END_CHECK), Some(Action::CheckEnds));
        assert_eq!(idle.on_end_check(at + END_CHECK, Some(&held), &held), None);
        assert_eq!(
            idle.on_end_check(at + END_CHECK * 2, Some(&positions(&[(0, 4)])), &held),
            Some(Action::Resume)
        );
    }

    #[test]
    fn partitions_keep_up_by_moving_or_by_being_read_to_the_end() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        idle.on_message(2, start);
        let held = positions(&[(0, 3), (2, 1)]);
        idle.on_end_check(start, Some(&positions(&[(0, 3), (2, 7)])), &held);
        assert_eq!(idle.keeping_up(), set(&[0, 2]));
        assert_eq!(idle.keeping_up(), set(&[0]), "messages count once");
        idle.on_message(0, start);
        idle.keeping_up();
        assert_eq!(
            idle.keeping_up(),
            set(&[]),
            "a message ends 'read to the end'"
        );
    }

    #[test]
    fn a_batch_that_reaches_the_published_ends_pauses_and_the_next_publication_resumes() {
        let now = Instant::now();
        let mut idle = Idle::new(now);
        let held = positions(&[(0, 10), (1, 4)]);
        assert_eq!(
            idle.on_published(now, &published(&[(0, 12), (1, 4)]), &held),
            None,
            "fetching already"
        );
        assert_eq!(idle.after_batch(&held), None, "partition 0 is behind");
        let read = positions(&[(0, 12), (1, 4)]);
        assert_eq!(idle.after_batch(&read), Some(Action::Pause));
        assert_eq!(idle.after_batch(&read), None, "paused already");
        assert_eq!(
            idle.on_published(now, &published(&[(1, 4)]), &read),
            None,
            "nothing new for this member"
        );
        assert_eq!(
            idle.on_published(now, &published(&[(1, 5)]), &read),
            Some(Action::Resume)
        );
    }

    #[test]
    fn a_publication_seen_before_the_batch_ends_keeps_it_fetching() {
        // The notification came while the batch before it was applied.
        let now = Instant::now();
        let mut idle = Idle::new(now);
        let held = positions(&[(0, 3)]);
        idle.on_published(now, &published(&[(0, 3)]), &held);
        idle.on_published(now, &published(&[(0, 5)]), &held);
        assert_eq!(idle.after_batch(&held), None);
        assert_eq!(idle.after_batch(&positions(&[(0, 5)])), Some(Action::Pause));
    }

    #[test]
    fn without_known_ends_for_every_held_partition_it_asks_the_broker() {
        let now = Instant::now();
        let mut idle = Idle::new(now);
        let held = positions(&[(0, 3), (1, 0)]);
        idle.on_published(now, &published(&[(0, 3)]), &held);
        assert_eq!(
            idle.after_batch(&held),
            None,
            "partition 1's end is unknown"
        );
        idle.on_end_check(now, Some(&positions(&[(1, 0)])), &held);
        assert_eq!(idle.after_batch(&held), Some(Action::Pause));
    }

    #[test]
    fn a_wake_without_ends_forgets_them() {
        // A listener that reconnected may have missed notifications: the ends known
        // may be behind.
        let now = Instant::now();
        let mut idle = Idle::new(now);
        let held = positions(&[(0, 3)]);
        idle.on_published(now, &published(&[(0, 3)]), &held);
        assert_eq!(idle.after_batch(&held), Some(Action::Pause));
        assert_eq!(idle.on_wake(now), Some(Action::Resume));
        assert_eq!(
            idle.after_batch(&held),
            None,
            "the ends known are forgotten"
        );
        idle.on_published(now, &published(&[(0, 3)]), &held);
        assert_eq!(idle.after_batch(&held), Some(Action::Pause));
        let older_relay = published(&[]);
        assert_eq!(
            idle.on_published(now, &older_relay, &held),
            Some(Action::Resume)
        );
        assert_eq!(idle.after_batch(&held), None);
    }
}
