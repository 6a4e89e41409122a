//! Access and refresh tokens: HS256 JWTs whose `typ` claim keeps the two apart, so an
//! access token is never accepted where a refresh token is expected, and the reverse.

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

    pub fn issue(&self, account_id: Uuid, role: Role, kind: TokenKind) -> Issued {
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
            jti: Uuid::now_v7(),
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

    #[test]
    fn an_access_token_round_trips() {
        let issuer = issuer(60);
        let id = Uuid::now_v7();
        let issued = issuer.issue(id, Role::Admin, TokenKind::Access);
        let claims = issuer.verify(&issued.token, TokenKind::Access).unwrap();
        assert_eq!((claims.sub, claims.role), (id, Role::Admin));
    }

    #[test]
    fn kinds_are_not_interchangeable() {
        let issuer = issuer(60);
        let access = issuer.issue(Uuid::now_v7(), Role::Member, TokenKind::Access);
        let refresh = issuer.issue(Uuid::now_v7(), Role::Member, TokenKind::Refresh);
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
        let issued = issuer(60).issue(Uuid::now_v7(), Role::Member, TokenKind::Access);
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
