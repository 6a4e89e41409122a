//! The rules of the headers, path and query parameters, from the constants and functions
//! the server checks them with, and an example of each header that has a form of its own
//! (generators start from an example, and readers see what a value looks like).

use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

use aggregates::rules;

use crate::http::concurrency::IF_MATCH_PATTERN;
use crate::http::consistency::positions_pattern;
use crate::http::idempotency::{KEY_MAX, KEY_PATTERN};
use crate::http::queries::{DEFAULT_PAGE, MAX_PAGE};
use crate::live::token;

/// Examples of the values with a form of their own, each as a handed-out value looks.
pub(super) const EXAMPLES: [(&str, &str); 5] = [
    (
        "Event-Position",
        "post:0193a5c1-7e2f-7b4d-9a61-3c5e8f0d2b17:3",
    ),
    ("If-Match", "\"3\""),
    ("Idempotency-Key", "0193a5c1-92b0-7c3e-8d14-6f2a9e0b5c88"),
    ("Last-Event-ID", "812-45"),
    ("cursor", "AZOlwX4ve02aYTxejw0rFw"),
];

/// Sets the schema of every parameter the server holds to a rule.
pub(super) fn publish_parameter_rules(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else {
            continue;
        };
        if let Some(mut schema) = rule_of(parameter) {
            if let Some((_, example)) = EXAMPLES.iter().find(|(n, _)| *n == parameter.name) {
                schema = schema.examples([*example]);
            }
            parameter.schema = Some(RefOr::T(Schema::Object(schema.build())));
        }
    }
}

fn rule_of(parameter: &Parameter) -> Option<ObjectBuilder> {
    let string = ObjectBuilder::new().schema_type(Type::String);
    let rule = match parameter.name.as_str() {
        "size" => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(1))
            .maximum(Some(MAX_PAGE))
            .default(Some(DEFAULT_PAGE.into())),
        // `rules::email` is what `/check-duplicate/email/{email}` checks.
        "email" => string
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Email)))
            .max_length(Some(rules::EMAIL_MAX)),
        "verify_id" => string.min_length(Some(1)),
        "cursor" => string.pattern(Some(projections::queries::CURSOR_PATTERN)),
        "Last-Event-ID" => string.pattern(Some(token::PATTERN)),
        "Event-Position" => string.pattern(Some(positions_pattern())),
        "If-Match" => string.pattern(Some(IF_MATCH_PATTERN)),
        "Idempotency-Key" => string
            .min_length(Some(1))
            .max_length(Some(KEY_MAX))
            .pattern(Some(KEY_PATTERN)),
        _ => return None,
    };
    Some(rule)
}
