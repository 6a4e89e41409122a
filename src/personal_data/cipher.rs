//! Sealing one field: AES-256-GCM-SIV under the account's key, with the field's name as
//! associated data (a sealed nickname cannot be passed off as the email), written as
//! `pd1:` and the URL-safe base64 of the 96-bit nonce and the ciphertext.
//!
//! GCM-SIV rather than plain GCM because the nonce is random: should two ever repeat
//! under one key, GCM-SIV reveals only that the two plaintexts were equal, where GCM
//! would give the key's authentication away.

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use thiserror::Error;

/// What every sealed value starts with; the version of this format.
pub const SEALED_PREFIX: &str = "pd1:";
const NONCE_BYTES: usize = 12;

/// One account's key. Kept in `personal_data_keys` and nowhere else; deleting it erases
/// every value sealed with it.
#[derive(Clone)]
pub struct DataKey([u8; 32]);

impl DataKey {
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut key);
        Self(key)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new_from_slice(&self.0).expect("a 32-byte key")
    }
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("not a sealed value")]
    NotSealed,
    #[error("the sealed value is damaged or was sealed with another key or for another field")]
    Damaged,
}

/// Whether `value` is sealed (rather than plain text written before sealing existed).
pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_PREFIX)
}

pub fn seal(key: &DataKey, field: &str, plaintext: &str) -> String {
    let mut nonce = [0u8; NONCE_BYTES];
    rand::thread_rng().fill_bytes(&mut nonce);
    let sealed = key
        .cipher()
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: field.as_bytes(),
            },
        )
        .expect("encrypting a short string in memory cannot fail");
    let mut bytes = nonce.to_vec();
    bytes.extend_from_slice(&sealed);
    format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

pub fn open(key: &DataKey, field: &str, sealed: &str) -> Result<String, OpenError> {
    let encoded = sealed
        .strip_prefix(SEALED_PREFIX)
        .ok_or(OpenError::NotSealed)?;
    let bytes = URL_SAFE_NO_PAD
        .decode(encoded)
        .map_err(|_| OpenError::Damaged)?;
    if bytes.len() < NONCE_BYTES {
        return Err(OpenError::Damaged);
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_BYTES);
    let plaintext = key
        .cipher()
        .decrypt(
            Nonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: field.as_bytes(),
            },
        )
        .map_err(|_| OpenError::Damaged)?;
    String::from_utf8(plaintext).map_err(|_| OpenError::Damaged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_field_only() {
        let key = DataKey::generate();
        let sealed = seal(&key, "email", "ann@example.com");
        assert!(is_sealed(&sealed));
        assert!(!sealed.contains("ann"), "{sealed}");
        assert_eq!(open(&key, "email", &sealed).unwrap(), "ann@example.com");
        assert_eq!(
            open(&key, "nickname", &sealed),
            Err(OpenError::Damaged),
            "sealed for another field"
        );
        assert_eq!(
            open(&DataKey::generate(), "email", &sealed),
            Err(OpenError::Damaged),
            "another key"
        );
        assert_eq!(
            open(&key, "email", "ann@example.com"),
            Err(OpenError::NotSealed)
        );
    }

    #[test]
    fn sealing_twice_gives_two_different_values() {
        let key = DataKey::generate();
        assert_ne!(seal(&key, "email", "a@b.co"), seal(&key, "email", "a@b.co"));
    }
}
