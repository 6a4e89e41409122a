//! The OpenAPI 3.1 document (`/openapi.json`) and the page that renders it (`/docs`).
//!
//! Each handler carries its own `#[utoipa::path]` (its path, parameters, body and the
//! answers particular to it). What every endpoint shares is added here, once, by
//! [`Conventions`]: the problem-document answers of the conventions ([`answers`]), the
//! rules of fields ([`FIELD_LENGTHS`]) and parameters ([`parameters`]) from the code that
//! checks them, and the links from one operation to the next ([`links`]).

mod answers;
mod links;
mod parameters;

use axum::Router;
use utoipa::openapi::path::Operation;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use aggregates::rules::{self, Length};

use super::paths::{DOCS_PATH, DOCUMENT_PATH};
use super::schema;
use crate::app::App;
use answers::add_shared_answers;
use links::add_links;
use parameters::publish_parameter_rules;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Board API",
        description = "A community board: accounts, categories, posts and comments. \
            Commands are checked by aggregates and stored as events; queries are served \
            from read models that trail the events by a little (see `Event-Position`).\n\n\
            Errors are RFC 9457 problem documents (`application/problem+json`)."
    ),
    paths(
        super::hello,
        super::accounts::check_duplicate_email,
        super::accounts::sign_up,
        super::accounts::verify,
        super::accounts::request_password_reset,
        super::accounts::confirm_password_reset,
        super::accounts::close_account,
        super::sessions::log_in_basic,
        super::sessions::log_in_json,
        super::sessions::refresh,
        super::sessions::log_out,
        super::board::create_category,
        super::board::create_post,
        super::board::edit_post,
        super::board::delete_post,
        super::board::add_comment,
        super::board::delete_comment,
        super::queries::list_categories,
        super::queries::list_posts,
        super::queries::post_content,
        super::queries::list_comments,
        super::live::live,
        super::health::live,
        super::health::ready,
        super::metrics::metrics,
    ),
    components(schemas(
        schema::Problem,
        schema::LiveCategoryCreated,
        schema::LivePostCreated,
        schema::LivePostEdited,
        schema::LivePostDeleted,
        schema::LiveCommentAdded,
        schema::LiveCommentDeleted,
        schema::LiveReset,
        schema::LiveMessage,
    )),
    modifiers(&Conventions),
    tags(
        (name = "accounts", description = "Sign-up, verification, sessions and password reset"),
        (name = "commands", description = "Changes to the board; each becomes events"),
        (name = "queries", description = "Reads from the read models"),
        (name = "operations", description = "Health and metrics"),
    )
)]
pub struct ApiDoc;

/// `/openapi.json` (serving the document built once, here) and the Swagger UI at `/docs`.
pub fn router() -> Router<App> {
    SwaggerUi::new(DOCS_PATH)
        .url(DOCUMENT_PATH, ApiDoc::openapi())
        .into()
}

/// What every operation shares; see the module comment.
struct Conventions;

impl Modify for Conventions {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "basic",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Basic).build()),
        );
        for (schema_name, field, length) in FIELD_LENGTHS {
            if let Some(property) = property_mut(components, schema_name, field) {
                property.min_length = Some(length.min);
                property.max_length = Some(length.max);
            }
        }
        for (schema_name, field, pattern) in text_patterns() {
            if let Some(property) = property_mut(components, schema_name, field) {
                property.pattern = Some(pattern);
            }
        }
        require_an_edit(components);
        // `rules::email_length`, which every body with an email is checked by.
        for schema_name in ["SignUp", "PasswordResetRequest", "LogIn"] {
            if let Some(email) = property_mut(components, schema_name, "email") {
                email.max_length = Some(rules::EMAIL_MAX);
            }
        }

        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for operation in operations.into_iter().flatten() {
                add_shared_answers(path, operation);
                publish_parameter_rules(operation);
            }
        }
        add_links(doc);
    }
}

