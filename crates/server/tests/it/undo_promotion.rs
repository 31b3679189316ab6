//! Undoing a promotion through the API: within the undo window all traffic
//! goes back to the previous version at once, with no failed request at the
//! switch; when the window is over the action is gone and the retire hook
//! has run, told which version to retire.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use canary_server::config::{ConfigDuration, HookCommand, HookConfig, OnPromotion};
use canary_shared::{ActionKind, Command, Phase};

use crate::promotion::{promote, start, status};
use crate::support::{TestApp, audit_page, eventually, http_get, json_client, post_json};

/// One request through the proxy: its status, who answered, and whether it
/// was sent before the undo was answered and ended after.
#[derive(Debug)]
struct Answered {
    status: u16,
    upstream: String,
    across_the_switch: bool,
    sent_after_the_switch: bool,
}

/// Clients sending requests back to back until `stop` is set.
fn load(
    app: &TestApp,
    clients: usize,
    switched: &Arc<AtomicBool>,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<Vec<Answered>>> {
    (0..clients)
        .map(|_| {
            let url = app.proxy_url("/work");
            let (switched, stop) = (Arc::clone(switched), Arc::clone(stop));
            tokio::spawn(async move {
                let mut answered = Vec::new();
                while !stop.load(Ordering::SeqCst) {
                    let before = switched.load(Ordering::SeqCst);
                    let (status, headers, _) = http_get(&url, "*/*").await;
                    let upstream = headers
                        .get("x-upstream")
                        .and_then(|name| name.to_str().ok())
                        .unwrap_or("none")
                        .to_owned();
                    answered.push(Answered {
                        status: status.as_u16(),
                        upstream,
                        across_the_switch: !before && switched.load(Ordering::SeqCst),
                        sent_after_the_switch: before,
                    });
                }
                answered
            })
        })
        .collect()
}

async fn audit_actions(app: &TestApp) -> Vec<String> {
    audit_page(app)
        .await
        .events
        .into_iter()
        .rev()
        .map(|event| event.action)
        .collect()
}

#[tokio::test]
async fn an_undo_within_the_window_sends_everything_back_with_no_failed_request_at_the_switch() {
    let app = TestApp::start().await;
    // Requests take a while, so some are in flight at the switch.
    app.production.set_delay_ms(30);
    app.canary.set_delay_ms(30);
    start(&app, "v2.7.0", 50.0).await;
    let promoted = promote(&app).await;
    let window = promoted
        .undo_promotion
        .clone()
        .expect("the previous version stands by");
    assert_eq!(window.standby_version.as_deref(), Some("v2.6.0"));
    assert_eq!(window.standby_url, app.production.url());
    assert_eq!(window.window_ms, 3_600_000, "an hour by default");
    assert!(promoted.allows(ActionKind::UndoPromotion));
    assert!(
        !promoted.allows(ActionKind::Rollback),
        "a rollback is not an undo"
    );
    assert_eq!(promoted.canary.version.as_deref(), Some("v2.6.0"));

    let (switched, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let clients = load(&app, 8, &switched, &stop);
    // Undo while the promoted version (on the upstream listed as canary)
    // is answering requests.
    eventually("requests in flight on the promoted version", async || {
        (app.canary.in_progress() > 0).then_some(())
    })
    .await;
    let (code, body) = post_json(
        &json_client(),
        &app.url("/admin/canary/undo-promotion"),
        r#"{"reason":"v2.7.0 leaks memory"}"#,
    )
    .await;
    switched.store(true, Ordering::SeqCst);
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    let mut answered = Vec::new();
    for client in clients {
        answered.extend(client.await.unwrap());
    }
    let failed: Vec<&Answered> = answered.iter().filter(|a| a.status != 200).collect();
    assert!(failed.is_empty(), "failed at the switch: {failed:?}");
    assert!(
        answered
            .iter()
            .any(|a| a.across_the_switch && a.upstream == "canary"),
        "requests in flight at the switch finish on the promoted version where they started"
    );
    let after: Vec<&str> = answered
        .iter()
        .filter(|a| a.sent_after_the_switch)
        .map(|a| a.upstream.as_str())
        .collect();
    assert!(after.len() >= 16, "load went on after the undo: {after:?}");
    assert!(
        after.iter().all(|upstream| *upstream == "production"),
        "after the undo the previous version takes every request: {after:?}"
    );

    let undone = app.wait_for_phase(Phase::RolledBack).await;
    assert_eq!(undone.production.url, app.production.url());
    assert_eq!(undone.production.version.as_deref(), Some("v2.6.0"));
    assert!(undone.undo_promotion.is_none());
    let actions = audit_actions(&app).await;
    assert!(
        actions.ends_with(&["undo_promotion".to_owned(), "rolled_back".to_owned()]),
        "{actions:?}"
    );
    let (code, body) = post_json(
        &json_client(),
        &app.url("/admin/canary/undo-promotion"),
        "{}",
    )
    .await;
    assert_eq!(code, 409, "a promotion is undone once: {body}");
}

#[tokio::test]
async fn after_the_window_the_undo_is_gone_and_the_retire_hook_has_run() {
    let dir = tempfile::tempdir().unwrap();
    let told = dir.path().join("told");
    let record = format!(
        "echo \"$CANARY_HOOK $CANARY_STANDBY_VERSION $CANARY_STANDBY_URL $CANARY_UNDO_WINDOW_SECS\" >> {}",
        told.display()
    );
    let hook = |script: &str| {
        Some(HookConfig {
            command: HookCommand(vec!["sh".to_owned(), "-c".to_owned(), script.to_owned()]),
            timeout: ConfigDuration(Duration::from_secs(20)),
        })
    };
    let app = TestApp::start_with(|config| {
        config.upstreams.undo_window = ConfigDuration(Duration::from_secs(2));
        config.upstreams.on_promotion = Some(OnPromotion::SwapRoles);
        config.hooks.promote = hook(&record);
        config.hooks.retire = hook(&record);
    })
    .await;
    start(&app, "v2.7.0", 50.0).await;
    let promoted = promote(&app).await;
    assert!(promoted.allows(ActionKind::UndoPromotion));
    assert!(
        promoted.summary.contains("undo possible for"),
        "{}",
        promoted.summary
    );

    let state = eventually("the undo window to end", async || {
        let state = status(&app);
        state.undo_promotion.is_none().then_some(state)
    })
    .await;
    assert_eq!(
        state.blocked_reason(ActionKind::UndoPromotion),
        Some("the undo window is over: the previous version was retired")
    );
    eventually("the retire hook to finish", async || {
        audit_actions(&app)
            .await
            .contains(&"retired".to_owned())
            .then_some(())
    })
    .await;
    let actions = audit_actions(&app).await;
    let tail: Vec<&str> = actions
        .iter()
        .rev()
        .take(3)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["promoted", "undo_window_ended", "retired"]);
    let production = app.production.url();
    assert_eq!(
        std::fs::read_to_string(&told).unwrap(),
        format!("promote v2.6.0 {production} 2\nretire v2.6.0 {production} 2\n"),
        "the promote hook is told what stands by, the retire hook what to retire"
    );
    let refused = app
        .controller
        .command(
            "ops".to_owned(),
            Command::UndoPromotion {
                reason: "too late".to_owned(),
            },
            None,
        )
        .await;
    assert!(refused.is_err());
    assert_eq!(status(&app).production.url, app.canary.url());
}
