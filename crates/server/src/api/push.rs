//! Web Push devices: the VAPID key for the console, subscribing a device,
//! removing one, and a test alert. Everyone who may watch may be alerted;
//! each sees and removes their own devices, an admin everyone's.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use canary_shared::Role;
use canary_shared::push::{PushDevice, PushOverview, PushSubscribe, PushTestResult};

use crate::adapters::push::SubscribeError;
use crate::adapters::store::{StoreError, StoredSubscription};
use crate::api::access::Identity;
use crate::api::body::Body;
use crate::api::{ApiError, AppState};

fn store_failed(err: StoreError) -> ApiError {
    ApiError::Internal(format!("push devices: {err}"))
}

/// The devices `identity` may see and remove: all of them for an admin.
fn whose(identity: &Identity) -> Option<&str> {
    (identity.role != Role::Admin).then_some(identity.name.as_str())
}

/// `GET /admin/canary/push`: the public key to subscribe with and the devices.
pub(crate) async fn overview(
    State(app): State<AppState>,
    axum::Extension(identity): axum::Extension<Identity>,
) -> Result<Json<PushOverview>, ApiError> {
    app.push
        .overview(whose(&identity))
        .map(Json)
        .map_err(store_failed)
}

/// `POST /admin/canary/push/devices`: subscribes the caller's device.
pub(crate) async fn subscribe(
    State(app): State<AppState>,
    axum::Extension(identity): axum::Extension<Identity>,
    headers: HeaderMap,
    Body(request): Body<PushSubscribe>,
) -> Result<(StatusCode, Json<PushDevice>), ApiError> {
    let agent = headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    match app.push.subscribe(&identity.name, &request, agent) {
        Ok(device) => Ok((StatusCode::CREATED, Json(device))),
        Err(SubscribeError::Invalid { field, message }) => Err(ApiError::UnprocessableField {
            field,
            message: format!("{field}: {message}"),
        }),
        Err(SubscribeError::Store(err)) => Err(store_failed(err)),
    }
}

/// The device at `/push/devices/{id}` if the caller may act on it.
fn device_of(
    app: &AppState,
    identity: &Identity,
    id: &str,
) -> Result<StoredSubscription, ApiError> {
    let not_found = || ApiError::NotFound {
        path: format!("{}/{id}", canary_shared::push::PUSH_DEVICES_PATH),
    };
    let id: u64 = id.parse().map_err(|_| ApiError::InvalidField {
        field: "id",
        message: format!("id: a device's id is a whole number, got {id:?}"),
    })?;
    // The store numbers devices as SQLite's signed 64-bit integers: a
    // larger id names no device.
    if i64::try_from(id).is_err() {
        return Err(not_found());
    }
    app.push
        .device(id, whose(identity))
        .map_err(store_failed)?
        .ok_or_else(not_found)
}

/// `DELETE /admin/canary/push/devices/{id}`: the device gets no more alerts.
pub(crate) async fn remove(
    State(app): State<AppState>,
    axum::Extension(identity): axum::Extension<Identity>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let device = device_of(&app, &identity, &id)?;
    app.push.remove(device.id).map_err(store_failed)?;
    tracing::info!(by = %identity.name, device = device.id, owner = %device.user, "push device removed");
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /admin/canary/push/devices/{id}/test`: sends the device a test
/// alert now and answers with what its push service said.
pub(crate) async fn test(
    State(app): State<AppState>,
    axum::Extension(identity): axum::Extension<Identity>,
    Path(id): Path<String>,
) -> Result<Json<PushTestResult>, ApiError> {
    let device = device_of(&app, &identity, &id)?;
    Ok(Json(app.push.test(device, &identity.name).await))
}
