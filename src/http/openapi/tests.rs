//! The document against the router and the rules it publishes.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::*;
use crate::http::body::MAX_BODY_BYTES;
use crate::http::consistency::positions_pattern;
use crate::http::idempotency::{KEY_MAX, KEY_PATTERN};
use crate::http::problem::PROBLEM_JSON;
use crate::http::queries::{DEFAULT_PAGE, MAX_PAGE};

fn document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap()
}

/// The schema of `operation`'s parameter `name`.
fn parameter<'a>(operation: &'a Value, name: &str) -> &'a Value {
    let found = operation["parameters"].as_array().into_iter().flatten();
    &found
        .into_iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))["schema"]
}

/// Every `(path, method, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((path.clone(), method.clone(), operation.clone()));
        }
    }
    all
}

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
        let property = &body_object(&schemas[schema])["properties"][field];
        assert_eq!(property["maxLength"], length.max, "{schema}.{field}");
        assert_eq!(property["minLength"], length.min, "{schema}.{field}");
    }
    for schema in ["SignUp", "PasswordResetRequest", "LogIn"] {
        assert_eq!(
            schemas[schema]["properties"]["email"]["maxLength"],
            rules::EMAIL_MAX,
            "{schema}.email"
        );
    }
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
            body_object(&doc["components"]["schemas"][name])["additionalProperties"],
            false,
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
    let unreachable = query["412"]["description"].as_str().unwrap();
    assert!(
        unreachable.contains("a version past its last"),
        "{unreachable}"
    );
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
        // Anonymous keys are scoped by the request itself: a different request never
        // meets the same key.
        let idempotent = method == "post" && path != "/signup";
        assert_eq!(
            operation["responses"]["422"].is_object(),
            idempotent,
            "{method} {path}"
        );
    }
}

#[test]
fn parameters_publish_the_rules_they_are_checked_by() {
    let doc = document();
    let email = parameter(
        &doc["paths"]["/check-duplicate/email/{email}"]["get"],
        "email",
    );
    assert_eq!(email["format"], "email");
    assert_eq!(email["maxLength"], rules::EMAIL_MAX);
    let verify_id = parameter(&doc["paths"]["/verify"]["get"], "verify_id");
    assert_eq!(verify_id["minLength"], 1);
    let cursor = parameter(
        &doc["paths"]["/board/posts/{postId}/comments"]["get"],
        "cursor",
    );
    assert_eq!(cursor["pattern"], projections::queries::CURSOR_PATTERN);
    let resume = parameter(&doc["paths"]["/board/live"]["get"], "Last-Event-ID");
    assert_eq!(resume["pattern"], crate::live::token::PATTERN);
    for (path, method, operation) in operations(&doc) {
        let names: Vec<_> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| p["name"].as_str().unwrap().to_string())
            .collect();
        if names.iter().any(|n| n == "Event-Position") {
            let schema = parameter(&operation, "Event-Position");
            assert_eq!(schema["pattern"], positions_pattern(), "{method} {path}");
        }
        if names.iter().any(|n| n == "Idempotency-Key") {
            let schema = parameter(&operation, "Idempotency-Key");
            assert_eq!(schema["pattern"], KEY_PATTERN, "{method} {path}");
            assert_eq!(schema["maxLength"], KEY_MAX, "{method} {path}");
        }
        if names.iter().any(|n| n == "cursor") {
            let schema = parameter(&operation, "cursor");
            assert_eq!(
                schema["pattern"],
                projections::queries::CURSOR_PATTERN,
                "{method} {path}"
            );
        }
        if names.iter().any(|n| n == "Last-Event-ID") {
            let schema = parameter(&operation, "Last-Event-ID");
            assert_eq!(
                schema["pattern"],
                crate::live::token::PATTERN,
                "{method} {path}"
            );
        }
    }
}

