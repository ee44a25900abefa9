//! The session cookies: access JWT and refresh token, `HttpOnly`,
//! `SameSite=Lax`, `Path=/`, and `Secure` with the `__Host-` prefix unless
//! `COOKIE_SECURE=false`; and, with the same attributes, the short-lived
//! cookies that carry a two-factor flow from one page to the next
//! ([`Flow`]): opaque tokens whose state lives in the database.

use crate::{config::Config, services::TokenPair};
use secrecy::ExposeSecret;
use tower_cookies::{
    cookie::{time::Duration, SameSite},
    Cookie, Cookies,
};

/// A two-factor flow whose token rides in a cookie between two pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The password step of a sign-in passed: the `mfa_token` (5 minutes).
    SecondFactor,
    /// Recovery codes waiting to be shown once (10 minutes).
    RecoveryCodes,
}

impl Flow {
    fn name(self, secure: bool) -> &'static str {
        match (self, secure) {
            (Flow::SecondFactor, true) => "__Host-leptos-auth-mfa",
            (Flow::SecondFactor, false) => "leptos-auth-mfa",
            (Flow::RecoveryCodes, true) => "__Host-leptos-auth-codes",
            (Flow::RecoveryCodes, false) => "leptos-auth-codes",
        }
    }

    fn max_age(self) -> i64 {
        match self {
            Flow::SecondFactor => 5 * 60,
            Flow::RecoveryCodes => 10 * 60,
        }
    }
}

/// The names and attributes of the two session cookies.
#[derive(Debug, Clone, Copy)]
pub struct SessionCookies {
    secure: bool,
    access_max_age: i64,
    refresh_max_age: i64,
}

impl SessionCookies {
    /// From the settings of this instance.
    pub fn new(config: &Config) -> Self {
        SessionCookies {
            secure: config.cookie_secure,
            access_max_age: config.access_token_ttl.as_secs() as i64,
            refresh_max_age: config.session_idle.as_secs() as i64,
        }
    }

    /// Name of the access-token cookie.
    pub fn access_name(&self) -> &'static str {
        if self.secure {
            "__Host-leptos-auth-access"
        } else {
            "leptos-auth-access"
        }
    }

    /// Name of the refresh-token cookie.
    pub fn refresh_name(&self) -> &'static str {
        if self.secure {
            "__Host-leptos-auth-refresh"
        } else {
            "leptos-auth-refresh"
        }
    }

    fn build(&self, name: &'static str, value: String, max_age: i64) -> Cookie<'static> {
        Cookie::build((name, value))
            .http_only(true)
            .secure(self.secure)
            .same_site(SameSite::Lax)
            .path("/")
            .max_age(Duration::seconds(max_age))
            .build()
    }

    /// Stores a token pair in the cookies of the response.
    pub fn set(&self, cookies: &Cookies, pair: &TokenPair) {
        cookies.add(self.build(
            self.access_name(),
            pair.access_token.clone(),
            self.access_max_age,
        ));
        cookies.add(self.build(
            self.refresh_name(),
            pair.refresh_token.expose_secret().to_owned(),
            self.refresh_max_age,
        ));
    }

    /// Expires both cookies in the browser, and those of a two-factor flow
    /// the browser holds (signing out leaves nothing of the session behind).
    pub fn clear(&self, cookies: &Cookies) {
        for name in [self.access_name(), self.refresh_name()] {
            cookies.add(self.build(name, String::new(), 0));
        }
        for flow in [Flow::SecondFactor, Flow::RecoveryCodes] {
            if self.flow_token(cookies, flow).is_some() {
                self.clear_flow(cookies, flow);
            }
        }
    }

    /// Stores the token of a two-factor flow.
    pub fn set_flow(&self, cookies: &Cookies, flow: Flow, token: &str) {
        cookies.add(self.build(flow.name(self.secure), token.to_owned(), flow.max_age()));
    }

    /// The token of a two-factor flow, if the request has one.
    pub fn flow_token(&self, cookies: &Cookies, flow: Flow) -> Option<String> {
        cookies
            .get(flow.name(self.secure))
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// Expires the cookie of a two-factor flow.
    pub fn clear_flow(&self, cookies: &Cookies, flow: Flow) {
        cookies.add(self.build(flow.name(self.secure), String::new(), 0));
    }

    /// The access token of the request, if any.
    pub fn access_token(&self, cookies: &Cookies) -> Option<String> {
        cookies
            .get(self.access_name())
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
    }

    /// The refresh token of the request, if any.
    pub fn refresh_token(&self, cookies: &Cookies) -> Option<String> {
        cookies
            .get(self.refresh_name())
            .map(|c| c.value().to_owned())
            .filter(|v| !v.is_empty())
    }
}
