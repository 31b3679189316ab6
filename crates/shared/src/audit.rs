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

/// The rollout events people are told about: by outbound notifications
/// (each receiver picks which) and by the console's browser alerts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NotifyEvent {
    /// A rollout started.
    Started,
    /// The canary's share changed (a step, a scale, a pause or resume).
    StepChanged,
    /// A critical safety check failed, or the statistical judge found a
    /// regression (in advisory mode, which pauses the rollout).
    Breach,
    /// Traffic went back to production (rollback or emergency stop).
    RolledBack,
    /// The canary became production.
    Promoted,
}

impl NotifyEvent {
    /// Every event.
    pub fn all() -> Vec<NotifyEvent> {
        vec![
            NotifyEvent::Started,
            NotifyEvent::StepChanged,
            NotifyEvent::Breach,
            NotifyEvent::RolledBack,
            NotifyEvent::Promoted,
        ]
    }

    /// The name in config and in the JSON body.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Started => "started",
            NotifyEvent::StepChanged => "step_changed",
            NotifyEvent::Breach => "breach",
            NotifyEvent::RolledBack => "rolled_back",
            NotifyEvent::Promoted => "promoted",
        }
    }
}

impl AuditEvent {
    /// The rollout events this entry stands for (most entries stand for none).
    ///
    /// A rollback is announced at the decision, not at its completion
    /// (`rolled_back`), so it is heard once.
    pub fn notify_events(&self) -> Vec<NotifyEvent> {
        let moved = self.from_percent != self.to_percent;
        match self.action.as_str() {
            "start" => vec![NotifyEvent::Started],
            "auto_rollback" => vec![NotifyEvent::Breach, NotifyEvent::RolledBack],
            "auto_pause" => vec![NotifyEvent::Breach],
            "rollback"
            | "stop"
            | "no_data_rollback"
            | "deploy_failed"
            | "health_check_failed"
            | "promote_failed" => vec![NotifyEvent::RolledBack],
            "promoted" => vec![NotifyEvent::Promoted],
            "scale" | "continue" | "auto_progress" | "healthy" | "pause" | "resume" if moved => {
                vec![NotifyEvent::StepChanged]
            }
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::audit::{AuditEvent, NotifyEvent};
    use crate::deployment::Phase;
    use crate::share::CanaryShare;
    use crate::time::UnixMillis;

    fn entry(action: &str, from: f64, to: f64) -> AuditEvent {
        AuditEvent {
            seq: 1,
            at: UnixMillis(0),
            actor: "alice".to_owned(),
            action: action.to_owned(),
            from_phase: Phase::Progressing,
            to_phase: Phase::Progressing,
            from_percent: CanaryShare::from_percent(from).unwrap(),
            to_percent: CanaryShare::from_percent(to).unwrap(),
            reason: None,
            metrics: None,
            output: None,
        }
    }

    #[test]
    fn decisions_map_to_the_events_receivers_subscribe_to() {
        assert_eq!(
            entry("start", 0.0, 0.0).notify_events(),
            [NotifyEvent::Started]
        );
        assert_eq!(
            entry("continue", 5.0, 25.0).notify_events(),
            [NotifyEvent::StepChanged]
        );
        assert_eq!(entry("pause", 25.0, 25.0).notify_events(), []);
        assert_eq!(
            entry("auto_rollback", 25.0, 0.0).notify_events(),
            [NotifyEvent::Breach, NotifyEvent::RolledBack]
        );
        // The advisory judge's pause: a regression found, for a person to decide.
        assert_eq!(
            entry("auto_pause", 25.0, 25.0).notify_events(),
            [NotifyEvent::Breach]
        );
        assert_eq!(
            entry("stop", 25.0, 0.0).notify_events(),
            [NotifyEvent::RolledBack]
        );
        assert_eq!(
            entry("promoted", 100.0, 100.0).notify_events(),
            [NotifyEvent::Promoted]
        );
        assert_eq!(entry("login", 0.0, 0.0).notify_events(), []);
        assert_eq!(entry("rolled_back", 0.0, 0.0).notify_events(), []);
    }
}
