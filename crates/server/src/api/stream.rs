//! `GET /admin/canary/ws`: the live stream of [`ServerMessage`]s.
//!
//! A client gets a full snapshot first and then every change, so a client that
//! reconnects is always complete. States come from a `watch` channel: a slow
//! client skips intermediate states rather than queueing them.

use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use std::sync::Arc;

use canary_shared::{MetricsSnapshot, ServerMessage, SideMetrics, UnixMillis};

use crate::api::AppState;

/// Clients send nothing large; anything bigger is a misbehaving peer.
const MAX_CLIENT_MESSAGE_BYTES: usize = 64 * 1024;
/// Pings keep idle connections alive through NATs and let us notice dead peers.
const PING_EVERY: Duration = Duration::from_secs(20);

/// Upgrades the request and streams until the client or the server goes away.
pub(crate) async fn upgrade(ws: WebSocketUpgrade, State(app): State<AppState>) -> Response {
    ws.max_message_size(MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, app))
}

async fn serve(mut socket: WebSocket, app: AppState) {
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
                // The console sends nothing yet; pongs and stray frames are ignored.
                Some(Ok(_)) => {}
            },
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
