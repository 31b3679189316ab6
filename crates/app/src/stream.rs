//! The live connection: turns the server's WebSocket stream into signals and
//! reconnects with backoff when it drops, starting again from a full snapshot.

use std::cell::RefCell;
use std::rc::Rc;

use canary_shared::api::STREAM_PATH;
use canary_shared::{AuditEvent, CanaryState, MetricsSnapshot, ServerMessage};
use gloo_timers::callback::Timeout;
use leptos::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::chart_model::merge_metrics;
use crate::view_model::{Connection, reconnect_delay_ms};

/// What the stream feeds; provided to the whole app as context.
///
/// Everyone else reads; only this module writes (the stream, and
/// [`LiveData::adopt`] for the state a command answered with), so a value
/// on screen always has one source.
#[derive(Clone, Copy, Debug)]
pub struct LiveData {
    /// The latest rollout state; `None` until the first snapshot.
    pub state: ReadSignal<Option<CanaryState>>,
    /// Where the connection stands.
    pub connection: ReadSignal<Connection>,
    /// The newest audit entries, newest first.
    pub audit: ReadSignal<Vec<AuditEvent>>,
    /// Both sides' windows and the last five minutes of seconds, for the charts.
    pub metrics: ReadSignal<Option<MetricsSnapshot>>,
    /// Set when the server closed the stream because the session ended
    /// (sign-out elsewhere, revocation, expiry); the stream then stays closed.
    pub session_ended: ReadSignal<Option<String>>,
    writers: Writers,
}

/// The write halves of [`LiveData`]'s signals, kept in this module.
#[derive(Clone, Copy, Debug)]
struct Writers {
    state: WriteSignal<Option<CanaryState>>,
    connection: WriteSignal<Connection>,
    audit: WriteSignal<Vec<AuditEvent>>,
    metrics: WriteSignal<Option<MetricsSnapshot>>,
    session_ended: WriteSignal<Option<String>>,
}

impl LiveData {
    /// Takes the state a command answered with, unless the stream already
    /// brought a newer one.
    pub fn adopt(&self, new_state: CanaryState) {
        let newer = self.state.with_untracked(|current| {
            current
                .as_ref()
                .is_none_or(|current| new_state.revision > current.revision)
        });
        if newer {
            self.writers.state.set(Some(new_state));
        }
    }
}

/// The close code the server uses for an ended session.
const SESSION_ENDED: u16 = 4401;

/// Audit entries kept on screen.
const AUDIT_KEPT: usize = 100;

/// Reloads the audit trail from the REST API (after every (re)connect, so
/// entries sent while the connection was down are not missed).
fn reload_audit(audit: WriteSignal<Vec<AuditEvent>>) {
    leptos::task::spawn_local(async move {
        match crate::api::audit(AUDIT_KEPT as u32).await {
            Ok(page) => audit.set(page.events),
            Err(err) => web_sys::console::warn_1(
                &format!("canary: cannot load the audit trail: {err}").into(),
            ),
        }
    });
}

/// The socket and the callbacks that must live as long as it does.
///
/// Browser objects are not `Send`, so this lives in an `Rc<RefCell<_>>` owned
/// by the callbacks themselves rather than in a signal.
struct Stream {
    data: LiveData,
    url: String,
    socket: Option<WebSocket>,
    failed_attempts: u32,
    on_message: Option<Closure<dyn FnMut(MessageEvent)>>,
    on_open: Option<Closure<dyn FnMut()>>,
    on_close: Option<Closure<dyn FnMut(CloseEvent)>>,
    /// The page that owned it is gone: no reconnecting.
    closed: bool,
}

/// Starts the stream for this page and returns its signals.
pub fn connect() -> LiveData {
    let (state, state_writer) = signal(None);
    let (connection, connection_writer) = signal(Connection::Connecting);
    let (audit, audit_writer) = signal(Vec::new());
    let (metrics, metrics_writer) = signal(None);
    let (session_ended, session_ended_writer) = signal(None);
    let data = LiveData {
        state,
        connection,
        audit,
        metrics,
        session_ended,
        writers: Writers {
            state: state_writer,
            connection: connection_writer,
            audit: audit_writer,
            metrics: metrics_writer,
            session_ended: session_ended_writer,
        },
    };
    let stream = Rc::new(RefCell::new(Stream {
        data,
        url: stream_url(),
        socket: None,
        failed_attempts: 0,
        on_message: None,
        on_open: None,
        on_close: None,
        closed: false,
    }));
    open(&stream);
    // When the owner goes (the app unmounts), so does the socket: closed
    // with a normal code, and never reopened by a pending reconnect.
    let owned = send_wrapper::SendWrapper::new(Rc::clone(&stream));
    on_cleanup(move || close(&owned));
    data
}

