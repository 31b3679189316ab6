//! `POST /admin/canary/webhook/{event}`: an external deploy script reports
//! progress instead of being run as a hook. `started` and `health-check`
//! are taken only with `hooks.wait_for_webhooks` on (otherwise canary runs
//! those stages itself); `traffic-updated` and `failed` act like the scale
//! and rollback commands, always.
//!
//! | event | body | meaning |
//! |---|---|---|
//! | `started` | `{"image_tag": "v2.7.0"}` (tag needed only when no canary runs) | the new version is deployed and running |
//! | `health-check` | `{"passed": true, "detail": "…"}` | the script's health check result |
//! | `traffic-updated` | `{"percent": 25}` | the script moved the share (for example in its own router) |
//! | `failed` | `{"reason": "…"}` | the deployment failed; before traffic it fails the rollout, after it rolls back |

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::{Extension, Json};
use canary_shared::{CanaryShare, CanaryState, Command, CredentialKind, Phase, StartRequest};
use serde::Deserialize;

use crate::api::access::Identity;
use crate::api::body::json_body_or_empty;
use crate::api::{ApiError, AppState};
use crate::domain::access::printable;
use crate::domain::deployment::{Hook, Input};

const LOCAL_WEBHOOK_ACTOR: &str = "webhook";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Started {
    #[serde(default)]
    image_tag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthReport {
    passed: bool,
    #[serde(default)]
    detail: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficReport {
    percent: CanaryShare,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailedReport {
    #[serde(default)]
    reason: Option<String>,
}

/// The longest detail or reason a deploy script's report keeps.
const MAX_REPORT_CHARS: usize = 1000;

/// Handles one reported event.
pub(crate) async fn report(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    Path(event): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<CanaryState>, ApiError> {
    let body = body.map_err(ApiError::from)?;
    // A token's reports carry its name; without logins they say "webhook".
    let actor = match identity.kind {
        CredentialKind::Local => LOCAL_WEBHOOK_ACTOR.to_owned(),
        CredentialKind::Session | CredentialKind::Token | CredentialKind::Proxy => identity.name,
    };
    let phase = app.state.borrow().phase;
    let controller = &app.controller;
    // A stage canary runs itself (a deploy or health-check hook, or the
    // built-in health check) is not completed by a report: as docs/api.md
    // says, those reports are taken only with `hooks.wait_for_webhooks`.
    if matches!(event.as_str(), "started" | "health-check") && !app.config.hooks.wait_for_webhooks {
        return Err(ApiError::Conflict {
            code: "not_allowed",
            message: format!(
                "`{event}` reports are taken only with hooks.wait_for_webhooks: true; \
                 without it canary runs the deploy and health check itself"
            ),
        });
    }
    let state = match event.as_str() {
        "started" => {
            let report: Started = json_body_or_empty(&headers, &body)?;
            if !matches!(phase, Phase::BuildDeploy) {
                // A script that deploys by itself may report first: start, then deployed.
                let Some(image_tag) = report.image_tag.filter(|tag| !tag.trim().is_empty()) else {
                    return Err(ApiError::UnprocessableBody {
                        field: Some("image_tag".to_owned()),
                        message: "image_tag: needed to start a canary from a webhook".to_owned(),
                    });
                };
                let start = Command::Start(StartRequest {
                    image_tag,
                    traffic_percent: CanaryShare::from_percent(5.0).expect("5 % is valid"),
                });
                crate::api::commands::validate(&start)?;
                controller.command(actor.clone(), start, None).await?;
            }
            let deployed = Input::HookFinished {
                hook: Hook::Deploy,
                succeeded: true,
                detail: "reported by the deploy script".to_owned(),
            };
            controller.report(actor.clone(), deployed).await?
        }
        "health-check" => {
            let report: HealthReport = json_body_or_empty(&headers, &body)?;
            // A script's words go into the trail and the log: escaped and bounded.
            let detail = report.detail.map_or_else(
                || "reported by the deploy script".to_owned(),
                |detail| printable(&detail, MAX_REPORT_CHARS),
            );
            let input = Input::HookFinished {
                hook: Hook::HealthCheck,
                succeeded: report.passed,
                detail,
            };
            controller.report(actor.clone(), input).await?
        }
        "traffic-updated" => {
            let report: TrafficReport = json_body_or_empty(&headers, &body)?;
            controller
                .command(
                    actor.clone(),
                    Command::Scale {
                        percent: report.percent,
                    },
                    None,
                )
                .await?
        }
        "failed" => {
            let report: FailedReport = json_body_or_empty(&headers, &body)?;
            let reason = report.reason.map_or_else(
                || "the deploy script reported a failure".to_owned(),
                |reason| printable(&reason, MAX_REPORT_CHARS),
            );
            match phase {
                Phase::BuildDeploy => {
                    let input = Input::HookFinished {
                        hook: Hook::Deploy,
                        succeeded: false,
                        detail: reason,
                    };
                    controller.report(actor.clone(), input).await?
                }
                Phase::HealthCheck => {
                    let input = Input::HookFinished {
                        hook: Hook::HealthCheck,
                        succeeded: false,
                        detail: reason,
                    };
                    controller.report(actor.clone(), input).await?
                }
                _ => {
                    controller
                        .command(actor.clone(), Command::Rollback { reason }, None)
                        .await?
                }
            }
        }
        other => {
            return Err(ApiError::NotFound {
                path: format!(
                    "/admin/canary/webhook/{other} (events: started, health-check, traffic-updated, failed)"
                ),
            });
        }
    };
    Ok(Json(state))
}
