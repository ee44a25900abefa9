//! Human-readable descriptions of sessions: the device from its user agent,
//! and "3 minutes ago". Shared by the server and the browser.

use chrono::{DateTime, Utc};

/// "Firefox on Linux", "Safari on iOS", "curl"... from a user agent string.
pub fn device_name(user_agent: Option<&str>) -> String {
    let Some(ua) = user_agent.map(str::trim).filter(|ua| !ua.is_empty()) else {
        return "Unknown device".to_owned();
    };
    let browser = if ua.contains("Edg/") {
        "Edge"
    } else if ua.contains("OPR/") || ua.contains("Opera") {
        "Opera"
    } else if ua.contains("Firefox/") {
        "Firefox"
    } else if ua.contains("Chrome/") || ua.contains("Chromium/") || ua.contains("CriOS/") {
        "Chrome"
    } else if ua.contains("Safari/") && ua.contains("Version/") {
        "Safari"
    } else if let Some(tool) = [
        "curl",
        "Wget",
        "python-requests",
        "PostmanRuntime",
        "HTTPie",
    ]
    .iter()
    .find(|tool| ua.starts_with(*tool))
    {
        return (*tool).to_owned();
    } else {
        "Unknown browser"
    };
    let os = if ua.contains("iPhone") || ua.contains("iPad") {
        "iOS"
    } else if ua.contains("Android") {
        "Android"
    } else if ua.contains("Windows") {
        "Windows"
    } else if ua.contains("CrOS") {
        "ChromeOS"
    } else if ua.contains("Mac OS X") || ua.contains("Macintosh") {
        "macOS"
    } else if ua.contains("Linux") {
        "Linux"
    } else {
        return browser.to_owned();
    };
    format!("{browser} on {os}")
}

/// "just now", "5 minutes ago", "2 hours ago", "3 days ago".
pub fn time_ago(then: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - then).num_seconds().max(0);
    let (amount, unit) = match seconds {
        0..=59 => return "just now".to_owned(),
        60..=3_599 => (seconds / 60, "minute"),
        3_600..=86_399 => (seconds / 3_600, "hour"),
        _ => (seconds / 86_400, "day"),
    };
    format!("{amount} {unit}{} ago", if amount == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn common_user_agents_get_readable_names() {
        let cases = [
            ("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0", "Firefox on Linux"),
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36 Edg/126.0", "Edge on Windows"),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1", "Safari on iOS"),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36", "Chrome on macOS"),
            ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36", "Chrome on Android"),
            ("curl/8.5.0", "curl"),
        ];
        for (ua, expected) in cases {
            assert_eq!(device_name(Some(ua)), expected, "{ua}");
        }
        assert_eq!(device_name(None), "Unknown device");
        assert_eq!(device_name(Some("")), "Unknown device");
    }

    #[test]
    fn times_read_naturally() {
        let now = Utc::now();
        assert_eq!(time_ago(now - Duration::seconds(5), now), "just now");
        assert_eq!(time_ago(now - Duration::minutes(1), now), "1 minute ago");
        assert_eq!(time_ago(now - Duration::minutes(3), now), "3 minutes ago");
        assert_eq!(time_ago(now - Duration::hours(2), now), "2 hours ago");
        assert_eq!(time_ago(now - Duration::days(3), now), "3 days ago");
        assert_eq!(time_ago(now + Duration::minutes(1), now), "just now");
    }
}
