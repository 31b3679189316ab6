//! `cargo xtask soak`: the release `canary demo` under steady load for
//! `SOAK_MINUTES` (30): `SOAK_RATE` requests a second (500) through the
//! proxy, 50 dashboards on the WebSocket stream, and a rollout cycling
//! (start, then a rollback or a promotion about every two minutes). Every
//! minute it prints the server's RSS, open file descriptors and threads,
//! and at the end their slopes (a least-squares line over the minutes
//! after the first, which warms the caches and pools).
//!
//! Figures are printed, never asserted; `RELIABILITY.md` keeps the last run.

#[path = "support/bench.rs"]
mod bench_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use tokio::time::Instant;

use bench_support::{env_number, http, rss_kib, start_server};

fn descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

fn threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count)
}

/// The slope of the least-squares line through `(x, y)` points.
#[allow(clippy::cast_precision_loss)]
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return f64::NAN;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let covariance: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let variance: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    covariance / variance
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let minutes = env_number("SOAK_MINUTES", 30);
    let rate = env_number("SOAK_RATE", 500);
    let dashboards = env_number("SOAK_DASHBOARDS", 50);
    let binary = std::env::var("CANARY_BINARY").unwrap_or_else(|_| "target/release/canary".into());
    // The demo's own load generator is off: this one sets the rate.
    let server = start_server(&binary, 0)?;
    let pid = server.child.id();
    let console = server.console.clone();

    // The dashboards: each reads the stream and counts what it gets.
    let received = Arc::new(AtomicU64::new(0));
    let ws_url = format!("{}/ws", console.replacen("http://", "ws://", 1));
    for _ in 0..dashboards {
        let (mut socket, _) = tokio_tungstenite::connect_async(ws_url.as_str()).await?;
        let received = Arc::clone(&received);
        tokio::spawn(async move {
            while let Some(Ok(_)) = socket.next().await {
                received.fetch_add(1, Ordering::Relaxed);
            }
        });
    }

    // The load, at a fixed rate.
    let (answered, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    {
        let proxy = server.proxy.clone();
        let (answered, failed) = (Arc::clone(&answered), Arc::clone(&failed));
        tokio::spawn(async move {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .build_http::<Empty<Bytes>>();
            #[allow(clippy::cast_precision_loss)]
            let mut every = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                every.tick().await;
                let (client, answered, failed) =
                    (client.clone(), Arc::clone(&answered), Arc::clone(&failed));
                let request = hyper::Request::get(format!("{proxy}/soak"))
                    .body(Empty::new())
                    .expect("a valid request");
                tokio::spawn(async move {
                    let ok = match client.request(request).await {
                        Ok(response) => {
                            let ok = response.status().is_success();
                            ok && response.into_body().collect().await.is_ok()
                        }
                        Err(_) => false,
                    };
                    let counter = if ok { &answered } else { &failed };
                    counter.fetch_add(1, Ordering::Relaxed);
                });
            }
        });
    }

    // The rollout cycling: start; after about two minutes, roll back or promote.
    // A thread of its own, not the runtime's blocking pool: the runtime
    // waits for those at shutdown, and this one never ends, so the soak
    // would not exit after its report.
    {
        let console = console.clone();
        std::thread::spawn(move || {
            let mut cycle = 0u64;
            loop {
                let _ = http(
                    &console,
                    "POST",
                    "/admin/canary/start",
                    &format!(r#"{{"image_tag":"v2.{cycle}.0","traffic_percent":25}}"#),
                );
                std::thread::sleep(Duration::from_secs(110));
                let end = if cycle.is_multiple_of(2) {
                    "rollback"
                } else {
                    "promote"
                };
                let _ = http(&console, "POST", &format!("/admin/canary/{end}"), "");
                std::thread::sleep(Duration::from_secs(10));
                cycle += 1;
            }
        });
    }

    #[allow(clippy::print_stdout)]
    {
        println!(
            "## Soak: {minutes} min, {rate} req/s through the proxy, {dashboards} dashboards, a rollout every 2 min"
        );
        println!();
        println!(
            "| minute | RSS MiB | descriptors | threads | answered | failed | dashboard messages |"
        );
        println!("|---:|---:|---:|---:|---:|---:|---:|");
    }
    let started = Instant::now();
    let (mut rss_points, mut fd_points, mut thread_points) = (Vec::new(), Vec::new(), Vec::new());
    for minute in 1..=minutes {
        tokio::time::sleep_until(started + Duration::from_secs(60 * minute as u64)).await;
        let (rss, fds, task_count) = (rss_kib(pid), descriptors(pid), threads(pid));
        #[allow(clippy::cast_precision_loss)]
        if minute > 1 {
            rss_points.push((minute as f64, rss as f64 / 1024.0));
            fd_points.push((minute as f64, fds as f64));
            thread_points.push((minute as f64, task_count as f64));
        }
        #[allow(clippy::print_stdout, clippy::cast_precision_loss)]
        {
            println!(
                "| {minute} | {:.1} | {fds} | {task_count} | {} | {} | {} |",
                rss as f64 / 1024.0,
                answered.load(Ordering::Relaxed),
                failed.load(Ordering::Relaxed),
                received.load(Ordering::Relaxed),
            );
        }
    }
    let _ = http(&console, "GET", "/admin/canary/status", "");
    #[allow(clippy::print_stdout)]
    {
        println!();
        println!(
            "slopes after the first minute: RSS {:+.3} MiB per 10 min, descriptors {:+.2} per 10 min, threads {:+.2} per 10 min",
            slope(&rss_points) * 10.0,
            slope(&fd_points) * 10.0,
            slope(&thread_points) * 10.0,
        );
    }
    drop(server);
    Ok(())
}
