//! HAProxy as the router, through its Runtime API (the stats socket at
//! level `admin`): `set server <backend>/<server> weight <0-256>` on both
//! servers of every instance (and, at 0 %, `state maint` for the canary's
//! server, so no persistent client is kept there), and `get weight` to
//! read back what is in force. A task writes a requested routing until every instance has taken
//! it (retrying with backoff when one is down or refuses), and reads every
//! instance back every second; the readings go to the controller, which
//! decides whether the change is done and whether someone changed the
//! weights behind its back.
//!
//! `show stat` backs both up: a server that should carry a share but is
//! not up in HAProxy (its health check fails, or it is in maintenance)
//! gets nothing, so the split is not in force there; and HAProxy's own
//! response counters, compared with the lines its access log brought,
//! tell when log lines go missing.
//!
//! The protocol (HAProxy's management guide, §9.3): one command line per
//! connection in non-interactive mode, commands separated by `;`, the
//! answer read until HAProxy closes the connection; an empty answer to
//! `set server … weight` means success, anything else is an error message.

use std::sync::Arc;
use std::time::Duration;

use canary_shared::CanaryShare;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use crate::adapters::router::access_log::LogTally;
use crate::config::{HaproxyConfig, RuntimeSocket};
use crate::domain::roles::{Routing, UpstreamSlot};
use crate::domain::router::{
    InstanceReading, LogCoverage, RouterCapabilities, haproxy_routing, haproxy_weights,
    log_coverage,
};
use crate::events::Event;
use crate::ports::Router;

/// How long one Runtime API exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often every instance is read back.
const READ_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts at a write that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How long a server that should take a share may stay down in HAProxy
/// (a canary just deployed, passing its first health checks) before that
/// counts as a failure rather than a wait.
const UP_GRACE: Duration = Duration::from_secs(30);
/// The stretch over which HAProxy's counters and the log lines are compared.
const COVERAGE_WINDOW: Duration = Duration::from_secs(10);

/// HAProxy instances steered through their Runtime API.
#[derive(Debug)]
pub struct HaproxyRouter {
    wanted: watch::Sender<Routing>,
}

impl HaproxyRouter {
    /// Starts the task that applies and reads back routings on the
    /// instances of `config`, reporting to `events`; it ends when the
    /// router is dropped or the controller is gone.
    pub fn spawn(
        config: &HaproxyConfig,
        initial: Routing,
        events: mpsc::Sender<Event>,
        tally: Arc<LogTally>,
    ) -> Arc<HaproxyRouter> {
        let (wanted, wanted_rx) = watch::channel(initial);
        tokio::spawn(converge(Arc::new(config.clone()), wanted_rx, events, tally));
        Arc::new(HaproxyRouter { wanted })
    }
}

impl Router for HaproxyRouter {
    fn capabilities(&self) -> RouterCapabilities {
        RouterCapabilities {
            kind: "haproxy",
            applies_at_once: false,
            // Weight 0 still admits clients that stick to the server by cookie.
            exact_zero: false,
            change: "the Runtime API (set server … weight), read back with get weight",
            granularity: "every whole percent exact, others to the nearest share HAProxy's weights (0–256) can give",
            stickiness: "as HAProxy's balance and cookie settings say; weight 0 still admits clients that stick to the server",
        }
    }

    fn effective(&self, routing: Routing) -> CanaryShare {
        haproxy_weights(routing).1
    }

    fn request(&self, routing: Routing) {
        // `send_replace` marks the value changed even when it is equal: a
        // request again (after drift) is written again.
        self.wanted.send_replace(routing);
    }
}

