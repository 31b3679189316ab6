//! `cargo xtask run`: builds everything and serves the console.

use std::path::Path;

use xshell::{Shell, cmd};

use crate::{app, setup, step};

pub(crate) fn run(sh: &Shell, config: Option<&Path>) -> anyhow::Result<()> {
    setup::run(sh)?;
    app::build(sh)?;
    step("run: canary serve");
    let config = config.unwrap_or(Path::new("canary-config.yaml"));
    cmd!(sh, "cargo run --locked --release --package canary-server --bin canary -- serve --config {config}").run()?;
    Ok(())
}
