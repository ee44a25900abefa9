//! Access tokens (short-lived HS256 JWTs) and refresh tokens (opaque strings
//! stored only as SHA-256 hashes).
//!
//! A session's first refresh token is random; each rotation replaces it by
//! its *successor*, an HMAC-SHA256 of the presented token under a key derived
//! from the signing secret. Requests that race to rotate the same token (tabs
//! of one browser, threads of one script, on any instance) therefore all
//! compute the same successor: whichever answer a client keeps, it holds the
//! session's one current token, and a session never has sibling chains.
//! Without the secret, an old token tells nothing about its successor.
//!
//! Verification follows RFC 8725: exactly one algorithm is accepted; `exp`,
//! `iss`, `aud`, `sub` and the token type are required and checked; header
//! fields such as `jwk`, `jku`, `x5u` or `kid` are never used to pick a key.

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::time::Duration;

/// The `type` claim of access tokens.
pub const ACCESS_TOKEN_TYPE: &str = "access";
/// Tokens longer than this are refused without parsing.
const MAX_TOKEN_BYTES: usize = 4096;
/// Random bytes in a refresh token (256 bits).
const REFRESH_TOKEN_BYTES: usize = 32;

/// The claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccessClaims {
    /// User id, as a string (RFC 7519).
    pub sub: String,
    /// Session id: the login this token belongs to.
    pub sid: i64,
    /// Unique token id.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// Always [`ACCESS_TOKEN_TYPE`].
    #[serde(rename = "type")]
    pub token_type: String,
}

impl AccessClaims {
    /// The user id in `sub`.
    pub fn user_id(&self) -> Option<i64> {
        self.sub.parse().ok().filter(|id| *id > 0)
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, algorithm, claims, expiry or shape.
    #[error("invalid token")]
    Invalid,
    /// A valid token of another type (e.g. a refresh token used as access token).
    #[error("wrong token type")]
    WrongType,
}

/// A freshly minted opaque token (a refresh token, or the token of a link
/// sent by email) and the hash to store.
pub struct OpaqueToken {
    /// Sent to the client once, never stored.
    pub token: SecretString,
    /// SHA-256 (hex) of the token: what the database keeps.
    pub hash: String,
}

/// Signs and verifies tokens.
#[derive(Clone)]
pub struct TokenService {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    audience: String,
    access_ttl: Duration,
    /// Key of the refresh-token successor HMAC (derived from the secret, so
    /// every instance with the same `JWT_SECRET` derives the same successors).
    successor_key: [u8; 32],
}

/// Domain separation: the successor key is not the signing key itself.
const SUCCESSOR_KEY_LABEL: &str = "leptos-auth refresh-token successor v1";

impl TokenService {
    /// A token service with the given key, issuer, audience and lifetime.
    pub fn new(secret: &SecretString, issuer: &str, audience: &str, access_ttl: Duration) -> Self {
        let key = secret.expose_secret().as_bytes();
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 0;
        validation.validate_exp = true;
        TokenService {
            encoding: EncodingKey::from_secret(key),
            decoding: DecodingKey::from_secret(key),
            validation,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            access_ttl,
            successor_key: crate::crypto::derive_key(key, SUCCESSOR_KEY_LABEL),
        }
    }

    /// Access-token lifetime in seconds (the `expires_in` of token responses).
    pub fn access_ttl_seconds(&self) -> i64 {
        self.access_ttl.as_secs() as i64
    }

    /// Signs an access token for this user and session.
    pub fn issue_access(
        &self,
        user_id: i64,
        session_id: i64,
        now: DateTime<Utc>,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = now.timestamp();
        let claims = AccessClaims {
            sub: user_id.to_string(),
            sid: session_id,
            jti: random_token(16),
            iat,
            exp: iat + self.access_ttl_seconds(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            token_type: ACCESS_TOKEN_TYPE.to_owned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
    }

    /// Verifies signature, algorithm, expiry, issuer, audience, subject and type.
    pub fn verify_access(&self, token: &str) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES || token.split('.').count() != 3 {
            return Err(TokenError::Invalid);
        }
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| TokenError::Invalid)?;
        let claims = data.claims;
        if claims.token_type != ACCESS_TOKEN_TYPE {
            return Err(TokenError::WrongType);
        }
        if claims.user_id().is_none() {
            return Err(TokenError::Invalid);
        }
        Ok(claims)
    }

