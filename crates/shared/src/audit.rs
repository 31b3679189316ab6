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
    /// What was done (`"start"`, `"scale"`, `"auto_rollback"`, …): an
    /// [`AuditAction`]'s name.
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

/// Every kind of decision the audit trail records: the one list the server
/// writes, the console and the notifications read, and `/metrics` counts.
///
/// On the wire an entry's `action` stays a string (see [`AuditEvent::kind`]),
/// so a console or script never fails on an action it does not know yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// `start`: an operator started a rollout.
    Start,
    /// `scale`: an operator set the share.
    Scale,
    /// `continue`: an operator moved to the next step.
    Continue,
    /// `pause`: an operator paused.
    Pause,
    /// `resume`: an operator resumed.
    Resume,
    /// `auto_progression_on`: auto-progression turned on for the rollout.
    AutoProgressionOn,
    /// `auto_progression_off`: auto-progression turned off for the rollout.
    AutoProgressionOff,
    /// `rollback`: an operator rolled back.
    Rollback,
    /// `stop`: an emergency stop.
    Stop,
    /// `promote`: an operator promoted.
    Promote,
    /// `deployed`: the deploy hook finished.
    Deployed,
    /// `deploy_failed`: the deploy hook failed.
    DeployFailed,
    /// `healthy`: the canary passed its health check.
    Healthy,
    /// `health_check_failed`: the canary failed its health check.
    HealthCheckFailed,
    /// `promoted`: the promotion finished.
    Promoted,
    /// `promote_failed`: the promote hook failed.
    PromoteFailed,
    /// `rolled_back`: the rollback finished.
    RolledBack,
    /// `auto_rollback`: a critical breach rolled the canary back.
    AutoRollback,
    /// `auto_pause`: the advisory judge paused the rollout.
    AutoPause,
    /// `auto_progress`: green checks moved the rollout to the next step.
    AutoProgress,
    /// `no_data_rollback`: too long without data rolled the canary back.
    NoDataRollback,
    /// `recovered`: the server restarted and resumed the rollout.
    Recovered,
    /// `login`: a person signed in.
    Login,
    /// `login_failed`: a sign-in failed.
    LoginFailed,
    /// `logout`: a person signed out.
    Logout,
    /// `access_denied`: a request was denied.
    AccessDenied,
    /// `session_revoked`: an admin revoked a session.
    SessionRevoked,
    /// `router_drift`: an external router had another split in force than
    /// the one it had confirmed (changed behind canary's back); canary set
    /// its own again.
    RouterDrift,
    /// `undo_promotion`: an operator sent all traffic back to the version
    /// the last promotion replaced (its standby).
    UndoPromotion,
    /// `undo_window_ended`: the time to undo the last promotion is up; the
    /// previous version is retired.
    UndoWindowEnded,
    /// `retired`: the retire hook finished (or failed) for the previous
    /// version.
    Retired,
    /// `test_run_passed`: one of the team's test runs passed against the
    /// canary.
    TestRunPassed,
    /// `test_run_failed`: a test run failed; the rollout failed before any
    /// traffic.
    TestRunFailed,
    /// `shadow_passed`: the canary answered mirrored production requests
    /// like production for the shadow step's duration.
    ShadowPassed,
    /// `shadow_failed`: a critical check or the statistical judge failed
    /// the canary on mirrored requests; the rollout failed before any
    /// user was served by it.
    ShadowFailed,
}

impl AuditAction {
    /// Every action.
    pub const ALL: [AuditAction; 35] = [
        AuditAction::Start,
        AuditAction::Scale,
        AuditAction::Continue,
        AuditAction::Pause,
        AuditAction::Resume,
        AuditAction::AutoProgressionOn,
        AuditAction::AutoProgressionOff,
        AuditAction::Rollback,
        AuditAction::Stop,
        AuditAction::Promote,
        AuditAction::Deployed,
        AuditAction::DeployFailed,
        AuditAction::Healthy,
        AuditAction::HealthCheckFailed,
        AuditAction::Promoted,
        AuditAction::PromoteFailed,
        AuditAction::RolledBack,
        AuditAction::AutoRollback,
        AuditAction::AutoPause,
        AuditAction::AutoProgress,
        AuditAction::NoDataRollback,
        AuditAction::Recovered,
        AuditAction::Login,
        AuditAction::LoginFailed,
        AuditAction::Logout,
        AuditAction::AccessDenied,
        AuditAction::SessionRevoked,
        AuditAction::RouterDrift,
        AuditAction::UndoPromotion,
        AuditAction::UndoWindowEnded,
        AuditAction::Retired,
        AuditAction::TestRunPassed,
        AuditAction::TestRunFailed,
        AuditAction::ShadowPassed,
        AuditAction::ShadowFailed,
    ];

