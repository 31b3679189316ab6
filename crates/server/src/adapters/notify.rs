//! Outbound notifications: rollout events posted to the configured
//! receivers as JSON (with the full state) or as Slack-style text.
//!
//! The controller's audit broadcast is the source, so notifications follow
//! durable decisions only. Each receiver has its own task and a bounded
//! queue: a slow or failing receiver delays only itself, and when its queue
//! is full new events for it are dropped with a warning. The controller
//! never waits for any of this.

use std::sync::Arc;
use std::time::Duration;

use canary_shared::{AuditEvent, CanaryState};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;
use tokio::sync::{broadcast, mpsc, watch};

use canary_shared::audit::NotifyEvent;

use crate::config::{NotificationConfig, NotifyFormat};

/// Events waiting per receiver before new ones are dropped.
const QUEUE: usize = 256;
/// The first pause before a retry; it doubles with each further one.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(500);

pub(crate) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// One line for people, such as
/// `canary v2.7.0: rolled back (25 % → 0 %): p95 latency 1,340 ms > 1,000 ms; by controller`.
pub fn message(event: NotifyEvent, entry: &AuditEvent, state: &CanaryState) -> String {
    let what = match event {
        NotifyEvent::Started => "rollout started",
        NotifyEvent::StepChanged => "canary share changed",
        NotifyEvent::Breach => "SAFETY BREACH",
        NotifyEvent::RolledBack => "rolled back to production",
        NotifyEvent::Promoted => "promoted to production",
    };
    let version = state.image_tag.as_deref().unwrap_or("canary");
    let reason = entry
        .reason
        .as_deref()
        .map(|reason| format!(": {reason}"))
        .unwrap_or_default();
    format!(
        "canary {version}: {what} ({} → {}){reason}; by {}",
        entry.from_percent, entry.to_percent, entry.actor
    )
}

/// The JSON body of a `json` receiver.
#[derive(Debug, Serialize)]
struct JsonNotification<'a> {
    event: &'static str,
    message: &'a str,
    actor: &'a str,
    at: canary_shared::UnixMillis,
    audit: &'a AuditEvent,
    state: &'a CanaryState,
}

/// One prepared delivery.
#[derive(Debug)]
struct Delivery {
    event: NotifyEvent,
    body: Bytes,
}

/// The notification tasks: one per receiver, and the dispatcher that feeds them.
#[derive(Debug)]
pub struct Notifiers {
    tasks: Vec<tokio::task::JoinHandle<()>>,
    stop: watch::Sender<bool>,
}

impl Notifiers {
    /// At shutdown: what the audit trail announced is still delivered (with
    /// its retries) for up to `grace`; whatever is left then is dropped and
    /// logged.
    pub async fn finish(self, grace: std::time::Duration) {
        let _ = self.stop.send(true);
        finish_within(self.tasks, grace, "notifications").await;
    }
}

/// Lets delivery `tasks` finish for up to `grace`, then stops the rest and
/// says that `what` (notifications, push alerts) were dropped.
pub(crate) async fn finish_within(
    mut tasks: Vec<tokio::task::JoinHandle<()>>,
    grace: Duration,
    what: &str,
) {
    let all = futures_util::future::join_all(tasks.iter_mut());
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(
            grace_ms = grace.as_millis() as u64,
            "{what} still undelivered at shutdown; dropped"
        );
        for task in &tasks {
            task.abort();
        }
    }
}