/// Closes the stream for good.
fn close(stream: &Rc<RefCell<Stream>>) {
    let mut state = stream.borrow_mut();
    state.closed = true;
    if let Some(socket) = state.socket.take() {
        socket.set_onopen(None);
        socket.set_onmessage(None);
        socket.set_onclose(None);
        let _ = socket.close_with_code(1000);
    }
}

/// `ws://host/admin/canary/ws`, or `wss://` when the page came over HTTPS.
fn stream_url() -> String {
    let location = window().location();
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    let prefix = crate::api::mount_prefix();
    format!("{scheme}://{host}{prefix}{STREAM_PATH}")
}

fn open(stream: &Rc<RefCell<Stream>>) {
    if stream.borrow().closed {
        return;
    }
    let url = stream.borrow().url.clone();
    let socket = match WebSocket::new(&url) {
        Ok(socket) => socket,
        Err(_) => {
            schedule_reconnect(stream);
            return;
        }
    };
    let data = stream.borrow().data;

    let on_open = {
        let stream = Rc::clone(stream);
        Closure::<dyn FnMut()>::new(move || {
            stream.borrow_mut().failed_attempts = 0;
        })
    };
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
        let Some(text) = event.data().as_string() else {
            return;
        };
        match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Snapshot { state, metrics }) => {
                data.writers.state.set(Some(*state));
                match metrics {
                    Some(metrics) => data
                        .writers
                        .metrics
                        .update(|kept| merge_metrics(kept, *metrics, true)),
                    None => data.writers.metrics.set(None),
                }
                data.writers.connection.set(Connection::Live);
                reload_audit(data.writers.audit);
            }
            Ok(ServerMessage::State { state }) => {
                // A late message from an older revision never replaces a newer one.
                let newer = data.state.with_untracked(|current| {
                    current
                        .as_ref()
                        .is_none_or(|current| state.revision > current.revision)
                });
                if newer {
                    data.writers.state.set(Some(*state));
                }
            }
            Ok(ServerMessage::Audit { event }) => {
                data.writers.audit.update(|entries| {
                    if entries.first().is_none_or(|newest| event.seq > newest.seq) {
                        entries.insert(0, event);
                        entries.truncate(AUDIT_KEPT);
                    }
                });
            }
            Ok(ServerMessage::Metrics { metrics }) => {
                data.writers
                    .metrics
                    .update(|kept| merge_metrics(kept, *metrics, false));
            }
            // The console sends its commands over REST, so no replies come.
            Ok(ServerMessage::Reply { .. }) => {}
            Err(err) => {
                web_sys::console::warn_1(
                    &format!("canary: unreadable stream message: {err}").into(),
                );
            }
        }
    });
    let on_close = {
        let stream = Rc::clone(stream);
        Closure::<dyn FnMut(CloseEvent)>::new(move |event: CloseEvent| {
            if event.code() == SESSION_ENDED {
                let data = stream.borrow().data;
                let _ = data.writers.session_ended.try_set(Some(event.reason()));
                return;
            }
            schedule_reconnect(&stream);
        })
    };
    socket.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    socket.set_onclose(Some(on_close.as_ref().unchecked_ref()));

    let mut stream = stream.borrow_mut();
    stream.socket = Some(socket);
    stream.on_open = Some(on_open);
    stream.on_message = Some(on_message);
    stream.on_close = Some(on_close);
}

fn schedule_reconnect(stream: &Rc<RefCell<Stream>>) {
    let delay = {
        let mut state = stream.borrow_mut();
        if let Some(old) = state.socket.take() {
            // The old socket must never call the callbacks that `open` replaces.
            old.set_onopen(None);
            old.set_onmessage(None);
            old.set_onclose(None);
        }
        state.failed_attempts += 1;
        let delay = reconnect_delay_ms(state.failed_attempts, js_sys::Math::random());
        state.data.writers.connection.set(Connection::Reconnecting {
            attempt: state.failed_attempts,
            retry_in_ms: delay,
        });
        delay
    };
    let stream = Rc::clone(stream);
    // The timer is never cancelled, so it is left to the browser; keeping a
    // handle would mean dropping it from inside its own callback.
    Timeout::new(delay, move || open(&stream)).forget();
}
