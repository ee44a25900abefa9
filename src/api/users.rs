//! `/api/v1/users*`: registration, the caller's own account, and admin CRUD.

use super::{
    error::ApiError,
    extract::{
        page, with_total_count, ApiJson, ApiQuery, Client, CurrentUser, MaybeUser, UserIdPath,
    },
    openapi::{AdminOnly, ErrorDetail, JsonBody, SignedIn, ValidationError},
};
use crate::{
    domain::{Role, UserFilter, UserView},
    services::{Actor, NewUserInput, UpdateMeInput, UpdateUserInput},
    state::AppState,
};
use axum::{extract::State, http::StatusCode, response::Response, Json};
use secrecy::SecretString;
use serde::Deserialize;

/// Body of `POST /api/v1/users`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct CreateUserBody {
    #[schema(format = "email", max_length = 254)]
    email: String,
    /// Common or guessable passwords are refused. The length bounds are the
    /// server's policy (`PASSWORD_MIN_LENGTH` to 128 characters).
    #[schema(value_type = String, format = Password)]
    password: SecretString,
    /// Only admins may ask for `admin`.
    role: Option<Role>,
    /// Only admins may create inactive users.
    is_active: Option<bool>,
}

impl From<CreateUserBody> for NewUserInput {
    fn from(body: CreateUserBody) -> Self {
        let CreateUserBody {
            email,
            password,
            role,
            is_active,
        } = body;
        NewUserInput {
            email,
            password,
            role,
            is_active,
        }
    }
}

/// Register (anyone, while registration is open) or create a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users",
    security((), ("bearer" = []), ("oauth2" = [])),
    request_body(content = CreateUserBody, content_type = "application/json"),
    responses(
        (status = 201, description = "Created", body = UserView),
        (status = 400, description = "Email already registered", body = ErrorDetail),
        (status = 401, description = "A bearer token was sent but is invalid", body = ErrorDetail),
        (status = 403, description = "Registration closed, or role/is_active asked by a non-admin", body = ErrorDetail),
        (status = 422, description = "Invalid email or password", body = ValidationError),
        (status = 429, description = "Too many sign-ups from this address", body = ErrorDetail,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        JsonBody
    ))]
pub async fn create(
    State(state): State<AppState>,
    MaybeUser(caller): MaybeUser,
    Client(client): Client,
    ApiJson(body): ApiJson<CreateUserBody>,
) -> Result<(StatusCode, Json<UserView>), ApiError> {
    let input = NewUserInput::from(body);
    // An admin's token makes this an admin's user creation; without one
    // (anonymous, or a regular user's token) it is a sign-up.
    let users = &state.services.users;
    let user = match caller.filter(Actor::is_admin) {
        Some(admin) => users.create_user(&admin, input).await?,
        None => users.sign_up(input, &client).await?,
    };
    Ok((StatusCode::CREATED, Json(user.view())))
}

/// The caller's account.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller", body = UserView),
        SignedIn
    ))]
pub async fn me(CurrentUser(actor): CurrentUser) -> Json<UserView> {
    Json(actor.user.view())
}

/// Body of `PUT`/`PATCH /api/v1/users/me`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateMeBody {
    #[schema(format = "email", max_length = 254)]
    email: Option<String>,
    /// The length bounds are the server's policy.
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    /// Required to change the email or the password.
    #[schema(value_type = Option<String>, format = Password)]
    current_password: Option<SecretString>,
    /// Accepted only when it is the caller's current role.
    role: Option<Role>,
}

impl From<UpdateMeBody> for UpdateMeInput {
    fn from(body: UpdateMeBody) -> Self {
        let UpdateMeBody {
            email,
            password,
            current_password,
            role,
        } = body;
        UpdateMeInput {
            email,
            password,
            current_password,
            role,
        }
    }
}

/// Change the caller's email or password (a password change signs out every
/// other session).
#[utoipa::path(method(put, patch), path = "/api/v1/users/me", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body(content = UpdateMeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = UserView),
        (status = 400, description = "Email already registered", body = ErrorDetail),
        (status = 403, description = "Incorrect password, or an attempt to change one's own role", body = ErrorDetail),
        (status = 422, description = "Invalid input or missing current_password", body = ValidationError),
        SignedIn, JsonBody
    ))]
pub async fn update_me(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<UpdateMeBody>,
) -> Result<Json<UserView>, ApiError> {
    let user = state.services.users.update_me(&actor, body.into()).await?;
    Ok(Json(user.view()))
}

/// Body of `DELETE /api/v1/users/me`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct DeleteMeBody {
    /// The caller's password: deleting the account needs it, as on the profile page.
    #[schema(value_type = String, format = Password)]
    current_password: SecretString,
}

