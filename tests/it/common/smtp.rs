//! A real SMTP server for the tests: it listens on a loopback port, speaks
//! enough of RFC 5321 for a client (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP,
//! QUIT), keeps every message it accepts, and can refuse the next messages
//! with a temporary (451) or permanent (550) error.

use base64::Engine;
use std::sync::{
    atomic::{AtomicU32, Ordering},
    Arc, Mutex,
};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
};

/// One accepted message.
#[derive(Debug, Clone)]
pub struct Captured {
    pub from: String,
    pub to: Vec<String>,
    /// The raw message (headers and body), dot-unstuffed.
    pub data: String,
}

#[derive(Default)]
struct Shared {
    messages: Mutex<Vec<Captured>>,
    /// Attempts (MAIL FROM commands) seen, accepted or not.
    attempts: AtomicU32,
    /// The next this-many messages are refused with 451.
    refuse_temporarily: AtomicU32,
    /// The next this-many messages are refused with 550.
    refuse_permanently: AtomicU32,
}

/// The running sink; it stops with the test's runtime.
#[derive(Clone)]
pub struct SmtpSink {
    pub port: u16,
    shared: Arc<Shared>,
}

impl SmtpSink {
    /// Starts listening on 127.0.0.1 (a free port).
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Shared::default());
        let accepting = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, accepting.clone()));
            }
        });
        SmtpSink { port, shared }
    }

    /// `SMTP_URL` for this sink (plain SMTP on loopback).
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Everything accepted so far.
    pub fn messages(&self) -> Vec<Captured> {
        self.shared.messages.lock().expect("lock").clone()
    }

    /// Messages accepted for this recipient.
    pub fn messages_to(&self, address: &str) -> Vec<Captured> {
        self.messages()
            .into_iter()
            .filter(|m| m.to.iter().any(|to| to == address))
            .collect()
    }

    /// Attempts to send (accepted or refused).
    pub fn attempts(&self) -> u32 {
        self.shared.attempts.load(Ordering::SeqCst)
    }

    /// Refuses the next `n` messages with `451` (try again later).
    pub fn refuse_temporarily(&self, n: u32) {
        self.shared.refuse_temporarily.store(n, Ordering::SeqCst);
    }

    /// Refuses the next `n` messages with `550` (never).
    pub fn refuse_permanently(&self, n: u32) {
        self.shared.refuse_permanently.store(n, Ordering::SeqCst);
    }
}

/// Takes one from a counter when it is above zero.
fn take(counter: &AtomicU32) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    if write
        .write_all(b"220 sink.test ESMTP ready\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let command = line.trim_end().to_owned();
        let upper = command.to_ascii_uppercase();
        let answer: &[u8] = if upper.starts_with("EHLO") {
            b"250-sink.test\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 PIPELINING\r\n"
        } else if upper.starts_with("HELO") {
            b"250 sink.test\r\n"
        } else if upper.starts_with("MAIL FROM:") {
            shared.attempts.fetch_add(1, Ordering::SeqCst);
            to.clear();
            if take(&shared.refuse_temporarily) {
                b"451 4.3.0 Try again later\r\n"
            } else if take(&shared.refuse_permanently) {
                b"550 5.7.1 Refused\r\n"
            } else {
                from = address_of(&command[10..]);
                b"250 2.1.0 OK\r\n"
            }
        } else if upper.starts_with("RCPT TO:") {
            to.push(address_of(&command[8..]));
            b"250 2.1.5 OK\r\n"
        } else if upper == "DATA" {
            if write
                .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await
                .is_err()
            {
                return;
            }
            let mut data = String::new();
            loop {
                line.clear();
                match lines.read_line(&mut line).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let content = line.trim_end_matches(['\r', '\n']);
                if content == "." {
                    break;
                }
                data.push_str(content.strip_prefix('.').unwrap_or(content));
                data.push('\n');
            }
            shared.messages.lock().expect("lock").push(Captured {
                from: from.clone(),
                to: std::mem::take(&mut to),
                data,
            });
            b"250 2.0.0 Queued\r\n"
        } else if upper == "RSET" {
            to.clear();
            b"250 2.0.0 OK\r\n"
        } else if upper == "NOOP" {
            b"250 2.0.0 OK\r\n"
        } else if upper == "QUIT" {
            let _ = write.write_all(b"221 2.0.0 Bye\r\n").await;
            return;
        } else {
            b"502 5.5.2 Command not recognized\r\n"
        };
        if write.write_all(answer).await.is_err() {
            return;
        }
    }
}

