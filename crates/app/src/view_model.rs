//! Pure presentation logic: from wire data to the words and numbers the
//! console shows. No DOM, no signals, so it is tested with plain `cargo test`.

use canary_shared::{
    CanaryState, CheckStatus, Health, Phase, RolloutSettings, StepStatus, UnixMillis,
};

mod actions;
mod audit;
mod push;
mod validation;

pub use actions::{
    ActionView, PromotionReview, ReviewLine, RouterView, UndoOffer, action_view, clamp_share,
    promotion_review, router_view, share_move_question, undo_offer,
};
pub use audit::{
    AuditKind, BrowserAlert, action_label, browser_alert, decision_figures, is_automatic_decision,
    new_alerts, rollout_decisions,
};
pub use push::{PUSH_EVENTS, PushPanel, device_line, push_markup};
pub use validation::{escape, shadow_markup, shadow_summary};

/// Where the live connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Connection {
    /// The first connection is being made.
    Connecting,
    /// Connected; data is live.
    Live,
    /// Disconnected; trying again.
    Reconnecting {
        /// How many attempts have failed in a row.
        attempt: u32,
        /// Milliseconds until the next attempt.
        retry_in_ms: u32,
    },
}

impl Connection {
    /// Words for the connection indicator.
    pub fn label(self) -> String {
        self.label_after(0)
    }

    /// Words for the indicator `elapsed_ms` after the connection took this
    /// value: the countdown to the next attempt ticks down.
    pub fn label_after(self, elapsed_ms: u64) -> String {
        match self {
            Connection::Connecting => "Connecting…".to_owned(),
            Connection::Live => "Live".to_owned(),
            Connection::Reconnecting { retry_in_ms, .. } => {
                match u64::from(retry_in_ms).saturating_sub(elapsed_ms) {
                    0 => "Reconnecting…".to_owned(),
                    left => format!("Reconnecting in {} s…", left.div_ceil(1000)),
                }
            }
        }
    }

    /// A CSS modifier for the indicator.
    pub fn css_class(self) -> &'static str {
        match self {
            Connection::Connecting => "connection connection--connecting",
            Connection::Live => "connection connection--live",
            Connection::Reconnecting { .. } => "connection connection--reconnecting",
        }
    }

    /// Whether what is on screen may be out of date.
    pub fn is_stale(self) -> bool {
        self != Connection::Live
    }
}

/// First reconnect delay.
const BACKOFF_BASE_MS: f64 = 500.0;
/// Longest reconnect delay: an operator should not wait long after a restart.
const BACKOFF_MAX_MS: f64 = 10_000.0;

/// The delay before reconnect attempt `attempt` (1-based): exponential with
/// "full jitter" so many consoles do not reconnect in step after a restart.
/// `random` is a draw from `0.0..1.0`.
pub fn reconnect_delay_ms(attempt: u32, random: f64) -> u32 {
    let exponent = attempt.saturating_sub(1).min(16);
    let ceiling = (BACKOFF_BASE_MS * f64::from(1u32 << exponent)).min(BACKOFF_MAX_MS);
    // Never below half the ceiling, so a bad draw cannot make it hammer the server.
    let delay = ceiling * (0.5 + 0.5 * random.clamp(0.0, 1.0));
    delay.round() as u32
}

/// A latency for a card: `41 ms`, `1,340 ms`, or `—` without data.
pub fn latency(ms: Option<f64>) -> String {
    match ms {
        None => "—".to_owned(),
        Some(ms) if ms < 10.0 => format!("{ms:.1} ms"),
        Some(ms) => format!("{} ms", thousands(ms.round() as u64)),
    }
}

/// A rate in `0..=1` as a percentage: `99.5 %`, or `—` without data.
pub fn rate(value: Option<f64>) -> String {
    match value {
        None => "—".to_owned(),
        Some(value) => {
            let percent = value * 100.0;
            if (percent - percent.round()).abs() < 0.05 {
                format!("{} %", percent.round())
            } else {
                format!("{percent:.1} %")
            }
        }
    }
}

pub use canary_shared::words::thousands;

/// The prefix before the console's own path in `pathname`: `/ops` for
/// `/ops/admin/canary/`, empty for `/admin/canary/` or anything else.
pub fn mount_prefix(pathname: &str) -> &str {
    pathname
        .find(canary_shared::api::BASE_PATH)
        .map_or("", |at| &pathname[..at])
}

