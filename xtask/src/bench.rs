//! `cargo xtask bench proxy`: canary's proxy against nginx and HAProxy, side
//! by side with the same load, using the harness in `xtask/bench/` (its
//! README says how it measures; the backend is a small hyper server, built
//! with the floor proxy when their source changed; nginx, HAProxy and wrk
//! come from Debian).
//!
//! The harness starts two backends (production on :18081, canary on :18082)
//! and nginx, HAProxy and its floor proxy (one that only copies bytes: the
//! fastest any HTTP/1.1 proxy can be on the machine) splitting 95 / 5
//! between them; this task adds the release `canary` in front of the same
//! backends at a 5 % canary share and runs `bench-proxy.sh`, which prints
//! throughput, latency percentiles, the observed canary share and the
//! ratios. Timings are printed, never asserted.
//!
//! Two runs, each interleaved: HTTP/1.1 clients (wrk) against the backends
//! direct, nginx, HAProxy, the floor proxy and canary, then HTTP/2 clients
//! (h2load, cleartext with prior knowledge) against nginx's and HAProxy's
//! HTTP/2 listeners and the same canary listener, which serves both.
//! `CANARY_BENCH_HTTP=1` or `=2` runs only one of them. Every proxy speaks
//! HTTP/1.1 to the backends.
//!
//! `CANARY_BENCH_BASELINE=<path to another canary binary>` adds that binary
//! as a target of its own (`canary-baseline`) in the same interleaved run:
//! the way to show a change to the proxy costs nothing, or what it costs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::{step, workspace_root};

/// Stops the anchors and canary however the benchmark ends.
struct Cleanup<'a> {
    sh: &'a Shell,
    anchors: PathBuf,
    canaries: Vec<Child>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for mut canary in self.canaries.drain(..) {
            let pid = canary.id().to_string();
            let _ = Command::new("kill").args(["-TERM", &pid]).status();
            let _ = canary.wait();
        }
        let anchors = &self.anchors;
        let _ = cmd!(self.sh, "bash {anchors} stop").quiet().run();
    }
}