/// Writes the wanted routing to every instance that has not taken it, and
/// reads them all back, until the router is dropped.
async fn converge(
    config: Arc<HaproxyConfig>,
    mut wanted: watch::Receiver<Routing>,
    events: mpsc::Sender<Event>,
    tally: Arc<LogTally>,
) {
    let instances = config.instances.len();
    // Which instances still need the wanted routing written.
    let mut to_write = vec![true; instances];
    let mut backoff = Duration::ZERO;
    let mut next_attempt = tokio::time::Instant::now();
    let mut requested_at = tokio::time::Instant::now();
    let mut coverage = CoverageWindow::default();
    let mut last_note: Option<String> = None;
    loop {
        let routing = *wanted.borrow_and_update();
        let now = tokio::time::Instant::now();
        if to_write.iter().any(|pending| *pending) && now >= next_attempt {
            let mut failed = false;
            for (index, socket) in config.instances.iter().enumerate() {
                if !to_write[index] {
                    continue;
                }
                match write(&config, socket, routing).await {
                    Ok(()) => to_write[index] = false,
                    Err(err) => {
                        failed = true;
                        tracing::warn!(instance = %socket, %err, "haproxy: cannot set the weights");
                    }
                }
            }
            backoff = if failed {
                (backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF)
            } else {
                Duration::ZERO
            };
            next_attempt = tokio::time::Instant::now() + backoff;
        }
        let mut readings = Vec::with_capacity(instances);
        let mut counted = Some([0u64; 2]);
        let grace_over = requested_at.elapsed() > UP_GRACE;
        for (index, socket) in config.instances.iter().enumerate() {
            let (mut reading, stats) = read(&config, socket, routing, grace_over).await;
            if to_write[index] && reading.error.is_none() {
                reading.error = Some("the new weights are not written yet".to_owned());
            }
            counted = match (counted, stats) {
                (Some(sum), Some(stats)) => {
                    Some([sum[0] + stats[0].answered(), sum[1] + stats[1].answered()])
                }
                _ => None,
            };
            readings.push(reading);
        }
        if events
            .send(Event::RouterRead { routing, readings })
            .await
            .is_err()
        {
            return;
        }
        let note = match counted {
            Some(counted) => coverage.note(&config, counted, tally.lines()),
            // An instance that cannot be read leaves the counts incomplete.
            None => {
                coverage = CoverageWindow::default();
                last_note.clone()
            }
        };
        if note != last_note {
            last_note.clone_from(&note);
            if events
                .send(Event::RouterMeasurement { note })
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                to_write.fill(true);
                backoff = Duration::ZERO;
                next_attempt = tokio::time::Instant::now();
                requested_at = tokio::time::Instant::now();
            }
            () = tokio::time::sleep(READ_EVERY) => {}
        }
    }
}

/// Sets both servers' weights on one instance.
async fn write(
    config: &HaproxyConfig,
    socket: &RuntimeSocket,
    routing: Routing,
) -> Result<(), String> {
    let (weights, _) = haproxy_weights(routing);
    let backend = &config.backend.0;
    let mut commands: Vec<String> = weights
        .iter()
        .map(|(slot, weight)| {
            format!(
                "set server {backend}/{} weight {weight}",
                server_of(config, *slot)
            )
        })
        .collect();
    // At 0 % the canary's server goes into maintenance too: weight 0 still
    // admits clients a persistence cookie or stick table sends there, MAINT
    // does not. Any other share takes it out again.
    let canary_server = server_of(config, routing.slot_of(canary_shared::Side::Canary));
    let state = if routing.share == CanaryShare::ZERO {
        "maint"
    } else {
        "ready"
    };
    commands.push(format!(
        "set server {backend}/{canary_server} state {state}"
    ));
    let command = commands.join(";");
    let answer = exchange(socket, &command).await?;
    let answer = answer.trim();
    if answer.is_empty() {
        Ok(())
    } else {
        Err(format!("HAProxy refused `{command}`: {answer}"))
    }
}

/// HAProxy's counts over the last stretch, next to the log's.
#[derive(Debug, Default)]
struct CoverageWindow {
    /// (when, HAProxy's answered counts, log lines), by slot; oldest first.
    samples: std::collections::VecDeque<(tokio::time::Instant, [u64; 2], [u64; 2])>,
}

impl CoverageWindow {
    /// Adds a sample; what is missing from the log over the last window.
    fn note(
        &mut self,
        config: &HaproxyConfig,
        counted: [u64; 2],
        logged: [u64; 2],
    ) -> Option<String> {
        let now = tokio::time::Instant::now();
        // HAProxy's counters start again at a reload: so does the window.
        if self
            .samples
            .back()
            .is_some_and(|(_, before, _)| counted[0] < before[0] || counted[1] < before[1])
        {
            self.samples.clear();
        }
        self.samples.push_back((now, counted, logged));
        while self.samples.len() > 1
            && self
                .samples
                .get(1)
                .is_some_and(|(at, _, _)| now.duration_since(*at) >= COVERAGE_WINDOW)
        {
            self.samples.pop_front();
        }
        let (since, counted_then, logged_then) = *self.samples.front()?;
        if now.duration_since(since) < COVERAGE_WINDOW {
            return None;
        }
        let server = |slot: usize| LogCoverage {
            counted: counted[slot] - counted_then[slot],
            logged: logged[slot].saturating_sub(logged_then[slot]),
        };
        log_coverage(&[
            (&config.servers.production.0, server(0)),
            (&config.servers.canary.0, server(1)),
        ])
    }
}

