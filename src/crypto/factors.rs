//! Second-factor primitives: TOTP secrets and codes (RFC 6238: HMAC-SHA1,
//! 6 digits, 30-second steps, one step of skew either side, by `totp-rs`),
//! the `otpauth://` enrolment URI and its QR code, and recovery codes.
//!
//! The rules built on them (a step is accepted once, wrong codes are
//! throttled, secrets are sealed at rest) live in
//! `services::second_factor`.

use rand::{rngs::OsRng, Rng, RngCore};
use sha2::{Digest, Sha256};
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Bytes of a TOTP secret: 160 bits, RFC 4226's recommendation.
pub const SECRET_BYTES: usize = 20;
/// Seconds of one TOTP step.
pub const STEP_SECONDS: u64 = 30;
/// Digits of a TOTP code.
pub const DIGITS: usize = 6;

/// A fresh random TOTP secret.
pub fn new_secret() -> [u8; SECRET_BYTES] {
    let mut secret = [0u8; SECRET_BYTES];
    OsRng.fill_bytes(&mut secret);
    secret
}

/// The secret as authenticator apps take it by hand: base32, no padding.
pub fn secret_text(secret: &[u8]) -> String {
    Secret::from(secret.to_vec()).to_base32()
}

/// A TOTP generator/checker over one secret.
pub struct TotpKey(Totp);

/// The TOTP of a secret could not be set up (a secret shorter than 128
/// bits, or an issuer or account name with a `:`).
#[derive(Debug, thiserror::Error)]
#[error("invalid TOTP parameters: {0}")]
pub struct TotpSetupError(String);

impl TotpKey {
    /// The TOTP of `secret` for `account` (the email) at `issuer`.
    pub fn new(secret: &[u8], issuer: &str, account: &str) -> Result<TotpKey, TotpSetupError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS as u8)
            .with_skew(1)
            .with_step_duration(STEP_SECONDS)
            .with_secret(secret.to_vec())
            .with_issuer(Some(issuer))
            .with_account_name(account)
            .build()
            .map(TotpKey)
            .map_err(|e| TotpSetupError(e.to_string()))
    }

    /// `otpauth://totp/<issuer>:<account>?secret=...&issuer=...`, what the QR
    /// code holds (SHA1, 6 digits and 30 s are the URI's defaults).
    pub fn uri(&self) -> Result<String, TotpSetupError> {
        self.0.to_url().map_err(|e| TotpSetupError(e.to_string()))
    }

    /// The step whose code `code` is, among the step of `unix_time` and one
    /// on either side; `None` when it is none of them. The comparison is
    /// constant-time (`totp-rs`). Spaces inside the code are ignored.
    pub fn matching_step(&self, code: &str, unix_time: u64) -> Option<u64> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != DIGITS || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.0.check(&code, unix_time)
    }

    /// The code of `unix_time` (the CLI and benchmarks; tests compute
    /// their own).
    pub fn code_at(&self, unix_time: u64) -> String {
        self.0.generate(unix_time).to_string()
    }
}

/// `text` (the enrolment URI) as an inline SVG QR code: black modules on
/// white with a quiet zone, scaled by the page; no XML declaration, so it
/// can sit inside HTML.
pub fn qr_svg(text: &str, label: &str) -> Result<String, TotpSetupError> {
    use qrcode::{render::svg, EcLevel, QrCode};
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
        .map_err(|e| TotpSetupError(e.to_string()))?;
    let image = code
        .render::<svg::Color>()
        .min_dimensions(200, 200)
        .dark_color(svg::Color("#000"))
        .light_color(svg::Color("#fff"))
        .build();
    let start = image.find("<svg").unwrap_or(0);
    let escaped = label
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;");
    Ok(image[start..].replacen(
        "<svg",
        &format!("<svg role=\"img\" aria-label=\"{escaped}\""),
        1,
    ))
}

/// How many recovery codes a user gets.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (without its dashes): 16 characters of a
/// 32-letter alphabet, 80 bits.
const RECOVERY_CODE_CHARS: usize = 16;
/// Crockford's base32 alphabet, lower case: no `i`, `l`, `o`, `u`, so
/// nothing reads as another character.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// Fresh recovery codes, grouped for reading: `xxxx-xxxx-xxxx-xxxx`.
pub fn new_recovery_codes() -> Vec<String> {
    (0..RECOVERY_CODES)
        .map(|_| {
            let chars: Vec<char> = (0..RECOVERY_CODE_CHARS)
                .map(|_| char::from(ALPHABET[OsRng.gen_range(0..ALPHABET.len())]))
                .collect();
            chars
                .chunks(4)
                .map(|group| group.iter().collect::<String>())
                .collect::<Vec<_>>()
                .join("-")
        })
        .collect()
}

