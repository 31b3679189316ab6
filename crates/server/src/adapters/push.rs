//! Web Push: alerts to operators' devices while no console is open.
//!
//! A device's browser subscribes at its push service (Google's for Chrome,
//! Mozilla's for Firefox, Apple's for Safari) with our VAPID public key and
//! hands the console an endpoint and two keys; the server stores them per
//! user. For every audit entry that stands for an event a device asked
//! for, the server encrypts a short alert to that device's keys (RFC 8291,
//! `web-push-native`), signs a VAPID token for the push service (RFC 8292,
//! ES256 with `p256`), and POSTs it to the endpoint (RFC 8030). The push
//! service wakes the device, whose service worker (`public/sw.js`) shows it.
//!
//! Sending follows the outbound webhooks' discipline: one task and bounded
//! queue per push service (a slow or rate-limiting service delays only its
//! own devices), a few retries with growing pauses, `Retry-After` honoured
//! on 429, and a device the service no longer knows (404, 410) forgotten.
//! Endpoints are taken only on known push services and configured ones,
//! over HTTPS, so a subscription cannot make the server call an arbitrary
//! address; redirects are never followed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canary_shared::audit::{Alert, NotifyEvent};
use canary_shared::push::{PushDevice, PushOverview, PushSubscribe, PushTestResult};
use canary_shared::{AuditEvent, CanaryState, UnixMillis};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use p256::ecdsa::signature::Signer as _;
use tokio::sync::{broadcast, mpsc, watch};

use crate::adapters::notify::{HttpsClient, https_client};
use crate::adapters::store::{NewSubscription, SqliteStore, StoreError, StoredSubscription};
use crate::config::PushConfig;
use crate::ports::Clock;

mod endpoint;

pub use endpoint::{PushServices, service_of};

/// Alerts waiting per push service before new ones are dropped.
const QUEUE: usize = 1024;
/// The first pause before a retry; it doubles with each further one.
const FIRST_RETRY_PAUSE: Duration = Duration::from_millis(500);
/// The longest `Retry-After` waited for; a service asking for more is
/// given up on for that alert.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);
/// How long a VAPID token is valid (RFC 8292: at most 24 hours).
const VAPID_VALIDITY_SECS: u64 = 12 * 3600;
/// The most bytes of an alert's text: with the JSON around it, the
/// plaintext stays far under RFC 8291's 3993-byte record.
const MAX_BODY_TEXT: usize = 1500;

/// The server's VAPID key pair. The private half never leaves the store
/// and this type: it is not printed, logged or served.
pub struct VapidKey {
    signing: p256::ecdsa::SigningKey,
    /// The uncompressed public point, base64url: what browsers subscribe with.
    public: String,
}

impl std::fmt::Debug for VapidKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VapidKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl VapidKey {
    /// A new random private key (a P-256 scalar).
    pub fn generate() -> [u8; 32] {
        loop {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes).expect("the OS random source works");
            // All but a 2^-32 sliver of 32-byte strings are valid scalars.
            if p256::SecretKey::from_slice(&bytes).is_ok() {
                return bytes;
            }
        }
    }

    /// The key pair from its private key.
    pub fn from_private(bytes: &[u8; 32]) -> Option<VapidKey> {
        let secret = p256::SecretKey::from_slice(bytes).ok()?;
        let public = secret.public_key();
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(&public, false);
        Some(VapidKey {
            signing: p256::ecdsa::SigningKey::from(&secret),
            public: URL_SAFE_NO_PAD.encode(point.as_bytes()),
        })
    }

    /// The public key, base64url.
    pub fn public(&self) -> &str {
        &self.public
    }

    /// The `Authorization` header for a push service at `audience` (the
    /// endpoint's origin): `vapid t=<ES256 JWT>, k=<public key>`.
    pub fn authorization(&self, audience: &str, contact: Option<&str>, now: UnixMillis) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"ES256"}"#);
        let mut claims = serde_json::json!({
            "aud": audience,
            "exp": now.0 / 1000 + VAPID_VALIDITY_SECS,
        });
        if let Some(contact) = contact {
            claims["sub"] = contact.into();
        }
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature: p256::ecdsa::Signature = self.signing.sign(signed.as_bytes());
        format!(
            "vapid t={signed}.{}, k={}",
            URL_SAFE_NO_PAD.encode(signature.to_bytes()),
            self.public
        )
    }
}

