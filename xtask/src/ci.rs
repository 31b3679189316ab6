//! `cargo xtask ci`: every check and every test, in the order that fails
//! fastest. `.ci/run` runs exactly this.

use xshell::{Shell, cmd};

use crate::{app, e2e, setup, step};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    setup::run(sh)?;

    step("fmt");
    cmd!(sh, "cargo fmt --all -- --check").run()?;

    step("clippy (host)");
    cmd!(
        sh,
        "cargo clippy --locked --workspace --all-targets -- -D warnings"
    )
    .run()?;

    step("clippy (wasm32: app and shared)");
    cmd!(sh, "cargo clippy --locked --target wasm32-unknown-unknown -p canary-app -p canary-shared -- -D warnings")
        .run()?;

    step("tests (unit, integration, tidy)");
    cmd!(sh, "cargo test --locked --workspace").run()?;

    step("docs");
    cmd!(sh, "cargo doc --locked --workspace --no-deps")
        .env("RUSTDOCFLAGS", "-D warnings")
        .run()?;

    app::build(sh)?;
    e2e::run_built(sh)?;
    eprintln!("\nci: all checks passed");
    Ok(())
}