/// Request fields and the rule they are checked by.
const FIELD_LENGTHS: [(&str, &str, Length); 9] = [
    ("SignUp", "password", rules::PASSWORD),
    ("PasswordResetConfirm", "password", rules::PASSWORD),
    ("NewCategory", "name", rules::CATEGORY_NAME),
    ("NewCategory", "description", rules::CATEGORY_DESCRIPTION),
    ("NewPost", "title", rules::POST_TITLE),
    ("NewPost", "content", rules::POST_CONTENT),
    ("PostEdit", "title", rules::POST_TITLE),
    ("PostEdit", "content", rules::POST_CONTENT),
    ("NewComment", "content", rules::COMMENT_CONTENT),
];

/// An edit gives at least one of its fields a value: `null` leaves a field as it is, so
/// `minProperties` alone would promise that `{"title": null}` is an edit (the server
/// answers it 400, as [`rules::post_edit`] says).
fn require_an_edit(components: &mut utoipa::openapi::Components) {
    let Some(edit) = components.schemas.remove("PostEdit") else {
        return;
    };
    let given = |field: &str| {
        ObjectBuilder::new()
            .property(field, ObjectBuilder::new().schema_type(Type::String))
            .required(field)
    };
    let one_given = AnyOfBuilder::new()
        .item(given("title"))
        .item(given("content"));
    let edit = AllOfBuilder::new().item(edit).item(one_given);
    components.schemas.insert("PostEdit".into(), edit.into());
}

fn property_mut<'a>(
    components: &'a mut utoipa::openapi::Components,
    schema_name: &str,
    field: &str,
) -> Option<&'a mut Object> {
    let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(schema_name) else {
        return None;
    };
    match object.properties.get_mut(field) {
        Some(RefOr::T(Schema::Object(property))) => Some(property),
        _ => None,
    }
}

/// Characters `rules` refuses in any text: controls other than tab and line breaks.
const REFUSED: &str = r"\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F";
/// Characters `rules` refuses in names besides: the invisible and bidirectional-control
/// ones of the Basic Multilingual Plane (the emoji sequences that may hold some are
/// accepted as well, but not promised here).
const HIDDEN: &str = r"\u00AD\u034F\u061C\u115F\u1160\u17B4\u17B5\u180B-\u180F\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u206F\u3164\uFE00-\uFE0F\uFEFF\uFFA0";
/// What `str::trim` removes (Unicode White_Space), which a text may not consist of.
const WHITE_SPACE: &str =
    r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
const CONTROLS: &str = r"\u0000-\u001F\u007F-\u009F";

/// The character rules of text fields, as patterns: no control characters, not blank,
/// and for names no hidden characters. The nickname is checked trimmed, so its pattern
/// carries its length too (around it, any white space).
fn text_patterns() -> Vec<(&'static str, &'static str, String)> {
    let text_char = format!("[^{REFUSED}]");
    let visible = format!("[^{CONTROLS}{WHITE_SPACE}]");
    let text = format!("^{text_char}*{visible}{text_char}*$");
    let name_char = format!("[^{REFUSED}{HIDDEN}]");
    let visible_name = format!("[^{CONTROLS}{WHITE_SPACE}{HIDDEN}]");
    let name = format!("^{name_char}*{visible_name}{name_char}*$");
    let inner = rules::NICKNAME.max - 2;
    let nickname = format!(
        "^[{WHITE_SPACE}]*{visible_name}{name_char}{{0,{inner}}}{visible_name}[{WHITE_SPACE}]*$"
    );
    vec![
        ("SignUp", "nickname", nickname),
        ("NewCategory", "name", name.clone()),
        ("NewCategory", "description", format!("^{text_char}*$")),
        ("NewPost", "title", name.clone()),
        ("PostEdit", "title", name),
        ("NewPost", "content", text.clone()),
        ("PostEdit", "content", text.clone()),
        ("NewComment", "content", text),
        ("SignUp", "password", r"^[^\u0000]*$".into()),
        ("PasswordResetConfirm", "password", r"^[^\u0000]*$".into()),
    ]
}

fn has_parameter(operation: &Operation, name: &str) -> bool {
    operation
        .parameters
        .iter()
        .flatten()
        .any(|parameter| matches!(parameter, RefOr::T(p) if p.name == name))
}

#[cfg(test)]
mod tests;
