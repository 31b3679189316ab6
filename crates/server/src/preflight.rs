//! What a loaded config needs from the machine, checked before `serve`
//! binds anything and by `canary check` with the same words, so a unit's
//! `ExecStartPre=canary check` catches it: the TLS certificate and key can
//! be read and used (as the user running the check, who should be the user
//! the server runs as), every hook's and test run's program exists and may be run, a
//! configured console folder holds a console, every HAProxy instance
//! answers on its stats socket and knows the backend and both servers, and
//! a Gateway API route exists, sends to both Services and may be written.
//!
//! The config itself stays pure (`Config::from_yaml`); this is the part
//! that looks at files.

use std::path::{Path, PathBuf};

use crate::adapters::tls::{self, TlsError};
use crate::config::{Config, ConfigError, ServerConfig};

/// Checks `config` (loaded from `file`, whose lines errors are placed at)
/// against the machine. `Ok` carries warnings: what works but surprises.
pub fn check(config: &Config, file: Option<&Path>) -> Result<Vec<String>, ConfigError> {
    let mut warnings = config.warnings();
    for (section, settings) in [("server", &config.server.tls), ("proxy", &config.proxy.tls)] {
        let Some(settings) = settings else { continue };
        let checked = if section == "server" {
            tls::server_config(settings).map(drop)
        } else {
            tls::proxy_config(settings).map(drop)
        };
        if let Err(err) = checked {
            let (key, message): (&str, String) = match err {
                TlsError::File { path, message, .. } if path == settings.key_file => {
                    ("key_file", format!("{}: {message}", path.display()))
                }
                TlsError::File { path, message, .. } => {
                    ("cert_file", format!("{}: {message}", path.display()))
                }
                TlsError::Pair { message, .. } => (
                    "",
                    format!("the certificate and key cannot be used together: {message}"),
                ),
            };
            let keys: Vec<&str> = [section, "tls", key]
                .into_iter()
                .filter(|key| !key.is_empty())
                .collect();
            return Err(Config::error_at(file, &keys, message));
        }
    }
    for slot in crate::domain::roles::UpstreamSlot::BOTH {
        let upstream = config.upstreams.slot(slot);
        if crate::adapters::upstream_client::needs_client(upstream)
            && let Err(why) = crate::adapters::upstream_client::tls_config(upstream)
        {
            let field = if upstream.ca_file.is_some() {
                "ca_file"
            } else {
                "url"
            };
            return Err(Config::error_at(
                file,
                &["upstreams", slot.config_key(), field],
                why,
            ));
        }
    }
    if let Some(oidc) = config.auth.as_ref().and_then(|auth| auth.oidc.as_ref())
        && let Err(why) = crate::adapters::oidc::OidcProvider::new(oidc)
    {
        let field = if oidc.ca_file.is_some() {
            "ca_file"
        } else {
            "issuer"
        };
        return Err(Config::error_at(file, &["auth", "oidc", field], why));
    }
    let hooks = [
        ("deploy", &config.hooks.deploy),
        ("health_check", &config.hooks.health_check),
        ("promote", &config.hooks.promote),
        ("rollback", &config.hooks.rollback),
        ("retire", &config.hooks.retire),
    ];
    for (name, hook) in hooks {
        let Some(hook) = hook else { continue };
        let program = &hook.command.0[0];
        if let Err(why) = runnable(program) {
            return Err(Config::error_at(
                file,
                &["hooks", name, "command"],
                format!("{program}: {why}"),
            ));
        }
    }
    for (index, run) in config.validation.test_runs.0.iter().enumerate() {
        let program = &run.command.0[0];
        if let Err(why) = runnable(program) {
            let index = index.to_string();
            return Err(Config::error_at(
                file,
                &["validation", "test_runs", &index, "command"],
                format!("test run {}: {program}: {why}", run.name.0),
            ));
        }
    }
    if let (crate::config::RouterKind::Haproxy, Some(haproxy)) =
        (&config.router.kind, &config.router.haproxy)
    {
        for socket in &haproxy.instances {
            if let Err(why) = haproxy_reachable(haproxy, socket) {
                return Err(Config::error_at(
                    file,
                    &["router", "haproxy", "instances"],
                    format!("{socket}: {why}"),
                ));
            }
        }
    }
    if let (crate::config::RouterKind::Nginx, Some(nginx)) =
        (&config.router.kind, &config.router.nginx)
    {
        for (key, command) in [
            ("test_command", &nginx.test_command),
            ("reload_command", &nginx.reload_command),
        ] {
            if let Err(why) = runnable(&command.0[0]) {
                return Err(Config::error_at(
                    file,
                    &["router", "nginx", key],
                    format!("{}: {why}", command.0[0]),
                ));
            }
        }
        let folder = nginx
            .include_file
            .parent()
            .filter(|folder| !folder.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        if !folder.is_dir() {
            return Err(Config::error_at(
                file,
                &["router", "nginx", "include_file"],
                format!(
                    "{} does not exist: canary writes the file there",
                    folder.display()
                ),
            ));
        }
    }
    if let (crate::config::RouterKind::GatewayApi, Some(gateway)) =
        (&config.router.kind, &config.router.gateway_api)
    {
        gateway_reachable(gateway)
            .map_err(|why| Config::error_at(file, &["router", "gateway_api", "route"], why))?;
        if gateway.log_listen.is_none() {
            warnings.push(
                "router.gateway_api has no log_listen: no request through the Gateway is \
                 measured, so the built-in checks read NO_DATA and never pass; send the \
                 Gateway's access log to canary (docs/router-gateway-api.md)"
                    .to_owned(),
            );
        }
    }
    let assets = &config.server.assets_dir;
    if !assets.join("index.html").is_file() {
        let missing = format!(
            "{} holds no console (no index.html): the console would answer 503",
            assets.display()
        );
        if assets == Path::new(ServerConfig::DEFAULT_ASSETS_DIR) {
            // The repository's build output, for `cargo run`: built on demand.
            warnings.push(format!(
                "{missing}; run `cargo xtask build-app`, or set server.assets_dir"
            ));
        } else {
            return Err(Config::error_at(
                file,
                &["server", "assets_dir"],
                format!("{missing}; point it at a built console (trunk's dist folder)"),
            ));
        }
    }
    Ok(warnings)
}

/// Whether `socket` is an HAProxy stats socket that knows the backend and
/// both servers: `show info`, then `get weight` on each server.
/// The route exists, canary can split it and may write it, asked of the
/// API server with a runtime of its own (the check runs before `serve`
/// starts one).
fn gateway_reachable(gateway: &crate::config::GatewayApiConfig) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| format!("cannot start a runtime to ask the Kubernetes API: {err}"))?;
    runtime.block_on(crate::adapters::router::gateway_api::check_route(gateway))
}

