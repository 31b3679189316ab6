//! `cargo xtask bench restart`: restarts canary under load and counts what
//! the clients saw. It plays systemd's part in socket activation: it binds
//! the proxy and admin sockets once, hands them to each `canary serve` it
//! starts (`LISTEN_FDS`), and restarts the server as `systemctl restart`
//! does (SIGTERM, wait for the exit, start again) while clients keep
//! sending requests through the proxy to two backends that take 5 ms each.
//!
//! Half the clients open a connection per request (any refusal is a
//! failure); the others keep connections alive and, like browsers and HTTP
//! libraries, send a request again once when a reused connection closes
//! before any byte of its answer (counted apart). It prints the counts and
//! the slowest requests, bounded in time, on loopback. Printed, never asserted.

#![allow(clippy::print_stdout, reason = "the table is the command's output")]
#![allow(
    clippy::disallowed_types,
    reason = "real processes timed in real time; no async runtime here to control"
)]

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::bench_backends::{self, wait_for_port};
use crate::step;

/// How many restarts, and the load between them.
const RESTARTS: usize = 3;
const BETWEEN_RESTARTS: Duration = Duration::from_secs(3);
const CLIENTS: usize = 16;
const BACKEND_DELAY_MS: u32 = 5;

/// What the clients saw.
#[derive(Debug, Default)]
struct Tally {
    ok: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
    retried: AtomicU64,
    latencies_us: Mutex<Vec<u64>>,
}