/// Why a subscription was refused, naming the field.
#[derive(Debug, thiserror::Error)]
pub enum SubscribeError {
    /// A field is wrong.
    #[error("{field}: {message}")]
    Invalid {
        /// The JSON field.
        field: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn invalid(field: &'static str, message: impl Into<String>) -> SubscribeError {
    SubscribeError::Invalid {
        field,
        message: message.into(),
    }
}

/// How one attempt to hand an alert to a push service went.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// The service took it (201).
    Taken,
    /// The service no longer knows the device (404, 410): forget it.
    Gone(u16),
    /// Rate limited (429): try again after this long.
    Later(Duration),
    /// A failure worth retrying (5xx, no answer, no connection).
    Retry(String),
    /// A failure no retry mends (400, 403: our request or signature; 413:
    /// the alert is too big).
    Refused(String),
}

/// One alert for one device.
#[derive(Debug)]
struct Message {
    device: StoredSubscription,
    alert: Arc<Vec<u8>>,
    urgency: &'static str,
    topic: &'static str,
}

/// What sending takes, shared by the API (subscribe, test) and the queues.
#[derive(Debug)]
struct Sender {
    key: VapidKey,
    contact: Option<String>,
    ttl: Duration,
    timeout: Duration,
    retries: u32,
    store: Arc<SqliteStore>,
    clock: Arc<dyn Clock>,
    client: HttpsClient,
}

/// Web Push for the API and the running server: the key, the devices and
/// one delivery queue per push service.
#[derive(Debug)]
pub struct Push {
    sender: Arc<Sender>,
    services: PushServices,
    enabled: bool,
    queues: Mutex<HashMap<String, mpsc::Sender<Message>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Follows the audit trail.
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The console's address on this server (`/ops/admin/canary/`), which a
    /// click on an alert opens.
    console: String,
}

impl Push {
    /// Reads the VAPID key from the store, making it on the first start.
    pub fn new(
        config: &PushConfig,
        store: Arc<SqliteStore>,
        clock: Arc<dyn Clock>,
        console: String,
    ) -> Result<Push, StoreError> {
        let private = store.push_key(clock.now(), VapidKey::generate)?;
        let key = VapidKey::from_private(&private).ok_or_else(|| {
            StoreError::Sqlite(rusqlite::Error::InvalidColumnType(
                0,
                "push_key.private_key is not a P-256 key".to_owned(),
                rusqlite::types::Type::Blob,
            ))
        })?;
        Ok(Push {
            sender: Arc::new(Sender {
                key,
                contact: config.contact.as_ref().map(|contact| contact.0.clone()),
                ttl: config.ttl.0,
                timeout: config.timeout.0,
                retries: config.retries,
                store,
                clock,
                client: https_client(),
            }),
            services: PushServices::new(&config.services),
            enabled: config.enabled,
            queues: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
            follower: Mutex::new(None),
            console,
        })
    }

    /// The public key and the devices `user` sees (all of them for `None`).
    pub fn overview(&self, user: Option<&str>) -> Result<PushOverview, StoreError> {
        Ok(PushOverview {
            enabled: self.enabled,
            public_key: self.sender.key.public().to_owned(),
            devices: self
                .sender
                .store
                .push_subscriptions(user)?
                .iter()
                .map(device)
                .collect(),
        })
    }

