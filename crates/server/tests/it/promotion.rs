//! Promotion means what operators think: the promoted version keeps serving
//! production through the next rollout and across a restart.

use canary_shared::{CanaryShare, CanaryState, Command, Phase, StartRequest};

use crate::support::{TestApp, http_get};

/// Which fake upstream answered each of `count` requests through the proxy.
async fn answered_by(app: &TestApp, count: usize) -> (usize, usize) {
    let (mut listed_production, mut listed_canary) = (0, 0);
    for _ in 0..count {
        let (_, headers, _) = http_get(&app.proxy_url("/"), "*/*").await;
        match headers
            .get("x-upstream")
            .and_then(|name| name.to_str().ok())
        {
            Some("production") => listed_production += 1,
            Some("canary") => listed_canary += 1,
            other => panic!("answered by {other:?}"),
        }
    }
    (listed_production, listed_canary)
}

pub(crate) async fn start(app: &TestApp, tag: &str, percent: f64) {
    let start = Command::Start(StartRequest {
        image_tag: tag.to_owned(),
        traffic_percent: CanaryShare::from_percent(percent).unwrap(),
    });
    app.controller
        .command("ops".to_owned(), start, None)
        .await
        .unwrap();
    app.wait_for_phase(Phase::Progressing).await;
}

/// Promotes the rollout and waits until it is promoted.
pub(crate) async fn promote(app: &TestApp) -> CanaryState {
    app.controller
        .command("ops".to_owned(), Command::Promote, None)
        .await
        .unwrap();
    app.wait_for_phase(Phase::Promoted).await
}

pub(crate) fn status(app: &TestApp) -> CanaryState {
    app.controller.state.borrow().clone()
}

#[tokio::test]
async fn after_a_promotion_the_next_rollout_splits_between_the_promoted_version_and_the_next() {
    let mut app = TestApp::start().await;
    start(&app, "v2.7.0", 50.0).await;
    let promoted = promote(&app).await;
    assert_eq!(
        promoted.production.url,
        app.canary.url(),
        "the canary's upstream serves production"
    );
    assert_eq!(promoted.production.version.as_deref(), Some("v2.7.0"));
    assert_eq!(promoted.traffic.canary(), CanaryShare::ZERO);
    assert_eq!(
        answered_by(&app, 40).await,
        (0, 40),
        "every request goes to the promoted version"
    );

    // The next rollout deploys to the upstream the promotion freed, while
    // the promoted version keeps production's share.
    start(&app, "v2.8.0", 25.0).await;
    let next = status(&app);
    assert_eq!(next.production.url, app.canary.url());
    assert_eq!(next.production.version.as_deref(), Some("v2.7.0"));
    assert_eq!(next.canary.url, app.production.url());
    assert_eq!(next.canary.version.as_deref(), Some("v2.8.0"));
    let (to_canary, to_production) = answered_by(&app, 200).await;
    assert!(
        to_production > to_canary && to_canary > 0,
        "at 25 %, production (the promoted v2.7.0) takes most requests: {to_production} vs {to_canary}"
    );

    // Who serves production, and what undoing the last promotion needs,
    // survive a restart.
    app.restart().await;
    let restarted = status(&app);
    assert_eq!(restarted.production.url, app.canary.url());
    assert_eq!(restarted.production.version.as_deref(), Some("v2.7.0"));
    assert_eq!(restarted.canary.version.as_deref(), Some("v2.8.0"));
    let (to_canary, to_production) = answered_by(&app, 200).await;
    assert!(
        to_production > to_canary && to_canary > 0,
        "after the restart too: {to_production} vs {to_canary}"
    );
    app.stop_canary("ops", "done").await;
    app.wait_for_phase(Phase::RolledBack).await;
    assert_eq!(
        answered_by(&app, 20).await,
        (0, 20),
        "a stop leaves production where it was"
    );
}
