//! Credentials: Argon2id password hashes and signed JWT access and refresh tokens.

pub mod password;
pub mod tokens;
