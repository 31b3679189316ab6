//! `cargo xtask ci`: every check and every test, in the order that fails
//! fastest. `.ci/run` runs exactly this. `cargo xtask check` is its fast
//! lane for the inner loop: the same fmt, clippy and tests, without the
//! set-up, the wasm32 lints, rustdoc, the console's release build or the
//! browser.

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

fn tests(sh: &Shell) -> anyhow::Result<()> {
    step("tests (unit, integration, tidy)");
    cmd!(sh, "cargo test --locked --workspace").run()?;
    Ok(())
}
