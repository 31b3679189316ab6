//! Reads: status, metrics, config and the OpenAPI document.

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

/// `GET /admin/canary/config`: the configuration in effect.
pub(crate) async fn get_config(State(app): State<AppState>) -> Json<crate::config::Config> {
    Json(crate::config::Config::clone(&app.config))
}

/// The OpenAPI document of this API.
pub(crate) const OPENAPI_YAML: &str = include_str!("../../openapi.yaml");

/// `GET /admin/canary/openapi.yaml`.
pub(crate) async fn get_openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/yaml")],
        OPENAPI_YAML,
    )
}
