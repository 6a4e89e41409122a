//! Request bodies, as types: described for the OpenAPI document, not deserialized (see the
//! parent module's comment).

use serde::Deserialize;
use utoipa::ToSchema;

/// `POST /signup`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct SignUp {
    #[schema(format = Email, example = "ada@example.com")]
    pub email: String,
    /// Never stored or logged; only an Argon2id hash is kept.
    #[schema(format = Password)]
    pub password: String,
    /// Trimmed before it is checked and stored.
    pub nickname: String,
}

/// `POST /auth`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct LogIn {
    pub email: String,
    #[schema(format = Password)]
    pub password: String,
}

/// `POST /board/categories`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewCategory {
    pub name: String,
    pub description: Option<String>,
}

/// `POST /board/categories/{categoryId}/posts`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewPost {
    pub title: String,
    pub content: String,
}

/// `PATCH /board/posts/{postId}`: at least one of the two.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
#[allow(dead_code)]
pub struct PostEdit {
    pub title: Option<String>,
    pub content: Option<String>,
}

/// `POST /board/posts/{postId}/comments`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct NewComment {
    pub content: String,
}
