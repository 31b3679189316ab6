//! The outside security probe's finding on sign-in, as tests of the real
//! binary: a flood of wrong passwords must cost little CPU and memory, a
//! viewer's sign-in buys no guesses at an operator, and a user name cannot
//! forge log lines. (Split from `security.rs` along this seam.)

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `canary` binary serving `config`, its log going to `log`.
struct ServedBinary {
    child: std::process::Child,
    console: SocketAddr,
    /// Its standard output, kept open: a server whose stdout is gone dies
    /// on its next line there.
    _stdout: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl ServedBinary {
    fn start(config: &std::path::Path, log: &std::path::Path) -> ServedBinary {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_canary"))
            .args(["serve", "--config"])
            .arg(config)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let console = lines.next().unwrap().unwrap();
        let console = console
            .trim_start_matches("canary: console at http://")
            .trim_end_matches("/admin/canary/")
            .parse()
            .unwrap();
        let proxy = lines.next().unwrap().unwrap();
        assert!(proxy.starts_with("canary: proxy at "), "{proxy}");
        ServedBinary {
            child,
            console,
            _stdout: lines,
        }
    }

    /// A figure from `/proc/<pid>/status`, such as `VmRSS` or `VmHWM` (the peak), in KiB.
    fn memory_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{field}:")))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

impl Drop for ServedBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Signs in as `user` from the loopback address `source`; the status code.
async fn sign_in(console: SocketAddr, source: std::net::IpAddr, user: &str, password: &str) -> u16 {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let mut stream = socket.connect(console).await.unwrap();
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let request = format!(
        "POST /admin/canary/login HTTP/1.1\r\nHost: {console}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    std::str::from_utf8(&answer[9..12])
        .unwrap()
        .parse()
        .unwrap()
}

/// A config with logins for olga (operator) and vera (viewer), and the
/// paths of it and of the server's log.
fn auth_config(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let hash =
        |password: &str| canary_server::adapters::credentials::hash_password(password).unwrap();
    let text = format!(
        r#"
server: {{ admin_listen: "127.0.0.1:0", proxy_listen: "127.0.0.1:0", data_dir: "{data}" }}
upstreams:
  production: {{ url: "http://127.0.0.1:9" }}
  canary: {{ url: "http://127.0.0.1:9" }}
canary:
  auto_progression: {{ enabled: true, wait_time: "24h", thresholds: {{ max_latency: "1000ms", min_success_rate: 0.85, max_error_rate: 0.15 }} }}
  traffic_steps: [5, 25, 50, 100]
auth:
  users:
    - {{ name: olga, role: operator, password_hash: "{olga}" }}
    - {{ name: vera, role: viewer, password_hash: "{vera}" }}
"#,
        data = dir.join("data").display(),
        olga = hash("operator-pass-2"),
        vera = hash("viewer-pass-1"),
    );
    let config = dir.join("canary-config.yaml");
    std::fs::write(&config, text).unwrap();
    (config, dir.join("canary.log"))
}

fn loopback(a: u8, b: u8, c: u8) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, a, b, c))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_wrong_passwords_verifies_few_and_keeps_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let (config, log) = auth_config(dir.path());
    let served = ServedBinary::start(&config, &log);
    let console = served.console;
    // Where it started: once its start-up allocations are done.
    let mut started_kib = served.memory_kib("VmRSS");
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now_kib = served.memory_kib("VmRSS");
        let settled = now_kib.abs_diff(started_kib) < 512;
        started_kib = now_kib;
        if settled {
            break;
        }
    }

    // 200 at once from one address: only the free failures (and the one
    // that starts the lockout) reach argon2.
    let attempts = (0..200).map(|index| {
        tokio::spawn(async move {
            sign_in(
                console,
                loopback(0, 0, 3),
                "olga",
                &format!("guess-{index}"),
            )
            .await
        })
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    // Six in the first second, and at most one more as each short lockout
    // (1 s, 2 s) ends while the rest are still arriving.
    let verified = statuses.iter().filter(|status| **status == 401).count();
    let refused = statuses.iter().filter(|status| **status == 429).count();
    assert!(
        (6..=8).contains(&verified),
        "{verified} verified: {statuses:?}"
    );
    assert_eq!(verified + refused, 200, "{statuses:?}");

    // 200 at once from 200 addresses: each is a first try, so the bound on
    // verifications at once is what keeps memory in check.
    let attempts = (0..200_u8).map(|index| {
        tokio::spawn(
            async move { sign_in(console, loopback(0, 1, index + 1), "olga", "guess").await },
        )
    });
    let statuses: Vec<u16> = futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert!(
        statuses.iter().all(|status| [401, 429].contains(status)),
        "{statuses:?}"
    );
    let verified = statuses.iter().filter(|status| **status == 401).count();
    assert!(verified >= 2, "some were verified: {statuses:?}");

    let peak_kib = served.memory_kib("VmHWM");
    let grew_mib = peak_kib.saturating_sub(started_kib) / 1024;
    eprintln!(
        "sign-in flood: {} MiB at start, peak {grew_mib} MiB above",
        started_kib / 1024
    );
    assert!(
        grew_mib <= 50,
        "memory peaked {grew_mib} MiB above the {} MiB at start",
        started_kib / 1024
    );
    // Still answering, and the right password still works from elsewhere.
    assert_eq!(
        sign_in(console, loopback(0, 2, 1), "olga", "operator-pass-2").await,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_as_a_viewer_buys_no_more_guesses_at_an_operator() {
    let dir = tempfile::tempdir().unwrap();
    let (config, log) = auth_config(dir.path());
    let served = ServedBinary::start(&config, &log);
    let source = loopback(0, 0, 4);
    let mut seen = Vec::new();
    for cycle in 0..3 {
        for guess in 0..5 {
            seen.push(sign_in(served.console, source, "olga", &format!("g{cycle}{guess}")).await);
        }
        assert_eq!(
            sign_in(served.console, source, "vera", "viewer-pass-1").await,
            200
        );
    }
    let refused = seen.iter().filter(|status| **status == 429).count();
    assert!(
        refused >= 8,
        "only {refused} of 15 guesses refused: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_name_cannot_forge_log_lines_or_write_terminal_escapes() {
    let dir = tempfile::tempdir().unwrap();
    let (config, log) = auth_config(dir.path());
    let served = ServedBinary::start(&config, &log);
    let forged = "x\n2026-01-01T00:00:00.000000Z  INFO canary: FORGED LINE\u{1b}[31m";
    assert_eq!(
        sign_in(served.console, loopback(0, 0, 5), forged, "x").await,
        401
    );
    let long = "y".repeat(10_000);
    assert_eq!(
        sign_in(served.console, loopback(0, 0, 5), &long, "x").await,
        401
    );
    let text = crate::support::eventually("the failed sign-ins in the log", async || {
        let text = std::fs::read_to_string(&log).unwrap();
        (text.matches("login_failed").count() >= 2).then_some(text)
    })
    .await;
    assert!(
        !text
            .lines()
            .any(|line| line.starts_with("2026-01-01T00:00:00.000000Z")),
        "a forged line: {text}"
    );
    assert!(!text.contains('\u{1b}'), "a raw escape: {text}");
    assert!(
        !text.contains(&"y".repeat(100)),
        "an unbounded name: {text}"
    );
    drop(served);

    // The audit trail holds the escaped, bounded name too.
    let store =
        canary_server::adapters::store::SqliteStore::open(&dir.path().join("data")).unwrap();
    let page = store
        .audit(&canary_server::adapters::store::AuditQuery {
            before: None,
            limit: 10,
            actor: None,
            action: Some("login_failed".to_owned()),
        })
        .unwrap();
    let actors: Vec<&str> = page
        .events
        .iter()
        .map(|event| event.actor.as_str())
        .collect();
    assert!(
        actors
            .iter()
            .all(|actor| !actor.contains('\n') && !actor.contains('\u{1b}')),
        "{actors:?}"
    );
    assert!(
        actors.contains(&format!("{}…", "y".repeat(64)).as_str()),
        "{actors:?}"
    );
}
