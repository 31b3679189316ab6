//! `cargo xtask bench stream`: many live dashboards on one server.
//!
//! Starts the release `canary demo` (its own process, so that its CPU and
//! memory are its own), starts a rollout and holds it, connects `CLIENTS`
//! WebSocket clients (default 1,000) as consoles do, and measures:
//! - the server's memory before and after they connect, per dashboard;
//! - the server's CPU for the steady stream (a state and a metrics message
//!   every second to every client), as a share of one core;
//! - how long a state change takes to reach every client: `CHANGES` scale
//!   commands (default 20), each to a share no earlier state had, timed from
//!   sending the command until each client has a state with that share.
//!
//! Figures are printed, never asserted. The clients run in this process on
//! the same machine, so the latencies include their own scheduling.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

#[path = "support/bench.rs"]
mod bench_support;

use bench_support::{cpu_ticks, env_number, http, rss_kib, start_server, ticks_per_second};

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let index = ((sorted.len() as f64 * q) as usize).min(sorted.len() - 1);
    sorted[index]
}

/// The change being timed: its number, the text its state carries, and when it was sent.
#[derive(Clone)]
struct Change {
    number: usize,
    marker: String,
    sent: Instant,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let clients = env_number("CLIENTS", 1000);
    let changes = env_number("CHANGES", 20);
    let steady_secs = env_number("STEADY_SECS", 30);
    let binary = std::env::var("CANARY_BINARY").unwrap_or_else(|_| "target/release/canary".into());
    let server = start_server(&binary, 40)?;
    let pid = server.child.id();
    let console = server.console.clone();

    // A rollout held at 5 %: the state changes only when the bench says so
    // (and with each second's figures, as in any rollout).
    let (status, body) = http(
        &console,
        "POST",
        "/admin/canary/start",
        r#"{"image_tag":"v2.7.0","traffic_percent":5}"#,
    )?;
    anyhow::ensure!(status == 200, "start: {status} {body}");
    for _ in 0..200 {
        let (_, state) = http(&console, "GET", "/admin/canary/status", "")?;
        if state.contains(r#""phase":"progressing""#) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let (status, body) = http(
        &console,
        "POST",
        "/admin/canary/auto-progression",
        r#"{"enabled":false}"#,
    )?;
    anyhow::ensure!(status == 200, "auto-progression: {status} {body}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_idle = rss_kib(pid);

    // The dashboards.
    let ws_url = format!("{}/ws", console.replacen("http://", "ws://", 1));
    let (change_tx, change_rx) = tokio::sync::watch::channel::<Option<Change>>(None);
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Duration)>();
    let messages = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let connect_started = Instant::now();
    let mut tasks = Vec::with_capacity(clients);
    for _ in 0..clients {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await?;
        let change_rx = change_rx.clone();
        let seen_tx = seen_tx.clone();
        let messages = Arc::clone(&messages);
        tasks.push(tokio::spawn(async move {
            let mut last_seen = 0;
            while let Some(Ok(message)) = socket.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                messages.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let change = change_rx.borrow().clone();
                if let Some(change) = change
                    && change.number > last_seen
                    && text.as_str().contains(&change.marker)
                {
                    last_seen = change.number;
                    let _ = seen_tx.send((change.number, change.sent.elapsed()));
                }
            }
        }));
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let rss_connected = rss_kib(pid);

    // The steady stream.
    let hz = ticks_per_second();
    let cpu_before = cpu_ticks(pid);
    let messages_before = messages.load(std::sync::atomic::Ordering::Relaxed);
    let steady_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(steady_secs as u64)).await;
    let steady_elapsed = steady_started.elapsed().as_secs_f64();
    #[allow(clippy::cast_precision_loss)]
    let cpu_share = (cpu_ticks(pid) - cpu_before) as f64 / hz as f64 / steady_elapsed;
    #[allow(clippy::cast_precision_loss)]
    let messages_per_client_per_sec = (messages.load(std::sync::atomic::Ordering::Relaxed)
        - messages_before) as f64
        / clients as f64
        / steady_elapsed;

    // State changes.
    let mut latencies_ms = Vec::with_capacity(changes * clients);
    let mut missed = 0;
    for number in 1..=changes {
        // A share no state has had yet: 10.01 %, 10.02 %, … written as the
        // server writes it (10.1, not 10.10).
        #[allow(clippy::cast_precision_loss)]
        let percent = ((1000 + number) as f64 / 100.0).to_string();
        let marker = format!(r#""canary_percent":{percent}"#);
        let sent = Instant::now();
        change_tx.send_replace(Some(Change {
            number,
            marker,
            sent,
        }));
        let (status, body) = tokio::task::spawn_blocking({
            let console = console.clone();
            move || {
                http(
                    &console,
                    "POST",
                    &format!("/admin/canary/scale/{percent}"),
                    "",
                )
            }
        })
        .await??;
        anyhow::ensure!(status == 200, "scale: {status} {body}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut reached = 0;
        while reached < clients {
            match tokio::time::timeout_at(deadline, seen_rx.recv()).await {
                Ok(Some((seen_number, latency))) if seen_number == number => {
                    reached += 1;
                    latencies_ms.push(latency.as_secs_f64() * 1000.0);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        missed += clients - reached;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    latencies_ms.sort_by(f64::total_cmp);

    #[allow(clippy::cast_precision_loss)]
    let per_dashboard_kib = rss_connected.saturating_sub(rss_idle) as f64 / clients as f64;
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    #[allow(clippy::print_stdout)]
    {
        println!(
            "## Live dashboards: {clients} WebSocket clients on one `canary demo` ({cores} cores)"
        );
        println!();
        println!("| figure | value |");
        println!("|---|---:|");
        println!("| clients connected in | {connect_secs:.1} s |");
        println!(
            "| server RSS before / with the clients | {:.1} / {:.1} MiB |",
            rss_idle as f64 / 1024.0,
            rss_connected as f64 / 1024.0
        );
        println!("| server memory per dashboard | {per_dashboard_kib:.1} KiB |");
        println!(
            "| server CPU, steady stream ({steady_secs} s) | {:.1} % of one core |",
            cpu_share * 100.0
        );
        println!("| messages per dashboard per second | {messages_per_client_per_sec:.2} |");
        println!(
            "| state change to every dashboard ({changes} changes), p50 | {:.1} ms |",
            percentile(&latencies_ms, 0.50)
        );
        println!("| p99 | {:.1} ms |", percentile(&latencies_ms, 0.99));
        println!(
            "| max | {:.1} ms |",
            latencies_ms.last().copied().unwrap_or(f64::NAN)
        );
        println!(
            "| deliveries missed (not within 10 s) | {missed} of {} |",
            changes * clients
        );
    }
    for task in tasks {
        task.abort();
    }
    drop(server);
    Ok(())
}
