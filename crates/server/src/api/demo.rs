//! The demo panel's API, served only by `canary demo`: read what the demo
//! services do, and change how the canary service answers.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use canary_shared::demo::{DEMO_PATH, DemoBehaviour, DemoStatus};

use crate::adapters::demo::DemoControl;
use crate::api::access::Identity;
use crate::api::body::json_body;
use crate::api::{ApiError, AppState};

fn control(app: &AppState) -> Result<&DemoControl, ApiError> {
    app.demo.as_deref().ok_or_else(|| ApiError::NotFound {
        path: format!("{DEMO_PATH} (only `canary demo` has demo services)"),
    })
}

/// `GET /admin/canary/demo`: the demo's status, or `204 No Content`
/// outside the demo (the console asks on every load; a 404 there would be
/// an error in every operator's browser console for a normal answer).
pub(crate) async fn get_demo(State(app): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let canary_url = app.state.borrow().canary.url.clone();
    match app.demo.as_deref() {
        Some(control) => Json(control.status(&canary_url)).into_response(),
        None => axum::http::StatusCode::NO_CONTENT.into_response(),
    }
}

/// `POST /admin/canary/demo` with a [`DemoBehaviour`]: how the canary
/// service answers from now on.
pub(crate) async fn set_demo(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<DemoStatus>, ApiError> {
    let control = control(&app)?;
    let behaviour: DemoBehaviour = json_body(&headers, &body?)?;
    if let Some((field, message)) = behaviour.invalid_field() {
        return Err(ApiError::UnprocessableField { field, message });
    }
    tracing::info!(actor = %identity.name, "demo: canary behaviour changed from the console");
    let canary_url = app.state.borrow().canary.url.clone();
    control.set_canary(&canary_url, behaviour);
    Ok(Json(control.status(&canary_url)))
}
