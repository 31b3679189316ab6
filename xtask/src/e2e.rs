//! `cargo xtask e2e`: the console in headless Chromium against the real
//! server with real upstreams (started by the Playwright fixtures).

use xshell::{Shell, cmd};

use crate::{app, step, workspace_root};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    app::build(sh)?;
    run_built(sh)
}

/// Runs Playwright against an already built console.
pub(crate) fn run_built(sh: &Shell) -> anyhow::Result<()> {
    step("e2e: building the server");
    // Built as `cargo test --workspace` builds it for the integration
    // tests (test dependencies in the feature set), so in CI nothing is
    // compiled again; `cargo build --bin canary` alone resolves other
    // features and rebuilds much of the tree.
    cmd!(sh, "cargo test --locked --workspace --no-run")
        .quiet()
        .run()?;
    step("e2e: playwright (Debian's chromium)");
    let root = workspace_root();
    let _dir = sh.push_dir("e2e");
    cmd!(sh, "npx --no-install playwright test")
        .env("CANARY_BIN", root.join("target/debug/canary"))
        .env("CANARY_ASSETS", app::dist_dir())
        .run()?;
    Ok(())
}
