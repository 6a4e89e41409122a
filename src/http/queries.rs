//! Query endpoints, served from the MySQL read models (never from the event store, so
//! they keep answering while PostgreSQL is down).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use uuid::Uuid;

use projections::queries::{self, CommentRow, PostRow};

use super::consistency::CaughtUp;
use super::{format_time, parse_id, ApiError, AppState};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/board/categories", get(list_categories))
        .route("/board/categories/{category_id}/posts", get(list_posts))
        .route("/board/posts/{post_id}/content", get(post_content))
        .route("/board/posts/{post_id}/comments", get(list_comments))
}

const DEFAULT_PAGE: u32 = 30;
const MAX_PAGE: u32 = 100;

/// `size` (1..100, default 30) and `cursor` from the query string.
fn paging(params: &HashMap<String, String>) -> Result<(u32, Option<String>), ApiError> {
    let size = match params.get("size") {
        None => DEFAULT_PAGE,
        Some(raw) => raw
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| ApiError::bad_request("size must be an integer from 1 to 100"))?,
    };
    let cursor = match params.get("cursor") {
        None => None,
        Some(raw) => Some(
            queries::decode_cursor(raw)
                .ok_or_else(|| ApiError::bad_request("cursor is not one this API handed out"))?,
        ),
    };
    Ok((size, cursor))
}

async fn list_categories(
    State(state): State<AppState>,
    _: CaughtUp,
) -> Result<Json<Value>, ApiError> {
    let categories: Vec<Value> = queries::categories(&state.read_pool)
        .await?
        .into_iter()
        .map(|c| {
            json!({
                "categoryId": c.category_id,
                "name": c.name,
                "description": c.description,
                "postCount": c.post_count,
                "createdAt": format_time(c.created_at),
            })
        })
        .collect();
    Ok(Json(json!({ "categories": categories })))
}

fn author(id: &str, nickname: &Option<String>) -> Value {
    json!({ "accountId": id, "nickname": nickname })
}

fn post_summary(p: &PostRow) -> Value {
    json!({
        "postId": p.post_id,
        "categoryId": p.category_id,
        "title": p.title,
        "author": author(&p.author_id, &p.nickname),
        "commentCount": p.comment_count,
        "createdAt": format_time(p.created_at),
        "updatedAt": format_time(p.updated_at),
    })
}

async fn list_posts(
    State(state): State<AppState>,
    _: CaughtUp,
    Path(category_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let category_id: Uuid = parse_id("categoryId", &category_id)?;
    let (size, cursor) = paging(&params)?;
    if !queries::category_exists(&state.read_pool, category_id).await? {
        return Err(ApiError::not_found("no such category"));
    }
    let page =
        queries::posts_in_category(&state.read_pool, category_id, cursor.as_deref(), size).await?;
    let posts: Vec<Value> = page.items.iter().map(post_summary).collect();
    Ok(Json(
        json!({ "posts": posts, "nextCursor": page.next_cursor }),
    ))
}

async fn post_content(
    State(state): State<AppState>,
    _: CaughtUp,
    Path(post_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let post_id = parse_id("postId", &post_id)?;
    let post = queries::post(&state.read_pool, post_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such post"))?;
    let mut body = post_summary(&post);
    body["content"] = json!(post.content);
    Ok(Json(body))
}

fn comment(c: &CommentRow) -> Value {
    json!({
        "commentId": c.comment_id,
        "postId": c.post_id,
        "content": c.content,
        "author": author(&c.author_id, &c.nickname),
        "createdAt": format_time(c.created_at),
    })
}

async fn list_comments(
    State(state): State<AppState>,
    _: CaughtUp,
    Path(post_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let post_id = parse_id("postId", &post_id)?;
    let (size, cursor) = paging(&params)?;
    // A deleted post's comments disappear with it.
    if queries::post(&state.read_pool, post_id).await?.is_none() {
        return Err(ApiError::not_found("no such post"));
    }
    let page = queries::comments(&state.read_pool, post_id, cursor.as_deref(), size).await?;
    let comments: Vec<Value> = page.items.iter().map(comment).collect();
    Ok(Json(
        json!({ "comments": comments, "nextCursor": page.next_cursor }),
    ))
}
