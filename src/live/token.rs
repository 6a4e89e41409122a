//! Resume tokens: the `id:` of each message, which a client sends back as `Last-Event-ID`.
//!
//! A token is the message's place in the event store's global order,
//! `<transaction id>-<global position>` ([`Checkpoint`]). Every replica reads the same
//! store in the same order, so a token from one replica means the same place on any
//! other: the client resumes exactly after it, wherever it reconnects.

use crate::store::reader::Checkpoint;

/// The most digits of either number: any 18 fit in the `i64` the global position is
/// kept in (a transaction id is far below it).
const DIGITS: usize = 18;
/// What [`decode`] accepts, for the OpenAPI document (HTTP's optional whitespace around).
pub const PATTERN: &str = "^[ \\t]*[0-9]{1,18}-[0-9]{1,18}[ \\t]*$";

/// The `id:` of a message at `checkpoint`.
pub fn encode(checkpoint: Checkpoint) -> String {
    format!(
        "{}-{}",
        checkpoint.transaction_id, checkpoint.global_position
    )
}

/// The place a `Last-Event-ID` names; `None` when it is not a token this API hands out.
pub fn decode(token: &str) -> Option<Checkpoint> {
    let (transaction, position) = token.trim_matches([' ', '\t']).split_once('-')?;
    let digits =
        |text: &str| (1..=DIGITS).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit());
    if !digits(transaction) || !digits(position) {
        return None;
    }
    Some(Checkpoint {
        transaction_id: transaction.parse().ok()?,
        global_position: position.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_names_the_same_place_after_a_round_trip() {
        let place = Checkpoint {
            transaction_id: 812,
            global_position: 45,
        };
        assert_eq!(encode(place), "812-45");
        assert_eq!(decode(&encode(place)), Some(place));
    }

    #[test]
    fn anything_else_is_no_token() {
        for bad in [
            "", "812", "812-", "-45", "a-45", "812-45-1", "812--45", "+1-2",
        ] {
            assert_eq!(decode(bad), None, "{bad:?}");
        }
        assert_eq!(decode("9999999999999999999-1"), None, "too long");
        assert_eq!(
            decode(" 812-45\t"),
            Some(Checkpoint {
                transaction_id: 812,
                global_position: 45
            })
        );
    }

    #[test]
    fn the_pattern_says_what_decode_accepts() {
        let pattern = regex::Regex::new(PATTERN).unwrap();
        let eighteen = "9".repeat(18);
        for token in [
            "",
            "812",
            "812-",
            "-45",
            "a-45",
            "812-45-1",
            "812--45",
            "+1-2",
            "1-2 x",
            "812-45",
            " 812-45\t",
            "0-0",
            &format!("{eighteen}-{eighteen}"),
            &format!("9{eighteen}-1"),
            &format!("1-9{eighteen}"),
        ] {
            assert_eq!(
                pattern.is_match(token),
                decode(token).is_some(),
                "{token:?}"
            );
        }
    }
}
