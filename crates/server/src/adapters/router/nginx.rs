//! nginx as the router. The open-source nginx has no runtime API, so canary
//! owns one file that nginx includes inside `http { }`: the two upstreams,
//! a `split_clients` with the canary's share (two decimals, exactly canary's
//! basis points), canary's log format, and a small server on loopback that
//! answers which split, and which generation of the file, it carries. A
//! change writes the file, runs `nginx -t` (a refused file is put back),
//! reloads, and is confirmed only when a new connection to that server gets
//! the new generation: `nginx -s reload` exits 0 even when the master then
//! rejects the config, so only the data plane can say it took effect.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use canary_shared::CanaryShare;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::config::{HookCommand, NginxConfig};
use crate::domain::roles::{Routing, UpstreamSlot};
use crate::domain::router::{InstanceReading, RouterCapabilities};
use crate::events::Event;
use crate::ports::Router;

/// How often the loaded split is read back.
const READ_EVERY: Duration = Duration::from_secs(1);
/// How long a reload may take to show on the data plane.
const RELOAD_DEADLINE: Duration = Duration::from_secs(5);
/// The longest wait between two attempts at a change that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// The name of the upstream block of `slot` in the written file, which the
/// team's `proxy_pass http://$canary_upstream;` reaches, and which the
/// access log names.
pub fn upstream_name(slot: UpstreamSlot) -> &'static str {
    match slot {
        UpstreamSlot::ListedAsProduction => "canary_listed_as_production",
        UpstreamSlot::ListedAsCanary => "canary_listed_as_canary",
    }
}

/// The file canary writes for `routing`, as `generation`; `servers` are the
/// `host:port` of the upstreams listed as production and canary.
pub fn render(
    routing: Routing,
    generation: u64,
    servers: &[String; 2],
    split_by: &str,
    confirm_listen: std::net::SocketAddr,
) -> String {
    let canary = upstream_name(routing.production.other());
    let production = upstream_name(routing.production);
    let points = routing.share.basis_points();
    // `split_clients` refuses a 0 % entry; 100 % is the canary alone.
    let split = match points {
        0 => format!("    * {production};\n"),
        10_000 => format!("    * {canary};\n"),
        _ => format!(
            "    {}.{:02}% {canary};\n    * {production};\n",
            points / 100,
            points % 100
        ),
    };
    format!(
        "# Written by canary (router.nginx.include_file): every change overwrites it.\n\
         upstream {listed_production} {{ server {production_server}; }}\n\
         upstream {listed_canary} {{ server {canary_server}; }}\n\
         split_clients \"{split_by}\" $canary_upstream {{\n{split}}}\n\
         log_format canary1 'canary1 nginx $canary_upstream $status $request_time ----';\n\
         server {{\n    listen {confirm_listen};\n    access_log off;\n    \
         location = /__canary {{ return 200 \"canary generation={generation} share={points} production={slot} pid=$pid\\n\"; }}\n}}\n",
        listed_production = upstream_name(UpstreamSlot::ListedAsProduction),
        listed_canary = upstream_name(UpstreamSlot::ListedAsCanary),
        production_server = servers[0],
        canary_server = servers[1],
        slot = routing.production.config_key(),
    )
}

/// What the marker answers: the generation of the file the answering
/// worker loaded, the routing it carries, and the worker's pid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marker {
    /// Which file it loaded.
    pub generation: u64,
    /// The routing that file carries.
    pub routing: Routing,
    /// The worker process that answered (absent in files written before it was added).
    pub pid: Option<u32>,
}

/// The generation, routing and worker the marker answer names.
pub fn parse_marker(body: &str) -> Option<Marker> {
    let mut generation = None;
    let mut share = None;
    let mut production = None;
    let mut pid = None;
    for field in body.split_whitespace() {
        match field.split_once('=') {
            Some(("pid", value)) => pid = value.parse::<u32>().ok(),
            Some(("generation", value)) => generation = value.parse::<u64>().ok(),
            Some(("share", value)) => {
                share = value
                    .parse::<u16>()
                    .ok()
                    .and_then(|points| CanaryShare::from_basis_points(points).ok());
            }
            Some(("production", "production")) => {
                production = Some(UpstreamSlot::ListedAsProduction)
            }
            Some(("production", "canary")) => production = Some(UpstreamSlot::ListedAsCanary),
            _ => {}
        }
    }
    Some(Marker {
        generation: generation?,
        routing: Routing {
            share: share?,
            production: production?,
        },
        pid,
    })
}

