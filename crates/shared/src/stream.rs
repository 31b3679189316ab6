//! What the WebSocket at [`crate::api::STREAM_PATH`] sends.

use serde::{Deserialize, Serialize};

use crate::api::{ApiErrorBody, Command};
use crate::audit::AuditEvent;
use crate::deployment::CanaryState;
use crate::metrics::MetricsSnapshot;

/// A message from the server to the console.
///
/// On connect the server sends one `snapshot`; afterwards a `state` for every
/// change of the rollout, `metrics` once a second, and `audit` for every new
/// audit entry. A client that reconnects starts again from a `snapshot`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// Everything the console needs, sent first on every connection.
    Snapshot {
        /// The current state.
        state: Box<CanaryState>,
        /// The latest measurements, if any were taken yet.
        metrics: Option<Box<MetricsSnapshot>>,
    },
    /// The state changed.
    State {
        /// The new state.
        state: Box<CanaryState>,
    },
    /// New measurements.
    Metrics {
        /// The snapshot.
        metrics: Box<MetricsSnapshot>,
    },
    /// A new audit entry.
    Audit {
        /// The entry.
        event: AuditEvent,
    },
    /// The answer to a [`ClientMessage::Command`].
    Reply {
        /// The `id` the client gave the command.
        id: u64,
        /// Why the command was refused; `None` when it was carried out (the
        /// new state follows as a `state` message).
        error: Option<ApiErrorBody>,
    },
}

/// A message from a client to the server over the same WebSocket.
///
/// Only identities with the `operator` role (or above) may send commands; a
/// viewer's command is answered with a `forbidden` error and changes nothing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Carry out `command`, like the matching REST call.
    Command {
        /// Chosen by the client; echoed in the [`ServerMessage::Reply`].
        id: u64,
        /// What to do.
        command: Command,
        /// The state revision the client acted on, like `If-Match`.
        #[serde(default)]
        expected_revision: Option<u64>,
    },
}