/// An example that its own rule refuses would teach readers, and start generators, wrong.
#[test]
fn every_parameter_example_keeps_its_rule() {
    let mut seen = BTreeSet::new();
    for (path, method, operation) in operations(&document()) {
        for declared in operation["parameters"].as_array().into_iter().flatten() {
            let name = declared["name"].as_str().unwrap();
            let schema = &declared["schema"];
            let Some(examples) = schema["examples"].as_array() else {
                continue;
            };
            seen.insert(name.to_string());
            let pattern = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
            for example in examples {
                let example = example.as_str().unwrap();
                assert!(
                    pattern.is_match(example),
                    "{method} {path} {name}: {example}"
                );
            }
        }
    }
    let named: BTreeSet<_> = parameters::EXAMPLES
        .iter()
        .map(|(n, _)| n.to_string())
        .collect();
    assert_eq!(seen, named, "an example for a parameter no operation has");
}

#[test]
fn every_operation_documents_the_answers_of_the_connection_limits() {
    for (path, method, operation) in operations(&document()) {
        let answers = &operation["responses"];
        assert!(
            answers["429"]["headers"]["Retry-After"].is_object(),
            "{method} {path}"
        );
        assert!(answers["503"].is_object(), "{method} {path}");
        if operation.get("requestBody").is_some() {
            for status in ["400", "408", "413", "415"] {
                assert!(answers[status].is_object(), "{method} {path} {status}");
            }
        }
    }
}

#[test]
fn an_edit_must_name_a_field() {
    let doc = document();
    let edit = &doc["components"]["schemas"]["PostEdit"];
    assert_eq!(body_object(edit)["minProperties"], 1);
    // Given a value, not `null`.
    let given = &edit["allOf"][1]["anyOf"];
    assert_eq!(given[0]["required"], serde_json::json!(["title"]), "{edit}");
    assert_eq!(
        given[1]["required"],
        serde_json::json!(["content"]),
        "{edit}"
    );
    assert_eq!(given[0]["properties"]["title"]["type"], "string", "{edit}");
}

/// The object a body schema describes: itself, or the first of its `allOf` (where more
/// rules are added beside it).
fn body_object(schema: &Value) -> &Value {
    schema.get("allOf").map_or(schema, |all| &all[0])
}

#[test]
fn every_link_leads_to_a_documented_operation_and_its_parameters() {
    let doc = document();
    let all = operations(&doc);
    let mut links = 0;
    for (path, method, operation) in &all {
        for (status, answer) in operation["responses"].as_object().unwrap() {
            for (name, link) in answer["links"].as_object().into_iter().flatten() {
                links += 1;
                let target = link["operationId"].as_str().unwrap();
                let (_, _, target_operation) = all
                    .iter()
                    .find(|(_, _, o)| o["operationId"] == target)
                    .unwrap_or_else(|| panic!("{method} {path} {status} {name}: no {target}"));
                for parameter in link["parameters"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|p| p.0)
                {
                    let (location, parameter) = parameter.split_once('.').unwrap();
                    let declared = target_operation["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == parameter && p["in"] == location);
                    // Authorization is the security scheme's, not a declared parameter.
                    assert!(
                        declared || parameter == "Authorization",
                        "{method} {path} {status} {name}: {target} has no {location} {parameter}"
                    );
                }
            }
        }
    }
    assert_eq!(
        links,
        links::LINKS.len(),
        "a link names an answer the document lacks"
    );
}

#[test]
fn every_live_message_names_a_documented_body() {
    let doc = document();
    let schemas = &doc["components"]["schemas"];
    let messages = schemas["LiveMessage"]["oneOf"].as_array().unwrap();
    assert_eq!(messages.len(), crate::http::schema::LIVE_EVENTS.len());
    for message in messages {
        let body = message["properties"]["data"]["contentSchema"]["$ref"]
            .as_str()
            .unwrap();
        let name = body.trim_start_matches("#/components/schemas/");
        assert!(schemas[name].is_object(), "{message}: no {name}");
    }
}
