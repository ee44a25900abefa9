//! `/api/v1/users*`: registration, the caller's own account, and admin CRUD.

use super::{
    error::{ApiError, ValidationItem},
    extract::{ApiJson, ApiQuery, CurrentUser, MaybeUser, UserIdPath},
};
use crate::{
    domain::{Role, UserView},
    repositories::UserFilter,
    services::{NewUserInput, UpdateMeInput, UpdateUserInput},
    startup::AppState,
};
use axum::{
    extract::State,
    http::{HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use secrecy::SecretString;
use serde::Deserialize;

/// Largest page of the user list.
pub const MAX_PAGE_SIZE: i64 = 100;

/// Body of `POST /api/v1/users`.
#[derive(Deserialize)]
pub struct CreateUserBody {
    email: String,
    password: SecretString,
    role: Option<Role>,
    is_active: Option<bool>,
}

/// `POST /api/v1/users`: self-registration, or an admin creating a user.
pub async fn create(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let input = NewUserInput {
        email: body.email,
        password: body.password,
        role: body.role,
        is_active: body.is_active,
    };
    let user = state
        .services
        .users
        .register(caller.as_ref(), input)
        .await?;
    Ok((StatusCode::CREATED, Json(user.view())))
}

/// `GET /api/v1/users/me`.
pub async fn me(CurrentUser(actor): CurrentUser) -> Json<UserView> {
    Json(actor.user.view())
}

/// Body of `PUT`/`PATCH /api/v1/users/me`.
#[derive(Deserialize)]
pub struct UpdateMeBody {
    email: Option<String>,
    password: Option<SecretString>,
    current_password: Option<SecretString>,
    role: Option<Role>,
}

/// `PUT`/`PATCH /api/v1/users/me`.
pub async fn update_me(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<UpdateMeBody>,
) -> Result<Json<UserView>, ApiError> {
    let input = UpdateMeInput {
        email: body.email,
        password: body.password,
        current_password: body.current_password,
        role: body.role,
    };
    let user = state.services.users.update_me(&actor, input).await?;
    Ok(Json(user.view()))
}

/// Query of `GET /api/v1/users`.
#[derive(Deserialize)]
pub struct ListQuery {
    skip: Option<i64>,
    limit: Option<i64>,
    q: Option<String>,
    role: Option<Role>,
    is_active: Option<bool>,
}

/// `GET /api/v1/users`: a page of users ordered by id; `X-Total-Count` holds
/// the number of matches before paging.
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let skip = query.skip.unwrap_or(0);
    if skip < 0 {
        return Err(ApiError::validation(ValidationItem::new(
            "query",
            &["skip"],
            "Input should be greater than or equal to 0",
            "greater_than_equal",
        )));
    }
    let limit = query.limit.unwrap_or(MAX_PAGE_SIZE);
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
    let filter = UserFilter {
        email_contains: query.q.filter(|q| !q.is_empty()),
        role: query.role,
        is_active: query.is_active,
    };
    let page = state
        .services
        .users
        .list(&actor, filter, skip, limit)
        .await?;
    let views: Vec<UserView> = page.users.iter().map(|u| u.view()).collect();
    let mut response = Json(views).into_response();
    response.headers_mut().insert(
        HeaderName::from_static("x-total-count"),
        HeaderValue::from(page.total),
    );
    Ok(response)
}

/// `GET /api/v1/users/{id}`.
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(id): UserIdPath,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(state.services.users.get(&actor, id).await?.view()))
}

/// Body of `PUT`/`PATCH /api/v1/users/{id}`.
#[derive(Deserialize)]
pub struct UpdateUserBody {
    email: Option<String>,
    password: Option<SecretString>,
    role: Option<Role>,
    is_active: Option<bool>,
}

/// `PUT`/`PATCH /api/v1/users/{id}`.
pub async fn update(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(id): UserIdPath,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> Result<Json<UserView>, ApiError> {
    let input = UpdateUserInput {
        email: body.email,
        password: body.password,
        role: body.role,
        is_active: body.is_active,
    };
    Ok(Json(
        state.services.users.update(&actor, id, input).await?.view(),
    ))
}

/// `DELETE /api/v1/users/{id}`: answers with the deleted user.
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(id): UserIdPath,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(state.services.users.delete(&actor, id).await?.view()))
}
