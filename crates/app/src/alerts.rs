//! Browser notifications: asks for permission (only on the operator's click,
//! as browsers require) and raises a notification for an alert.
//!
//! Which audit entries alert, and with what words, is decided in
//! [`crate::view_model::browser_alert`]; this module only talks to the browser.

use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

use crate::view_model::BrowserAlert;

/// Whether this console may raise notifications.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertPermission {
    /// The browser has no notifications (or not on a plain-HTTP page that is
    /// not on loopback: they need a secure context).
    Unsupported,
    /// Not asked yet.
    NotAsked,
    /// The operator allowed them.
    Granted,
    /// The operator (or a browser policy) refused them.
    Denied,
}

/// Where the permission stands now.
pub fn permission() -> AlertPermission {
    let window = leptos::prelude::window();
    let supported = js_sys::Reflect::has(&window, &JsValue::from_str("Notification"))
        .unwrap_or(false)
        && window.is_secure_context();
    if !supported {
        return AlertPermission::Unsupported;
    }
    match Notification::permission() {
        NotificationPermission::Granted => AlertPermission::Granted,
        NotificationPermission::Denied => AlertPermission::Denied,
        _ => AlertPermission::NotAsked,
    }
}

/// Asks the operator; call it from a click.
pub async fn request() -> AlertPermission {
    if permission() == AlertPermission::Unsupported {
        return AlertPermission::Unsupported;
    }
    match Notification::request_permission() {
        Ok(promise) => {
            if let Err(err) = JsFuture::from(promise).await {
                web_sys::console::warn_2(&"canary: notification permission:".into(), &err);
            }
        }
        Err(err) => web_sys::console::warn_2(&"canary: notification permission:".into(), &err),
    }
    permission()
}

/// Raises the alert if the operator allowed notifications.
pub fn raise(alert: &BrowserAlert) {
    if permission() != AlertPermission::Granted {
        return;
    }
    let options = NotificationOptions::new();
    options.set_body(&alert.body);
    options.set_tag(&alert.tag);
    if let Err(err) = Notification::new_with_options(&alert.title, &options) {
        web_sys::console::warn_2(&"canary: cannot raise a notification:".into(), &err);
    }
}
