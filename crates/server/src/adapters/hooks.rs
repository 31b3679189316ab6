//! Running the team's hook scripts: a program with templated arguments, a
//! time limit, and its output captured (capped) for the audit trail.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::adapters::health_probe;
use crate::config::{Config, HookConfig, UpstreamConfig};
use crate::domain::deployment::Hook;
use crate::domain::health::ProbeOutcome;
use crate::domain::roles::UpstreamSlot;

/// Output kept per hook run; the rest is cut with a note.
const MAX_OUTPUT_BYTES: usize = 64 * 1024;

/// The values a hook's arguments and environment may use.
#[derive(Clone, Debug, PartialEq)]
pub struct HookVars {
    /// The canary version.
    pub image_tag: String,
    /// The canary share, as `25` or `12.5`.
    pub share: String,
    /// Production's version label.
    pub production_version: String,
    /// The canary upstream's version label, while the upstreams play the
    /// roles they are listed under (empty after a promotion swapped them).
    pub canary_version: String,
    /// The base URL of the upstream serving production now.
    pub production_url: String,
    /// The base URL of the upstream the canary runs on (and deploys to) now.
    pub canary_url: String,
    /// Which listed upstream that is.
    pub canary_slot: UpstreamSlot,
    /// The version a promotion keeps as a standby for an undo (told to the
    /// promote hook, which must leave it running) or retires (the retire
    /// hook); empty when there is none.
    pub standby_version: String,
    /// The base URL of the upstream it runs on; empty when there is none.
    pub standby_url: String,
    /// How long it stands by after a promotion, in seconds (`0`: none).
    pub undo_window_secs: String,
}

/// How a hook run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookOutcome {
    /// Whether it succeeded (exit status 0 within the time limit).
    pub succeeded: bool,
    /// One line for the audit reason: `exit 0`, `exit 3: <last line>`, `timed out after 10 min`.
    pub detail: String,
    /// What it printed (stdout then stderr), capped.
    pub output: Option<String>,
}

/// The hook's name in config, logs and `/metrics`.
pub fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::Deploy => "deploy",
        Hook::HealthCheck => "health_check",
        Hook::Promote => "promote",
        Hook::Rollback => "rollback",
        Hook::Retire => "retire",
        Hook::TestRun(_) => "test_run",
    }
}

/// Replaces `{image_tag}` and friends in one argument.
pub fn expand(arg: &str, vars: &HookVars) -> String {
    arg.replace("{image_tag}", &vars.image_tag)
        .replace("{share}", &vars.share)
        .replace("{production_version}", &vars.production_version)
        .replace("{canary_version}", &vars.canary_version)
        .replace("{production_url}", &vars.production_url)
        .replace("{canary_url}", &vars.canary_url)
        .replace("{standby_version}", &vars.standby_version)
        .replace("{standby_url}", &vars.standby_url)
        .replace("{undo_window_secs}", &vars.undo_window_secs)
}

/// Runs `hook` as configured, or its built-in default when none is configured.
pub async fn run(hook: Hook, config: &Config, vars: HookVars) -> HookOutcome {
    let configured = match hook {
        Hook::Deploy => config.hooks.deploy.clone(),
        Hook::HealthCheck => config.hooks.health_check.clone(),
        Hook::Promote => config.hooks.promote.clone(),
        Hook::Rollback => config.hooks.rollback.clone(),
        Hook::Retire => config.hooks.retire.clone(),
        // A test run is run like a hook, with the same templating and limits.
        Hook::TestRun(index) => config
            .validation
            .test_runs
            .0
            .get(usize::from(index))
            .map(|run| HookConfig {
                command: run.command.clone(),
                timeout: run.timeout,
            }),
    };
    match (configured, hook) {
        (Some(spec), _) => run_command(hook, &spec, &vars).await,
        (None, Hook::HealthCheck) => {
            http_health_check(config.upstreams.slot(vars.canary_slot)).await
        }
        (None, _) => HookOutcome {
            succeeded: true,
            detail: format!("no {} hook configured", hook_name(hook)),
            output: None,
        },
    }
}

/// Without a health-check hook, the canary's health path must answer 2xx,
/// trying for up to the unhealthy threshold's worth of intervals.
async fn http_health_check(upstream: &UpstreamConfig) -> HookOutcome {
    let check = &upstream.health_check;
    let client = match health_probe::client(upstream, check.timeout.0) {
        Ok(client) => client,
        Err(reason) => {
            return HookOutcome {
                succeeded: false,
                detail: reason,
                output: None,
            };
        }
    };
    let url = upstream.url.join(&check.path.0);
    let attempts = check.unhealthy_threshold.0.max(1);
    let mut last = ProbeOutcome::TimedOut;
    for attempt in 0..attempts {
        if attempt > 0 {
            tokio::time::sleep(check.interval.0).await;
        }
        last = health_probe::probe(&client, &url, check.timeout.0).await;
        if last.passed() {
            break;
        }
    }
    HookOutcome {
        succeeded: last.passed(),
        detail: last.describe(&check.path.0),
        output: None,
    }
}

