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
///
/// Read by hand (see the `Deserialize` impl below), written by serde.
#[derive(Clone, Debug, PartialEq, Serialize)]
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

/// Reads a message with `type` as its first key, as the server writes it.
///
/// Serde's derive for an internally tagged enum buffers the whole message
/// into a generic tree before it knows the variant, which compiles every
/// type inside twice: once for JSON, once for the tree. This reader takes
/// the tag first and then reads each field straight from the JSON, which
/// kept the console's WASM within its size budget.
impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(MessageVisitor)
    }
}

struct MessageVisitor;

/// The fields any message may have; each variant takes its own.
#[derive(Default)]
struct MessageFields {
    state: Option<Box<CanaryState>>,
    metrics: Option<Option<Box<MetricsSnapshot>>>,
    event: Option<AuditEvent>,
    id: Option<u64>,
    error: Option<Option<ApiErrorBody>>,
}

impl<'de> serde::de::Visitor<'de> for MessageVisitor {
    type Value = ServerMessage;

    fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("a stream message whose first key is \"type\"")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        use serde::de::Error;
        if map.next_key::<String>()?.as_deref() != Some("type") {
            return Err(A::Error::custom("a stream message starts with \"type\""));
        }
        let kind: String = map.next_value()?;
        let mut fields = MessageFields::default();
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "state" => fields.state = Some(map.next_value()?),
                "metrics" => fields.metrics = Some(map.next_value()?),
                "event" => fields.event = Some(map.next_value()?),
                "id" => fields.id = Some(map.next_value()?),
                "error" => fields.error = Some(map.next_value()?),
                _ => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        let missing = A::Error::missing_field;
        Ok(match kind.as_str() {
            "snapshot" => ServerMessage::Snapshot {
                state: fields.state.ok_or_else(|| missing("state"))?,
                metrics: fields.metrics.flatten(),
            },
            "state" => ServerMessage::State {
                state: fields.state.ok_or_else(|| missing("state"))?,
            },
            "metrics" => ServerMessage::Metrics {
                metrics: fields.metrics.flatten().ok_or_else(|| missing("metrics"))?,
            },
            "audit" => ServerMessage::Audit {
                event: fields.event.ok_or_else(|| missing("event"))?,
            },
            "reply" => ServerMessage::Reply {
                id: fields.id.ok_or_else(|| missing("id"))?,
                error: fields.error.flatten(),
            },
            other => {
                return Err(A::Error::unknown_variant(
                    other,
                    &["snapshot", "state", "metrics", "audit", "reply"],
                ));
            }
        })
    }
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
