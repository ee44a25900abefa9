//! Request extractors that turn malformed input into clear 4xx answers in the
//! API's error format (never a 5xx, never a framework-formatted message).

use super::error::{ApiError, ValidationItem};
use crate::{
    services::{Actor, ClientInfo, ServiceError},
    startup::AppState,
};
use axum::{
    body::Bytes,
    extract::{ConnectInfo, FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, HeaderMap, StatusCode},
};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};

/// A JSON body, deserialized with the path of any bad field reported in the 422.
pub struct ApiJson<T>(pub T);

/// The kind of body a request declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Other,
}

/// What the `Content-Type` header says. A missing header counts as JSON.
pub fn body_kind(headers: &HeaderMap) -> BodyKind {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return BodyKind::Json;
    };
    let Ok(value) = value.to_str() else {
        return BodyKind::Other;
    };
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json")) {
        BodyKind::Json
    } else if mime == "application/x-www-form-urlencoded" {
        BodyKind::Form
    } else {
        BodyKind::Other
    }
}

/// Reads the body within the route's size limit (413 beyond it).
pub async fn read_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::Request(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
        } else {
            ApiError::Request(StatusCode::BAD_REQUEST, "Could not read the request body")
        }
    })
}

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if body_kind(req.headers()) != BodyKind::Json {
            return Err(ApiError::Request(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Content-Type must be application/json",
            ));
        }
        let bytes = read_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// Deserializes JSON, reporting where it went wrong in the FastAPI 422 shape.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        json_error_item(&path, &inner)
    })?;
    de.end().map_err(|err| json_error_item(".", &err))?;
    Ok(value)
}

fn json_error_item(path: &str, err: &serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let message = err.to_string();
    let message = message
        .rsplit_once(" at line ")
        .map(|(m, _)| m.to_owned())
        .unwrap_or(message);
    let mut segments: Vec<String> = path
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .map(str::to_owned)
        .collect();
    let item = match err.classify() {
        Category::Syntax | Category::Eof | Category::Io => ValidationItem::new(
            "body",
            &[],
            "JSON decode error: the body is not valid JSON",
            "json_invalid",
        ),
        Category::Data => {
            let (msg, kind) = if let Some(field) = missing_field(&message) {
                segments.push(field);
                ("Field required".to_owned(), "missing")
            } else if message.starts_with("invalid type") {
                (capitalize(&message), "type_error")
            } else if message.starts_with("unknown variant") {
                (capitalize(&message), "enum")
            } else {
                (capitalize(&message), "value_error")
            };
            let path: Vec<&str> = segments.iter().map(String::as_str).collect();
            ValidationItem::new("body", &path, msg, kind)
        }
    };
    ApiError::validation(item)
}

fn missing_field(message: &str) -> Option<String> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(field, _)| field.to_owned())
}

fn capitalize(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Deserializes `application/x-www-form-urlencoded` data (a body or a query
/// string), reporting bad fields at `source` (`body` or `query`).
pub fn parse_urlencoded<T: DeserializeOwned>(bytes: &[u8], source: &str) -> Result<T, ApiError> {
    let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(bytes));
    serde_path_to_error::deserialize(de).map_err(|err| {
        let path = err.path().to_string();
        let message = err.into_inner().to_string();
        let mut segments: Vec<String> = path
            .split('.')
            .filter(|s| !s.is_empty() && *s != "?")
            .map(str::to_owned)
            .collect();
        let (msg, kind) = if let Some(field) = missing_field(&message) {
            segments.push(field);
            ("Field required".to_owned(), "missing")
        } else if message.starts_with("unknown variant") {
            (capitalize(&message), "enum")
        } else {
            (capitalize(&message), "value_error")
        };
        let path: Vec<&str> = segments.iter().map(String::as_str).collect();
        ApiError::validation(ValidationItem::new(source, &path, msg, kind))
    })
}

/// Query parameters, with bad ones reported as 422 at `["query", name]`.
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        parse_urlencoded(query.as_bytes(), "query").map(ApiQuery)
    }
}

/// Largest page of a list (users, audit events).
pub const MAX_PAGE_SIZE: i64 = 100;

