//! The documentation cannot rot: its examples are parsed and run, and it
//! names every config key, every API operation and every CLI command.

use std::collections::BTreeSet;

use canary_server::config::Config;

fn doc(name: &str) -> String {
    let path = format!("{}/../../docs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"))
}

/// The fenced blocks of `lang` that follow the heading `heading`.
fn blocks_after(text: &str, heading: &str, lang: &str) -> Vec<String> {
    let section = text
        .split_once(&format!("\n{heading}\n"))
        .unwrap_or_else(|| panic!("no heading {heading:?}"))
        .1;
    let section = section.split("\n## ").next().unwrap_or(section);
    let fence = format!("```{lang}\n");
    section
        .split(&fence)
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap_or("").to_owned())
        .collect()
}

/// Every leaf key of `value` as a dotted path, arrays as `[]`.
fn leaf_paths(value: &serde_json::Value, prefix: &str, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, child) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                leaf_paths(child, &path, out);
            }
        }
        serde_json::Value::Array(items) if items.iter().any(serde_json::Value::is_object) => {
            for item in items {
                leaf_paths(item, &format!("{prefix}[]"), out);
            }
        }
        _ => {
            out.insert(prefix.to_owned());
        }
    }
}

#[test]
fn the_configuration_reference_example_is_valid_and_every_key_is_described() {
    let text = doc("configuration.md");
    let example = blocks_after(&text, "## Every key", "yaml")
        .into_iter()
        .next()
        .expect("an example");
    let config = Config::from_yaml(&example).unwrap_or_else(|err| panic!("{err}"));
    let mut paths = BTreeSet::new();
    leaf_paths(&serde_json::to_value(&config).unwrap(), "", &mut paths);
    assert!(paths.len() > 70, "{} keys: {paths:?}", paths.len());
    let missing: Vec<String> = paths
        .into_iter()
        .map(|path| {
            path.replace("upstreams.production.", "upstreams.<side>.")
                .replace("upstreams.canary.", "upstreams.<side>.")
                .replace("hooks.deploy.", "hooks.<hook>.")
                .replace("hooks.health_check.", "hooks.<hook>.")
                .replace("hooks.promote.", "hooks.<hook>.")
                .replace("hooks.rollback.", "hooks.<hook>.")
        })
        .map(|path| match path.split_once("metrics.custom[].labels.") {
            Some(_) => "metrics.custom[].labels".to_owned(),
            None => path,
        })
        .filter(|path| !text.contains(&format!("`{path}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "keys the reference does not describe: {missing:?}"
    );
}

#[test]
fn the_api_reference_names_every_operation_of_the_openapi_document() {
    let text = doc("api.md");
    let document: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../openapi.yaml")).unwrap();
    let mut missing = Vec::new();
    for (path, operations) in document["paths"].as_mapping().unwrap() {
        for (method, _) in operations.as_mapping().unwrap() {
            let name = format!(
                "`{} {}`",
                method.as_str().unwrap().to_uppercase(),
                path.as_str().unwrap()
            );
            if !text.contains(&name) {
                missing.push(name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "operations docs/api.md leaves out: {missing:?}"
    );
}

#[test]
fn the_cli_reference_names_every_command_the_binary_has() {
    let text = doc("cli.md");
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_canary"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let commands: Vec<&str> = help
        .split_once("Commands:\n")
        .unwrap()
        .1
        .lines()
        .take_while(|line| line.starts_with("  "))
        .filter_map(|line| line.split_whitespace().next())
        .filter(|command| *command != "help")
        .collect();
    assert!(commands.len() >= 15, "{commands:?}");
    let missing: Vec<&&str> = commands
        .iter()
        .filter(|command| !text.contains(&format!("`canary {command}")))
        .collect();
    assert!(
        missing.is_empty(),
        "commands docs/cli.md leaves out: {missing:?}"
    );
}

/// The CLI reference's session: each `canary` line of it with the exit code
/// its comment promises (0 without one).
fn cli_session() -> Vec<(String, i32)> {
    let session = blocks_after(&doc("cli.md"), "## A whole rollout from a script", "sh")
        .into_iter()
        .next()
        .expect("a session");
    session
        .lines()
        .filter(|line| line.starts_with("canary "))
        .map(|line| {
            let (command, comment) = line.split_once('#').unwrap_or((line, ""));
            let expected = comment
                .trim()
                .strip_prefix("exit ")
                .and_then(|rest| rest.split(':').next())
                .map_or(0, |code| code.trim().parse().unwrap());
            (command.trim().to_owned(), expected)
        })
        .collect()
}

#[tokio::test]
async fn the_cli_reference_session_runs_as_written() {
    let app = crate::support::TestApp::start().await;
    for (command, expected) in cli_session() {
        let args: Vec<&str> = command.split_whitespace().skip(1).collect();
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_canary"))
            .args(&args)
            .env("CANARY_SERVER", app.url(""))
            .env_remove("CANARY_TOKEN")
            .output()
            .await
            .unwrap();
        assert_eq!(
            output.status.code(),
            Some(expected),
            "`{command}` printed {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if args[0] == "start" {
            // The next line acts on the running canary: wait until it takes traffic.
            app.wait_for_phase(canary_shared::Phase::Progressing).await;
        }
    }
}

/// The production paths of the guides, moved into `root`.
fn moved(text: &str, root: &std::path::Path) -> String {
    let mut text = text.replace("/usr/local/bin/canary", "canary");
    for path in [
        "/etc/canary",
        "/var/lib/canary",
        "/var/backups/canary",
        "/usr/share/canary",
        "/opt/deploy",
    ] {
        let inside = root.join(path.trim_start_matches('/'));
        text = text.replace(path, &inside.to_string_lossy());
    }
    text
}

/// Runs a documented shell script with the production paths moved into
/// `root`, the binary first on `PATH`, and `env` set.
fn run_documented(
    script: &str,
    root: &std::path::Path,
    env: &[(&str, String)],
) -> std::process::Output {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_canary"));
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("bash")
        .args(["-euc", &moved(script, root)])
        .env("PATH", path)
        .env_remove("CANARY_TOKEN")
        .env_remove("CANARY_SERVER")
        .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
        .output()
        .unwrap()
}

fn succeeded(what: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "`{what}`: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The deployment guide, walked as an operator would on a fresh machine
/// (its paths moved into a temporary root, its upstreams on loopback): the
/// console installed, the config with a token, the private CA made with
/// the guide's own openssl lines, `canary check`, the unit's `serve` over
/// HTTPS, every command of the CLI reference's session against the HTTPS
/// address with the CA and the token, and the backup while it runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_guide_walks_from_install_through_tls_to_a_rollout_and_a_backup() {
    use std::io::BufRead;

    let text = doc("deployment.md");
    let root = tempfile::tempdir().unwrap();
    let root = root.path();
    let production = crate::support::FakeUpstream::named("production").await;
    let canary_side = crate::support::FakeUpstream::named("canary").await;

    // Installed as the guide says: the console, and the deploy script the hooks name.
    let console = root.join("usr/share/canary/console");
    std::fs::create_dir_all(&console).unwrap();
    std::fs::write(
        console.join("index.html"),
        "<!doctype html><title>canary</title>",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("opt/deploy")).unwrap();
    let script = root.join("opt/deploy/canary-deploy.sh");
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../scripts/canary-deploy.sh"
        ),
        &script,
    )
    .unwrap();
    std::fs::create_dir_all(root.join("var/backups/canary")).unwrap();

    // The config, with a token of our own (the guide's hash is an example)
    // and the upstreams on loopback.
    let token = std::process::Command::new(env!("CARGO_BIN_EXE_canary"))
        .args(["new-token", "--name", "deploy-bot", "--role", "operator"])
        .output()
        .unwrap();
    let token = String::from_utf8_lossy(&token.stdout).into_owned();
    let secret = token
        .lines()
        .find(|line| line.starts_with("cnry_"))
        .unwrap()
        .to_owned();
    let hash = token
        .lines()
        .find_map(|line| line.trim().strip_prefix("secret_hash: "))
        .unwrap()
        .trim_matches('"')
        .to_owned();
    let config = blocks_after(&text, "## The config", "yaml")
        .into_iter()
        .next()
        .expect("a config");
    Config::from_yaml(&config).unwrap_or_else(|err| panic!("{err}"));
    let example_hash = config
        .split("secret_hash: \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    let config = config
        .replace(example_hash, &hash)
        .replace("http://10.0.0.11:8080", &production.url())
        .replace("http://10.0.0.12:8080", &canary_side.url());
    std::fs::create_dir_all(root.join("etc/canary")).unwrap();
    std::fs::write(
        root.join("etc/canary/canary-config.yaml"),
        moved(&config, root),
    )
    .unwrap();

    // The private CA, by the guide's own lines (but the chown: the test has
    // no `canary` user; it runs as the user that reads the key).
    let tls = blocks_after(&text, "## TLS with a private CA", "sh");
    let make_ca: String = tls[0]
        .lines()
        .filter(|line| !line.starts_with("chown"))
        .map(|line| format!("{line}\n"))
        .collect();
    succeeded(
        "the guide's openssl lines",
        &run_documented(&make_ca, root, &[]),
    );

    // `canary check`, as the guide and the unit run it.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/canary.service"
    ))
    .unwrap();
    let checks: Vec<String> = tls
        .iter()
        .flat_map(|block| block.lines())
        .filter(|line| line.starts_with("canary check"))
        .map(str::to_owned)
        .chain(
            unit.lines()
                .filter_map(|line| line.strip_prefix("ExecStartPre="))
                .map(str::to_owned),
        )
        .collect();
    assert!(checks.len() >= 2, "{checks:?}");
    for check in &checks {
        succeeded(check, &run_documented(check, root, &[]));
    }

    // The unit's `serve`, on loopback ports of the test's choosing.
    let serve = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .unwrap();
    assert!(
        serve.starts_with("/usr/local/bin/canary serve --config /etc/canary/canary-config.yaml"),
        "{serve}"
    );
    let serve = moved(serve, root);
    let mut args: Vec<&str> = serve.split_whitespace().skip(1).collect();
    args.extend([
        "--admin-listen",
        "127.0.0.1:0",
        "--proxy-listen",
        "127.0.0.1:0",
    ]);
    let mut server = Stopped(
        std::process::Command::new(env!("CARGO_BIN_EXE_canary"))
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The unit logs JSON: every line is an object, the addresses in one of them.
    let mut logged = std::io::BufReader::new(server.0.stderr.take().unwrap()).lines();
    let address = loop {
        let line = logged.next().expect("a log line").unwrap();
        let event: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
        if let Some(console) = event["fields"]["console"].as_str() {
            break console.strip_suffix("/admin/canary/").unwrap().to_owned();
        }
    };
    // Keep reading the log so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in logged {});
    assert!(address.starts_with("https://127.0.0.1:"), "{address}");

    // The guide's `canary status` with its environment, then the CLI
    // reference's session, every line against the HTTPS address.
    let environment = [
        ("CANARY_SERVER", address.clone()),
        (
            "CANARY_CA_FILE",
            root.join("etc/canary/ca.pem")
                .to_string_lossy()
                .into_owned(),
        ),
        ("CANARY_TOKEN", secret),
    ];
    let status = tls
        .iter()
        .flat_map(|block| block.lines())
        .find(|line| *line == "canary status")
        .expect("the guide's status line");
    succeeded(status, &run_documented(status, root, &environment));
    for (command, expected) in cli_session() {
        let output = run_documented(&command, root, &environment);
        assert_eq!(
            output.status.code(),
            Some(expected),
            "`{command}` over HTTPS printed {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if command.starts_with("canary start") {
            // The next line acts on the running canary: wait until it takes traffic.
            crate::support::eventually("the canary to take traffic", async || {
                let status = run_documented("canary status", root, &environment);
                String::from_utf8_lossy(&status.stdout)
                    .starts_with("Canary at")
                    .then_some(())
            })
            .await;
        }
    }

    // The backup, while the server runs.
    let backups: Vec<String> =
        blocks_after(&text, "## Where the data lives, and backing it up", "sh")
            .iter()
            .flat_map(|block| block.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|line| line.starts_with("canary "))
            .collect();
    assert!(!backups.is_empty());
    for backup in &backups {
        succeeded(backup, &run_documented(backup, root, &[]));
    }
    let written = std::fs::read_dir(root.join("var/backups/canary"))
        .unwrap()
        .count();
    assert_eq!(written, 1, "the backup is written");
}

/// A child process killed when the test ends, however it ends.
struct Stopped(std::process::Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_credential_commands_print_entries_the_config_accepts() {
    use std::io::Write;
    let canary = || std::process::Command::new(env!("CARGO_BIN_EXE_canary"));
    let mut hashing = canary()
        .args(["hash-password", "--user", "alice", "--role", "operator"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(hashing.stdin.take().unwrap(), "a long enough passphrase").unwrap();
    let user = hashing.wait_with_output().unwrap();
    assert!(user.status.success());
    let token = canary()
        .args(["new-token", "--name", "deploy-bot", "--role", "operator"])
        .output()
        .unwrap();
    assert!(token.status.success());
    // Each prints comment lines and a YAML list entry; indent the entries under auth.
    let entry = |output: &[u8]| {
        String::from_utf8_lossy(output)
            .lines()
            .filter(|line| {
                !line.starts_with('#') && (line.starts_with('-') || line.starts_with(' '))
            })
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    };
    let yaml = format!(
        "canary:\n  auto_progression: {{ enabled: true, wait_time: 1h, thresholds: {{ max_latency: 1s, min_success_rate: 0.9, max_error_rate: 0.1 }} }}\n  traffic_steps: [5, 100]\nauth:\n  users:\n{}  tokens:\n{}",
        entry(&user.stdout),
        entry(&token.stdout)
    );
    let config = Config::from_yaml(&yaml).unwrap_or_else(|err| panic!("{err}\n{yaml}"));
    let auth = config.auth.expect("auth");
    assert_eq!(auth.users.len(), 1);
    assert_eq!(auth.tokens.len(), 1);
}
