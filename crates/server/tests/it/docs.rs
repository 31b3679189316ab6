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

#[tokio::test]
async fn the_cli_reference_session_runs_as_written() {
    let text = doc("cli.md");
    let session = blocks_after(&text, "## A whole rollout from a script", "sh")
        .into_iter()
        .next()
        .expect("a session");
    let app = crate::support::TestApp::start().await;
    for line in session.lines().filter(|line| line.starts_with("canary ")) {
        let (command, comment) = line.split_once('#').unwrap_or((line, ""));
        let expected: i32 = comment
            .trim()
            .strip_prefix("exit ")
            .and_then(|rest| rest.split(':').next())
            .map_or(0, |code| code.trim().parse().unwrap());
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
            "`{}` printed {}{}",
            command.trim(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if args[0] == "start" {
            // The next line acts on the running canary: wait until it takes traffic.
            app.wait_for_phase(canary_shared::Phase::Progressing).await;
        }
    }
}

/// Runs a documented shell line with the production paths moved into `root`.
fn run_documented(line: &str, root: &std::path::Path) -> std::process::Output {
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_canary"));
    let line = line
        .replace("/usr/local/bin/canary", "canary")
        .replace("/etc/canary", &root.join("etc/canary").to_string_lossy())
        .replace(
            "/var/lib/canary",
            &root.join("var/lib/canary").to_string_lossy(),
        )
        .replace(
            "/var/backups/canary",
            &root.join("var/backups/canary").to_string_lossy(),
        );
    let path = format!(
        "{}:{}",
        binary.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::process::Command::new("bash")
        .args(["-euc", &line])
        .env("PATH", path)
        .output()
        .unwrap()
}

#[test]
fn the_deployment_guide_config_unit_check_and_backup_work_as_written() {
    let text = doc("deployment.md");
    let root = tempfile::tempdir().unwrap();
    let config = blocks_after(&text, "## The config", "yaml")
        .into_iter()
        .next()
        .expect("a config");
    Config::from_yaml(&config).unwrap_or_else(|err| panic!("{err}"));
    std::fs::create_dir_all(root.path().join("etc/canary")).unwrap();
    std::fs::write(root.path().join("etc/canary/canary-config.yaml"), &config).unwrap();
    // A store to back up, as a server leaves it.
    drop(
        canary_server::adapters::store::SqliteStore::open(&root.path().join("var/lib/canary"))
            .unwrap(),
    );
    std::fs::create_dir_all(root.path().join("var/backups/canary")).unwrap();

    let mut commands: Vec<String> = [
        "## The config",
        "## Where the data lives, and backing it up",
    ]
    .iter()
    .flat_map(|heading| blocks_after(&text, heading, "sh"))
    .flat_map(|block| block.lines().map(str::to_owned).collect::<Vec<_>>())
    .filter(|line| line.starts_with("canary "))
    .collect();
    // The unit's own command lines, too.
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../deploy/canary.service"
    ))
    .unwrap();
    commands.extend(
        unit.lines()
            .filter_map(|line| line.strip_prefix("ExecStartPre="))
            .map(str::to_owned),
    );
    assert!(commands.len() >= 3, "{commands:?}");
    for command in &commands {
        let output = run_documented(command, root.path());
        assert!(
            output.status.success(),
            "`{command}`: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let backups = std::fs::read_dir(root.path().join("var/backups/canary"))
        .unwrap()
        .count();
    assert_eq!(backups, 1, "the backup is written");
    let serve = unit
        .lines()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .unwrap();
    assert!(
        serve.starts_with("/usr/local/bin/canary serve --config /etc/canary/canary-config.yaml"),
        "{serve}"
    );
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