/// What one instance has in force, and its counters for the two servers
/// (listed as production, as canary) when it could be read.
async fn read(
    config: &HaproxyConfig,
    socket: &RuntimeSocket,
    routing: Routing,
    grace_over: bool,
) -> (InstanceReading, Option<[ServerStat; 2]>) {
    let backend = &config.backend.0;
    let command = format!(
        "get weight {backend}/{};get weight {backend}/{};show stat {backend} 4 -1",
        config.servers.production.0, config.servers.canary.0
    );
    let instance = socket.to_string();
    let answer = match exchange(socket, &command).await {
        Ok(answer) => answer,
        Err(err) => return (InstanceReading::failed(instance, err), None),
    };
    let (weights, stats) = match answer.find("# pxname") {
        Some(at) => answer.split_at(at),
        None => (answer.as_str(), ""),
    };
    let (listed_production, listed_canary) = match parse_weights(weights) {
        Ok(weights) => weights,
        Err(err) => return (InstanceReading::failed(instance, err), None),
    };
    let in_force = haproxy_routing(listed_production, listed_canary, routing.production);
    let stats = match parse_show_stat(stats) {
        Ok(stats) => stats,
        Err(err) => return (InstanceReading::failed(instance, err), None),
    };
    let find = |server: &str| stats.iter().find(|stat| stat.server == server).cloned();
    let (Some(production_stat), Some(canary_stat)) = (
        find(&config.servers.production.0),
        find(&config.servers.canary.0),
    ) else {
        return (
            InstanceReading::failed(instance, "show stat does not list both servers"),
            None,
        );
    };
    let pair = [production_stat, canary_stat];
    // A server that should take a share but is not up takes none.
    let (weights, _) = haproxy_weights(routing);
    for (slot, weight) in weights {
        let stat = &pair[match slot {
            UpstreamSlot::ListedAsProduction => 0,
            UpstreamSlot::ListedAsCanary => 1,
        }];
        if weight > 0 && !stat.serving() {
            let why = format!(
                "server {backend}/{} is {} in HAProxy{}: it gets none of its share",
                stat.server,
                stat.status,
                if stat.check.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", stat.check)
                }
            );
            let reading = if grace_over {
                InstanceReading::failed(instance, why)
            } else {
                InstanceReading::waiting(instance, why)
            };
            return (reading, Some(pair));
        }
    }
    (InstanceReading::in_force(instance, in_force), Some(pair))
}

/// One server's line of `show stat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerStat {
    /// Its name (`svname`).
    pub server: String,
    /// `UP`, `DOWN`, `MAINT`, `no check`, `UP 1/3` (going down), ….
    pub status: String,
    /// Why the last health check said so (`check_desc`), if it has checks.
    pub check: String,
    /// HTTP responses it sent (`hrsp_1xx` … `hrsp_other`).
    pub responses: u64,
    /// Of those, 5xx.
    pub responses_5xx: u64,
    /// Responses that broke off (`eresp`).
    pub response_errors: u64,
    /// Connections to it that failed (`econ`; retries count again).
    pub connection_errors: u64,
}

impl ServerStat {
    /// Whether HAProxy sends it new requests.
    fn serving(&self) -> bool {
        self.status.starts_with("UP") || self.status == "no check"
    }

    /// Requests it answered, as its access log would carry them.
    fn answered(&self) -> u64 {
        self.responses + self.response_errors
    }
}

/// The server lines of `show stat`'s CSV (`# pxname,svname,…` first).
pub fn parse_show_stat(csv: &str) -> Result<Vec<ServerStat>, String> {
    let mut lines = csv.lines().filter(|line| !line.trim().is_empty());
    let header = lines
        .next()
        .and_then(|line| line.strip_prefix("# "))
        .ok_or_else(|| format!("show stat answered {:?}", csv.trim()))?;
    let columns: Vec<&str> = header.split(',').collect();
    let column = |name: &str| {
        columns
            .iter()
            .position(|column| *column == name)
            .ok_or_else(|| format!("show stat has no {name} column"))
    };
    let (svname, status, check) = (column("svname")?, column("status")?, column("check_desc")?);
    let responses = [
        "hrsp_1xx",
        "hrsp_2xx",
        "hrsp_3xx",
        "hrsp_4xx",
        "hrsp_5xx",
        "hrsp_other",
    ]
    .map(column);
    let (hrsp_5xx, eresp, econ) = (column("hrsp_5xx")?, column("eresp")?, column("econ")?);
    let mut servers = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let text = |at: usize| fields.get(at).copied().unwrap_or_default();
        let count = |at: usize| text(at).parse::<u64>().unwrap_or(0);
        let name = text(svname);
        if name == "BACKEND" || name == "FRONTEND" {
            continue;
        }
        let mut sent = 0;
        for at in &responses {
            sent += count(*at.as_ref().map_err(Clone::clone)?);
        }
        servers.push(ServerStat {
            server: name.to_owned(),
            status: text(status).to_owned(),
            check: text(check).to_owned(),
            responses: sent,
            responses_5xx: count(hrsp_5xx),
            response_errors: count(eresp),
            connection_errors: count(econ),
        });
    }
    Ok(servers)
}

