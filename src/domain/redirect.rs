/// Where to send a user after signing in: `next` when it is a path on this
/// site, `/profile` otherwise. Only relative paths that start with a single
/// `/` pass: `//evil.example`, `/\evil.example`, `https://...`, and anything
/// with control characters would leave the site (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    const DEFAULT: &str = "/profile";
    let Some(next) = next.map(str::trim).filter(|n| !n.is_empty()) else {
        return DEFAULT.to_owned();
    };
    let bytes = next.as_bytes();
    let same_site = bytes[0] == b'/'
        && !matches!(bytes.get(1), Some(b'/') | Some(b'\\'))
        && !next.chars().any(|c| c.is_control() || c == '\\')
        && next.len() <= 2048;
    if same_site {
        next.to_owned()
    } else {
        DEFAULT.to_owned()
    }
}

/// Percent-encodes a value for a query string (`?next=...`).
pub fn encode_query_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_site_paths_are_kept() {
        assert_eq!(safe_next(Some("/admin/users?q=a")), "/admin/users?q=a");
        assert_eq!(safe_next(Some("/")), "/");
    }

    #[test]
    fn anything_that_could_leave_the_site_goes_to_the_profile() {
        for bad in [
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "javascript:alert(1)",
            "evil.example",
            "/\tevil",
            "",
            "   ",
        ] {
            assert_eq!(safe_next(Some(bad)), "/profile", "{bad:?}");
        }
        assert_eq!(safe_next(None), "/profile");
        // Encoded characters stay inside the path of this site.
        assert_eq!(safe_next(Some("/%0d%0aSet-Cookie")), "/%0d%0aSet-Cookie");
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query_value("/a b?c=d&e"), "%2Fa+b%3Fc%3Dd%26e");
    }
}
