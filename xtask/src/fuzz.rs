//! `cargo xtask fuzz [--secs N]`: the coverage-guided fuzz targets in
//! `fuzz/` (cargo fuzz, libFuzzer), each for a bounded time; CI runs them
//! briefly after the tests, a developer for longer.
//!
//! libFuzzer needs rustc's `-Z` flags for coverage instrumentation, which a
//! stable compiler takes only with `RUSTC_BOOTSTRAP=1`; the machines have
//! no nightly, so this sets it for the fuzz build alone. The targets are
//! built without a sanitizer (`-s none`): the code is safe Rust, and
//! AddressSanitizer would double the build for what Rust's own checks (in
//! the build's debug assertions) already catch.
//!
//! New inputs the fuzzer finds interesting go to a scratch corpus under
//! `fuzz/target/`, never into the committed seeds. A crash stops the run
//! and names its input; once fixed, the input goes into
//! `fuzz/regressions/<target>/`, which `cargo test` replays for good.

use std::path::Path;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::{step, workspace_root};

/// cargo-fuzz from crates.io, at a version that builds with rustc 1.95.
const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The targets, as `fuzz/Cargo.toml` names them.
const TARGETS: [&str; 7] = [
    "upstream_response",
    "exposition",
    "config",
    "api_json",
    "api_query",
    "access_log",
    "override_header",
];

pub(crate) fn run(sh: &Shell, secs_per_target: u32) -> anyhow::Result<()> {
    step(&format!(
        "fuzz: {} targets, {secs_per_target} s each (coverage-guided, libFuzzer)",
        TARGETS.len()
    ));
    install(sh)?;
    let fuzz = workspace_root().join("fuzz");
    let _in_fuzz = sh.push_dir(&fuzz);
    let _bootstrap = sh.push_env("RUSTC_BOOTSTRAP", "1");
    cmd!(sh, "cargo fuzz build -s none").run()?;
    let max_time = format!("-max_total_time={secs_per_target}");
    for target in TARGETS {
        let seeds = fuzz.join("corpus").join(target);
        let scratch = fuzz.join("target/corpus-scratch").join(target);
        std::fs::create_dir_all(&scratch)?;
        eprintln!("    {target}");
        let outcome = cmd!(
            sh,
            "cargo fuzz run -s none {target} {scratch} {seeds} -- {max_time} -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1"
        )
        .quiet()
        .ignore_stderr()
        .output();
        if let Err(err) = outcome {
            let artifacts = fuzz.join("artifacts").join(target);
            bail!(
                "the fuzzer found an input that breaks {target} (in {}): {err}\n\
                 reproduce with `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s none {target} <input>`; \
                 after the fix, copy the input to fuzz/regressions/{target}/",
                artifacts.display()
            );
        }
        report(&scratch)?;
    }
    Ok(())
}

/// How many inputs the scratch corpus holds now, as a sign of coverage.
fn report(scratch: &Path) -> anyhow::Result<()> {
    let found = std::fs::read_dir(scratch)
        .with_context(|| scratch.display().to_string())?
        .count();
    eprintln!("      no failure; {found} inputs in its working corpus");
    Ok(())
}

fn install(sh: &Shell) -> anyhow::Result<()> {
    let wanted = format!("cargo-fuzz {CARGO_FUZZ_VERSION}");
    let found = cmd!(sh, "cargo fuzz --version")
        .quiet()
        .ignore_stderr()
        .read()
        .unwrap_or_default();
    if found.trim() == wanted {
        eprintln!("    {wanted}: installed");
        return Ok(());
    }
    eprintln!("    installing {wanted} from crates.io (about 3 minutes)");
    cmd!(sh, "cargo install --locked cargo-fuzz@{CARGO_FUZZ_VERSION}").run()?;
    Ok(())
}
