//! The CLI for scripts, run as a script would: the real `canary` binary
//! against a real server, its output parsed and its exit codes checked.

use canary_server::config::Config;
use canary_shared::{AuditPage, CanaryState, Phase};
use tokio::io::AsyncBufReadExt;

use crate::support::{TestApp, actions_oldest_first};

/// What one CLI run printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn state(&self) -> CanaryState {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|err| panic!("not a state ({err}): {}", self.stdout))
    }
}

/// Runs `canary <args>` against `server` with `token`.
async fn canary_with(server: &str, token: Option<&str>, args: &[&str]) -> Run {
    let token: Vec<(&str, &str)> = token
        .map(|token| ("CANARY_TOKEN", token))
        .into_iter()
        .collect();
    canary_in_env(server, &token, args).await
}

/// Runs `canary <args>` against `server` with `env` set (and no other
/// token, CA file or certificate store of the test's own environment).
async fn canary_in_env(server: &str, env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_canary"));
    command
        .args(args)
        .env("CANARY_SERVER", server)
        .env_remove("CANARY_TOKEN")
        .env_remove("CANARY_CA_FILE")
        .env_remove("SSL_CERT_FILE")
        .kill_on_drop(true)
        .envs(env.iter().copied());
    let output = command.output().await.unwrap();
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

async fn canary(app: &TestApp, args: &[&str]) -> Run {
    canary_with(&app.url(""), None, args).await
}

#[tokio::test]
async fn a_script_runs_a_whole_rollout_with_the_cli_and_branches_on_exit_codes() {
    let app = TestApp::start().await;

    let run = canary(&app, &["status", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.state().phase, Phase::Idle);
    let run = canary(&app, &["status"]).await;
    assert!(
        run.stdout.starts_with("Production only (100 %)"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("may now: start"), "{}", run.stdout);

    let run = canary(&app, &["start", "--image-tag", "v2.7.0", "--percent", "5"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.starts_with("Deploying v2.7.0"), "{}", run.stdout);
    app.wait_for_phase(Phase::Progressing).await;

    let run = canary(&app, &["scale", "25", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.state().traffic.canary().percent(), 25.0);
    // A share out of range is refused with the field named; nothing moves.
    let run = canary(&app, &["scale", "150"]).await;
    assert_eq!(run.code, 1, "refused: {}", run.stderr);
    assert!(run.stderr.contains("percent"), "{}", run.stderr);
    let run = canary(&app, &["scale", "150", "--json"]).await;
    let error: serde_json::Value = serde_json::from_str(run.stdout.trim()).unwrap();
    assert_eq!(error["exit_code"], 1);

    assert_eq!(canary(&app, &["pause"]).await.code, 0);
    let again = canary(&app, &["pause"]).await;
    assert_eq!(again.code, 1, "pausing twice is refused");
    assert!(again.stderr.contains("already paused"), "{}", again.stderr);
    let run = canary(&app, &["resume"]).await;
    assert_eq!(run.code, 0);
    assert!(run.stdout.starts_with("Canary at 25 %"), "{}", run.stdout);

    let run = canary(&app, &["auto-progression", "off", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.state().auto_progression.enabled);
    assert_eq!(canary(&app, &["auto-progression", "maybe"]).await.code, 2);

    // A watcher follows the rest of the rollout; it has the stream once it
    // printed where the rollout stands.
    let mut watcher = tokio::process::Command::new(env!("CARGO_BIN_EXE_canary"))
        .args(["watch", "--until-done"])
        .env("CANARY_SERVER", app.url(""))
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(watcher.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("Canary at 25 %"), "{first}");

    let run = canary(&app, &["continue", "--json"]).await;
    assert_eq!(run.state().traffic.canary().percent(), 50.0);
    let run = canary(&app, &["promote"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    // No deploy hook: promotion swaps the upstreams, and nothing will put
    // the next version on the one it frees; promote says so.
    assert!(
        run.stderr
            .contains("canary: warning: no deploy hook: after a promotion"),
        "{}",
        run.stderr
    );
    // The rollout ends promoted: the watcher prints each change and exits 0.
    let mut printed = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        printed.push(line);
    }
    let status = watcher.wait().await.unwrap();
    assert_eq!(status.code(), Some(0), "{printed:?}");
    assert!(
        printed
            .iter()
            .any(|line| line.starts_with("Canary at 50 %")),
        "{printed:?}"
    );
    assert!(
        printed.iter().any(|line| line.contains("continue")),
        "audit entries too: {printed:?}"
    );
    assert_eq!(
        printed.last().map(String::as_str),
        Some("Promoted v2.7.0: production serves it (100 %); undo possible for 1 h")
    );

    let run = canary(&app, &["audit", "--json", "--limit", "50"]).await;
    let page: AuditPage = serde_json::from_str(run.stdout.trim()).unwrap();
    let actions = actions_oldest_first(&page);
    assert_eq!(
        actions,
        [
            "start",
            "deployed",
            "healthy",
            "scale",
            "pause",
            "resume",
            "auto_progression_off",
            "continue",
            "promote",
            "promoted"
        ]
    );
    let run = canary(&app, &["audit", "--action", "scale"]).await;
    assert_eq!(run.stdout.lines().count(), 1, "{}", run.stdout);
    assert!(run.stdout.contains("5 % → 25 %"), "{}", run.stdout);

    // Nothing in flight: there is nothing to wait for.
    let run = canary(&app, &["watch", "--until-done"]).await;
    assert_eq!(run.code, 1, "{}", run.stderr);
}

#[tokio::test]
async fn start_wait_ends_with_10_when_the_canary_is_rolled_back() {
    let app = TestApp::start().await;
    app.canary.set_status(500);
    let server = app.url("");
    let traffic = crate::support::background_traffic(&app);
    let run = canary_with(
        &server,
        None,
        &[
            "start",
            "--image-tag",
            "v2.7.0",
            "--percent",
            "50",
            "--wait",
        ],
    )
    .await;
    traffic.abort();
    assert_eq!(run.code, 10, "{}{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Rolled back"), "{}", run.stdout);
    assert!(
        run.stdout.contains("auto_rollback"),
        "the decision is printed: {}",
        run.stdout
    );
}

#[tokio::test]
async fn an_unreachable_server_and_a_missing_token_have_their_own_exit_codes() {
    let (refusing, _held) = crate::support::refusing_address();
    let run = canary_with(&format!("http://{refusing}"), None, &["status"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("cannot reach canary"), "{}", run.stderr);

    let (secret, hash) = canary_server::adapters::credentials::new_token().unwrap();
    let app = TestApp::start_with(|config| {
        let yaml = format!(
            "canary:\n  auto_progression: {{ enabled: false, wait_time: \"1h\", thresholds: {{ max_latency: \"1000ms\", min_success_rate: 0.85, max_error_rate: 0.15 }} }}\n  traffic_steps: [5, 100]\nauth:\n  tokens:\n    - {{ name: deploy-bot, role: operator, secret_hash: \"{hash}\" }}\n"
        );
        config.auth = Config::from_yaml(&yaml).unwrap().auth;
    })
    .await;
    let run = canary(&app, &["status"]).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
    assert!(run.stderr.contains("CANARY_TOKEN"), "{}", run.stderr);
    let run = canary_with(&app.url(""), Some(&secret), &["status", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let run = canary_with(&app.url(""), Some(&secret), &["start", "--image-tag", "v9"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    let audit = canary_with(
        &app.url(""),
        Some(&secret),
        &["audit", "--actor", "deploy-bot"],
    )
    .await;
    assert!(
        audit.stdout.contains("start"),
        "the token's name is the actor: {}",
        audit.stdout
    );
    // `watch` needs the token too, on the WebSocket handshake.
    let run = canary(&app, &["watch", "--until-done"]).await;
    assert_eq!(run.code, 4, "{}", run.stderr);
}

#[tokio::test]
async fn the_example_script_ships_a_version_and_branches_on_how_it_ended() {
    let app = TestApp::start().await;
    app.canary.set_status(500);
    let traffic = crate::support::background_traffic(&app);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../scripts/canary-deploy.sh"
    );
    let output = tokio::process::Command::new("bash")
        .args([script, "ship", "v2.7.0"])
        .env("CANARY_URL", app.url(""))
        .env("CANARY_BIN", env!("CARGO_BIN_EXE_canary"))
        .env("CANARY_START_PERCENT", "50")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    traffic.abort();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(10), "{stderr}");
    assert!(stderr.contains("v2.7.0 was rolled back"), "{stderr}");
}

/// A private CA and a certificate for `localhost` and 127.0.0.1 it signed,
/// written as PEM files in `dir`: (CA file, certificate file, key file).
fn private_ca(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let files = [
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    ];
    std::fs::write(&files[0], ca.pem()).unwrap();
    std::fs::write(&files[1], leaf.pem()).unwrap();
    std::fs::write(&files[2], leaf_key.serialize_pem()).unwrap();
    files
}

#[tokio::test]
async fn the_cli_reaches_an_https_server_whose_certificate_a_private_ca_signed() {
    let dir = tempfile::tempdir().unwrap();
    let [ca_file, cert_file, key_file] = private_ca(dir.path());
    let app = TestApp::start_with(|config| {
        config.server.tls = Some(canary_server::config::TlsConfig {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    })
    .await;
    let server = format!("https://localhost:{}", app.addr.port());
    let ca = ca_file.to_str().unwrap();

    // Without the CA: refused, and the words say why.
    let run = canary_with(&server, None, &["status"]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("the server's certificate is not trusted"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--ca-file"), "{}", run.stderr);

    // With --ca-file, and with CANARY_CA_FILE: REST and the WebSocket stream.
    let run = canary_with(&server, None, &["--ca-file", ca, "status", "--json"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.state().phase, Phase::Idle);
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_canary"));
    let watched = command
        .args(["start", "--image-tag", "v2.7.0", "--wait"])
        .env("CANARY_SERVER", &server)
        .env("CANARY_CA_FILE", ca)
        .env_remove("CANARY_TOKEN")
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The rollout is followed over wss://; stopping it ends the wait with 10.
    app.wait_for_phase(Phase::Progressing).await;
    app.stop_canary("test", "done").await;
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        watched.wait_with_output(),
    )
    .await
    .expect("start --wait ends once the canary is stopped")
    .unwrap();
    assert_eq!(
        output.status.code(),
        Some(10),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // A system store pointed at by SSL_CERT_FILE is trusted too.
    let run = canary_in_env(&server, &[("SSL_CERT_FILE", ca)], &["status"]).await;
    assert_eq!(run.code, 0, "{}", run.stderr);
}