pub(crate) fn restart(sh: &Shell) -> anyhow::Result<()> {
    step("bench restart: building the release binary and the benchmark backend");
    let work = std::env::temp_dir().join(format!("canary-bench-restart-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let (backend_guards, backends) = bench_backends::start(sh, &work, BACKEND_DELAY_MS)?;
    let mut children = Children::default();

    println!("canary restarted {RESTARTS} times under load, {CLIENTS} clients, 5 ms backends");
    println!(
        "| listening socket | requests | ok | refused connections | failed | retried once (keep-alive closed) | p50 | p99 | max | longest restart |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for handover in [true, false] {
        let row = round(sh, &work, &backends, handover, &mut children)?;
        println!("{row}");
    }
    drop(children);
    drop(backend_guards);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// One client: requests until told to stop, each timed and tallied.
fn client(proxy: SocketAddr, keep_alive: bool, tally: &Tally, stop: &AtomicBool) {
    let mut connection: Option<BufReader<TcpStream>> = None;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let mut attempts = 0;
        let outcome = loop {
            attempts += 1;
            let reused = connection.is_some();
            let mut stream = match connection.take() {
                Some(stream) => stream,
                None => match TcpStream::connect(proxy) {
                    Ok(stream) => BufReader::new(stream),
                    Err(err) if err.kind() == ErrorKind::ConnectionRefused => {
                        break Err(true);
                    }
                    Err(_) => break Err(false),
                },
            };
            match exchange(&mut stream, keep_alive) {
                Ok(reusable) => {
                    if keep_alive && reusable {
                        connection = Some(stream);
                    }
                    break Ok(());
                }
                // A reused connection closed before any answer: send again, once.
                Err(nothing_read) if reused && nothing_read && attempts == 1 => {
                    tally.retried.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => break Err(false),
            }
        };
        match outcome {
            Ok(()) => {
                tally.ok.fetch_add(1, Ordering::Relaxed);
                let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                tally.latencies_us.lock().unwrap().push(micros);
            }
            Err(true) => {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
            Err(false) => {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One GET and its whole answer; `Ok(reusable)`, or `Err(nothing_read)`.
fn exchange(stream: &mut BufReader<TcpStream>, keep_alive: bool) -> Result<bool, bool> {
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let request = format!("GET / HTTP/1.1\r\nHost: bench\r\nConnection: {connection}\r\n\r\n");
    let _ = stream
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(30)));
    if stream.get_mut().write_all(request.as_bytes()).is_err() {
        return Err(true);
    }
    let mut status = String::new();
    match stream.read_line(&mut status) {
        Ok(0) | Err(_) => return Err(true),
        Ok(_) => {}
    }
    if !status.starts_with("HTTP/1.1 200") {
        return Err(false);
    }
    let mut length = None;
    let mut closes = !keep_alive;
    loop {
        let mut line = String::new();
        if stream.read_line(&mut line).map_or(true, |read| read == 0) {
            return Err(false);
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(value) = lower.strip_prefix("content-length:") {
            length = value.trim().parse::<usize>().ok();
        }
        if lower == "connection: close" {
            closes = true;
        }
    }
    let Some(length) = length else {
        return Err(false);
    };
    let mut body = vec![0; length];
    if stream.read_exact(&mut body).is_err() {
        return Err(false);
    }
    Ok(!closes)
}

/// A duplicate of `socket` at fd `number` (or the lowest free one above it)
/// that a started program inherits.
fn inheritable(socket: &TcpListener, number: i32) -> anyhow::Result<std::os::fd::OwnedFd> {
    let copy = rustix::io::fcntl_dupfd_cloexec(socket.as_fd(), number)?;
    if std::os::fd::AsRawFd::as_raw_fd(&copy) != number {
        bail!("fd {number} is taken; cannot hand the socket over there");
    }
    rustix::io::fcntl_setfd(&copy, rustix::io::FdFlags::empty())?;
    Ok(copy)
}

fn config_yaml(data: &Path, production: SocketAddr, canary: SocketAddr) -> String {
    format!(
        r#"server:
  data_dir: "{data}"
upstreams:
  production: {{ url: "http://{production}", health_check: {{ path: /__stats, interval: 1s }} }}
  canary: {{ url: "http://{canary}", health_check: {{ path: /__stats, interval: 1s }} }}
canary:
  auto_progression: {{ enabled: false, wait_time: 1h, thresholds: {{ max_latency: 1s, min_success_rate: 0.5, max_error_rate: 0.5 }} }}
  traffic_steps: [50, 100]
"#,
        data = data.display()
    )
}

/// The server the benchmark restarts, stopped however it ends.
#[derive(Default)]
struct Children {
    canary: Option<Child>,
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in self.canary.iter_mut() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let _ = child.wait();
        }
    }
}

/// One run of restarts under load; the table row of what the clients saw.
fn round(
    sh: &Shell,
    work: &Path,
    backends: &[SocketAddr],
    handover: bool,
    children: &mut Children,
) -> anyhow::Result<String> {
    // The sockets systemd would hold: bound once, handed to every server.
    // Without the handover each server binds the same addresses itself,
    // as a plain restart does.
    let proxy_socket = TcpListener::bind("127.0.0.1:0")?;
    let admin_socket = TcpListener::bind("127.0.0.1:0")?;
    let proxy = proxy_socket.local_addr()?;
    let admin = admin_socket.local_addr()?;
    let first_fd = 100;
    let handed = if handover {
        Some((
            inheritable(&proxy_socket, first_fd)?,
            inheritable(&admin_socket, first_fd + 1)?,
        ))
    } else {
        drop((proxy_socket, admin_socket));
        None
    };
    let data = work.join(if handover {
        "data-handover"
    } else {
        "data-rebind"
    });
    let config = work.join("canary-config.yaml");
    std::fs::write(&config, config_yaml(&data, backends[0], backends[1]))?;
    let binary = bench_backends::canary_binary();
    let serve = |log: &Path| -> anyhow::Result<Child> {
        let mut command = Command::new(&binary);
        command.args(["serve", "--config"]).arg(&config);
        if handed.is_some() {
            command
                .env("LISTEN_FDS", "2")
                .env("LISTEN_FDS_FIRST_FD", first_fd.to_string())
                .env("LISTEN_FDNAMES", "proxy:admin");
        } else {
            command
                .args(["--proxy-listen", &proxy.to_string()])
                .args(["--admin-listen", &admin.to_string()]);
        }
        command
            .env("CANARY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("cannot start canary")
    };
    let mode = if handover {
        "kept across restarts (socket activation)"
    } else {
        "bound by each server"
    };
    step(&format!(
        "bench restart: listening socket {mode}; a rollout at 50 %"
    ));
    children.canary = Some(serve(&work.join("canary-0.log"))?);
    wait_for_port(admin)?;
    let console = format!("http://{admin}/admin/canary");
    bench_backends::start_rollout_at_half(sh, &console)?;
    let status_url = format!("{console}/status");

    step(&format!(
        "bench restart: {CLIENTS} clients through the proxy, {RESTARTS} restarts {} s apart",
        BETWEEN_RESTARTS.as_secs()
    ));
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|index| {
            let (tally, stop) = (Arc::clone(&tally), Arc::clone(&stop));
            let keep_alive = index % 2 == 1;
            std::thread::spawn(move || client(proxy, keep_alive, &tally, &stop))
        })
        .collect();
    std::thread::sleep(BETWEEN_RESTARTS);
    let mut gaps = Vec::new();
    for restart in 1..=RESTARTS {
        let before = tally.ok.load(Ordering::Relaxed);
        let stopping = Instant::now();
        if let Some(mut old) = children.canary.take() {
            let pid = old.id().to_string();
            cmd!(sh, "kill -TERM {pid}").quiet().run()?;
            old.wait()?;
        }
        let drained = stopping.elapsed();
        children.canary = Some(serve(&work.join(format!("canary-{restart}.log")))?);
        // Ready once the new server answers its API.
        while cmd!(sh, "curl -sf -o /dev/null {status_url}")
            .quiet()
            .run()
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(5));
        }
        gaps.push((drained, stopping.elapsed()));
        eprintln!(
            "    restart {restart}: old server drained and exited in {} ms, new one answering after {} ms ({} requests served meanwhile)",
            drained.as_millis(),
            stopping.elapsed().as_millis(),
            tally.ok.load(Ordering::Relaxed) - before
        );
        std::thread::sleep(BETWEEN_RESTARTS);
    }
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        let _ = client.join();
    }

    let mut latencies = std::mem::take(&mut *tally.latencies_us.lock().unwrap());
    latencies.sort_unstable();
    let percentile = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map_or(0.0, |us| *us as f64 / 1000.0)
    };
    if let Some(mut last) = children.canary.take() {
        let pid = last.id().to_string();
        cmd!(sh, "kill -TERM {pid}").quiet().run()?;
        last.wait()?;
    }
    let slowest_gap = gaps
        .iter()
        .map(|(_, ready)| ready.as_millis())
        .max()
        .unwrap_or(0);
    let refused = tally.refused.load(Ordering::Relaxed);
    let failed = tally.failed.load(Ordering::Relaxed);
    Ok(format!(
        "| {mode} | {} | {} | {refused} | {failed} | {} | {:.1} ms | {:.1} ms | {:.1} ms | {slowest_gap} ms |",
        latencies.len() as u64 + refused + failed,
        tally.ok.load(Ordering::Relaxed),
        tally.retried.load(Ordering::Relaxed),
        percentile(0.5),
        percentile(0.99),
        latencies.last().map_or(0.0, |us| *us as f64 / 1000.0),
    ))
}