/// The current weights from the answers to two `get weight`:
/// `"<current> (initial <config>)"` per line.
fn parse_weights(answer: &str) -> Result<(u16, u16), String> {
    let mut weights = answer
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.split_whitespace()
                .next()
                .and_then(|first| first.parse::<u16>().ok())
                .filter(|_| line.contains("(initial"))
                .ok_or_else(|| format!("HAProxy answered {:?}", line.trim()))
        });
    match (weights.next(), weights.next()) {
        (Some(production), Some(canary)) => Ok((production?, canary?)),
        _ => Err(format!("HAProxy answered {:?}", answer.trim())),
    }
}

fn server_of(config: &HaproxyConfig, slot: UpstreamSlot) -> &str {
    match slot {
        UpstreamSlot::ListedAsProduction => &config.servers.production.0,
        UpstreamSlot::ListedAsCanary => &config.servers.canary.0,
    }
}

/// One command line and HAProxy's whole answer.
pub async fn exchange(socket: &RuntimeSocket, command: &str) -> Result<String, String> {
    let line = format!("{command}\n");
    let talk = async {
        let mut answer = String::new();
        match socket {
            RuntimeSocket::Unix(path) => {
                let mut stream = tokio::net::UnixStream::connect(path).await?;
                stream.write_all(line.as_bytes()).await?;
                stream.read_to_string(&mut answer).await?;
            }
            RuntimeSocket::Tcp(address) => {
                let mut stream = tokio::net::TcpStream::connect(address).await?;
                stream.write_all(line.as_bytes()).await?;
                stream.read_to_string(&mut answer).await?;
            }
        }
        Ok::<_, std::io::Error>(answer)
    };
    match tokio::time::timeout(EXCHANGE_TIMEOUT, talk).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(format!("cannot reach the stats socket: {err}")),
        Err(_) => Err(format!(
            "the stats socket did not answer within {} s",
            EXCHANGE_TIMEOUT.as_secs()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{ServerStat, parse_show_stat, parse_weights};

    /// HAProxy 2.6.12's `show stat app 4 -1`: `prod` answered 3 requests
    /// (one 503), `canary` fails its health check.
    const SHOW_STAT: &str = "# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,agent_health,addr,cookie,mode,algo,\n\
app,prod,0,0,0,1,,3,246,651,,0,,0,1,0,0,no check,1,1,0,,,10,,,1,3,1,,3,,2,1,,2,,,,0,2,0,0,1,0,,,,0,0,0,,,,,0,,,0,0,0,0,,,,,,,,,,,,127.0.0.1:18112,,http,,\n\
app,canary,0,0,0,0,,0,0,0,,0,,0,0,0,0,DOWN,0,1,0,1,1,10,10,,1,3,2,,0,,2,0,,0,L4CON,,0,0,0,0,0,0,0,,,,0,0,0,,,,,-1,Connection refused,,0,0,0,0,,,,Layer4 connection problem,,2,3,0,,,,127.0.0.1:18113,,http,,\n\n";

    #[test]
    fn show_stat_gives_each_server_s_state_and_counts() {
        let stats = parse_show_stat(SHOW_STAT).unwrap();
        assert_eq!(
            stats,
            [
                ServerStat {
                    server: "prod".to_owned(),
                    status: "no check".to_owned(),
                    check: String::new(),
                    responses: 3,
                    responses_5xx: 1,
                    response_errors: 1,
                    connection_errors: 0,
                },
                ServerStat {
                    server: "canary".to_owned(),
                    status: "DOWN".to_owned(),
                    check: "Layer4 connection problem".to_owned(),
                    responses: 0,
                    responses_5xx: 0,
                    response_errors: 0,
                    connection_errors: 0,
                },
            ]
        );
        assert!(stats[0].serving() && !stats[1].serving());
        assert_eq!(stats[0].answered(), 4);
        assert!(parse_show_stat("Unknown command.\n").is_err());
    }

    #[test]
    fn get_weight_answers_are_read_and_anything_else_is_an_error() {
        assert_eq!(
            parse_weights("19 (initial 1)\n1 (initial 1)\n"),
            Ok((19, 1))
        );
        assert_eq!(
            parse_weights("No such server.\n1 (initial 1)\n"),
            Err("HAProxy answered \"No such server.\"".to_owned())
        );
        assert!(parse_weights("").is_err());
        assert!(parse_weights("Unknown command.\n").is_err());
    }
}
