//! The statistical judge inside the controller: in `enforce` mode a canary
//! that is measurably worse than production is rolled back with the judge's
//! words, and an undecided one is held instead of progressing.

use canary_server::config::Config;
use canary_shared::{CanaryState, JudgeConclusion, Phase};

use crate::support::{TestApp, background_traffic, eventually, http_get};

async fn state(app: &TestApp) -> CanaryState {
    let (_, _, body) = http_get(&app.url("/admin/canary/status"), "application/json").await;
    serde_json::from_str(&body).unwrap()
}

async fn judged_app() -> TestApp {
    TestApp::start_with(|config| {
        let judge = Config::from_yaml(
            "canary:\n  auto_progression: { enabled: true, wait_time: 1s, thresholds: { max_latency: 5s, min_success_rate: 0.5, max_error_rate: 0.5 } }\n  traffic_steps: [50, 100]\n  judge: { mode: enforce, alpha: 0.01 }\n",
        )
        .unwrap()
        .canary;
        config.canary = judge;
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
    let state = eventually("the hold", async || {
        let state = state(&app).await;
        state
            .summary
            .contains("waiting for the statistical judge")
            .then_some(state)
    })
    .await;
    traffic.abort();
    // Still at the starting share: the 1 s of green did not advance it.
    assert_eq!(state.traffic.canary().percent(), 5.0, "{}", state.summary);
    assert_eq!(state.judge.len(), 2);
}
