//! `cargo xtask bench rollback`: how fast a broken canary is out. The
//! release `canary serve` in front of two upstreams of this program's own
//! (plain HTTP/1.1 over loopback), a rollout at 5 %, load at a fixed rate
//! through the proxy; after `HEALTHY_SECS` (5) of healthy traffic the
//! canary breaks: every request answered 500, every connection reset, or
//! no answer at all. Per scenario, rate and way of judging, over `RUNS`
//! (3) runs: the time from the fault to 0 % at the proxy (the rollback's
//! decision; the share drops before it is recorded) and how many requests
//! reached the broken canary (each a user who got its failure); medians.
//!
//! Ways of judging: the statistical judge enforcing (with the seed's
//! thresholds), the seed's thresholds alone (judged on the minute), and
//! the thresholds with `fast_window: 10s`. The hang scenario sets
//! `proxy.canary_response_timeout: 2s` (with the default 30 s every figure
//! would be 30 s more). `RATES` (20,200) and `SCENARIOS` (500,reset,hang)
//! narrow the run. Figures are printed, never asserted. A run that rolled
//! back before the fault, or not within two minutes of it, gives no figure
//! and is counted apart (the reason of an early one goes to stderr).

#[path = "support/bench.rs"]
mod bench_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bench_support::{Server, env_number, http, spawn_canary};

/// How the canary upstream behaves.
const HEALTHY: u8 = 0;
const FAILS: u8 = 1;
const RESETS: u8 = 2;
const HANGS: u8 = 3;

/// An upstream on loopback answering every request `ok`, or as its mode
/// says; `/healthz` always answers, so only traffic can tell it is broken.
struct Upstream {
    address: SocketAddr,
    mode: Arc<AtomicU8>,
    /// Requests (not health checks) that reached it while broken.
    broken_hits: Arc<AtomicU64>,
}

fn upstream() -> anyhow::Result<Upstream> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let address = listener.local_addr()?;
    let (mode, broken_hits) = (
        Arc::new(AtomicU8::new(HEALTHY)),
        Arc::new(AtomicU64::new(0)),
    );
    let (shared_mode, shared_hits) = (Arc::clone(&mode), Arc::clone(&broken_hits));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let (mode, hits) = (Arc::clone(&shared_mode), Arc::clone(&shared_hits));
            std::thread::spawn(move || serve_connection(stream, &mode, &hits));
        }
    });
    Ok(Upstream {
        address,
        mode,
        broken_hits,
    })
}

/// Answers requests on one keep-alive connection, as the mode says.
fn serve_connection(stream: TcpStream, mode: &AtomicU8, hits: &AtomicU64) {
    let _ = stream.set_nodelay(true);
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(stream) => stream,
        Err(_) => return,
    });
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        // The head's other lines; the proxy sends GETs without a body.
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        let health = request_line.contains("/healthz");
        let mode = if health {
            HEALTHY
        } else {
            mode.load(Ordering::SeqCst)
        };
        if mode != HEALTHY {
            hits.fetch_add(1, Ordering::SeqCst);
        }
        if !health && matches!(mode, HEALTHY | FAILS) {
            // 1-5 ms of work, as a service's: the sides then differ by
            // chance, not by how soon a thread that waits wakes up (a side
            // with a twentieth of the traffic wakes colder threads, and the
            // judge rightly found it slower without this).
            std::thread::sleep(Duration::from_micros(1_000 + fastrand::u64(..4_000)));
        }
        let answer: &[u8] = match mode {
            HEALTHY => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n",
            FAILS => b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 7\r\n\r\nbroken\n",
            RESETS => {
                // Linger 0: close sends RST, as a crashed process's socket does.
                let socket = socket2::SockRef::from(&writer);
                let _ = socket.set_linger(Some(Duration::ZERO));
                return;
            }
            _ => {
                // Never answers; the connection stays until the proxy drops it.
                let mut sink = [0u8; 64];
                while reader.read(&mut sink).unwrap_or(0) > 0 {}
                return;
            }
        };
        if writer.write_all(answer).is_err() {
            return;
        }
    }
}

