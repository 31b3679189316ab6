//! A full disk, for real: the store's file system (a 4 MiB tmpfs) fills up
//! mid-rollout. Commands answer `503 unavailable` and change nothing, the
//! automatic rollback still takes traffic off a failing canary, it is in
//! the audit trail once space returns, the server recovers by itself, and
//! nothing committed before is lost or corrupted.
//!
//! Mounting a tmpfs needs root (CI runs as root); elsewhere the test says
//! it is skipped, and the controller's unit tests cover the same logic
//! with a store that refuses writes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use canary_shared::Phase;
use hyper::StatusCode;

use crate::support::{TestApp, background_traffic, eventually, http_get, json_client, post_json};

/// A small tmpfs mounted on a temporary directory, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        mounted.then_some(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Writes a file until the file system has no room left.
fn fill(path: &Path) -> PathBuf {
    let filler = path.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let chunk = vec![0u8; 16 * 1024];
    while file
        .write_all(&chunk)
        .and_then(|()| file.sync_all())
        .is_ok()
    {}
    // The last bytes, smaller than a chunk.
    while file.write_all(&[0]).and_then(|()| file.sync_all()).is_ok() {}
    filler
}

async fn audit_actions(app: &TestApp, action: &str) -> Vec<serde_json::Value> {
    let (_, _, body) = http_get(
        &app.url(&format!("/admin/canary/audit?action={action}")),
        "application/json",
    )
    .await;
    let page: serde_json::Value = serde_json::from_str(&body).unwrap();
    page["events"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_commands_still_rolls_back_and_records_it_when_space_returns() {
    let Some(tmpfs) = Tmpfs::mount("4m") else {
        eprintln!("skipped: cannot mount a tmpfs here (needs root)");
        return;
    };
    let data_dir = tmpfs.path().join("data");
    let app = TestApp::start_with(|config| {
        config.server.data_dir.clone_from(&data_dir);
        TestApp::pass_health_checks_blindly(config);
    })
    .await;
    app.start_canary_at(50.0).await;
    let traffic = background_traffic(&app);
    let client = json_client();

    // The disk fills up; commands soon need room the store cannot get.
    let filler = fill(tmpfs.path());
    let share_before_refusal = eventually("a command refused for want of space", async || {
        let share = app.controller.state.borrow().traffic.canary().percent();
        let target = if share == 40.0 { 45 } else { 40 };
        let (status, body) = post_json(
            &client,
            &app.url(&format!("/admin/canary/scale/{target}")),
            "",
        )
        .await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(body.contains("\"unavailable\""), "{body}");
            return Some(share);
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        None
    })
    .await;
    assert_eq!(
        app.controller.state.borrow().traffic.canary().percent(),
        share_before_refusal,
        "a refused command changes nothing"
    );

    // The canary breaks: it is rolled back all the same, unrecorded for now.
    app.canary.set_status(500);
    app.wait_for_phase(Phase::RolledBack).await;
    assert!(
        audit_actions(&app, "auto_rollback").await.is_empty(),
        "nothing can be written yet"
    );

    // Space returns: the server records the rollback by itself, and takes
    // commands again.
    std::fs::remove_file(&filler).unwrap();
    let recorded = eventually("the rollback recorded", async || {
        let entries = audit_actions(&app, "auto_rollback").await;
        (!entries.is_empty()).then_some(entries)
    })
    .await;
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    app.canary.set_status(200);
    let (status, body) = post_json(
        &client,
        &app.url("/admin/canary/start"),
        r#"{"image_tag":"v2.8.0","traffic_percent":5}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "commands work again: {body}");
    traffic.abort();

    // Nothing committed was lost, and the file is sound.
    assert_eq!(
        audit_actions(&app, "start").await.len(),
        2,
        "both starts are there"
    );
    let database = rusqlite::Connection::open_with_flags(
        data_dir.join("canary.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("the store's file is there");
    let integrity: String = database
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
}