async fn run_command(hook: Hook, spec: &HookConfig, vars: &HookVars) -> HookOutcome {
    let args: Vec<String> = spec.command.0.iter().map(|arg| expand(arg, vars)).collect();
    let mut command = tokio::process::Command::new(&args[0]);
    command
        .args(&args[1..])
        .env("CANARY_HOOK", hook_name(hook))
        .env("CANARY_IMAGE_TAG", &vars.image_tag)
        .env("CANARY_SHARE", &vars.share)
        .env("CANARY_PRODUCTION_VERSION", &vars.production_version)
        .env("CANARY_CANARY_VERSION", &vars.canary_version)
        .env("CANARY_PRODUCTION_URL", &vars.production_url)
        .env("CANARY_CANARY_URL", &vars.canary_url)
        .env("CANARY_STANDBY_VERSION", &vars.standby_version)
        .env("CANARY_STANDBY_URL", &vars.standby_url)
        .env("CANARY_UNDO_WINDOW_SECS", &vars.undo_window_secs)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => {
            return HookOutcome {
                succeeded: false,
                detail: format!("cannot run {}: {err}", args[0]),
                output: None,
            };
        }
    };
    // The script leads a process group of its own, so that what it started
    // can be ended with it (`kill_on_drop` reaches the script alone).
    let mut group = ProcessGroup::of(&child);
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let mut out = Vec::new();
    let mut err = Vec::new();
    let timeout = spec.timeout.0;
    let finished = tokio::time::timeout(timeout, async {
        let reading = async {
            let out_read = async {
                if let Some(stream) = stdout.as_mut() {
                    let _ = stream.read_to_end(&mut out).await;
                }
            };
            let err_read = async {
                if let Some(stream) = stderr.as_mut() {
                    let _ = stream.read_to_end(&mut err).await;
                }
            };
            tokio::join!(out_read, err_read);
        };
        tokio::pin!(reading);
        let mut read_all = false;
        let status = loop {
            tokio::select! {
                status = child.wait() => break status,
                () = &mut reading, if !read_all => read_all = true,
            }
        };
        // A process the script left running in the background (a service
        // it deployed) holds the pipes open: what is already in them is
        // read, and the hook ends with its script, not with that process.
        if !read_all {
            let _ = tokio::time::timeout(PIPE_DRAIN, reading).await;
        }
        status
    })
    .await;
    if finished.is_ok() {
        // The script has ended; what it left running is meant to run on.
        group.release();
    }
    match finished {
        Err(_elapsed) => {
            // Dropping `group` ends the script and everything it started.
            HookOutcome {
                succeeded: false,
                detail: format!(
                    "timed out after {}",
                    crate::domain::deployment::human_duration(millis(timeout))
                ),
                output: capped_output(&out, &err),
            }
        }
        Ok(status) => {
            let output = capped_output(&out, &err);
            let last_line = output
                .as_deref()
                .and_then(|text| text.lines().rev().find(|line| !line.trim().is_empty()));
            match status {
                // A test suite's last line is its summary ("42 passed"),
                // worth showing in the stepper even when it passed.
                Ok(status) if status.success() => HookOutcome {
                    succeeded: true,
                    detail: match (hook, last_line) {
                        (Hook::TestRun(_), Some(line)) => format!("exit 0: {}", line.trim()),
                        _ => "exit 0".to_owned(),
                    },
                    output,
                },
                Ok(status) => {
                    let code = status.code().map_or_else(
                        || "killed by a signal".to_owned(),
                        |code| format!("exit {code}"),
                    );
                    let detail = match last_line {
                        Some(line) => format!("{code}: {}", line.trim()),
                        None => code,
                    };
                    HookOutcome {
                        succeeded: false,
                        detail,
                        output,
                    }
                }
                Err(err) => HookOutcome {
                    succeeded: false,
                    detail: format!("cannot wait for the hook: {err}"),
                    output,
                },
            }
        }
    }
}

/// How long the output of a script that has ended is still read, for
/// what it wrote just before it ended.
const PIPE_DRAIN: Duration = Duration::from_millis(200);

