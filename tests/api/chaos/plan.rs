//! What the fault suite does, in order: the fixed sequences, the schedule that takes every
//! part down once per round, and rounds of faults drawn at random from a printed seed.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A part of the system that can be taken down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    Api,
    Relay,
    Projector,
    /// API, relay and projector at once: one `board serve` process, as `make run` runs it.
    Server,
    Broker,
    Mysql,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Part::Api => "api server",
            Part::Relay => "relay",
            Part::Projector => "projector",
            Part::Server => "server (api, relay and projector)",
            Part::Broker => "broker",
            Part::Mysql => "mysql",
        }
    }

    pub fn is_read_side_store(self) -> bool {
        matches!(self, Part::Broker | Part::Mysql)
    }

    /// The `board` components this part stands for (none for the servers).
    fn components(self) -> &'static [Part] {
        match self {
            Part::Server => &[Part::Api, Part::Relay, Part::Projector],
            Part::Api => &[Part::Api],
            Part::Relay => &[Part::Relay],
            Part::Projector => &[Part::Projector],
            Part::Broker | Part::Mysql => &[],
        }
    }

    /// True when the two cannot be down independently (one contains the other).
    fn overlaps(self, other: Part) -> bool {
        self == other
            || self
                .components()
                .iter()
                .any(|c| other.components().contains(c))
    }
}

/// One part taken down: `at` after the round began, for `down`, by SIGKILL or SIGTERM.
#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub part: Part,
    pub kill: bool,
    pub at: Duration,
    pub down: Duration,
}

impl Fault {
    pub fn label(self) -> String {
        let how = if self.kill { "kill -9" } else { "stop" };
        format!("{how} {}", self.part.name())
    }
}

/// A round: faults that may overlap in time, then a wait until everything accepted so
/// far is in the store, the topic and the read model.
#[derive(Clone, Debug)]
pub struct Round {
    pub name: String,
    pub faults: Vec<Fault>,
}

/// What is down when, in time order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Down(Part, bool),
    Up(Part),
}

impl Round {
    /// The round's faults as a timeline of downs and ups.
    pub fn timeline(&self) -> Vec<(Duration, Step)> {
        let mut steps: Vec<(Duration, Step)> = self
            .faults
            .iter()
            .flat_map(|f| {
                [
                    (f.at, Step::Down(f.part, f.kill)),
                    (f.at + f.down, Step::Up(f.part)),
                ]
            })
            .collect();
        // Stable: a fault down for no time at all still goes down before it comes up.
        steps.sort_by_key(|(at, _)| *at);
        steps
    }
}

/// Issue 17's sequence, as a user met it: under load, `kill -9` of the one `board serve`
/// process and an immediate restart, then 9 s later `kill -9` of the broker and a restart.
pub fn server_then_broker_kill() -> Round {
    Round {
        name: "server kill, then broker kill".into(),
        faults: vec![
            Fault {
                part: Part::Server,
                kill: true,
                at: Duration::ZERO,
                down: Duration::ZERO,
            },
            Fault {
                part: Part::Broker,
                kill: true,
                at: Duration::from_secs(9),
                down: Duration::from_millis(500),
            },
        ],
    }
}

/// Every part once, one after another. The order turns by one each round, so that each
/// fault also comes right after a different one; servers are stopped cleanly in odd
/// rounds, killed in even ones.
pub fn schedule(round: usize) -> Vec<Round> {
    const PARTS: [Part; 5] = [
        Part::Api,
        Part::Relay,
        Part::Projector,
        Part::Broker,
        Part::Mysql,
    ];
    let kill_servers = round % 2 == 0;
    (0..PARTS.len())
        .map(|i| PARTS[(i + round - 1) % PARTS.len()])
        .map(|part| {
            let fault = Fault {
                part,
                kill: !part.is_read_side_store() || kill_servers,
                at: Duration::ZERO,
                down: Duration::from_secs(3),
            };
            Round {
                name: format!("schedule {round}: {}", fault.label()),
                faults: vec![fault],
            }
        })
        .collect()
}

/// `count` rounds of one to three faults on different parts, each drawn from `seed`:
/// which part, kill -9 or a clean stop, when in the round (0-4 s), and how long down
/// (0-6 s). The same seed draws the same rounds.
pub fn random(seed: u64, count: usize) -> Vec<Round> {
    const PARTS: [Part; 6] = [
        Part::Api,
        Part::Relay,
        Part::Projector,
        Part::Server,
        Part::Broker,
        Part::Mysql,
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    (1..=count)
        .map(|n| {
            let wanted = rng.gen_range(1..=3);
            let mut faults: Vec<Fault> = Vec::new();
            for _ in 0..wanted {
                let part = PARTS[rng.gen_range(0..PARTS.len())];
                let fault = Fault {
                    part,
                    kill: rng.gen_bool(0.5),
                    at: Duration::from_millis(rng.gen_range(0..4_000)),
                    down: Duration::from_millis(rng.gen_range(0..6_000)),
                };
                if faults.iter().all(|f| !f.part.overlaps(part)) {
                    faults.push(fault);
                }
            }
            Round {
                name: format!("random {n}/{count} (seed {seed})"),
                faults,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_draws_the_same_rounds() {
        let describe = |rounds: Vec<Round>| format!("{rounds:?}");
        assert_eq!(describe(random(7, 5)), describe(random(7, 5)));
        assert_ne!(describe(random(7, 5)), describe(random(8, 5)));
    }

    #[test]
    fn a_round_never_takes_one_process_down_twice() {
        for round in random(11, 200) {
            assert!(!round.faults.is_empty());
            for (i, a) in round.faults.iter().enumerate() {
                for b in &round.faults[i + 1..] {
                    assert!(!a.part.overlaps(b.part), "{round:?}");
                }
            }
            // Every down comes before its up.
            let timeline = round.timeline();
            for fault in &round.faults {
                let down = timeline
                    .iter()
                    .position(|(_, s)| *s == Step::Down(fault.part, fault.kill));
                let up = timeline
                    .iter()
                    .position(|(_, s)| *s == Step::Up(fault.part));
                assert!(down < up, "{round:?}");
            }
        }
    }
}
