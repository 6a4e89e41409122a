//! The rules of the headers, path and query parameters, from the constants and functions
//! the server checks them with.

use utoipa::openapi::path::{Operation, Parameter};
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::RefOr;

use aggregates::rules;

use crate::http::concurrency::IF_MATCH_PATTERN;
use crate::http::consistency::positions_pattern;
use crate::http::idempotency::{KEY_MAX, KEY_PATTERN};
use crate::http::queries::{DEFAULT_PAGE, MAX_PAGE};

/// Sets the schema of every parameter the server holds to a rule.
pub(super) fn publish_parameter_rules(operation: &mut Operation) {
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else {
            continue;
        };
        if let Some(schema) = rule_of(parameter) {
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
