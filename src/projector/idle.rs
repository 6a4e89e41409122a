//! When the projector stops fetching, and when it starts again.
//!
//! A consumer fetches without end, even with nothing to fetch. On Apache Kafka an empty
//! fetch waits at the broker (`fetch.wait.max.ms`) and costs little; Tansu 0.6.0 sleeps
//! after every fetch whatever it found, so the wait must stay short for latency, and a
//! short wait on six partitions is a hundred store queries a second at rest. So a
//! projector with nothing to do pauses its partitions, and resumes them when the relay
//! says it has published (a PostgreSQL notification, `board_relayed`).
//!
//! "Nothing to do" is asked of the broker, never guessed from a quiet moment: once no
//! message came for [`IDLE_AFTER`], the projector compares its positions with the
//! partitions' ends, and pauses only if it has read everything. (A consumer just resumed
//! can take longer than that to bring its first message; pausing it on quiet alone paused
//! it again before it ever fetched.) While paused it compares again every [`END_CHECK`]:
//! behind (a notification was lost) it resumes; caught up, it has shown that it keeps up.
//!
//! This type decides; the caller pauses, resumes and asks the broker.

use std::collections::BTreeSet;
use std::time::Duration;

use tokio::time::Instant;

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
        }
    }

    pub fn on_message(&mut self, partition: i32, now: Instant) {
        self.last_message = now;
        self.behind = None;
        self.moved.insert(partition);
        self.at_end.remove(&partition);
    }

    /// Something was published; returns `Resume` when paused.
    pub fn on_wake(&mut self, now: Instant) -> Option<Action> {
        self.last_wake = now;
        self.resume()
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

    /// What an end check found: the partitions read to their end, and whether any is
    /// behind. Paused and behind, it resumes; fetching and nothing behind, it pauses.
    pub fn on_end_check(
        &mut self,
        now: Instant,
        at_end: BTreeSet<i32>,
        behind: bool,
    ) -> Option<Action> {
        self.last_end_check = now;
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
        assert_eq!(
            idle.on_end_check(at, set(&[]), true),
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
            idle.on_end_check(again, set(&[0, 1]), false),
            Some(Action::Pause)
        );
    }

    #[test]
    fn a_wake_up_resumes_and_a_message_keeps_it_fetching() {
        let start = Instant::now();
        let mut idle = Idle::new(start);
        let (at, _) = next_action(&mut idle, start);
        assert_eq!(idle.on_end_check(at, set(&[0]), false), Some(Action::Pause));
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
        assert_eq!(idle.on_end_check(at, set(&[0]), false), Some(Action::Pause));
        assert_eq!(idle.tick(at + END_CHECK - TICK), None);
        assert_eq!(idle.tick(at + END_CHECK), Some(Action::CheckEnds));
        assert_eq!(idle.on_end_check(at + END_CHECK, set(&[0]), false), None);
        assert_eq!(
            idle.on_end_check(at + END_CHECK * 2, set(&[]), true),
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