/// A recovery code as typed, reduced to its 16 characters: case, dashes and
/// spaces ignored, and the letters Crockford's base32 reads as digits (`o`
/// as 0, `i` and `l` as 1) mapped. `None` when it cannot be one.
pub fn normalize_recovery_code(typed: &str) -> Option<String> {
    let code: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| match c.to_ascii_lowercase() {
            'o' => '0',
            'i' | 'l' => '1',
            c => c,
        })
        .collect();
    (code.len() == RECOVERY_CODE_CHARS && code.bytes().all(|b| ALPHABET.contains(&b)))
        .then_some(code)
}

/// Whether typed text reads as a TOTP code (6 digits, spaces ignored) or a
/// recovery code, rather than as a password.
pub fn looks_like_a_code(typed: &str) -> bool {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    (digits.len() == DIGITS && digits.bytes().all(|b| b.is_ascii_digit()))
        || normalize_recovery_code(typed).is_some()
}

/// What is stored of a recovery code: the SHA-256 of its normal form. With
/// 80 random bits a code cannot be found from its hash.
pub fn hash_recovery_code(normalized: &str) -> String {
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_their_own_step_and_one_either_side_only() {
        let secret = [7u8; SECRET_BYTES];
        let key = TotpKey::new(&secret, "leptos-auth", "a@example.com").expect("totp");
        let now = 1_700_000_015;
        let step = now / STEP_SECONDS;
        for offset in [-1i64, 0, 1] {
            let at = (now as i64 + offset * STEP_SECONDS as i64) as u64;
            let code = key.code_at(at);
            assert_eq!(
                key.matching_step(&code, now),
                Some((step as i64 + offset) as u64)
            );
        }
        assert_eq!(
            key.matching_step(&key.code_at(now + 2 * STEP_SECONDS), now),
            None
        );
        assert_eq!(
            key.matching_step(&key.code_at(now - 2 * STEP_SECONDS), now),
            None
        );
        let code = key.code_at(now);
        assert_eq!(
            key.matching_step(&format!("{} {}", &code[..3], &code[3..]), now),
            Some(step)
        );
        for junk in ["", "12345", "1234567", "abcdef", "１２３４５６"] {
            assert_eq!(key.matching_step(junk, now), None, "{junk}");
        }
    }

    #[test]
    fn the_uri_names_issuer_account_and_secret() {
        let secret = new_secret();
        let key = TotpKey::new(&secret, "leptos-auth", "a+b@example.com").expect("totp");
        let uri = key.uri().expect("uri");
        assert!(
            uri.starts_with("otpauth://totp/leptos-auth:a%2Bb%40example.com?"),
            "{uri}"
        );
        assert!(
            uri.contains(&format!("secret={}", secret_text(&secret))),
            "{uri}"
        );
        assert!(uri.contains("issuer=leptos-auth"), "{uri}");
        assert_eq!(secret_text(&secret).len(), 32);
        let svg = qr_svg(&uri, "QR <code>").expect("svg");
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"QR &lt;code>\""),
            "{svg}"
        );
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn recovery_codes_are_random_grouped_and_read_forgivingly() {
        let codes = new_recovery_codes();
        assert_eq!(codes.len(), RECOVERY_CODES);
        for code in &codes {
            assert_eq!(code.len(), 19, "{code}");
            assert_eq!(code.matches('-').count(), 3);
            let normal = normalize_recovery_code(code).expect("normal");
            assert_eq!(normal, code.replace('-', ""));
            assert_eq!(
                normalize_recovery_code(&code.to_uppercase().replace('-', " ")),
                Some(normal.clone())
            );
            assert_eq!(hash_recovery_code(&normal).len(), 64);
        }
        let mut unique = codes.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), RECOVERY_CODES);
        assert_eq!(
            normalize_recovery_code("OIL0-0000-0000-0000"),
            Some("0110000000000000".to_owned())
        );
        assert_eq!(normalize_recovery_code("0000-0000-0000"), None);
        assert_eq!(normalize_recovery_code("uuuu-0000-0000-0000"), None);
    }
}
