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
mod tests {
    use canary_shared::{AuditEvent, CanaryShare, Phase, UnixMillis};

    use crate::view_model::{
        BrowserAlert, Connection, action_view, auto_progression_words, browser_alert, clamp_share,
        decision_figures, is_automatic_decision, latency, new_alerts, rate, reconnect_delay_ms,
        share_move_question, thousands,
    };

    /// The shared snapshot's state: progressing at 25 %, auto-progression on.
    fn state() -> canary_shared::CanaryState {
        serde_json::from_str(include_str!("../../shared/src/snapshots/canary_state.json")).unwrap()
    }

    #[test]
    fn the_prefix_is_what_comes_before_the_consoles_own_path() {
        assert_eq!(super::mount_prefix("/admin/canary/"), "");
        assert_eq!(super::mount_prefix("/ops/admin/canary/"), "/ops");
        assert_eq!(super::mount_prefix("/a/b/admin/canary/history"), "/a/b");
        assert_eq!(super::mount_prefix("/elsewhere"), "");
    }

    #[test]
    fn a_cards_custom_metrics_read_rounded_or_say_why_there_is_none() {
        let mut service = state().canary;
        service.custom_metrics = vec![
            canary_shared::CustomValue {
                name: "memory_query_latency_ms".to_owned(),
                value: Some(27.894_736_842_105_264),
                reason: None,
            },
            canary_shared::CustomValue {
                name: "queue_depth".to_owned(),
                value: None,
                reason: Some("source timed out after 300 ms".to_owned()),
            },
        ];
        assert_eq!(
            super::custom_figures(&service),
            [
                (
                    "memory_query_latency_ms".to_owned(),
                    "27.9".to_owned(),
                    String::new()
                ),
                (
                    "queue_depth".to_owned(),
                    "no value".to_owned(),
                    "source timed out after 300 ms".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn the_auto_progression_line_says_when_the_next_step_comes_and_who_changed_it() {
        let mut state = state();
        state.phase = Phase::Progressing;
        state.auto_progression.wait_ms = 24 * 3600 * 1000;
        state.auto_progression.green_for_ms = 48 * 60 * 1000;
        assert_eq!(
            auto_progression_words(&state),
            "On: the next step in 23 h 12 min if the checks stay green (green for 48 min)."
        );
        // The wait is served, but the statistical judge has not passed it yet.
        state.auto_progression.green_for_ms = state.auto_progression.wait_ms;
        assert_eq!(
            auto_progression_words(&state),
            "On: 24 h of green served; the step moves once the statistical judge passes the canary."
        );
        state.auto_progression.green_for_ms = 0;
        assert_eq!(
            auto_progression_words(&state),
            "On: the 24 h wait for the next step starts once every check is green."
        );
        state.auto_progression.enabled = false;
        state.auto_progression.as_configured = false;
        assert_eq!(
            auto_progression_words(&state),
            "Off: steps move on only when an operator continues. (changed for this rollout)"
        );
    }

    #[test]
    fn the_demo_panel_says_what_the_canary_service_does() {
        use canary_shared::demo::{DemoBehaviour, DemoService, DemoStatus};
        let service = |behaviour| DemoService {
            version: "v2.7.0".to_owned(),
            url: "http://127.0.0.1:1".to_owned(),
            behaviour,
        };
        let mut status = DemoStatus {
            production: service(DemoBehaviour::default()),
            canary: service(DemoBehaviour::default()),
            load_per_sec: 40,
        };
        assert_eq!(
            super::demo_words(&status),
            "Canary service: healthy · 40 requests/s of load"
        );
        status.canary.behaviour = DemoBehaviour {
            error_rate: 0.1,
            added_latency_ms: 400,
            hang: true,
            wrong_answer_rate: 0.02,
        };
        assert_eq!(
            super::demo_words(&status),
            "Canary service: hangs, 10 % errors, 2 % wrong answers, +400 ms · 40 requests/s of load"
        );
    }

    #[test]
    fn advanced_settings_read_as_sentences() {
        let settings = canary_shared::RolloutSettings {
            traffic_steps: [5.0, 25.0, 50.0, 100.0]
                .map(|percent| CanaryShare::from_percent(percent).unwrap())
                .to_vec(),
            auto_progression: true,
            wait_ms: 24 * 3600 * 1000,
            auto_rollback: true,
            min_requests: 20,
            watch_margin: 0.1,
            no_data_timeout_ms: 600_000,
            on_long_no_data: "hold".to_owned(),
            stickiness: "cookie canary_bucket for 24 h".to_owned(),
            override_header: Some("x-canary".to_owned()),
            judge: "enforce".to_owned(),
            judge_alpha: 0.01,
            judge_failure_tolerance: 0.2,
            judge_latency_tolerance: 0.05,
            promotion: "the canary's upstream becomes production".to_owned(),
            promotion_warning: Some("no deploy hook".to_owned()),
        };
        let rows = super::settings_rows(&settings);
        let text: Vec<String> = rows
            .iter()
            .map(|(term, meaning)| format!("{term}: {meaning}"))
            .collect();
        assert_eq!(
            text,
            [
                "Traffic steps: 5 % → 25 % → 50 % → 100 %",
                "Auto-progression: On: each step moves on after 24 h of green checks.",
                "Auto-rollback: Armed: a critical breach rolls the canary back without a human.",
                "How checks are judged: No data below 20 canary requests in a minute (never a pass). Watch within 10 % of a limit. After 10 min without data: keep holding.",
                "Stickiness: Cookie canary_bucket for 24 h: each browser stays on its side.",
                "Statistical judge: Enforce: a regression it finds rolls the canary back, and a step advances only once it has passed the canary (false alarms at most 1 %; failure rate within 1.2× production's, slower than concurrent production requests at most 55 % of the time).",
                "Promotion: The canary's upstream becomes production. Note: no deploy hook.",
                "Forcing a side: From a trusted network or with the token, a request with x-canary: canary (or production) goes to that side, while the canary has a share above 0 %."
            ]
        );
    }

    #[test]
    fn the_safety_panel_explains_only_the_current_rollouts_decisions() {
        let mut earlier = audit(2, "auto_rollback", 25.0, 0.0, Some("errors"));
        earlier.at = UnixMillis(1_000);
        let mut current = audit(5, "auto_progress", 5.0, 25.0, None);
        current.at = UnixMillis(9_000);
        let entries = vec![current.clone(), earlier.clone()];
        let seqs = |started| {
            super::rollout_decisions(&entries, started, 4)
                .iter()
                .map(|entry| entry.seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            seqs(Some(UnixMillis(8_000))),
            [5],
            "a new rollout starts clean"
        );
        assert_eq!(seqs(None), [5, 2]);
    }

    #[test]
    fn automatic_decisions_show_both_sides_figures() {
        let mut entry = audit(
            3,
            "auto_rollback",
            25.0,
            0.0,
            Some("p95 latency 1,340 ms > 1,000 ms"),
        );
        assert!(is_automatic_decision(&entry));
        let canary = canary_shared::WindowStats {
            requests: 812,
            p95_latency_ms: Some(1340.0),
            error_rate: Some(0.12),
            ..Default::default()
        };
        let production = canary_shared::WindowStats {
            requests: 15_230,
            p95_latency_ms: Some(212.4),
            error_rate: Some(0.004),
            ..Default::default()
        };
        entry.metrics = Some(Box::new(canary_shared::AuditMetrics { production, canary }));
        assert_eq!(
            decision_figures(entry.metrics.as_deref().unwrap()),
            [
                "Canary: p95 1,340 ms · errors 12 % · 812 requests in the last minute",
                "Production: p95 212 ms · errors 0.4 % · 15,230 requests in the last minute"
            ]
        );
        entry.actor = "alice".to_owned();
        assert!(
            !is_automatic_decision(&entry),
            "a person's rollback is not automatic"
        );
        entry.actor = "controller".to_owned();
        entry.action = "deployed".to_owned();
        assert!(
            !is_automatic_decision(&entry),
            "a hook's report is not a decision"
        );
    }

    fn audit(seq: u64, action: &str, from: f64, to: f64, reason: Option<&str>) -> AuditEvent {
        AuditEvent {
            seq,
            at: UnixMillis(0),
            actor: "controller".to_owned(),
            action: action.to_owned(),
            from_phase: Phase::Progressing,
            to_phase: Phase::RollingBack,
            from_percent: CanaryShare::from_percent(from).unwrap(),
            to_percent: CanaryShare::from_percent(to).unwrap(),
            reason: reason.map(str::to_owned),
            metrics: None,
            output: None,
        }
    }

    #[test]
    fn breaches_and_rollbacks_raise_a_browser_alert_with_the_reason() {
        let breach = audit(
            7,
            "auto_rollback",
            25.0,
            0.0,
            Some("p95 latency 1,340 ms > 1,000 ms"),
        );
        assert_eq!(
            browser_alert(&breach, Some("v2.7.0")),
            Some(BrowserAlert {
                title: "Safety breach: canary v2.7.0 rolled back".to_owned(),
                body: "p95 latency 1,340 ms > 1,000 ms\nAuto rollback: 25 % → 0 %, by controller"
                    .to_owned(),
                tag: "canary-audit-7".to_owned(),
            })
        );
        let stop = audit(8, "stop", 50.0, 0.0, None);
        assert_eq!(
            browser_alert(&stop, None).map(|alert| (alert.title, alert.body)),
            Some((
                "Canary rolled back".to_owned(),
                "Stop: 50 % → 0 %, by controller".to_owned()
            ))
        );
        let paused = audit(
            11,
            "auto_pause",
            25.0,
            25.0,
            Some("statistical judge (advisory): latency: slower in 71 % of 900 comparisons"),
        );
        assert_eq!(
            browser_alert(&paused, Some("v2.7.0")).map(|alert| alert.title),
            Some("Regression found: canary v2.7.0 paused".to_owned())
        );
        assert!(
            is_automatic_decision(&paused),
            "explained in the safety panel"
        );
        // Routine moves stay quiet.
        assert_eq!(
            browser_alert(&audit(9, "continue", 5.0, 25.0, None), None),
            None
        );
        assert_eq!(
            browser_alert(&audit(10, "start", 0.0, 0.0, None), None),
            None
        );
    }

    #[test]
    fn only_entries_after_the_last_seen_one_alert_oldest_first() {
        // Newest first, as the console keeps them.
        let entries = [
            audit(12, "rollback", 25.0, 0.0, Some("second")),
            audit(11, "continue", 5.0, 25.0, None),
            audit(10, "no_data_rollback", 5.0, 0.0, Some("first")),
            audit(9, "stop", 5.0, 0.0, Some("already seen")),
        ];
        let reasons: Vec<String> = new_alerts(&entries, 9, None)
            .map(|alert| alert.body.lines().next().unwrap().to_owned())
            .collect();
        assert_eq!(reasons, ["first", "second"]);
        assert_eq!(new_alerts(&entries, 12, None).count(), 0);
    }

    #[test]
    fn a_viewer_sees_every_action_disabled_with_the_reason() {
        use canary_shared::{ActionKind, Role};

        let viewer = action_view(None, ActionKind::Stop, Role::Viewer);
        assert!(!viewer.enabled);
        assert_eq!(
            viewer.reason.as_deref(),
            Some("signed in as a viewer: you can watch; operators and admins act")
        );
        // An operator waits for the server's word like anyone else.
        let operator = action_view(None, ActionKind::Stop, Role::Operator);
        assert_eq!(operator.reason.as_deref(), Some("waiting for the server"));
    }

    #[test]
    fn the_audit_filter_sorts_decisions_from_access() {
        use crate::view_model::AuditKind;

        let automatic = audit(1, "auto_rollback", 25.0, 0.0, None);
        let mut by_hand = audit(2, "scale", 5.0, 25.0, None);
        by_hand.actor = "alice".to_owned();
        let mut login = audit(3, "login", 0.0, 0.0, None);
        login.actor = "alice".to_owned();
        let kinds = |entry: &AuditEvent| {
            AuditKind::ALL
                .into_iter()
                .filter(|kind| kind.matches(entry))
                .map(AuditKind::label)
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&automatic), ["All", "Rollout", "Automatic"]);
        assert_eq!(kinds(&by_hand), ["All", "Rollout"]);
        assert_eq!(kinds(&login), ["All", "Access"]);
    }

    #[test]
    fn audit_words_read_well() {
        use canary_shared::UnixMillis;

        use crate::view_model::{action_label, clock_time, duration_words};
        assert_eq!(action_label("auto_rollback"), "Auto rollback");
        assert_eq!(clock_time(UnixMillis(1_700_000_109_000)), "22:15:09");
        assert_eq!(duration_words(45_000), "45 s");
        assert_eq!(duration_words(3_900_000), "1 h 5 min");
    }

    #[test]
    fn any_control_value_becomes_a_valid_share() {
        assert_eq!(clamp_share(25.0).basis_points(), 2500);
        assert_eq!(clamp_share(12.345).basis_points(), 1235);
        assert_eq!(clamp_share(-3.0), CanaryShare::ZERO);
        assert_eq!(clamp_share(250.0), CanaryShare::FULL);
        assert_eq!(clamp_share(f64::NAN), CanaryShare::ZERO);
    }

    #[test]
    fn the_confirmation_states_the_move() {
        let share = |percent| CanaryShare::from_percent(percent).unwrap();
        assert_eq!(
            share_move_question(share(5.0), share(25.0)),
            "Move canary from 5 % to 25 %?"
        );
        assert_eq!(
            share_move_question(share(50.0), share(0.5)),
            "Move canary from 50 % to 0.5 %?"
        );
    }

    #[test]
    fn reconnect_delays_grow_and_stay_bounded() {
        assert_eq!(reconnect_delay_ms(1, 1.0), 500);
        assert_eq!(reconnect_delay_ms(1, 0.0), 250);
        assert_eq!(reconnect_delay_ms(2, 1.0), 1000);
        assert_eq!(reconnect_delay_ms(4, 1.0), 4000);
        assert_eq!(reconnect_delay_ms(10, 1.0), 10_000);
        assert_eq!(reconnect_delay_ms(u32::MAX, 1.0), 10_000);
        assert!(reconnect_delay_ms(u32::MAX, 0.0) >= 5_000);
    }

    #[test]
    fn figures_are_written_for_people() {
        assert_eq!(latency(None), "—");
        assert_eq!(latency(Some(3.26)), "3.3 ms");
        assert_eq!(latency(Some(41.4)), "41 ms");
        assert_eq!(latency(Some(1340.0)), "1,340 ms");
        assert_eq!(rate(Some(0.995)), "99.5 %");
        assert_eq!(rate(Some(1.0)), "100 %");
        assert_eq!(rate(None), "—");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn the_connection_says_when_data_is_stale() {
        assert!(!Connection::Live.is_stale());
        assert!(Connection::Connecting.is_stale());
        let reconnecting = Connection::Reconnecting {
            attempt: 2,
            retry_in_ms: 1500,
        };
        assert!(reconnecting.is_stale());
        assert_eq!(reconnecting.label(), "Reconnecting in 2 s…");
        // The countdown ticks down to the attempt.
        assert_eq!(reconnecting.label_after(1_000), "Reconnecting in 1 s…");
        assert_eq!(reconnecting.label_after(60_000), "Reconnecting…");
    }
}
