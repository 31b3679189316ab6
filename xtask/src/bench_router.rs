//! `cargo xtask bench router`: for each router (the built-in proxy, HAProxy,
//! nginx), how long after a command's answer the backends see the new split,
//! and how close the split they see is to the share canary reports. Two
//! benchmark backends name themselves in `x-upstream`; a rollout starts at
//! 50 %, and the benchmark then moves it to 0 % and back to 50 % a few
//! times, timing the first request that shows each change (polled on new
//! connections), then sends 4,000 requests to measure the split. Loopback,
//! bounded, printed, never asserted. HAProxy and nginx come from Debian.

#![allow(clippy::print_stdout, reason = "the table is the command's output")]
#![allow(
    clippy::disallowed_types,
    reason = "real processes timed in real time; no async runtime here to control"
)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::bench_backends::{self, Guard, free_port, free_udp_port, wait_for_port};
use crate::step;

const MOVES: usize = 4;
const SPLIT_REQUESTS: usize = 4000;

pub(crate) fn router(sh: &Shell) -> anyhow::Result<()> {
    crate::setup::run(sh)?;
    step("bench router: building the release binary and the benchmark backend");
    let work = std::env::temp_dir().join(format!("canary-bench-router-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let (backend_guards, backends) = bench_backends::start(sh, &work, 0)?;
    println!();
    println!(
        "| router | command answered → backends see it: median | max | → canary confirms it: median | split measured at 50 %, once confirmed ({SPLIT_REQUESTS} requests) | share canary reports |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for kind in ["builtin", "haproxy", "nginx"] {
        let row = measure(sh, &work.join(kind), kind, &backends)?;
        println!("{row}");
    }
    drop(backend_guards);
    let _ = std::fs::remove_dir_all(&work);
    Ok(())
}

/// Starts `kind` in front of the backends and canary steering it, moves the
/// share, and returns the table row.
fn measure(sh: &Shell, dir: &Path, kind: &str, backends: &[SocketAddr]) -> anyhow::Result<String> {
    step(&format!("bench router: {kind}"));
    std::fs::create_dir_all(dir.join("tmp"))?;
    let (front, router_yaml, mut guards) = match kind {
        "haproxy" => start_haproxy(dir, backends)?,
        "nginx" => start_nginx(dir, backends)?,
        _ => (
            SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            String::new(),
            Vec::new(),
        ),
    };
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let proxy = if kind == "builtin" {
        front
    } else {
        SocketAddr::from(([127, 0, 0, 1], free_port()?))
    };
    let config = dir.join("canary-config.yaml");
    std::fs::write(
        &config,
        format!(
            r#"server:
  admin_listen: "{admin}"
  proxy_listen: "{proxy}"
  data_dir: "{data}"
upstreams:
  production: {{ url: "http://{production}", health_check: {{ path: /__stats, interval: 1s }} }}
  canary: {{ url: "http://{canary}", health_check: {{ path: /__stats, interval: 1s }} }}
{router_yaml}canary:
  auto_progression: {{ enabled: false, wait_time: 1h, thresholds: {{ max_latency: 1s, min_success_rate: 0.5, max_error_rate: 0.5 }} }}
  traffic_steps: [50, 100]
"#,
            data = dir.join("data").display(),
            production = backends[0],
            canary = backends[1],
        ),
    )?;
    guards.push(Guard(
        Command::new(bench_backends::canary_binary())
            .args(["serve", "--config"])
            .arg(&config)
            .env("CANARY_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("canary.log"))?)
            .spawn()
            .context("cannot start canary")?,
    ));
    wait_for_port(admin)?;
    let console = format!("http://{admin}/admin/canary");
    bench_backends::start_rollout_at_half(sh, &console)
        .with_context(|| format!("{kind} (its log: {})", dir.join("canary.log").display()))?;
    let status_url = format!("{console}/status");
    let mut delays = Vec::new();
    let mut confirmations = Vec::new();
    for _ in 0..MOVES {
        for (percent, canary_expected) in [(0, false), (50, true)] {
            let scale_url = format!("{console}/scale/{percent}");
            let asked = Instant::now();
            cmd!(sh, "curl -sf -X POST {scale_url}")
                .quiet()
                .ignore_stdout()
                .run()?;
            let answered = Instant::now();
            // The change shows when a canary answer appears (to 50 %) or
            // when 200 answers in a row come from production (to 0 %).
            let mut production_in_a_row = 0;
            let mut first_of_run = None;
            let seen = loop {
                if answered.duration_since(asked) > Duration::from_secs(30)
                    || Instant::now().duration_since(answered) > Duration::from_secs(30)
                {
                    bail!("{kind}: the split did not change within 30 s");
                }
                let canary = answered_by_canary(front)?;
                if canary_expected && canary {
                    break Instant::now();
                }
                if !canary_expected {
                    if canary {
                        production_in_a_row = 0;
                        first_of_run = None;
                    } else {
                        production_in_a_row += 1;
                        // Timed from the first of the run that proves it.
                        first_of_run.get_or_insert_with(Instant::now);
                    }
                    if production_in_a_row >= 200 {
                        break first_of_run.unwrap_or_else(Instant::now);
                    }
                }
            };
            delays.push(seen.duration_since(answered));
            // And until canary counts it as in force (it confirms on the
            // data plane, so this comes after the backends see it).
            loop {
                if Instant::now().duration_since(answered) > Duration::from_secs(30) {
                    bail!("{kind}: the split was not confirmed within 30 s");
                }
                let status = cmd!(sh, "curl -sf {status_url}").quiet().read()?;
                if router_confirmed(&status) {
                    confirmations.push(Instant::now().duration_since(answered));
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    confirmations.sort();
    delays.sort();
    let median = delays[delays.len() / 2];
    let max = delays[delays.len() - 1];
    let mut canary_answers = 0;
    for _ in 0..SPLIT_REQUESTS {
        if answered_by_canary(front)? {
            canary_answers += 1;
        }
    }
    let status = cmd!(sh, "curl -sf {status_url}").quiet().read()?;
    let reported = status
        .split("\"effective_percent\":")
        .nth(1)
        .and_then(|rest| rest.split([',', '}']).next())
        .unwrap_or("?")
        .to_owned();
    drop(guards);
    Ok(format!(
        "| {kind} | {} ms | {} ms | {} ms | {:.2} % | {reported} % |",
        median.as_millis(),
        max.as_millis(),
        confirmations[confirmations.len() / 2].as_millis(),
        canary_answers as f64 * 100.0 / SPLIT_REQUESTS as f64
    ))
}

fn start_haproxy(
    dir: &Path,
    backends: &[SocketAddr],
) -> anyhow::Result<(SocketAddr, String, Vec<Guard>)> {
    let front = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let log = free_udp_port()?;
    let socket = dir.join("admin.sock");
    let config = dir.join("haproxy.cfg");
    std::fs::write(
        &config,
        format!(
            "global\n    stats socket {socket} mode 600 level admin\n    log 127.0.0.1:{log} local0\n\
             defaults\n    mode http\n    log global\n    log-format \"canary1 %b %s %ST %Ta %tsc\"\n\
             \x20   timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
             frontend web\n    bind {front}\n    default_backend app\n\
             backend app\n    balance roundrobin\n    server prod {production} weight 1\n    server canary {canary} weight 0\n",
            socket = socket.display(),
            production = backends[0],
            canary = backends[1],
        ),
    )?;
    let guard = Guard(
        Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start HAProxy")?,
    );
    wait_for_port(front)?;
    let yaml = format!(
        "router:\n  kind: haproxy\n  haproxy: {{ instances: [\"{}\"], backend: app, servers: {{ production: prod, canary: canary }}, log_listen: \"127.0.0.1:{log}\" }}\n",
        socket.display()
    );
    Ok((front, yaml, vec![guard]))
}

fn start_nginx(
    dir: &Path,
    backends: &[SocketAddr],
) -> anyhow::Result<(SocketAddr, String, Vec<Guard>)> {
    let front = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let confirm = SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let log = free_udp_port()?;
    let prefix = dir.display().to_string();
    let conf = dir.join("nginx.conf");
    let split = dir.join("split.conf");
    std::fs::write(
        &conf,
        format!(
            "worker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\nhttp {{\n\
             client_body_temp_path {prefix}/tmp/body;\nproxy_temp_path {prefix}/tmp/proxy;\nfastcgi_temp_path {prefix}/tmp/f;\n\
             uwsgi_temp_path {prefix}/tmp/u;\nscgi_temp_path {prefix}/tmp/s;\naccess_log off;\n\
             include {split};\nserver {{\n    listen {front};\n    location / {{\n        proxy_pass http://$canary_upstream;\n\
             \x20       access_log syslog:server=127.0.0.1:{log} canary1;\n    }}\n}}\n}}\n",
            split = split.display(),
        ),
    )?;
    // The first file, as canary writes it at 0 %, so nginx can start.
    std::fs::write(
        &split,
        format!(
            "upstream canary_listed_as_production {{ server {p}; }}\nupstream canary_listed_as_canary {{ server {c}; }}\n\
             split_clients \"${{request_id}}\" $canary_upstream {{\n    * canary_listed_as_production;\n}}\n\
             log_format canary1 'canary1 nginx $canary_upstream $status $request_time ----';\n\
             server {{\n    listen {confirm};\n    access_log off;\n    location = /__canary {{ return 200 \"canary generation=1 share=0 production=production\\n\"; }}\n}}\n",
            p = backends[0],
            c = backends[1],
        ),
    )?;
    let conf = conf.display().to_string();
    let guard = Guard(
        Command::new("nginx")
            .args(["-p", &prefix, "-c", &conf, "-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start nginx")?,
    );
    wait_for_port(front)?;
    let yaml = format!(
        "router:\n  kind: nginx\n  nginx: {{ include_file: \"{split}\", test_command: [nginx, -p, \"{prefix}\", -c, \"{conf}\", -t], reload_command: [nginx, -p, \"{prefix}\", -c, \"{conf}\", -s, reload], confirm_listen: \"{confirm}\", log_listen: \"127.0.0.1:{log}\" }}\n",
        split = split.display(),
    );
    Ok((front, yaml, vec![guard]))
}

/// Whether the status says the router has the split in force.
fn router_confirmed(status: &str) -> bool {
    status
        .split("\"router\":")
        .nth(1)
        .is_some_and(|router| router.contains("\"confirmed\":true"))
}

/// One request on a new connection; whether the canary backend answered.
fn answered_by_canary(front: SocketAddr) -> anyhow::Result<bool> {
    let mut stream = TcpStream::connect(front).context("the router refused a connection")?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")?;
    let mut reader = BufReader::new(&mut stream);
    let mut canary = false;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("x-upstream:") {
            canary = lower.contains("canary");
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(canary)
}
