//! The `canary` binary itself: start-up errors, addresses, and signals.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

fn canary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_canary"))
}

#[test]
fn a_broken_config_stops_start_up_with_file_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canary-config.yaml");
    let shipped = include_str!("../../../../canary-config.yaml");
    std::fs::write(
        &path,
        shipped.replace("[5, 25, 50, 100]", "[5, 50, 25, 100]"),
    )
    .unwrap();
    let output = canary()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = shipped
        .lines()
        .position(|line| line.contains("traffic_steps"))
        .unwrap()
        + 1;
    let expected = format!("{}:{line}:", path.display());
    assert!(stderr.contains(&expected), "no {expected} in: {stderr}");
    assert!(
        stderr.contains("canary.traffic_steps: steps must be strictly increasing"),
        "{stderr}"
    );
}

#[test]
fn serve_prints_its_addresses_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("canary-config.yaml");
    std::fs::write(&config, include_str!("../../../../canary-config.yaml")).unwrap();
    let mut child = canary()
        .args([
            "serve",
            "--admin-listen",
            "127.0.0.1:0",
            "--proxy-listen",
            "127.0.0.1:0",
            "--config",
        ])
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let console = lines.next().unwrap().unwrap();
    let proxy = lines.next().unwrap().unwrap();
    assert!(
        console.starts_with("canary: console at http://127.0.0.1:"),
        "{console}"
    );
    assert!(console.ends_with("/admin/canary/"), "{console}");
    assert!(
        proxy.starts_with("canary: proxy at http://127.0.0.1:"),
        "{proxy}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Up to 20 s, polled every 50 ms.
    for attempt in 0.. {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "canary exited with {status} on SIGTERM");
            break;
        }
        if attempt == 400 {
            child.kill().unwrap();
            panic!("canary did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
