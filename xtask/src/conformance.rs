//! `cargo xtask conformance`: an outside check that the API does what its
//! OpenAPI document says. schemathesis (every package pinned in
//! `xtask/conformance/requirements.txt`, installed from PyPI into
//! `target/conformance-venv`) runs every check and every phase, the
//! stateful one included, against the document the server serves:
//!
//! 1. `canary demo` without logins (the loopback mode, where the served
//!    document declares no credentials);
//! 2. `canary serve` with logins, in front of the same demo services, with
//!    an admin token, so that the authentication checks mean something.
//!
//! Any failure is a disagreement between the document and the server: fix
//! whichever is wrong. The exceptions, each with its reason, are in
//! `xtask/conformance/schemathesis.toml`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context, bail};
use xshell::{Shell, cmd};

use crate::{step, workspace_root};

pub(crate) fn run(sh: &Shell) -> anyhow::Result<()> {
    step("conformance: schemathesis against the served OpenAPI document");
    let schemathesis = install(sh)?;
    cmd!(
        sh,
        "cargo build --locked --package canary-server --bin canary"
    )
    .run()?;
    let binary = workspace_root().join("target/debug/canary");
    let work = workspace_root().join(format!("target/conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work)?;
    let result = run_both(sh, &schemathesis, &binary, &work);
    let _ = std::fs::remove_dir_all(&work);
    result
}

fn run_both(sh: &Shell, schemathesis: &Path, binary: &Path, work: &Path) -> anyhow::Result<()> {
    // schemathesis keeps its cache in the folder it runs in.
    let _in_work = sh.push_dir(work);
    let demo_dir = work.join("demo");
    let demo = Server::start(
        Command::new(binary)
            .args(["demo", "--admin-listen", "127.0.0.1:0"])
            .args([
                "--proxy-listen",
                "127.0.0.1:0",
                "--load",
                "20",
                "--data-dir",
            ])
            .arg(&demo_dir),
        &work.join("demo.log"),
    )?;
    step("conformance: without logins (canary demo)");
    check(sh, schemathesis, &demo.console, None)?;

    let (secret, token_entry) = new_token(binary)?;
    let config = with_logins(
        &std::fs::read_to_string(demo_dir.join("canary-config.yaml"))?,
        &demo_dir,
        &work.join("served"),
        &token_entry,
    )?;
    let config_path = work.join("canary-config.yaml");
    std::fs::write(&config_path, config)?;
    let served = Server::start(
        Command::new(binary)
            .args(["serve", "--config"])
            .arg(&config_path),
        &work.join("served.log"),
    )?;
    step("conformance: with logins (canary serve, an admin token)");
    check(sh, schemathesis, &served.console, Some(&secret))?;
    drop(served);
    drop(demo);
    Ok(())
}

/// schemathesis in its own virtual environment, installed when the pinned
/// set differs from what is there: the path of its command.
fn install(sh: &Shell) -> anyhow::Result<PathBuf> {
    let venv = workspace_root().join("target/conformance-venv");
    let requirements = workspace_root().join("xtask/conformance/requirements.txt");
    let installed = venv.join("requirements.txt");
    let wanted = std::fs::read_to_string(&requirements)?;
    let command = venv.join("bin/schemathesis");
    if command.exists() && std::fs::read_to_string(&installed).ok().as_ref() == Some(&wanted) {
        eprintln!("    schemathesis: installed");
        return Ok(command);
    }
    eprintln!("    installing schemathesis and its pinned dependencies from PyPI");
    let _ = std::fs::remove_dir_all(&venv);
    cmd!(sh, "python3 -m venv {venv}").run()?;
    let pip = venv.join("bin/pip");
    cmd!(
        sh,
        "{pip} install --quiet --disable-pip-version-check -r {requirements}"
    )
    .run()?;
    std::fs::write(&installed, wanted)?;
    Ok(command)
}

/// One schemathesis run against the server whose console is at `console`.
fn check(
    sh: &Shell,
    schemathesis: &Path,
    console: &str,
    token: Option<&str>,
) -> anyhow::Result<()> {
    let document = format!("{console}openapi.yaml");
    let settings = workspace_root().join("xtask/conformance/schemathesis.toml");
    let mut headers = Vec::new();
    if let Some(token) = token {
        headers.push("-H".to_owned());
        headers.push(format!("Authorization: Bearer {token}"));
    }
    // Deterministic: the same cases every run, so a failure in CI repeats here.
    cmd!(
        sh,
        "{schemathesis} --config-file {settings} run {document} --checks all --max-examples 50 --generation-deterministic --no-color {headers...}"
    )
    .run()
    .context("schemathesis found disagreements between the OpenAPI document and the server")?;
    Ok(())
}

/// A new admin token: the secret and its `auth.tokens` entry.
fn new_token(binary: &Path) -> anyhow::Result<(String, String)> {
    let output = Command::new(binary)
        .args(["new-token", "--name", "conformance", "--role", "admin"])
        .output()?;
    if !output.status.success() {
        bail!(
            "canary new-token failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8(output.stdout)?;
    let secret = text
        .lines()
        .find(|line| line.starts_with("cnry_"))
        .context("canary new-token printed no secret")?
        .to_owned();
    let entry: Vec<&str> = text
        .lines()
        .skip_while(|line| !line.starts_with("- name:"))
        .collect();
    if entry.is_empty() {
        bail!("canary new-token printed no config entry:\n{text}");
    }
    Ok((secret, entry.join("\n")))
}

/// The demo's config served on other ports, with its own data and logins.
fn with_logins(
    demo_config: &str,
    demo_dir: &Path,
    data_dir: &Path,
    token_entry: &str,
) -> anyhow::Result<String> {
    let demo_data = format!("  data_dir: \"{}\"\n", demo_dir.display());
    if !demo_config.contains(&demo_data) {
        bail!("the demo's config has no `{}`", demo_data.trim());
    }
    let server = format!(
        "  admin_listen: \"127.0.0.1:0\"\n  proxy_listen: \"127.0.0.1:0\"\n  data_dir: \"{}\"\n",
        data_dir.display()
    );
    let indented: Vec<String> = token_entry
        .lines()
        .map(|line| format!("    {line}"))
        .collect();
    Ok(format!(
        "{}auth:\n  tokens:\n{}\n",
        demo_config.replacen(&demo_data, &server, 1),
        indented.join("\n")
    ))
}

/// A canary process, stopped when dropped.
struct Server {
    child: Child,
    console: String,
}

impl Server {
    /// Starts `command` with its log in `log` and waits for its console address.
    fn start(command: &mut Command, log: &Path) -> anyhow::Result<Server> {
        let mut child = command
            .env("CANARY_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .context("cannot start canary")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let console = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(url) = line.strip_prefix("canary: console at ") {
                        break url.trim().to_owned();
                    }
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    bail!(
                        "canary exited before it served; its log:\n{}",
                        std::fs::read_to_string(log).unwrap_or_default()
                    );
                }
            }
        };
        // Keep reading what it prints, so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(Server { child, console })
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}
