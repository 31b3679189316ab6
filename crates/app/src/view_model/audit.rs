//! The audit trail as the console shows it: action names in words, which
//! decisions the controller took by itself and the figures behind them, the
//! trail's filters, and the browser alerts new entries raise.

use canary_shared::audit::NotifyEvent;
use canary_shared::{AuditAction, AuditEvent, AuditMetrics, WindowStats};

use crate::view_model::{latency, rate, thousands};

/// An audit action for people: `auto_rollback` → `Auto rollback`.
pub use canary_shared::audit::action_words as action_label;

/// Whether the controller took this decision by itself about the rollout
/// (the safety panel explains each of these).
/// The latest `count` automatic decisions of the rollout that started at
/// `rollout_started` (all when unknown), newest first from `entries`
/// (which are newest first): a new rollout's panel does not show the last
/// one's rollback.
pub fn rollout_decisions(
    entries: &[AuditEvent],
    rollout_started: Option<canary_shared::UnixMillis>,
    count: usize,
) -> Vec<AuditEvent> {
    entries
        .iter()
        .filter(|entry| is_automatic_decision(entry))
        .filter(|entry| rollout_started.is_none_or(|started| entry.at >= started))
        .take(count)
        .cloned()
        .collect()
}

/// Whether `entry` is a decision canary took by itself.
pub fn is_automatic_decision(entry: &AuditEvent) -> bool {
    entry.actor == "controller"
        && matches!(
            entry.kind(),
            Some(
                AuditAction::AutoRollback
                    | AuditAction::AutoPause
                    | AuditAction::AutoProgress
                    | AuditAction::NoDataRollback
                    | AuditAction::DeployFailed
                    | AuditAction::HealthCheckFailed
                    | AuditAction::PromoteFailed
            )
        )
}

/// The figures behind a decision, in one line per side:
/// `Canary: p95 1,340 ms · errors 12 % · 812 requests in the last minute`.
pub fn decision_figures(metrics: &AuditMetrics) -> Vec<String> {
    let side = |name: &str, window: &WindowStats| {
        format!(
            "{name}: p95 {} · errors {} · {} requests in the last minute",
            latency(window.p95_latency_ms),
            rate(window.error_rate),
            thousands(window.requests)
        )
    };
    vec![
        side("Canary", &metrics.canary),
        side("Production", &metrics.production),
    ]
}

/// Which audit entries the trail shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditKind {
    /// Everything.
    #[default]
    All,
    /// Decisions about the rollout (starts, moves, rollbacks, promotions, hooks).
    Rollout,
    /// What the controller decided by itself.
    Automatic,
    /// Sign-ins, sign-outs, revocations and refused requests.
    Access,
}

impl AuditKind {
    /// Every choice, in the filter's order.
    pub const ALL: [AuditKind; 4] = [
        AuditKind::All,
        AuditKind::Rollout,
        AuditKind::Automatic,
        AuditKind::Access,
    ];

    /// The filter's label.
    pub fn label(self) -> &'static str {
        match self {
            AuditKind::All => "All",
            AuditKind::Rollout => "Rollout",
            AuditKind::Automatic => "Automatic",
            AuditKind::Access => "Access",
        }
    }

    /// Whether `entry` is of this kind.
    pub fn matches(self, entry: &AuditEvent) -> bool {
        let access = matches!(
            entry.kind(),
            Some(
                AuditAction::Login
                    | AuditAction::LoginFailed
                    | AuditAction::Logout
                    | AuditAction::SessionRevoked
                    | AuditAction::AccessDenied
            )
        );
        match self {
            AuditKind::All => true,
            AuditKind::Rollout => !access,
            AuditKind::Automatic => !access && entry.actor == "controller",
            AuditKind::Access => access,
        }
    }
}

/// A browser notification the console raises while it is open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrowserAlert {
    /// The headline.
    pub title: String,
    /// The reason, the move and who decided.
    pub body: String,
    /// One per audit entry, so two open tabs raise it once.
    pub tag: String,
}

/// The alert for an audit entry, if it is one an operator must hear about
/// even with the tab in the background: a safety breach or a rollback.
pub fn browser_alert(entry: &AuditEvent, version: Option<&str>) -> Option<BrowserAlert> {
    let alert = entry
        .alert(version)
        .filter(|alert| matches!(alert.event, NotifyEvent::Breach | NotifyEvent::RolledBack))?;
    Some(BrowserAlert {
        title: alert.title,
        body: alert.body,
        tag: format!("canary-audit-{}", entry.seq),
    })
}

/// The entries to alert about, oldest first: those newer than `after_seq`
/// in a newest-first list.
pub fn new_alerts<'a>(
    entries: &'a [AuditEvent],
    after_seq: u64,
    version: Option<&'a str>,
) -> impl Iterator<Item = BrowserAlert> + 'a {
    entries
        .iter()
        .rev()
        .filter(move |entry| entry.seq > after_seq)
        .filter_map(move |entry| browser_alert(entry, version))
}
