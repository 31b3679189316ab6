//! `cargo xtask ci`: every check and every test, in the order that fails
//! fastest. `.ci/run` runs exactly this. `cargo xtask check` is its fast
//! lane for the inner loop: the same fmt, clippy and tests, without the
//! set-up, the wasm32 lints, rustdoc, the console's release build or the
//! browser.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use xshell::{Shell, cmd};

use crate::{app, conformance, e2e, fuzz, setup, step};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    setup::run(sh)?;
    fmt(sh)?;
    clippy_host(sh)?;

    step("clippy (wasm32: app and shared)");
    cmd!(sh, "cargo clippy --locked --target wasm32-unknown-unknown -p canary-app -p canary-shared -- -D warnings")
        .run()?;

    tests(sh)?;
    conformance::run(sh)?;
    fuzz::run(sh, 10)?;

    step("docs");
    cmd!(sh, "cargo doc --locked --workspace --no-deps")
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()?;

    app::build(sh)?;
    step("console size budget");
    app::check_size_budget(&app::dist_dir())?;
    e2e::run_built(sh)?;
    eprintln!("\nci: all checks passed");
    Ok(())
}

/// `cargo xtask check`: fmt, clippy and every cargo test, nothing to install.
pub(crate) fn check(sh: &Shell) -> anyhow::Result<()> {
    fmt(sh)?;
    clippy_host(sh)?;
    tests(sh)?;
    eprintln!(
        "\ncheck: fmt, clippy and tests passed (`cargo xtask ci` also lints wasm32, builds the docs and the console, and runs the browser tests)"
    );
    Ok(())
}

fn fmt(sh: &Shell) -> anyhow::Result<()> {
    step("fmt");
    cmd!(sh, "cargo fmt --all -- --check").run()?;
    Ok(())
}

fn clippy_host(sh: &Shell) -> anyhow::Result<()> {
    step("clippy (host)");
    cmd!(
        sh,
        "cargo clippy --locked --workspace --all-targets -- -D warnings"
    )
    .run()?;
    Ok(())
}

/// How long the cargo tests may take, building included: a cold build and
/// every test take about 10 minutes here. A test that waits forever must
/// fail the run while there is time to read why, not use up CI's 90.
const TESTS_LIMIT: Duration = Duration::from_secs(30 * 60);

fn tests(sh: &Shell) -> anyhow::Result<()> {
    step("tests (unit, integration, tidy)");
    let command = cmd!(sh, "cargo test --locked --workspace");
    run_within(command.into(), TESTS_LIMIT)
}

/// Runs `command` in a process group of its own, which is killed whole
/// (cargo, the test binaries and the servers they started) when it is not
/// done within `limit`. libtest has already named each test running for
/// over 60 s by then.
fn run_within(mut command: Command, limit: Duration) -> anyhow::Result<()> {
    let shown = format!("{command:?}");
    let mut child = command.process_group(0).spawn()?;
    #[allow(
        clippy::disallowed_types,
        reason = "a watchdog of a real process: there is no tokio clock to control here"
    )]
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "{shown} failed: {status}");
            return Ok(());
        }
        if started.elapsed() > limit {
            let group = format!("-{}", child.id());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = child.wait();
            anyhow::bail!(
                "{shown} was still running after {} minutes and was stopped: a test waits for something that never comes (the tests running for over 60 s are named above)",
                limit.as_secs() / 60
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_past_its_limit_is_stopped_with_everything_it_started() {
        let dir = std::env::temp_dir().join(format!("xtask-watchdog-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let grandchild = dir.join("grandchild.pid");
        let mut command = Command::new("sh");
        command.arg("-c").arg(format!(
            "sleep 60 & echo $! > {}; wait",
            grandchild.display()
        ));
        let err = run_within(command, Duration::from_secs(1)).unwrap_err();
        assert!(err.to_string().contains("was still running after"), "{err}");
        let pid = std::fs::read_to_string(&grandchild).unwrap();
        // Killed with its group, not left behind holding CI's pipes (a
        // zombie waiting for its new parent to reap it is dead).
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()));
        let running = stat.is_ok_and(|stat| {
            let state = stat.rsplit(") ").next().unwrap_or_default();
            !state.starts_with('Z') && !state.starts_with('X')
        });
        assert!(!running, "the grandchild {pid} outlived the watchdog");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_command_within_its_limit_reports_how_it_ended() {
        run_within(Command::new("true"), Duration::from_secs(30)).unwrap();
        let err = run_within(Command::new("false"), Duration::from_secs(30)).unwrap_err();
        assert!(err.to_string().contains("failed"), "{err}");
    }
}
