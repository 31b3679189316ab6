//! Hooks that canary runs, and deploy scripts that report through webhooks,
//! using the repository's example `scripts/canary-deploy.sh`.

use std::path::PathBuf;

use axum::http::StatusCode;
use canary_server::config::{ConfigDuration, HookCommand, HookConfig};
use canary_shared::Phase;

use crate::support::{
    TestApp, audit_page, ended, eventually, json_client, pid_written_to, post_json,
};

fn script() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../scripts/canary-deploy.sh")
        .display()
        .to_string()
}

/// The newest entry of the audit trail with `action`.
async fn audit_entry(app: &TestApp, action: &str) -> canary_shared::AuditEvent {
    audit_page(app)
        .await
        .events
        .into_iter()
        .find(|event| event.action == action)
        .unwrap_or_else(|| panic!("no {action} entry in the audit trail"))
}

fn hook(args: &[&str]) -> Option<HookConfig> {
    Some(HookConfig {
        command: HookCommand(args.iter().map(|arg| (*arg).to_owned()).collect()),
        timeout: ConfigDuration(std::time::Duration::from_secs(20)),
    })
}

#[tokio::test]
async fn the_example_script_runs_as_a_hook_and_its_output_is_audited() {
    let script = script();
    let app = TestApp::start_with(|config| {
        config.hooks.deploy = hook(&["bash", &script, "hook", "deploy", "{image_tag}"]);
    })
    .await;
    app.start_canary().await;
    let deployed = audit_entry(&app, "deployed").await;
    assert_eq!(deployed.reason.as_deref(), Some("exit 0"));
    assert_eq!(
        deployed.output.as_deref(),
        Some("deploy v2.7.0: no DEPLOY_COMMAND set; nothing to do\n")
    );
}

#[tokio::test]
async fn a_failing_deploy_hook_fails_the_rollout_with_its_words() {
    let app = TestApp::start_with(|config| {
        config.hooks.deploy = hook(&["sh", "-c", "echo registry unreachable >&2; exit 3"]);
    })
    .await;
    let client = json_client();
    let (status, body) = post_json(
        &client,
        &app.url("/admin/canary/start"),
        r#"{"image_tag":"v9"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let state = app.wait_for_phase(Phase::Failed).await;
    assert_eq!(
        state.summary,
        "Failed: deploy hook failed: exit 3: registry unreachable"
    );
    assert_eq!(state.traffic.canary(), canary_shared::CanaryShare::ZERO);
}

#[tokio::test]
async fn a_deploy_script_can_drive_the_rollout_through_webhooks() {
    let app = TestApp::start_with(|config| config.hooks.wait_for_webhooks = true).await;
    let url = app.url("");
    let script = script();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new("bash")
            .arg(&script)
            .args(["rollout", "v2.7.0"])
            .env("CANARY_URL", url)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let state = app.wait_for_phase(Phase::Progressing).await;
    assert_eq!(state.image_tag.as_deref(), Some("v2.7.0"));
    assert_eq!(state.traffic.canary().percent(), 5.0);

    let client = json_client();
    let (status, _) = post_json(
        &client,
        &app.url("/admin/canary/webhook/traffic-updated"),
        r#"{"percent":25}"#,
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post_json(
        &client,
        &app.url("/admin/canary/webhook/failed"),
        r#"{"reason":"smoke test failed"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let state = app.wait_for_phase(Phase::RolledBack).await;
    assert_eq!(state.summary, "Rolled back: smoke test failed");
    let actors: Vec<String> = audit_page(&app)
        .await
        .events
        .iter()
        .rev()
        .map(|event| format!("{} {}", event.actor, event.action))
        .collect();
    assert_eq!(
        actors,
        [
            "webhook start",
            "webhook deployed",
            "webhook healthy",
            "webhook scale",
            "webhook rollback",
            "controller rolled_back"
        ]
    );
}

#[tokio::test]
async fn without_wait_for_webhooks_a_report_cannot_skip_the_deploy_hook() {
    let app = TestApp::start().await;
    let client = json_client();
    let (status, body) = post_json(
        &client,
        &app.url("/admin/canary/webhook/started"),
        r#"{"image_tag":"v2.7.0"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT.as_u16(), "{body}");
    assert!(body.contains("hooks.wait_for_webhooks"), "{body}");
    assert_eq!(
        app.controller.state.borrow().phase,
        Phase::Idle,
        "nothing started"
    );
    let (status, _) = post_json(
        &client,
        &app.url("/admin/canary/webhook/health-check"),
        r#"{"passed":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT.as_u16());
}

#[tokio::test]
async fn reports_that_do_not_fit_are_refused() {
    let app = TestApp::start_with(|config| config.hooks.wait_for_webhooks = true).await;
    let client = json_client();
    let (status, body) = post_json(
        &client,
        &app.url("/admin/canary/webhook/health-check"),
        r#"{"passed":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT.as_u16(), "{body}");
    assert!(body.contains("does not apply while idle"), "{body}");
    let (status, _) = post_json(
        &client,
        &app.url("/admin/canary/webhook/deployed-ish"),
        "{}",
    )
    .await;
    assert_eq!(status, 404);
    let (status, body) = post_json(&client, &app.url("/admin/canary/webhook/started"), "{}").await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("image_tag"), "{body}");
    let (status, body) = post_json(
        &client,
        &app.url("/admin/canary/webhook/health-check"),
        r#"{"passed":"yes"}"#,
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("passed"), "{body}");
}

#[tokio::test]
async fn a_deploy_that_runs_out_of_time_fails_and_leaves_nothing_it_started_running() {
    // A deploy script waiting on a tool (`kubectl rollout status`): once
    // the hook has failed, neither the script nor the tool may run on.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("tool.pid");
    let script = format!(
        "echo waiting for the rollout; sleep 120 & echo $! > {}; wait",
        pid_file.display()
    );
    let app = TestApp::start_with(|config| {
        config.hooks.deploy = Some(HookConfig {
            timeout: ConfigDuration(std::time::Duration::from_secs(1)),
            ..hook(&["sh", "-c", &script]).unwrap()
        });
    })
    .await;
    app.begin_canary_at(5.0).await;
    let tool = pid_written_to(&pid_file).await;
    let state = app.wait_for_phase(Phase::Failed).await;
    assert_eq!(
        state.summary,
        "Failed: deploy hook failed: timed out after 1 s"
    );
    let failed = audit_entry(&app, "deploy_failed").await;
    assert_eq!(
        failed.output.as_deref(),
        Some("waiting for the rollout\n"),
        "what it printed before its time ran out is kept"
    );
    eventually("the deploy script's tool to be ended", async || {
        ended(tool).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_deploy_that_starts_a_service_in_the_background_is_done_when_its_script_is() {
    // `./server &` in a deploy script: the service keeps the output pipes
    // open and runs on. The hook is done when the script is; waiting for
    // the pipes would wait for the service, until the time limit failed it.
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("service.pid");
    let script = format!("sleep 120 & echo $! > {}; echo started", pid_file.display());
    let app = TestApp::start_with(|config| {
        config.hooks.deploy = hook(&["sh", "-c", &script]);
    })
    .await;
    app.start_canary().await;
    let service = pid_written_to(&pid_file).await;
    let left_running = !ended(service);
    let _ = std::process::Command::new("kill")
        .args(["-KILL", &service.to_string()])
        .status();
    let deployed = audit_entry(&app, "deployed").await;
    assert_eq!(
        (deployed.reason.as_deref(), deployed.output.as_deref()),
        (Some("exit 0"), Some("started\n"))
    );
    assert!(
        left_running,
        "the service the script started was stopped with the hook"
    );
}
