//! Single-use links sent by email (address verification, password reset),
//! and the messages that carry them or tell a user about a change to their
//! account. Tokens have 256 random bits, are stored only as SHA-256 hashes,
//! expire (verification 24 hours, reset 1 hour), are used once, and a newer
//! link for the same purpose revokes the older ones. Messages leave through
//! the [`Mailer`] queue, never on the request path.

use super::{
    tokens::{hash_refresh_token, new_opaque_token, plausible_refresh_token},
    ServiceError, ServiceResult,
};
use crate::{
    mail::{MailMessage, Mailer},
    repositories::{
        EmailTokenProblem, EmailTokenPurpose, EmailTokenRecord, NewEmailToken, Repositories,
        UsedEmailToken, User,
    },
};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use std::time::Duration;

/// How long a verification link works.
pub const VERIFICATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a password-reset link works.
pub const RESET_TTL: Duration = Duration::from_secs(3600);

/// Who changed a password, for the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordChangedBy {
    /// The user, from their profile.
    User,
    /// An admin.
    Admin,
    /// The user, with a reset link.
    Reset,
}

/// Issues links and writes the messages.
#[derive(Clone)]
pub struct MailLinks {
    repos: Repositories,
    mailer: Mailer,
    /// `PUBLIC_URL`, without a trailing slash.
    public_url: String,
}