/// nginx steered through a file it includes.
#[derive(Debug)]
pub struct NginxRouter {
    wanted: watch::Sender<Routing>,
    /// Whether `split_clients` hashes something a client keeps.
    sticky: bool,
}

impl NginxRouter {
    /// Starts the task that writes, checks, reloads and reads back.
    pub fn spawn(
        config: &NginxConfig,
        servers: [String; 2],
        initial: Routing,
        events: mpsc::Sender<Event>,
    ) -> Arc<NginxRouter> {
        let (wanted, wanted_rx) = watch::channel(initial);
        tokio::spawn(converge(
            Arc::new(config.clone()),
            servers,
            wanted_rx,
            events,
        ));
        Arc::new(NginxRouter {
            wanted,
            sticky: config.split_by != crate::config::NginxVariable::default(),
        })
    }
}

impl Router for NginxRouter {
    fn capabilities(&self) -> RouterCapabilities {
        RouterCapabilities {
            kind: "nginx",
            applies_at_once: false,
            exact_zero: true,
            change: "a config file, nginx -t and a reload, confirmed through the data plane",
            granularity: "every 0.01 % (split_clients)",
            stickiness: if self.sticky {
                "each keeps its side while the share stays (split_by), and moves only towards the canary as it grows"
            } else {
                "each request drawn afresh ($request_id); set router.nginx.split_by to keep clients on a side"
            },
        }
    }

    fn effective(&self, routing: Routing) -> CanaryShare {
        routing.share
    }

    fn request(&self, routing: Routing) {
        self.wanted.send_replace(routing);
    }
}

