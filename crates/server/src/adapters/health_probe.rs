//! Active health checks: a task per upstream that requests the configured
//! path on every interval and reports each outcome to the controller.

use std::error::Error as StdError;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;

use crate::adapters::upstream_client::{self, UpstreamClient};
use crate::config::UpstreamConfig;
use crate::domain::health::ProbeOutcome;
use crate::domain::roles::UpstreamSlot;
use crate::events::Event;

/// The HTTP client of one upstream's probes: in the upstream's protocol
/// (HTTP/1.1 or HTTP/2, over TLS for an `https` URL).
pub type ProbeClient = UpstreamClient<Empty<Bytes>>;

/// A keep-alive client for `upstream` whose connects give up after
/// `connect_timeout`; the reason when its TLS settings cannot be used.
pub fn client(upstream: &UpstreamConfig, connect_timeout: Duration) -> Result<ProbeClient, String> {
    let tls = upstream_client::tls_config(upstream)?;
    Ok(upstream_client::client(upstream, &tls, connect_timeout))
}

/// Probes `upstream` forever, sending every outcome as an [`Event::Probed`].
///
/// Returns when the controller has gone away.
pub async fn run(slot: UpstreamSlot, upstream: UpstreamConfig, events: mpsc::Sender<Event>) {
    let check = &upstream.health_check;
    let client = client(&upstream, check.timeout.0);
    let url = upstream.url.join(&check.path.0);
    let mut interval = tokio::time::interval(check.interval.0);
    // A slow upstream must not cause a burst of catch-up probes.
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let outcome = match &client {
            Ok(client) => probe(client, &url, check.timeout.0).await,
            Err(reason) => ProbeOutcome::Unreachable {
                reason: reason.clone(),
            },
        };
        tracing::debug!(upstream = slot.config_key(), %url, ?outcome, "health probe");
        if events.send(Event::Probed { slot, outcome }).await.is_err() {
            return;
        }
    }
}

/// One `GET` of `url`, judged: any 2xx passes.
pub async fn probe(client: &ProbeClient, url: &str, timeout: Duration) -> ProbeOutcome {
    let uri: hyper::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(err) => {
            return ProbeOutcome::Unreachable {
                reason: format!("invalid URL {url}: {err}"),
            };
        }
    };
    match tokio::time::timeout(timeout, client.get(uri)).await {
        Err(_elapsed) => ProbeOutcome::TimedOut,
        Ok(Err(err)) => ProbeOutcome::Unreachable {
            reason: root_cause(&err),
        },
        Ok(Ok(response)) => {
            let status = response.status().as_u16();
            if response.status().is_success() {
                ProbeOutcome::Passed { status }
            } else {
                ProbeOutcome::BadStatus { status }
            }
        }
    }
}

/// The innermost cause of a client error, which is the one that says what
/// happened ("Connection refused (os error 111)").
fn root_cause(err: &(dyn StdError + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    let text = cause.to_string();
    if text.contains("os error 111") || text.to_ascii_lowercase().contains("connection refused") {
        "connection refused".to_owned()
    } else if text.contains("invalid peer certificate") {
        // rustls: "invalid peer certificate: UnknownIssuer", "… NotValidForName", ….
        format!(
            "the upstream's certificate is not trusted ({text}): give the CA that signed it as ca_file, or fix the certificate"
        )
    } else {
        text
    }
}
