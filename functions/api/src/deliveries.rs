//! `/deliveries`: the in-app inbox — what was sent to the caller, newest first, with read state.
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::Json;
use notify_domain::Delivery;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::extract::{Id, JsonBody, Paging, User};
use crate::resources::ListView;
use crate::AppState;

#[derive(Deserialize)]
pub struct InboxFilter {
    /// `?unread=true` lists only unread deliveries.
    #[serde(default)]
    unread: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadState {
    read: bool,
}

pub async fn list(
    State(state): State<AppState>,
    User(user): User,
    Paging(page): Paging,
    Query(filter): Query<InboxFilter>,
) -> Result<Json<ListView<Delivery>>, ApiError> {
    let unread_only = match filter.unread.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::BadRequest {
                detail: format!("unread must be true or false, not '{other}'"),
                field: Some("unread".into()),
            })
        }
    };
    let page = state
        .dispatcher
        .deliveries
        .list_deliveries(&user, &page, unread_only)
        .await?;
    Ok(Json(ListView::from_page(page, |d| d)))
}

pub async fn get(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
) -> Result<Json<Delivery>, ApiError> {
    state
        .dispatcher
        .deliveries
        .get_delivery(&user, &id)
        .await?
        .map(Json)
        .ok_or(ApiError::not_found("delivery"))
}

/// `PATCH /deliveries/{id}` with `{"read": true|false}`.
pub async fn set_read(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
    JsonBody(body): JsonBody<ReadState>,
) -> Result<Json<Delivery>, ApiError> {
    state
        .dispatcher
        .deliveries
        .set_read(&user, &id, body.read)
        .await?
        .map(Json)
        .ok_or(ApiError::not_found("delivery"))
}

pub async fn delete(
    State(state): State<AppState>,
    User(user): User,
    Id(id): Id,
) -> Result<StatusCode, ApiError> {
    if state
        .dispatcher
        .deliveries
        .delete_delivery(&user, &id)
        .await?
    {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found("delivery"))
    }
}

/// `POST /deliveries/read-all`
pub async fn mark_all_read(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<Value>, ApiError> {
    let updated = state.dispatcher.deliveries.mark_all_read(&user).await?;
    Ok(Json(json!({ "updated": updated })))
}

/// `GET /deliveries/unread-count`
pub async fn unread_count(
    State(state): State<AppState>,
    User(user): User,
) -> Result<Json<Value>, ApiError> {
    let unread = state.dispatcher.deliveries.unread_count(&user).await?;
    Ok(Json(json!({ "unread": unread })))
}
