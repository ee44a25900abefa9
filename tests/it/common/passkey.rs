//! A software passkey for the tests: `webauthn-authenticator-rs`'s
//! `SoftPasskey` (kanidm's, a real authenticator that builds real
//! attestations and ECDSA assertions), with this side playing the browser.
//!
//! `SoftPasskey` keeps no discoverable (resident) credentials: it is asked
//! for a plain one, and this wrapper remembers what a discoverable
//! authenticator would (the credential id and the user handle) to answer a
//! request that names no credential, and returns the user handle with the
//! assertion as such an authenticator does (the handle is not signed).

use base64::Engine;
use serde_json::{json, Value};
use webauthn_authenticator_rs::{softpasskey::SoftPasskey, WebauthnAuthenticator};
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

/// The origin of test instances (`PUBLIC_URL` defaults to it).
pub const ORIGIN: &str = "http://localhost:3000";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn unb64(text: &str) -> Vec<u8> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .expect("base64url")
}

/// One authenticator holding one credential at a time.
pub struct SoftDevice {
    authenticator: SoftPasskey,
    /// The credential id and user handle of the last registration.
    pub credential: Option<(Vec<u8>, Vec<u8>)>,
}

impl Default for SoftDevice {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftDevice {
    /// A new authenticator that verifies its user.
    pub fn new() -> Self {
        SoftDevice {
            authenticator: SoftPasskey::new(true),
            credential: None,
        }
    }

    /// Answers creation options (`{"publicKey": ...}`) as a browser at `origin` would.
    pub fn register_at(&mut self, origin: &str, options: &Value) -> Value {
        let mut options = options.clone();
        let selection = &mut options["publicKey"]["authenticatorSelection"];
        assert_eq!(selection["residentKey"], "required", "asks for a passkey");
        assert_eq!(selection["userVerification"], "required");
        selection["residentKey"] = json!("discouraged");
        selection["requireResidentKey"] = json!(false);
        let handle = unb64(
            options["publicKey"]["user"]["id"]
                .as_str()
                .expect("user id"),
        );
        let options: CreationChallengeResponse =
            serde_json::from_value(options).expect("creation options");
        let credential = self
            .authenticator
            .do_registration(Url::parse(origin).expect("origin"), options)
            .expect("the authenticator registers");
        self.credential = Some((credential.raw_id.to_vec(), handle));
        serde_json::to_value(credential).expect("json")
    }

    /// [`SoftDevice::register_at`] on the test instances' origin.
    pub fn register(&mut self, options: &Value) -> Value {
        self.register_at(ORIGIN, options)
    }

    /// Answers request options as a browser at `origin` would, with the
    /// credential this device holds (whatever the options allow).
    pub fn assert_at(&mut self, origin: &str, options: &Value) -> Value {
        let (credential_id, handle) = self.credential.clone().expect("a registered credential");
        let mut options = options.clone();
        assert_eq!(options["publicKey"]["userVerification"], "required");
        // The device answers with what it holds (a discoverable
        // authenticator for a request that names none; a client that
        // ignores the list otherwise: the server must check).
        options["publicKey"]["allowCredentials"] =
            json!([{ "type": "public-key", "id": b64(&credential_id) }]);
        let options: RequestChallengeResponse =
            serde_json::from_value(options).expect("request options");
        let mut assertion = self
            .authenticator
            .do_authentication(Url::parse(origin).expect("origin"), options)
            .expect("the authenticator signs");
        assertion.response.user_handle = Some(handle);
        serde_json::to_value(assertion).expect("json")
    }

    /// [`SoftDevice::assert_at`] on the test instances' origin.
    pub fn assert(&mut self, options: &Value) -> Value {
        self.assert_at(ORIGIN, options)
    }
}
