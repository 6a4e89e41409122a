//! Request bodies, as types: what the handlers read ([`Body::read`]) and what the OpenAPI
//! document describes, from the same types.
//!
//! Each type reads itself key by key ([`FromFields`]) rather than through serde, so that
//! one answer names every bad key. The rules a key is checked by are the domain's
//! (`aggregates::rules`), called here as well as by the aggregates: the contract wants a
//! broken rule named in the same 400 as a missing or mistyped key, and reported before
//! anything the command itself could answer (403, 404, 412). No rule is written here.
//!
//! `#[serde(deny_unknown_fields)]` is read by utoipa only (the document's
//! `additionalProperties: false`); [`FromFields`] is what refuses unknown keys.
//!
//! [`Body::read`]: crate::http::body::Body::read

use utoipa::ToSchema;

use aggregates::{rules, FieldError};

use crate::http::body::fields::{any_string, Fields, FromFields, Reported};

/// `POST /signup`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUp {
    #[schema(format = Email, example = "ada@example.com")]
    pub email: String,
    /// Never stored or logged; only an Argon2id hash is kept.
    #[schema(format = Password)]
    pub password: String,
    /// Trimmed before it is checked and stored.
    pub nickname: String,
}

impl FromFields for SignUp {
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        let email = fields.required("email", rules::email);
        // The one place the password rule is checked: the password never reaches an
        // aggregate, only its hash reaches the database.
        let password = fields.required("password", rules::password);
        let nickname = fields.required("nickname", rules::nickname);
        Ok(Self {
            email: email?,
            password: password?,
            nickname: nickname?,
        })
    }
}

/// `POST /password-reset`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(format = Email, example = "ada@example.com")]
    pub email: String,
}

impl FromFields for PasswordResetRequest {
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        let email = fields.required("email", rules::email);
        Ok(Self { email: email? })
    }
}

/// `POST /password-reset/confirm`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    /// The token from the password-reset mail.
    pub token: String,
    /// The new password; never stored or logged, only an Argon2id hash is kept.
    #[schema(format = Password)]
    pub password: String,
}

impl FromFields for PasswordResetConfirm {
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        // Any string: a token that is not one of ours is the same 404 as a used one.
        let token = fields.required("token", any_string);
        let password = fields.required("password", rules::password);
        Ok(Self {
            token: token?,
            password: password?,
        })
    }
}

/// `DELETE /account`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseAccount {
    /// The account's current password, to confirm.
    #[schema(format = Password)]
    pub password: String,
}

impl FromFields for CloseAccount {
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        // Any string: a password that does not match is the same 403 whatever its length.
        let password = fields.required("password", any_string);
        Ok(Self {
            password: password?,
        })
    }
}

/// `POST /auth`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogIn {
    pub email: String,
    #[schema(format = Password)]
    pub password: String,
}

impl FromFields for LogIn {
    // No rule but the email's length: whatever the strings, a log-in that does not match
    // is the same 401.
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        let email = fields.required("email", rules::email_length);
        let password = fields.required("password", any_string);
        Ok(Self {
            email: email?,
            password: password?,
        })
    }
}

/// `POST /board/categories`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCategory {
    pub name: String,
    pub description: Option<String>,
}

impl FromFields for NewCategory {
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        let name = fields.required("name", rules::category_name);
        let description = fields.optional("description", rules::category_description);
        Ok(Self {
            name: name?,
            description: description?,
        })
    }
}

/// `POST /board/categories/{categoryId}/posts`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPost {
    pub title: String,
    pub content: String,
}

impl FromFields for NewPost {
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        let title = fields.required("title", rules::post_title);
        let content = fields.required("content", rules::post_content);
        Ok(Self {
            title: title?,
            content: content?,
        })
    }
}

/// `PATCH /board/posts/{postId}`: at least one of the two.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct PostEdit {
    pub title: Option<String>,
    pub content: Option<String>,
}

impl FromFields for PostEdit {
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        let title = fields.optional("title", rules::post_title);
        let content = fields.optional("content", rules::post_content);
        Ok(Self {
            title: title?,
            content: content?,
        })
    }

    // The post checks this too; here, an empty edit is a 400 whoever sends it and whatever
    // If-Match says, as a broken field rule is.
    fn check(&self) -> Result<(), FieldError> {
        rules::post_edit(self.title.as_deref(), self.content.as_deref())
    }
}

/// `POST /board/posts/{postId}/comments`.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewComment {
    pub content: String,
}

