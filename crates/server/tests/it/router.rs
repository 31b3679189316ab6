//! HAProxy as the router, for real: Debian's HAProxy started on loopback
//! in front of two fake upstreams, steered through its Runtime API and
//! measured through its access log.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use canary_server::config::{RouterConfig, RouterKind, RuntimeSocket};
use canary_shared::{CanaryShare, Command as Action, Phase};

use crate::support::{FakeUpstream, TestApp, eventually, http_get};

/// HAProxy in the foreground, stopped when dropped.
struct Haproxy {
    child: Child,
    socket: std::path::PathBuf,
    front: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The first fenced block of `lang` in `docs/<page>`: what the tests run
/// is what the page says.
pub(crate) fn doc_block(page: &str, lang: &str) -> String {
    doc_block_with(page, lang, "")
}

/// The first fenced block of `lang` in `docs/<page>` that holds `needle`.
pub(crate) fn doc_block_with(page: &str, lang: &str, needle: &str) -> String {
    let path = format!("{}/../../docs/{page}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
    text.split(&format!("```{lang}\n"))
        .skip(1)
        .filter_map(|rest| rest.split("```").next())
        .find(|block| block.contains(needle))
        .unwrap_or_else(|| panic!("{path} has no {lang} block with {needle:?}"))
        .to_owned()
}

/// The snippet of `docs/router-haproxy.md`, moved onto loopback: its
/// stats socket into `dir`, its frontend on `front`, its servers at the
/// fake upstreams, its log to `log_port`.
fn haproxy_config(dir: &Path, front: u16, production: &str, canary: &str, log_port: u16) -> String {
    let snippet = doc_block("router-haproxy.md", "haproxy");
    snippet
        .replace(
            "/run/haproxy/admin.sock",
            &dir.join("admin.sock").to_string_lossy(),
        )
        .replace("127.0.0.1:5140", &format!("127.0.0.1:{log_port}"))
        .replace("bind :80", &format!("bind 127.0.0.1:{front}"))
        .replace("10.0.0.11:8080", production.trim_start_matches("http://"))
        .replace("10.0.0.12:8080", canary.trim_start_matches("http://"))
}

fn start_haproxy(production: &FakeUpstream, canary: &FakeUpstream, log_port: u16) -> Haproxy {
    let dir = tempfile::tempdir().unwrap();
    let front = free_tcp_port();
    let config = dir.path().join("haproxy.cfg");
    std::fs::write(
        &config,
        haproxy_config(
            dir.path(),
            front,
            &production.url(),
            &canary.url(),
            log_port,
        ),
    )
    .unwrap();
    let child = Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("HAProxy is installed (cargo xtask setup)");
    let socket = dir.path().join("admin.sock");
    for _ in 0..200 {
        if socket.exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    // Built first, so HAProxy is stopped even when it did not start right.
    let haproxy = Haproxy {
        child,
        socket,
        front: std::net::SocketAddr::from(([127, 0, 0, 1], front)),
        _dir: dir,
    };
    assert!(haproxy.socket.exists(), "HAProxy did not start");
    haproxy
}

/// The canary side of `docs/router-haproxy.md`, with the socket and the
/// log listener moved like HAProxy's.
fn router_config(haproxy: &Haproxy, log_port: u16) -> RouterConfig {
    let yaml = doc_block("router-haproxy.md", "yaml");
    let yaml = yaml
        .replace("/run/haproxy/admin.sock", &haproxy.socket.to_string_lossy())
        .replace("127.0.0.1:5140", &format!("127.0.0.1:{log_port}"));
    let seed = include_str!("../../../../canary-config.yaml");
    let seed = &seed[seed.find("\ncanary:\n").unwrap() + 1..];
    let config = canary_server::config::Config::from_yaml(&format!("{yaml}{seed}"))
        .unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.router.kind, RouterKind::Haproxy);
    config.router
}

/// How many of `count` requests through HAProxy the canary answered.
pub(crate) async fn canary_answers(front: std::net::SocketAddr, count: usize) -> usize {
    let mut canary = 0;
    for _ in 0..count {
        let (_, headers, _) = http_get(&format!("http://{front}/"), "*/*").await;
        if headers
            .get("x-upstream")
            .is_some_and(|name| name == "canary")
        {
            canary += 1;
        }
    }
    canary
}

/// One Runtime API command, as an operator would send it behind canary's back.
async fn runtime(haproxy: &Haproxy, command: &str) -> String {
    canary_server::adapters::router::haproxy::exchange(
        &RuntimeSocket::Unix(haproxy.socket.clone()),
        command,
    )
    .await
    .unwrap()
}

/// A rollout at `percent` through HAProxy, confirmed, with the router's
/// config adjusted by `adjust` first.
struct ThroughHaproxy {
    production: FakeUpstream,
    canary: FakeUpstream,
    haproxy: Haproxy,
    app: TestApp,
}

/// The test server with its upstreams at the fake ones and `router` as its router.
pub(crate) async fn app_with_router(
    production: &FakeUpstream,
    canary: &FakeUpstream,
    router: RouterConfig,
) -> TestApp {
    TestApp::start_with(|config| {
        config.upstreams.production.url = production.url().parse().unwrap();
        config.upstreams.canary.url = canary.url().parse().unwrap();
        config.router = router;
    })
    .await
}

async fn through_haproxy(percent: f64, adjust: impl FnOnce(&mut RouterConfig)) -> ThroughHaproxy {
    let production = FakeUpstream::named("production").await;
    let canary = FakeUpstream::named("canary").await;
    let log_port = free_udp_port();
    let haproxy = start_haproxy(&production, &canary, log_port);
    let mut router = router_config(&haproxy, log_port);
    adjust(&mut router);
    let app = app_with_router(&production, &canary, router).await;
    crate::promotion::start(&app, "v2.7.0", percent).await;
    crate::support::until_confirmed(&app, None).await;
    ThroughHaproxy {
        production,
        canary,
        haproxy,
        app,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_through_haproxy_is_split_confirmed_measured_kept_and_rolled_back() {
    let ThroughHaproxy {
        production: _production,
        canary,
        haproxy,
        app,
    } = through_haproxy(25.0, |_| {}).await;
    let confirmed = app.controller.state.borrow().clone();
    assert_eq!(confirmed.router.kind, "haproxy");
    assert_eq!(confirmed.router.effective_percent.percent(), 25.0);
    assert_eq!(
        runtime(&haproxy, "get weight app/canary")
            .await
            .split_whitespace()
            .next(),
        Some("1")
    );
    assert_eq!(
        runtime(&haproxy, "get weight app/prod")
            .await
            .split_whitespace()
            .next(),
        Some("3")
    );

    // The split the backends see matches the effective share.
    let requests = 4000;
    let to_canary = canary_answers(haproxy.front, requests).await;
    let measured = to_canary as f64 / requests as f64 * 100.0;
    assert!((measured - 25.0).abs() <= 1.0, "{measured} % to the canary");

    // Every request is measured through HAProxy's access log, per side.
    let snapshot = app
        .metrics_where(|metrics| {
            metrics.canary.last_1m.requests >= to_canary as u64
                && metrics.production.last_1m.requests >= (requests - to_canary) as u64
        })
        .await;
    assert_eq!(snapshot.canary.last_1m.requests, to_canary as u64);

    // At 5 % and 50 % too, once HAProxy has confirmed each.
    for percent in [5.0, 50.0, 25.0] {
        let share = CanaryShare::from_percent(percent).unwrap();
        app.controller
            .command("ops".to_owned(), Action::Scale { percent: share }, None)
            .await
            .unwrap();
        crate::support::until_confirmed(&app, Some(share)).await;
        if percent != 25.0 {
            let to_canary = canary_answers(haproxy.front, requests).await;
            let measured = to_canary as f64 / requests as f64 * 100.0;
            assert!(
                (measured - percent).abs() <= 1.0,
                "{measured} % to the canary at {percent} %"
            );
        }
    }

    // Weights changed behind canary's back are found, audited and set again.
    assert_eq!(
        runtime(&haproxy, "set server app/canary weight 100")
            .await
            .trim(),
        ""
    );
    let trail = eventually("the drift to be corrected", async || {
        let (_, _, body) = http_get(
            &app.url("/admin/canary/audit?action=router_drift"),
            "application/json",
        )
        .await;
        let page: canary_shared::AuditPage = serde_json::from_str(&body).unwrap();
        let weight = runtime(&haproxy, "get weight app/canary").await;
        (!page.events.is_empty() && weight.starts_with("1 ")).then_some(page)
    })
    .await;
    assert_eq!(
        app.controller.state.borrow().phase,
        Phase::Progressing,
        "router.on_drift: correct sets it again and goes on"
    );
    let reason = trail.events[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("has 97.09 % to the canary (asked for 25 %)"),
        "{reason}"
    );

    // A canary failing every request is rolled back through HAProxy.
    // (Until the failures outweigh the last minute's successes.)
    canary.set_status(500);
    for _ in 0..40 {
        if app.controller.state.borrow().phase == Phase::RolledBack {
            break;
        }
        let _ = canary_answers(haproxy.front, 500).await;
    }
    app.wait_for_phase(Phase::RolledBack).await;
    crate::support::until_confirmed(&app, Some(CanaryShare::ZERO)).await;
    assert_eq!(
        canary_answers(haproxy.front, 200).await,
        0,
        "the backends see 0 % afterwards"
    );
    // At 0 % the canary's server is in maintenance, so not even a client
    // that persistence sends there is admitted.
    let stat = runtime(&haproxy, "show stat app 4 -1").await;
    let canary_line = stat
        .lines()
        .find(|line| line.starts_with("app,canary,"))
        .unwrap_or_else(|| panic!("{stat}"));
    assert!(canary_line.contains(",MAINT,"), "{canary_line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_haproxy_gone_the_step_holds_and_says_why_then_the_split_is_set_again() {
    let ThroughHaproxy {
        production: _production,
        canary: _canary,
        mut haproxy,
        app,
    } = through_haproxy(50.0, |_| {}).await;

    // The router goes away: the split is no longer confirmed, and the state says why.
    let _ = haproxy.child.kill();
    let _ = haproxy.child.wait();
    let _ = std::fs::remove_file(&haproxy.socket);
    let down = eventually("the router to be reported down", async || {
        let state = app.controller.state.borrow().clone();
        (!state.router.confirmed).then_some(state)
    })
    .await;
    let detail = down.router.detail.unwrap_or_default();
    assert!(detail.contains("cannot reach the stats socket"), "{detail}");
    assert_eq!(
        down.phase,
        Phase::Progressing,
        "the rollout holds; nothing rolls back"
    );

    // It comes back with the config's weights (a restart): canary sets the split again.
    haproxy.start_again(&app).await;
}

impl Haproxy {
    /// Starts this HAProxy again on its config file (after a kill), and
    /// waits until canary has set its split (1:1 or 1:3) there again.
    async fn start_again(&mut self, app: &TestApp) {
        let config = self._dir.path().join("haproxy.cfg");
        self.child = Command::new("haproxy")
            .args(["-db", "-f"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let socket = RuntimeSocket::Unix(self.socket.clone());
        eventually(
            "the split to be set again on the restarted HAProxy",
            async || {
                let weight = canary_server::adapters::router::haproxy::exchange(
                    &socket,
                    "get weight app/canary",
                )
                .await
                .ok()?;
                (weight.starts_with("1 ") && app.controller.state.borrow().router.confirmed)
                    .then_some(())
            },
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_canary_mid_rollout_sets_the_stored_share_again() {
    let ThroughHaproxy {
        production: _production,
        canary: _canary,
        haproxy,
        mut app,
    } = through_haproxy(25.0, |_| {}).await;
    app.shut_down().await;
    // While canary is down, someone puts the canary's weight up.
    assert_eq!(
        runtime(&haproxy, "set server app/canary weight 100")
            .await
            .trim(),
        ""
    );
    wait_until_free(app.config.router.haproxy.as_ref().unwrap().log_listen.0).await;
    app.restart().await;
    eventually("the stored 25 % to be set again", async || {
        let state = app.controller.state.borrow().clone();
        let weight = runtime(&haproxy, "get weight app/canary").await;
        (state.phase == Phase::Progressing
            && state.router.confirmed
            && state.router.effective_percent.percent() == 25.0
            && weight.starts_with("1 "))
        .then_some(())
    })
    .await;
    let requests = 400;
    let to_canary = canary_answers(haproxy.front, requests).await;
    let measured = to_canary as f64 / requests as f64 * 100.0;
    assert!(
        (measured - 25.0).abs() <= 1.0,
        "{measured} % to the canary after the restart"
    );
}

/// Waits until the stopped server's log listener is free for the next one.
pub(crate) async fn wait_until_free(address: std::net::SocketAddr) {
    eventually("the log listener to be released", async || {
        std::net::UdpSocket::bind(address).ok().map(drop)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_stat_finds_a_server_haproxy_sends_nothing_and_log_lines_that_go_missing() {
    let ThroughHaproxy {
        production: _production,
        canary: _canary,
        mut haproxy,
        app,
    } = through_haproxy(50.0, |_| {}).await;

    // The canary's server in maintenance takes none of its share: the
    // weights are right, but the split is not in force.
    assert_eq!(
        runtime(&haproxy, "set server app/canary state maint")
            .await
            .trim(),
        ""
    );
    let waiting = eventually("the server's state to show", async || {
        let router = app.controller.state.borrow().router.clone();
        router
            .instances
            .first()?
            .waiting
            .clone()
            .filter(|_| !router.confirmed)
    })
    .await;
    assert_eq!(
        waiting,
        "server app/canary is MAINT in HAProxy: it gets none of its share"
    );
    assert_eq!(
        runtime(&haproxy, "set server app/canary state ready")
            .await
            .trim(),
        ""
    );
    eventually("the split to count again", async || {
        app.controller.state.borrow().router.confirmed.then_some(())
    })
    .await;
    assert_eq!(app.controller.state.borrow().router.measurement, None);

    // HAProxy restarted logging one request in two: its counters show
    // what the log misses.
    let _ = haproxy.child.kill();
    let _ = haproxy.child.wait();
    let config = haproxy._dir.path().join("haproxy.cfg");
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains(" local0"), "{text}");
    std::fs::write(&config, text.replacen(" local0", " sample 1:2 local0", 1)).unwrap();
    haproxy.start_again(&app).await;
    let note = crate::support::eventually_saying(
        Duration::from_secs(40),
        "a note on the lost log lines",
        async || {
            let router = app.controller.state.borrow().router.clone();
            if let Some(note) = router.measurement {
                return Ok(note);
            }
            let _ = canary_answers(haproxy.front, 100).await;
            Err(format!("{router:?}"))
        },
    )
    .await;
    assert!(note.contains("its access log brought"), "{note}");
    assert!(note.contains("log lines are being lost"), "{note}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_refuses_a_socket_that_is_not_haproxy_and_a_server_haproxy_does_not_know() {
    let production = FakeUpstream::named("production").await;
    let canary = FakeUpstream::named("canary").await;
    let log_port = free_udp_port();
    let haproxy = start_haproxy(&production, &canary, log_port);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("canary-config.yaml");
    let yaml = doc_block("router-haproxy.md", "yaml");
    let yaml = yaml
        .replace("/run/haproxy/admin.sock", &haproxy.socket.to_string_lossy())
        .replace("127.0.0.1:5140", &format!("127.0.0.1:{log_port}"));
    let seed = include_str!("../../../../canary-config.yaml");
    let seed = &seed[seed.find("\ncanary:\n").unwrap() + 1..];
    let check = |text: String| {
        std::fs::write(&file, text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_canary"))
            .args(["check", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, stderr) = check(format!("{yaml}{seed}"));
    assert!(ok, "{stderr}");
    let (ok, stderr) = check(format!(
        "{}{seed}",
        yaml.replace("canary: canary }", "canary: nosuch }")
    ));
    assert!(!ok);
    assert!(stderr.contains("router.haproxy.instances"), "{stderr}");
    assert!(
        stderr.contains("HAProxy does not know the server app/nosuch"),
        "{stderr}"
    );
    let not_haproxy = format!(
        "{}{seed}",
        yaml.replace(
            &format!("\"{}\"", haproxy.socket.to_string_lossy()),
            &format!("\"{}\"", production.addr)
        )
    );
    let (ok, stderr) = check(not_haproxy);
    assert!(!ok);
    assert!(stderr.contains("not an HAProxy stats socket"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_garbage_on_the_log_listener_is_counted_and_changes_nothing() {
    let log_port = free_udp_port();
    let dir = tempfile::tempdir().unwrap();
    let app = TestApp::start_with(|config| {
        config.router = RouterConfig {
            kind: RouterKind::Haproxy,
            haproxy: Some(canary_server::config::HaproxyConfig {
                instances: vec![RuntimeSocket::Unix(dir.path().join("absent.sock"))],
                backend: canary_server::config::ProxyName("app".to_owned()),
                servers: canary_server::config::HaproxyServers {
                    production: canary_server::config::ProxyName("prod".to_owned()),
                    canary: canary_server::config::ProxyName("canary".to_owned()),
                },
                log_listen: canary_server::config::LoopbackAddr(std::net::SocketAddr::from((
                    [127, 0, 0, 1],
                    log_port,
                ))),
            }),
            nginx: None,
            gateway_api: None,
            on_drift: canary_server::config::OnDrift::Correct,
        };
    })
    .await;
    let before = app.controller.state.borrow().clone();
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for index in 0..3000 {
        let line = match index % 3 {
            0 => format!("<134>haproxy[1]: GET /{index} HTTP/1.1 garbage"),
            1 => "<134>haproxy[1]: canary1 app someone-else 200 4 ----".to_owned(),
            _ => "\u{0}\u{1}canary1 app prod two-hundred 4 ----".to_owned(),
        };
        sender
            .send_to(line.as_bytes(), ("127.0.0.1", log_port))
            .unwrap();
        if index % 200 == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let exposition = eventually("the lines to be counted", async || {
        let (_, _, body) = http_get(&app.url("/metrics"), "text/plain").await;
        let unusable = body
            .lines()
            .find_map(|line| {
                line.strip_prefix("canary_router_log_lines_total{result=\"unusable\"} ")
            })
            .and_then(|count| count.parse::<f64>().ok())?;
        (unusable >= 2500.0).then_some(body)
    })
    .await;
    assert!(
        exposition.contains("canary_router_log_lines_total{result=\"recorded\"} 0"),
        "nothing guessed"
    );
    let after = app.controller.state.borrow().clone();
    assert_eq!(after.phase, before.phase);
    assert_eq!(after.production.request_count, 0, "no request was made up");
    assert_eq!(after.canary.request_count, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_drift_pause_a_split_changed_behind_canarys_back_pauses_the_rollout() {
    let ThroughHaproxy {
        production: _production,
        canary: _canary,
        haproxy,
        app,
    } = through_haproxy(25.0, |router| {
        router.on_drift = canary_server::config::OnDrift::Pause
    })
    .await;
    assert_eq!(
        runtime(&haproxy, "set server app/prod weight 0")
            .await
            .trim(),
        ""
    );
    let paused = app.wait_for_phase(Phase::Paused).await;
    assert_eq!(paused.traffic.canary().percent(), 25.0, "the share stays");
    eventually("the split to be set again", async || {
        let weight = runtime(&haproxy, "get weight app/prod").await;
        weight.starts_with("3 ").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_haproxy_instances_a_split_counts_only_when_both_have_it() {
    let production = FakeUpstream::named("production").await;
    let canary = FakeUpstream::named("canary").await;
    let log_port = free_udp_port();
    let first = start_haproxy(&production, &canary, log_port);
    let mut second = start_haproxy(&production, &canary, log_port);
    let mut router = router_config(&first, log_port);
    if let Some(haproxy) = router.haproxy.as_mut() {
        haproxy
            .instances
            .push(RuntimeSocket::Unix(second.socket.clone()));
    }
    let app = app_with_router(&production, &canary, router).await;
    crate::promotion::start(&app, "v2.7.0", 5.0).await;
    let confirmed = crate::support::until_confirmed(&app, None).await;
    assert_eq!(confirmed.router.instances.len(), 2);
    for haproxy in [&first, &second] {
        assert_eq!(
            runtime(haproxy, "get weight app/canary")
                .await
                .split_whitespace()
                .next(),
            Some("1"),
            "19:1 on every instance"
        );
    }

    // One instance away: a scale is written to the other, but not confirmed.
    let _ = second.child.kill();
    let _ = second.child.wait();
    let _ = std::fs::remove_file(&second.socket);
    app.controller
        .command(
            "ops".to_owned(),
            Action::Scale {
                percent: CanaryShare::from_percent(50.0).unwrap(),
            },
            None,
        )
        .await
        .unwrap();
    let held = eventually("the missing instance to hold the change", async || {
        let state = app.controller.state.borrow().clone();
        (state.router.instances.len() == 2
            && state.router.instances[1].error.is_some()
            && state.router.instances[0]
                .canary_percent
                .map(|share| share.percent())
                == Some(50.0))
        .then_some(state)
    })
    .await;
    assert!(!held.router.confirmed, "{:?}", held.router);
    // The step holds, and the status line says why.
    eventually("the status line to say why the step holds", async || {
        let summary = app.controller.state.borrow().summary.clone();
        summary
            .contains("the router has not applied the split")
            .then_some(())
    })
    .await;
}
