//! The session cookies: access JWT and refresh token, `HttpOnly`,
//! `SameSite=Lax`, `Path=/`, and `Secure` with the `__Host-` prefix unless
//! `COOKIE_SECURE=false`.

use crate::{config::Config, services::TokenPair};
use secrecy::ExposeSecret;
use tower_cookies::{
    cookie::{time::Duration, SameSite},
    Cookie, Cookies,
};

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

    /// Expires both cookies in the browser.
    pub fn clear(&self, cookies: &Cookies) {
        for name in [self.access_name(), self.refresh_name()] {
            cookies.add(self.build(name, String::new(), 0));
        }
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
