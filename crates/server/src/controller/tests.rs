//! The controller with a real store, tick by tick through its events.

use std::sync::Arc;

use canary_shared::{
    CanaryShare, Command, MetricsSnapshot, Phase, SideMetrics, StartRequest, UnixMillis,
    WindowStats,
};

use crate::adapters::clock::SystemClock;
use crate::adapters::proxy::SharedRouting;
use crate::adapters::store::SqliteStore;
use crate::config::Config;
use crate::controller::{CommandError, ControllerHandle, Event, spawn};

fn snapshot(canary_requests: u64, canary_p95: f64) -> MetricsSnapshot {
    let window = |requests, p95| SideMetrics {
        last_1m: WindowStats {
            window_secs: 60,
            requests,
            p95_latency_ms: Some(p95),
            success_rate: Some(1.0),
            error_rate: Some(0.0),
            ..WindowStats::default()
        },
        ..SideMetrics::default()
    };
    MetricsSnapshot {
        at: UnixMillis(0),
        canary_percent: CanaryShare::ZERO,
        production: window(1000, 20.0),
        canary: window(canary_requests, canary_p95),
    }
}

async fn running(store: Arc<SqliteStore>, share: SharedRouting) -> ControllerHandle {
    let config =
        Arc::new(Config::from_yaml(include_str!("../../../../canary-config.yaml")).unwrap());
    let (handle, _task) = spawn(
        config,
        Arc::new(SystemClock),
        store,
        share.clone(),
        move |_, _| -> Arc<dyn crate::ports::Router> {
            Arc::new(crate::adapters::router::BuiltinRouter::new(share))
        },
        Arc::new(crate::adapters::recorder::Recorder::new()),
        snapshot(0, 0.0),
    )
    .unwrap();
    let start = Command::Start(StartRequest {
        image_tag: "v2.7.0".to_owned(),
        traffic_percent: CanaryShare::from_percent(25.0).unwrap(),
    });
    handle.command("ops".to_owned(), start, None).await.unwrap();
    // No hooks configured: the deploy finishes at once; the health check
    // probes an upstream that does not run, so report it healthy instead.
    let deployed = crate::domain::deployment::Input::HookFinished {
        hook: crate::domain::deployment::Hook::HealthCheck,
        succeeded: true,
        detail: "test".to_owned(),
    };
    let mut state = handle.state.clone();
    state
        .wait_for(|state| state.phase == Phase::HealthCheck)
        .await
        .unwrap();
    handle.report("test".to_owned(), deployed).await.unwrap();
    handle
}

#[tokio::test]
async fn a_failing_store_refuses_commands_and_changes_nothing() {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let share = SharedRouting::default();
    let handle = running(Arc::clone(&store), share.clone()).await;
    assert_eq!(share.share().percent(), 25.0);
    store.fail_writes();
    let refused = handle
        .command("ops".to_owned(), Command::Continue, None)
        .await
        .unwrap_err();
    assert!(matches!(refused, CommandError::Store(_)), "{refused}");
    assert_eq!(
        share.share().percent(),
        25.0,
        "the proxy keeps serving the current share"
    );
    assert_eq!(handle.state.borrow().traffic.canary().percent(), 25.0);
}

#[tokio::test]
async fn a_breach_rolls_back_within_one_evaluation_even_when_the_store_fails() {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let share = SharedRouting::default();
    let handle = running(Arc::clone(&store), share.clone()).await;
    store.fail_writes();
    handle
        .events
        .send(Event::Measured(Arc::new(snapshot(500, 1340.0))))
        .await
        .unwrap();
    let mut state = handle.state.clone();
    let state = state
        .wait_for(|state| state.phase == Phase::RollingBack || state.phase == Phase::RolledBack)
        .await
        .unwrap()
        .clone();
    assert_eq!(
        share.share(),
        CanaryShare::ZERO,
        "traffic left the canary at the first breaching evaluation"
    );
    assert!(
        state.summary.contains("p95 latency 1,340 ms > 1,000 ms"),
        "{}",
        state.summary
    );
}

#[tokio::test]
async fn a_rollback_decided_while_the_store_fails_is_recorded_once_it_takes_writes_again() {
    use crate::adapters::store::AuditQuery;

    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let share = SharedRouting::default();
    let handle = running(Arc::clone(&store), share.clone()).await;
    let auto_rollbacks = |store: &SqliteStore| {
        store
            .audit(&AuditQuery {
                action: Some("auto_rollback".to_owned()),
                limit: 10,
                ..AuditQuery::default()
            })
            .unwrap()
            .events
    };
    store.fail_writes();
    let decided_at = crate::ports::Clock::now(&SystemClock);
    handle
        .events
        .send(Event::Measured(Arc::new(snapshot(500, 1340.0))))
        .await
        .unwrap();
    let mut state = handle.state.clone();
    state
        .wait_for(|state| matches!(state.phase, Phase::RollingBack | Phase::RolledBack))
        .await
        .unwrap();
    assert_eq!(share.share(), CanaryShare::ZERO, "traffic left at once");
    // The rollback hook ends while the store still fails: that too goes ahead.
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        state.wait_for(|state| matches!(state.phase, Phase::RolledBack | Phase::Failed)),
    )
    .await
    .expect("the rollback finishes without the store")
    .unwrap();
    assert!(
        auto_rollbacks(&store).is_empty(),
        "nothing could be written yet"
    );
    let saved = store.load().unwrap().unwrap();
    assert_eq!(
        saved.deployment.phase,
        Phase::Progressing,
        "the store still holds the rollout"
    );

    // Space again: the next measurement records the rollback, with the
    // time it was decided, and the deployment as it stands.
    store.allow_writes();
    handle
        .events
        .send(Event::Measured(Arc::new(snapshot(500, 20.0))))
        .await
        .unwrap();
    let mut recorded = Vec::new();
    for _ in 0..100 {
        recorded = auto_rollbacks(&store);
        if !recorded.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(recorded.len(), 1, "recorded once: {recorded:?}");
    assert!(
        recorded[0].at.0.abs_diff(decided_at.0) < 5_000,
        "recorded with the time it was decided: {:?} against {decided_at:?}",
        recorded[0].at
    );
    let saved = store.load().unwrap().unwrap();
    assert_ne!(
        saved.deployment.phase,
        Phase::Progressing,
        "a restart finds it rolled back"
    );
}