    /// The name in the audit trail and its API.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAction::Start => "start",
            AuditAction::Scale => "scale",
            AuditAction::Continue => "continue",
            AuditAction::Pause => "pause",
            AuditAction::Resume => "resume",
            AuditAction::AutoProgressionOn => "auto_progression_on",
            AuditAction::AutoProgressionOff => "auto_progression_off",
            AuditAction::Rollback => "rollback",
            AuditAction::Stop => "stop",
            AuditAction::Promote => "promote",
            AuditAction::Deployed => "deployed",
            AuditAction::DeployFailed => "deploy_failed",
            AuditAction::Healthy => "healthy",
            AuditAction::HealthCheckFailed => "health_check_failed",
            AuditAction::Promoted => "promoted",
            AuditAction::PromoteFailed => "promote_failed",
            AuditAction::RolledBack => "rolled_back",
            AuditAction::AutoRollback => "auto_rollback",
            AuditAction::AutoPause => "auto_pause",
            AuditAction::AutoProgress => "auto_progress",
            AuditAction::NoDataRollback => "no_data_rollback",
            AuditAction::Recovered => "recovered",
            AuditAction::Login => "login",
            AuditAction::LoginFailed => "login_failed",
            AuditAction::Logout => "logout",
            AuditAction::AccessDenied => "access_denied",
            AuditAction::SessionRevoked => "session_revoked",
            AuditAction::RouterDrift => "router_drift",
            AuditAction::UndoPromotion => "undo_promotion",
            AuditAction::UndoWindowEnded => "undo_window_ended",
            AuditAction::Retired => "retired",
            AuditAction::TestRunPassed => "test_run_passed",
            AuditAction::TestRunFailed => "test_run_failed",
            AuditAction::ShadowPassed => "shadow_passed",
            AuditAction::ShadowFailed => "shadow_failed",
        }
    }

    /// The action called `name`, if there is one.
    pub fn parse(name: &str) -> Option<AuditAction> {
        AuditAction::ALL
            .into_iter()
            .find(|action| action.as_str() == name)
    }

    /// Whether it takes the canary back to production.
    pub fn is_rollback(self) -> bool {
        matches!(
            self,
            AuditAction::Rollback
                | AuditAction::Stop
                | AuditAction::AutoRollback
                | AuditAction::NoDataRollback
                | AuditAction::PromoteFailed
                | AuditAction::UndoPromotion
        )
    }
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
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
    /// Traffic went back to production (rollback, emergency stop, or an
    /// undone promotion).
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
        let Some(kind) = self.kind() else {
            return Vec::new();
        };
        match kind {
            AuditAction::Start => vec![NotifyEvent::Started],
            AuditAction::AutoRollback => vec![NotifyEvent::Breach, NotifyEvent::RolledBack],
            AuditAction::AutoPause => vec![NotifyEvent::Breach],
            AuditAction::Rollback
            | AuditAction::Stop
            | AuditAction::NoDataRollback
            | AuditAction::DeployFailed
            | AuditAction::HealthCheckFailed
            | AuditAction::TestRunFailed
            | AuditAction::ShadowFailed
            | AuditAction::PromoteFailed
            | AuditAction::UndoPromotion => vec![NotifyEvent::RolledBack],
            AuditAction::Promoted => vec![NotifyEvent::Promoted],
            AuditAction::Scale
            | AuditAction::Continue
            | AuditAction::AutoProgress
            | AuditAction::Healthy
            | AuditAction::Pause
            | AuditAction::Resume
                if moved =>
            {
                vec![NotifyEvent::StepChanged]
            }
            _ => Vec::new(),
        }
    }

    /// The kind of decision, when this server version knows it.
    pub fn kind(&self) -> Option<AuditAction> {
        AuditAction::parse(&self.action)
    }
}

/// An alert for people about one audit entry: the console's browser
/// notification and a device's push alert say the same words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// The entry's most important event (a breach before a rollback).
    pub event: NotifyEvent,
    /// The headline, such as "Safety breach: canary v2.7.0 rolled back".
    pub title: String,
    /// The reason, then the move and who decided.
    pub body: String,
}

/// An action's name in words: `auto_rollback` → "Auto rollback".
pub fn action_words(action: &str) -> String {
    let words = action.replace('_', " ");
    let mut chars = words.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl AuditEvent {
    /// The alert about this entry, if it stands for an event people are
    /// told about; `version` is the canary's version.
    pub fn alert(&self, version: Option<&str>) -> Option<Alert> {
        let events = self.notify_events();
        let version = version.map(|tag| format!(" {tag}")).unwrap_or_default();
        let has = |event| events.contains(&event);
        let (event, title) = if has(NotifyEvent::Breach) && has(NotifyEvent::RolledBack) {
            (
                NotifyEvent::Breach,
                format!("Safety breach: canary{version} rolled back"),
            )
        } else if has(NotifyEvent::Breach) {
            // The advisory judge: found a regression, paused for a person.
            (
                NotifyEvent::Breach,
                format!("Regression found: canary{version} paused"),
            )
        } else if has(NotifyEvent::RolledBack) {
            (
                NotifyEvent::RolledBack,
                format!("Canary{version} rolled back"),
            )
        } else if has(NotifyEvent::Promoted) {
            (
                NotifyEvent::Promoted,
                format!("Canary{version} promoted to production"),
            )
        } else if has(NotifyEvent::Started) {
            (NotifyEvent::Started, format!("Canary{version} started"))
        } else if has(NotifyEvent::StepChanged) {
            (
                NotifyEvent::StepChanged,
                format!("Canary{version} now gets {}", self.to_percent),
            )
        } else {
            return None;
        };
        let reason = self
            .reason
            .as_deref()
            .map(|reason| format!("{reason}\n"))
            .unwrap_or_default();
        Some(Alert {
            event,
            title,
            body: format!(
                "{reason}{}: {} → {}, by {}",
                action_words(&self.action),
                self.from_percent,
                self.to_percent,
                self.actor
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::audit::{AuditEvent, NotifyEvent};
    use crate::deployment::Phase;
    use crate::share::CanaryShare;
    use crate::time::UnixMillis;

    #[test]
    fn every_audit_action_has_one_name_on_the_wire() {
        use crate::audit::AuditAction;
        for action in AuditAction::ALL {
            assert_eq!(AuditAction::parse(action.as_str()), Some(action));
            let json = serde_json::to_string(&action).unwrap();
            assert_eq!(
                json,
                format!("\"{}\"", action.as_str()),
                "serde and as_str agree"
            );
        }
        assert_eq!(AuditAction::parse("no_such_action"), None);
    }

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
