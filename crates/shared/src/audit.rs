//! Audit events: every decision, human or automatic, with its context.

use serde::{Deserialize, Serialize};

use crate::deployment::Phase;
use crate::metrics::WindowStats;
use crate::share::CanaryShare;
use crate::time::UnixMillis;

/// One durable decision: who, when, what, from which state to which, and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// Gap-free sequence number, starting at 1.
    pub seq: u64,
    /// When it was decided.
    pub at: UnixMillis,
    /// Who decided: a user, a token name, or `"controller"` for automatic decisions.
    pub actor: String,
    /// What was done (`"start"`, `"scale"`, `"auto_rollback"`, …).
    pub action: String,
    /// The phase before.
    pub from_phase: Phase,
    /// The phase after.
    pub to_phase: Phase,
    /// The canary share before.
    pub from_percent: CanaryShare,
    /// The canary share after.
    pub to_percent: CanaryShare,
    /// Why, in words, with the numbers behind an automatic decision.
    pub reason: Option<String>,
    /// Both sides' last-minute figures when the decision was taken.
    #[serde(default)]
    pub metrics: Option<Box<AuditMetrics>>,
    /// A hook's exit status and captured output (size-capped), when one ran.
    #[serde(default)]
    pub output: Option<String>,
}

/// The figures behind a decision.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditMetrics {
    /// Production's last minute.
    pub production: WindowStats,
    /// The canary's last minute.
    pub canary: WindowStats,
}

/// One page of `GET /admin/canary/audit`, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AuditPage {
    /// The events.
    pub events: Vec<AuditEvent>,
    /// Pass as `before` to get the next (older) page; `None` on the last page.
    pub next_before: Option<u64>,
}