impl MailLinks {
    /// Builds the service.
    pub fn new(repos: Repositories, mailer: Mailer, public_url: &str) -> Self {
        MailLinks {
            repos,
            mailer,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Stores a new link for `user` (revoking older ones of the purpose) and
    /// returns its URL.
    async fn issue(&self, user: &User, purpose: EmailTokenPurpose) -> ServiceResult<String> {
        let now = Utc::now();
        let (ttl, path) = match purpose {
            EmailTokenPurpose::VerifyEmail => (VERIFICATION_TTL, "verify-email"),
            EmailTokenPurpose::ResetPassword => (RESET_TTL, "reset-password"),
        };
        let token = new_opaque_token();
        self.repos
            .email_tokens
            .issue(NewEmailToken {
                user_id: user.id,
                purpose,
                token_hash: &token.hash,
                email: &user.email,
                now,
                expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
            })
            .await?;
        Ok(format!(
            "{}/{path}?token={}",
            self.public_url,
            token.token.expose_secret()
        ))
    }

    /// Sends a verification link to the user's current address.
    pub async fn send_verification(&self, user: &User) -> ServiceResult<()> {
        let link = self.issue(user, EmailTokenPurpose::VerifyEmail).await?;
        self.mailer.send(verification_message(&user.email, &link));
        Ok(())
    }

    /// Issues a link of `purpose` and sends it, all in the background (see
    /// [`Mailer::send_later`]); `issued` runs once the link is stored.
    pub fn send_in_background(
        &self,
        user: User,
        purpose: EmailTokenPurpose,
        issued: impl FnOnce() + Send + 'static,
    ) {
        let links = self.clone();
        self.mailer.send_later(async move {
            match links.issue(&user, purpose).await {
                Ok(link) => {
                    issued();
                    Some(match purpose {
                        EmailTokenPurpose::VerifyEmail => verification_message(&user.email, &link),
                        EmailTokenPurpose::ResetPassword => reset_message(&user.email, &link),
                    })
                }
                Err(err) => {
                    tracing::error!(user_id = user.id, error = %err, "could not issue an emailed link");
                    None
                }
            }
        });
    }

    /// Tells the user their password was changed (and what to do if it was not them).
    pub fn notify_password_changed(&self, user: &User, by: PasswordChangedBy, at: DateTime<Utc>) {
        let email = &user.email;
        let how = match by {
            PasswordChangedBy::User => "from your profile",
            PasswordChangedBy::Admin => "by an administrator",
            PasswordChangedBy::Reset => "with a password-reset link",
        };
        let forgot = format!("{}/forgot-password", self.public_url);
        self.mailer.send(message(
            email,
            "Your password was changed",
            &[
                format!(
                    "The password of your account {email} was changed {how} on {}.",
                    at.format("%Y-%m-%d at %H:%M UTC")
                ),
                "Devices signed in with the old password were signed out.".to_owned(),
            ],
            None,
            &[format!(
                "If this was not you, reset your password at {forgot} and tell your administrator."
            )],
        ));
    }

    /// Tells the old address that the account moved to a new one.
    pub fn notify_email_changed(&self, old: &str, new: &str, at: DateTime<Utc>) {
        self.mailer.send(message(
            old,
            "Your email address was changed",
            &[format!(
                "The email address of your account was changed from {old} to {new} on {}.",
                at.format("%Y-%m-%d at %H:%M UTC")
            )],
            None,
            &["If this was not you, tell your administrator at once.".to_owned()],
        ));
    }

    /// The link's stored state when it can be used now; otherwise why not.
    pub async fn check(
        &self,
        token: &str,
        purpose: EmailTokenPurpose,
    ) -> ServiceResult<EmailTokenRecord> {
        if !plausible_refresh_token(token) {
            return Err(ServiceError::InvalidLink(EmailTokenProblem::Unknown));
        }
        let record = self
            .repos
            .email_tokens
            .find(&hash_refresh_token(token), purpose)
            .await?
            .ok_or(ServiceError::InvalidLink(EmailTokenProblem::Unknown))?;
        match record.problem(Utc::now()) {
            Some(problem) => Err(ServiceError::InvalidLink(problem)),
            None => Ok(record),
        }
    }

    /// Uses the link up (once, even under concurrent requests).
    pub async fn use_up(
        &self,
        token: &str,
        purpose: EmailTokenPurpose,
    ) -> ServiceResult<UsedEmailToken> {
        if !plausible_refresh_token(token) {
            return Err(ServiceError::InvalidLink(EmailTokenProblem::Unknown));
        }
        self.repos
            .email_tokens
            .use_token(&hash_refresh_token(token), purpose, Utc::now())
            .await?
            .map_err(ServiceError::InvalidLink)
    }
}

fn verification_message(email: &str, link: &str) -> MailMessage {
    message(
        email,
        "Confirm your email address",
        &[format!(
            "Please confirm that {email} is your address by opening this link:"
        )],
        Some(("Confirm my email address", link)),
        &[
            "The link works once and expires in 24 hours.".to_owned(),
            "If you did not create an account, you can ignore this message.".to_owned(),
        ],
    )
}

fn reset_message(email: &str, link: &str) -> MailMessage {
    message(
        email,
        "Reset your password",
        &[format!(
            "Someone (hopefully you) asked to reset the password of the account {email}. \
             Choose a new password here:"
        )],
        Some(("Choose a new password", link)),
        &[
            "The link works once and expires in 1 hour.".to_owned(),
            "If you did not ask for this, ignore this message: your password stays as it is."
                .to_owned(),
        ],
    )
}

/// A message with paragraphs, an optional call-to-action link, and closing
/// paragraphs; the HTML part says the same as the text part.
fn message(
    to: &str,
    subject: &str,
    intro: &[String],
    action: Option<(&str, &str)>,
    outro: &[String],
) -> MailMessage {
    let mut text = String::from("Hello,\n\n");
    let mut html = String::from(
        "<!doctype html><html><body style=\"font-family:sans-serif;line-height:1.5\"><p>Hello,</p>",
    );
    for paragraph in intro {
        text.push_str(paragraph);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(paragraph)));
    }
    if let Some((label, link)) = action {
        text.push_str(link);
        text.push_str("\n\n");
        html.push_str(&format!(
            "<p><a href=\"{0}\">{1}</a></p><p style=\"font-size:0.9em\">Or paste this address into your browser: {0}</p>",
            escape(link),
            escape(label)
        ));
    }
    for paragraph in outro {
        text.push_str(paragraph);
        text.push_str("\n\n");
        html.push_str(&format!("<p>{}</p>", escape(paragraph)));
    }
    text.push_str("-- \nleptos-auth\n");
    html.push_str("<p>-- <br>leptos-auth</p></body></html>");
    MailMessage {
        to: to.to_owned(),
        subject: subject.to_owned(),
        text,
        html,
        link: action.map(|(_, link)| link.to_owned()),
    }
}

/// Escapes text for HTML content and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_the_link_in_both_parts_and_escape_html() {
        let m = message(
            "a@example.com",
            "Subject",
            &["Tom & <Jerry>".to_owned()],
            Some(("Go", "https://example.com/x?token=abc")),
            &["Bye".to_owned()],
        );
        assert!(m.text.contains("Tom & <Jerry>"));
        assert!(m.text.contains("https://example.com/x?token=abc"));
        assert!(m.html.contains("Tom &amp; &lt;Jerry&gt;"));
        assert!(m
            .html
            .contains("<a href=\"https://example.com/x?token=abc\">Go</a>"));
        assert_eq!(m.link.as_deref(), Some("https://example.com/x?token=abc"));
    }
}
