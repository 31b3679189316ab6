//! `cargo xtask run`: builds everything and runs the demo, or serves a config.

use std::path::Path;

use xshell::{Shell, cmd};

use crate::{app, setup, step};

pub(crate) fn run(sh: &Shell, config: Option<&Path>) -> anyhow::Result<()> {
    setup::run(sh)?;
    app::build(sh)?;
    match config {
        Some(config) => {
            step("run: canary serve");
            cmd!(sh, "cargo run --locked --release --package canary-server --bin canary -- serve --config {config}").run()?;
        }
        None => {
            step("run: canary demo");
            cmd!(
                sh,
                "cargo run --locked --release --package canary-server --bin canary -- demo"
            )
            .run()?;
        }
    }
    Ok(())
}
