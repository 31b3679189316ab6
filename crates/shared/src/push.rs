//! Web Push: alerts that reach an operator's device while no console is
//! open. The console subscribes a device (the browser's push subscription,
//! RFC 8030, with the keys RFC 8291 encrypts to) for the events it wants;
//! the server signs each message with its VAPID key (RFC 8292).

use serde::{Deserialize, Serialize};

use crate::audit::NotifyEvent;
use crate::time::UnixMillis;

/// `GET`: the server's public key and the caller's devices (every device,
/// for an admin).
pub const PUSH_PATH: &str = "/admin/canary/push";
/// `POST`: subscribe this device (or change what it is told).
pub const PUSH_DEVICES_PATH: &str = "/admin/canary/push/devices";

/// `GET /admin/canary/push`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushOverview {
    /// Whether the server sends push alerts (`push.enabled`).
    pub enabled: bool,
    /// The VAPID public key, base64url (an uncompressed P-256 point): the
    /// `applicationServerKey` a browser subscribes with.
    pub public_key: String,
    /// The caller's devices, or everyone's for an admin, newest first.
    pub devices: Vec<PushDevice>,
}

/// A device that gets push alerts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushDevice {
    /// Names the device in the API (`/admin/canary/push/devices/{id}`).
    pub id: u64,
    /// Whose device it is: the user or token that subscribed it.
    pub user: String,
    /// What the device is, as its browser described itself ("Chrome on Android").
    pub label: String,
    /// The push service that carries its alerts (a host name).
    pub service: String,
    /// The events it is told about.
    pub events: Vec<NotifyEvent>,
    /// When it was subscribed.
    pub created_at: UnixMillis,
    /// When its push service last took an alert for it.
    pub last_delivered_at: Option<UnixMillis>,
    /// Why the last alert did not reach its push service, if it did not.
    pub last_error: Option<String>,
}

/// The keys of a browser's push subscription (`PushSubscription.toJSON().keys`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushKeys {
    /// The browser's P-256 public key, base64url (65 bytes, uncompressed).
    pub p256dh: String,
    /// The browser's authentication secret, base64url (16 bytes).
    pub auth: String,
}

/// `POST /admin/canary/push/devices`: a browser's subscription as
/// `PushSubscription.toJSON()` gives it, with what to tell the device.
/// Subscribing an endpoint again changes its events (and its owner, to
/// whoever subscribed it last).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushSubscribe {
    /// Where the device's push service takes messages for it.
    pub endpoint: String,
    /// The keys messages are encrypted to.
    pub keys: PushKeys,
    /// The events to tell the device about: for a new device by default a
    /// breach and a rollback, for a renewal (`replaces`) those it had.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<NotifyEvent>>,
    /// The endpoint this one replaces (a browser renewed its subscription):
    /// that device's record moves to the new endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// What a new device is told about unless it says otherwise.
pub fn default_push_events() -> Vec<NotifyEvent> {
    vec![NotifyEvent::Breach, NotifyEvent::RolledBack]
}

/// `POST /admin/canary/push/devices/{id}/test`: what the device's push
/// service answered to a test alert.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PushTestResult {
    /// Whether the push service took the alert.
    pub delivered: bool,
    /// What happened, in words ("push service took it", "push service
    /// answered 410: the subscription is gone; device removed").
    pub detail: String,
}