    /// Subscribes a device for `user`, checking every field.
    pub fn subscribe(
        &self,
        user: &str,
        request: &PushSubscribe,
        user_agent: &str,
    ) -> Result<PushDevice, SubscribeError> {
        if !self.enabled {
            return Err(invalid(
                "endpoint",
                "push alerts are off on this server (push.enabled: false)",
            ));
        }
        self.services
            .check(&request.endpoint)
            .map_err(|why| invalid("endpoint", why))?;
        if let Some(old) = &request.replaces {
            self.services
                .check(old)
                .map_err(|why| invalid("replaces", why))?;
        }
        let p256dh = URL_SAFE_NO_PAD
            .decode(request.keys.p256dh.trim_end_matches('='))
            .ok()
            .filter(|bytes| bytes.len() == 65 && p256::PublicKey::from_sec1_bytes(bytes).is_ok())
            .ok_or_else(|| {
                invalid(
                    "keys.p256dh",
                    "must be the browser's P-256 public key: 65 bytes (an uncompressed point on the curve), base64url",
                )
            })?;
        let auth = URL_SAFE_NO_PAD
            .decode(request.keys.auth.trim_end_matches('='))
            .ok()
            .filter(|bytes| bytes.len() == 16)
            .ok_or_else(|| invalid("keys.auth", "must be 16 bytes, base64url"))?;
        let renewed = match &request.replaces {
            Some(old) => self.sender.store.push_subscription_at(old)?,
            None => None,
        };
        let mut events = match (&request.events, renewed) {
            (Some(events), _) => events.clone(),
            (None, Some(renewed)) => renewed.events,
            (None, None) => canary_shared::push::default_push_events(),
        };
        if events.is_empty() {
            return Err(invalid(
                "events",
                "name at least one of started, step_changed, breach, rolled_back, promoted (or remove the device)",
            ));
        }
        events.sort_by_key(|event| NotifyEvent::all().iter().position(|known| known == event));
        events.dedup();
        let saved = self.sender.store.save_push_subscription(
            &NewSubscription {
                user,
                endpoint: &request.endpoint,
                replaces: request.replaces.as_deref(),
                p256dh: &URL_SAFE_NO_PAD.encode(p256dh),
                auth: &URL_SAFE_NO_PAD.encode(auth),
                label: &device_label(user_agent),
                events: &events,
            },
            self.sender.clock.now(),
        )?;
        tracing::info!(
            user,
            device = saved.id,
            service = service_of(&saved.endpoint),
            "push device subscribed"
        );
        Ok(device(&saved))
    }

    /// The device with this id, if `user` may see it (`None`: any user).
    pub fn device(
        &self,
        id: u64,
        user: Option<&str>,
    ) -> Result<Option<StoredSubscription>, StoreError> {
        Ok(self
            .sender
            .store
            .push_subscription(id)?
            .filter(|device| user.is_none_or(|user| device.user == user)))
    }

    /// Forgets a device.
    pub fn remove(&self, id: u64) -> Result<bool, StoreError> {
        self.sender.store.delete_push_subscription(id)
    }

    /// Forgets the devices of people the config no longer signs in (taken
    /// out of `auth.users` or `auth.tokens` since they subscribed), so a
    /// tablet of someone who left stops being told about deployments; how
    /// many were forgotten. Called at start, where the config changes.
    pub fn forget_departed(&self, may_sign_in: impl Fn(&str) -> bool) -> Result<usize, StoreError> {
        let mut forgotten = 0;
        for device in self.sender.store.push_subscriptions(None)? {
            if !may_sign_in(&device.user) && self.remove(device.id)? {
                tracing::info!(
                    device = device.id,
                    user = %device.user,
                    label = %device.label,
                    "push device forgotten: the config no longer signs its owner in"
                );
                forgotten += 1;
            }
        }
        Ok(forgotten)
    }

    /// Sends a test alert to one device now and says how it went.
    pub async fn test(&self, device: StoredSubscription, by: &str) -> PushTestResult {
        let alert = payload(
            &Alert {
                event: NotifyEvent::StepChanged,
                title: "canary: test alert".to_owned(),
                body: format!("Alerts reach this device ({}); sent by {by}.", device.label),
            },
            &self.console,
            "canary-test",
        );
        let message = Message {
            device,
            alert: Arc::new(alert),
            urgency: "normal",
            topic: "canary-test",
        };
        let attempt = self.sender.attempt(&message).await;
        let detail = self.sender.settle(&message, &attempt);
        PushTestResult {
            delivered: attempt == Attempt::Taken,
            detail,
        }
    }

