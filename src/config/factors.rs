//! Second factors and sensitive actions: the key that seals data at rest
//! (`DATA_ENCRYPTION_KEY`, with the retired keys still needed to open older
//! data), the TOTP issuer, the step-up window and the admin requirement.

use super::setting::{declare, verbatim, Env, Setting, MASK};
use super::{AppEnv, ConfigError};
use secrecy::{ExposeSecret, SecretBox};
use std::{fmt, path::Path, time::Duration};

/// Bytes of a data-encryption key (XChaCha20-Poly1305 takes 256 bits).
pub const DATA_KEY_BYTES: usize = 32;

/// A 256-bit data-encryption key.
pub struct DataKey(SecretBox<[u8; DATA_KEY_BYTES]>);

impl DataKey {
    /// The key's bytes.
    pub fn bytes(&self) -> &[u8; DATA_KEY_BYTES] {
        self.0.expose_secret()
    }

    /// A key from its text: 64 hex digits, or base64 (standard or URL-safe,
    /// padded or not) of 32 bytes.
    pub fn parse(raw: &str) -> Result<DataKey, String> {
        use base64::Engine;
        let raw = raw.trim();
        let decoded =
            if raw.len() == 2 * DATA_KEY_BYTES && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
                hex::decode(raw).ok()
            } else {
                let unpadded = raw.trim_end_matches('=');
                base64::engine::general_purpose::STANDARD_NO_PAD
                    .decode(unpadded)
                    .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
                    .ok()
            };
        let bytes: [u8; DATA_KEY_BYTES] = decoded
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "must be {DATA_KEY_BYTES} random bytes as 64 hex digits or base64 \
                     (e.g. `openssl rand -base64 32`)"
                )
            })?;
        Ok(DataKey(SecretBox::new(Box::new(bytes))))
    }
}

impl Clone for DataKey {
    fn clone(&self) -> Self {
        DataKey(SecretBox::new(Box::new(*self.bytes())))
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(***)")
    }
}

impl PartialEq for DataKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes() == other.bytes()
    }
}

/// The retired keys, newest first.
fn parse_old_keys(raw: &str) -> Result<Vec<DataKey>, String> {
    raw.split(',')
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .enumerate()
        .map(|(n, key)| DataKey::parse(key).map_err(|e| format!("key {}: {e}", n + 1)))
        .collect()
}

fn the_project() -> String {
    "leptos-auth".to_owned()
}

declare! {
    /// 256-bit key that seals TOTP secrets at rest (64 hex digits or
    /// base64); unset in development, one is generated into
    /// `DATA_DIR/data-encryption-key` (see [`data_keys`]).
    DATA_ENCRYPTION_KEY: DataKey = Setting::text(None, DataKey::parse, |_| MASK.to_owned());
    /// Retired data-encryption keys, comma-separated, newest first: data
    /// sealed with them still opens (and is sealed again with the current
    /// key by `leptos-auth reseal`).
    DATA_ENCRYPTION_OLD_KEYS: Vec<DataKey> = Setting::text(
        Some(Vec::new),
        parse_old_keys,
        |keys| if keys.is_empty() { String::new() } else { MASK.to_owned() },
    );
    /// The issuer name authenticator apps show next to the account.
    TOTP_ISSUER: String = Setting::text(
        Some(the_project),
        |raw| {
            if raw.contains(':') {
                Err("must not contain ':' (authenticator apps read it as a separator)".to_owned())
            } else {
                verbatim(raw)
            }
        },
        String::clone,
    );
    /// Minutes after a sign-in or a confirmation during which sensitive
    /// actions need no new confirmation.
    STEP_UP_MINUTES: Duration = Setting::minutes(10, 1..=24 * 60);
    /// Whether admins must turn on two-factor authentication before any
    /// admin page or endpoint works for them.
    REQUIRE_2FA_FOR_ADMINS: bool = Setting::flag(false);
}

/// The current data-encryption key and the retired ones.
#[derive(Debug, Clone, PartialEq)]
pub struct DataKeys {
    /// Seals everything new.
    pub current: DataKey,
    /// Still open what they sealed.
    pub old: Vec<DataKey>,
}

/// Second factors and step-up.
#[derive(Debug, Clone, PartialEq)]
pub struct FactorSettings {
    /// `DATA_ENCRYPTION_KEY` and `DATA_ENCRYPTION_OLD_KEYS`.
    pub data_keys: DataKeys,
    /// `TOTP_ISSUER` (default `leptos-auth`).
    pub totp_issuer: String,
    /// `STEP_UP_MINUTES` (default 10).
    pub step_up: Duration,
    /// `REQUIRE_2FA_FOR_ADMINS` (default false).
    pub require_for_admins: bool,
}

impl FactorSettings {
    /// Reads the settings; the key is generated into `data_dir` in development.
    pub fn read(env: &Env<'_>, app_env: AppEnv, data_dir: &Path) -> Result<Self, ConfigError> {
        Ok(FactorSettings {
            data_keys: data_keys(env, app_env, data_dir)?,
            totp_issuer: TOTP_ISSUER.read(env)?,
            step_up: STEP_UP_MINUTES.read(env)?,
            require_for_admins: REQUIRE_2FA_FOR_ADMINS.read(env)?,
        })
    }
}

/// `DATA_ENCRYPTION_KEY`: required in production; in development, when
/// unset, a random one is generated once and kept in `data_dir`.
pub fn data_keys(env: &Env<'_>, app_env: AppEnv, data_dir: &Path) -> Result<DataKeys, ConfigError> {
    let old = DATA_ENCRYPTION_OLD_KEYS.read(env)?;
    let current = match DATA_ENCRYPTION_KEY.get(env)? {
        Some(key) => key,
        None if app_env == AppEnv::Production => {
            return Err(ConfigError::new(
                DATA_ENCRYPTION_KEY.name,
                "must be set in production (32 random bytes, e.g. `openssl rand -base64 32`)",
            ))
        }
        None => load_or_create_dev_key(data_dir).map_err(|e| {
            ConfigError::new(
                DATA_ENCRYPTION_KEY.name,
                format!(
                    "could not create a development key in {}: {e}",
                    data_dir.display()
                ),
            )
        })?,
    };
    if old.contains(&current) {
        return Err(ConfigError::new(
            DATA_ENCRYPTION_OLD_KEYS.name,
            "must not list the current DATA_ENCRYPTION_KEY",
        ));
    }
    Ok(DataKeys { current, old })
}

/// In development, a random key is generated once and kept in the data
/// folder, so sealed secrets survive restarts. Never used in production.
fn load_or_create_dev_key(data_dir: &Path) -> std::io::Result<DataKey> {
    use rand::RngCore;
    let path = data_dir.join("data-encryption-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        if let Ok(key) = DataKey::parse(&existing) {
            return Ok(key);
        }
    }
    std::fs::create_dir_all(data_dir)?;
    let mut bytes = [0u8; DATA_KEY_BYTES];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let text = hex::encode(bytes);
    super::auth::write_private(&path, &text)?;
    tracing::warn!(
        path = %path.display(),
        "DATA_ENCRYPTION_KEY is not set: generated a development key. Set DATA_ENCRYPTION_KEY in production."
    );
    DataKey::parse(&text).map_err(std::io::Error::other)
}
