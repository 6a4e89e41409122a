//! Access and refresh tokens: HS256 JWTs whose `typ` claim keeps the two apart, so an
//! access token is never accepted where a refresh token is expected, and the reverse.
//!
//! A refresh token also names its log-in session (`sid`) and is one of a kind (`jti`): the
//! session store (`crate::accounts::sessions`) accepts only the newest refresh token of a
//! session, which is what makes logout, rotation and replay detection possible.

use std::time::Duration;

use aggregates::Role;
use chrono::Utc;
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use thiserror::Error;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub role: Role,
    pub typ: TokenKind,
    pub iat: i64,
    pub exp: i64,
    pub jti: Uuid,
    /// The session a refresh token belongs to; access tokens have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<Uuid>,
}

/// Which session a refresh token renews, and the id of that one token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionTicket {
    pub session_id: Uuid,
    pub refresh_id: Uuid,
}

impl SessionTicket {
    /// The ticket a verified refresh token carries.
    pub fn of(claims: &Claims) -> Option<Self> {
        Some(Self {
            session_id: claims.sid?,
            refresh_id: claims.jti,
        })
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token has expired")]
    Expired,
    #[error("the token is not a {0:?} token")]
    WrongKind(TokenKind),
    #[error("the token is malformed or its signature is invalid")]
    Invalid,
}

/// An issued token and when it expires.
#[derive(Debug, Clone)]
pub struct Issued {
    pub token: String,
    pub expires_in: Duration,
}

#[derive(Clone)]
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_ttl: Duration,
    refresh_ttl: Duration,
}

impl TokenIssuer {
    pub fn new(secret: &[u8], access_ttl: Duration, refresh_ttl: Duration) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_ttl,
            refresh_ttl,
        }
    }

    pub fn refresh_ttl(&self) -> Duration {
        self.refresh_ttl
    }

    /// A short-lived access token.
    pub fn issue_access(&self, account_id: Uuid, role: Role) -> Issued {
        self.sign(account_id, role, TokenKind::Access, Uuid::now_v7(), None)
    }

    /// A refresh token of session `ticket.session_id`, with id `ticket.refresh_id`.
    pub fn issue_refresh(&self, account_id: Uuid, role: Role, ticket: SessionTicket) -> Issued {
        self.sign(
            account_id,
            role,
            TokenKind::Refresh,
            ticket.refresh_id,
            Some(ticket.session_id),
        )
    }

    fn sign(
        &self,
        account_id: Uuid,
        role: Role,
        kind: TokenKind,
        jti: Uuid,
        sid: Option<Uuid>,
    ) -> Issued {
        let ttl = match kind {
            TokenKind::Access => self.access_ttl,
            TokenKind::Refresh => self.refresh_ttl,
        };
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: account_id,
            role,
            typ: kind,
            iat: now,
            exp: now + ttl.as_secs() as i64,
            jti,
            sid,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing with an HMAC key cannot fail");
        Issued {
            token,
            expires_in: ttl,
        }
    }

    pub fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, TokenError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let claims = decode::<Claims>(token, &self.decoding, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid,
            })?
            .claims;
        if claims.typ != kind {
            return Err(TokenError::WrongKind(kind));
        }
        // Refresh tokens from before sessions existed name none; they cannot be revoked,
        // so they are refused (their holders log in again).
        if kind == TokenKind::Refresh && claims.sid.is_none() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer(access: u64) -> TokenIssuer {
        TokenIssuer::new(
            b"0123456789abcdef0123456789abcdef",
            Duration::from_secs(access),
            Duration::from_secs(3_600),
        )
    }

    fn ticket() -> SessionTicket {
        SessionTicket {
            session_id: Uuid::now_v7(),
            refresh_id: Uuid::now_v7(),
        }
    }

    #[test]
    fn an_access_token_round_trips() {
        let issuer = issuer(60);
        let id = Uuid::now_v7();
        let issued = issuer.issue_access(id, Role::Admin);
        let claims = issuer.verify(&issued.token, TokenKind::Access).unwrap();
        assert_eq!((claims.sub, claims.role), (id, Role::Admin));
    }

    #[test]
    fn a_refresh_token_carries_its_session_ticket() {
        let issuer = issuer(60);
        let ticket = ticket();
        let issued = issuer.issue_refresh(Uuid::now_v7(), Role::Member, ticket);
        let claims = issuer.verify(&issued.token, TokenKind::Refresh).unwrap();
        assert_eq!(SessionTicket::of(&claims), Some(ticket));
    }

    #[test]
    fn a_refresh_token_without_a_session_is_refused() {
        let issuer = issuer(60);
        let id = Uuid::now_v7();
        let sessionless = issuer.sign(id, Role::Member, TokenKind::Refresh, id, None);
        assert_eq!(
            issuer
                .verify(&sessionless.token, TokenKind::Refresh)
                .unwrap_err(),
            TokenError::Invalid
        );
    }

    #[test]
    fn kinds_are_not_interchangeable() {
        let issuer = issuer(60);
        let access = issuer.issue_access(Uuid::now_v7(), Role::Member);
        let refresh = issuer.issue_refresh(Uuid::now_v7(), Role::Member, ticket());
        assert_eq!(
            issuer
                .verify(&access.token, TokenKind::Refresh)
                .unwrap_err(),
            TokenError::WrongKind(TokenKind::Refresh)
        );
        assert_eq!(
            issuer
                .verify(&refresh.token, TokenKind::Access)
                .unwrap_err(),
            TokenError::WrongKind(TokenKind::Access)
        );
    }

    #[test]
    fn tampered_or_foreign_tokens_are_invalid() {
        let issued = issuer(60).issue_access(Uuid::now_v7(), Role::Member);
        let other = TokenIssuer::new(
            b"another-secret-another-secret-xx",
            Duration::from_secs(60),
            Duration::from_secs(3_600),
        );
        assert_eq!(
            other.verify(&issued.token, TokenKind::Access).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            issuer(60)
                .verify("not.a.jwt", TokenKind::Access)
                .unwrap_err(),
            TokenError::Invalid
        );
    }
}
