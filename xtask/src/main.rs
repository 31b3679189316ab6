//! Development tasks, run as `cargo xtask <task>` (see the README).
//!
//! # Layout
//! - `setup`: makes a fresh machine ready (wasm target, trunk, wasm-bindgen,
//!   Chromium, the e2e node packages); a warm machine skips what it has.
//! - `build-app`: builds the console with trunk, offline.
//! - `run`: builds everything and serves the console with the shipped config.
//! - `ci`: every check and test; what `.ci/run` runs.
//! - `check`: the fast lane: fmt, clippy and the cargo tests, nothing installed.
//! - `e2e`: the browser tests alone.
//! - `conformance`: schemathesis against the served OpenAPI document, logins off and on.
//! - `fuzz`: the coverage-guided fuzz targets in `fuzz/`, each for a bounded time.
//! - `chaos`: the crash loop (`tests/it/chaos.rs`) with 50 rounds.
//! - `soak`: 30 minutes of steady load with dashboards and rollouts (`examples/soak.rs`).
//! - `bench proxy`: the proxy against nginx and HAProxy (the harness in `xtask/bench/`).
//! - `bench rollback`: how fast a broken canary is out (`examples/rollback_bench.rs`).
//! - `tidy`: repository rules, as tests (`cargo test -p xtask`).

mod app;
mod bench;
mod bench_backends;
mod bench_restart;
mod bench_router;
mod ci;
mod conformance;
mod e2e;
mod fuzz;
mod run;
mod setup;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};

use xshell::Shell;

mod flags {
    use std::path::PathBuf;

    xflags::xflags! {
        /// Development tasks for canary.
        cmd xtask {
            /// Install what is missing: wasm32 target, trunk, wasm-bindgen-cli, Chromium, e2e packages.
            cmd setup {}
            /// Build the console into crates/app/dist with trunk (release, offline).
            cmd build-app {}
            /// Build everything and run the live demo (`canary demo`): the console on
            /// 127.0.0.1:8000 with two demo services and steady traffic. With --config,
            /// serve that config instead (`canary serve`).
            cmd run {
                /// Serve this config file instead of the demo.
                optional --config path: PathBuf
            }
            /// Run every check and test: fmt, clippy (host and wasm32), unit, integration and e2e tests.
            cmd ci {}
            /// The inner loop: fmt, clippy and the unit and integration tests; no set-up,
            /// no release build, no browser.
            cmd check {}
            /// Run the browser tests alone (builds the console and the server first).
            cmd e2e {}
            /// Check the API against its served OpenAPI document with schemathesis
            /// (pinned, installed into target/), with logins off and on.
            cmd conformance {}
            /// A soak: the release demo at a fixed rate with 50 dashboards and a
            /// rollout cycling; RSS, descriptors and threads every minute.
            cmd soak {
                /// Minutes (default 30).
                optional --minutes minutes: u32
            }
            /// A crash loop: the server killed with SIGKILL at random moments of
            /// scripted rollouts, checked after every restart (50 rounds; CI runs 8).
            cmd chaos {
                /// Rounds (default 50).
                optional --rounds rounds: u32
            }
            /// Run the coverage-guided fuzz targets in fuzz/ (cargo fuzz), each for
            /// a bounded time (CI runs them for 10 s each).
            cmd fuzz {
                /// Seconds per target (default 60).
                optional --secs secs: u32
            }
            /// Benchmarks; `proxy` compares canary's proxy with nginx and HAProxy;
            /// `judge` simulates rollouts for the statistical judge (RUNS=1000).
            /// The harness takes its options from the environment (RATE=20000 for
            /// fixed rate, ROUNDS, DURATION, CONNS; see bench-proxy.sh -h).
            cmd bench {
                /// What to benchmark: proxy, judge, restart, rollback, router or stream.
                required what: String
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let flags = flags::Xtask::from_env_or_exit();
    let sh = Shell::new()?;
    sh.change_dir(workspace_root());
    match flags.subcommand {
        flags::XtaskCmd::Setup(_) => setup::run(&sh),
        flags::XtaskCmd::BuildApp(_) => {
            setup::run(&sh)?;
            app::build(&sh)
        }
        flags::XtaskCmd::Run(run) => run::run(&sh, run.config.as_deref()),
        flags::XtaskCmd::Ci(_) => ci::run(&sh),
        flags::XtaskCmd::Conformance(_) => conformance::run(&sh),
        flags::XtaskCmd::Soak(soak) => bench::soak(&sh, soak.minutes.unwrap_or(30)),
        flags::XtaskCmd::Chaos(chaos) => {
            let rounds = chaos.rounds.unwrap_or(50).to_string();
            step(&format!(
                "chaos: {rounds} rounds of SIGKILL at random moments"
            ));
            xshell::cmd!(
                sh,
                "cargo test --locked --package canary-server --test it -- chaos:: --nocapture"
            )
            .env("CANARY_CHAOS_ROUNDS", rounds)
            .run()?;
            Ok(())
        }
        flags::XtaskCmd::Fuzz(fuzz) => fuzz::run(&sh, fuzz.secs.unwrap_or(60)),
        flags::XtaskCmd::Check(_) => ci::check(&sh),
        flags::XtaskCmd::Bench(bench) => match bench.what.as_str() {
            "proxy" => bench::proxy(&sh),
            "judge" => bench::judge(&sh),
            "restart" => bench_restart::restart(&sh),
            "router" => bench_router::router(&sh),
            "stream" => bench::stream(&sh),
            "rollback" => bench::rollback(&sh),
            other => anyhow::bail!(
                "unknown benchmark {other:?}; try `cargo xtask bench proxy`, `judge`, `restart`, `rollback`, `router` or `stream`"
            ),
        },
        flags::XtaskCmd::E2e(_) => {
            setup::run(&sh)?;
            e2e::run(&sh)
        }
    }
}

/// The workspace root: the parent of this crate's folder.
pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives inside the workspace")
        .to_path_buf()
}

/// Prints a step heading, so a long CI log shows where it is.
pub(crate) fn step(title: &str) {
    eprintln!("\n==> {title}");
}