/// A CSS modifier for a health badge.
pub fn health_class(health: Health) -> &'static str {
    match health {
        Health::Healthy => "badge badge--good",
        Health::Unhealthy => "badge badge--bad",
        Health::Unknown => "badge badge--neutral",
        Health::Stopped => "badge badge--muted",
    }
}

/// A CSS modifier for a safety check's status.
pub fn check_class(status: CheckStatus) -> &'static str {
    match status {
        CheckStatus::Safe => "badge badge--good",
        CheckStatus::Watch => "badge badge--warn",
        CheckStatus::Breach => "badge badge--bad",
        CheckStatus::NoData | CheckStatus::NoSource => "badge badge--neutral",
        CheckStatus::Inactive => "badge badge--muted",
    }
}

/// A CSS modifier for a step's status.
pub fn step_class(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "step step--pending",
        StepStatus::InProgress => "step step--current",
        StepStatus::Complete => "step step--done",
        StepStatus::Failed => "step step--failed",
        StepStatus::Skipped => "step step--skipped",
    }
}

/// A step status in words.
pub fn step_status_label(status: StepStatus) -> &'static str {
    match status {
        StepStatus::Pending => "Pending",
        StepStatus::InProgress => "In progress",
        StepStatus::Complete => "Complete",
        StepStatus::Failed => "Failed",
        StepStatus::Skipped => "Skipped",
    }
}

/// `14:05:09` (UTC) for a wall time.
pub fn clock_time(at: UnixMillis) -> String {
    let secs_of_day = (at.0 / 1000) % 86_400;
    format!(
        "{:02}:{:02}:{:02}",
        secs_of_day / 3600,
        secs_of_day / 60 % 60,
        secs_of_day % 60
    )
}

/// A duration in the words the server and the CLI use too: `45 s`, `90 s`,
/// `12 min`, `3 h 5 min`.
pub use canary_shared::words::duration as duration_words;

/// The page title: the state at a glance, for a tab in the background.
///
/// A red mark leads when something needs a human: a breached check, a
/// rollback, or a failure, so it shows in a crowded tab bar.
pub fn page_title(state: Option<&CanaryState>, connection: Connection) -> String {
    let Some(state) = state else {
        return "canary".to_owned();
    };
    let alarm = matches!(
        state.phase,
        Phase::RollingBack | Phase::RolledBack | Phase::Failed
    ) || state
        .safety_checks
        .iter()
        .any(|check| check.status == CheckStatus::Breach);
    let mark = if alarm { "🔴 " } else { "" };
    let offline = if connection.is_stale() {
        "(offline) "
    } else {
        ""
    };
    format!("{mark}{offline}{} · canary", state.summary)
}

/// Where auto-progression stands, for the line under the rollout's steps.
pub fn auto_progression_words(state: &CanaryState) -> String {
    let auto = &state.auto_progression;
    let wait = duration_words(auto.wait_ms);
    let changed = if auto.as_configured {
        ""
    } else {
        " (changed for this rollout)"
    };
    let words = if !auto.enabled {
        "Off: steps move on only when an operator continues.".to_owned()
    } else {
        match state.phase {
            // Served in full but not moved: the statistical judge holds it
            // until it passes the canary (the status line says so).
            Phase::Progressing if auto.wait_ms > 0 && auto.green_for_ms >= auto.wait_ms => {
                format!(
                    "On: {wait} of green served; the step moves once the statistical judge passes the canary."
                )
            }
            Phase::Progressing if auto.green_for_ms > 0 => format!(
                "On: the next step in {} if the checks stay green (green for {}).",
                duration_words(auto.wait_ms.saturating_sub(auto.green_for_ms)),
                duration_words(auto.green_for_ms)
            ),
            Phase::Progressing => {
                format!("On: the {wait} wait for the next step starts once every check is green.")
            }
            Phase::Paused => {
                format!("On, held by the pause: after Resume, {wait} of green checks.")
            }
            Phase::BuildDeploy | Phase::HealthCheck | Phase::Validating => {
                format!("On: each step moves on after {wait} of green checks.")
            }
            _ => format!("On: each step of a rollout moves on after {wait} of green checks."),
        }
    };
    format!("{words}{changed}")
}

