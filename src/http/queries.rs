//! Query endpoints, served from the MySQL read models (never from the event store, so
//! they keep answering while PostgreSQL is down).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::Router;

use super::json::Json;
use uuid::Uuid;

use projections::queries;

use super::consistency::ReadAfter;
use super::problem::PROBLEM_JSON;
use super::schema::{
    Category, CategoryList, Comment, CommentPage, EventPositionHeader, Paging, Post, PostPage,
    PostSummary, Problem,
};
use super::{parse_id, ApiError};
use crate::app::App;

pub fn router() -> Router<App> {
    Router::new()
        .route("/board/categories", get(list_categories))
        .route("/board/categories/{categoryId}/posts", get(list_posts))
        .route("/board/posts/{postId}/content", get(post_content))
        .route("/board/posts/{postId}/comments", get(list_comments))
}

/// Page sizes of the lists; the OpenAPI document publishes them from here.
pub(super) const DEFAULT_PAGE: u32 = 30;
pub(super) const MAX_PAGE: u32 = 100;

/// `size` (1..=MAX_PAGE, default DEFAULT_PAGE) and `cursor` from the query string.
fn paging(params: &HashMap<String, String>) -> Result<(u32, Option<Uuid>), ApiError> {
    // As with a body's keys, a misspelt parameter is refused rather than ignored.
    if let Some(unknown) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "size" | "cursor"))
    {
        return Err(ApiError::bad_request(format!(
            "`{unknown}` is not a query parameter of this list (size, cursor)"
        )));
    }
    let size = match params.get("size") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("size must be an integer from 1 to {MAX_PAGE}"))
            })?,
    };
    let cursor = match params.get("cursor") {
        None => None,
        Some(raw) => Some(queries::decode_cursor(raw).ok_or_else(|| {
            ApiError::bad_request(format!(
                "cursor must be a nextCursor of this list ({})",
                queries::CURSOR_PATTERN
            ))
        })?),
    };
    Ok((size, cursor))
}

/// The categories, by name.
#[utoipa::path(
    get,
    path = "/board/categories",
    tag = "queries",
    params(EventPositionHeader),
    responses(
        (status = 200, description = "Every category", body = CategoryList),
    )
)]
pub(super) async fn list_categories(
    State(state): State<App>,
    read_after: ReadAfter,
) -> Result<Json<CategoryList>, ApiError> {
    read_after.caught_up(&state).await?;
    let categories = queries::categories(&state.read_pool)
        .await?
        .into_iter()
        .map(Category::from)
        .collect();
    Ok(Json(CategoryList { categories }))
}

/// A category's posts, newest first.
#[utoipa::path(
    get,
    path = "/board/categories/{categoryId}/posts",
    tag = "queries",
    params(
        ("categoryId" = Uuid, Path, description = "The category"),
        Paging,
        EventPositionHeader,
    ),
    responses(
        (status = 200, description = "One page of posts", body = PostPage),
        (status = 404, description = "No such category", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn list_posts(
    State(state): State<App>,
    read_after: ReadAfter,
    Path(category_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<PostPage>, ApiError> {
    let category_id: Uuid = parse_id("categoryId", &category_id)?;
    let (size, cursor) = paging(&params)?;
    read_after.caught_up(&state).await?;
    let page = queries::posts_in_category(&state.read_pool, category_id, cursor, size).await?;
    // Posts are only ever written in a category that exists, so a page with posts
    // answers that too; only an empty one needs to ask (an empty category, or none).
    if page.items.is_empty() && !queries::category_exists(&state.read_pool, category_id).await? {
        return Err(ApiError::not_found("no such category"));
    }
    Ok(Json(PostPage {
        posts: page.items.into_iter().map(PostSummary::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A post with its content.
#[utoipa::path(
    get,
    path = "/board/posts/{postId}/content",
    tag = "queries",
    params(("postId" = Uuid, Path, description = "The post"), EventPositionHeader),
    responses(
        (status = 200, description = "The post", body = Post),
        (status = 404, description = "No such post, or it was deleted", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn post_content(
    State(state): State<App>,
    read_after: ReadAfter,
    Path(post_id): Path<String>,
) -> Result<Json<Post>, ApiError> {
    let post_id = parse_id("postId", &post_id)?;
    read_after.caught_up(&state).await?;
    let post = queries::post(&state.read_pool, post_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such post"))?;
    Ok(Json(Post::from(post)))
}

/// A post's comments, oldest first.
#[utoipa::path(
    get,
    path = "/board/posts/{postId}/comments",
    tag = "queries",
    params(("postId" = Uuid, Path, description = "The post"), Paging, EventPositionHeader),
    responses(
        (status = 200, description = "One page of comments", body = CommentPage),
        (status = 404, description = "No such post, or it was deleted", body = Problem, content_type = PROBLEM_JSON),
    )
)]
pub(super) async fn list_comments(
    State(state): State<App>,
    read_after: ReadAfter,
    Path(post_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CommentPage>, ApiError> {
    let post_id = parse_id("postId", &post_id)?;
    let (size, cursor) = paging(&params)?;
    read_after.caught_up(&state).await?;
    // A deleted post's comments disappear with it.
    if queries::post(&state.read_pool, post_id).await?.is_none() {
        return Err(ApiError::not_found("no such post"));
    }
    let page = queries::comments(&state.read_pool, post_id, cursor, size).await?;
    Ok(Json(CommentPage {
        comments: page.items.into_iter().map(Comment::from).collect(),
        next_cursor: page.next_cursor,
    }))
}