/// A hook's process group, killed whole when dropped unless released: a
/// hook that timed out, or whose run was abandoned (a test run after a
/// stop, a server shutting down), leaves nothing of its own running.
struct ProcessGroup(Option<rustix::process::Pid>);

impl ProcessGroup {
    fn of(child: &tokio::process::Child) -> ProcessGroup {
        ProcessGroup(
            child
                .id()
                .and_then(|id| i32::try_from(id).ok())
                .and_then(rustix::process::Pid::from_raw),
        )
    }

    /// The script has ended and been reaped: its group is left alone.
    fn release(&mut self) {
        self.0 = None;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if let Some(leader) = self.0 {
            // ESRCH when the group has already gone: nothing to do.
            let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn capped_output(out: &[u8], err: &[u8]) -> Option<String> {
    let mut text = String::from_utf8_lossy(out).into_owned();
    if !err.is_empty() {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&String::from_utf8_lossy(err));
    }
    if text.is_empty() {
        return None;
    }
    if text.len() > MAX_OUTPUT_BYTES {
        let mut cut = MAX_OUTPUT_BYTES;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        let dropped = text.len() - cut;
        text.truncate(cut);
        text.push_str(&format!("\n… {dropped} more bytes not kept"));
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::adapters::hooks::{HookVars, expand, run_command};
    use crate::config::{ConfigDuration, HookCommand, HookConfig};
    use crate::domain::deployment::Hook;

    fn vars() -> HookVars {
        HookVars {
            image_tag: "v2.7.0".to_owned(),
            share: "5".to_owned(),
            production_version: "v2.6.0".to_owned(),
            canary_version: "v2.7.0".to_owned(),
            production_url: "http://10.0.0.1:9001".to_owned(),
            canary_url: "http://10.0.0.2:9002".to_owned(),
            canary_slot: crate::domain::roles::UpstreamSlot::ListedAsCanary,
            standby_version: "v2.6.0".to_owned(),
            standby_url: "http://10.0.0.1:9001".to_owned(),
            undo_window_secs: "3600".to_owned(),
        }
    }

    fn spec(args: &[&str], timeout_ms: u64) -> HookConfig {
        HookConfig {
            command: HookCommand(args.iter().map(|arg| (*arg).to_owned()).collect()),
            timeout: ConfigDuration(Duration::from_millis(timeout_ms)),
        }
    }

    #[test]
    fn arguments_are_templated() {
        assert_eq!(
            expand("deploy {image_tag} at {share}%", &vars()),
            "deploy v2.7.0 at 5%"
        );
        assert_eq!(
            expand(
                "keep {standby_version} at {standby_url} for {undo_window_secs}s",
                &vars()
            ),
            "keep v2.6.0 at http://10.0.0.1:9001 for 3600s"
        );
    }

    #[tokio::test]
    async fn a_hook_reports_its_exit_status_and_output() {
        let ok = run_command(
            Hook::Deploy,
            &spec(
                &[
                    "sh",
                    "-c",
                    "echo deploying $CANARY_IMAGE_TAG; echo warn >&2",
                ],
                10_000,
            ),
            &vars(),
        )
        .await;
        assert!(ok.succeeded);
        assert_eq!(ok.detail, "exit 0");
        assert_eq!(ok.output.as_deref(), Some("deploying v2.7.0\nwarn\n"));

        let failed = run_command(
            Hook::Deploy,
            &spec(
                &["sh", "-c", "echo image {image_tag} not found; exit 3"],
                10_000,
            ),
            &vars(),
        )
        .await;
        assert!(!failed.succeeded);
        assert_eq!(failed.detail, "exit 3: image v2.7.0 not found");
    }

    #[tokio::test]
    async fn a_hook_that_runs_too_long_is_killed_and_fails() {
        let slow = run_command(Hook::Deploy, &spec(&["sleep", "30"], 200), &vars()).await;
        assert!(!slow.succeeded);
        assert_eq!(slow.detail, "timed out after 200 ms");
        let missing =
            run_command(Hook::Deploy, &spec(&["/nonexistent/deploy"], 1000), &vars()).await;
        assert!(!missing.succeeded);
        assert!(
            missing.detail.starts_with("cannot run /nonexistent/deploy"),
            "{}",
            missing.detail
        );
    }

    #[tokio::test]
    async fn output_is_capped() {
        let loud = run_command(
            Hook::Deploy,
            &spec(
                &["sh", "-c", "head -c 100000 /dev/zero | tr '\\\\0' x"],
                10_000,
            ),
            &vars(),
        )
        .await;
        let output = loud.output.unwrap();
        assert!(output.len() < 70_000);
        assert!(
            output.ends_with("more bytes not kept"),
            "{}",
            &output[output.len() - 40..]
        );
    }
}
