//! `GET /admin/canary/ws`: the live stream of [`ServerMessage`]s.
//!
//! A client gets a full snapshot first and then every change, so a client that
//! reconnects is always complete. States come from a `watch` channel: a slow
//! client skips intermediate states rather than queueing them.
//!
//! An operator's client may also send commands ([`ClientMessage`]); a
//! viewer's are refused. A stream opened with a console session closes
//! within a second of that session ending (sign-out, revocation, expiry).
//!
//! Every message is encoded once for all clients ([`StreamFeed`]): with a
//! thousand dashboards open, a state change is one serialisation, not a
//! thousand. Only a client that skipped a second of metrics (a slow one)
//! gets a message made for it.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::response::IntoResponse;
use axum::response::Response;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

use canary_shared::{
    AuditEvent, CanaryState, ClientMessage, Command, MetricsSnapshot, Role, ServerMessage,
    SideMetrics, UnixMillis,
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
/// Clients send only small commands: a small read buffer per connection
/// (tungstenite's default, 128 KiB each, was most of a dashboard's memory).
const READ_BUFFER_BYTES: usize = 4 * 1024;

/// The latest state, encoded once for every stream.
#[derive(Clone, Debug)]
pub struct EncodedState {
    /// The state itself, for a new client's snapshot.
    pub state: Arc<CanaryState>,
    /// `ServerMessage::State` of it, as sent.
    pub message: Utf8Bytes,
}

/// The latest measurements, encoded once for every stream that has all
/// seconds up to the previous ones.
#[derive(Clone, Debug)]
pub struct EncodedMetrics {
    /// The snapshot itself, for a new or lagging client.
    pub snapshot: Arc<MetricsSnapshot>,
    /// The newest second the previous snapshot had: `message` carries the
    /// seconds after it.
    pub after: Option<UnixMillis>,
    /// `ServerMessage::Metrics` with the seconds after `after`, as sent.
    pub message: Utf8Bytes,
}

/// What every WebSocket stream sends, encoded once: the state and the
/// metrics as watches (a slow client skips to the latest), and audit
/// entries as a broadcast (a client that lags skips entries; the REST API
/// has them all).
#[derive(Clone, Debug)]
pub struct StreamFeed {
    state: watch::Receiver<EncodedState>,
    metrics: watch::Receiver<EncodedMetrics>,
    audit: broadcast::Sender<Utf8Bytes>,
}

impl StreamFeed {
    /// Encodes the current state and metrics, and spawns the task that
    /// encodes each change as the controller publishes it.
    pub fn spawn(
        mut states: watch::Receiver<CanaryState>,
        mut metrics: watch::Receiver<Arc<MetricsSnapshot>>,
        audit: &broadcast::Sender<AuditEvent>,
    ) -> StreamFeed {
        let (state_tx, state_rx) = watch::channel(encode_state(&states.borrow_and_update()));
        let first = Arc::clone(&*metrics.borrow_and_update());
        let mut newest = newest_second(&first);
        let (metrics_tx, metrics_rx) = watch::channel(encode_metrics(first, None));
        let mut audit_rx = audit.subscribe();
        let (audit_tx, _) = broadcast::channel(AUDIT_BACKLOG);
        let feed = StreamFeed {
            state: state_rx,
            metrics: metrics_rx,
            audit: audit_tx.clone(),
        };
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = states.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let encoded = encode_state(&states.borrow_and_update());
                        state_tx.send_replace(encoded);
                    }
                    changed = metrics.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        let latest = Arc::clone(&*metrics.borrow_and_update());
                        let after = newest;
                        newest = newest_second(&latest).or(newest);
                        metrics_tx.send_replace(encode_metrics(latest, after));
                    }
                    entry = audit_rx.recv() => match entry {
                        Ok(event) => {
                            let _ = audit_tx.send(encode(&ServerMessage::Audit { event }));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
        });
        feed
    }
}

/// How many encoded audit entries wait for a slow stream before it skips some.
const AUDIT_BACKLOG: usize = 256;

fn encode(message: &ServerMessage) -> Utf8Bytes {
    Utf8Bytes::from(serde_json::to_string(message).expect("wire types always serialize"))
}

fn encode_state(state: &CanaryState) -> EncodedState {
    let state = Arc::new(state.clone());
    let message = encode(&ServerMessage::State {
        state: Box::new(CanaryState::clone(&state)),
    });
    EncodedState { state, message }
}

