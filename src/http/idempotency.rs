//! `Idempotency-Key` for POST commands: executed at most once per account and key, and a
//! retry gets the first response back.
//!
//! The first request with a key reserves the id of the resource it will create. Every retry
//! runs the same command with that same id, and the aggregates treat a repeated create
//! with identical data as a no-op. So even a retry after a crash between recording the
//! events and saving the response records nothing twice. Once a 2xx response is saved it
//! is replayed as it was, marked `Idempotent-Replayed: true`. Errors are not saved: a
//! retry after one runs again (for the same id), which is what a client retrying wants.
//! A key reused by an account for a different request (other path or body) gets 422.
//!
//! Keys are scoped by who sends them: an account's keys are its own. Anonymous clients
//! (`/signup`) have no identity to scope by, and any two of them may pick the same key,
//! so their keys are scoped by the request itself ([`Scope::Anonymous`]): a key is then
//! shared only by identical requests, and a different request under the same key is just
//! another request, never a 422 that one stranger's key would cause another.
//!
//! A request claims its key for [`CLAIM_FOR`] while its command runs, holding no database
//! connection meanwhile (the command needs its own; holding one while waiting for another
//! drained the pool under load). A retry sent while the first attempt is still running
//! polls for its answer for up to [`WAIT_FOR_FIRST`], then gets 409 with `Retry-After`.
//! A claim whose request died runs out, and the next retry takes the key over. The fingerprint is
//! an HMAC under a server secret: bodies hold passwords, and a plain hash of one could be
//! brute-forced from a database dump.

use std::future::Future;

use axum::body::{to_bytes, Body};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::PgPool;
use tokio::time::Instant;
use uuid::Uuid;

use super::ApiError;

pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How long a request holds its key: far above any command's run time, and the bound on
/// how long a crashed request keeps its retries waiting.
const CLAIM_FOR: std::time::Duration = std::time::Duration::from_secs(30);
/// How long a retry waits for the first attempt's answer before it is told to come back.
const WAIT_FOR_FIRST: std::time::Duration = std::time::Duration::from_secs(10);
const WAIT_POLL: std::time::Duration = std::time::Duration::from_millis(25);
const REPLAYED: &str = "idempotent-replayed";
/// Response headers worth replaying; the rest (dates, request ids) belong to each answer.
const KEPT_HEADERS: [HeaderName; 4] = [
    header::CONTENT_TYPE,
    header::LOCATION,
    header::ETAG,
    super::consistency::EVENT_POSITION,
];

/// The longest key accepted; keys are printable ASCII without spaces.
pub const KEY_MAX: usize = 255;
/// [`KEY_MAX`] and the character rule, as a pattern for the OpenAPI document.
pub const KEY_PATTERN: &str = "^[!-~]{1,255}$";

/// Whose keys a key is compared with.
pub enum Scope {
    /// The acting account's: each account has keys of its own.
    Account(Uuid),
    /// A request without an account: keys are compared only with identical requests.
    Anonymous,
}

/// A request's claim on idempotent execution: who sent it, under which key, and what
/// exactly it asked for.
pub struct IdempotentRequest<'a> {
    pub scope: String,
    pub key: Option<&'a str>,
    pub fingerprint: Vec<u8>,
}