/// `<alice@example.com> SIZE=123` -> `alice@example.com`.
fn address_of(argument: &str) -> String {
    let argument = argument.trim();
    match (argument.find('<'), argument.find('>')) {
        (Some(start), Some(end)) if start < end => argument[start + 1..end].to_owned(),
        _ => argument.split_whitespace().next().unwrap_or("").to_owned(),
    }
}

impl Captured {
    /// A header's value (unfolded), by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<String> {
        header_in(self.data.split("\n\n").next().unwrap_or(""), name)
    }

    /// The decoded `text/plain` part.
    pub fn text(&self) -> String {
        self.part("text/plain")
            .unwrap_or_else(|| panic!("no text/plain part in:\n{}", self.data))
    }

    /// The decoded `text/html` part.
    pub fn html(&self) -> String {
        self.part("text/html")
            .unwrap_or_else(|| panic!("no text/html part in:\n{}", self.data))
    }

    fn part(&self, content_type: &str) -> Option<String> {
        let top = self.data.split("\n\n").next().unwrap_or("");
        let boundary = header_in(top, "Content-Type")
            .and_then(|ct| {
                ct.split(';')
                    .map(str::trim)
                    .find_map(|p| p.strip_prefix("boundary="))
                    .map(|b| b.trim_matches('"').to_owned())
            })
            .expect("a multipart message");
        self.data
            .split(&format!("--{boundary}"))
            .skip(1)
            .find_map(|part| {
                let part = part.trim_start_matches('\n');
                let (headers, body) = part.split_once("\n\n")?;
                let kind = header_in(headers, "Content-Type")?;
                if !kind.to_ascii_lowercase().starts_with(content_type) {
                    return None;
                }
                let encoding = header_in(headers, "Content-Transfer-Encoding")
                    .unwrap_or_default()
                    .to_ascii_lowercase();
                Some(decode(body.trim_end(), &encoding))
            })
    }

    /// The first link in the text part that starts with `prefix`.
    pub fn link(&self, prefix: &str) -> String {
        let text = self.text();
        text.split_whitespace()
            .find(|word| word.starts_with(prefix))
            .map(|word| word.trim_end_matches(['.', ',', ')']).to_owned())
            .unwrap_or_else(|| panic!("no link starting with {prefix} in:\n{text}"))
    }

    /// The `token` query parameter of the first link to `path` (e.g. `/verify-email`).
    pub fn token(&self, public_url: &str, path: &str) -> String {
        let link = self.link(&format!("{public_url}{path}?token="));
        link.split_once("?token=")
            .map(|(_, token)| token.to_owned())
            .expect("token")
    }
}

fn header_in(headers: &str, name: &str) -> Option<String> {
    let mut value: Option<String> = None;
    for line in headers.lines() {
        if let Some(current) = value.as_mut() {
            if line.starts_with([' ', '\t']) {
                current.push(' ');
                current.push_str(line.trim());
                continue;
            }
            break;
        }
        if let Some((key, rest)) = line.split_once(':') {
            if key.eq_ignore_ascii_case(name) {
                value = Some(rest.trim().to_owned());
            }
        }
    }
    value
}

fn decode(body: &str, encoding: &str) -> String {
    match encoding {
        "base64" => {
            let joined: String = body.split_whitespace().collect();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(joined)
                    .expect("base64 body"),
            )
            .expect("utf-8 body")
        }
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.to_owned(),
    }
}

fn decode_quoted_printable(body: &str) -> String {
    let mut bytes = Vec::new();
    let mut lines = body.split('\n').peekable();
    while let Some(line) = lines.next() {
        let line = line.trim_end_matches('\r');
        let (line, soft_break) = match line.strip_suffix('=') {
            Some(rest) => (rest, true),
            None => (line, false),
        };
        let raw = line.as_bytes();
        let mut i = 0;
        while i < raw.len() {
            if raw[i] == b'=' && i + 3 <= raw.len() {
                if let Ok(byte) = u8::from_str_radix(&line[i + 1..i + 3], 16) {
                    bytes.push(byte);
                    i += 3;
                    continue;
                }
            }
            bytes.push(raw[i]);
            i += 1;
        }
        if !soft_break && lines.peek().is_some() {
            bytes.push(b'\n');
        }
    }
    String::from_utf8(bytes).expect("utf-8 body")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_printable_soft_breaks_and_escapes_decode() {
        assert_eq!(
            decode_quoted_printable("https://example.com/x?token=3Dabc=\ndef\nnext line"),
            "https://example.com/x?token=abcdef\nnext line"
        );
    }
}