async fn converge(
    config: Arc<NginxConfig>,
    servers: [String; 2],
    mut wanted: watch::Receiver<Routing>,
    events: mpsc::Sender<Event>,
) {
    let instance = format!("nginx ({})", config.confirm_listen.0);
    // Unique across restarts of canary: a generation never repeats.
    let mut generation = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis(),
    )
    .unwrap_or(0);
    let mut pending = true;
    let mut backoff = Duration::ZERO;
    loop {
        let routing = *wanted.borrow_and_update();
        let reading = if pending {
            generation += 1;
            match apply(&config, &servers, routing, generation).await {
                // Seen on the data plane with the new generation: what a
                // second read might still get from a worker of the old
                // config, on its way out, is not news.
                Ok(in_force) => {
                    pending = false;
                    backoff = Duration::ZERO;
                    InstanceReading::in_force(instance.clone(), Some(in_force))
                }
                Err(err) => {
                    tracing::warn!(%err, "nginx: the split is not applied");
                    backoff = (backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
                    InstanceReading::failed(instance.clone(), err)
                }
            }
        } else {
            read(&config, &instance).await
        };
        if events
            .send(Event::RouterRead {
                routing,
                readings: vec![reading],
            })
            .await
            .is_err()
        {
            return;
        }
        let wait = if pending { backoff } else { READ_EVERY };
        tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                pending = true;
                backoff = Duration::ZERO;
            }
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// Writes the file, checks it, reloads, and waits until the data plane
/// serves the new generation.
async fn apply(
    config: &NginxConfig,
    servers: &[String; 2],
    routing: Routing,
    generation: u64,
) -> Result<Routing, String> {
    let file = &config.include_file;
    let before: Option<Vec<u8>> = tokio::fs::read(file).await.ok();
    // The workers accepting connections now: after the reload, a change
    // counts only once each of them has stopped accepting (the new
    // workers answer the marker while an old one, not yet told to quit,
    // may still take a new connection on the same socket).
    let old_workers = match marker(config.confirm_listen.0).await {
        Ok(Marker { pid: Some(pid), .. }) => accepting_workers(pid),
        _ => Vec::new(),
    };
    let text = render(
        routing,
        generation,
        servers,
        &config.split_by.0,
        config.confirm_listen.0,
    );
    write_atomically(file, text.as_bytes())
        .await
        .map_err(|err| format!("cannot write {}: {err}", file.display()))?;
    if let Err(err) = run(&config.test_command).await {
        // Put the last good file back, so a reload by anyone else cannot
        // pick up the refused one.
        match before {
            Some(before) => {
                let _ = write_atomically(file, &before).await;
            }
            None => {
                let _ = tokio::fs::remove_file(file).await;
            }
        }
        return Err(format!(
            "nginx refused the new split ({}): {err}",
            config.test_command.0.join(" ")
        ));
    }
    run(&config.reload_command).await.map_err(|err| {
        format!(
            "the reload failed ({}): {err}",
            config.reload_command.0.join(" ")
        )
    })?;
    let deadline = tokio::time::Instant::now() + RELOAD_DEADLINE;
    loop {
        let past_deadline = tokio::time::Instant::now() >= deadline;
        match marker(config.confirm_listen.0).await {
            Ok(marker) if marker.generation == generation => {
                let still_accepting: Vec<u32> = old_workers
                    .iter()
                    .copied()
                    .filter(|pid| worker_accepts(*pid))
                    .collect();
                if still_accepting.is_empty() {
                    return Ok(marker.routing);
                }
                if past_deadline {
                    return Err(format!(
                        "nginx serves generation {generation}, but worker processes of the old \
                         config ({still_accepting:?}) still accept connections after {} s",
                        RELOAD_DEADLINE.as_secs()
                    ));
                }
            }
            Ok(marker) if past_deadline => {
                return Err(format!(
                    "nginx did not load the new split within {} s: it still serves generation {}, not {generation} (its error log says why)",
                    RELOAD_DEADLINE.as_secs(),
                    marker.generation
                ));
            }
            Err(err) if past_deadline => return Err(err),
            _ => {}
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the data plane serves now.
async fn read(config: &NginxConfig, instance: &str) -> InstanceReading {
    match marker(config.confirm_listen.0).await {
        Ok(marker) => InstanceReading::in_force(instance, Some(marker.routing)),
        Err(err) => InstanceReading::failed(instance, err),
    }
}

/// `GET /__canary` on a new connection: the generation and split served.
async fn marker(address: std::net::SocketAddr) -> Result<Marker, String> {
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(address).await?;
        stream
            .write_all(b"GET /__canary HTTP/1.0\r\nHost: canary\r\n\r\n")
            .await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        Ok::<_, std::io::Error>(answer)
    };
    let answer = tokio::time::timeout(Duration::from_secs(2), ask)
        .await
        .map_err(|_| format!("{address} did not answer within 2 s"))?
        .map_err(|err| format!("cannot reach the split's marker at {address}: {err}"))?;
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    parse_marker(body).ok_or_else(|| {
        format!(
            "{address} does not answer with canary's marker (is router.nginx.include_file included in nginx's http block?)"
        )
    })
}

/// The worker processes of the nginx whose worker `pid` is that accept
/// connections: its master's children titled `nginx: worker process`
/// (a worker told to quit retitles itself `… is shutting down` as it
/// closes its listening sockets). Empty where `/proc` cannot tell.
fn accepting_workers(pid: u32) -> Vec<u32> {
    let Some(master) = proc_stat(pid).map(|stat| stat.parent) else {
        return Vec::new();
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| proc_stat(*child).is_some_and(|stat| stat.parent == master))
        .filter(|child| worker_accepts(*child))
        .collect()
}

/// Whether process `pid` is an nginx worker that still accepts connections.
fn worker_accepts(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|title| is_accepting_worker_title(&String::from_utf8_lossy(&title)))
}

/// `nginx: worker process` (with the padding nginx leaves), not `… is shutting down`.
fn is_accepting_worker_title(title: &str) -> bool {
    title.trim_end_matches(['\0', ' ']) == "nginx: worker process"
}

struct ProcStat {
    parent: u32,
}

/// A process's parent, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_parent(&text).map(|parent| ProcStat { parent })
}

/// The parent pid in a `/proc/<pid>/stat` line: the second field after
/// the command name, which is in parentheses and may hold anything.
fn parse_parent(stat: &str) -> Option<u32> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(1)?.parse().ok()
}

