//! The wire contract between the canary server and its console.
//!
//! Everything here is plain serde data plus pure helpers, compiled for the host
//! (server, CLI, tests) and for `wasm32-unknown-unknown` (the Leptos console).
//! Nothing here knows a clock, a socket or a database.
//!
//! # Layout
//! - [`share`]: [`CanaryShare`], the validated traffic share (0–100 %, 0.01 % steps).
//! - [`time`]: [`UnixMillis`], wall time as milliseconds since the Unix epoch.
//! - [`demo`]: the demo services' behaviour, changed live from the console.
//! - [`deployment`]: [`CanaryState`], the whole rollout as the console sees it.
//! - [`safety`]: [`SafetyCheck`] and its status.
//! - [`metrics`]: [`MetricsSnapshot`], rolling windows and a per-second series per side.
//! - [`audit`]: [`AuditEvent`], one durable decision.
//! - [`api`]: REST paths, operator commands and the JSON error body.
//! - [`auth`]: roles, the login body and [`Me`], who is signed in.
//! - [`settings`]: [`RolloutSettings`], the rules rollouts follow.
//! - [`stream`]: [`ServerMessage`], what the WebSocket sends.
//! - [`push`]: Web Push devices and the server's VAPID key.
//! - [`validation`]: [`ShadowReport`], the canary's answers to mirrored requests.
//!
//! # Example
//! ```
//! use canary_shared::CanaryShare;
//! let share = CanaryShare::from_percent(25.0).unwrap();
//! assert_eq!(share.basis_points(), 2500);
//! assert!(CanaryShare::from_percent(100.5).is_err());
//! ```

pub mod api;
pub mod audit;
pub mod auth;
pub mod demo;
pub mod deployment;
pub mod metrics;
pub mod number;
pub mod push;
pub mod safety;
pub mod settings;
pub mod share;
pub mod stream;
pub mod time;
pub mod validation;
pub mod words;

pub use api::{ApiErrorBody, Command, StartRequest};
pub use audit::{AuditAction, AuditEvent, AuditMetrics, AuditPage};
pub use auth::{CredentialKind, LoginRequest, Me, Role};
pub use deployment::{
    ActionKind, AutoProgression, AutoRollback, BlockedAction, CanaryState, CustomValue,
    DeploymentStep, EvidencePoint, Health, JudgeConclusion, JudgedMetric, Phase, RouterInstance,
    RouterStatus, ServiceHealth, Side, StepKind, StepStatus, TrafficSplit, UndoWindow,
    readable_number,
};
pub use metrics::{
    CustomMetric, CustomMetricPush, CustomPoint, MetricsSnapshot, SecondSample, SideMetrics,
    TransportErrors, WindowStats,
};
pub use safety::{AlertLevel, CheckStatus, Comparator, SafetyCheck};
pub use settings::RolloutSettings;
pub use share::{CanaryShare, ShareError};
pub use stream::{ClientMessage, ServerMessage};
pub use time::UnixMillis;
pub use validation::{MismatchCounts, MismatchExample, MismatchKind, ShadowReport, ShadowSecond};

#[cfg(test)]
mod snapshots;
