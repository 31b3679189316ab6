//! Restarts and restores: the `recovered` entry says what happened, a
//! restored backup keeps its phase, and no audit number is used twice.

use canary_shared::{Command, Phase};

use crate::promotion::{start, status};
use crate::support::{TestApp, http_get};

/// The audit trail, oldest first: sequence number, action and reason.
async fn trail(app: &TestApp) -> Vec<(u64, String, Option<String>)> {
    let (_, _, body) = http_get(
        &app.url("/admin/canary/audit?limit=200"),
        "application/json",
    )
    .await;
    let page: canary_shared::AuditPage = serde_json::from_str(&body).unwrap();
    page.events
        .into_iter()
        .rev()
        .map(|event| (event.seq, event.action, event.reason))
        .collect()
}

#[tokio::test]
async fn a_restored_older_backup_keeps_its_phase_and_never_reuses_an_audit_number() {
    let mut app = TestApp::start().await;
    start(&app, "v2.7.0", 5.0).await;
    app.controller
        .command("ops".to_owned(), Command::Pause, None)
        .await
        .unwrap();
    let backups = tempfile::tempdir().unwrap();
    // Into a folder that does not exist yet: the backup makes it.
    let copy = backups.path().join("nightly/canary.db");
    canary_server::adapters::store::SqliteStore::backup(
        app.data.path(),
        &copy,
        canary_shared::UnixMillis(
            u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis(),
            )
            .unwrap(),
        ),
    )
    .unwrap();
    let in_backup = trail(&app).await.last().unwrap().0;
    // Life goes on after the backup: more decisions, more numbers.
    for command in [Command::Resume, Command::Continue] {
        app.controller
            .command("ops".to_owned(), command, None)
            .await
            .unwrap();
    }
    let issued = trail(&app).await.last().unwrap().0;
    assert!(issued > in_backup);

    // A clean restart says so.
    app.restart().await;
    let restarted = trail(&app).await;
    let (seq, action, reason) = restarted.last().unwrap();
    assert_eq!((*seq, action.as_str()), (issued + 1, "recovered"));
    assert!(
        reason
            .as_deref()
            .unwrap()
            .starts_with("server restarted after a clean stop"),
        "{reason:?}"
    );
    let issued = issued + 1;

    // The restore, as docs/deployment.md says: stop, put the copy in place, start.
    app.shut_down().await;
    for stale in ["canary.db-wal", "canary.db-shm"] {
        let _ = std::fs::remove_file(app.data.path().join(stale));
    }
    std::fs::copy(&copy, app.data.path().join("canary.db")).unwrap();
    app.restart().await;
    let state = status(&app);
    assert_eq!(state.phase, Phase::Paused, "a paused rollout stays paused");
    let restored = trail(&app).await;
    let (seq, action, reason) = restored.last().unwrap();
    assert_eq!(action, "recovered");
    assert_eq!(
        *seq,
        issued + 1,
        "numbers issued after the backup are not handed out again"
    );
    let reason = reason.as_deref().unwrap();
    assert!(
        reason.starts_with("restored from a backup taken "),
        "{reason}"
    );
    assert!(reason.contains("paused at 5 % to the canary"), "{reason}");
    assert!(
        reason.contains(&format!(
            "entries {}–{issued} are not in this store",
            in_backup + 1
        )),
        "{reason}"
    );
    assert_eq!(
        restored[restored.len() - 2].0,
        in_backup,
        "the backup's own trail is intact"
    );
}