fn haproxy_reachable(
    config: &crate::config::HaproxyConfig,
    socket: &crate::config::RuntimeSocket,
) -> Result<(), String> {
    let ask = |command: &str| -> Result<String, String> {
        let timeout = Some(std::time::Duration::from_secs(2));
        let mut answer = String::new();
        let line = format!("{command}\n");
        let mut talk = |stream: &mut dyn ReadWrite| -> std::io::Result<()> {
            stream.write_all(line.as_bytes())?;
            match stream.read_to_string(&mut answer) {
                // HAProxy closes after its answer; something else may not:
                // what came within the time is judged below.
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    Ok(())
                }
                other => other.map(|_| ()),
            }
        };
        let result = match socket {
            crate::config::RuntimeSocket::Unix(path) => {
                std::os::unix::net::UnixStream::connect(path).and_then(|mut stream| {
                    stream.set_read_timeout(timeout)?;
                    talk(&mut stream)
                })
            }
            crate::config::RuntimeSocket::Tcp(address) => {
                std::net::TcpStream::connect_timeout(address, std::time::Duration::from_secs(2))
                    .and_then(|mut stream| {
                        stream.set_read_timeout(timeout)?;
                        talk(&mut stream)
                    })
            }
        };
        result.map_err(|err| format!("cannot reach the stats socket: {err}"))?;
        Ok(answer)
    };
    let info = ask("show info")?;
    if !info.lines().any(|line| line.starts_with("Name: HAProxy")) {
        return Err(format!(
            "not an HAProxy stats socket (its answer to `show info` began {:?})",
            info.lines().next().unwrap_or("")
        ));
    }
    for server in [&config.servers.production, &config.servers.canary] {
        let target = format!("{}/{}", config.backend.0, server.0);
        let answer = ask(&format!("get weight {target}"))?;
        if !answer.contains("(initial") {
            return Err(format!(
                "HAProxy does not know the server {target}: {}",
                answer.trim()
            ));
        }
    }
    Ok(())
}

/// A stream to talk to, unix or TCP.
trait ReadWrite: std::io::Read + std::io::Write {}
impl<T: std::io::Read + std::io::Write> ReadWrite for T {}

/// Whether `program` can be run: a path must be an executable file; a bare
/// name must be found on `PATH`.
fn runnable(program: &str) -> Result<(), String> {
    let candidates: Vec<PathBuf> = if program.contains('/') {
        vec![PathBuf::from(program)]
    } else {
        std::env::var_os("PATH")
            .map(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join(program))
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut reason = if program.contains('/') {
        "does not exist".to_owned()
    } else {
        "is not on PATH".to_owned()
    };
    for candidate in candidates {
        match std::fs::metadata(&candidate) {
            Ok(metadata) if metadata.is_file() && executable(&metadata) => return Ok(()),
            Ok(metadata) if metadata.is_file() => {
                reason = format!("{} is not executable (chmod +x)", candidate.display());
            }
            Ok(_) => reason = format!("{} is not a file", candidate.display()),
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                reason = format!("{}: {err}", candidate.display());
            }
            Err(_) => {}
        }
    }
    Err(reason)
}

#[cfg(unix)]
fn executable(metadata: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    true
}

#[cfg(test)]
mod tests {
    use super::runnable;

    #[test]
    fn a_hook_program_must_exist_and_be_executable() {
        assert!(runnable("sh").is_ok(), "found on PATH");
        assert_eq!(
            runnable("no-such-program-here").unwrap_err(),
            "is not on PATH"
        );
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("deploy.sh");
        let path = script.to_str().unwrap().to_owned();
        assert_eq!(runnable(&path).unwrap_err(), "does not exist");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        assert!(
            runnable(&path)
                .unwrap_err()
                .ends_with("is not executable (chmod +x)")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
            assert!(runnable(&path).is_ok());
        }
    }
}
