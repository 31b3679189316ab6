//! Every request an external router carried, measured from its access log:
//! HAProxy sends one syslog datagram per request (UDP, to canary's listener
//! on loopback) in the `log-format` canary ships, and each line feeds the
//! same recorder as the built-in proxy, so the checks, the charts and the
//! judge work unchanged. A line that does not parse is counted (in
//! `/metrics`, `canary_router_log_lines_total`) and logged, never guessed at.
//!
//! The format, after the syslog header (`docs/router-haproxy.md`):
//!
//! ```text
//! log-format "canary1 %b %s %ST %Ta %tsc"
//! ```
//!
//! and for nginx (`$request_time` in seconds, with a dot; 499 for a client
//! that went away):
//!
//! ```text
//! log_format canary1 'canary1 nginx $canary_upstream $status $request_time ----';
//! ```
//!
//! backend, server, status (-1 when the client went away before an
//! answer), the request's active time in milliseconds, and the termination
//! state (its first letter says who ended the session: `C` the client, `s`
//! or `S` the server side).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use canary_shared::Side;
use tokio::net::UdpSocket;

use crate::adapters::own_metrics::OwnMetrics;
use crate::adapters::proxy::SharedRouting;
use crate::adapters::recorder::{Outcome, Recorder, TransportFailure};
use crate::domain::roles::UpstreamSlot;

/// Lines recorded per server, for a router that counts its requests too
/// (HAProxy's `show stat`) to tell whether lines go missing.
#[derive(Debug, Default)]
pub struct LogTally {
    /// By slot: the server listed as production, then as canary.
    lines: [AtomicU64; 2],
}

impl LogTally {
    fn count(&self, slot: UpstreamSlot) {
        self.lines[slot_index(slot)].fetch_add(1, Ordering::Relaxed);
    }

    /// Lines recorded so far, by slot (listed as production, as canary).
    pub fn lines(&self) -> [u64; 2] {
        [
            self.lines[0].load(Ordering::Relaxed),
            self.lines[1].load(Ordering::Relaxed),
        ]
    }
}

fn slot_index(slot: UpstreamSlot) -> usize {
    match slot {
        UpstreamSlot::ListedAsProduction => 0,
        UpstreamSlot::ListedAsCanary => 1,
    }
}

/// The marker that starts canary's part of a line.
pub const MARKER: &str = "canary1";

/// The names a router's log lines use for the backend and the two
/// upstreams' servers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogNames {
    /// The backend (HAProxy) or `nginx`.
    pub backend: String,
    /// The server that is the upstream listed as production.
    pub production: String,
    /// The server that is the upstream listed as canary.
    pub canary: String,
}

/// One request as the log line tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoggedRequest {
    /// The backend.
    pub backend: String,
    /// The server (`<NOSRV>` when none was chosen).
    pub server: String,
    /// The status sent, if any.
    pub status: Option<u16>,
    /// Active time, in milliseconds.
    pub active_ms: u64,
    /// The termination state.
    pub termination: String,
}

/// Reads canary's part of one syslog datagram, or says why it cannot.
pub fn parse(datagram: &str) -> Result<LoggedRequest, String> {
    let Some(start) = datagram.find(MARKER) else {
        return Err("no canary1 marker: is the backend's log-format canary's?".to_owned());
    };
    let mut fields = datagram[start + MARKER.len()..].split_whitespace();
    let mut next = |name: &str| {
        fields
            .next()
            .ok_or_else(|| format!("the line ends before its {name}"))
    };
    let backend = next("backend")?.to_owned();
    let server = next("server")?.to_owned();
    let status = next("status")?;
    let status = match status.parse::<i32>() {
        Ok(-1) => None,
        Ok(code) if (100..=599).contains(&code) => Some(code as u16),
        _ => return Err(format!("status {status:?} is not an HTTP status or -1")),
    };
    let active = next("active time")?;
    let active_ms = if active.contains('.') {
        // nginx's `$request_time`: seconds with millisecond resolution.
        match active.parse::<f64>() {
            Ok(secs) if secs.is_finite() && secs >= 0.0 => (secs * 1000.0).round() as u64,
            _ => return Err(format!("active time {active:?} is not a number of seconds")),
        }
    } else {
        match active.parse::<i64>() {
            Ok(ms) if ms >= 0 => ms as u64,
            // HAProxy writes -1 when the time is not known (an aborted request).
            Ok(-1) => 0,
            _ => {
                return Err(format!(
                    "active time {active:?} is not a number of milliseconds"
                ));
            }
        }
    };
    let termination = next("termination state")?.to_owned();
    Ok(LoggedRequest {
        backend,
        server,
        status,
        active_ms,
        termination,
    })
}