pub(crate) fn proxy(sh: &Shell) -> anyhow::Result<()> {
    // CANARY_BENCH_DIR points at another copy of the harness, for comparing versions of it.
    let bench_dir = match std::env::var_os("CANARY_BENCH_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => workspace_root().join("xtask/bench"),
    };
    let anchors = bench_dir.join("anchors.sh");
    let harness = bench_dir.join("bench-proxy.sh");
    if !harness.exists() {
        bail!("{} not found", harness.display());
    }
    ensure_tools(sh)?;

    // CANARY_BENCH_BINARY runs a canary built elsewhere (another profile,
    // another commit) as the `canary` target, without building this tree.
    let canary = match std::env::var_os("CANARY_BENCH_BINARY") {
        Some(binary) => PathBuf::from(binary),
        None => {
            step("bench: building the release binary");
            cmd!(
                sh,
                "cargo build --locked --release --package canary-server --bin canary"
            )
            .run()?;
            workspace_root().join("target/release/canary")
        }
    };

    step("bench: starting the backends, nginx and HAProxy");
    let mut cleanup = Cleanup {
        sh,
        anchors: anchors.clone(),
        canaries: Vec::new(),
    };
    // Anchors an earlier run left behind (a benchmark stopped with ^C
    // before its clean-up, a hand-run) hold the ports: stopped first, by
    // the PIDs they were started with, never by name.
    cmd!(sh, "bash {anchors} stop")
        .quiet()
        .ignore_status()
        .run()?;
    cmd!(sh, "bash {anchors} start").run()?;

    step("bench: starting canary in front of the same backends");
    let dir = std::env::temp_dir().join(format!("canary-bench-{}", std::process::id()));
    let mut binaries = vec![("canary", canary)];
    if let Some(baseline) = std::env::var_os("CANARY_BENCH_BASELINE") {
        binaries.push(("canary-baseline", PathBuf::from(baseline)));
    }
    let mut targets = Vec::new();
    let mut canary_pids = Vec::new();
    let protocols = std::env::var("CANARY_BENCH_HTTP").unwrap_or_default();
    let shadow_too = protocols.is_empty() || protocols == "shadow";
    let canary_binary = binaries[0].1.clone();
    for (name, binary) in binaries {
        let (child, proxy) = start_canary(sh, &binary, &dir.join(name), None)
            .with_context(|| format!("{name} ({})", binary.display()))?;
        canary_pids.push(format!("{name}={}", child.id()));
        cleanup.canaries.push(child);
        targets.push(format!("{name}={proxy}"));
    }

    let known = cmd!(sh, "bash {anchors} known").read()?;
    // Every proxy's CPU counts as the setup's own, not as foreign load.
    let anchor_pids = cmd!(sh, "bash {anchors} pids").read()?;
    let mut pid_args = Vec::new();
    for name_and_pid in anchor_pids
        .split_whitespace()
        .chain(canary_pids.iter().map(String::as_str))
    {
        pid_args.push("-p".to_owned());
        pid_args.push(name_and_pid.to_owned());
    }
    // The same binary in its shadow step, copying 5 % and 100 % of the
    // requests to the canary backend, against the plain `canary` target.
    let mut shadow_targets = vec![targets[0].clone()];
    if shadow_too {
        for percent in [5, 100] {
            let name = format!("canary-copy-{percent}");
            let (child, proxy) = start_canary(sh, &canary_binary, &dir.join(&name), Some(percent))
                .with_context(|| format!("{name} ({})", canary_binary.display()))?;
            pid_args.push("-p".to_owned());
            pid_args.push(format!("{name}={}", child.id()));
            cleanup.canaries.push(child);
            shadow_targets.push(format!("{name}={proxy}"));
        }
    }
    let (pid_args, targets) = (&pid_args, &targets);
    if protocols.is_empty() || protocols == "1" {
        step("bench: HTTP/1.1 clients (wrk; interleaved rounds, several minutes)");
        let urls = cmd!(sh, "bash {anchors} urls").read()?;
        let urls: Vec<&str> = urls.split_whitespace().collect();
        let title =
            "HTTP/1.1: canary proxy vs nginx vs HAProxy, 5 % canary, per-request recording on";
        cmd!(
            sh,
            "bash {harness} -k {known} {pid_args...} -T {title} {urls...} {targets...}"
        )
        .run()?;
    }
    if protocols.is_empty() || protocols == "2" {
        step("bench: HTTP/2 clients (h2load, h2c; interleaved rounds, several minutes)");
        // No direct row: the backend speaks HTTP/1.1 only, like every proxy's upstream side.
        // 16 connections with 10 streams each: HTTP/2 clients multiplex
        // rather than open a connection per request in flight.
        let urls = cmd!(sh, "bash {anchors} urls-h2").read()?;
        let urls: Vec<&str> = urls.split_whitespace().collect();
        let title = "HTTP/2 (h2c) clients: canary proxy vs nginx vs HAProxy, HTTP/1.1 to the backends, 5 % canary, per-request recording on";
        cmd!(
            sh,
            "bash {harness} -l h2load -c 16 -m 10 -k {known} {pid_args...} -T {title} {urls...} {targets...}"
        )
        .run()?;
    }
    if shadow_too {
        step("bench: shadow traffic (wrk; the same binary copying 0, 5 and 100 % to the canary)");
        let title = "Shadow traffic: canary proxy without copies (5 % canary) vs copying 5 % and 100 % of requests to the canary (0 % canary), HTTP/1.1";
        let baseline = "canary";
        cmd!(
            sh,
            "bash {harness} -b {baseline} -k {known} {pid_args...} -T {title} {shadow_targets...}"
        )
        .run()?;
    }
    drop(cleanup);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Starts `binary` in front of the backends with its data in `dir`, and a
/// rollout at 5 % (or, with `copy_percent`, in its shadow step copying that
/// share of requests to the canary backend): the process and its proxy's URL.
fn start_canary(
    sh: &Shell,
    binary: &Path,
    dir: &Path,
    copy_percent: Option<u32>,
) -> anyhow::Result<(Child, String)> {
    std::fs::create_dir_all(dir)?;
    let config = dir.join("canary-config.yaml");
    let mut yaml = bench_config(dir);
    if let Some(percent) = copy_percent {
        // An hour: the step outlasts the benchmark. Bodies compared whole,
        // the most work a copy can cost.
        yaml.push_str(&format!(
            "validation:\n  shadow: {{ share: {percent}, duration: 1h, compare_body: exact, queue: 1024 }}\n"
        ));
    }
    std::fs::write(&config, yaml)?;
    let mut child = Command::new(binary)
        .args(["serve", "--config"])
        .arg(&config)
        .env("CANARY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start canary")?;
    let (console, proxy) = match read_addresses(&mut child) {
        Ok(addresses) => addresses,
        Err(err) => {
            let _ = child.kill();
            return Err(err);
        }
    };
    let phase = if copy_percent.is_some() {
        "validating"
    } else {
        "progressing"
    };
    if let Err(err) = start_rollout(sh, &console, phase) {
        let _ = child.kill();
        let _ = child.wait();
        return Err(err);
    }
    Ok((child, proxy))
}

/// A share other than 0 % (and copies) exists only during a rollout:
/// starts one (no hooks are configured, so the controller health-checks
/// the canary backend) and waits until it is in `phase`.
fn start_rollout(sh: &Shell, console: &str, phase: &str) -> anyhow::Result<()> {
    let base = console.trim_end_matches('/');
    let start_url = format!("{base}/start");
    let start_body = r#"{"image_tag":"bench-canary","traffic_percent":5}"#;
    let json = "Content-Type: application/json";
    cmd!(
        sh,
        "curl -sf -X POST -H {json} --data {start_body} {start_url}"
    )
    .quiet()
    .ignore_stdout()
    .run()
    .context("cannot start the canary rollout")?;
    let status_url = format!("{base}/status");
    for _ in 0..100 {
        let status = cmd!(sh, "curl -sf {status_url}").quiet().read()?;
        if status.contains(&format!("\"phase\":\"{phase}\"")) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    bail!("the rollout did not reach {phase} within 10 s (see {status_url})")
}

fn bench_config(dir: &Path) -> String {
    format!(
        r#"server:
  admin_listen: "127.0.0.1:0"
  proxy_listen: "127.0.0.1:0"
  data_dir: "{data}"
upstreams:
  production: {{ url: "http://127.0.0.1:18081", version: "bench-production" }}
  canary: {{ url: "http://127.0.0.1:18082", version: "bench-canary" }}
proxy:
  # The load generator keeps no cookies, like the nginx and HAProxy set-ups it is compared with.
  stickiness: {{ mode: none }}
  max_in_flight_per_side: 100000
canary:
  auto_progression:
    enabled: false
    wait_time: "1h"
    thresholds: {{ max_latency: "1000ms", min_success_rate: 0.85, max_error_rate: 0.15 }}
  traffic_steps: [5, 100]
"#,
        data = dir.join("data").display()
    )
}

/// Reads canary's start-up lines for the console and proxy addresses.
fn read_addresses(child: &mut Child) -> anyhow::Result<(String, String)> {
    let stdout = child.stdout.take().context("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let mut console = None;
    let mut proxy = None;
    while console.is_none() || proxy.is_none() {
        let line = lines
            .next()
            .context("canary exited before it printed its addresses")??;
        if let Some(url) = line.strip_prefix("canary: console at ") {
            console = Some(url.trim().to_owned());
        } else if let Some(url) = line.strip_prefix("canary: proxy at ") {
            proxy = Some(url.trim().to_owned());
        }
    }
    Ok((console.unwrap_or_default(), proxy.unwrap_or_default()))
}

/// nginx, HAProxy, wrk, h2load and the harness's helpers from Debian, and oha from
/// crates.io for fixed-rate runs, installed when missing (as root).
fn ensure_tools(sh: &Shell) -> anyhow::Result<()> {
    let found = |tool: &str| {
        cmd!(sh, "which {tool}")
            .quiet()
            .ignore_stdout()
            .run()
            .is_ok()
    };
    // (command, Debian package)
    let missing: Vec<&str> = [
        ("nginx", "nginx"),
        ("haproxy", "haproxy"),
        ("wrk", "wrk"),
        ("curl", "curl"),
        ("ss", "iproute2"),
        ("python3", "python3"),
        ("h2load", "nghttp2-client"),
    ]
    .into_iter()
    .filter(|(tool, _)| !found(tool))
    .map(|(_, package)| package)
    .collect();
    if !missing.is_empty() {
        eprintln!("    installing {} from Debian", missing.join(", "));
        cmd!(sh, "apt-get update -qq").run()?;
        cmd!(sh, "apt-get install -y -qq {missing...}")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .run()?;
    }
    if std::env::var_os("RATE").is_some() && !found("oha") {
        eprintln!(
            "    installing oha from crates.io for the fixed-rate run (about 10 minutes, once)"
        );
        cmd!(sh, "cargo install --locked oha").run()?;
    }
    Ok(())
}

/// Builds the release binary and the benchmark example `example`, then
/// runs the example (its options come from the environment).
fn release_example(sh: &Shell, example: &str, doing: &str) -> anyhow::Result<()> {
    step(&format!(
        "{doing}: building the release binary and {example}"
    ));
    cmd!(
        sh,
        "cargo build --locked --release --package canary-server --bin canary --example {example}"
    )
    .run()?;
    step(doing);
    cmd!(sh, "target/release/examples/{example}").run()?;
    Ok(())
}

/// `cargo xtask bench stream`: `CLIENTS` (1,000) live dashboards on one
/// release `canary demo`: memory per dashboard, CPU for the steady stream,
/// and how long a state change takes to reach all of them
/// (`crates/server/examples/stream_bench.rs`).
pub(crate) fn stream(sh: &Shell) -> anyhow::Result<()> {
    release_example(
        sh,
        "stream_bench",
        "bench stream: connecting the dashboards (about a minute)",
    )
}

/// `cargo xtask bench rollback`: a canary at 5 % that starts answering
/// 500, resetting or hanging, at 20 and 200 requests a second, judged by
/// the statistical judge, the thresholds alone, or with a fast window: how
/// long until 0 % and how many users got its failure
/// (`crates/server/examples/rollback_bench.rs`).
pub(crate) fn rollback(sh: &Shell) -> anyhow::Result<()> {
    release_example(
        sh,
        "rollback_bench",
        "bench rollback: breaking canaries (about ten minutes with RUNS=3)",
    )
}

/// `cargo xtask soak [--minutes N]`: the release `canary demo` under a
/// fixed load with dashboards and a rollout cycling; RSS, descriptors and
/// threads every minute and their slopes (`crates/server/examples/soak.rs`).
pub(crate) fn soak(sh: &Shell, minutes: u32) -> anyhow::Result<()> {
    let _minutes = sh.push_env("SOAK_MINUTES", minutes.to_string());
    release_example(sh, "soak", &format!("soak: {minutes} minutes"))
}

/// `cargo xtask bench judge`: synthetic rollouts judged by the statistical
/// judge, the seed's fixed thresholds and repeated Mann–Whitney checks.
pub(crate) fn judge(sh: &Shell) -> anyhow::Result<()> {
    step("bench judge: simulating rollouts (RUNS A/A rollouts, a fifth of them per regression)");
    cmd!(
        sh,
        "cargo run --locked --release --package canary-server --example judge_simulation"
    )
    .run()?;
    Ok(())
}
