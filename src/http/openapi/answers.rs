//! The answers of the conventions, added to every operation they can happen to.

use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, Header, Ref, RefOr};

use super::has_parameter;
use crate::http::body::MAX_BODY_BYTES;
use crate::http::problem::PROBLEM_JSON;

/// A status, its description, and how to build its answer.
type SharedAnswer = (&'static str, String, fn(&str) -> Response);

/// Adds the shared answers to `operation`. An answer the handler documents itself (with
/// its own description) is left as it is.
pub(super) fn add_shared_answers(path: &str, operation: &mut Operation) {
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
    // Every connection may be turned away before its request is read (`MAX_CONNECTIONS`,
    // `MAX_CONNECTIONS_PER_ADDRESS`), whatever the operation.
    let busy = "the server holds as many connections as it may; retry after `Retry-After`";
    if !operational && has_parameter(operation, "Event-Position") {
        shared.push((
            "400",
            "Invalid input: a bad id, cursor or header".into(),
            problem_answer,
        ));
        shared.push((
            "412",
            "An `Event-Position` names a version the event store does not have (an aggregate \
             it never recorded, or a version past its last): the read models will never \
             show it"
                .into(),
            problem_answer,
        ));
        shared.push((
            "503",
            format!(
                "A dependency is down, the read model has not caught up with `Event-Position` \
                 in time, or too many queries wait on one already; or {busy}"
            ),
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
            format!("A dependency is down; or {busy}"),
            retry_answer,
        ));
    } else {
        let busy = format!("Turned away before the request was read: {busy}");
        shared.push(("503", busy, retry_answer));
    }
    let needs_bearer = operation.security.iter().flatten().any(|requirement| {
        serde_json::to_value(requirement).is_ok_and(|v| v.get("bearer").is_some())
    });
    let too_many = if needs_bearer {
        "Too many connections from this client's address, or too many commands of this \
         account in flight (`COMMANDS_PER_ACCOUNT`); retry after `Retry-After`"
    } else {
        "Too many connections from this client's address; retry after `Retry-After`"
    };
    shared.push(("429", too_many.into(), retry_answer));
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
    if needs_bearer {
        shared.push((
            "401",
            "Missing, malformed or expired credentials".into(),
            bearer_challenge_answer,
        ));
    }
    // Only an account's keys can meet a different request: anonymous keys are scoped by
    // the request itself (see `crate::http::idempotency`).
    if needs_bearer && has_parameter(operation, "Idempotency-Key") {
        shared.push((
            "422",
            "The `Idempotency-Key` was used by this account before for a different request".into(),
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