/// Checks `skip >= 0` and `1 <= limit <= 100` (default 100); 422 at
/// `["query", ...]` otherwise.
pub fn page_bounds(skip: Option<i64>, limit: Option<i64>) -> Result<(i64, i64), ApiError> {
    let skip = skip.unwrap_or(0);
    if skip < 0 {
        return Err(ApiError::validation(ValidationItem::new(
            "query",
            &["skip"],
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        )));
    }
    let limit = limit.unwrap_or(MAX_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&limit) {
        return Err(ApiError::validation(ValidationItem::new(
            "query",
            &["limit"],
            format!("Input should be between 1 and {MAX_PAGE_SIZE}"),
            if limit < 1 {
                "greater_than_equal"
            } else {
                "less_than_equal"
            },
        )));
    }
    Ok((skip, limit))
}

/// A JSON list with `X-Total-Count` (matches before paging).
pub fn with_total_count<T: serde::Serialize>(
    items: Vec<T>,
    total: i64,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let mut response = axum::Json(items).into_response();
    response.headers_mut().insert(
        header::HeaderName::from_static("x-total-count"),
        header::HeaderValue::from(total),
    );
    response
}

/// Reads the one path parameter as a positive integer; 422 at
/// `["path", name]` otherwise.
pub async fn positive_path_id<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    name: &str,
) -> Result<i64, ApiError> {
    let invalid = || {
        ApiError::validation(ValidationItem::new(
            "path",
            &[name],
            "Input should be a positive integer",
            "int_parsing",
        ))
    };
    let axum::extract::Path(raw) = axum::extract::Path::<String>::from_request_parts(parts, state)
        .await
        .map_err(|_| invalid())?;
    match raw.parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err(invalid()),
    }
}

/// A user id from the path: a positive integer, or 422.
pub struct UserIdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for UserIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        positive_path_id(parts, state, "user_id")
            .await
            .map(UserIdPath)
    }
}

/// A session id from the path: a positive integer, or 422.
pub struct SessionIdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for SessionIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        positive_path_id(parts, state, "session_id")
            .await
            .map(SessionIdPath)
    }
}

/// The bearer token of the `Authorization` header; 401 "Not authenticated" without one.
pub struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        bearer_token(&parts.headers)
            .map(BearerToken)
            .ok_or(ApiError::NotAuthenticated)
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// The authenticated caller. Missing credentials: 401 "Not authenticated";
/// invalid, expired or revoked token: 401 "Could not validate credentials".
pub struct CurrentUser(pub Actor);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let BearerToken(token) = BearerToken::from_request_parts(parts, state).await?;
        match state.services.auth.authenticate(&token).await {
            Ok(mut actor) => {
                actor.client = client_info(&parts.headers, &parts.extensions, state);
                tracing::Span::current().record("user_id", actor.user.id);
                Ok(CurrentUser(actor))
            }
            Err(ServiceError::TokenAlreadyInvalidated) => Err(ServiceError::InvalidToken.into()),
            Err(err) => Err(err.into()),
        }
    }
}

/// Like [`CurrentUser`], but anonymous callers are allowed (`None`). A token
/// that is present but invalid is still refused.
pub struct MaybeUser(pub Option<Actor>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if bearer_token(&parts.headers).is_none() {
            return Ok(MaybeUser(None));
        }
        CurrentUser::from_request_parts(parts, state)
            .await
            .map(|CurrentUser(actor)| MaybeUser(Some(actor)))
    }
}

/// The client's user agent and address, recorded on new sessions, in the
/// audit log, and counted by throttling.
pub struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Client(client_info(
            &parts.headers,
            &parts.extensions,
            state,
        )))
    }
}

/// The user agent and address of a request (see [`client_ip`]).
pub fn client_info(
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
    state: &AppState,
) -> ClientInfo {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok());
    // As axum's `ConnectInfo` extractor does: the real peer, else the mock one
    // (`MockConnectInfo`, used when the router is driven without a socket).
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .or_else(|| {
            extensions
                .get::<axum::extract::connect_info::MockConnectInfo<SocketAddr>>()
                .map(|mock| mock.0.ip())
        });
    let ip = peer.map(|peer| {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok());
        client_ip(peer, forwarded, &state.config.trusted_proxies).to_string()
    });
    ClientInfo::new(user_agent, ip)
}

