//! The statistical judge inside the controller: in `enforce` mode a canary
//! that is measurably worse than production is rolled back with the judge's
//! words, an undecided one is held instead of progressing, and one like
//! production is promoted without a human; in `advisory` mode a worse
//! canary is paused for a person instead.

use canary_server::config::Config;
use canary_shared::{AuditPage, CanaryState, JudgeConclusion, Phase};

use crate::support::{TestApp, background_traffic, eventually, http_get};

async fn state(app: &TestApp) -> CanaryState {
    let (_, _, body) = http_get(&app.url("/admin/canary/status"), "application/json").await;
    serde_json::from_str(&body).unwrap()
}

async fn judged_app() -> TestApp {
    app_judging_in("enforce").await
}

async fn app_judging_in(mode: &str) -> TestApp {
    let yaml = format!(
        "canary:\n  auto_progression: {{ enabled: true, wait_time: 1s, thresholds: {{ max_latency: 5s, min_success_rate: 0.5, max_error_rate: 0.5 }} }}\n  traffic_steps: [50, 100]\n  judge: {{ mode: {mode}, alpha: 0.01 }}\n"
    );
    TestApp::start_with(move |config| {
        config.canary = Config::from_yaml(&yaml).unwrap().canary;
    })
    .await
}

/// The audit entries of one action, newest first.
async fn decisions(app: &TestApp, action: &str) -> AuditPage {
    let url = app.url(&format!("/admin/canary/audit?action={action}"));
    let (_, _, body) = http_get(&url, "application/json").await;
    serde_json::from_str(&body).unwrap()
}

/// Waits (up to a bound that only catches a hang) for `phase`.
async fn reaches(app: &TestApp, phase: Phase) -> CanaryState {
    let mut states = app.controller.state.clone();
    tokio::time::timeout(
        std::time::Duration::from_secs(120),
        states.wait_for(|state| state.phase == phase),
    )
    .await
    .unwrap_or_else(|_| panic!("never reached {phase:?}"))
    .unwrap()
    .clone()
}

/// The status once its summary says `words`.
async fn until_the_summary_says(app: &TestApp, words: &str) -> CanaryState {
    eventually(words, async || {
        let state = state(app).await;
        state.summary.contains(words).then_some(state)
    })
    .await
}

#[tokio::test]
async fn a_slower_canary_is_rolled_back_by_the_judge_with_its_reason() {
    let app = judged_app().await;
    // Slower by 30 ms on every request: far within the fixed thresholds.
    app.canary.set_delay_ms(30);
    app.start_canary().await;
    let traffic = background_traffic(&app);
    let state = eventually("the judge's rollback", async || {
        let state = state(&app).await;
        matches!(state.phase, Phase::RollingBack | Phase::RolledBack).then_some(state)
    })
    .await;
    traffic.abort();
    assert!(
        state
            .summary
            .contains("statistical judge: latency: the canary is slower than production"),
        "{}",
        state.summary
    );
    let latency = state
        .judge
        .iter()
        .find(|metric| metric.metric == "latency")
        .unwrap();
    assert_eq!(latency.conclusion, JudgeConclusion::Fail);
    assert!(latency.worse_evidence >= 100.0);
}

#[tokio::test]
async fn an_undecided_canary_is_held_until_the_judge_passes_it() {
    let app = judged_app().await;
    app.start_canary().await;
    let traffic = background_traffic(&app);
    // The wait is 1 s, but with a judge in enforce mode green checks alone do not advance.
    let state = until_the_summary_says(&app, "waiting for the statistical judge").await;
    traffic.abort();
    // Still at the starting share: the 1 s of green did not advance it.
    assert_eq!(state.traffic.canary().percent(), 5.0, "{}", state.summary);
    assert_eq!(state.judge.len(), 2);
}

#[tokio::test]
async fn a_canary_twice_as_slow_is_rolled_back_and_the_audit_says_why() {
    let app = judged_app().await;
    app.production.set_delay_ms(10);
    app.canary.set_delay_ms(20);
    // Half the traffic, so comparisons come quickly even on a busy machine.
    app.start_canary_at(50.0).await;
    let traffic = [background_traffic(&app), background_traffic(&app)];
    reaches(&app, Phase::RolledBack).await;
    for task in traffic {
        task.abort();
    }
    // Prometheus sees the evidence too.
    let (_, _, text) = http_get(&app.url("/metrics"), "text/plain").await;
    let exposition = canary_server::domain::exposition::parse(&text).unwrap();
    let evidence = exposition
        .samples
        .iter()
        .find(|sample| {
            sample.name == "canary_judge_evidence"
                && sample.label("metric") == Some("latency")
                && sample.label("toward") == Some("worse")
        })
        .unwrap_or_else(|| panic!("no judge evidence in\n{text}"));
    assert!(evidence.value >= 200.0, "{}", evidence.value);
    let page = decisions(&app, "auto_rollback").await;
    let rollback = &page.events[0];
    assert_eq!(rollback.actor, "controller");
    assert!(rollback.metrics.is_some(), "the figures of that moment");
    let reason = rollback.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("statistical judge: latency: the canary is slower than production more than 55 % of the time (slower in"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_canary_like_production_is_promoted_once_the_judge_passes_it() {
    let app = judged_app().await;
    // A large share (one production partner per canary request): passing
    // needs about 1,400 comparisons.
    app.start_canary_at(50.0).await;
    let traffic = [background_traffic(&app), background_traffic(&app)];
    let promoted = reaches(&app, Phase::Promoted).await;
    for task in traffic {
        task.abort();
    }
    for metric in &promoted.judge {
        assert_eq!(
            metric.conclusion,
            JudgeConclusion::Pass,
            "{}: {}",
            metric.metric,
            metric.words
        );
    }
    let page = decisions(&app, "auto_progress").await;
    assert!(
        page.events.iter().all(|event| event.actor == "controller") && !page.events.is_empty(),
        "advanced without a human: {page:?}"
    );
}

#[tokio::test]
async fn an_advisory_judge_pauses_a_worse_canary_for_a_person_instead_of_rolling_back() {
    let app = app_judging_in("advisory").await;
    app.production.set_delay_ms(10);
    app.canary.set_delay_ms(20);
    app.start_canary_at(50.0).await;
    let traffic = [background_traffic(&app), background_traffic(&app)];
    let paused = reaches(&app, Phase::Paused).await;
    for task in traffic {
        task.abort();
    }
    assert_eq!(paused.traffic.canary().percent(), 50.0, "the share is kept");
    assert!(
        paused
            .summary
            .contains("statistical judge (advisory): latency: the canary is slower"),
        "{}",
        paused.summary
    );
    let page = decisions(&app, "auto_pause").await;
    assert_eq!(page.events.len(), 1, "{page:?}");
    assert_eq!(page.events[0].actor, "controller");
}

#[tokio::test]
async fn at_a_full_share_the_judge_says_it_has_nothing_to_compare_with() {
    let app = judged_app().await;
    app.start_canary_at(100.0).await;
    let traffic = background_traffic(&app);
    let state = until_the_summary_says(
        &app,
        "at 100 % production gets no traffic to compare it with",
    )
    .await;
    traffic.abort();
    assert_eq!(state.phase, Phase::Progressing, "held, not rolled back");
    assert!(
        state.summary.contains("promote by hand"),
        "{}",
        state.summary
    );
}