/// What a logged request counts as for its side: the status when the
/// server answered; a transport failure when HAProxy had to answer for it
/// (the server refused, reset or timed out); the client's fault when the
/// client went away first.
pub fn outcome(request: &LoggedRequest) -> Outcome {
    let ended_by = request.termination.chars().next().unwrap_or('-');
    match (ended_by, request.status) {
        // nginx logs a client that went away first as 499.
        ('C' | 'c', _) | (_, Some(499)) => Outcome::ClientError,
        ('s', _) => Outcome::Transport(TransportFailure::Timeout),
        ('S', _) => Outcome::Transport(TransportFailure::Reset),
        (_, Some(status)) => Outcome::Status(status),
        (_, None) => Outcome::Transport(TransportFailure::Other),
    }
}

/// Receives the access log on `socket` until the task is dropped, recording
/// each request for the side its server plays under `routing`.
pub async fn run(
    socket: UdpSocket,
    names: LogNames,
    routing: SharedRouting,
    recorder: Arc<Recorder>,
    counts: Arc<OwnMetrics>,
    tally: Arc<LogTally>,
) {
    let mut buffer = vec![0u8; 8192];
    loop {
        let Ok(length) = socket.recv(&mut buffer).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let text = String::from_utf8_lossy(&buffer[..length]);
        let parsed = parse(&text).and_then(|request| {
            let slot = if request.server == names.production {
                UpstreamSlot::ListedAsProduction
            } else if request.server == names.canary {
                UpstreamSlot::ListedAsCanary
            } else {
                return Err(format!(
                    "server {:?} is neither {} nor {}",
                    request.server, names.production, names.canary
                ));
            };
            if request.backend != names.backend {
                return Err(format!(
                    "backend {:?} is not {}",
                    request.backend, names.backend
                ));
            }
            Ok((slot, request))
        });
        match parsed {
            Ok((slot, request)) => {
                let side = if routing.get().production == slot {
                    Side::Production
                } else {
                    Side::Canary
                };
                recorder.record(
                    side,
                    outcome(&request),
                    Duration::from_millis(request.active_ms),
                );
                counts.log_line(true);
                tally.count(slot);
            }
            Err(reason) => {
                let unusable = counts.log_line(false);
                // Logged, but not every one of a flood.
                if unusable.is_power_of_two() {
                    tracing::warn!(%reason, unusable, line = %text.trim_end(), "access log: a line canary cannot use");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_syslog_line_in_canarys_format_is_read_and_others_are_refused() {
        let line = "<134>Dec  6 04:00:00 haproxy[123]: canary1 app canary 503 12 sC--";
        let request = parse(line).unwrap();
        assert_eq!(request.backend, "app");
        assert_eq!(request.server, "canary");
        assert_eq!(request.status, Some(503));
        assert_eq!(request.active_ms, 12);
        assert_eq!(
            outcome(&request),
            Outcome::Transport(TransportFailure::Timeout)
        );
        let ok = parse("<134>haproxy: canary1 app prod 200 4 ----").unwrap();
        assert_eq!(outcome(&ok), Outcome::Status(200));
        let gone = parse("canary1 app prod -1 -1 CD--").unwrap();
        assert_eq!(outcome(&gone), Outcome::ClientError);
        assert!(parse("<134>haproxy: 127.0.0.1:5000 GET /").is_err());
        assert!(parse("canary1 app prod 999 4 ----").is_err());
        assert!(parse("canary1 app prod 200").is_err());
        assert!(parse("canary1 app prod 200 soon ----").is_err());
        // nginx: seconds with a dot, and 499 for a client that left.
        let nginx =
            parse("<190>nginx: canary1 nginx canary_listed_as_canary 200 0.012 ----").unwrap();
        assert_eq!(nginx.active_ms, 12);
        let left = parse("canary1 nginx canary_listed_as_canary 499 0.100 ----").unwrap();
        assert_eq!(outcome(&left), Outcome::ClientError);
    }
}