    /// Follows the audit trail and queues an alert for every device that
    /// asked for one of the entry's events, until the trail closes.
    pub fn spawn(
        self: &Arc<Self>,
        audit: &broadcast::Sender<AuditEvent>,
        state: watch::Receiver<CanaryState>,
    ) {
        if !self.enabled {
            return;
        }
        let mut entries = audit.subscribe();
        let push = Arc::clone(self);
        let task = tokio::spawn(async move {
            loop {
                match entries.recv().await {
                    Ok(entry) => push.announce(&entry, &state),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "push alerts fell behind the audit trail");
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        *self
            .follower
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(task);
    }

    fn lock_tasks(&self) -> std::sync::MutexGuard<'_, Vec<tokio::task::JoinHandle<()>>> {
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues the alert about `entry` for the devices that want it.
    fn announce(&self, entry: &AuditEvent, state: &watch::Receiver<CanaryState>) {
        let version = state.borrow().image_tag.clone();
        let Some(alert) = entry.alert(version.as_deref()) else {
            return;
        };
        let wanted = entry.notify_events();
        let devices = match self.sender.store.push_subscriptions(None) {
            Ok(devices) => devices,
            Err(err) => {
                tracing::error!(%err, "cannot read the push devices; alert not sent");
                return;
            }
        };
        let topic = topic(alert.event);
        let body = Arc::new(payload(&alert, &self.console, topic));
        let urgency = match alert.event {
            NotifyEvent::Breach | NotifyEvent::RolledBack => "high",
            _ => "normal",
        };
        for device in devices {
            if !device.events.iter().any(|event| wanted.contains(event)) {
                continue;
            }
            let service = service_of(&device.endpoint).to_owned();
            let queue = self.queue(&service);
            let message = Message {
                device,
                alert: Arc::clone(&body),
                urgency,
                topic,
            };
            if queue.try_send(message).is_err() {
                tracing::warn!(%service, "push queue full; alert dropped");
            }
        }
    }

    /// The queue for one push service, started on its first alert.
    fn queue(&self, service: &str) -> mpsc::Sender<Message> {
        let mut queues = self
            .queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(queue) = queues.get(service) {
            return queue.clone();
        }
        let (queue, waiting) = mpsc::channel(QUEUE);
        let task = tokio::spawn(deliver_all(Arc::clone(&self.sender), waiting));
        self.lock_tasks().push(task);
        queues.insert(service.to_owned(), queue.clone());
        queue
    }

    /// At shutdown: alerts already queued still go out (with their
    /// retries) for up to `grace`; whatever is left is dropped and logged.
    pub async fn finish(&self, grace: Duration) {
        // The audit follower holds no undelivered alert: stopped first, so
        // no new queue starts behind the ones closing.
        if let Some(follower) = self
            .follower
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            follower.abort();
        }
        // Closing the queues lets each task end after its last alert.
        self.queues
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        let tasks = std::mem::take(&mut *self.lock_tasks());
        crate::adapters::notify::finish_within(tasks, grace, "push alerts").await;
    }
}

fn device(stored: &StoredSubscription) -> PushDevice {
    stored.device(service_of(&stored.endpoint).to_owned())
}

/// One `Topic` per event kind (RFC 8030 §5.4: a newer alert of a kind
/// replaces an older one a device has not fetched yet).
fn topic(event: NotifyEvent) -> &'static str {
    match event {
        NotifyEvent::Started => "canary-started",
        NotifyEvent::StepChanged => "canary-step",
        NotifyEvent::Breach => "canary-breach",
        NotifyEvent::RolledBack => "canary-rollback",
        NotifyEvent::Promoted => "canary-promoted",
    }
}

/// The alert as the service worker reads it: `{title, body, tag, url, event}`.
fn payload(alert: &Alert, console: &str, tag: &str) -> Vec<u8> {
    let mut body = alert.body.clone();
    if body.len() > MAX_BODY_TEXT {
        let mut cut = MAX_BODY_TEXT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
        body.push('…');
    }
    serde_json::json!({
        "title": alert.title,
        "body": body,
        "tag": tag,
        "url": console,
        "event": alert.event.as_str(),
    })
    .to_string()
    .into_bytes()
}

/// A short name for a device from its browser's `User-Agent`.
pub fn device_label(user_agent: &str) -> String {
    let has = |word: &str| user_agent.contains(word);
    let browser = if has("Edg/") {
        "Edge"
    } else if has("Firefox/") || has("FxiOS/") {
        "Firefox"
    } else if has("Chrome/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else {
        "A browser"
    };
    let system = if has("iPad") {
        "iPad"
    } else if has("iPhone") {
        "iPhone"
    } else if has("Android") {
        "Android"
    } else if has("Windows") {
        "Windows"
    } else if has("Mac OS X") || has("Macintosh") {
        // iPadOS asks for the desktop site as a Mac.
        "a Mac or an iPad"
    } else if has("CrOS") {
        "ChromeOS"
    } else if has("Linux") {
        "Linux"
    } else {
        return browser.to_owned();
    };
    format!("{browser} on {system}")
}

/// Delivers one push service's alerts in order, each with its retries.
async fn deliver_all(sender: Arc<Sender>, mut queue: mpsc::Receiver<Message>) {
    while let Some(message) = queue.recv().await {
        let mut pause = FIRST_RETRY_PAUSE;
        for attempt in 0..=sender.retries {
            let outcome = sender.attempt(&message).await;
            let wait = match &outcome {
                Attempt::Later(after) => Some(*after),
                Attempt::Retry(_) => Some(pause),
                _ => None,
            };
            match wait {
                Some(wait) if attempt < sender.retries && wait <= MAX_RETRY_AFTER => {
                    tracing::info!(
                        device = message.device.id,
                        attempt = attempt + 1,
                        ?outcome,
                        "push alert not taken; retrying"
                    );
                    tokio::time::sleep(wait).await;
                    pause = pause.saturating_mul(2);
                }
                _ => {
                    sender.settle(&message, &outcome);
                    break;
                }
            }
        }
    }
}

impl Sender {
    /// One attempt to hand `message` to the device's push service.
    async fn attempt(&self, message: &Message) -> Attempt {
        let request = match self.request(message) {
            Ok(request) => request,
            Err(why) => return Attempt::Refused(why),
        };
        let exchange = async {
            let response = match self.client.request(request).await {
                Ok(response) => response,
                // The error's text can include the endpoint; keep only its kind.
                Err(err) if err.is_connect() => {
                    return Attempt::Retry("cannot connect to the push service".to_owned());
                }
                Err(_) => {
                    return Attempt::Retry("the exchange with the push service failed".to_owned());
                }
            };
            let status = response.status().as_u16();
            let retry_after = response
                .headers()
                .get(hyper::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok());
            // Read the answer so the connection can be reused.
            let _ = response.into_body().collect().await;
            classify(status, retry_after)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Attempt::Retry(format!(
                    "no answer from the push service within {} ms",
                    self.timeout.as_millis()
                ))
            })
    }

