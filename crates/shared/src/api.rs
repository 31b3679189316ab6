//! The REST contract: paths, request bodies, operator commands and the error body.

use serde::{Deserialize, Serialize};

use crate::share::CanaryShare;

/// Where the console and the API live.
pub const BASE_PATH: &str = "/admin/canary";
/// `GET`: the current [`crate::CanaryState`].
pub const STATUS_PATH: &str = "/admin/canary/status";
/// `GET`: the current [`crate::MetricsSnapshot`].
pub const METRICS_PATH: &str = "/admin/canary/metrics";
/// `GET`: the current rollout's [`crate::ShadowReport`], whole.
pub const VALIDATION_PATH: &str = "/admin/canary/validation";
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
    /// Within the undo window after a promotion: send all traffic back to
    /// the previous production version, kept deployed as a warm standby.
    UndoPromotion {
        /// Why.
        reason: String,
    },
}

/// The REST paths of the commands: one list for the server's router, the
/// console and the CLI. Each takes `POST`; scale takes the share after a
/// slash (`/admin/canary/scale/25`).
pub mod command_paths {
    /// [`super::Command::Start`], with a [`super::StartRequest`].
    pub const START: &str = "/admin/canary/start";
    /// [`super::Command::Scale`], followed by `/{percent}`.
    pub const SCALE: &str = "/admin/canary/scale";
    /// [`super::Command::Continue`].
    pub const CONTINUE: &str = "/admin/canary/continue";
    /// [`super::Command::Pause`].
    pub const PAUSE: &str = "/admin/canary/pause";
    /// [`super::Command::Resume`].
    pub const RESUME: &str = "/admin/canary/resume";
    /// [`super::Command::Promote`].
    pub const PROMOTE: &str = "/admin/canary/promote";
    /// [`super::Command::SetAutoProgression`], with `{"enabled": …}`.
    pub const AUTO_PROGRESSION: &str = "/admin/canary/auto-progression";
    /// [`super::Command::Rollback`], with an optional `{"reason": …}`.
    pub const ROLLBACK: &str = "/admin/canary/rollback";
    /// [`super::Command::Stop`], with an optional `{"reason": …}`.
    pub const STOP: &str = "/admin/canary/stop";
    /// [`super::Command::UndoPromotion`], with an optional `{"reason": …}`.
    pub const UNDO_PROMOTION: &str = "/admin/canary/undo-promotion";
}

/// The JSON body a command's REST request carries.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum CommandBody<'a> {
    /// `{"image_tag": …, "traffic_percent": …}`.
    Start(&'a StartRequest),
    /// `{"enabled": …}`.
    AutoProgression {
        /// Whether green checks advance the rollout by themselves.
        enabled: bool,
    },
    /// `{"reason": …}`.
    Reason {
        /// Why, for the audit trail.
        reason: &'a str,
    },
}

impl Command {
    /// The REST request that carries this command: its path from the
    /// server's root, and its body if it has one (a blank reason is left
    /// out, and the server says why in its own words).
    pub fn rest_request(&self) -> (String, Option<CommandBody<'_>>) {
        match self {
            Command::Start(request) => (
                command_paths::START.to_owned(),
                Some(CommandBody::Start(request)),
            ),
            Command::Scale { percent } => (
                format!("{}/{}", command_paths::SCALE, percent.percent()),
                None,
            ),
            Command::Continue => (command_paths::CONTINUE.to_owned(), None),
            Command::Pause => (command_paths::PAUSE.to_owned(), None),
            Command::Resume => (command_paths::RESUME.to_owned(), None),
            Command::Promote => (command_paths::PROMOTE.to_owned(), None),
            Command::SetAutoProgression { enabled } => (
                command_paths::AUTO_PROGRESSION.to_owned(),
                Some(CommandBody::AutoProgression { enabled: *enabled }),
            ),
            Command::Rollback { reason } => {
                (command_paths::ROLLBACK.to_owned(), reason_body(reason))
            }
            Command::Stop { reason } => (command_paths::STOP.to_owned(), reason_body(reason)),
            Command::UndoPromotion { reason } => (
                command_paths::UNDO_PROMOTION.to_owned(),
                reason_body(reason),
            ),
        }
    }
}

fn reason_body(reason: &str) -> Option<CommandBody<'_>> {
    (!reason.trim().is_empty()).then_some(CommandBody::Reason { reason })
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

#[cfg(test)]
mod tests {
    use crate::api::{Command, StartRequest};
    use crate::share::CanaryShare;

    #[test]
    fn every_command_has_one_rest_request() {
        let start = StartRequest {
            image_tag: "v2.7.0".to_owned(),
            traffic_percent: CanaryShare::from_percent(5.0).unwrap(),
        };
        let requests: Vec<String> = [
            Command::Start(start),
            Command::Scale {
                percent: CanaryShare::from_percent(12.5).unwrap(),
            },
            Command::Continue,
            Command::Pause,
            Command::Resume,
            Command::Promote,
            Command::SetAutoProgression { enabled: false },
            Command::Rollback {
                reason: "p99 too high".to_owned(),
            },
            Command::Stop {
                reason: "  ".to_owned(),
            },
            Command::UndoPromotion {
                reason: "v2.7.0 leaks memory".to_owned(),
            },
        ]
        .iter()
        .map(|command| {
            let (path, body) = command.rest_request();
            let body = body.map_or_else(String::new, |body| serde_json::to_string(&body).unwrap());
            format!("POST {path} {body}")
        })
        .collect();
        assert_eq!(
            requests,
            [
                r#"POST /admin/canary/start {"image_tag":"v2.7.0","traffic_percent":5.0}"#,
                "POST /admin/canary/scale/12.5 ",
                "POST /admin/canary/continue ",
                "POST /admin/canary/pause ",
                "POST /admin/canary/resume ",
                "POST /admin/canary/promote ",
                r#"POST /admin/canary/auto-progression {"enabled":false}"#,
                r#"POST /admin/canary/rollback {"reason":"p99 too high"}"#,
                "POST /admin/canary/stop ",
                r#"POST /admin/canary/undo-promotion {"reason":"v2.7.0 leaks memory"}"#,
            ]
        );
    }
}