/// Delete the caller's own account, as the profile page does: the current
/// password is required, and the last active admin cannot leave. Every
/// session of the account ends with it (its tokens stop working at once).
/// Answers with the deleted account.
#[utoipa::path(delete, path = "/api/v1/users/me", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body(content = DeleteMeBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Deleted", body = UserView),
        (status = 403, description = "Incorrect password", body = ErrorDetail),
        (status = 409, description = "The caller is the last active admin", body = ErrorDetail),
        (status = 422, description = "Missing current_password", body = ValidationError),
        SignedIn, JsonBody
    ))]
pub async fn delete_me(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiJson(body): ApiJson<DeleteMeBody>,
) -> Result<Json<UserView>, ApiError> {
    let deleted = state
        .services
        .users
        .delete_me(&actor, body.current_password)
        .await?;
    Ok(Json(deleted.view()))
}

/// Query of `GET /api/v1/users`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Users to skip.
    #[param(minimum = 0, maximum = 1_000_000_000, default = 0)]
    skip: Option<i64>,
    /// Page size.
    #[param(minimum = 1, maximum = 100, default = 100)]
    limit: Option<i64>,
    /// Case-insensitive substring of the email.
    q: Option<String>,
    role: Option<Role>,
    is_active: Option<bool>,
}

/// A page of users ordered by id; `X-Total-Count` holds the number of matches
/// before paging.
#[utoipa::path(get, path = "/api/v1/users", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of users", body = [UserView],
            headers(("X-Total-Count" = i64, description = "Matches before paging"))),
        (status = 422, description = "A parameter is out of range", body = ValidationError),
        AdminOnly
    ))]
pub async fn list(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let window = page(query.skip, query.limit)?;
    let filter = UserFilter::new(query.q.as_deref(), query.role, query.is_active);
    let found = state.services.users.list(&actor, &filter, window).await?;
    let views: Vec<UserView> = found.users.iter().map(|u| u.view()).collect();
    Ok(with_total_count(views, found.total))
}

/// One user (admin).
#[utoipa::path(get, path = "/api/v1/users/{user_id}", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, minimum = 1, description = "User id")),
    responses(
        (status = 200, description = "The user", body = UserView),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 422, description = "The id is not a positive integer", body = ValidationError),
        AdminOnly
    ))]
pub async fn get(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(id): UserIdPath,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(state.services.users.get(&actor, id).await?.view()))
}

/// Body of `PUT`/`PATCH /api/v1/users/{id}`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct UpdateUserBody {
    #[schema(format = "email", max_length = 254)]
    email: Option<String>,
    /// A new password signs the user out everywhere. The length bounds are
    /// the server's policy.
    #[schema(value_type = Option<String>, format = Password)]
    password: Option<SecretString>,
    role: Option<Role>,
    /// `false` signs the user out everywhere.
    is_active: Option<bool>,
}

impl From<UpdateUserBody> for UpdateUserInput {
    fn from(body: UpdateUserBody) -> Self {
        let UpdateUserBody {
            email,
            password,
            role,
            is_active,
        } = body;
        UpdateUserInput {
            email,
            password,
            role,
            is_active,
        }
    }
}

/// Change a user (admin). Demoting or deactivating the last active admin is refused.
#[utoipa::path(method(put, patch), path = "/api/v1/users/{user_id}", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, minimum = 1, description = "User id")),
    request_body(content = UpdateUserBody, content_type = "application/json"),
    responses(
        (status = 200, description = "Updated", body = UserView),
        (status = 400, description = "Email already registered", body = ErrorDetail),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 409, description = "Cannot remove the last active admin", body = ErrorDetail),
        (status = 422, description = "Invalid input", body = ValidationError),
        AdminOnly, JsonBody
    ))]
pub async fn update(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(id): UserIdPath,
    ApiJson(body): ApiJson<UpdateUserBody>,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(
        state
            .services
            .users
            .update(&actor, id, body.into())
            .await?
            .view(),
    ))
}

/// Delete a user (admin); answers with the deleted user.
#[utoipa::path(delete, path = "/api/v1/users/{user_id}", tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("user_id" = i64, Path, minimum = 1, description = "User id")),
    responses(
        (status = 200, description = "Deleted", body = UserView),
        (status = 404, description = "User not found", body = ErrorDetail),
        (status = 409, description = "Cannot remove the last active admin", body = ErrorDetail),
        (status = 422, description = "The id is not a positive integer", body = ValidationError),
        AdminOnly
    ))]
pub async fn delete(
    State(state): State<AppState>,
    CurrentUser(actor): CurrentUser,
    UserIdPath(id): UserIdPath,
) -> Result<Json<UserView>, ApiError> {
    Ok(Json(state.services.users.delete(&actor, id).await?.view()))
}
