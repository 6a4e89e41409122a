//! `Idempotency-Key` for POST commands: executed at most once per account and key, and a
//! retry gets the first response back.
//!
//! The first request with a key reserves the id of the resource it will create. Every retry
//! runs the same command with that same id, and the aggregates treat a repeated create
//! with identical data as a no-op. So even a retry after a crash between recording the
//! events and saving the response records nothing twice. Once a 2xx response is saved it
//! is replayed as it was, marked `Idempotent-Replayed: true`. Errors are not saved: a
//! retry after one runs again (for the same id), which is what a client retrying wants.
//! A key reused for a different request (other path or body) gets 422.
//!
//! Requests with the same key queue on the key's row lock, so a retry sent while the
//! first attempt is still running waits for it and gets its response. The fingerprint is
//! an HMAC under a server secret: bodies hold passwords, and a plain hash of one could be
//! brute-forced from a database dump.

use std::future::Future;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
const REPLAYED: &str = "idempotent-replayed";
/// Response headers worth replaying; the rest (dates, request ids) belong to each answer.
const KEPT_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    super::consistency::EVENT_POSITION,
];

/// A request's claim on idempotent execution: who sent it, under which key, and what
/// exactly it asked for.
pub struct IdempotentRequest<'a> {
    pub scope: String,
    pub key: Option<&'a str>,
    pub fingerprint: Vec<u8>,
}

impl<'a> IdempotentRequest<'a> {
    /// `scope` is the acting account's id, or `anonymous` before log-in; `secret` keys the
    /// fingerprint.
    pub fn new(
        headers: &'a HeaderMap,
        scope: String,
        path: &str,
        body: &[u8],
        secret: &[u8],
    ) -> Result<Self, ApiError> {
        let key = match headers.get(IDEMPOTENCY_KEY) {
            None => None,
            Some(value) => {
                let key = value.to_str().ok().filter(|k| {
                    (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic())
                });
                Some(key.ok_or_else(|| {
                    ApiError::bad_request(
                        "Idempotency-Key must be 1 to 255 printable ASCII characters",
                    )
                })?)
            }
        };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"POST ");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(body);
        Ok(Self {
            scope,
            key,
            fingerprint: mac.finalize().into_bytes().to_vec(),
        })
    }

    /// Runs `create(id)` at most once per key, with the id reserved for that key.
    pub async fn run<F, Fut>(self, pool: &PgPool, create: F) -> Result<Response, ApiError>
    where
        F: FnOnce(Uuid) -> Fut,
        Fut: Future<Output = Result<Response, ApiError>>,
    {
        let Some(key) = self.key else {
            return create(Uuid::now_v7()).await;
        };
        // The reservation commits on its own: whatever happens next, every retry of this
        // key creates (at most) this one resource.
        sqlx::query(
            "INSERT INTO idempotency_keys (scope, idempotency_key, request_fingerprint, resource_id)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (scope, idempotency_key) DO NOTHING",
        )
        .bind(&self.scope)
        .bind(key)
        .bind(&self.fingerprint)
        .bind(Uuid::now_v7())
        .execute(pool)
        .await
        .map_err(ApiError::event_store)?;
        // Held until the response is saved: a concurrent retry waits here for it.
        let mut lock = pool.begin().await.map_err(ApiError::event_store)?;
        let resource_id = match self.earlier(&mut lock, key).await? {
            Earlier::Answered(response) => return Ok(response),
            Earlier::Unanswered(id) => id,
        };
        let response = create(resource_id).await?;
        if !response.status().is_success() {
            return Ok(response);
        }
        let response = self.save(&mut lock, key, response).await?;
        lock.commit().await.map_err(ApiError::event_store)?;
        Ok(response)
    }

    async fn earlier(&self, conn: &mut PgConnection, key: &str) -> Result<Earlier, ApiError> {
        type Row = (
            Vec<u8>,
            Uuid,
            Option<i16>,
            Option<serde_json::Value>,
            Option<Vec<u8>>,
        );
        let (fingerprint, resource_id, status, headers, body): Row = sqlx::query_as(
            "SELECT request_fingerprint, resource_id, response_status, response_headers, response_body
               FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2
                FOR UPDATE",
        )
        .bind(&self.scope)
        .bind(key)
        .fetch_one(&mut *conn)
        .await
        .map_err(ApiError::event_store)?;
        if fingerprint != self.fingerprint {
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency-key-reused",
                "this Idempotency-Key was already used for a different request",
            ));
        }
        let (Some(status), Some(body)) = (status, body) else {
            return Ok(Earlier::Unanswered(resource_id));
        };
        let mut response = Response::new(Body::from(body));
        *response.status_mut() =
            StatusCode::from_u16(status as u16).map_err(|e| ApiError::internal(&e))?;
        if let Some(serde_json::Value::Object(saved)) = headers {
            for (name, value) in saved {
                if let (Ok(name), Some(Ok(value))) = (
                    HeaderName::try_from(name.as_str()),
                    value.as_str().map(HeaderValue::from_str),
                ) {
                    response.headers_mut().insert(name, value);
                }
            }
        }
        response
            .headers_mut()
            .insert(REPLAYED, HeaderValue::from_static("true"));
        Ok(Earlier::Answered(response))
    }

    async fn save(
        &self,
        conn: &mut PgConnection,
        key: &str,
        response: Response,
    ) -> Result<Response, ApiError> {
        let (parts, body) = response.into_parts();
        let body = to_bytes(body, super::body::MAX_BODY_BYTES)
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let kept: serde_json::Map<String, serde_json::Value> = KEPT_HEADERS
            .iter()
            .filter_map(|name| {
                let value = parts.headers.get(name)?.to_str().ok()?;
                Some((name.to_string(), value.into()))
            })
            .collect();
        sqlx::query(
            "UPDATE idempotency_keys
                SET response_status = $3, response_headers = $4, response_body = $5
              WHERE scope = $1 AND idempotency_key = $2",
        )
        .bind(&self.scope)
        .bind(key)
        .bind(parts.status.as_u16() as i16)
        .bind(serde_json::Value::Object(kept))
        .bind(body.as_ref())
        .execute(&mut *conn)
        .await
        .map_err(ApiError::event_store)?;
        Ok(Response::from_parts(parts, Body::from(body)))
    }
}

enum Earlier {
    Answered(Response),
    Unanswered(Uuid),
}