/// Starts one task per receiver and the dispatcher that feeds them; they
/// run until [`Notifiers::finish`].
pub fn spawn(
    receivers: &[NotificationConfig],
    audit: &broadcast::Sender<AuditEvent>,
    state: watch::Receiver<CanaryState>,
) -> Notifiers {
    let (stop, mut stopping) = watch::channel(false);
    if receivers.is_empty() {
        return Notifiers {
            tasks: Vec::new(),
            stop,
        };
    }
    let client = https_client();
    let mut tasks = Vec::new();
    let mut queues = Vec::new();
    for receiver in receivers {
        let (queue_tx, queue_rx) = mpsc::channel::<Delivery>(QUEUE);
        queues.push((receiver.clone(), queue_tx));
        tasks.push(tokio::spawn(deliver_all(
            receiver.clone(),
            client.clone(),
            queue_rx,
        )));
    }
    let mut entries = audit.subscribe();
    tasks.push(tokio::spawn(async move {
        let dispatch = |entry: AuditEvent| {
            let state = state.borrow().clone();
            for event in entry.notify_events() {
                let text = message(event, &entry, &state);
                for (receiver, queue) in &queues {
                    if !receiver.events.contains(&event) {
                        continue;
                    }
                    let body = match receiver.format {
                        NotifyFormat::Json => serde_json::to_vec(&JsonNotification {
                            event: event.as_str(),
                            message: &text,
                            actor: &entry.actor,
                            at: entry.at,
                            audit: &entry,
                            state: &state,
                        }),
                        NotifyFormat::Slack => {
                            serde_json::to_vec(&serde_json::json!({ "text": text }))
                        }
                    };
                    let Ok(body) = body else { continue };
                    let delivery = Delivery {
                        event,
                        body: Bytes::from(body),
                    };
                    if queue.try_send(delivery).is_err() {
                        tracing::warn!(receiver = %receiver.name.0, event = event.as_str(), "notification queue full; event dropped");
                    }
                }
            }
        };
        loop {
            tokio::select! {
                received = entries.recv() => match received {
                    Ok(entry) => dispatch(entry),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "notifications fell behind the audit trail");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
                _ = stopping.wait_for(|stop| *stop) => {
                    // Shutting down: what is already announced still goes
                    // out; the queues close behind it.
                    while let Ok(entry) = entries.try_recv() {
                        dispatch(entry);
                    }
                    break;
                }
            }
        }
    }));
    Notifiers { tasks, stop }
}

pub(crate) fn https_client() -> HttpsClient {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(Arc::new(rustls::crypto::ring::default_provider()))
        .expect("ring supports rustls's safe default protocol versions")
        .https_or_http()
        .enable_http1()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Delivers one receiver's events in order, each with its retries.
async fn deliver_all(
    receiver: NotificationConfig,
    client: HttpsClient,
    mut queue: mpsc::Receiver<Delivery>,
) {
    while let Some(delivery) = queue.recv().await {
        let mut pause = FIRST_RETRY_PAUSE;
        for attempt in 0..=receiver.retries {
            match post(&receiver, &client, delivery.body.clone()).await {
                Ok(()) => {
                    tracing::info!(receiver = %receiver.name.0, event = delivery.event.as_str(), "notification delivered");
                    break;
                }
                Err(why) if attempt < receiver.retries => {
                    tracing::info!(receiver = %receiver.name.0, event = delivery.event.as_str(), attempt = attempt + 1, %why, "notification failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = pause.saturating_mul(2);
                }
                Err(why) => {
                    tracing::warn!(receiver = %receiver.name.0, event = delivery.event.as_str(), %why, "notification not delivered; giving up");
                }
            }
        }
    }
}

/// One attempt; the receiver's URL is never logged (it often holds a secret).
async fn post(
    receiver: &NotificationConfig,
    client: &HttpsClient,
    body: Bytes,
) -> Result<(), String> {
    let request = hyper::Request::post(receiver.url.0.clone())
        .header(hyper::header::CONTENT_TYPE, "application/json")
        .header(hyper::header::USER_AGENT, "canary-notifier")
        .body(Full::new(body))
        .map_err(|err| err.to_string())?;
    let exchange = async {
        let response = client.request(request).await.map_err(|err| {
            // The error's text can include the URL; keep only its kind.
            if err.is_connect() {
                "cannot connect".to_owned()
            } else {
                "the exchange failed".to_owned()
            }
        })?;
        let status = response.status();
        // Read the answer so the connection can be reused.
        let _ = response.into_body().collect().await;
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("answered {status}"))
        }
    };
    tokio::time::timeout(receiver.timeout.0, exchange)
        .await
        .map_err(|_| format!("no answer within {}", receiver.timeout))?
}
