//! The controller with a real store, tick by tick through its events.

use std::sync::Arc;

use canary_shared::{
    CanaryShare, Command, MetricsSnapshot, Phase, Side, SideMetrics, StartRequest, UnixMillis,
    WindowStats,
};

use crate::adapters::clock::SystemClock;
use crate::adapters::proxy::SharedRouting;
use crate::adapters::recorder::{Outcome, Recorder};
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
        shadow: None,
    }
}

/// The shipped config with `canary:` lines changed by `adjust`.
fn shipped_config(adjust: impl FnOnce(&mut Config)) -> Arc<Config> {
    let mut config = Config::from_yaml(include_str!("../../../../canary-config.yaml")).unwrap();
    adjust(&mut config);
    Arc::new(config)
}

async fn running(store: Arc<SqliteStore>, share: SharedRouting) -> ControllerHandle {
    let recorder = Arc::new(Recorder::new());
    running_with(shipped_config(|_| {}), store, share, recorder, 25.0)
        .await
        .0
}

/// A controller on `store` and `recorder` with a rollout at `percent`, and its task.
async fn running_with(
    config: Arc<Config>,
    store: Arc<SqliteStore>,
    share: SharedRouting,
    recorder: Arc<Recorder>,
    percent: f64,
) -> (ControllerHandle, tokio::task::JoinHandle<()>) {
    let (handle, task) = started(config, store, share, recorder);
    let start = Command::Start(StartRequest {
        image_tag: "v2.7.0".to_owned(),
        traffic_percent: CanaryShare::from_percent(percent).unwrap(),
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
    (handle, task)
}

/// A controller as `spawn` makes it from what `store` holds.
fn started(
    config: Arc<Config>,
    store: Arc<SqliteStore>,
    share: SharedRouting,
    recorder: Arc<Recorder>,
) -> (ControllerHandle, tokio::task::JoinHandle<()>) {
    spawn(
        config,
        Arc::new(SystemClock),
        store,
        share.clone(),
        move |_, _| -> Arc<dyn crate::ports::Router> {
            Arc::new(crate::adapters::router::BuiltinRouter::new(share))
        },
        recorder,
        None,
    )
    .unwrap()
}

/// Waits until the controller has handled everything sent before: a
/// command is answered after the failures recorded before it were taken.
async fn settled(handle: &ControllerHandle) {
    let refused = Command::Start(StartRequest {
        image_tag: "v9".to_owned(),
        traffic_percent: CanaryShare::from_percent(5.0).unwrap(),
    });
    let answer = handle.command("ops".to_owned(), refused, None).await;
    assert!(
        answer.is_err(),
        "a start while a rollout runs changes nothing"
    );
}

fn canary_outcomes(recorder: &Recorder, outcome: Outcome, count: usize) {
    for _ in 0..count {
        recorder.record(Side::Canary, outcome, std::time::Duration::from_millis(5));
    }
}

/// The store's audit entries of `action`, newest first (at most ten).
fn decisions(store: &SqliteStore, action: &str) -> Vec<canary_shared::AuditEvent> {
    store
        .audit(&crate::adapters::store::AuditQuery {
            action: Some(action.to_owned()),
            limit: 10,
            ..crate::adapters::store::AuditQuery::default()
        })
        .unwrap()
        .events
}

/// Closes `seconds` seconds in the recorder, as the ticker would.
fn tick(recorder: &Recorder, seconds: u64) {
    for second in 0..seconds {
        recorder.tick(UnixMillis(second * 1000));
    }
}

#[tokio::test]
async fn a_check_with_a_fast_window_rolls_back_between_ticks_where_the_minute_still_dilutes() {
    for fast_window in [None, Some(crate::config::FastWindow(10))] {
        let config = shipped_config(|config| {
            config.canary.auto_progression.thresholds.fast_window = fast_window;
            config.canary.judge.mode = crate::config::JudgeMode::Off;
        });
        let store = Arc::new(SqliteStore::in_memory().unwrap());
        let (share, recorder) = (SharedRouting::default(), Arc::new(Recorder::new()));
        let (handle, _task) =
            running_with(config, store, share.clone(), Arc::clone(&recorder), 25.0).await;
        // 200 good canary requests, then 12 quiet seconds: out of a 10 s
        // window, still in the minute.
        canary_outcomes(&recorder, Outcome::Status(200), 200);
        tick(&recorder, 13);
        // Then every request fails: 25 of 225 is 11 % over the minute
        // (under the 15 % limit), 100 % over the last 10 s.
        canary_outcomes(&recorder, Outcome::Status(500), 25);
        settled(&handle).await;
        let state = handle.state.borrow().clone();
        match fast_window {
            None => {
                assert_eq!(state.phase, Phase::Progressing, "{}", state.summary);
                assert_eq!(share.share().percent(), 25.0);
            }
            Some(_) => {
                assert!(
                    matches!(state.phase, Phase::RollingBack | Phase::RolledBack),
                    "{:?}: {}",
                    state.phase,
                    state.summary
                );
                assert_eq!(share.share(), CanaryShare::ZERO);
                // The success rate's threshold (listed first) or the error rate's.
                assert!(
                    state.summary.contains("rate") && state.summary.contains("in the last 10 s"),
                    "{}",
                    state.summary
                );
            }
        }
    }
}

#[tokio::test]
async fn the_judge_rolls_a_failing_canary_back_at_its_third_failure_without_waiting_for_a_tick() {
    let config = shipped_config(|config| {
        config.canary.judge.mode = crate::config::JudgeMode::Enforce;
    });
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let (share, recorder) = (SharedRouting::default(), Arc::new(Recorder::new()));
    let (handle, _task) =
        running_with(config, store, share.clone(), Arc::clone(&recorder), 5.0).await;
    for failure in 1..=3 {
        canary_outcomes(&recorder, Outcome::Status(500), 1);
        settled(&handle).await;
        let pulled = share.share() == CanaryShare::ZERO;
        assert_eq!(
            pulled,
            failure == 3,
            "after failure {failure} at 5 %: {}",
            handle.state.borrow().summary
        );
    }
    let state = handle.state.borrow().clone();
    assert!(
        state.summary.contains("statistical judge"),
        "{}",
        state.summary
    );
}

#[tokio::test]
async fn a_canary_pulled_before_its_rollback_was_recorded_stays_out_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(|config| {
        config.canary.judge.mode = crate::config::JudgeMode::Enforce;
    });
    {
        let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
        let (share, recorder) = (SharedRouting::default(), Arc::new(Recorder::new()));
        let (handle, task) = running_with(
            Arc::clone(&config),
            Arc::clone(&store),
            share.clone(),
            Arc::clone(&recorder),
            5.0,
        )
        .await;
        // The disk refuses writes: the judge's rollback goes ahead unrecorded.
        store.fail_writes();
        canary_outcomes(&recorder, Outcome::Status(500), 3);
        settled(&handle).await;
        assert_eq!(share.share(), CanaryShare::ZERO, "pulled at once");
        // The process dies before the store takes writes again.
        task.abort();
        let _ = task.await;
        drop(handle);
        assert_eq!(
            store.load().unwrap().unwrap().deployment.phase,
            Phase::Progressing,
            "the store still holds the rollout"
        );
    }
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let share = SharedRouting::default();
    let (handle, task) = started(
        config,
        Arc::clone(&store),
        share.clone(),
        Arc::new(Recorder::new()),
    );
    assert_eq!(
        share.share(),
        CanaryShare::ZERO,
        "0 % from the start, before any listener"
    );
    let state = handle.state.borrow().clone();
    assert!(
        matches!(state.phase, Phase::RollingBack | Phase::RolledBack),
        "{:?}",
        state.phase
    );
    let rollbacks = decisions(&store, "rollback");
    assert_eq!(rollbacks.len(), 1, "{rollbacks:?}");
    let reason = rollbacks[0].reason.clone().unwrap_or_default();
    assert!(
        reason.contains("stopped before recording it") && reason.contains("statistical judge"),
        "{reason}"
    );
    task.abort();
    let _ = task.await;
    drop(handle);
    drop(store);
    let reopened = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        reopened.opening().pulled,
        None,
        "the note is cleared once recorded"
    );
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
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let share = SharedRouting::default();
    let handle = running(Arc::clone(&store), share.clone()).await;
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
        decisions(&store, "auto_rollback").is_empty(),
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
        recorded = decisions(&store, "auto_rollback");
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