/// The client's address: the socket peer, unless the peer is a trusted
/// proxy; then `X-Forwarded-For` is read from the right, skipping trusted
/// hops, and the first untrusted hop is the client. Hops to the left of it
/// were written by the client and are never believed. A forged header from
/// an untrusted peer changes nothing.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[ipnet::IpNet],
) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if is_trusted(&ip) => client = ip,
            Some(ip) => return ip,
            // Garbage where an address belongs: stop at the last trusted hop.
            None => return client,
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly `[v6]:port` or `v4:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Body {
        email: String,
        nested: Option<Inner>,
    }
    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Inner {
        count: u32,
    }

    fn items(err: ApiError) -> Vec<ValidationItem> {
        match err {
            ApiError::Validation(items) => items,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    #[test]
    fn missing_fields_are_located() {
        let item = &items(parse_json::<Body>(br#"{"nested": null}"#).unwrap_err())[0];
        assert_eq!(
            item.loc,
            vec![serde_json::json!("body"), serde_json::json!("email")]
        );
        assert_eq!(item.kind, "missing");
        assert_eq!(item.msg, "Field required");
    }

    #[test]
    fn wrong_types_are_located_without_positions() {
        let item =
            &items(parse_json::<Body>(br#"{"email": "a", "nested": {"count": "x"}}"#).unwrap_err())
                [0];
        assert_eq!(
            item.loc,
            vec![
                serde_json::json!("body"),
                serde_json::json!("nested"),
                serde_json::json!("count")
            ]
        );
        assert_eq!(item.kind, "type_error");
        assert!(!item.msg.contains("line"), "{}", item.msg);
    }

    #[test]
    fn broken_json_is_json_invalid() {
        for body in [
            &b"{\"email\": "[..],
            b"",
            b"not json",
            br#"{"email": "a"} trailing"#,
            b"[1,2]",
        ] {
            let item = &items(parse_json::<Body>(body).unwrap_err())[0];
            assert!(
                matches!(item.kind.as_str(), "json_invalid" | "type_error"),
                "{body:?}: {item:?}"
            );
        }
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            "bearer abc.def".parse().expect("header"),
        );
        assert_eq!(bearer_token(&headers).as_deref(), Some("abc.def"));
        headers.insert(
            header::AUTHORIZATION,
            "Basic dXNlcjpwYXNz".parse().expect("header"),
        );
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().expect("header"));
        assert_eq!(bearer_token(&headers), None);
    }
}

#[cfg(test)]
mod client_ip_tests {
    use super::client_ip;
    use std::net::IpAddr;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn nets(list: &[&str]) -> Vec<ipnet::IpNet> {
        list.iter().map(|n| n.parse().expect("cidr")).collect()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let forged = ["203.0.113.9, 10.0.0.1"];
        assert_eq!(
            client_ip(ip("198.51.100.7"), forged.into_iter(), &[]),
            ip("198.51.100.7")
        );
        assert_eq!(
            client_ip(
                ip("198.51.100.7"),
                forged.into_iter(),
                &nets(&["10.0.0.0/8"])
            ),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn a_trusted_peer_yields_the_right_most_untrusted_hop() {
        let trusted = nets(&["10.0.0.0/8", "192.168.1.1/32"]);
        // client-forged, real client, inner proxy (trusted) -> peer is a trusted proxy
        let header = ["1.1.1.1, 203.0.113.9", "10.1.1.1"];
        assert_eq!(
            client_ip(ip("192.168.1.1"), header.into_iter(), &trusted),
            ip("203.0.113.9")
        );
        // Only trusted hops: the left-most of them.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["10.0.0.3"].into_iter(), &trusted),
            ip("10.0.0.3")
        );
        // No header at all: the proxy itself.
        assert_eq!(
            client_ip(ip("10.0.0.2"), std::iter::empty(), &trusted),
            ip("10.0.0.2")
        );
        // Garbage hop: stop at the last trusted address.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["evil, nonsense"].into_iter(), &trusted),
            ip("10.0.0.2")
        );
        // Ports and IPv6.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["[2001:db8::1]:4711"].into_iter(), &trusted),
            ip("2001:db8::1")
        );
    }
}