/// A `canary serve` with `config` (its data in a folder of its own).
fn serve(binary: &str, config: &str) -> anyhow::Result<Server> {
    static SERVED: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "canary-rollback-bench-{}-{}",
        std::process::id(),
        SERVED.fetch_add(1, Ordering::SeqCst)
    ));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("canary-config.yaml");
    std::fs::write(
        &path,
        config.replace("{data}", &dir.join("data").display().to_string()),
    )?;
    let path = path.to_string_lossy().into_owned();
    spawn_canary(binary, &["serve", "--config", &path], dir)
}

/// The config for one way of judging.
fn config(production: SocketAddr, canary: SocketAddr, judging: &str, hang: bool) -> String {
    let (judge, fast_window) = match judging {
        "judge" => ("enforce", ""),
        "fast window" => ("off", ", fast_window: 10s"),
        _ => ("off", ""),
    };
    let canary_timeout = if hang {
        "  canary_response_timeout: 2s\n"
    } else {
        ""
    };
    format!(
        r#"server:
  admin_listen: "127.0.0.1:0"
  proxy_listen: "127.0.0.1:0"
  data_dir: "{{data}}"
upstreams:
  production: {{ url: "http://{production}", version: "v1", health_check: {{ path: /healthz, interval: 1s }} }}
  canary: {{ url: "http://{canary}", version: "v2", health_check: {{ path: /healthz, interval: 1s }} }}
proxy:
  stickiness: {{ mode: none }}
{canary_timeout}canary:
  auto_progression:
    enabled: false
    wait_time: "1h"
    thresholds: {{ max_latency: "1000ms", min_success_rate: 0.85, max_error_rate: 0.15{fast_window} }}
  traffic_steps: [5, 100]
  judge: {{ mode: {judge} }}
"#
    )
}

fn wall_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(u64::MAX)
}

fn status(console: &str) -> serde_json::Value {
    let (_, body) = http(console, "GET", "/admin/canary/status", "").unwrap_or_default();
    serde_json::from_str(&body).unwrap_or_default()
}

fn wait_for_phase(console: &str, phases: &[&str], limit: Duration) -> Option<serde_json::Value> {
    let polls = limit.as_millis() / 50;
    for _ in 0..polls {
        let state = status(console);
        if phases.iter().any(|phase| state["phase"] == *phase) {
            return Some(state);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// One run: a rollout at 5 %, healthy for a while, then broken. Returns
/// (ms from the fault to the rollback's decision, requests that reached
/// the broken canary), or `None` when no rollback came within two minutes.
fn run(
    server: &Server,
    canary: &Upstream,
    fault: u8,
    rate: u64,
    healthy_secs: u64,
) -> anyhow::Result<Option<(u64, u64)>> {
    canary.mode.store(HEALTHY, Ordering::SeqCst);
    let (status_code, body) = http(
        &server.console,
        "POST",
        "/admin/canary/start",
        r#"{"image_tag":"v2","traffic_percent":5}"#,
    )?;
    anyhow::ensure!(status_code == 200, "start refused: {body}");
    wait_for_phase(&server.console, &["progressing"], Duration::from_secs(30))
        .ok_or_else(|| anyhow::anyhow!("the rollout never progressed"))?;

    // The load, at a fixed rate, on its own threads until told to stop.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (stop, proxy) = (Arc::clone(&stop), server.proxy.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async move {
                let client = hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
                #[allow(clippy::cast_precision_loss)]
                let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
                while !stop.load(Ordering::SeqCst) {
                    every.tick().await;
                    let client = client.clone();
                    let uri: hyper::Uri = format!("{proxy}/work").parse().expect("a URI");
                    tokio::spawn(async move {
                        let _ = client.get(uri).await;
                    });
                }
            });
        })
    };
    std::thread::sleep(Duration::from_secs(healthy_secs));
    let broken_before = canary.broken_hits.load(Ordering::SeqCst);
    let fault_at = wall_ms();
    canary.mode.store(fault, Ordering::SeqCst);
    let ended = wait_for_phase(
        &server.console,
        &["rolling_back", "rolled_back"],
        Duration::from_secs(120),
    );
    // Requests already on their way to the canary land within its timeout.
    std::thread::sleep(Duration::from_millis(if fault == HANGS {
        2500
    } else {
        300
    }));
    stop.store(true, Ordering::SeqCst);
    let _ = load.join();
    canary.mode.store(HEALTHY, Ordering::SeqCst);
    let reached = canary.broken_hits.load(Ordering::SeqCst) - broken_before;
    if ended.is_none() {
        let _ = http(
            &server.console,
            "POST",
            "/admin/canary/rollback",
            r#"{"reason":"bench: no rollback within two minutes"}"#,
        );
        wait_for_phase(&server.console, &["rolled_back"], Duration::from_secs(30));
        return Ok(None);
    }
    wait_for_phase(&server.console, &["rolled_back"], Duration::from_secs(30));
    let (_, body) = http(
        &server.console,
        "GET",
        "/admin/canary/audit?action=auto_rollback&limit=1",
        "",
    )?;
    let page: serde_json::Value = serde_json::from_str(&body)?;
    let decided_at = page["events"][0]["at"].as_u64().unwrap_or(fault_at);
    if decided_at < fault_at {
        // Rolled back while the canary was healthy: not a figure of this
        // scenario, and worth a look.
        let reason = page["events"][0]["reason"].as_str().unwrap_or_default();
        #[allow(clippy::print_stderr)]
        {
            eprintln!("rolled back before the fault: {reason}");
        }
        return Ok(None);
    }
    Ok(Some((decided_at - fault_at, reached)))
}

fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

fn main() -> anyhow::Result<()> {
    let binary = std::env::var("CANARY_BINARY").unwrap_or_else(|_| "target/release/canary".into());
    let runs = env_number("RUNS", 3);
    let healthy_secs = env_number("HEALTHY_SECS", 5) as u64;
    let rates: Vec<u64> = std::env::var("RATES")
        .unwrap_or_else(|_| "20,200".into())
        .split(',')
        .filter_map(|rate| rate.trim().parse().ok())
        .collect();
    let scenarios: Vec<String> = std::env::var("SCENARIOS")
        .unwrap_or_else(|_| "500,reset,hang".into())
        .split(',')
        .map(|name| name.trim().to_owned())
        .collect();
    #[allow(clippy::print_stdout)]
    {
        println!(
            "## Rollback: a canary at 5 % breaks after {healthy_secs} s of healthy traffic; medians of {runs} runs"
        );
        println!();
        println!(
            "| canary | req/s | judged by | fault → 0 % (ms) | users who got the failure | runs without a figure |"
        );
        println!("|---|---:|---|---:|---:|---:|");
    }
    for scenario in &scenarios {
        let fault = match scenario.as_str() {
            "500" => FAILS,
            "reset" => RESETS,
            "hang" => HANGS,
            other => anyhow::bail!("unknown scenario {other:?}: 500, reset or hang"),
        };
        for &rate in &rates {
            for judging in ["judge", "thresholds", "fast window"] {
                let (production, canary) = (upstream()?, upstream()?);
                let server = serve(
                    &binary,
                    &config(production.address, canary.address, judging, fault == HANGS),
                )?;
                let (mut times, mut users, mut missed) = (Vec::new(), Vec::new(), 0);
                for _ in 0..runs {
                    match run(&server, &canary, fault, rate, healthy_secs)? {
                        Some((ms, reached)) => {
                            times.push(ms);
                            users.push(reached);
                        }
                        None => missed += 1,
                    }
                }
                let shown = |value: Option<u64>| value.map_or("—".to_owned(), |v| v.to_string());
                let label = match fault {
                    FAILS => "answers 500",
                    RESETS => "resets",
                    _ => "hangs (2 s canary timeout)",
                };
                #[allow(clippy::print_stdout)]
                {
                    println!(
                        "| {label} | {rate} | {judging} | {} | {} | {missed} |",
                        shown(median(&mut times)),
                        shown(median(&mut users)),
                    );
                }
            }
        }
    }
    Ok(())
}
