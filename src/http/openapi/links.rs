//! OpenAPI links: how the answer of one operation feeds the next, as a client goes
//! (sign up, log in, create, read). Clients' generators and schemathesis' stateful tests
//! follow them.
//!
//! Verification is not among them: its id travels by mail, never in an answer.

use serde_json::{json, Value};
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::{OpenApi as Document, RefOr};

/// `(method, path, status)` of an answer, the link's name, the operation it leads to
/// (its `operationId`, the handler's name), and the link's parameters and body.
type LinkSpec = (
    (&'static str, &'static str, &'static str),
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<fn() -> Value>,
);

const ACCESS: (&str, &str) = (
    "header.Authorization",
    "Bearer {$response.body#/accessToken}",
);
const REFRESH: (&str, &str) = (
    "header.Authorization",
    "Bearer {$response.body#/refreshToken}",
);
const WRITTEN: (&str, &str) = ("header.Event-Position", "$response.header.Event-Position");
const VERSION: (&str, &str) = ("header.If-Match", "$response.header.ETag");
const NEW_POST: (&str, &str) = ("path.postId", "$response.body#/postId");
const SAME_POST: (&str, &str) = ("path.postId", "$request.path.postId");

fn credentials_of_the_sign_up() -> Value {
    json!({ "email": "$request.body#/email", "password": "$request.body#/password" })
}

pub(super) const LINKS: [LinkSpec; 22] = [
    (
        ("post", "/signup", "201"),
        "LogIn",
        "log_in_json",
        &[],
        Some(credentials_of_the_sign_up),
    ),
    (
        ("post", "/signup", "201"),
        "CheckEmail",
        "check_duplicate_email",
        &[("path.email", "$request.body#/email")],
        None,
    ),
    (
        ("post", "/auth", "200"),
        "CreateCategory",
        "create_category",
        &[ACCESS],
        None,
    ),
    (
        ("post", "/auth", "200"),
        "CreatePost",
        "create_post",
        &[ACCESS],
        None,
    ),
    (
        ("post", "/auth", "200"),
        "Refresh",
        "refresh",
        &[REFRESH],
        None,
    ),
    (
        ("post", "/auth", "200"),
        "LogOut",
        "log_out",
        &[REFRESH],
        None,
    ),
    (
        ("get", "/auth", "200"),
        "CreatePost",
        "create_post",
        &[ACCESS],
        None,
    ),
    (
        ("get", "/auth", "200"),
        "Refresh",
        "refresh",
        &[REFRESH],
        None,
    ),
    (
        ("get", "/refresh", "200"),
        "Refresh",
        "refresh",
        &[REFRESH],
        None,
    ),
    (
        ("get", "/refresh", "200"),
        "LogOut",
        "log_out",
        &[REFRESH],
        None,
    ),
    (
        ("post", "/board/categories", "201"),
        "ListPosts",
        "list_posts",
        &[("path.categoryId", "$response.body#/categoryId"), WRITTEN],
        None,
    ),
    (
        ("post", "/board/categories", "201"),
        "CreatePost",
        "create_post",
        &[("path.categoryId", "$response.body#/categoryId")],
        None,
    ),
    (
        ("post", "/board/categories/{categoryId}/posts", "201"),
        "ReadPost",
        "post_content",
        &[NEW_POST, WRITTEN],
        None,
    ),
    (
        ("post", "/board/categories/{categoryId}/posts", "201"),
        "ListPosts",
        "list_posts",
        &[("path.categoryId", "$request.path.categoryId"), WRITTEN],
        None,
    ),
    (
        ("post", "/board/categories/{categoryId}/posts", "201"),
        "AddComment",
        "add_comment",
        &[NEW_POST],
        None,
    ),
    (
        ("post", "/board/categories/{categoryId}/posts", "201"),
        "EditPost",
        "edit_post",
        &[NEW_POST, VERSION],
        None,
    ),
    (
        ("post", "/board/categories/{categoryId}/posts", "201"),
        "DeletePost",
        "delete_post",
        &[NEW_POST, VERSION],
        None,
    ),
    (
        ("patch", "/board/posts/{postId}", "200"),
        "ReadPost",
        "post_content",
        &[SAME_POST, WRITTEN],
        None,
    ),
    (
        ("patch", "/board/posts/{postId}", "200"),
        "DeletePost",
        "delete_post",
        &[SAME_POST, VERSION],
        None,
    ),
    (
        ("delete", "/board/posts/{postId}", "204"),
        "ReadPost",
        "post_content",
        &[SAME_POST, WRITTEN],
        None,
    ),
    (
        ("post", "/board/posts/{postId}/comments", "201"),
        "ListComments",
        "list_comments",
        &[SAME_POST, WRITTEN],
        None,
    ),
    (
        ("post", "/board/posts/{postId}/comments", "201"),
        "DeleteComment",
        "delete_comment",
        &[("path.commentId", "$response.body#/commentId"), VERSION],
        None,
    ),
];

/// Adds [`LINKS`] to the answers they start from. A link whose answer is not in the
/// document is a mistake here, caught by a unit test rather than left out in silence.
pub(super) fn add_links(doc: &mut Document) {
    for ((method, path, status), name, target, parameters, body) in LINKS {
        let Some(answer) = answer_mut(doc, method, path, status) else {
            continue;
        };
        let mut link = LinkBuilder::new().operation_id(target);
        for (parameter, expression) in parameters {
            link = link.parameter(*parameter, *expression);
        }
        link = link.request_body(body.map(|body| body()));
        answer
            .links
            .insert(name.to_string(), RefOr::T(link.build()));
    }
}

fn answer_mut<'a>(
    doc: &'a mut Document,
    method: &str,
    path: &str,
    status: &str,
) -> Option<&'a mut utoipa::openapi::Response> {
    let item = doc.paths.paths.get_mut(path)?;
    let operation = match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        "patch" => item.patch.as_mut(),
        "delete" => item.delete.as_mut(),
        _ => None,
    }?;
    match operation.responses.responses.get_mut(status)? {
        RefOr::T(answer) => Some(answer),
        RefOr::Ref(_) => None,
    }
}
