//! Page cursors: the last id of the previous page, as its 16 bytes in unpadded base64url.
//!
//! Any id is a place in the keyset order (`id < cursor` or `id > cursor`), so every string
//! of that form is a cursor the lists can start from, and the pattern published for it
//! ([`CURSOR_PATTERN`]) is exactly what [`decode`] accepts: 22 characters of the alphabet,
//! the last of them carrying only the 2 bits that remain of the 128 (so `A`, `Q`, `g` or
//! `w`, as the strict decoder requires).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use uuid::Uuid;

/// What [`decode`] accepts, for the OpenAPI document.
pub const CURSOR_PATTERN: &str = "^[A-Za-z0-9_-]{21}[AQgw]$";

/// The cursor of a page that ends with `last_id`.
pub fn encode(last_id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(last_id.as_bytes())
}

/// The id a cursor names; `None` for anything not of the form [`encode`] hands out.
pub fn decode(cursor: &str) -> Option<Uuid> {
    if cursor.len() != 22 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    Uuid::from_slice(&bytes).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_names_the_id_it_was_made_from() {
        let id = Uuid::now_v7();
        let cursor = encode(id);
        assert_eq!(cursor.len(), 22);
        assert_eq!(decode(&cursor), Some(id));
    }

    #[test]
    fn the_pattern_and_the_decoder_agree() {
        let pattern = regex::Regex::new(CURSOR_PATTERN).unwrap();
        let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        // Every last character, after a valid stem, and the lengths around 22.
        for last in alphabet.chars().chain(['=', '+', '/', '.']) {
            let cursor = format!("{}{last}", "A".repeat(21));
            assert_eq!(
                pattern.is_match(&cursor),
                decode(&cursor).is_some(),
                "{cursor}"
            );
        }
        for cursor in [
            "",
            "AAAA",
            &"A".repeat(21),
            &"A".repeat(23),
            &"A".repeat(48),
        ] {
            assert!(
                !pattern.is_match(cursor) && decode(cursor).is_none(),
                "{cursor}"
            );
        }
    }
}
