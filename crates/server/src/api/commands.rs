//! Operator commands over REST.
//!
//! `POST /admin/canary/scale/{percent}` sets the canary share; the answer is
//! the state with the share in effect. The deployment controller will add the
//! rest of the commands (start, continue, pause, resume, promote, rollback,
//! stop) with their audit entries.

use axum::Json;
use axum::extract::{Path, State};
use canary_shared::{CanaryShare, CanaryState, ShareError};
use tokio::sync::oneshot;

use crate::api::{ApiError, AppState};
use crate::controller::Event;

/// `POST /admin/canary/scale/{percent}`: any share from 0 to 100 with at most two decimals.
pub(crate) async fn scale(
    State(app): State<AppState>,
    Path(percent): Path<String>,
) -> Result<Json<CanaryState>, ApiError> {
    let value: f64 = percent.trim().parse().map_err(|_| ApiError::InvalidField {
        field: "percent",
        message: format!("percent must be a number from 0 to 100, got {percent:?}"),
    })?;
    let share = CanaryShare::from_percent(value).map_err(|err| ApiError::UnprocessableField {
        field: "percent",
        message: match err {
            ShareError::NotANumber => {
                format!("percent must be a number from 0 to 100, got {percent:?}")
            }
            other => format!("percent: {other}"),
        },
    })?;
    let (applied_tx, applied_rx) = oneshot::channel();
    app.events
        .send(Event::SetShare {
            share,
            applied: Some(applied_tx),
        })
        .await
        .map_err(|_| ApiError::Unavailable("the controller is not running".to_owned()))?;
    let state = applied_rx.await.map_err(|_| {
        ApiError::Unavailable("the controller stopped before applying the share".to_owned())
    })?;
    Ok(Json(state))
}

/// `POST /admin/canary/scale` without a share.
pub(crate) async fn scale_without_percent() -> ApiError {
    ApiError::InvalidField {
        field: "percent",
        message: "percent is missing: POST /admin/canary/scale/{percent}, for example /admin/canary/scale/25".to_owned(),
    }
}