    /// The encrypted, signed request for `message`.
    fn request(&self, message: &Message) -> Result<hyper::Request<Full<Bytes>>, String> {
        let device = &message.device;
        let endpoint: hyper::Uri = device
            .endpoint
            .parse()
            .map_err(|_| "the stored endpoint is not a URL".to_owned())?;
        let ua_public = URL_SAFE_NO_PAD
            .decode(&device.p256dh)
            .ok()
            .and_then(|bytes| p256::PublicKey::from_sec1_bytes(&bytes).ok())
            .ok_or("the stored p256dh key is not a P-256 point")?;
        let auth = URL_SAFE_NO_PAD
            .decode(&device.auth)
            .ok()
            .filter(|bytes| bytes.len() == 16)
            .ok_or("the stored auth secret is not 16 bytes")?;
        let audience = endpoint::origin(&endpoint);
        let built = web_push_native::WebPushBuilder::new(
            endpoint,
            ua_public,
            *web_push_native::Auth::from_slice(&auth),
        )
        .with_valid_duration(self.ttl)
        .build(message.alert.as_slice())
        .map_err(|err| format!("cannot encrypt the alert: {err}"))?;
        let (mut parts, body) = built.into_parts();
        let headers = &mut parts.headers;
        let authorization =
            self.key
                .authorization(&audience, self.contact.as_deref(), self.clock.now());
        headers.insert(
            hyper::header::AUTHORIZATION,
            authorization
                .parse()
                .map_err(|_| "the VAPID header is not a header value".to_owned())?,
        );
        headers.insert(
            "urgency",
            hyper::header::HeaderValue::from_static(message.urgency),
        );
        headers.insert(
            "topic",
            hyper::header::HeaderValue::from_static(message.topic),
        );
        headers.insert(
            hyper::header::USER_AGENT,
            hyper::header::HeaderValue::from_static("canary-push"),
        );
        Ok(hyper::Request::from_parts(
            parts,
            Full::new(Bytes::from(body)),
        ))
    }

