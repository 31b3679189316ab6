//! What the WebSocket at [`crate::api::STREAM_PATH`] sends.

use serde::{Deserialize, Serialize};

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
}
