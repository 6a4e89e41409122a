//! Field rules from the API contract, in one place: each is written here once.
//!
//! The HTTP layer runs these as it reads a request body, to name every bad field in the
//! same answer as a missing or mistyped one; the aggregates run them again so that no
//! command, from any caller, can record an event that breaks them.

mod visible;

use crate::FieldError;

/// Checks `value`'s length in characters (not bytes), that it is not blank, and that it
/// holds no control characters but line breaks and tabs (NUL cannot even be stored).
fn text(field: &'static str, value: &str, Length { min, max }: Length) -> Result<(), FieldError> {
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
    let len = value.chars().count();
    if len < min || len > max {
        return Err(FieldError::new(
            field,
            format!("must be {min} to {max} characters"),
        ));
    }
    if min > 0 && value.trim().is_empty() {
        return Err(FieldError::new(field, "must not be blank"));
    }
    Ok(())
}

/// The length a text field must have, in characters. The OpenAPI document reads these
/// too, so the published limits are the enforced ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Length {
    pub min: usize,
    pub max: usize,
}

pub const EMAIL_MAX: usize = 254;
pub const PASSWORD: Length = Length { min: 8, max: 128 };
pub const NICKNAME: Length = Length { min: 2, max: 20 };
pub const CATEGORY_NAME: Length = Length { min: 1, max: 50 };
pub const CATEGORY_DESCRIPTION: Length = Length { min: 0, max: 500 };
pub const POST_TITLE: Length = Length { min: 1, max: 200 };
pub const POST_CONTENT: Length = Length {
    min: 1,
    max: 20_000,
};
pub const COMMENT_CONTENT: Length = Length { min: 1, max: 2_000 };

/// At most [`EMAIL_MAX`] characters: checked on every route that takes an address, the
/// log-in included (no account can have a longer one, and an address tried becomes a key
/// of the log-in limits).
pub fn email_length(value: &str) -> Result<(), FieldError> {
    if value.chars().count() > EMAIL_MAX {
        return Err(FieldError::new(
            "email",
            format!("must be at most {EMAIL_MAX} characters"),
        ));
    }
    Ok(())
}

