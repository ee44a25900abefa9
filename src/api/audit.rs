//! `/api/v1/audit` (admin) and `/api/v1/users/me/audit`: the security audit log.

use super::{
    error::{ApiError, ValidationItem},
    extract::{page_bounds, with_total_count, ApiQuery, CurrentUser},
    openapi::{ErrorDetail, ValidationError},
};
use crate::{
    domain::{AuditEventType, AuditEventView},
    services::AuditQuery,
    startup::AppState,
};
use axum::{extract::State, response::Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

/// Query of `GET /api/v1/audit`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditListQuery {
    /// Events done by, or concerning, this user.
    #[param(minimum = 1)]
    user_id: Option<i64>,
    /// Only events of this type.
    #[serde(rename = "type")]
    #[param(rename = "type", inline)]
    event_type: Option<AuditEventType>,
    /// At or after this instant (RFC 3339, e.g. `2026-01-31T00:00:00Z`).
    since: Option<DateTime<Utc>>,
    /// At or before this instant (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Events to skip.
    #[param(minimum = 0, default = 0)]
    skip: Option<i64>,
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 100)]
    limit: Option<i64>,
}

/// Query of `GET /api/v1/users/me/audit`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Events to skip.
    #[param(minimum = 0, default = 0)]
    skip: Option<i64>,
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 100)]
    limit: Option<i64>,
}

/// Security events, newest first (admin); `X-Total-Count` holds the number
/// of matches before paging.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", operation_id = "list_audit_events",
    security(("bearer" = []), ("oauth2" = [])),
    params(AuditListQuery),
    responses(
        (status = 200, description = "A page of events", body = [AuditEventView],
            headers(("X-Total-Count" = i64, description = "Matches before paging"))),
        (status = 401, description = "Not authenticated", body = ErrorDetail),
        (status = 403, description = "Not an admin", body = ErrorDetail),
        (status = 422, description = "A parameter is malformed or out of range", body = ValidationError)
    ))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(query): ApiQuery<AuditListQuery>,
) -> Result<Response, ApiError> {
    let (skip, limit) = page_bounds(query.skip, query.limit)?;
    if query.user_id.is_some_and(|id| id < 1) {
        return Err(ApiError::validation(ValidationItem::new(
            "query",
            &["user_id"],
            "Input should be greater than or equal to 1",
            "greater_than_equal",
        )));
    }
    let filter = AuditQuery {
        user_id: query.user_id,
        event_type: query.event_type,
        since: query.since,
        until: query.until,
    };
    let page = state
        .services
        .audit
        .list(&actor, filter, skip, limit)
        .await?;
    Ok(with_total_count(page.events, page.total))
}

/// The security events of the caller's own account, newest first.
#[utoipa::path(get, path = "/api/v1/users/me/audit", tag = "audit", operation_id = "list_my_audit_events",
    security(("bearer" = []), ("oauth2" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's events", body = [AuditEventView],
            headers(("X-Total-Count" = i64, description = "Matches before paging"))),
        (status = 401, description = "Not authenticated", body = ErrorDetail),
        (status = 422, description = "A parameter is out of range", body = ValidationError)
    ))]
pub async fn list_mine(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let (skip, limit) = page_bounds(query.skip, query.limit)?;
    let page = state.services.audit.list_mine(&actor, skip, limit).await?;
    Ok(with_total_count(page.events, page.total))
}