    /// Records how the last attempt went, forgets a device its service no
    /// longer knows, and says what happened in words.
    fn settle(&self, message: &Message, outcome: &Attempt) -> String {
        let device = &message.device;
        let now = self.clock.now();
        let service = service_of(&device.endpoint);
        let (noted, detail) = match outcome {
            Attempt::Taken => {
                tracing::info!(device = device.id, user = %device.user, service, "push alert delivered");
                (Ok(()), "the push service took it".to_owned())
            }
            Attempt::Gone(status) => {
                tracing::info!(device = device.id, user = %device.user, service, status, "push subscription gone; device removed");
                if let Err(err) = self.store.delete_push_subscription(device.id) {
                    tracing::error!(%err, device = device.id, "cannot remove a push device");
                }
                return format!(
                    "the push service answered {status}: the subscription is gone (the browser \
                     unsubscribed or it expired); device removed, subscribe it again"
                );
            }
            Attempt::Later(after) => {
                let why = format!(
                    "the push service is rate limiting (429, retry after {} s); alert dropped",
                    after.as_secs()
                );
                tracing::warn!(device = device.id, service, "{why}");
                (Err(why.clone()), why)
            }
            Attempt::Retry(why) | Attempt::Refused(why) => {
                tracing::warn!(device = device.id, user = %device.user, service, %why, "push alert not delivered");
                (Err(why.clone()), why.clone())
            }
        };
        if let Err(err) = self.store.note_push_delivery(
            device.id,
            now,
            noted.as_ref().map(|_| ()).map_err(String::as_str),
        ) {
            tracing::warn!(%err, "cannot record how a push alert went");
        }
        detail
    }
}

/// A push service's answer, as RFC 8030 and the services' own documents
/// give it.
fn classify(status: u16, retry_after_secs: Option<u64>) -> Attempt {
    match status {
        200..=299 => Attempt::Taken,
        404 | 410 => Attempt::Gone(status),
        429 => Attempt::Later(Duration::from_secs(retry_after_secs.unwrap_or(60))),
        413 => Attempt::Refused("the push service answered 413: the alert is too large".to_owned()),
        400 | 401 | 403 => Attempt::Refused(format!(
            "the push service answered {status}: it refuses our request or VAPID signature \
             (check push.contact; a restored store with another key needs devices to subscribe again)"
        )),
        500..=599 => Attempt::Retry(format!("the push service answered {status}")),
        _ => Attempt::Refused(format!("the push service answered {status}")),
    }
}

#[cfg(test)]
mod tests;