    /// A new refresh token (256 random bits) and its hash: the first of a session.
    pub fn new_refresh_token(&self) -> OpaqueToken {
        new_opaque_token()
    }

    /// The token that replaces `presented` when it is rotated, and its hash.
    /// The same for every caller that presents the same token.
    pub fn successor_refresh_token(&self, presented: &str) -> OpaqueToken {
        let bytes = crate::crypto::hmac_sha256(&self.successor_key, presented.as_bytes());
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let hash = hash_opaque_token(&token);
        OpaqueToken {
            token: SecretString::from(token),
            hash,
        }
    }
}

/// A new opaque token (256 random bits, URL-safe) and its SHA-256.
pub fn new_opaque_token() -> OpaqueToken {
    let token = random_token(REFRESH_TOKEN_BYTES);
    let hash = hash_opaque_token(&token);
    OpaqueToken {
        token: SecretString::from(token),
        hash,
    }
}

/// SHA-256 (hex) of an opaque token (refresh token or emailed link). They
/// carry 256 bits of randomness, so a fast hash is enough: there is nothing
/// to brute-force.
pub fn hash_opaque_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Whether a presented string could be one of our refresh tokens at all.
pub fn plausible_refresh_token(token: &str) -> bool {
    !token.is_empty() && token.len() <= 256
}

fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    const SECRET: &str = "unit-test-secret-unit-test-secret-0123456789";

    fn service() -> TokenService {
        TokenService::new(
            &SecretString::from(SECRET),
            "leptos-auth",
            "leptos-auth",
            Duration::from_secs(900),
        )
    }