fn encode_metrics(snapshot: Arc<MetricsSnapshot>, after: Option<UnixMillis>) -> EncodedMetrics {
    let message = encode(&ServerMessage::Metrics {
        metrics: Box::new(only_newer(&snapshot, after)),
    });
    EncodedMetrics {
        snapshot,
        after,
        message,
    }
}

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
        .read_buffer_size(READ_BUFFER_BYTES)
        .on_upgrade(move |socket| serve(socket, app, identity))
}

async fn serve(mut socket: WebSocket, app: AppState, identity: Identity) {
    let mut states = app.stream.state.clone();
    let mut metrics = app.stream.metrics.clone();
    let mut audit = app.stream.audit.subscribe();
    let mut shutdown = app.shutdown.clone();
    let first_metrics = Arc::clone(&metrics.borrow_and_update().snapshot);
    // Later metrics messages carry only the seconds the client lacks.
    let mut last_second_sent = newest_second(&first_metrics);
    let snapshot = ServerMessage::Snapshot {
        state: Box::new(CanaryState::clone(&states.borrow_and_update().state)),
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
                let message = states.borrow_and_update().message.clone();
                if socket.send(Message::Text(message)).await.is_err() {
                    return;
                }
            }
            changed = metrics.changed() => {
                if changed.is_err() {
                    break;
                }
                let latest = metrics.borrow_and_update().clone();
                let message = metrics_message_for(&latest, last_second_sent);
                last_second_sent = newest_second(&latest.snapshot).or(last_second_sent);
                if socket.send(Message::Text(message)).await.is_err() {
                    return;
                }
            }
            entry = audit.recv() => match entry {
                Ok(message) => {
                    if socket.send(Message::Text(message)).await.is_err() {
                        return;
                    }
                }
                // A slow client missed entries; the console reloads the trail
                // from the REST API when it reconnects, so keep streaming.
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
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

/// The metrics message for a client that has every second up to
/// `last_second_sent`: the shared one when that is where the previous
/// snapshot ended (every client that keeps up), else one of its own.
fn metrics_message_for(latest: &EncodedMetrics, last_second_sent: Option<UnixMillis>) -> Utf8Bytes {
    if latest.after == last_second_sent {
        latest.message.clone()
    } else {
        encode(&ServerMessage::Metrics {
            metrics: Box::new(only_newer(&latest.snapshot, last_second_sent)),
        })
    }
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
        shadow: snapshot.shadow.clone(),
    }
}

async fn send(socket: &mut WebSocket, message: &ServerMessage) -> Result<(), axum::Error> {
    socket.send(Message::Text(encode(message))).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use canary_shared::{MetricsSnapshot, SecondSample, ServerMessage, UnixMillis};

    use super::{encode_metrics, metrics_message_for};

    /// A snapshot whose series has the seconds `1..=newest` (in seconds).
    fn snapshot(newest: u64) -> Arc<MetricsSnapshot> {
        let mut snapshot = MetricsSnapshot {
            at: UnixMillis(newest * 1000),
            canary_percent: canary_shared::CanaryShare::ZERO,
            production: canary_shared::SideMetrics::default(),
            canary: canary_shared::SideMetrics::default(),
            shadow: None,
        };
        for second in 1..=newest {
            let sample = SecondSample {
                at: UnixMillis(second * 1000),
                requests: second,
                errors: 0,
                p50_latency_ms: None,
                p95_latency_ms: None,
                p99_latency_ms: None,
            };
            snapshot.production.series.push(sample.clone());
            snapshot.canary.series.push(sample);
        }
        Arc::new(snapshot)
    }

    fn seconds_in(message: &str) -> Vec<u64> {
        let ServerMessage::Metrics { metrics } = serde_json::from_str(message).unwrap() else {
            panic!("not a metrics message: {message}");
        };
        metrics
            .production
            .series
            .iter()
            .map(|sample| sample.at.0 / 1000)
            .collect()
    }

    #[test]
    fn a_client_that_kept_up_gets_the_shared_message_and_one_that_skipped_gets_what_it_lacks() {
        // The feed encoded second 5 for clients that had up to second 4.
        let latest = encode_metrics(snapshot(5), Some(UnixMillis(4000)));
        let kept_up = metrics_message_for(&latest, Some(UnixMillis(4000)));
        assert_eq!(
            kept_up.as_str().as_ptr(),
            latest.message.as_str().as_ptr(),
            "shared, not re-encoded"
        );
        assert_eq!(seconds_in(kept_up.as_str()), [5]);
        // A slow client last had second 2: it gets 3, 4 and 5, not just 5.
        let skipped = metrics_message_for(&latest, Some(UnixMillis(2000)));
        assert_eq!(seconds_in(skipped.as_str()), [3, 4, 5]);
    }
}
