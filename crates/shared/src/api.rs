//! The REST contract: paths, request bodies, operator commands and the error body.

use serde::{Deserialize, Serialize};

use crate::share::CanaryShare;

/// Where the console and the API live.
pub const BASE_PATH: &str = "/admin/canary";
/// `GET`: the current [`crate::CanaryState`].
pub const STATUS_PATH: &str = "/admin/canary/status";
/// `GET`: the current [`crate::MetricsSnapshot`].
pub const METRICS_PATH: &str = "/admin/canary/metrics";
/// `GET`: the [`crate::RolloutSettings`] in effect.
pub const SETTINGS_PATH: &str = "/admin/canary/settings";
/// WebSocket: a stream of [`crate::ServerMessage`].
pub const STREAM_PATH: &str = "/admin/canary/ws";

/// The body of `POST /admin/canary/start`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    /// The image tag (version) to deploy as the canary.
    pub image_tag: String,
    /// The canary's first share; 5 % when left out.
    #[serde(default = "StartRequest::default_traffic_percent")]
    pub traffic_percent: CanaryShare,
}

impl StartRequest {
    fn default_traffic_percent() -> CanaryShare {
        CanaryShare::from_basis_points(500).expect("5 % is a valid share")
    }
}

/// What an operator or script asks the controller to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Deploy `image_tag` and start sending it `traffic_percent`.
    Start(StartRequest),
    /// Set the canary's share to any value, up or down.
    Scale {
        /// The new share.
        percent: CanaryShare,
    },
    /// Go on to the next configured step.
    Continue,
    /// Hold where it is.
    Pause,
    /// Go on after a pause.
    Resume,
    /// Move to 100 % and finish.
    Promote,
    /// Turn auto-progression on or off for the rollout in progress (the
    /// config's `auto_progression.enabled` applies again at the next start).
    SetAutoProgression {
        /// Whether green checks advance the rollout by themselves.
        enabled: bool,
    },
    /// Move traffic back to production.
    Rollback {
        /// Why.
        reason: String,
    },
    /// Emergency stop: 0 % canary at once.
    Stop {
        /// Why.
        reason: String,
    },
}

/// The JSON body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// A stable, machine-readable code (`"invalid_field"`, `"not_found"`, …).
    pub code: String,
    /// What went wrong, for people, naming the field when one is at fault.
    pub message: String,
    /// The field at fault, as a path (`"traffic_percent"`), when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}
