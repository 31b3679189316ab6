//! Test runs before any traffic, through the real controller: the team's
//! commands run against the canary's URL after its health check; a failing
//! one fails the rollout while the proxy has sent the canary nothing.

use std::time::Duration;

use canary_server::config::{ConfigDuration, HookCommand, TestRunConfig, TestRunName, TestRuns};
use canary_shared::{CanaryShare, Phase, StepStatus};

use crate::promotion::status;
use crate::support::{TestApp, audit_page, background_traffic, ended, eventually, pid_written_to};

/// A smoke test in bash alone (no curl needed): `GET /work` on the canary's
/// URL must answer 200.
const SMOKE: &str = r#"url="{canary_url}"; hostport="${url#http://}"; hostport="${hostport%/}"
exec 3<>"/dev/tcp/${hostport%:*}/${hostport##*:}"
printf 'GET /work HTTP/1.0\r\nHost: canary\r\n\r\n' >&3
read -r status <&3; echo "canary answered: ${status%$'\r'}"
case "$status" in *" 200 "*) exit 0 ;; *) exit 1 ;; esac"#;

fn run(name: &str, script: &str) -> TestRunConfig {
    TestRunConfig {
        name: TestRunName(name.to_owned()),
        command: HookCommand(vec!["bash".to_owned(), "-c".to_owned(), script.to_owned()]),
        timeout: ConfigDuration(Duration::from_secs(20)),
    }
}

async fn with_test_runs() -> TestApp {
    TestApp::start_with(|config| {
        config.validation.test_runs = TestRuns(vec![
            run("smoke", SMOKE),
            run("contract", "echo 12 contracts held"),
        ]);
    })
    .await
}

async fn audit(app: &TestApp) -> Vec<(String, String)> {
    let page = audit_page(app).await;
    page.events
        .into_iter()
        .rev()
        .map(|event| (event.action, event.reason.unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn a_canary_that_passes_its_test_runs_gets_its_share_after_them() {
    let app = with_test_runs().await;
    app.begin_canary_at(25.0).await;
    let progressing = app.wait_for_phase(Phase::Progressing).await;
    assert_eq!(
        progressing.traffic.canary(),
        CanaryShare::from_percent(25.0).unwrap()
    );
    let runs: Vec<(String, StepStatus, Option<String>)> = progressing
        .steps
        .iter()
        .filter(|step| step.name.is_some())
        .map(|step| (step.label(), step.status, step.detail.clone()))
        .collect();
    assert_eq!(
        runs,
        [
            (
                "Test: smoke".to_owned(),
                StepStatus::Complete,
                Some("exit 0: canary answered: HTTP/1.0 200 OK".to_owned())
            ),
            (
                "Test: contract".to_owned(),
                StepStatus::Complete,
                Some("exit 0: 12 contracts held".to_owned())
            ),
        ]
    );
    let trail = audit(&app).await;
    let actions: Vec<&str> = trail.iter().map(|(action, _)| action.as_str()).collect();
    assert!(
        actions.ends_with(&["healthy", "test_run_passed", "test_run_passed"]),
        "{trail:?}"
    );
}

#[tokio::test]
async fn a_canary_that_fails_a_test_run_fails_before_any_user_reaches_it() {
    let app = with_test_runs().await;
    // Healthy by its health path, wrong on real requests.
    app.canary.set_status(503);
    let load = background_traffic(&app);
    app.begin_canary_at(25.0).await;
    let failed = app.wait_for_phase(Phase::Failed).await;
    assert_eq!(failed.traffic.canary(), CanaryShare::ZERO);
    let summary = &failed.summary;
    assert!(
        summary.contains("test run smoke failed: exit 1: canary answered: HTTP/1.0 503"),
        "{summary}"
    );
    let smoke = failed
        .steps
        .iter()
        .find(|step| step.name.as_deref() == Some("smoke"))
        .unwrap();
    assert_eq!(smoke.status, StepStatus::Failed);
    // Clients were served all along, and none by the canary.
    let measured = eventually("a second of the clients' requests measured", async || {
        let state = status(&app);
        (state.production.request_count > 0).then_some(state)
    })
    .await;
    load.abort();
    assert_eq!(
        measured.canary.request_count, 0,
        "no client request went to the canary"
    );
    let trail = audit(&app).await;
    assert_eq!(
        trail.last().map(|(action, _)| action.as_str()),
        Some("test_run_failed")
    );
}

#[tokio::test]
async fn a_stop_during_the_test_runs_ends_the_suite_and_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("suite.pid");
    // A long suite whose runner starts workers of its own.
    let suite = format!("sleep 120 & echo $! > {}; wait", pid_file.display());
    let app = TestApp::start_with(|config| {
        config.validation.test_runs = TestRuns(vec![TestRunConfig {
            timeout: ConfigDuration(Duration::from_secs(120)),
            ..run("load", &suite)
        }]);
    })
    .await;
    app.begin_canary_at(25.0).await;
    app.wait_for_phase(Phase::Validating).await;
    let worker = pid_written_to(&pid_file).await;
    assert!(!ended(worker), "the suite's worker runs while validating");
    app.stop_canary("alice", "wrong build").await;
    let stopped = status(&app);
    assert_eq!(stopped.traffic.canary(), CanaryShare::ZERO);
    eventually("the suite's worker to be ended by the stop", async || {
        ended(worker).then_some(())
    })
    .await;
}
