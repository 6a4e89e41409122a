//! The OpenAPI 3.1 document (`/openapi.json`) and the page that renders it (`/docs`).
//!
//! Each handler carries its own `#[utoipa::path]` (its path, parameters, body and the
//! answers particular to it). What every endpoint shares is added here, once, by
//! [`Conventions`]: the problem-document answers of the conventions (400, 401, 406, 408,
//! 413, 415, 503), and the field lengths from `aggregates::rules`.

use axum::Router;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Header, OpenApi as Document, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

use aggregates::rules::{self, Length};

use super::body::MAX_BODY_BYTES;
use super::paths::{DOCS_PATH, DOCUMENT_PATH};
use super::problem::PROBLEM_JSON;
use super::queries::{DEFAULT_PAGE, MAX_PAGE};
use super::schema;
use crate::app::App;

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
        for schema_name in ["SignUp", "PasswordResetRequest"] {
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
                publish_page_size(operation);
            }
        }
    }
}

/// Request fields and the rule they are checked by.
const FIELD_LENGTHS: [(&str, &str, Length); 10] = [
    ("SignUp", "password", rules::PASSWORD),
    ("PasswordResetConfirm", "password", rules::PASSWORD),
    ("SignUp", "nickname", rules::NICKNAME),
    ("NewCategory", "name", rules::CATEGORY_NAME),
    ("NewCategory", "description", rules::CATEGORY_DESCRIPTION),
    ("NewPost", "title", rules::POST_TITLE),
    ("NewPost", "content", rules::POST_CONTENT),
    ("PostEdit", "title", rules::POST_TITLE),
    ("PostEdit", "content", rules::POST_CONTENT),
    ("NewComment", "content", rules::COMMENT_CONTENT),
];

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

/// The bounds and default of the lists' `size`, from the constants the handlers check.
fn publish_page_size(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else {
            continue;
        };
        if parameter.name == "size" {
            let schema = ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .maximum(Some(MAX_PAGE))
                .default(Some(DEFAULT_PAGE.into()))
                .build();
            parameter.schema = Some(RefOr::T(Schema::Object(schema)));
        }
    }
}

/// A status, its description, and how to build its answer.
type SharedAnswer = (&'static str, String, fn(&str) -> Response);

/// The answers of the conventions, on every operation they can happen to. An answer the
/// handler documents itself (with its own description) is left as it is.
fn add_shared_answers(path: &str, operation: &mut Operation) {
    let plain_text = path == "/" || path == "/metrics";
    let operational = plain_text || path.starts_with("/health");
    let mut shared: Vec<SharedAnswer> = Vec::new();
    if !plain_text {
        shared.push((
            "406",
            "The `Accept` header rules out JSON".into(),
            problem_answer,
        ));
    }
    if !operational && has_parameter(operation, "Event-Position") {
        shared.push((
            "400",
            "Invalid input: a bad id, cursor or header, or an `Event-Position` the event store \
             does not have (an aggregate it never recorded, or a version past its last)"
                .into(),
            problem_answer,
        ));
        shared.push((
            "503",
            "A dependency is down, the read model has not caught up with `Event-Position` in \
             time, or too many queries wait on one already; retry after `Retry-After`"
                .into(),
            retry_answer,
        ));
    } else if !operational {
        shared.push((
            "400",
            "Invalid input: a bad field, id, cursor or header".into(),
            problem_answer,
        ));
        shared.push((
            "503",
            "A dependency is down; retry after `Retry-After`".into(),
            retry_answer,
        ));
    }
    if operation.request_body.is_some() {
        let too_large = format!("The body is over {MAX_BODY_BYTES} bytes");
        shared.push(("413", too_large, problem_answer));
        shared.push((
            "408",
            "The body did not arrive within `BODY_READ_TIMEOUT`".into(),
            problem_answer,
        ));
        shared.push(("415", "The body is not JSON".into(), problem_answer));
    }
    let needs_bearer = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement).is_ok_and(|v| v.get("bearer").is_some())
    });
    if needs_bearer {
        shared.push((
            "401",
            "Missing, malformed or expired credentials".into(),
            bearer_challenge_answer,
        ));
    }
    if has_parameter(operation, "Idempotency-Key") {
        shared.push((
            "422",
            "The `Idempotency-Key` was used before for a different request".into(),
            problem_answer,
        ));
    }
    if is_command(path, operation) {
        add_version_headers(operation);
    }
    for (status, description, answer) in shared {
        operation
            .responses
            .responses
            .entry(status.to_string())
            .or_insert_with(|| RefOr::T(answer(&description)));
    }
}