impl FromFields for NewComment {
    fn from_fields(fields: &mut Fields) -> Result<Self, Reported> {
        let content = fields.required("content", rules::comment_content);
        Ok(Self { content: content? })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::http::body::fields::{read, FieldErrors};

    fn body<T: FromFields>(value: Value) -> Result<T, FieldErrors> {
        let Value::Object(object) = value else {
            panic!("a test body is an object");
        };
        read(object)
    }

    fn errors<T: FromFields>(value: Value) -> Value {
        match body::<T>(value) {
            Ok(_) => panic!("the body should be refused"),
            Err(errors) => serde_json::to_value(errors).unwrap(),
        }
    }

    #[test]
    fn a_sign_up_names_broken_rules_wrong_types_and_unknown_keys_together() {
        let doc = errors::<SignUp>(
            json!({ "email": "nope", "password": "short", "nickname": 7, "nickName": "x" }),
        );
        assert_eq!(
            doc,
            json!({
                "email": ["must be a valid email address"],
                "nickName": ["is not a known field"],
                "nickname": ["must be a string"],
                "password": ["must be 8 to 128 characters"],
            })
        );
        let read = body::<SignUp>(
            json!({ "email": "ada@example.com", "password": "long enough", "nickname": " ada " }),
        )
        .unwrap();
        assert_eq!(read.nickname, " ada ", "trimmed by the account, not here");
    }

    #[test]
    fn a_log_in_takes_any_strings_but_only_strings_and_no_overlong_email() {
        let read = body::<LogIn>(json!({ "email": "not an email", "password": "x" })).unwrap();
        assert_eq!(
            (read.email.as_str(), read.password.as_str()),
            ("not an email", "x")
        );
        assert_eq!(
            errors::<LogIn>(json!({ "password": 12345678 })),
            json!({ "email": ["is required"], "password": ["must be a string"] })
        );
        let overlong = format!("{}@example.com", "a".repeat(rules::EMAIL_MAX));
        assert_eq!(
            errors::<LogIn>(json!({ "email": overlong, "password": "x" })),
            json!({ "email": ["must be at most 254 characters"] })
        );
    }

    #[test]
    fn a_category_description_may_be_absent_or_null_but_is_checked_when_present() {
        for value in [
            json!({ "name": "Rust" }),
            json!({ "name": "Rust", "description": null }),
        ] {
            assert_eq!(body::<NewCategory>(value).unwrap().description, None);
        }
        assert_eq!(
            errors::<NewCategory>(
                json!({ "name": "n".repeat(51), "description": "d".repeat(501), "colour": "red" })
            ),
            json!({
                "colour": ["is not a known field"],
                "description": ["must be 0 to 500 characters"],
                "name": ["must be 1 to 50 characters"],
            })
        );
    }

    #[test]
    fn a_post_needs_both_keys_and_checks_both() {
        assert_eq!(
            errors::<NewPost>(json!({})),
            json!({ "content": ["is required"], "title": ["is required"] })
        );
        assert_eq!(
            errors::<NewPost>(json!({ "title": "", "content": "c".repeat(20_001) })),
            json!({
                "content": ["must be 1 to 20000 characters"],
                "title": ["must be 1 to 200 characters"],
            })
        );
    }

    #[test]
    fn an_edit_needs_a_title_or_a_content_once_its_keys_are_fine() {
        let at_least_one = json!({ "title": ["at least one of title and content is required"] });
        for value in [json!({}), json!({ "title": null, "content": null })] {
            assert_eq!(errors::<PostEdit>(value), at_least_one);
        }
        // A bad key is reported alone, not with the rule on the whole body.
        assert_eq!(
            errors::<PostEdit>(json!({ "x": 1 })),
            json!({ "x": ["is not a known field"] })
        );
        assert_eq!(
            errors::<PostEdit>(json!({ "title": "" })),
            json!({ "title": ["must be 1 to 200 characters"] })
        );
        let read = body::<PostEdit>(json!({ "content": "New" })).unwrap();
        assert_eq!((read.title, read.content.as_deref()), (None, Some("New")));
    }

    #[test]
    fn a_comment_is_checked_by_the_comment_rule_not_the_post_rule() {
        assert_eq!(
            errors::<NewComment>(json!({ "content": "c".repeat(2_001) })),
            json!({ "content": ["must be 1 to 2000 characters"] })
        );
        assert_eq!(
            errors::<NewComment>(json!({ "content": 5, "title": "x" })),
            json!({ "content": ["must be a string"], "title": ["is not a known field"] })
        );
    }
}
