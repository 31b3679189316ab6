//! What the restart and router benchmarks share: the release `canary`, two
//! benchmark backends (`xtask/bench/backend`, naming themselves in
//! `x-upstream`) on loopback ports, and the processes stopped however the
//! benchmark ends.

#![allow(
    clippy::disallowed_types,
    reason = "real processes waited for in real time; no async runtime here"
)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::workspace_root;

/// A process stopped (SIGTERM, then waited for) when dropped.
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Builds the release `canary` and the benchmark backend (into `work`),
/// and starts the backends for production and canary, each answering after
/// `delay_ms`; their addresses, production first.
pub(crate) fn start(
    sh: &Shell,
    work: &Path,
    delay_ms: u32,
) -> anyhow::Result<(Vec<Guard>, [SocketAddr; 2])> {
    cmd!(
        sh,
        "cargo build --locked --release --package canary-server --bin canary"
    )
    .run()?;
    let backend_target = work.join("backend-target");
    let manifest = workspace_root().join("xtask/bench/backend/Cargo.toml");
    cmd!(
        sh,
        "cargo build --release --quiet --manifest-path {manifest}"
    )
    .env("CARGO_TARGET_DIR", &backend_target)
    .run()?;
    let backend_bin = backend_target.join("release/perf-backend");
    let mut guards = Vec::new();
    let mut addresses = Vec::new();
    for label in ["production", "canary"] {
        let port = free_port()?;
        guards.push(Guard(
            Command::new(&backend_bin)
                .args(["--port", &port.to_string(), "--label", label])
                .args(["--delay-ms", &delay_ms.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("cannot start the benchmark backend")?,
        ));
        addresses.push(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    for address in &addresses {
        wait_for_port(*address)?;
    }
    Ok((guards, [addresses[0], addresses[1]]))
}

/// The release `canary`.
pub(crate) fn canary_binary() -> std::path::PathBuf {
    workspace_root().join("target/release/canary")
}

/// A free loopback TCP port.
pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A free loopback UDP port.
pub(crate) fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Waits up to 5 s for something to listen on `address`.
pub(crate) fn wait_for_port(address: SocketAddr) -> anyhow::Result<()> {
    for _ in 0..200 {
        if TcpStream::connect(address).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    bail!("nothing listens on {address} after 5 s")
}

/// Starts a rollout at 50 % through the API at `console` and waits (up to
/// 10 s) until it progresses with its split confirmed by the router.
pub(crate) fn start_rollout_at_half(sh: &Shell, console: &str) -> anyhow::Result<()> {
    let json = "Content-Type: application/json";
    let start = r#"{"image_tag":"bench","traffic_percent":50}"#;
    let start_url = format!("{console}/start");
    cmd!(sh, "curl -sf -X POST -H {json} --data {start} {start_url}")
        .quiet()
        .ignore_stdout()
        .run()
        .context("cannot start the rollout")?;
    let status_url = format!("{console}/status");
    for _ in 0..200 {
        let status = cmd!(sh, "curl -sf {status_url}").quiet().read()?;
        if status.contains("\"phase\":\"progressing\"") && status.contains("\"confirmed\":true") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("the rollout did not reach a confirmed 50 % within 10 s (see {status_url})")
}
