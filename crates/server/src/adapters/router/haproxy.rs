//! HAProxy as the router, through its Runtime API (the stats socket at
//! level `admin`): `set server <backend>/<server> weight <0-256>` on both
//! servers of every instance, and `get weight` to read back what is in
//! force. A task writes a requested routing until every instance has taken
//! it (retrying with backoff when one is down or refuses), and reads every
//! instance back every second; the readings go to the controller, which
//! decides whether the change is done and whether someone changed the
//! weights behind its back.
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

use crate::config::{HaproxyConfig, RuntimeSocket};
use crate::domain::roles::{Routing, UpstreamSlot};
use crate::domain::router::{
    InstanceReading, RouterCapabilities, haproxy_routing, haproxy_weights,
};
use crate::events::Event;
use crate::ports::Router;

/// How long one Runtime API exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(2);
/// How often every instance is read back.
const READ_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts at a write that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

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
    ) -> Arc<HaproxyRouter> {
        let (wanted, wanted_rx) = watch::channel(initial);
        tokio::spawn(converge(Arc::new(config.clone()), wanted_rx, events));
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
            change: "Runtime API (set server … weight), read back with get weight",
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
) {
    let instances = config.instances.len();
    // Which instances still need the wanted routing written.
    let mut to_write = vec![true; instances];
    let mut backoff = Duration::ZERO;
    let mut next_attempt = tokio::time::Instant::now();
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
        for (index, socket) in config.instances.iter().enumerate() {
            let mut reading = read(&config, socket, routing.production).await;
            if to_write[index] && reading.error.is_none() {
                reading.error = Some("the new weights are not written yet".to_owned());
            }
            readings.push(reading);
        }
        if events
            .send(Event::RouterRead { routing, readings })
            .await
            .is_err()
        {
            return;
        }
        tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                to_write.fill(true);
                backoff = Duration::ZERO;
                next_attempt = tokio::time::Instant::now();
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
    let command = weights
        .iter()
        .map(|(slot, weight)| {
            format!(
                "set server {backend}/{} weight {weight}",
                server_of(config, *slot)
            )
        })
        .collect::<Vec<_>>()
        .join(";");
    let answer = exchange(socket, &command).await?;
    let answer = answer.trim();
    if answer.is_empty() {
        Ok(())
    } else {
        Err(format!("HAProxy refused `{command}`: {answer}"))
    }
}

/// What one instance has in force.
async fn read(
    config: &HaproxyConfig,
    socket: &RuntimeSocket,
    production: UpstreamSlot,
) -> InstanceReading {
    let backend = &config.backend.0;
    let command = format!(
        "get weight {backend}/{};get weight {backend}/{}",
        config.servers.production.0, config.servers.canary.0
    );
    let instance = socket.to_string();
    match exchange(socket, &command).await {
        Ok(answer) => match parse_weights(&answer) {
            Ok((listed_production, listed_canary)) => InstanceReading::in_force(
                instance,
                haproxy_routing(listed_production, listed_canary, production),
            ),
            Err(err) => InstanceReading::failed(instance, err),
        },
        Err(err) => InstanceReading::failed(instance, err),
    }
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
    use super::parse_weights;

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
