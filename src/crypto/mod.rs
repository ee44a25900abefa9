//! Cryptography the services build on; infrastructure, not business rules
//! (the rules that use it, such as who may sign in or when a session ends,
//! live in `services`):
//! - [`passwords`]: Argon2id hashing and verification on threads of their own;
//! - [`tokens`]: access JWTs, opaque refresh and link tokens and their hashes;
//! - here: keys derived from a configured secret, and sealing
//!   (authenticated encryption) of data that must not be readable from the
//!   database alone.
//!
//! Sealed data is XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): a
//! random 192-bit nonce per message (no counter to keep across instances),
//! stored in front of the ciphertext. Opening fails on any change to the
//! bytes, and with another key.

pub mod passwords;
pub mod tokens;

pub use passwords::{HashError, PasswordHasher};
pub use tokens::{hash_opaque_token, TokenService};

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng},
    XChaCha20Poly1305, XNonce,
};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Bytes of the nonce in front of every sealed message.
const NONCE_BYTES: usize = 24;

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// A 256-bit key for one purpose, derived from a configured secret: keys for
/// different purposes (`label`) are independent, and none is the secret.
pub fn derive_key(secret: &[u8], label: &str) -> [u8; 32] {
    hmac_sha256(secret, label.as_bytes())
}

/// Seals and opens data with one key.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

/// Sealed data could not be opened: changed, truncated, or sealed with
/// another key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed data could not be opened (changed, or sealed with another key)")]
pub struct OpenError;

impl Sealer {
    /// A sealer with this key.
    pub fn new(key: &[u8; 32]) -> Self {
        Sealer {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// Nonce and ciphertext (with its tag) of `plain`.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption only fails for messages beyond the cipher's limit (256 GiB).
        let sealed = self
            .cipher
            .encrypt(&nonce, plain)
            .expect("message within the cipher's size limit");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain data of something [`Sealer::seal`] made with the same key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_BYTES {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| OpenError)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_data_opens_with_its_key_only() {
        let sealer = Sealer::new(&derive_key(b"secret", "purpose"));
        let sealed = sealer.seal(b"https://example.com/reset?token=abc");
        assert!(!sealed.windows(5).any(|w| w == b"token" || w == b"https"));
        assert_eq!(
            sealer.open(&sealed).expect("open"),
            b"https://example.com/reset?token=abc"
        );
        // Another purpose, another key.
        let other = Sealer::new(&derive_key(b"secret", "another purpose"));
        assert_eq!(other.open(&sealed), Err(OpenError));
        // Any changed byte, or a cut.
        let mut changed = sealed.clone();
        let last = changed.len() - 1;
        changed[last] ^= 1;
        assert_eq!(sealer.open(&changed), Err(OpenError));
        assert_eq!(sealer.open(&sealed[..10]), Err(OpenError));
        // A fresh nonce every time.
        assert_ne!(sealer.seal(b"same"), sealer.seal(b"same"));
    }

    #[test]
    fn derived_keys_differ_by_label_and_secret() {
        assert_ne!(derive_key(b"a", "x"), derive_key(b"a", "y"));
        assert_ne!(derive_key(b"a", "x"), derive_key(b"b", "x"));
        assert_eq!(derive_key(b"a", "x"), derive_key(b"a", "x"));
    }
}
