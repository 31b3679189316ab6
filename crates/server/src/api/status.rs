//! `GET /admin/canary/status` and `GET /admin/canary/metrics`.

use axum::Json;
use axum::extract::State;
use canary_shared::{CanaryState, MetricsSnapshot};

use crate::api::AppState;

/// The current [`CanaryState`].
pub(crate) async fn get_status(State(app): State<AppState>) -> Json<CanaryState> {
    Json(app.state.borrow().clone())
}

/// The latest [`MetricsSnapshot`]: both sides' windows and five minutes of seconds.
pub(crate) async fn get_metrics(State(app): State<AppState>) -> Json<MetricsSnapshot> {
    Json(MetricsSnapshot::clone(&app.metrics.borrow()))
}
