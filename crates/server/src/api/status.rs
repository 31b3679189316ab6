//! `GET /admin/canary/status`.

use axum::Json;
use axum::extract::State;
use canary_shared::CanaryState;

use crate::api::AppState;

/// The current [`CanaryState`].
pub(crate) async fn get_status(State(app): State<AppState>) -> Json<CanaryState> {
    Json(app.state.borrow().clone())
}