    fn forge(header: &str, claims: &serde_json::Value, signature: &str) -> String {
        format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            signature
        )
    }

    fn valid_claims() -> serde_json::Value {
        let now = Utc::now().timestamp();
        serde_json::json!({
            "sub": "7", "sid": 3, "jti": "x", "iat": now, "exp": now + 600,
            "iss": "leptos-auth", "aud": "leptos-auth", "type": "access"
        })
    }

    fn sign(claims: &serde_json::Value, key: &[u8], alg: Algorithm) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(key))
            .expect("sign")
    }

    #[test]
    fn issued_tokens_verify_and_carry_the_claims() {
        let tokens = service();
        let now = Utc::now();
        let token = tokens.issue_access(7, 3, now).expect("sign");
        let claims = tokens.verify_access(&token).expect("valid");
        assert_eq!(claims.user_id(), Some(7));
        assert_eq!(claims.sid, 3);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.token_type, "access");
        assert_eq!(claims.iss, "leptos-auth");
        assert_eq!(claims.aud, "leptos-auth");
    }

    #[test]
    fn alg_none_in_any_casing_is_refused() {
        let tokens = service();
        for alg in ["none", "None", "NONE", "nOnE"] {
            let header = format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#);
            assert_eq!(
                tokens.verify_access(&forge(&header, &valid_claims(), "")),
                Err(TokenError::Invalid)
            );
            assert_eq!(
                tokens.verify_access(&forge(&header, &valid_claims(), "sig")),
                Err(TokenError::Invalid)
            );
        }
    }

    #[test]
    fn other_keys_and_algorithms_are_refused() {
        let tokens = service();
        let claims = valid_claims();
        assert!(tokens
            .verify_access(&sign(&claims, SECRET.as_bytes(), Algorithm::HS256))
            .is_ok());
        assert_eq!(
            tokens.verify_access(&sign(&claims, b"secret", Algorithm::HS256)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            tokens.verify_access(&sign(&claims, b"", Algorithm::HS256)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            tokens.verify_access(&sign(&claims, SECRET.as_bytes(), Algorithm::HS512)),
            Err(TokenError::Invalid)
        );
        assert_eq!(
            tokens.verify_access(&sign(&claims, SECRET.as_bytes(), Algorithm::HS384)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_tampered_payload_is_refused() {
        let tokens = service();
        let token = tokens.issue_access(7, 3, Utc::now()).expect("sign");
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        claims["sub"] = serde_json::json!("1");
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims.to_string()),
            parts[2]
        );
        assert_eq!(tokens.verify_access(&tampered), Err(TokenError::Invalid));
        let stripped = format!("{}.{}.", parts[0], parts[1]);
        assert_eq!(tokens.verify_access(&stripped), Err(TokenError::Invalid));
    }

    #[test]
    fn expired_and_misaddressed_tokens_are_refused() {
        let tokens = service();
        let key = SECRET.as_bytes();
        let mut expired = valid_claims();
        expired["exp"] = serde_json::json!(Utc::now().timestamp() - 1);
        assert_eq!(
            tokens.verify_access(&sign(&expired, key, Algorithm::HS256)),
            Err(TokenError::Invalid)
        );
        let mut wrong_iss = valid_claims();
        wrong_iss["iss"] = serde_json::json!("someone-else");
        assert_eq!(
            tokens.verify_access(&sign(&wrong_iss, key, Algorithm::HS256)),
            Err(TokenError::Invalid)
        );
        let mut wrong_aud = valid_claims();
        wrong_aud["aud"] = serde_json::json!("another-api");
        assert_eq!(
            tokens.verify_access(&sign(&wrong_aud, key, Algorithm::HS256)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn missing_required_claims_are_refused() {
        let tokens = service();
        for claim in ["exp", "iss", "aud", "sub", "type", "sid"] {
            let mut claims = valid_claims();
            claims.as_object_mut().expect("object").remove(claim);
            assert_eq!(
                tokens.verify_access(&sign(&claims, SECRET.as_bytes(), Algorithm::HS256)),
                Err(TokenError::Invalid),
                "without {claim}"
            );
        }
    }

    #[test]
    fn tokens_of_another_type_are_told_apart() {
        let tokens = service();
        let mut claims = valid_claims();
        claims["type"] = serde_json::json!("refresh");
        assert_eq!(
            tokens.verify_access(&sign(&claims, SECRET.as_bytes(), Algorithm::HS256)),
            Err(TokenError::WrongType)
        );
    }

    #[test]
    fn malformed_and_huge_tokens_are_refused() {
        let tokens = service();
        for bad in [
            "",
            "abc",
            "a.b",
            "a.b.c.d",
            "...",
            &"a".repeat(100_000),
            &format!("{}.{}.{}", "a".repeat(3000), "b".repeat(3000), "c"),
        ] {
            assert_eq!(tokens.verify_access(bad), Err(TokenError::Invalid));
        }
        let mut non_numeric = valid_claims();
        non_numeric["sub"] = serde_json::json!("alice");
        assert_eq!(
            tokens.verify_access(&sign(&non_numeric, SECRET.as_bytes(), Algorithm::HS256)),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn a_token_has_one_successor_that_only_the_secret_derives() {
        let tokens = service();
        let first = tokens.new_refresh_token();
        let presented = first.token.expose_secret();
        let a = tokens.successor_refresh_token(presented);
        let b = tokens.successor_refresh_token(presented);
        assert_eq!(a.token.expose_secret(), b.token.expose_secret());
        assert_eq!(a.hash, hash_opaque_token(a.token.expose_secret()));
        assert_ne!(a.token.expose_secret(), presented);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(a.token.expose_secret())
                .expect("b64")
                .len(),
            32
        );
        // Another token, another successor; the successor of the successor
        // is new again (a chain, not a cycle).
        let other =
            tokens.successor_refresh_token(tokens.new_refresh_token().token.expose_secret());
        assert_ne!(other.hash, a.hash);
        let next = tokens.successor_refresh_token(a.token.expose_secret());
        assert_ne!(next.hash, a.hash);
        assert_ne!(next.token.expose_secret(), presented);
        // Another secret derives other successors.
        let elsewhere = TokenService::new(
            &SecretString::from("another-secret-another-secret-0123456789"),
            "leptos-auth",
            "leptos-auth",
            Duration::from_secs(900),
        );
        assert_ne!(elsewhere.successor_refresh_token(presented).hash, a.hash);
    }

    #[test]
    fn refresh_tokens_are_random_and_stored_as_sha256() {
        let tokens = service();
        let a = tokens.new_refresh_token();
        let b = tokens.new_refresh_token();
        assert_ne!(a.token.expose_secret(), b.token.expose_secret());
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(a.token.expose_secret())
                .expect("b64")
                .len(),
            32
        );
        assert_eq!(a.hash, hash_opaque_token(a.token.expose_secret()));
        assert_eq!(a.hash.len(), 64);
        assert_ne!(a.hash, a.token.expose_secret().to_owned());
    }
}
