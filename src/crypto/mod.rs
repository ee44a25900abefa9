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

pub mod factors;
pub mod passwords;
pub mod tokens;

pub use passwords::{HashError, PasswordHasher};
pub use tokens::{hash_opaque_token, TokenService};

use chacha20poly1305::{
    aead::{Aead, AeadCore, KeyInit, OsRng, Payload},
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
        self.seal_bound(plain, b"")
    }

    /// Like [`Sealer::seal`], bound to `context` (associated data): it
    /// opens only with the same context, so sealed data moved to another
    /// row (another user's) does not open there.
    pub fn seal_bound(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        // Encryption only fails for messages beyond the cipher's limit (256 GiB).
        let sealed = self
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plain,
                    aad: context,
                },
            )
            .expect("message within the cipher's size limit");
        let mut out = Vec::with_capacity(NONCE_BYTES + sealed.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// The plain data of something [`Sealer::seal`] made with the same key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        self.open_bound(sealed, b"")
    }

    /// The plain data of something [`Sealer::seal_bound`] made with the same
    /// key and context.
    pub fn open_bound(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, OpenError> {
        if sealed.len() < NONCE_BYTES {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_BYTES);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context,
                },
            )
            .map_err(|_| OpenError)
    }
}

/// Bytes of the key id in front of data a [`DataSealer`] sealed.
const KEY_ID_BYTES: usize = 4;

/// Seals data at rest with `DATA_ENCRYPTION_KEY` and opens it with that key
/// or a retired one (`DATA_ENCRYPTION_OLD_KEYS`), for one purpose. Sealed
/// data starts with the id of its key (4 bytes of a hash of the derived
/// key: it says which key to try, and reveals nothing of it), so rotating
/// the key needs no flag day: new data is sealed with the current key,
/// older data still opens, and [`Opened::stale`] says when it should be
/// sealed again.
#[derive(Clone)]
pub struct DataSealer {
    keys: Vec<([u8; KEY_ID_BYTES], Sealer)>,
}

/// Data a [`DataSealer`] opened.
pub struct Opened {
    pub plain: Vec<u8>,
    /// Sealed with a retired key: seal it again with the current one.
    pub stale: bool,
}

impl DataSealer {
    /// A sealer for `purpose` (its own derived key) with the current key
    /// first and the retired ones after it.
    pub fn new(keys: &crate::config::DataKeys, purpose: &str) -> Self {
        let keys = std::iter::once(&keys.current)
            .chain(&keys.old)
            .map(|key| {
                let derived = derive_key(key.bytes(), purpose);
                let digest = hmac_sha256(&derived, b"key id");
                let mut id = [0u8; KEY_ID_BYTES];
                id.copy_from_slice(&digest[..KEY_ID_BYTES]);
                (id, Sealer::new(&derived))
            })
            .collect();
        DataSealer { keys }
    }

    /// `plain`, sealed with the current key and bound to `context`.
    pub fn seal(&self, plain: &[u8], context: &[u8]) -> Vec<u8> {
        let (id, sealer) = &self.keys[0];
        let mut out = id.to_vec();
        out.extend(sealer.seal_bound(plain, context));
        out
    }

    /// What [`DataSealer::seal`] sealed with any configured key and the
    /// same context.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Opened, OpenError> {
        if sealed.len() < KEY_ID_BYTES {
            return Err(OpenError);
        }
        let (id, rest) = sealed.split_at(KEY_ID_BYTES);
        let (index, (_, sealer)) = self
            .keys
            .iter()
            .enumerate()
            .find(|(_, (key_id, _))| key_id == id)
            .ok_or(OpenError)?;
        Ok(Opened {
            plain: sealer.open_bound(rest, context)?,
            stale: index > 0,
        })
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

    fn keys(current: u8, old: &[u8]) -> crate::config::DataKeys {
        let key = |byte: u8| crate::config::DataKey::parse(&hex::encode([byte; 32])).expect("key");
        crate::config::DataKeys {
            current: key(current),
            old: old.iter().map(|&byte| key(byte)).collect(),
        }
    }

    #[test]
    fn data_sealed_with_a_retired_key_still_opens_and_says_so() {
        let before = DataSealer::new(&keys(1, &[]), "purpose");
        let sealed = before.seal(b"secret", b"user 7");
        let opened = before.open(&sealed, b"user 7").expect("open");
        assert_eq!(
            (opened.plain.as_slice(), opened.stale),
            (&b"secret"[..], false)
        );
        // Another context (another user's row) does not open it.
        assert!(before.open(&sealed, b"user 8").is_err());

        // Rotated: the old key still opens, and the data is stale.
        let after = DataSealer::new(&keys(2, &[1]), "purpose");
        let opened = after
            .open(&sealed, b"user 7")
            .expect("open with the old key");
        assert_eq!(
            (opened.plain.as_slice(), opened.stale),
            (&b"secret"[..], true)
        );
        let resealed = after.seal(&opened.plain, b"user 7");
        assert!(!after.open(&resealed, b"user 7").expect("open").stale);
        // Once the old key is dropped, only the resealed data opens.
        let later = DataSealer::new(&keys(2, &[]), "purpose");
        assert!(later.open(&sealed, b"user 7").is_err());
        assert!(later.open(&resealed, b"user 7").is_ok());
        // Another purpose derives another key.
        assert!(DataSealer::new(&keys(2, &[]), "other")
            .open(&resealed, b"user 7")
            .is_err());
        assert!(later.open(&resealed[..3], b"user 7").is_err());
    }

    #[test]
    fn derived_keys_differ_by_label_and_secret() {
        assert_ne!(derive_key(b"a", "x"), derive_key(b"a", "y"));
        assert_ne!(derive_key(b"a", "x"), derive_key(b"b", "x"));
        assert_eq!(derive_key(b"a", "x"), derive_key(b"a", "x"));
    }
}