impl<'a> IdempotentRequest<'a> {
    /// `secret` keys the fingerprint.
    pub fn new(
        headers: &'a HeaderMap,
        scope: Scope,
        path: &str,
        body: &[u8],
        secret: &[u8],
    ) -> Result<Self, ApiError> {
        let key =
            match headers.get(IDEMPOTENCY_KEY) {
                None => None,
                Some(value) => Some(value.to_str().ok().filter(|k| valid_key(k)).ok_or_else(
                    || {
                        ApiError::bad_request(format!(
                            "Idempotency-Key must be 1 to {KEY_MAX} printable ASCII characters"
                        ))
                    },
                )?),
            };
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"POST ");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(body);
        let fingerprint = mac.finalize().into_bytes().to_vec();
        let scope = match scope {
            Scope::Account(account_id) => account_id.to_string(),
            Scope::Anonymous => format!("anonymous:{}", hex(&fingerprint)),
        };
        Ok(Self {
            scope,
            key,
            fingerprint,
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
        let waiting_since = Instant::now();
        loop {
            match self.claim(pool, key).await? {
                Claim::Answered(response) => return Ok(response),
                Claim::Claimed { resource_id, claim } => {
                    // No connection is held while the command runs: it takes its own.
                    let response = create(resource_id).await;
                    return match response {
                        Ok(response) if response.status().is_success() => {
                            self.save(pool, key, response).await
                        }
                        other => {
                            self.release(pool, key, claim).await;
                            other
                        }
                    };
                }
                Claim::Running if waiting_since.elapsed() < WAIT_FOR_FIRST => {
                    tokio::time::sleep(WAIT_POLL).await;
                }
                Claim::Running => {
                    return Err(ApiError::conflict(
                        "a request with this Idempotency-Key is still running; retry shortly",
                    )
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")))
                }
            }
        }
    }

    /// Takes the key for this request, unless it was answered, is claimed by a request
    /// still running, or was used for a different request (422).
    async fn claim(&self, pool: &PgPool, key: &str) -> Result<Claim, ApiError> {
        let claim = Uuid::new_v4();
        let claimed: Option<Uuid> = sqlx::query_scalar(
            "UPDATE idempotency_keys
                SET claimed_by = $4, claimed_until = now() + $5 * interval '1 millisecond'
              WHERE scope = $1 AND idempotency_key = $2 AND request_fingerprint = $3
                AND response_status IS NULL
                AND (claimed_until IS NULL OR claimed_until < now())
             RETURNING resource_id",
        )
        .bind(&self.scope)
        .bind(key)
        .bind(&self.fingerprint)
        .bind(claim)
        .bind(CLAIM_FOR.as_millis() as f64)
        .fetch_optional(pool)
        .await
        .map_err(ApiError::event_store)?;
        if let Some(resource_id) = claimed {
            return Ok(Claim::Claimed { resource_id, claim });
        }
        self.earlier(pool, key).await
    }

    /// Gives the key back after a failed attempt, so a retry runs at once. Best effort:
    /// a claim that is not given back runs out by itself.
    async fn release(&self, pool: &PgPool, key: &str, claim: Uuid) {
        let released = sqlx::query(
            "UPDATE idempotency_keys SET claimed_by = NULL, claimed_until = NULL
              WHERE scope = $1 AND idempotency_key = $2 AND claimed_by = $3",
        )
        .bind(&self.scope)
        .bind(key)
        .bind(claim)
        .execute(pool)
        .await;
        if let Err(error) = released {
            tracing::warn!(%error, "could not release an idempotency key; its claim runs out");
        }
    }

    /// The key's row as another request left it: its answer, or still running.
    async fn earlier(&self, pool: &PgPool, key: &str) -> Result<Claim, ApiError> {
        type Row = (
            Vec<u8>,
            Option<i16>,
            Option<serde_json::Value>,
            Option<Vec<u8>>,
        );
        let (fingerprint, status, headers, body): Row = sqlx::query_as(
            "SELECT request_fingerprint, response_status, response_headers, response_body
               FROM idempotency_keys WHERE scope = $1 AND idempotency_key = $2",
        )
        .bind(&self.scope)
        .bind(key)
        .fetch_one(pool)
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
            return Ok(Claim::Running);
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
        Ok(Claim::Answered(response))
    }

    /// Saves a 2xx answer for the retries. Saved even if the claim ran out meanwhile: a
    /// request that took the key over ran the same command on the same id, a no-op.
    async fn save(
        &self,
        pool: &PgPool,
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
                SET response_status = $3, response_headers = $4, response_body = $5,
                    claimed_by = NULL, claimed_until = NULL
              WHERE scope = $1 AND idempotency_key = $2 AND response_status IS NULL",
        )
        .bind(&self.scope)
        .bind(key)
        .bind(parts.status.as_u16() as i16)
        .bind(serde_json::Value::Object(kept))
        .bind(body.as_ref())
        .execute(pool)
        .await
        .map_err(ApiError::event_store)?;
        Ok(Response::from_parts(parts, Body::from(body)))
    }
}

/// What [`KEY_PATTERN`] says: 1 to [`KEY_MAX`] printable ASCII characters.
fn valid_key(key: &str) -> bool {
    (1..=KEY_MAX).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

enum Claim {
    /// Answered before: the saved answer, marked replayed.
    Answered(Response),
    /// This request holds the key until `CLAIM_FOR` from now.
    Claimed { resource_id: Uuid, claim: Uuid },
    /// Another request holds it and has not answered yet.
    Running,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(scope: Scope, key: &str, body: &[u8]) -> String {
        let mut headers = HeaderMap::new();
        headers.insert(IDEMPOTENCY_KEY, HeaderValue::from_str(key).unwrap());
        IdempotentRequest::new(&headers, scope, "/signup", body, b"secret")
            .unwrap()
            .scope
    }

    #[test]
    fn anonymous_keys_are_shared_only_by_identical_requests() {
        let ann = request(Scope::Anonymous, "1", b"{\"email\":\"ann@example.com\"}");
        let bob = request(Scope::Anonymous, "1", b"{\"email\":\"bob@example.com\"}");
        assert_ne!(ann, bob);
        assert_eq!(
            ann,
            request(Scope::Anonymous, "1", b"{\"email\":\"ann@example.com\"}")
        );
        let account = Uuid::now_v7();
        assert_eq!(
            request(Scope::Account(account), "1", b"{}"),
            request(Scope::Account(account), "1", b"{\"other\":1}"),
        );
    }

    #[test]
    fn the_published_key_pattern_is_the_rule() {
        let pattern = regex::Regex::new(KEY_PATTERN).unwrap();
        let long = "k".repeat(KEY_MAX);
        let too_long = "k".repeat(KEY_MAX + 1);
        for key in [
            "a",
            "~!",
            long.as_str(),
            "",
            "a b",
            "é",
            too_long.as_str(),
            "\t",
        ] {
            assert_eq!(pattern.is_match(key), valid_key(key), "{key:?}");
        }
    }
}
