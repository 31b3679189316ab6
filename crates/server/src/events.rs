//! What the controller is told: the events health probes, the metrics
//! ticker, hook runs and the API send it, and why a command changed nothing.
//!
//! A module of its own so that whoever reports to the controller depends on
//! this vocabulary only, never on the controller itself.

use std::sync::Arc;

use canary_shared::{AuditAction, CanaryState, Command, MetricsSnapshot};
use tokio::sync::oneshot;

use crate::adapters::hooks::HookOutcome;
use crate::adapters::store::StoreError;
use crate::domain::deployment::{Hook, Input, TransitionRejected};
use crate::domain::health::ProbeOutcome;
use crate::domain::judge::JudgeSecond;
use crate::domain::roles::UpstreamSlot;

/// Something that happened, for the controller to take into account.
#[derive(Debug)]
pub enum Event {
    /// A health probe of one upstream finished.
    Probed {
        /// The probed upstream.
        slot: UpstreamSlot,
        /// What it answered.
        outcome: ProbeOutcome,
    },
    /// What every instance of an external router has in force, read while
    /// `routing` was the one asked for.
    RouterRead {
        /// The routing asked for when the instances were read.
        routing: crate::domain::roles::Routing,
        /// One reading per instance.
        readings: Vec<crate::domain::router::InstanceReading>,
    },
    /// What an external router's own counters say of its access log:
    /// `None` when the log brings every request it counts.
    RouterMeasurement {
        /// What is missing, in words.
        note: Option<String>,
    },
    /// A second of traffic was measured; the checks are judged on it.
    Measured(Arc<MetricsSnapshot>),
    /// A finished second as the statistical judge sees it (sent just before
    /// its `Measured`); its failures reached the judge as they happened.
    Observed {
        /// Requests per side and the latency comparisons.
        second: JudgeSecond,
        /// The shadow tap's second: both sides' answers to the copied
        /// requests and their pairs, when the config has a shadow step.
        shadow: Option<JudgeSecond>,
    },
    /// An operator's or script's command; the reply comes once it is durable.
    Command {
        /// Who asks.
        actor: String,
        /// What.
        command: Command,
        /// The state revision the client acted on (`If-Match`), if it said.
        expected_revision: Option<u64>,
        /// Receives the new state, or why nothing changed.
        reply: oneshot::Sender<Result<CanaryState, CommandError>>,
    },
    /// A script reported progress through a webhook; the reply comes once
    /// it is durable, or says why it does not apply now.
    Reported {
        /// Who reported (`webhook`).
        actor: String,
        /// What the report means to the state machine.
        input: Input,
        /// Receives the new state, or why nothing changed.
        reply: oneshot::Sender<Result<CanaryState, CommandError>>,
    },
    /// A sign-in, sign-out or denied request, for the audit trail.
    Access {
        /// The user or token name (or what was claimed).
        actor: String,
        /// `Login`, `LoginFailed`, `Logout`, `AccessDenied`, `SessionRevoked`.
        action: AuditAction,
        /// Details in words.
        reason: String,
    },
    /// A hook finished.
    HookFinished {
        /// Which.
        hook: Hook,
        /// The rollout it was started for; a hook of an older one is ignored.
        rollout: u64,
        /// How it ended.
        outcome: HookOutcome,
    },
}

/// Why a command changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The command does not fit the deployment's phase.
    #[error(transparent)]
    Rejected(#[from] TransitionRejected),
    /// The client acted on an older state.
    #[error(
        "the state changed since revision {expected} (it is at {current} now); reload and try again"
    )]
    StaleRevision {
        /// What the client sent.
        expected: u64,
        /// What it is now.
        current: u64,
    },
    /// The decision could not be recorded, so it was not carried out.
    #[error("the decision could not be recorded, so nothing changed: {0}")]
    Store(#[from] StoreError),
    /// The controller has stopped.
    #[error("the controller is not running")]
    Stopped,
}
