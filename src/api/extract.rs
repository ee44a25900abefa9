//! Request extractors that turn malformed input into clear 4xx answers in the
//! API's error format (never a 5xx, never a framework-formatted message).

use super::error::{ApiError, ValidationItem};
use crate::{
    domain::{ListingError, Page, MAX_OFFSET, MAX_PAGE_SIZE},
    services::{Actor, ClientInfo, ServiceError},
    state::AppState,
};
use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Request},
    http::{header, request::Parts, HeaderMap, StatusCode},
};
use serde::de::DeserializeOwned;

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

/// The page asked for by `skip` (default 0) and `limit` (default 100);
/// 422 at `["query", ...]` outside the bounds of [`Page`].
pub fn page(skip: Option<i64>, limit: Option<i64>) -> Result<Page, ApiError> {
    let limit = limit.unwrap_or(MAX_PAGE_SIZE);
    Page::new(skip.unwrap_or(0), limit).map_err(|err| listing_error(err, limit))
}

/// A broken listing bound as the API reports it: 422 at its query
/// parameter, worded like the rest of the API's validation errors.
/// `limit` is the page size asked for (it tells which end was missed).
pub fn listing_error(err: ListingError, limit: i64) -> ApiError {
    let (field, message, kind) = match err {
        ListingError::NegativeOffset => (
            "skip",
            "Input should be greater than or equal to 0".to_owned(),
            "greater_than_equal",
        ),
        ListingError::OffsetTooLarge => (
            "skip",
            format!("Input should be less than or equal to {MAX_OFFSET}"),
            "less_than_equal",
        ),
        ListingError::PageSize => (
            "limit",
            format!("Input should be between 1 and {MAX_PAGE_SIZE}"),
            if limit < 1 {
                "greater_than_equal"
            } else {
                "less_than_equal"
            },
        ),
        ListingError::UserId => (
            "user_id",
            "Input should be greater than or equal to 1".to_owned(),
            "greater_than_equal",
        ),
        ListingError::UntilBeforeSince => (
            "until",
            "Input should not be before since".to_owned(),
            "value_error",
        ),
    };
    ApiError::validation(ValidationItem::new("query", &[field], message, kind))
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

/// A passkey id from the path: a positive integer, or 422.
pub struct PasskeyIdPath(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PasskeyIdPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        positive_path_id(parts, state, "passkey_id")
            .await
            .map(PasskeyIdPath)
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
        let client = crate::client::of(&parts.extensions);
        match state.services.auth.authenticate(&token, client).await {
            Ok(actor) => {
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

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(crate::client::of(&parts.extensions)))
    }
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
