//! `/api/v1/audit` (admin) and `/api/v1/users/me/audit`: the security audit log.

use super::{
    error::ApiError,
    extract::{listing_error, page, with_total_count, ApiQuery, CurrentUser},
    openapi::{AdminOnly, SignedIn, ValidationError},
};
use crate::{
    domain::{AuditEventType, AuditEventView, AuditQuery, MAX_PAGE_SIZE},
    state::AppState,
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
    /// At or before this instant (RFC 3339); not before `since`.
    until: Option<DateTime<Utc>>,
    /// Events to skip.
    #[param(minimum = 0, maximum = 1_000_000_000, default = 0)]
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
    #[param(minimum = 0, maximum = 1_000_000_000, default = 0)]
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
        (status = 422, description = "A parameter is malformed or out of range", body = ValidationError),
        AdminOnly
    ))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(query): ApiQuery<AuditListQuery>,
) -> Result<Response, ApiError> {
    let window = page(query.skip, query.limit)?;
    let filter = AuditQuery::new(query.user_id, query.event_type, query.since, query.until)
        .map_err(|err| listing_error(err, MAX_PAGE_SIZE))?;
    let found = state.services.audit.list(&actor, &filter, window).await?;
    Ok(with_total_count(found.events, found.total))
}

/// The security events of the caller's own account, newest first.
#[utoipa::path(get, path = "/api/v1/users/me/audit", tag = "audit", operation_id = "list_my_audit_events",
    security(("bearer" = []), ("oauth2" = [])),
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the caller's events", body = [AuditEventView],
            headers(("X-Total-Count" = i64, description = "Matches before paging"))),
        (status = 422, description = "A parameter is out of range", body = ValidationError),
        SignedIn
    ))]
pub async fn list_mine(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(query): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let window = page(query.skip, query.limit)?;
    let found = state.services.audit.list_mine(&actor, window).await?;
    Ok(with_total_count(found.events, found.total))
}
