//! `canary demo --router haproxy|nginx`: the demo's traffic through a real
//! HAProxy or nginx (Debian's, when installed) that canary steers, set up
//! in the demo's data folder as `docs/router-haproxy.md` and
//! `docs/router-nginx.md` describe, and stopped with the demo.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::adapters::router::nginx;
use crate::domain::roles::{Routing, UpstreamSlot};

/// Which router the demo's traffic goes through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DemoRouter {
    /// HAProxy, through its Runtime API.
    Haproxy,
    /// nginx, through a file canary writes.
    Nginx,
}

/// A running router in front of the demo services, stopped when dropped.
#[derive(Debug)]
pub struct ExternalRouter {
    child: Child,
    /// Where the demo's load goes.
    pub front: SocketAddr,
    /// The `router:` section of the demo's config.
    pub config_yaml: String,
}

impl Drop for ExternalRouter {
    fn drop(&mut self) {
        terminate(&mut self.child);
    }
}

/// Stops a router started in the foreground: SIGTERM, so an nginx master
/// stops its workers first (SIGKILL would leave them running, orphaned),
/// then SIGKILL if it has not exited within three seconds.
pub fn terminate(child: &mut Child) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        for _ in 0..60 {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
}

fn free_tcp() -> std::io::Result<SocketAddr> {
    std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()
}

fn free_udp() -> std::io::Result<SocketAddr> {
    std::net::UdpSocket::bind("127.0.0.1:0")?.local_addr()
}

/// Starts `kind` in `dir` in front of the services at `production` and
/// `canary` (`host:port`), with canary's split at 0 %.
pub fn start(
    kind: DemoRouter,
    dir: &Path,
    production: &str,
    canary: &str,
) -> Result<ExternalRouter, String> {
    let io = |err: std::io::Error| format!("cannot set the router up in {}: {err}", dir.display());
    let front = free_tcp().map_err(io)?;
    let log = free_udp().map_err(io)?;
    let (program, args, config_yaml) = match kind {
        DemoRouter::Haproxy => {
            let socket = dir.join("haproxy-admin.sock");
            let _ = std::fs::remove_file(&socket);
            let config = dir.join("haproxy.cfg");
            std::fs::write(
                &config,
                format!(
                    "global\n    stats socket {socket} mode 600 level admin\n    log {log} local0\n\
                     defaults\n    mode http\n    log global\n    log-format \"canary1 %b %s %ST %Ta %tsc\"\n\
                     \x20   timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n\
                     frontend web\n    bind {front}\n    default_backend app\n\
                     backend app\n    balance roundrobin\n    server prod {production} weight 1\n    server canary {canary} weight 0\n",
                    socket = socket.display(),
                ),
            )
            .map_err(io)?;
            (
                "haproxy",
                vec![
                    "-db".to_owned(),
                    "-f".to_owned(),
                    config.to_string_lossy().into_owned(),
                ],
                format!(
                    "router:\n  kind: haproxy\n  haproxy: {{ instances: [{socket}], backend: app, servers: {{ production: prod, canary: canary }}, log_listen: \"{log}\" }}\n",
                    socket = serde_json::Value::String(socket.to_string_lossy().into_owned()),
                ),
            )
        }
        DemoRouter::Nginx => {
            let confirm = free_tcp().map_err(io)?;
            let prefix = dir.join("nginx");
            std::fs::create_dir_all(prefix.join("tmp")).map_err(io)?;
            let split = prefix.join("split.conf");
            let routing = Routing {
                share: canary_shared::CanaryShare::ZERO,
                production: UpstreamSlot::ListedAsProduction,
            };
            let servers = [production.to_owned(), canary.to_owned()];
            std::fs::write(
                &split,
                nginx::render(routing, 1, &servers, "$request_id", confirm),
            )
            .map_err(io)?;
            let p = prefix.display();
            let conf = prefix.join("nginx.conf");
            std::fs::write(
                &conf,
                format!(
                    "worker_processes 1;\npid {p}/nginx.pid;\nerror_log {p}/error.log;\nevents {{}}\nhttp {{\n\
                     client_body_temp_path {p}/tmp/body;\nproxy_temp_path {p}/tmp/proxy;\nfastcgi_temp_path {p}/tmp/f;\n\
                     uwsgi_temp_path {p}/tmp/u;\nscgi_temp_path {p}/tmp/s;\naccess_log off;\n\
                     include {split};\nserver {{\n    listen {front};\n    location / {{\n        proxy_pass http://$canary_upstream;\n\
                     \x20       access_log syslog:server={log} canary1;\n    }}\n}}\n}}\n",
                    split = split.display(),
                ),
            )
            .map_err(io)?;
            let quoted = |text: String| serde_json::Value::String(text).to_string();
            let base = [
                quoted("nginx".to_owned()),
                quoted("-p".to_owned()),
                quoted(prefix.to_string_lossy().into_owned()),
                quoted("-c".to_owned()),
                quoted(conf.to_string_lossy().into_owned()),
            ]
            .join(", ");
            (
                "nginx",
                vec![
                    "-p".to_owned(),
                    prefix.to_string_lossy().into_owned(),
                    "-c".to_owned(),
                    conf.to_string_lossy().into_owned(),
                    "-g".to_owned(),
                    "daemon off;".to_owned(),
                ],
                format!(
                    "router:\n  kind: nginx\n  nginx: {{ include_file: {split}, test_command: [{base}, \"-t\"], reload_command: [{base}, \"-s\", \"reload\"], confirm_listen: \"{confirm}\", log_listen: \"{log}\" }}\n",
                    split = quoted(split.to_string_lossy().into_owned()),
                ),
            )
        }
    };
    let child = Command::new(program)
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|err| {
            format!("cannot start {program} ({err}); install Debian's package: apt-get install {program}")
        })?;
    let mut router = ExternalRouter {
        child,
        front,
        config_yaml,
    };
    for _ in 0..200 {
        if std::net::TcpStream::connect(front).is_ok() {
            return Ok(router);
        }
        if let Ok(Some(status)) = router.child.try_wait() {
            return Err(format!("{program} stopped at once ({status})"));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(format!("{program} does not listen on {front} after 5 s"))
}