/// A syntactically valid address: `local@domain.tld`, at most 254 characters, no spaces.
pub fn email(value: &str) -> Result<(), FieldError> {
    let bad = || FieldError::new("email", "must be a valid email address");
    email_length(value)?;
    let (local, domain) = value.rsplit_once('@').ok_or_else(bad)?;
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if local_ok && domain_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// The form an email is compared and stored by: case-insensitive, so lowercase.
pub fn normalize_email(value: &str) -> String {
    value.trim().to_lowercase()
}

pub fn password(value: &str) -> Result<(), FieldError> {
    if value.contains('\0') {
        return Err(FieldError::new(
            "password",
            "must not contain NUL characters",
        ));
    }
    let len = value.chars().count();
    if !(PASSWORD.min..=PASSWORD.max).contains(&len) {
        return Err(FieldError::new(
            "password",
            format!("must be {} to {} characters", PASSWORD.min, PASSWORD.max),
        ));
    }
    Ok(())
}

/// A name people read must show what it holds: no invisible or bidirectional-control
/// characters (see [`visible`]).
fn name(field: &'static str, value: &str, length: Length) -> Result<(), FieldError> {
    text(field, value, length)?;
    match visible::hidden_character(value) {
        Some(c) => Err(FieldError::new(
            field,
            format!(
                "must not contain invisible or bidirectional-control characters (U+{:04X})",
                u32::from(c)
            ),
        )),
        None => Ok(()),
    }
}

/// Checked after trimming, which is also how it is stored.
pub fn nickname(value: &str) -> Result<(), FieldError> {
    name("nickname", value.trim(), NICKNAME)
}

/// Held to the nickname's and title's rule too: a category's name is read like a title.
pub fn category_name(value: &str) -> Result<(), FieldError> {
    name("name", value, CATEGORY_NAME)
}

pub fn category_description(value: &str) -> Result<(), FieldError> {
    text("description", value, CATEGORY_DESCRIPTION)
}

pub fn post_title(value: &str) -> Result<(), FieldError> {
    name("title", value, POST_TITLE)
}

pub fn post_content(value: &str) -> Result<(), FieldError> {
    text("content", value, POST_CONTENT)
}

pub fn comment_content(value: &str) -> Result<(), FieldError> {
    text("content", value, COMMENT_CONTENT)
}

/// An edit of a post names at least one of its title and content (each checked by its own
/// rule above). Reported on `title`, the first of the two.
pub fn post_edit(title: Option<&str>, content: Option<&str>) -> Result<(), FieldError> {
    if title.is_none() && content.is_none() {
        return Err(FieldError::new(
            "title",
            "at least one of title and content is required",
        ));
    }
    Ok(())
}

/// Runs several checks and keeps every failure, so a client learns all of them at once.
pub fn collect(checks: impl IntoIterator<Item = Result<(), FieldError>>) -> Vec<FieldError> {
    checks.into_iter().filter_map(Result::err).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_accepts_ordinary_addresses() {
        for ok in [
            "a@b.co",
            "first.last+tag@mail.example.org",
            "x_y@sub-d.example.com",
        ] {
            assert_eq!(email(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn email_rejects_malformed_addresses() {
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a b@c.de",
            "a..b@c.de",
            ".a@c.de",
            "a@-b.de",
            "a@b..de",
            "a@b.de ",
            "ä@b.de",
        ] {
            assert!(email(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn email_is_limited_to_254_characters() {
        let long = format!("{}@{}.com", "a".repeat(64), "b".repeat(63).repeat(3));
        assert!(long.len() > 254);
        assert!(email(&long).unwrap_err().message.contains("254"));
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(post_title(&"é".repeat(200)), Ok(()));
        assert!(post_title(&"é".repeat(201)).is_err());
        assert_eq!(password(&"ü".repeat(8)), Ok(()));
    }

    #[test]
    fn limits_match_the_contract() {
        assert!(password("1234567").is_err());
        assert!(password(&"p".repeat(129)).is_err());
        assert!(nickname(" a ").is_err());
        assert_eq!(nickname("  ab  "), Ok(()));
        assert!(nickname(&"n".repeat(21)).is_err());
        assert!(category_name("").is_err());
        assert!(category_name(&"c".repeat(51)).is_err());
        assert_eq!(category_description(""), Ok(()));
        assert!(category_description(&"d".repeat(501)).is_err());
        assert!(post_title("   ").is_err());
        assert!(post_content(&"c".repeat(20_001)).is_err());
        assert!(comment_content(&"c".repeat(2_001)).is_err());
        assert_eq!(comment_content(&"c".repeat(2_000)), Ok(()));
    }

    #[test]
    fn control_characters_are_refused_but_line_breaks_are_not() {
        assert!(post_title("a\u{0}b").is_err());
        assert!(category_name("bell\u{7}").is_err());
        assert!(password("12345678\u{0}").is_err());
        assert_eq!(post_content("line one\nline two\ttabbed"), Ok(()));
    }

    #[test]
    fn names_refuse_hidden_characters_but_content_keeps_them() {
        let error = nickname("\u{200b}\u{200b}").unwrap_err();
        assert_eq!(error.field, "nickname");
        assert!(error.message.contains("U+200B"), "{}", error.message);
        assert!(post_title("invoice\u{202E}fdp.exe").is_err());
        assert!(category_name("Rust\u{200B}").is_err());
        assert_eq!(nickname("Zoë 👍🏽"), Ok(()));
        assert_eq!(post_content("a\u{200B}b \u{202E}quoted"), Ok(()));
        assert_eq!(comment_content("👨\u{200D}👩\u{200D}👧"), Ok(()));
    }

    #[test]
    fn a_post_edit_names_the_title_or_the_content_or_both() {
        assert_eq!(post_edit(Some("t"), None), Ok(()));
        assert_eq!(post_edit(None, Some("c")), Ok(()));
        assert_eq!(post_edit(Some("t"), Some("c")), Ok(()));
        let error = post_edit(None, None).unwrap_err();
        assert_eq!(error.field, "title");
        assert_eq!(
            error.message,
            "at least one of title and content is required"
        );
    }

    #[test]
    fn collect_keeps_every_failure() {
        let errors = collect([post_title(""), post_content(""), Ok(())]);
        let fields: Vec<_> = errors.iter().map(|e| e.field).collect();
        assert_eq!(fields, ["title", "content"]);
    }
}
