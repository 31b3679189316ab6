//! The `canary` binary itself: start-up errors, addresses, and signals.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{Served, actions_oldest_first};

fn canary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_canary"))
}

#[test]
fn a_broken_config_stops_start_up_with_file_line_column_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canary-config.yaml");
    let shipped = include_str!("../../../../canary-config.yaml");
    std::fs::write(
        &path,
        shipped.replace("[5, 25, 50, 100]", "[5, 50, 25, 100]"),
    )
    .unwrap();
    let output = canary()
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = shipped
        .lines()
        .position(|line| line.contains("traffic_steps"))
        .unwrap()
        + 1;
    let expected = format!("{}:{line}:", path.display());
    assert!(stderr.contains(&expected), "no {expected} in: {stderr}");
    assert!(
        stderr.contains("canary.traffic_steps: steps must be strictly increasing"),
        "{stderr}"
    );
}

#[test]
fn serve_prints_its_addresses_survives_sighup_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("canary-config.yaml");
    std::fs::write(&config, include_str!("../../../../canary-config.yaml")).unwrap();
    // Killed if an assertion fails first: a failing test leaves no server.
    let mut child = Killed(
        canary()
            .args([
                "serve",
                "--admin-listen",
                "127.0.0.1:0",
                "--proxy-listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&config)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let console = lines.next().unwrap().unwrap();
    let proxy = lines.next().unwrap().unwrap();
    assert!(
        console.starts_with("canary: console at http://127.0.0.1:"),
        "{console}"
    );
    assert!(console.ends_with("/admin/canary/"), "{console}");
    assert!(
        proxy.starts_with("canary: proxy at http://127.0.0.1:"),
        "{proxy}"
    );

    // Transparent huge pages are off for the server: with them its
    // memory doubled under load (BENCHMARKS.md, seventeenth session).
    // Kernels before 5.0 do not show the setting.
    let proc_status = std::fs::read_to_string(format!("/proc/{}/status", child.0.id())).unwrap();
    if let Some(thp) = proc_status
        .lines()
        .find(|line| line.starts_with("THP_enabled:"))
    {
        assert_eq!(thp.split_whitespace().nth(1), Some("0"), "{thp}");
    }

    // `systemctl reload` sends SIGHUP: without proxy.tls there is nothing
    // to reload, and the server must not take it as its end.
    let status = Command::new("kill")
        .args(["-HUP", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "SIGHUP ended the server"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Up to 20 s, polled every 50 ms.
    for attempt in 0.. {
        if let Some(status) = child.0.try_wait().unwrap() {
            assert!(status.success(), "canary exited with {status} on SIGTERM");
            break;
        }
        if attempt == 400 {
            child.0.kill().unwrap();
            panic!("canary did not stop within 20 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts a canary at `percent` through the REST API of a served binary.
async fn start_served(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<hyper::body::Bytes>,
    >,
    served: &Served,
    percent: u8,
) {
    let body = format!(r#"{{"image_tag":"v2.7.0","traffic_percent":{percent}}}"#);
    let started =
        crate::support::post_json(client, &format!("{}start", served.console), &body).await;
    assert_eq!(started.0, 200, "{}", started.1);
}

fn serve(config: &std::path::Path) -> Served {
    crate::support::serve_binary(config)
}

fn crash_config(dir: &std::path::Path, production: &str, canary: &str) -> std::path::PathBuf {
    crate::support::binary_config(
        dir,
        production,
        canary,
        r#"proxy: { stickiness: { mode: none } }
canary:
  auto_progression: { enabled: true, wait_time: "24h", thresholds: { max_latency: "1000ms", min_success_rate: 0.85, max_error_rate: 0.15 } }
  traffic_steps: [5, 25, 50, 100]
"#,
    )
}

/// Both upstreams and a data directory holding `crash_config` with `extra`
/// appended (indented lines land under `canary:`, the config's last section),
/// for the tests that run the binary.
async fn crash_setup(extra: &str) -> ([crate::support::FakeUpstream; 2], tempfile::TempDir) {
    let production = crate::support::FakeUpstream::named("production").await;
    let canary_side = crate::support::FakeUpstream::named("canary").await;
    let dir = tempfile::tempdir().unwrap();
    let config = crash_config(dir.path(), &production.url(), &canary_side.url());
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(extra);
    std::fs::write(&config, text).unwrap();
    ([production, canary_side], dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_resumes_the_statistical_judges_evidence() {
    use canary_shared::CanaryState;

    // Without auto-rollback a chance breach on a loaded machine pauses the
    // rollout instead of ending it, and a paused rollout is still judged:
    // the test is about resuming evidence, not about what the judge decides.
    let (_upstreams, dir) =
        crash_setup("  judge: { mode: enforce }\n  auto_rollback: { enabled: false }\n").await;
    let config = dir.path().join("canary-config.yaml");
    let client = crate::support::json_client();
    let status = async |console: &str| -> CanaryState {
        let (_, _, body) =
            crate::support::http_get(&format!("{console}status"), "application/json").await;
        serde_json::from_str(&body).unwrap()
    };

    let mut first = serve(&config);
    start_served(&client, &first, 50).await;
    let traffic = crate::support::traffic_to(first.proxy.clone());
    // The judge is saved every 10 judged seconds: wait for more than that.
    let before = crate::support::eventually_saying(
        Duration::from_secs(60),
        "12 judged seconds",
        async || {
            let state = status(&first.console).await;
            match state.judge.iter().find(|metric| metric.metric == "latency") {
                Some(latency) if latency.history.last().is_some_and(|point| point.secs >= 12) => {
                    Ok(latency.clone())
                }
                _ => Err(format!(
                    "{:?} ({}), {:?}",
                    state.phase, state.summary, state.judge
                )),
            }
        },
    )
    .await;
    traffic.abort();
    assert!(
        before.samples > 0,
        "latencies were compared: {}",
        before.words
    );
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);

    // No traffic after the restart: whatever evidence it shows was resumed.
    let again = serve(&config);
    let resumed = crate::support::eventually("the resumed judge", async || {
        let state = status(&again.console).await;
        state
            .judge
            .into_iter()
            .find(|metric| metric.metric == "latency")
    })
    .await;
    assert!(
        resumed.samples > 0 && resumed.samples <= before.samples,
        "resumed from the last save: {} compared, {} before the kill",
        resumed.samples,
        before.samples
    );
    assert_eq!(
        resumed.history[0].secs, 1,
        "its chart still starts at the rollout's start"
    );
    assert!(resumed.history.last().unwrap().secs >= 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_sessions_survive_a_restart_but_a_signed_out_one_stays_out() {
    use axum::http::Method;

    let password = "correct horse battery staple";
    let hash = canary_server::adapters::credentials::hash_password(password).unwrap();
    let (_upstreams, dir) = crash_setup(&format!(
        "auth:\n  users: [{{ name: oscar, role: operator, password_hash: \"{hash}\" }}]\n"
    ))
    .await;
    let config = dir.path().join("canary-config.yaml");
    let client = crate::support::json_client();
    let send = async |method: Method, url: String, cookie: Option<&str>, body: &str| {
        // As the console's own page sends it: same origin.
        let origin = url.split("/admin").next().unwrap().to_owned();
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(url)
            .header("content-type", "application/json")
            .header("origin", origin);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let request = request
            .body(http_body_util::Full::new(hyper::body::Bytes::from(
                body.to_owned(),
            )))
            .unwrap();
        crate::support::send(client.clone(), request).await
    };
    let login = format!(r#"{{"user":"oscar","password":"{password}"}}"#);
    let sign_in = async |console: &str| -> String {
        let (code, headers, body) =
            send(Method::POST, format!("{console}login"), None, &login).await;
        assert_eq!(code, 200, "{body}");
        let set_cookie = headers["set-cookie"].to_str().unwrap();
        set_cookie.split(';').next().unwrap().to_owned()
    };

    let mut first = serve(&config);
    let kept = sign_in(&first.console).await;
    let signed_out = sign_in(&first.console).await;
    let (code, _, _) = send(
        Method::POST,
        format!("{}logout", first.console),
        Some(&signed_out),
        "",
    )
    .await;
    assert_eq!(code, 204);
    // The kept session is used once more, then the server is killed.
    let (code, _, _) = send(Method::GET, format!("{}me", first.console), Some(&kept), "").await;
    assert_eq!(code, 200);
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);

    let again = serve(&config);
    let (code, _, body) = send(Method::GET, format!("{}me", again.console), Some(&kept), "").await;
    assert_eq!(code, 200, "still signed in: {body}");
    let me: canary_shared::Me = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (me.name.as_str(), me.role),
        ("oscar", canary_shared::Role::Operator)
    );
    let (code, _, _) = send(
        Method::GET,
        format!("{}me", again.console),
        Some(&signed_out),
        "",
    )
    .await;
    assert_eq!(code, 401, "signing out is for good");
    // Nothing in the data directory can be replayed as a cookie.
    let secret = kept.split_once('=').unwrap().1;
    let database = std::fs::read(dir.path().join("data").join("canary.db")).unwrap_or_default();
    let wal = std::fs::read(dir.path().join("data").join("canary.db-wal")).unwrap_or_default();
    for bytes in [database, wal] {
        assert!(
            !bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes()),
            "the session secret is stored as it is"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_comes_back_where_it_was_and_a_second_one_is_refused() {
    use canary_shared::{AuditPage, CanaryState, Phase};

    let (_upstreams, dir) = crash_setup("").await;
    let config = dir.path().join("canary-config.yaml");
    let client = crate::support::json_client();

    let mut first = serve(&config);
    start_served(&client, &first, 25).await;
    let state = crate::support::eventually("the canary to progress", async || {
        let (_, _, body) =
            crate::support::http_get(&format!("{}status", first.console), "application/json").await;
        let state: CanaryState = serde_json::from_str(&body).unwrap();
        (state.phase == Phase::Progressing).then_some(state)
    })
    .await;
    assert_eq!(state.traffic.canary().percent(), 25.0);

    // A second server on the same data directory refuses to start.
    let second = canary()
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!second.status.success());
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        stderr.contains("another canary server is using the data directory"),
        "{stderr}"
    );

    let history_url = format!("{}metrics/history?side=production", first.console);
    let kept_before = crate::support::eventually("a second of metrics to be stored", async || {
        let (_, _, body) = crate::support::http_get(&history_url, "application/json").await;
        let samples: Vec<canary_shared::SecondSample> = serde_json::from_str(&body).unwrap();
        (!samples.is_empty()).then_some(samples)
    })
    .await;

    // SIGKILL: no chance to clean up.
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);

    let again = serve(&config);
    let (_, _, body) = crate::support::http_get(
        &format!("{}metrics/history?side=production", again.console),
        "application/json",
    )
    .await;
    let kept_after: Vec<canary_shared::SecondSample> = serde_json::from_str(&body).unwrap();
    assert!(
        kept_after.starts_with(&kept_before[..1]),
        "the charts' history survived the restart"
    );
    let (_, _, body) =
        crate::support::http_get(&format!("{}status", again.console), "application/json").await;
    let state: CanaryState = serde_json::from_str(&body).unwrap();
    assert_eq!(state.phase, Phase::Progressing);
    assert_eq!(state.traffic.canary().percent(), 25.0);
    assert_eq!(
        state.steps[3].status,
        canary_shared::StepStatus::InProgress,
        "the 25 % step"
    );

    // The proxy serves the recorded share from its first request.
    let n = 2000;
    let mut to_canary = 0;
    for _ in 0..n {
        let (_, _, body) = crate::support::http_get(&again.proxy, "*/*").await;
        if body == "canary" {
            to_canary += 1;
        }
    }
    let margin = 3.29 * (n as f64 * 0.25 * 0.75).sqrt();
    assert!(
        (f64::from(to_canary) - 500.0).abs() <= margin,
        "{to_canary} of {n} reached the canary"
    );

    let (_, _, body) = crate::support::http_get(
        &format!("{}audit?limit=100", again.console),
        "application/json",
    )
    .await;
    let page: AuditPage = serde_json::from_str(&body).unwrap();
    let seqs: Vec<u64> = page.events.iter().rev().map(|event| event.seq).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    let actions = actions_oldest_first(&page);
    assert_eq!(actions, ["start", "deployed", "healthy", "recovered"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log_even_at_trace_level() {
    use axum::http::Method;

    let password = "the operator's secret password";
    let hash = canary_server::adapters::credentials::hash_password(password).unwrap();
    let (token, token_hash) = canary_server::adapters::credentials::new_token().unwrap();
    let (_upstreams, dir) = crash_setup(&format!(
        "auth:\n  users: [{{ name: oscar, role: operator, password_hash: \"{hash}\" }}]\n  tokens: [{{ name: bot, role: operator, secret_hash: \"{token_hash}\" }}]\n"
    ))
    .await;
    let config = dir.path().join("canary-config.yaml");
    let log_path = dir.path().join("canary.log");
    // Killed if an assertion fails first: a failing test leaves no server.
    let mut child = Killed(
        canary()
            .args(["serve", "--config"])
            .arg(&config)
            .env("CANARY_LOG", "trace")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let mut lines = BufReader::new(child.0.stdout.take().unwrap()).lines();
    let console = lines.next().unwrap().unwrap();
    let base = console
        .trim_start_matches("canary: console at ")
        .trim_end_matches('/')
        .to_owned();
    let client = crate::support::json_client();
    let send = async |method: Method, url: String, auth: Option<String>, body: String| {
        let mut request = hyper::Request::builder().method(method).uri(url);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let request = request
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(hyper::body::Bytes::from(body)))
            .unwrap();
        crate::support::send(client.clone(), request).await.0
    };
    let bearer = Some(format!("Bearer {token}"));
    assert_eq!(
        send(
            Method::GET,
            format!("{base}/status"),
            bearer.clone(),
            String::new()
        )
        .await,
        200
    );
    let start = r#"{"image_tag":"v2.7.0"}"#.to_owned();
    assert_eq!(
        send(Method::POST, format!("{base}/start"), bearer, start).await,
        200
    );
    let wrong_token = Some(format!("Bearer {token}x"));
    assert_eq!(
        send(
            Method::GET,
            format!("{base}/status"),
            wrong_token,
            String::new()
        )
        .await,
        401
    );
    let in_query = format!("{base}/status?access_token={token}");
    assert_eq!(send(Method::GET, in_query, None, String::new()).await, 400);
    for attempt in [password, "the operator's secret passwore"] {
        let body = format!(r#"{{"user":"oscar","password":"{attempt}"}}"#);
        send(Method::POST, format!("{base}/login"), None, body).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status();
    let _ = child.0.wait();
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("/admin/canary/status"),
        "trace logging was on: {log}"
    );
    for secret in [password, "secret passwore", &token[5..], &hash[30..]] {
        assert!(!log.contains(secret), "{secret:?} is in the log");
    }
}

#[tokio::test]
async fn a_backup_taken_while_serving_restores_the_rollout_and_its_audit_trail() {
    let app = crate::support::TestApp::start().await;
    app.start_canary().await;
    app.set_share(25.0).await;
    let copies = tempfile::tempdir().unwrap();
    let copy = copies.path().join("canary-backup.db");
    let backup = |to: &std::path::Path| {
        canary()
            .args(["backup", "--data-dir"])
            .arg(app.data.path())
            .arg("--to")
            .arg(to)
            .output()
            .unwrap()
    };
    let output = backup(&copy);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let again = backup(&copy);
    assert!(
        !again.status.success(),
        "an existing file is never overwritten"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists"));

    // Restored into an empty data dir, a server comes back where it was.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(&copy, restored.path().join("canary.db")).unwrap();
    let restored_path = restored.path().to_owned();
    let second = crate::support::TestApp::start_with(move |config| {
        config.server.data_dir = restored_path;
    })
    .await;
    let (_, _, body) =
        crate::support::http_get(&second.url("/admin/canary/status"), "application/json").await;
    let state: canary_shared::CanaryState = serde_json::from_str(&body).unwrap();
    assert_eq!(state.traffic.canary().percent(), 25.0);
    let (_, _, body) = crate::support::http_get(
        &second.url("/admin/canary/audit?action=scale"),
        "application/json",
    )
    .await;
    let page: canary_shared::AuditPage = serde_json::from_str(&body).unwrap();
    assert_eq!(page.events.len(), 1, "the trail came along");
}

/// Runs `canary <args>` to its end (killed after 20 s), returning whether it
/// succeeded and its stderr.
fn finished(args: &[&std::ffi::OsStr]) -> (bool, String) {
    let mut child = canary()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..400 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
            return (status.success(), stderr);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    panic!("canary {args:?} was still running after 20 s");
}

#[test]
fn check_refuses_what_serve_refuses_in_the_same_words() {
    let dir = tempfile::tempdir().unwrap();
    let console = dir.path().join("console");
    std::fs::create_dir(&console).unwrap();
    std::fs::write(console.join("index.html"), "<!doctype html>").unwrap();
    std::fs::write(dir.path().join("not-executable.sh"), "#!/bin/sh\n").unwrap();
    let seed = include_str!("../../../../canary-config.yaml");
    let seed = &seed[seed.find("\ncanary:\n").unwrap() + 1..];
    let server = |admin: &str, extra: &str| {
        format!(
            "server:\n  admin_listen: \"{admin}\"\n  proxy_listen: \"127.0.0.1:0\"\n  data_dir: data\n{extra}"
        )
    };
    let cases = [
        (
            "a missing TLS key",
            server(
                "127.0.0.1:0",
                "  assets_dir: console\n  tls: { cert_file: cert.pem, key_file: key.pem }\n",
            ),
            "server.tls",
        ),
        (
            "an open admin address without auth",
            server("0.0.0.0:0", "  assets_dir: console\n"),
            "server.admin_listen: 0.0.0.0:0 is reachable from other machines",
        ),
        (
            "a hook program that does not exist",
            format!(
                "{}hooks:\n  deploy: {{ command: [\"scripts/missing-deploy.sh\"] }}\n",
                server("127.0.0.1:0", "  assets_dir: console\n")
            ),
            "hooks.deploy.command: ",
        ),
        (
            "a hook program that may not be run",
            format!(
                "{}hooks:\n  rollback: {{ command: [\"./not-executable.sh\"] }}\n",
                server("127.0.0.1:0", "  assets_dir: console\n")
            ),
            "is not executable (chmod +x)",
        ),
        (
            "a console folder without a console",
            server("127.0.0.1:0", "  assets_dir: empty\n"),
            "server.assets_dir: ",
        ),
    ];
    for (what, head, expected) in cases {
        let config = dir.path().join("canary-config.yaml");
        std::fs::write(&config, format!("{head}{seed}")).unwrap();
        let (checked, check_err) =
            finished(&["check".as_ref(), "--config".as_ref(), config.as_os_str()]);
        let (served, serve_err) =
            finished(&["serve".as_ref(), "--config".as_ref(), config.as_os_str()]);
        assert!(
            !checked && !served,
            "{what}: check {check_err} / serve {serve_err}"
        );
        let check_line = check_err.lines().last().unwrap_or_default().to_owned();
        assert!(check_line.contains(expected), "{what}: {check_line}");
        assert!(
            check_line.contains(&config.display().to_string()),
            "{what}: names the file: {check_line}"
        );
        assert!(
            serve_err.lines().any(|line| line == check_line),
            "{what}: serve says the same as check ({check_line}):\n{serve_err}"
        );
    }
}

#[test]
fn with_json_logs_even_the_fatal_error_is_a_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("canary-config.yaml");
    std::fs::write(&path, "canary:\n  traffic_steps: [5]\n").unwrap();
    let output = canary()
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let event: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(event["level"], "ERROR");
    let error = event["fields"]["error"].as_str().unwrap();
    assert!(
        error.contains("canary.traffic_steps: the last step must be 100"),
        "{error}"
    );
}

/// A child killed when the test ends, however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A copy of `socket` at fd `number` that a started program inherits.
fn inheritable(socket: &std::net::TcpListener, number: i32) -> std::os::fd::OwnedFd {
    use std::os::fd::{AsFd, AsRawFd};
    let copy = rustix::io::fcntl_dupfd_cloexec(socket.as_fd(), number).unwrap();
    assert_eq!(copy.as_raw_fd(), number, "fd {number} is free in the test");
    rustix::io::fcntl_setfd(&copy, rustix::io::FdFlags::empty()).unwrap();
    copy
}

#[test]
fn a_server_on_inherited_sockets_serves_a_connection_accepted_before_its_stop_and_the_next_takes_over()
 {
    use std::io::{Read, Write};
    let upstream = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    // A tiny upstream: every request gets "ok" and the connection closes.
    std::thread::spawn(move || {
        for stream in upstream.incoming() {
            let Ok(mut stream) = stream else { continue };
            std::thread::spawn(move || {
                let mut buffer = [0; 4096];
                let _ = stream.read(&mut buffer);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            });
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("canary-config.yaml");
    let seed = include_str!("../../../../canary-config.yaml");
    let seed = &seed[seed.find("\ncanary:\n").unwrap() + 1..];
    std::fs::write(
        &config,
        format!(
            "server:\n  data_dir: data\nupstreams:\n  production: {{ url: \"http://{upstream_addr}\" }}\n  canary: {{ url: \"http://{upstream_addr}\" }}\n{seed}"
        ),
    )
    .unwrap();
    // The sockets a supervisor (systemd) keeps across restarts.
    let proxy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let proxy_addr = proxy.local_addr().unwrap();
    let _handed = (inheritable(&proxy, 150), inheritable(&admin, 151));
    let serve = || {
        canary()
            .args(["serve", "--config"])
            .arg(&config)
            .env("LISTEN_FDS", "2")
            .env("LISTEN_FDS_FIRST_FD", "150")
            .env("LISTEN_FDNAMES", "proxy:admin")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    // The answer is read until the server closes the connection.
    let request = |stream: &mut std::net::TcpStream, connection: &str| {
        let head = format!("GET / HTTP/1.1\r\nhost: test\r\nconnection: {connection}\r\n\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = String::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.read_to_string(&mut answer);
        answer
    };

    // Killed however the test ends (the happy path stops each with SIGTERM).
    let mut first = Killed(serve());
    let mut announced = BufReader::new(first.0.stdout.take().unwrap()).lines();
    let console = announced.next().unwrap().unwrap();
    assert!(
        console.contains(&admin.local_addr().unwrap().to_string()),
        "it serves the inherited admin socket, not the config's: {console}"
    );
    // A client connects, but sends its request only after the server was told to stop.
    let mut early = std::net::TcpStream::connect(proxy_addr).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let status = Command::new("kill")
        .args(["-TERM", &first.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    std::thread::sleep(Duration::from_millis(200));
    let answer = request(&mut early, "keep-alive");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer:?}"
    );
    assert!(first.0.wait().unwrap().success());

    // While no server runs, a new connection waits in the socket's queue
    // (it is never refused), and the next server answers it.
    let mut waiting = std::net::TcpStream::connect(proxy_addr).expect("not refused");
    let mut second = Killed(serve());
    let answer = request(&mut waiting, "close");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with("ok"), "{answer:?}");
    let _ = Command::new("kill")
        .args(["-TERM", &second.0.id().to_string()])
        .status();
    second.0.wait().unwrap();
}
