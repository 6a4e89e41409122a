//! Names people read (nicknames, titles, category names) must show what they hold.
//!
//! Two kinds of character defeat that: the invisible ones (zero-width spaces, joiners
//! outside emoji, fillers, soft hyphens, tags) make a name that looks empty or looks like
//! another, and the bidirectional controls (RLO and friends) make text display in another
//! order than it is stored, so `gpj.exe` can read as `exe.jpg`. Content (post and comment
//! bodies) is not held to this: there such characters are ordinary writing.
//!
//! Emoji sequences stay valid: a zero-width joiner between two pictographs (👨‍👩‍👧),
//! emoji presentation and skin tones after one, and the tag characters of a subdivision
//! flag after 🏴.

/// The first character of `text` a reader could not see or that reorders the display.
pub fn hidden_character(text: &str) -> Option<char> {
    let chars: Vec<char> = text.chars().collect();
    chars.iter().enumerate().find_map(|(i, &c)| {
        let allowed = match c {
            ZWJ => joins_pictographs(&chars, i),
            EMOJI_PRESENTATION => follows_pictograph(&chars, i),
            TAG_FIRST..=TAG_LAST => in_flag_tag_sequence(&chars, i),
            _ => !is_bidi_control(c) && !is_invisible(c),
        };
        (!allowed).then_some(c)
    })
}

const ZWJ: char = '\u{200D}';
const EMOJI_PRESENTATION: char = '\u{FE0F}';
const BLACK_FLAG: char = '\u{1F3F4}';
const TAG_FIRST: char = '\u{E0000}';
const TAG_LAST: char = '\u{E007F}';

fn is_bidi_control(c: char) -> bool {
    matches!(c,
        '\u{061C}'                  // Arabic letter mark
        | '\u{200E}' | '\u{200F}'   // left-to-right, right-to-left marks
        | '\u{202A}'..='\u{202E}'   // embeddings, overrides, pop
        | '\u{2066}'..='\u{2069}') // isolates
}

fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                  // soft hyphen
        | '\u{034F}'                // combining grapheme joiner
        | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers
        | '\u{17B4}' | '\u{17B5}'   // Khmer inherent vowels
        | '\u{180B}'..='\u{180F}'   // Mongolian selectors and vowel separator
        | '\u{200B}' | '\u{200C}'   // zero-width space, non-joiner
        | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
        | '\u{206A}'..='\u{206F}'   // deprecated format characters
        | '\u{FEFF}'                // zero-width no-break space
        | '\u{FE00}'..='\u{FE0E}'   // variation selectors (U+FE0F is checked in context)
        | '\u{1D173}'..='\u{1D17A}' // musical format characters
        | '\u{E0100}'..='\u{E01EF}') // variation selectors supplement
}

/// A pictograph, as far as names need: the emoji and symbol blocks.
fn is_pictograph(c: char) -> bool {
    matches!(c,
        '\u{1F000}'..='\u{1FAFF}'
        | '\u{2600}'..='\u{27BF}'
        | '\u{2B00}'..='\u{2BFF}'
        | '\u{2300}'..='\u{23FF}')
}

/// What may follow a pictograph inside one emoji: emoji presentation and skin tones.
fn is_emoji_modifier(c: char) -> bool {
    c == EMOJI_PRESENTATION || ('\u{1F3FB}'..='\u{1F3FF}').contains(&c)
}

/// The nearest character before `at` that is not a modifier is a pictograph.
fn follows_pictograph(chars: &[char], at: usize) -> bool {
    chars[..at]
        .iter()
        .rev()
        .find(|&&c| !is_emoji_modifier(c))
        .is_some_and(|&c| is_pictograph(c))
}

/// A zero-width joiner is writing when it joins two pictographs (modifiers aside).
fn joins_pictographs(chars: &[char], at: usize) -> bool {
    follows_pictograph(chars, at) && chars.get(at + 1).is_some_and(|&c| is_pictograph(c))
}

/// Tag characters spell a subdivision flag right after 🏴 (England: 🏴 + "gbeng" + end).
fn in_flag_tag_sequence(chars: &[char], at: usize) -> bool {
    chars[..at]
        .iter()
        .rev()
        .find(|&&c| !(TAG_FIRST..=TAG_LAST).contains(&c))
        == Some(&BLACK_FLAG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bidi_controls_and_invisible_characters_are_found() {
        assert_eq!(hidden_character("gpj\u{202E}.exe"), Some('\u{202E}'));
        assert_eq!(hidden_character("\u{200B}\u{200B}"), Some('\u{200B}'));
        assert_eq!(hidden_character("ad\u{00AD}min"), Some('\u{00AD}'));
        assert_eq!(hidden_character("\u{3164}\u{3164}"), Some('\u{3164}'));
        assert_eq!(hidden_character("a\u{2066}b\u{2069}"), Some('\u{2066}'));
        assert_eq!(hidden_character("a\u{200D}b"), Some('\u{200D}'));
        assert_eq!(hidden_character("a\u{FE0F}"), Some('\u{FE0F}'));
        assert_eq!(hidden_character("x\u{E0067}"), Some('\u{E0067}'));
    }

    #[test]
    fn ordinary_text_and_emoji_sequences_pass() {
        for text in [
            "Ada Lovelace",
            "Zoë",
            "مرحبا",
            "日本語",
            "👨\u{200D}👩\u{200D}👧 family",
            "❤\u{FE0F}\u{200D}🔥",
            "👍🏽",
            "🏴\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}",
        ] {
            assert_eq!(hidden_character(text), None, "{text}");
        }
    }
}
