//! Board commands: categories, posts and comments. Each handler parses the request, has
//! [`crate::board::BoardService`] run the command, and shapes the answer.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, patch, post};
use axum::Router;

use super::json::Json;
use uuid::Uuid;

use aggregates::AggregateKind;

use super::auth::Authenticated;
use super::body::Body;
use super::concurrency::{etag, IfMatch};
use super::consistency::{event_position, EVENT_POSITION};
use super::context::RequestContext;
use super::idempotency::{IdempotentRequest, Scope};
use super::problem::PROBLEM_JSON;
use super::schema::{
    Author, CategoryCreated, CommentCreated, IdempotencyKeyHeader, IfMatchHeader, NewCategory,
    NewComment, NewPost, Post, PostCreated, PostEdit, PostSummary, Problem,
};
use super::{parse_id, ApiError};
use crate::app::App;
use crate::board::{CategoryDraft, PostChanges, PostDraft};

pub fn router() -> Router<App> {
    Router::new()
        .route("/board/categories", post(create_category))
        .route("/board/categories/{categoryId}/posts", post(create_post))
        .route(
            "/board/posts/{postId}",
            patch(edit_post).delete(delete_post),
        )
        .route("/board/posts/{postId}/comments", post(add_comment))
        .route("/board/comments/{commentId}", delete(delete_comment))
}

/// The headers every command response carries: the resource's new version, and where the
/// read models will show it.
fn versioned(kind: AggregateKind, id: Uuid, version: u64) -> [(HeaderName, HeaderValue); 2] {
    [
        (header::ETAG, etag(version)),
        (EVENT_POSITION, event_position(kind, id, version)),
    ]
}

