//! Fast rollback through the real proxy: a canary that fails every request
//! is out within a handful of failed requests, and one that stops answering
//! within its own response timeout and a few requests more.

use canary_server::config::Config;
use canary_shared::{AuditPage, Phase};

use crate::support::{TestApp, http_get};

/// The app judging in enforce mode at α = 0.01, auto-progression off.
async fn judged_at_five_percent(adjust: impl FnOnce(&mut Config)) -> TestApp {
    let app = TestApp::start_with(|config| {
        let yaml = "canary:\n  auto_progression: { enabled: false, wait_time: 1h, thresholds: { max_latency: 5s, min_success_rate: 0.5, max_error_rate: 0.5 } }\n  traffic_steps: [5, 100]\n  judge: { mode: enforce, alpha: 0.01 }\n";
        config.canary = Config::from_yaml(yaml).unwrap().canary;
        adjust(config);
    })
    .await;
    app.start_canary_at(5.0).await;
    app
}

/// Sends requests one at a time until the canary's share is 0 %; returns
/// how many of them the canary served (each a failure, by the test's setup).
async fn requests_until_pulled(app: &TestApp) -> u32 {
    let client = crate::support::json_client();
    let mut on_the_canary = 0;
    for _ in 0..10_000 {
        let response = client
            .get(app.proxy_url("/work").parse().unwrap())
            .await
            .unwrap();
        let upstream = response.headers().get("x-upstream").cloned();
        // The proxy's own 504 names no upstream; the canary's 500 does.
        if response.status() == 504 || upstream.is_some_and(|name| name == "canary") {
            assert!(response.status().is_server_error(), "{response:?}");
            on_the_canary += 1;
        }
        if app.controller.state.borrow().traffic.canary().percent() == 0.0 {
            break;
        }
    }
    on_the_canary
}

async fn auto_rollback_reason(app: &TestApp) -> String {
    let url = app.url("/admin/canary/audit?action=auto_rollback");
    let (_, _, body) = http_get(&url, "application/json").await;
    let page: AuditPage = serde_json::from_str(&body).unwrap();
    page.events[0].reason.clone().unwrap_or_default()
}

/// Through the real proxy, one request at a time: a canary that fails every
/// request at 5 % is out after the judge's third failure, without waiting
/// for the once-a-second evaluation (at the ~100s of requests a second this
/// loop sends, a second's wait would cost a dozen failed users or more).
#[tokio::test]
async fn a_canary_failing_every_request_is_out_within_a_handful_of_failed_requests() {
    let app = judged_at_five_percent(|_| {}).await;
    app.canary.set_status(500);
    let failed_on_the_canary = requests_until_pulled(&app).await;
    let state = app.wait_for_phase(Phase::RolledBack).await;
    assert!(
        failed_on_the_canary <= 5,
        "{failed_on_the_canary} users got the canary's failure before it was out"
    );
    assert!(
        state.summary.contains("statistical judge"),
        "{}",
        state.summary
    );
    let reason = auto_rollback_reason(&app).await;
    assert!(
        reason.contains("failure rate: the canary fails more than"),
        "{reason}"
    );
}

/// A canary that stops answering fails each request at its response
/// timeout: `proxy.canary_response_timeout` makes that 300 ms instead of
/// production's allowance, and the judge counts the timeouts as failures.
#[tokio::test]
async fn a_canary_that_stops_answering_is_out_after_a_few_of_its_own_timeouts() {
    let app = judged_at_five_percent(|config| {
        // Production's allowance is an hour: a test that waited for it
        // would hang, not pass.
        config.proxy.upstream_response_timeout =
            canary_server::config::ConfigDuration(std::time::Duration::from_secs(3600));
        config.proxy.canary_response_timeout = Some(canary_server::config::ConfigDuration(
            std::time::Duration::from_millis(300),
        ));
    })
    .await;
    app.canary.set_delay_ms(60_000);
    // The bound only catches a hang (the hour-long allowance applied).
    let timed_out = tokio::time::timeout(
        std::time::Duration::from_secs(300),
        requests_until_pulled(&app),
    )
    .await
    .expect("the canary's own response timeout applies");
    app.wait_for_phase(Phase::RolledBack).await;
    assert!(
        timed_out <= 5,
        "{timed_out} users waited for the canary's timeout"
    );
    let reason = auto_rollback_reason(&app).await;
    assert!(reason.contains("statistical judge"), "{reason}");
    let snapshot = app
        .metrics_where(|metrics| metrics.canary.last_1m.transport_errors.timeout > 0)
        .await;
    assert_eq!(snapshot.production.last_1m.error_rate, Some(0.0));
}
