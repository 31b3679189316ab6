//! Operator commands over REST, and reading the audit trail.
//!
//! Every command goes to the controller and is answered with the new state
//! only after its audit entry is durable. `If-Match: <revision>` makes a
//! command conditional on the state the client saw (409 when it moved on);
//! an `Idempotency-Key` makes a retried command apply once and get the first
//! answer again.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use canary_shared::{AuditPage, CanaryShare, Command, ShareError, StartRequest};
use serde::Deserialize;

use crate::adapters::store::AuditQuery;
use crate::api::access::Identity;
use crate::api::body::{Body, json_body};
use crate::api::{ApiError, AppState};
use crate::controller::CommandError;

/// A body, or why it could not be read (too large, cut off).
type BodyBytes = Result<Bytes, axum::extract::rejection::BytesRejection>;

impl From<axum::extract::rejection::BytesRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::BytesRejection) -> ApiError {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge {
                limit: MAX_COMMAND_BODY,
            }
        } else {
            ApiError::BadJson(rejection.body_text())
        }
    }
}

/// Largest command body accepted.
pub(crate) const MAX_COMMAND_BODY: usize = 64 * 1024;

impl From<CommandError> for ApiError {
    fn from(err: CommandError) -> ApiError {
        match err {
            CommandError::Rejected(rejected) => ApiError::Conflict {
                code: "not_allowed",
                message: rejected.reason,
            },
            stale @ CommandError::StaleRevision { .. } => ApiError::Conflict {
                code: "stale_revision",
                message: stale.to_string(),
            },
            store @ CommandError::Store(_) => ApiError::Unavailable(store.to_string()),
            CommandError::Stopped => {
                ApiError::Unavailable("the controller is not running".to_owned())
            }
        }
    }
}

/// The `If-Match` revision, if one was sent.
fn expected_revision(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value
        .to_str()
        .unwrap_or("")
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"');
    text.parse().map(Some).map_err(|_| ApiError::InvalidField {
        field: "If-Match",
        message: format!("If-Match must be the state's revision number, got {text:?}"),
    })
}

/// Runs `command`, honouring `If-Match` and `Idempotency-Key`.
async fn run(
    app: &AppState,
    identity: &Identity,
    headers: &HeaderMap,
    command: Command,
) -> Result<Response, ApiError> {
    let expected = expected_revision(headers)?;
    let key = headers
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::InvalidField {
                    field: "Idempotency-Key",
                    message: "Idempotency-Key must be printable text".to_owned(),
                })
        })
        .transpose()?
        // A key names one request of one identity: the same key from someone
        // else, or with another command, is a request of its own, never
        // answered with (or blocked by) the remembered one.
        .map(|key| {
            let request = serde_json::to_string(&command).unwrap_or_default();
            format!("{}\n{request}\n{key}", identity.name)
        });
    if let Some(key) = &key {
        let store = std::sync::Arc::clone(&app.store);
        let lookup = key.clone();
        let earlier = tokio::task::spawn_blocking(move || store.idempotent_answer(&lookup))
            .await
            .map_err(|err| ApiError::Internal(err.to_string()))?
            .map_err(|err| ApiError::Unavailable(err.to_string()))?;
        if let Some((status, body)) = earlier {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            return Ok((status, [(header::CONTENT_TYPE, "application/json")], body).into_response());
        }
    }
    let state = app
        .controller
        .command(identity.name.clone(), command, expected)
        .await?;
    let body = serde_json::to_string(&state).map_err(|err| ApiError::Internal(err.to_string()))?;
    if let Some(key) = key {
        let store = std::sync::Arc::clone(&app.store);
        let remembered = body.clone();
        let now = state.updated_at;
        let saved =
            tokio::task::spawn_blocking(move || store.remember_answer(&key, 200, &remembered, now))
                .await;
        if !matches!(saved, Ok(Ok(()))) {
            tracing::warn!(
                "cannot remember an idempotent answer; a retry would be refused by the state machine instead"
            );
        }
    }
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

/// The longest image tag taken (a container image tag is at most 128 characters).
const MAX_IMAGE_TAG_CHARS: usize = 128;
/// The longest reason taken for a rollback or a stop.
const MAX_REASON_CHARS: usize = 500;

/// A client-supplied text that goes into the audit trail, the log and hook
/// arguments: refused when it holds control characters (line breaks,
/// terminal escapes) or is longer than `max_chars`.
fn check_text(field: &str, text: &str, max_chars: usize) -> Result<(), ApiError> {
    let refuse = |message: String| {
        Err(ApiError::UnprocessableBody {
            field: Some(field.to_owned()),
            message: format!("{field}: {message}"),
        })
    };
    if text.chars().any(char::is_control) {
        return refuse("must not contain control characters such as line breaks".to_owned());
    }
    if text.chars().count() > max_chars {
        return refuse(format!("must be at most {max_chars} characters"));
    }
    Ok(())
}

/// Checks what the types cannot: the same for REST and WebSocket commands.
pub(crate) fn validate(command: &Command) -> Result<(), ApiError> {
    match command {
        Command::Start(request) => {
            check_text("image_tag", &request.image_tag, MAX_IMAGE_TAG_CHARS)?
        }
        Command::Rollback { reason }
        | Command::Stop { reason }
        | Command::UndoPromotion { reason } => {
            check_text("reason", reason, MAX_REASON_CHARS)?;
        }
        _ => {}
    }
    match command {
        Command::Start(request) if request.image_tag.trim().is_empty() => {
            Err(ApiError::UnprocessableBody {
                field: Some("image_tag".to_owned()),
                message: "image_tag: must not be empty".to_owned(),
            })
        }
        Command::Rollback { reason }
        | Command::Stop { reason }
        | Command::UndoPromotion { reason }
            if reason.trim().is_empty() =>
        {
            Err(ApiError::UnprocessableBody {
                field: Some("reason".to_owned()),
                message: "reason: must not be empty".to_owned(),
            })
        }
        _ => Ok(()),
    }
}