async fn write_atomically(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let staged = file.with_extension("canary-new");
    tokio::fs::write(&staged, bytes).await?;
    tokio::fs::rename(&staged, file).await
}

/// Runs `command`; its last line of output on failure.
async fn run(command: &HookCommand) -> Result<(), String> {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(&command.0[0])
            .args(&command.0[1..])
            .stdin(std::process::Stdio::null())
            .output(),
    )
    .await
    .map_err(|_| "did not finish within 30 s".to_owned())?
    .map_err(|err| format!("cannot run it: {err}"))?;
    if output.status.success() {
        return Ok(());
    }
    let text = String::from_utf8_lossy(&output.stderr);
    // nginx says why on an `[emerg]` line, then that the test failed.
    let why = text
        .lines()
        .find(|line| line.contains("[emerg]") || line.contains("[crit]"))
        .or_else(|| text.lines().rev().find(|line| !line.trim().is_empty()))
        .unwrap_or("no output");
    Err(format!("{}: {}", output.status, why.trim()))
}

#[cfg(test)]
mod tests {
    use canary_shared::CanaryShare;

    use super::*;

    #[test]
    fn the_written_file_splits_in_basis_points_and_names_its_generation() {
        let servers = ["10.0.0.11:8080".to_owned(), "10.0.0.12:8080".to_owned()];
        let confirm = "127.0.0.1:8099".parse().unwrap();
        let at = |percent: f64, production| Routing {
            share: CanaryShare::from_percent(percent).unwrap(),
            production,
        };
        let text = render(
            at(12.5, UpstreamSlot::ListedAsProduction),
            7,
            &servers,
            "$request_id",
            confirm,
        );
        assert!(
            text.contains("split_clients \"$request_id\" $canary_upstream {"),
            "{text}"
        );
        let sticky = render(
            at(12.5, UpstreamSlot::ListedAsProduction),
            7,
            &servers,
            "$cookie_session",
            confirm,
        );
        assert!(
            sticky.contains("split_clients \"$cookie_session\" $canary_upstream {"),
            "{sticky}"
        );
        assert!(
            text.contains(
                "    12.50% canary_listed_as_canary;\n    * canary_listed_as_production;\n"
            ),
            "{text}"
        );
        assert!(text.contains("upstream canary_listed_as_canary { server 10.0.0.12:8080; }"));
        assert!(
            text.contains(
                "return 200 \"canary generation=7 share=1250 production=production pid=$pid\\n\""
            ),
            "{text}"
        );
        let zero = render(
            at(0.0, UpstreamSlot::ListedAsProduction),
            8,
            &servers,
            "$request_id",
            confirm,
        );
        assert!(
            zero.contains("    * canary_listed_as_production;\n}"),
            "no 0 % entry: {zero}"
        );
        let swapped = render(
            at(5.0, UpstreamSlot::ListedAsCanary),
            9,
            &servers,
            "$request_id",
            confirm,
        );
        assert!(
            swapped.contains(
                "    5.00% canary_listed_as_production;\n    * canary_listed_as_canary;\n"
            ),
            "{swapped}"
        );
        assert_eq!(
            parse_marker("canary generation=9 share=500 production=canary pid=4242\n"),
            Some(Marker {
                generation: 9,
                routing: at(5.0, UpstreamSlot::ListedAsCanary),
                pid: Some(4242)
            })
        );
        assert_eq!(parse_marker("<html>welcome to nginx</html>"), None);
    }

    #[test]
    fn old_workers_are_told_from_new_ones_by_their_title_and_parent() {
        assert!(is_accepting_worker_title("nginx: worker process\0\0\0\0"));
        assert!(!is_accepting_worker_title(
            "nginx: worker process is shutting down\0"
        ));
        assert!(!is_accepting_worker_title(
            "nginx: master process nginx -c /etc/nginx/nginx.conf\0"
        ));
        assert_eq!(
            parse_parent("24685 (nginx) S 24684 24684 24684 0 -1 4194624 263 0"),
            Some(24684)
        );
        assert_eq!(
            parse_parent("7 (a) b (c)) S 1 7 7 0 -1"),
            Some(1),
            "a name with parentheses and blanks"
        );
        // This very process is not an nginx worker.
        assert!(!worker_accepts(std::process::id()));
    }
}