/// The rules rollouts follow, as term and meaning for "Advanced settings".
pub fn settings_rows(settings: &RolloutSettings) -> Vec<(&'static str, String)> {
    let steps = settings
        .traffic_steps
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" → ");
    let auto_progression = if settings.auto_progression {
        format!(
            "On: each step moves on after {} of green checks.",
            duration_words(settings.wait_ms)
        )
    } else {
        "Off: steps move on only when an operator continues.".to_owned()
    };
    let auto_rollback = if settings.auto_rollback {
        "Armed: a critical breach rolls the canary back without a human."
    } else {
        "Off: a critical breach alerts and holds; an operator decides."
    };
    let long_no_data = match settings.on_long_no_data.as_str() {
        "rollback" => "roll back",
        _ => "keep holding",
    };
    let judging = format!(
        "No data below {} canary requests in a minute (never a pass). Watch within {} of a limit. After {} without data: {long_no_data}.",
        thousands(settings.min_requests),
        rate(Some(settings.watch_margin)),
        duration_words(settings.no_data_timeout_ms),
    );
    let stickiness = match settings.stickiness.split_once(' ') {
        Some(("cookie", rest)) => format!("Cookie {rest}: each browser stays on its side."),
        Some(("header", header)) => {
            format!("Header {header}: clients with the same value stay on one side.")
        }
        _ => "None: every request is assigned afresh.".to_owned(),
    };
    let mut rows = vec![
        ("Traffic steps", steps),
        ("Auto-progression", auto_progression),
        ("Auto-rollback", auto_rollback.to_owned()),
        ("How checks are judged", judging),
        ("Stickiness", stickiness),
    ];
    let tolerances = format!(
        "false alarms at most {}; failure rate within {}× production's, slower than concurrent production requests at most {} of the time",
        rate(Some(settings.judge_alpha)),
        crate::chart_model::round_to(1.0 + settings.judge_failure_tolerance, 2),
        rate(Some(0.5 + settings.judge_latency_tolerance)),
    );
    let judge = match settings.judge.as_str() {
        "enforce" => format!(
            "Enforce: a regression it finds rolls the canary back, and a step advances only once it has passed the canary ({tolerances})."
        ),
        "advisory" => format!(
            "Advisory: a regression it finds pauses the rollout for a person ({tolerances})."
        ),
        _ => "Off: only the safety checks decide.".to_owned(),
    };
    rows.push(("Statistical judge", judge));
    if !settings.promotion.is_empty() {
        let mut promotion = capitalised(&settings.promotion);
        promotion.push('.');
        if let Some(warning) = &settings.promotion_warning {
            promotion.push_str(&format!(" Note: {warning}."));
        }
        rows.push(("Promotion", promotion));
    }
    if let Some(header) = &settings.override_header {
        rows.push((
            "Forcing a side",
            format!(
                "From a trusted network or with the token, a request with {header}: canary (or production) goes to that side, while the canary has a share above 0 %."
            ),
        ));
    }
    rows
}

/// `text` with its first letter upper-case.
fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// What the demo's canary service does now, in a few words:
/// `Canary service: healthy` or `Canary service: 10 % errors, +400 ms`.
pub fn demo_words(status: &canary_shared::demo::DemoStatus) -> String {
    let behaviour = &status.canary.behaviour;
    let mut traits = Vec::new();
    if behaviour.hang {
        traits.push("hangs".to_owned());
    }
    if behaviour.error_rate > 0.0 {
        traits.push(format!("{} errors", rate(Some(behaviour.error_rate))));
    }
    if behaviour.wrong_answer_rate > 0.0 {
        traits.push(format!(
            "{} wrong answers",
            rate(Some(behaviour.wrong_answer_rate))
        ));
    }
    if behaviour.added_latency_ms > 0 {
        traits.push(format!(
            "+{}",
            latency(Some(behaviour.added_latency_ms as f64))
        ));
    }
    let doing = if traits.is_empty() {
        "healthy".to_owned()
    } else {
        traits.join(", ")
    };
    // Not the service's version: the canary card shows the tag deployed to it.
    format!(
        "Canary service: {doing} · {} requests/s of load",
        status.load_per_sec
    )
}

/// A side's custom metrics for its card: name, value (or "no value"), and
/// why there is none (shown on hover and to assistive technology).
pub fn custom_figures(service: &canary_shared::ServiceHealth) -> Vec<(String, String, String)> {
    service
        .custom_metrics
        .iter()
        .map(|metric| {
            let value = metric
                .readable_value()
                .unwrap_or_else(|| "no value".to_owned());
            (
                metric.name.clone(),
                value,
                metric.reason.clone().unwrap_or_default(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