/// `POST /admin/canary/start` with `{"image_tag": "v2.7.0", "traffic_percent": 5}`.
pub(crate) async fn start(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    Body(request): Body<StartRequest>,
) -> Result<Response, ApiError> {
    let command = Command::Start(request);
    validate(&command)?;
    run(&app, &identity, &headers, command).await
}

/// `POST /admin/canary/scale/{percent}`: any share from 0 to 100 with at most two decimals.
pub(crate) async fn scale(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    Path(percent): Path<String>,
) -> Result<Response, ApiError> {
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
    run(&app, &identity, &headers, Command::Scale { percent: share }).await
}

/// `POST /admin/canary/scale` without a share.
pub(crate) async fn scale_without_percent() -> ApiError {
    ApiError::InvalidField {
        field: "percent",
        message: "percent is missing: POST /admin/canary/scale/{percent}, for example /admin/canary/scale/25".to_owned(),
    }
}

/// `POST /admin/canary/continue`: the next step.
pub(crate) async fn continue_(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    run(&app, &identity, &headers, Command::Continue).await
}

/// `POST /admin/canary/pause`.
pub(crate) async fn pause(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    run(&app, &identity, &headers, Command::Pause).await
}

/// `POST /admin/canary/resume`.
pub(crate) async fn resume(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    run(&app, &identity, &headers, Command::Resume).await
}

/// `POST /admin/canary/promote`: 100 % and finish.
pub(crate) async fn promote(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    run(&app, &identity, &headers, Command::Promote).await
}

/// The body of `POST /admin/canary/auto-progression`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AutoProgressionBody {
    enabled: bool,
}

/// `POST /admin/canary/auto-progression` with `{"enabled": false}`: turn
/// auto-progression off (or on) for the rollout in progress.
pub(crate) async fn set_auto_progression(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    Body(AutoProgressionBody { enabled }): Body<AutoProgressionBody>,
) -> Result<Response, ApiError> {
    run(
        &app,
        &identity,
        &headers,
        Command::SetAutoProgression { enabled },
    )
    .await
}

/// The optional body of rollback and stop.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReasonBody {
    #[serde(default)]
    reason: Option<String>,
}

fn reason(headers: &HeaderMap, body: &Bytes, default: &str) -> Result<String, ApiError> {
    if body.is_empty() {
        return Ok(default.to_owned());
    }
    let parsed: ReasonBody = json_body(headers, body)?;
    Ok(parsed
        .reason
        .filter(|reason| !reason.trim().is_empty())
        .unwrap_or_else(|| default.to_owned()))
}

/// Runs the command `make` builds from the body's optional reason
/// (`default` when it gives none): rollback, stop and undo-promotion.
async fn with_reason(
    app: &AppState,
    identity: &Identity,
    headers: &HeaderMap,
    body: BodyBytes,
    default: &str,
    make: fn(String) -> Command,
) -> Result<Response, ApiError> {
    let reason = reason(headers, &body.map_err(ApiError::from)?, default)?;
    run(app, identity, headers, make(reason)).await
}

/// `POST /admin/canary/rollback` with an optional `{"reason": "…"}`.
pub(crate) async fn rollback(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: BodyBytes,
) -> Result<Response, ApiError> {
    with_reason(
        &app,
        &identity,
        &headers,
        body,
        "rolled back by an operator",
        |reason| Command::Rollback { reason },
    )
    .await
}

/// `POST /admin/canary/stop` with an optional `{"reason": "…"}`: emergency stop.
pub(crate) async fn stop(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: BodyBytes,
) -> Result<Response, ApiError> {
    with_reason(
        &app,
        &identity,
        &headers,
        body,
        "emergency stop",
        |reason| Command::Stop { reason },
    )
    .await
}

/// `POST /admin/canary/undo-promotion` with an optional `{"reason": "…"}`:
/// within the undo window, all traffic back to the previous version.
pub(crate) async fn undo_promotion(
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
    headers: HeaderMap,
    body: BodyBytes,
) -> Result<Response, ApiError> {
    let default = "promotion undone by an operator";
    with_reason(&app, &identity, &headers, body, default, |reason| {
        Command::UndoPromotion { reason }
    })
    .await
}

/// The query of `GET /admin/canary/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    before: Option<u64>,
    limit: Option<u32>,
    actor: Option<String>,
    action: Option<String>,
}

/// The audit query from the raw query string, checked: a `before` the
/// store can hold, a `limit` within a page.
pub(crate) fn audit_query(raw: Option<&str>) -> Result<AuditQuery, ApiError> {
    let params: AuditParams = crate::api::parse_query(raw)?;
    crate::api::check_store_millis("before", params.before)?;
    crate::api::check_limit(params.limit, crate::adapters::store::MAX_AUDIT_PAGE)?;
    Ok(AuditQuery {
        before: params.before,
        limit: params.limit.unwrap_or(50),
        actor: params.actor,
        action: params.action,
    })
}

/// `GET /admin/canary/audit?before=&limit=&actor=&action=`: newest first.
pub(crate) async fn audit(
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<AuditPage>, ApiError> {
    let query = audit_query(raw.as_deref())?;
    let store = std::sync::Arc::clone(&app.store);
    let page = tokio::task::spawn_blocking(move || store.audit(&query))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?
        .map_err(|err| ApiError::Unavailable(err.to_string()))?;
    Ok(Json(page))
}