/// Commands: the operations that record events.
fn is_command(path: &str, operation: &Operation) -> bool {
    let tagged = |tag: &str| operation.tags.iter().flatten().any(|t| t == tag);
    tagged("commands") || path == "/signup"
}

fn has_parameter(operation: &Operation, name: &str) -> bool {
    operation
        .parameters
        .iter()
        .flatten()
        .any(|parameter| matches!(parameter, RefOr::T(p) if p.name == name))
}

/// Every successful command answer names the resource's new version and where the read
/// models will show it.
fn add_version_headers(operation: &mut Operation) {
    for (status, answer) in operation.responses.responses.iter_mut() {
        let RefOr::T(answer) = answer else { continue };
        if status.starts_with('2') {
            answer.headers.insert(
                "ETag".to_string(),
                string_header("The resource's new version; send it as `If-Match`").into(),
            );
            answer.headers.insert(
                "Event-Position".to_string(),
                string_header("Send it back on a query to read this write").into(),
            );
        }
    }
}

fn problem_answer(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            PROBLEM_JSON,
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

fn string_header(description: &str) -> Header {
    let mut header = Header::new(Object::with_type(SchemaType::Type(Type::String)));
    header.description = Some(description.to_string());
    header
}

fn retry_answer(description: &str) -> Response {
    let mut answer = problem_answer(description);
    answer.headers.insert(
        "Retry-After".to_string(),
        string_header("Seconds to wait before retrying").into(),
    );
    answer
}

fn bearer_challenge_answer(description: &str) -> Response {
    let mut answer = problem_answer(description);
    answer.headers.insert(
        "WWW-Authenticate".to_string(),
        string_header("How to authenticate").into(),
    );
    answer
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    /// Routes that serve pages for people: the documentation itself, and the live page.
    const UNDOCUMENTED: [&str; 6] = [
        "/docs",
        "/docs/",
        "/docs/{*rest}",
        DOCUMENT_PATH,
        "/live",
        "/live/page.js",
    ];

    /// `(METHOD, path)` of every route the router serves. axum has no API to list
    /// routes, so this reads the router's `Debug` output: each route id maps to a path,
    /// and to a method router whose `allow_header` names its methods. If axum changes
    /// that output, this finds nothing and the tests below fail rather than pass.
    fn served_routes() -> BTreeSet<(String, String)> {
        let debug = format!("{:?}", crate::http::routes(true));
        let main = debug.split("fallback_router").next().unwrap_or_default();
        let mut paths = BTreeMap::new();
        let mut methods = BTreeMap::new();
        for entry in main.split("RouteId(").skip(1) {
            let Some((id, rest)) = entry.split_once("): ") else {
                continue;
            };
            if let Some(path) = rest.strip_prefix('"') {
                paths.insert(
                    id.to_string(),
                    path.split('"').next().unwrap_or("").to_string(),
                );
            } else if let Some((_, allowed)) = rest.split_once("allow_header: Bytes(b\"") {
                methods.insert(
                    id.to_string(),
                    allowed.split('"').next().unwrap_or("").to_string(),
                );
            }
        }
        let mut routes = BTreeSet::new();
        for (id, path) in paths {
            for method in methods
                .get(&id)
                .map(String::as_str)
                .unwrap_or("")
                .split(',')
            {
                if !method.is_empty() && method != "HEAD" {
                    routes.insert((method.to_string(), path.clone()));
                }
            }
        }
        routes
    }

    fn documented_routes() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut routes = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                routes.insert((method.to_uppercase(), path.clone()));
            }
        }
        routes
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_is_served() {
        let served: BTreeSet<_> = served_routes()
            .into_iter()
            .filter(|(_, path)| !UNDOCUMENTED.contains(&path.as_str()))
            .collect();
        assert!(
            served.len() >= 20,
            "reading the router's routes found only {served:?}; has axum's Debug output changed?"
        );
        let documented = documented_routes();
        let missing: Vec<_> = served.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes missing from the OpenAPI document: {missing:?}"
        );
        let phantom: Vec<_> = documented.difference(&served).collect();
        assert!(phantom.is_empty(), "documented but not served: {phantom:?}");
    }

    #[test]
    fn the_document_publishes_the_enforced_field_lengths() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let schemas = &doc["components"]["schemas"];
        for (schema, field, length) in FIELD_LENGTHS {
            let property = &schemas[schema]["properties"][field];
            assert_eq!(property["maxLength"], length.max, "{schema}.{field}");
            assert_eq!(property["minLength"], length.min, "{schema}.{field}");
        }
        assert_eq!(
            schemas["SignUp"]["properties"]["email"]["maxLength"],
            rules::EMAIL_MAX
        );
    }

    #[test]
    fn the_document_publishes_the_enforced_page_size_and_body_limit() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let operation = &doc["paths"]["/board/posts/{postId}/comments"]["get"];
        let size = operation["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "size")
            .expect("the lists document their page size");
        assert_eq!(size["schema"]["minimum"], 1);
        assert_eq!(size["schema"]["maximum"], MAX_PAGE);
        assert_eq!(size["schema"]["default"], DEFAULT_PAGE);
        let too_large = &doc["paths"]["/board/categories"]["post"]["responses"]["413"];
        let description = too_large["description"].as_str().unwrap();
        assert!(
            description.contains(&MAX_BODY_BYTES.to_string()),
            "{description}"
        );
    }

    #[test]
    fn request_bodies_reject_unknown_keys_and_errors_are_problem_documents() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for name in [
            "SignUp",
            "LogIn",
            "PasswordResetRequest",
            "PasswordResetConfirm",
            "CloseAccount",
            "NewCategory",
            "NewPost",
            "PostEdit",
            "NewComment",
        ] {
            assert_eq!(
                doc["components"]["schemas"][name]["additionalProperties"], false,
                "{name}"
            );
        }
        let answer = &doc["paths"]["/board/categories"]["post"]["responses"]["401"];
        assert!(answer["content"][PROBLEM_JSON]["schema"]["$ref"]
            .as_str()
            .unwrap()
            .ends_with("/Problem"));
    }

    #[test]
    fn queries_document_the_answers_of_event_position() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let query = &doc["paths"]["/board/categories"]["get"]["responses"];
        let bad = query["400"]["description"].as_str().unwrap();
        assert!(bad.contains("a version past its last"), "{bad}");
        let busy = query["503"]["description"].as_str().unwrap();
        assert!(busy.contains("too many queries wait"), "{busy}");
        assert!(query["503"]["headers"]["Retry-After"].is_object());
        let command = &doc["paths"]["/board/categories"]["post"]["responses"];
        let busy = command["503"]["description"].as_str().unwrap();
        assert!(!busy.contains("Event-Position"), "{busy}");
    }

    #[test]
    fn every_command_answer_carries_its_version_and_event_position() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let commands = [
            ("/signup", "post", "201"),
            ("/board/categories", "post", "201"),
            ("/board/categories/{categoryId}/posts", "post", "201"),
            ("/board/posts/{postId}", "patch", "200"),
            ("/board/posts/{postId}", "delete", "204"),
            ("/board/posts/{postId}/comments", "post", "201"),
            ("/board/comments/{commentId}", "delete", "204"),
        ];
        for (path, method, status) in commands {
            let operation = &doc["paths"][path][method];
            let headers = &operation["responses"][status]["headers"];
            assert!(headers["ETag"].is_object(), "{method} {path}");
            assert!(headers["Event-Position"].is_object(), "{method} {path}");
            let idempotent = method == "post";
            assert_eq!(
                operation["responses"]["422"].is_object(),
                idempotent,
                "{method} {path}"
            );
        }
    }
}
