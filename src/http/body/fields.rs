//! Reading a request type from a JSON object, one known key at a time.
//!
//! serde stops at the first bad key; the contract wants every bad, missing or unknown key
//! named in one answer, so a client fixes all of them in one round. Each request type
//! says which keys it takes and by which rule ([`FromFields`]); [`read`] collects what is
//! wrong with all of them.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use aggregates::FieldError;

/// What is wrong with a body, by key: the `errors` member of a 400 problem document.
pub type FieldErrors = BTreeMap<String, Vec<String>>;

/// The check a string field must pass: one of `aggregates::rules`, or [`any_string`].
pub type Rule = fn(&str) -> Result<(), FieldError>;

/// A request body type that reads itself from the keys of a JSON object.
pub trait FromFields: Sized {
    /// Takes this type's keys out of `fields`, each checked by its rule.
    ///
    /// Take every key before giving up (apply `?` only once all are taken): a key left in
    /// `fields` is reported as unknown, and a problem not looked at is not reported.
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported>;

    /// A rule on the body as a whole, checked once every key passed its own.
    fn check(&self) -> Result<(), FieldError> {
        Ok(())
    }
}

/// Proof that a key's problem was recorded in [`Fields`]. Only `Fields` makes one, so a
/// body that could not be read has always said why.
#[derive(Debug)]
pub struct Reported(());

/// The keys of a body not yet taken, and every problem found so far.
pub struct Fields {
    object: Map<String, Value>,
    errors: FieldErrors,
}

/// Reads a `T` from `object`, or names every bad, missing or unknown key.
pub fn read<T: FromFields>(object: Map<String, Value>) -> Result<T, FieldErrors> {
    let mut fields = Fields {
        object,
        errors: FieldErrors::new(),
    };
    let body = T::from_fields(&mut fields);
    let Fields { object, mut errors } = fields;
    for (key, _) in object {
        record(&mut errors, key, "is not a known field");
    }
    match body {
        Ok(body) if errors.is_empty() => match body.check() {
            Ok(()) => Ok(body),
            Err(error) => {
                record(&mut errors, error.field.to_string(), error.message);
                Err(errors)
            }
        },
        // Not empty: either a key is unknown or `Reported` says a problem was recorded.
        _ => Err(errors),
    }
}

impl Fields {
    /// A string that must be present (and not null), checked by `rule`.
    pub fn required(&mut self, name: &'static str, rule: Rule) -> Result<String, Reported> {
        match self.object.remove(name) {
            None | Some(Value::Null) => Err(self.fail(name, "is required")),
            Some(value) => self.string(name, value, rule),
        }
    }

    /// A string that may be absent or null (`None`), checked by `rule` when present.
    pub fn optional(&mut self, name: &'static str, rule: Rule) -> Result<Option<String>, Reported> {
        match self.object.remove(name) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => self.string(name, value, rule).map(Some),
        }
    }

    fn string(&mut self, name: &'static str, value: Value, rule: Rule) -> Result<String, Reported> {
        let Value::String(text) = value else {
            return Err(self.fail(name, "must be a string"));
        };
        match rule(&text) {
            Ok(()) => Ok(text),
            Err(error) => Err(self.fail(name, error.message)),
        }
    }

    fn fail(&mut self, name: &str, message: impl Into<String>) -> Reported {
        record(&mut self.errors, name.to_string(), message);
        Reported(())
    }
}

fn record(errors: &mut FieldErrors, name: String, message: impl Into<String>) {
    errors.entry(name).or_default().push(message.into());
}

/// For fields with no rule beyond being a string.
pub fn any_string(_: &str) -> Result<(), FieldError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// A body with one key of each kind, and a whole-body rule.
    #[derive(Debug, PartialEq)]
    struct Greeting {
        name: String,
        note: Option<String>,
    }

    fn short(value: &str) -> Result<(), FieldError> {
        if value.chars().count() <= 5 {
            Ok(())
        } else {
            Err(FieldError::new("ignored", "must be at most 5 characters"))
        }
    }

    impl FromFields for Greeting {
        fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
            let name = fields.required("name", short);
            let note = fields.optional("note", any_string);
            Ok(Self {
                name: name?,
                note: note?,
            })
        }

        fn check(&self) -> Result<(), FieldError> {
            if self.note.as_deref() == Some(self.name.as_str()) {
                Err(FieldError::new("note", "must differ from the name"))
            } else {
                Ok(())
            }
        }
    }

    fn greeting(body: Value) -> Result<Greeting, FieldErrors> {
        let Value::Object(object) = body else {
            panic!("a test body is an object");
        };
        read(object)
    }

    fn errors(body: Value) -> Value {
        let errors = greeting(body).expect_err("the body should be refused");
        serde_json::to_value(errors).unwrap()
    }

    #[test]
    fn a_good_body_is_read_with_absent_and_null_optional_keys_as_none() {
        let read = greeting(json!({ "name": "Ada", "note": "hi" })).unwrap();
        assert_eq!(read.name, "Ada");
        assert_eq!(read.note.as_deref(), Some("hi"));
        for body in [
            json!({ "name": "Ada" }),
            json!({ "name": "Ada", "note": null }),
        ] {
            assert_eq!(greeting(body).unwrap().note, None);
        }
    }

    #[test]
    fn a_missing_or_null_required_key_is_required() {
        for body in [json!({}), json!({ "name": null })] {
            assert_eq!(errors(body), json!({ "name": ["is required"] }));
        }
    }

    #[test]
    fn a_value_that_is_not_a_string_is_refused_whatever_its_type() {
        for value in [json!(7), json!(1.5), json!(true), json!([]), json!({})] {
            assert_eq!(
                errors(json!({ "name": "Ada", "note": value })),
                json!({ "note": ["must be a string"] }),
                "{value}"
            );
        }
    }

    #[test]
    fn a_string_is_checked_by_its_rule_and_the_message_is_the_rules() {
        assert_eq!(
            errors(json!({ "name": "Adalovelace" })),
            json!({ "name": ["must be at most 5 characters"] })
        );
    }

    #[test]
    fn unknown_keys_are_named_even_when_null() {
        assert_eq!(
            errors(json!({ "name": "Ada", "nmae": "Ada", "extra": null })),
            json!({ "extra": ["is not a known field"], "nmae": ["is not a known field"] })
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        assert_eq!(
            errors(json!({ "name": "Adalovelace", "note": 3, "colour": "red" })),
            json!({
                "colour": ["is not a known field"],
                "name": ["must be at most 5 characters"],
                "note": ["must be a string"],
            })
        );
        assert_eq!(
            errors(json!({ "note": false, "x": 1 })),
            json!({
                "name": ["is required"],
                "note": ["must be a string"],
                "x": ["is not a known field"],
            })
        );
    }

    #[test]
    fn the_whole_body_rule_is_checked_only_once_every_key_is_fine() {
        assert_eq!(
            errors(json!({ "name": "Ada", "note": "Ada" })),
            json!({ "note": ["must differ from the name"] })
        );
        // An unknown key alone is reported, not the whole-body rule as well.
        assert_eq!(
            errors(json!({ "name": "Ada", "note": "Ada", "x": 1 })),
            json!({ "x": ["is not a known field"] })
        );
    }
}
