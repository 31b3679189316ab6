//! Tests of the console's presentation logic.

use canary_shared::{AuditEvent, CanaryShare, Phase, UnixMillis};

use crate::view_model::{
    BrowserAlert, Connection, action_view, auto_progression_words, browser_alert, clamp_share,
    decision_figures, is_automatic_decision, latency, new_alerts, rate, reconnect_delay_ms,
    share_move_question, thousands,
};

/// The shared snapshot's state: progressing at 25 %, auto-progression on.
fn state() -> canary_shared::CanaryState {
    serde_json::from_str(include_str!(
        "../../../shared/src/snapshots/canary_state.json"
    ))
    .unwrap()
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