fn created(
    kind: AggregateKind,
    id: Uuid,
    version: u64,
    location: Option<String>,
    body: impl serde::Serialize,
) -> Response {
    let mut response = (
        StatusCode::CREATED,
        versioned(kind, id, version),
        Json(body),
    )
        .into_response();
    if let Some(location) = location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

fn no_content(kind: AggregateKind, id: Uuid, version: u64) -> Response {
    (StatusCode::NO_CONTENT, versioned(kind, id, version)).into_response()
}

/// Creates a category (admins only).
#[utoipa::path(
    post,
    path = "/board/categories",
    tag = "commands",
    security(("bearer" = [])),
    params(IdempotencyKeyHeader),
    request_body(content = NewCategory, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CategoryCreated),
        (status = 403, description = "Not an admin", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "A category with this name exists", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn create_category(
    State(state): State<App>,
    Authenticated(actor, _slot): Authenticated,
    context: RequestContext,
    headers: HeaderMap,
    body: Body<NewCategory>,
) -> Result<Response, ApiError> {
    let idempotent = IdempotentRequest::new(
        &headers,
        Scope::Account(actor.account_id),
        "/board/categories",
        body.raw(),
        state.config.signing_secret(),
    )?;
    // Before the body is read: a member is refused whatever the body says. The category
    // aggregate checks this again for any other caller.
    if !actor.is_admin() {
        return Err(ApiError::forbidden("only admins may create categories"));
    }
    let NewCategory { name, description } = body.read()?;
    let pool = state.pool.clone();
    idempotent
        .run(&pool, |category_id| async move {
            let draft = CategoryDraft {
                name,
                description: description.unwrap_or_default(),
            };
            let metadata = context.metadata(Some(actor.account_id));
            let version = state
                .board
                .create_category(actor, category_id, draft, &metadata)
                .await?;
            Ok(created(
                AggregateKind::Category,
                category_id,
                version,
                None,
                CategoryCreated { category_id },
            ))
        })
        .await
}

/// Writes a post in a category (verified accounts).
#[utoipa::path(
    post,
    path = "/board/categories/{categoryId}/posts",
    tag = "commands",
    security(("bearer" = [])),
    params(("categoryId" = Uuid, Path, description = "The category"), IdempotencyKeyHeader),
    request_body(content = NewPost, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = PostCreated,
            headers(("Location" = String, description = "The post's content"))),
        (status = 403, description = "The account's email is not verified", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such category", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn create_post(
    State(state): State<App>,
    Authenticated(actor, _slot): Authenticated,
    context: RequestContext,
    Path(category_id): Path<String>,
    headers: HeaderMap,
    body: Body<NewPost>,
) -> Result<Response, ApiError> {
    let path = format!("/board/categories/{category_id}/posts");
    let category_id = parse_id("categoryId", &category_id)?;
    let idempotent = IdempotentRequest::new(
        &headers,
        Scope::Account(actor.account_id),
        &path,
        body.raw(),
        state.config.signing_secret(),
    )?;
    let NewPost { title, content } = body.read()?;
    let board = &state.board;
    idempotent
        .run(&state.pool, |post_id| async move {
            let draft = PostDraft {
                category_id,
                title,
                content,
            };
            let metadata = context.metadata(Some(actor.account_id));
            let version = board.create_post(actor, post_id, draft, &metadata).await?;
            Ok(created(
                AggregateKind::Post,
                post_id,
                version,
                Some(format!("/board/posts/{post_id}/content")),
                PostCreated { post_id },
            ))
        })
        .await
}

/// Edits a post (its author only).
#[utoipa::path(
    patch,
    path = "/board/posts/{postId}",
    tag = "commands",
    security(("bearer" = [])),
    params(("postId" = Uuid, Path, description = "The post"), IfMatchHeader),
    request_body(content = PostEdit, content_type = "application/json"),
    responses(
        (status = 200, description = "The post as edited", body = Post),
        (status = 403, description = "Not the author", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such post, or it was deleted", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "Modified concurrently", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match does not match the current version", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn edit_post(
    State(state): State<App>,
    Authenticated(actor, _slot): Authenticated,
    context: RequestContext,
    Path(post_id): Path<String>,
    IfMatch(expected): IfMatch,
    body: Body<PostEdit>,
) -> Result<Response, ApiError> {
    let post_id = parse_id("postId", &post_id)?;
    let PostEdit { title, content } = body.read()?;
    let metadata = context.metadata(Some(actor.account_id));
    let changes = PostChanges { title, content };
    let edited = state
        .board
        .edit_post(actor, post_id, changes, expected.as_deref(), &metadata)
        .await?;
    let post = edited.post;
    let body = Post {
        summary: PostSummary {
            post_id: post_id.to_string(),
            category_id: post.category_id.to_string(),
            title: post.title,
            // The author is editing, so the account is open.
            author: Author::new(
                post.author_id.to_string(),
                Some(edited.author_nickname),
                None,
            ),
            comment_count: edited.comment_count,
            created_at: super::format_time(edited.created_at),
            updated_at: super::format_time(edited.updated_at),
        },
        content: post.content,
    };
    Ok((
        versioned(AggregateKind::Post, post_id, edited.version),
        Json(body),
    )
        .into_response())
}

/// Deletes a post (its author or an admin).
#[utoipa::path(
    delete,
    path = "/board/posts/{postId}",
    tag = "commands",
    security(("bearer" = [])),
    params(("postId" = Uuid, Path, description = "The post"), IfMatchHeader),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Neither the author nor an admin", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such post, or it was deleted", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "Modified concurrently", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match does not match the current version", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn delete_post(
    State(state): State<App>,
    Authenticated(actor, _slot): Authenticated,
    context: RequestContext,
    Path(post_id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, ApiError> {
    let post_id = parse_id("postId", &post_id)?;
    let metadata = context.metadata(Some(actor.account_id));
    let version = state
        .board
        .delete_post(actor, post_id, expected.as_deref(), &metadata)
        .await?;
    Ok(no_content(AggregateKind::Post, post_id, version))
}

/// Comments on a post (verified accounts).
#[utoipa::path(
    post,
    path = "/board/posts/{postId}/comments",
    tag = "commands",
    security(("bearer" = [])),
    params(("postId" = Uuid, Path, description = "The post"), IdempotencyKeyHeader),
    request_body(content = NewComment, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = CommentCreated),
        (status = 403, description = "The account's email is not verified", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such post, or it was deleted", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn add_comment(
    State(state): State<App>,
    Authenticated(actor, _slot): Authenticated,
    context: RequestContext,
    Path(post_id): Path<String>,
    headers: HeaderMap,
    body: Body<NewComment>,
) -> Result<Response, ApiError> {
    let path = format!("/board/posts/{post_id}/comments");
    let post_id = parse_id("postId", &post_id)?;
    let idempotent = IdempotentRequest::new(
        &headers,
        Scope::Account(actor.account_id),
        &path,
        body.raw(),
        state.config.signing_secret(),
    )?;
    let NewComment { content } = body.read()?;
    let board = &state.board;
    idempotent
        .run(&state.pool, |comment_id| async move {
            let metadata = context.metadata(Some(actor.account_id));
            let version = board
                .add_comment(actor, comment_id, post_id, content, &metadata)
                .await?;
            Ok(created(
                AggregateKind::Comment,
                comment_id,
                version,
                None,
                CommentCreated { comment_id },
            ))
        })
        .await
}

/// Deletes a comment (its author or an admin).
#[utoipa::path(
    delete,
    path = "/board/comments/{commentId}",
    tag = "commands",
    security(("bearer" = [])),
    params(("commentId" = Uuid, Path, description = "The comment"), IfMatchHeader),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = "Neither the author nor an admin", body = Problem, content_type = PROBLEM_JSON),
        (status = 404, description = "No such comment, or it was deleted", body = Problem, content_type = PROBLEM_JSON),
        (status = 409, description = "Modified concurrently", body = Problem, content_type = PROBLEM_JSON),
        (status = 412, description = "If-Match does not match the current version", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn delete_comment(
    State(state): State<App>,
    Authenticated(actor, _slot): Authenticated,
    context: RequestContext,
    Path(comment_id): Path<String>,
    IfMatch(expected): IfMatch,
) -> Result<Response, ApiError> {
    let comment_id = parse_id("commentId", &comment_id)?;
    let metadata = context.metadata(Some(actor.account_id));
    let version = state
        .board
        .delete_comment(actor, comment_id, expected.as_deref(), &metadata)
        .await?;
    Ok(no_content(AggregateKind::Comment, comment_id, version))
}
