//! Single-use links sent by email (address verification, password reset),
//! and the messages that carry them or tell a user about a change to their
//! account. Tokens have 256 random bits, are stored only as SHA-256 hashes,
//! expire (verification 24 hours, reset 1 hour), are used once, and a newer
//! link for the same purpose revokes the older ones. Messages leave through
//! the durable [`Outbox`]: a link and the message that carries it are stored
//! in one transaction, and delivered off the request path.

use super::{
    outbox::{Composed, LinkRequest, LinkToStore, Outbox},
    ClientInfo, ServiceError, ServiceResult,
};
use crate::{
    crypto::tokens::{hash_opaque_token, new_opaque_token, plausible_refresh_token},
    domain::Email,
    mail::MailMessage,
    repositories::{
        EmailTokenProblem, EmailTokenPurpose, EmailTokenRecord, Repositories, UsedEmailToken, User,
    },
};
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use std::time::Duration;

/// How long a verification link works.
pub const VERIFICATION_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long a password-reset link works.
pub const RESET_TTL: Duration = Duration::from_secs(3600);

/// A change to a user's second factor, for the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactorChange {
    Enabled,
    Disabled,
    RecoveryCodeUsed { left: i64 },
    ResetByAdmin,
}

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
    outbox: Outbox,
    /// `PUBLIC_URL`, without a trailing slash.
    public_url: String,
}

impl MailLinks {
    /// Builds the service.
    pub fn new(repos: Repositories, outbox: Outbox, public_url: &str) -> Self {
        MailLinks {
            repos,
            outbox,
            public_url: public_url.trim_end_matches('/').to_owned(),
        }
    }

    /// A new link of `purpose` for `user` and its message, both still to be
    /// stored (the outbox stores them together).
    pub fn compose(&self, user: &User, purpose: EmailTokenPurpose) -> Composed {
        let now = Utc::now();
        let (ttl, path) = match purpose {
            EmailTokenPurpose::VerifyEmail => (VERIFICATION_TTL, "verify-email"),
            EmailTokenPurpose::ResetPassword => (RESET_TTL, "reset-password"),
        };
        let token = new_opaque_token();
        let url = format!(
            "{}/{path}?token={}",
            self.public_url,
            token.token.expose_secret()
        );
        let message = match purpose {
            EmailTokenPurpose::VerifyEmail => verification_message(&user.email, &url),
            EmailTokenPurpose::ResetPassword => reset_message(&user.email, &url),
        };
        Composed {
            message,
            link: LinkToStore {
                user_id: user.id,
                purpose,
                token_hash: token.hash,
                email: user.email.clone(),
                now,
                expires_at: now + chrono::Duration::from_std(ttl).unwrap_or_default(),
            },
        }
    }

    /// Sends a verification link to the user's current address: the link
    /// and its message are stored together before this returns.
    pub async fn send_verification(&self, user: &User) -> ServiceResult<()> {
        let composed = self.compose(user, EmailTokenPurpose::VerifyEmail);
        self.outbox
            .queue(composed.message, Some(composed.link.as_new()))
            .await
    }

    /// Queues a link of `purpose` for whichever account has `email`, to be
    /// composed by the outbox's worker (the same work for every address).
    pub async fn request_link(
        &self,
        email: &Email,
        purpose: EmailTokenPurpose,
        client: &ClientInfo,
    ) -> ServiceResult<()> {
        self.outbox
            .queue_link_request(LinkRequest {
                email: email.as_str().to_owned(),
                purpose,
                ip: client.ip.clone(),
                user_agent: client.user_agent.clone(),
            })
            .await
    }

    /// Queues a notice; a failure is logged, never returned (the change it
    /// tells about has happened).
    async fn notify(&self, message: MailMessage) {
        if let Err(err) = self.outbox.queue(message, None).await {
            tracing::error!(error = %err, "could not queue a notice");
        }
    }

    /// Tells the user their password was changed (and what to do if it was not them).
    pub async fn notify_password_changed(
        &self,
        user: &User,
        by: PasswordChangedBy,
        at: DateTime<Utc>,
    ) {
        let email = &user.email;
        let how = match by {
            PasswordChangedBy::User => "from your profile",
            PasswordChangedBy::Admin => "by an administrator",
            PasswordChangedBy::Reset => "with a password-reset link",
        };
        let forgot = format!("{}/forgot-password", self.public_url);
        self.notify(message(
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
        ))
        .await;
    }

    /// Tells the old address that the account moved to a new one.
    pub async fn notify_email_changed(&self, old: &str, new: &str, at: DateTime<Utc>) {
        self.notify(message(
            old,
            "Your email address was changed",
            &[format!(
                "The email address of your account was changed from {old} to {new} on {}.",
                at.format("%Y-%m-%d at %H:%M UTC")
            )],
            None,
            &["If this was not you, tell your administrator at once.".to_owned()],
        ))
        .await;
    }

    /// Tells the user their second factor changed, and what to do if it
    /// was not them.
    pub async fn notify_second_factor(
        &self,
        user: &User,
        change: SecondFactorChange,
        at: DateTime<Utc>,
    ) {
        let email = &user.email;
        let when = at.format("%Y-%m-%d at %H:%M UTC");
        let (subject, what) = match change {
            SecondFactorChange::Enabled => (
                "Two-factor authentication is on",
                format!("Two-factor authentication was turned on for your account {email} on {when}. Signing in now also asks for a code from your authenticator app."),
            ),
            SecondFactorChange::Disabled => (
                "Two-factor authentication is off",
                format!("Two-factor authentication was turned off for your account {email} on {when}. Signing in now asks only for your password."),
            ),
            SecondFactorChange::RecoveryCodeUsed { left } => (
                "A recovery code was used",
                format!("One of your recovery codes was used to sign in to your account {email} on {when}. {left} unused recovery code{} left.", if left == 1 { " is" } else { "s are" }),
            ),
            SecondFactorChange::ResetByAdmin => (
                "Two-factor authentication was reset",
                format!("An administrator turned two-factor authentication off for your account {email} on {when}. Turn it on again from your profile."),
            ),
        };
        let forgot = format!("{}/forgot-password", self.public_url);
        self.notify(message(
            email,
            subject,
            &[what],
            None,
            &[format!(
                "If this was not you, reset your password at {forgot} and tell your administrator."
            )],
        ))
        .await;
    }

    /// Tells the user a passkey was added to or removed from their account,
    /// and what to do if it was not them.
    pub async fn notify_passkey(&self, user: &User, name: &str, added: bool, at: DateTime<Utc>) {
        let email = &user.email;
        let when = at.format("%Y-%m-%d at %H:%M UTC");
        let (subject, what) = if added {
            (
                "A passkey was added to your account",
                format!("A passkey named \"{name}\" was added to your account {email} on {when}. It can now sign in to your account without a password."),
            )
        } else {
            (
                "A passkey was removed from your account",
                format!("The passkey named \"{name}\" was removed from your account {email} on {when}. It can no longer sign in."),
            )
        };
        let profile = format!("{}/profile", self.public_url);
        let forgot = format!("{}/forgot-password", self.public_url);
        self.notify(message(
            email,
            subject,
            &[what],
            Some(("See your passkeys", &profile)),
            &[format!(
                "If this was not you, reset your password at {forgot}, remove the passkeys you do not know from your profile, and tell your administrator."
            )],
        ))
        .await;
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
            .find(&hash_opaque_token(token), purpose)
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
            .use_token(&hash_opaque_token(token), purpose, Utc::now())
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
