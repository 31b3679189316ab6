//! `cargo xtask build-app`: the console, built by trunk without network.

use std::path::PathBuf;

use xshell::{Shell, cmd};

use crate::{step, workspace_root};

/// Where the built console lands.
pub(crate) fn dist_dir() -> PathBuf {
    workspace_root().join("crates/app/dist")
}

pub(crate) fn build(sh: &Shell) -> anyhow::Result<()> {
    step("build-app: trunk build --release (offline)");
    // npm's binaryen 132 first on PATH: Debian's wasm-opt breaks the app.
    let node_bin = workspace_root().join("e2e/node_modules/.bin");
    let path = std::env::var("PATH").unwrap_or_default();
    let _dir = sh.push_dir("crates/app");
    cmd!(sh, "trunk build --release")
        .env("PATH", format!("{}:{path}", node_bin.display()))
        .run()?;
    Ok(())
}
