//! When the projector stops fetching, and when it starts again.
//!
//! A consumer fetches without end, even with nothing to fetch. On Apache Kafka an empty
//! fetch waits at the broker (`fetch.wait.max.ms`) and costs little; Tansu 0.6.0 sleeps
//! after every fetch whatever it found, so the wait must stay short for latency, and a
//! short wait on six partitions is a hundred store queries a second at rest. So a
//! projector with nothing to do pauses its partitions, and resumes them when the relay
//! says it has published (a PostgreSQL notification, `board_relayed`). While paused it
//! compares its positions with the partitions' ends every [`END_CHECK`]: behind (a
//! notification was lost) it resumes; caught up, it has shown that it keeps up.
//!
//! This type decides; the caller pauses, resumes and asks the broker.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

/// Quiet for this long (no message, no wake-up), the partitions are paused.
pub const IDLE_AFTER: Duration = Duration::from_millis(100);
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
    /// When the last pause or resume happened.
    since: Instant,
    last_message: Instant,
    last_wake: Instant,
    last_end_check: Instant,
    /// Partitions that brought messages since the last [`Idle::keeping_up`].
    moved: BTreeSet<i32>,
    /// Partitions the last end check found read to their end.
    at_end: BTreeSet<i32>,
}

impl Idle {
    /// Starts fetching: a new assignment is read at once.
    pub fn new(now: Instant) -> Self {
        Self {
            paused: false,
            since: now,
            last_message: now,
            last_wake: now,
            last_end_check: now,
            moved: BTreeSet::new(),
            at_end: BTreeSet::new(),
        }
    }

    pub fn on_message(&mut self, partition: i32, now: Instant) {
        self.last_message = now;
        self.moved.insert(partition);
        self.at_end.remove(&partition);
    }

    /// Something was published; returns `Resume` when paused.
    pub fn on_wake(&mut self, now: Instant) -> Option<Action> {
        self.last_wake = now;
        self.resume(now)
    }

    /// Called every [`TICK`].
    pub fn tick(&mut self, now: Instant) -> Option<Action> {
        let quiet = |at: Instant| now - at >= IDLE_AFTER;
        if self.paused {
            return (now - self.last_end_check >= END_CHECK).then_some(Action::CheckEnds);
        }
        // Nothing arrived for a while, and no wake-up so recent that its messages may
        // still be on their way.
        if quiet(self.last_message) && quiet(self.since) && quiet(self.last_wake) {
            self.paused = true;
            self.since = now;
            return Some(Action::Pause);
        }
        None
    }

    /// What an end check found: the partitions read to their end, and those behind.
    /// Returns `Resume` when some are behind.
    pub fn on_end_check(
        &mut self,
        now: Instant,
        at_end: BTreeSet<i32>,
        behind: bool,
    ) -> Option<Action> {
        self.last_end_check = now;
        self.at_end = at_end;
        if behind {
            self.resume(now)
        } else {
            None
        }
    }

    /// The partitions that showed, since the last call, that this member keeps up with
    /// them: they brought messages, or the last end check found them read to the end.
    pub fn keeping_up(&mut self) -> BTreeSet<i32> {
        let moved = std::mem::take(&mut self.moved);
        moved.union(&self.at_end).copied().collect()
    }

    fn resume(&mut self, now: Instant) -> Option<Action> {
        if !self.paused {
            return None;
        }
        self.paused = false;
        self.since = now;
        // A check right after this fetching round settles whether it read everything.
        self.last_end_check = now - END_CHECK + IDLE_AFTER * 2;
        Some(Action::Resume)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(list: &[i32]) -> BTreeSet<i32> {
        list.iter().copied().collect()
    }

    #[test]
    fn pauses_once_quiet_and_resumes_on_a_wake_up() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        assert_eq!(idle.tick(start + TICK), None);
        assert_eq!(idle.tick(start + IDLE_AFTER), Some(Action::Pause));
        let woken = start + IDLE_AFTER + TICK;
        assert_eq!(idle.on_wake(woken), Some(Action::Resume));
        assert_eq!(idle.on_wake(woken), None, "already fetching");
    }

    #[test]
    fn a_message_or_a_recent_wake_up_keeps_it_fetching() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        idle.on_message(0, start + IDLE_AFTER - TICK);
        assert_eq!(idle.tick(start + IDLE_AFTER), None);
        let mut idle = Idle::new(start);
        idle.on_wake(start + IDLE_AFTER - TICK);
        assert_eq!(idle.tick(start + IDLE_AFTER), None);
    }

    #[test]
    fn while_paused_it_checks_the_ends_and_resumes_when_behind() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        let paused_at = start + IDLE_AFTER;
        assert_eq!(idle.tick(paused_at), Some(Action::Pause));
        assert_eq!(idle.tick(start + END_CHECK - TICK), None);
        assert_eq!(idle.tick(start + END_CHECK), Some(Action::CheckEnds));
        let checked = start + END_CHECK;
        assert_eq!(idle.on_end_check(checked, set(&[0, 1]), false), None);
        assert_eq!(idle.tick(checked + TICK), None, "next check later");
        assert_eq!(
            idle.on_end_check(checked + END_CHECK, set(&[0]), true),
            Some(Action::Resume)
        );
    }

    #[test]
    fn partitions_keep_up_by_moving_or_by_being_read_to_the_end() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        idle.on_message(2, start);
        idle.on_end_check(start, set(&[0]), false);
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
}
