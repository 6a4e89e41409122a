//! The relay's "published" notification (`NOTIFY board_relayed`): the topic, and where
//! each partition the batch went to ends, as the broker acknowledged it. A projector
//! that has read that far in every partition it holds has read everything the relay
//! published, and can stop fetching until the next notification, without asking the
//! broker (see `crate::projector`).
//!
//! The payload is `TOPIC PARTITION:END …`, e.g. `board-events 0:1207 2:88`. A relay of an
//! earlier version sent the topic alone; its notifications carry no ends.

use std::collections::BTreeMap;
use std::fmt::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    pub topic: String,
    /// Partition to the offset after the batch's last message in it.
    pub ends: BTreeMap<i32, i64>,
}

impl Published {
    pub fn payload(&self) -> String {
        let mut payload = self.topic.clone();
        for (partition, end) in &self.ends {
            let _ = write!(payload, " {partition}:{end}"); // writing to a String cannot fail
        }
        payload
    }

    /// Reads a payload; `None` when it is not one (a notification sent by other means).
    /// An end that cannot be read is left out: ends are only ever a hint.
    pub fn parse(payload: &str) -> Option<Self> {
        let mut words = payload.split_whitespace();
        let topic = words.next()?.to_string();
        let ends = words
            .filter_map(|word| {
                let (partition, end) = word.split_once(':')?;
                Some((partition.parse().ok()?, end.parse().ok()?))
            })
            .collect();
        Some(Self { topic, ends })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_payload_reads_back_as_written() {
        let published = Published {
            topic: "board-events".into(),
            ends: BTreeMap::from([(0, 1207), (2, 88)]),
        };
        assert_eq!(published.payload(), "board-events 0:1207 2:88");
        assert_eq!(Published::parse(&published.payload()), Some(published));
    }

    #[test]
    fn the_topic_alone_carries_no_ends() {
        let published = Published::parse("board-events").unwrap();
        assert_eq!(published.topic, "board-events");
        assert!(published.ends.is_empty());
        assert_eq!(Published::parse(""), None);
        assert_eq!(
            Published::parse("board-events 0:x 1:5").unwrap().ends,
            BTreeMap::from([(1, 5)])
        );
    }
}
