//! `GET /admin/canary/ws`: the live stream of [`ServerMessage`]s.
//!
//! A client gets a full snapshot first and then every change, so a client that
//! reconnects is always complete. States come from a `watch` channel: a slow
//! client skips intermediate states rather than queueing them.
//!
//! An operator's client may also send commands ([`ClientMessage`]); a
//! viewer's are refused. A stream opened with a console session closes
//! within a second of that session ending (sign-out, revocation, expiry).

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::IntoResponse;
use axum::response::Response;
use std::sync::Arc;

use canary_shared::{
    ClientMessage, Command, MetricsSnapshot, Role, ServerMessage, SideMetrics, UnixMillis,
};

use crate::api::access::Identity;
use crate::api::{ApiError, AppState};

/// Clients send nothing large; anything bigger is a misbehaving peer.
const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;
/// Pings keep idle connections alive through NATs and let us notice dead peers.
const PING_EVERY: Duration = Duration::from_secs(20);
/// How often a session-backed stream checks that its session still lives.
const SESSION_CHECK_EVERY: Duration = Duration::from_secs(1);
/// How often an open console counts as use of its session.
const SESSION_TOUCH_EVERY: Duration = Duration::from_secs(30);
/// The close code for an ended session (the 4000 range is the application's).
const SESSION_ENDED: u16 = 4401;

/// Upgrades the request and streams until the client or the server goes away.
pub(crate) async fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
    State(app): State<AppState>,
    Extension(identity): Extension<Identity>,
) -> Response {
    // A plain GET (or a malformed upgrade) gets the API's JSON error, not axum's text.
    let ws = match ws {
        Ok(ws) => ws,
        Err(rejection) => {
            return ApiError::InvalidField {
                field: "Upgrade",
                message: format!(
                    "this is a WebSocket endpoint; open it with a WebSocket upgrade ({})",
                    rejection.body_text()
                ),
            }
            .into_response();
        }
    };
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, app, identity))
}

async fn serve(mut socket: WebSocket, app: AppState, identity: Identity) {
    let mut states = app.state.clone();
    let mut metrics = app.metrics.clone();
    let mut audit = app.controller.audit.subscribe();
    let mut shutdown = app.shutdown.clone();
    let first_metrics = Arc::clone(&*metrics.borrow_and_update());
    // Later metrics messages carry only the seconds the client lacks.
    let mut last_second_sent = newest_second(&first_metrics);
    let snapshot = ServerMessage::Snapshot {
        state: Box::new(states.borrow_and_update().clone()),
        metrics: Some(Box::new(MetricsSnapshot::clone(&first_metrics))),
    };
    if send(&mut socket, &snapshot).await.is_err() {
        return;
    }
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    let mut session_check = tokio::time::interval(SESSION_CHECK_EVERY);
    let mut last_touch = tokio::time::Instant::now();
    loop {
        tokio::select! {
            changed = states.changed() => {
                if changed.is_err() {
                    break;
                }
                let message = ServerMessage::State { state: Box::new(states.borrow_and_update().clone()) };
                if send(&mut socket, &message).await.is_err() {
                    return;
                }
            }
            changed = metrics.changed() => {
                if changed.is_err() {
                    break;
                }
                let latest = Arc::clone(&*metrics.borrow_and_update());
                let message = ServerMessage::Metrics { metrics: Box::new(only_newer(&latest, last_second_sent)) };
                last_second_sent = newest_second(&latest).or(last_second_sent);
                if send(&mut socket, &message).await.is_err() {
                    return;
                }
            }
            entry = audit.recv() => match entry {
                Ok(event) => {
                    if send(&mut socket, &ServerMessage::Audit { event }).await.is_err() {
                        return;
                    }
                }
                // A slow client missed entries; the console reloads the trail
                // from the REST API when it reconnects, so keep streaming.
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return,
                Some(Ok(Message::Text(text))) => {
                    if let Some(reply) = answer(&app, &identity, text.as_str()).await
                        && send(&mut socket, &reply).await.is_err()
                    {
                        return;
                    }
                }
                // Pongs and other frames carry nothing for us.
                Some(Ok(_)) => {}
            },
            _ = session_check.tick(), if identity.session.is_some() => {
                let secret = identity.session.as_deref().unwrap_or_default();
                if let Err(ended) = app.access.session_alive(secret) {
                    let close = CloseFrame {
                        code: SESSION_ENDED,
                        reason: ended.to_string().into(),
                    };
                    let _ = socket.send(Message::Close(Some(close))).await;
                    return;
                }
                if last_touch.elapsed() >= SESSION_TOUCH_EVERY {
                    app.access.touch_session(secret);
                    last_touch = tokio::time::Instant::now();
                }
            }
            _ = ping.tick() => {
                if socket.send(Message::Ping(Default::default())).await.is_err() {
                    return;
                }
            }
            // The flag only ever turns true, and a dropped sender means the server is gone.
            _ = shutdown.changed() => break,
        }
    }
    let close = CloseFrame {
        code: close_code::AWAY,
        reason: "server shutting down".into(),
    };
    let _ = socket.send(Message::Close(Some(close))).await;
}

/// Carries out a client's message and says how it went; `None` for a
/// message that is not one (ignored, like a stray frame).
async fn answer(app: &AppState, identity: &Identity, text: &str) -> Option<ServerMessage> {
    let message: ClientMessage = match serde_json::from_str(text) {
        Ok(message) => message,
        Err(err) => {
            tracing::debug!(%err, "unreadable client message ignored");
            return None;
        }
    };
    let ClientMessage::Command {
        id,
        command,
        expected_revision,
    } = message;
    let outcome = run(app, identity, command, expected_revision).await;
    Some(ServerMessage::Reply {
        id,
        error: outcome.err().map(|err| err.body()),
    })
}

async fn run(
    app: &AppState,
    identity: &Identity,
    command: Command,
    expected_revision: Option<u64>,
) -> Result<(), ApiError> {
    if !identity.role.allows(Role::Operator) {
        return Err(ApiError::Forbidden(format!(
            "commands need the operator role; {} has the {} role",
            identity.name, identity.role
        )));
    }
    crate::api::commands::validate(&command)?;
    app.controller
        .command(identity.name.clone(), command, expected_revision)
        .await?;
    Ok(())
}

/// The start of the newest second in `snapshot`, if it has any.
fn newest_second(snapshot: &MetricsSnapshot) -> Option<UnixMillis> {
    snapshot.production.series.last().map(|sample| sample.at)
}

/// `snapshot` with only the seconds after `after` in its series.
fn only_newer(snapshot: &MetricsSnapshot, after: Option<UnixMillis>) -> MetricsSnapshot {
    let keep = |side: &SideMetrics| SideMetrics {
        last_1m: side.last_1m.clone(),
        last_5m: side.last_5m.clone(),
        series: side
            .series
            .iter()
            .filter(|sample| after.is_none_or(|after| sample.at > after))
            .cloned()
            .collect(),
        // Few points (one per scrape): sent whole every time.
        custom: side.custom.clone(),
    };
    MetricsSnapshot {
        at: snapshot.at,
        canary_percent: snapshot.canary_percent,
        production: keep(&snapshot.production),
        canary: keep(&snapshot.canary),
    }
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), axum::Error> {
    let json = serde_json::to_string(message).expect("wire types always serialize");
    socket.send(Message::Text(json.into())).await
}
