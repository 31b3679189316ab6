//! This browser's side of Web Push: the service worker (`sw.js`, beside the
//! console), the push subscription made with the server's key, and which
//! of the server's devices this browser is (remembered in local storage,
//! since the server never hands endpoints back).
//!
//! What the device is told about, and the words, are the server's; this
//! module only talks to the browser.

use canary_shared::api::BASE_PATH;
use canary_shared::audit::NotifyEvent;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{PushSubscription, PushSubscriptionOptionsInit, ServiceWorkerRegistration};

/// Where this device's id is kept between visits.
const DEVICE_KEY: &str = "canary-push-device";

/// Why this browser cannot get push alerts here, if it cannot.
pub fn unsupported() -> Option<&'static str> {
    let window = leptos::prelude::window();
    let has = |object: &JsValue, name: &str| {
        js_sys::Reflect::has(object, &JsValue::from_str(name)).unwrap_or(false)
    };
    if !window.is_secure_context() {
        Some(
            "Push alerts need the console over HTTPS (or on localhost); see the deployment guide's TLS section.",
        )
    } else if !has(&window.navigator(), "serviceWorker") || !has(&window, "PushManager") {
        Some(
            "This browser has no Web Push here. On an iPad or iPhone, add the console to the Home Screen (Share, then Add to Home Screen) and open it from there.",
        )
    } else {
        None
    }
}

fn failed(what: &str, err: JsValue) -> String {
    let detail = err
        .dyn_ref::<js_sys::Error>()
        .map(|err| String::from(err.message()))
        .or_else(|| err.as_string())
        .unwrap_or_default();
    format!("{what}: {detail}")
}

/// The console's service worker, registered (again) and ready.
async fn registration() -> Result<ServiceWorkerRegistration, String> {
    let container = leptos::prelude::window().navigator().service_worker();
    let script = format!("{}{BASE_PATH}/sw.js", crate::api::mount_prefix());
    JsFuture::from(container.register(&script))
        .await
        .map_err(|err| failed("The service worker did not start", err))?;
    let ready = container
        .ready()
        .map_err(|err| failed("The service worker is not ready", err))?;
    Ok(JsFuture::from(ready)
        .await
        .map_err(|err| failed("The service worker is not ready", err))?
        .unchecked_into())
}

/// This browser's push subscription, if it has one.
async fn current(registration: &ServiceWorkerRegistration) -> Option<PushSubscription> {
    let manager = registration.push_manager().ok()?;
    let found = JsFuture::from(manager.get_subscription().ok()?)
        .await
        .ok()?;
    // `null` when there is none; not checked with `instanceof`, which
    // would cost bindings and say nothing the null check does not.
    (!found.is_null() && !found.is_undefined()).then(|| found.unchecked_into())
}

/// The body of `POST /admin/canary/push/devices`: the browser's own
/// `PushSubscription.toJSON()` with `events` added (the server checks every
/// field; reading and writing it through serde here would cost the console
/// kilobytes for nothing).
fn as_request(subscription: &PushSubscription, events: &[NotifyEvent]) -> Result<String, String> {
    let json = String::from(
        js_sys::JSON::stringify(subscription)
            .map_err(|err| failed("The subscription cannot be read", err))?,
    );
    let names: Vec<String> = events
        .iter()
        .map(|event| format!("\"{}\"", event.as_str()))
        .collect();
    match json.strip_prefix('{') {
        Some(rest) => Ok(format!("{{\"events\":[{}],{rest}", names.join(","))),
        None => Err("The browser gave a subscription that is not an object".to_owned()),
    }
}

/// This browser's subscription for `events`, made now with the server's
/// `public_key` (base64url) if it has none (the browser asks for
/// permission the first time), as the server takes it.
pub async fn subscription(public_key: &str, events: &[NotifyEvent]) -> Result<String, String> {
    let registration = registration().await?;
    if let Some(existing) = current(&registration).await {
        return as_request(&existing, events);
    }
    let options = PushSubscriptionOptionsInit::new();
    options.set_user_visible_only(true);
    options.set_application_server_key(&JsValue::from_str(public_key));
    let manager = registration
        .push_manager()
        .map_err(|err| failed("No push manager", err))?;
    let promise = manager
        .subscribe_with_options(&options)
        .map_err(|err| failed("The browser refused", err))?;
    let made: PushSubscription = JsFuture::from(promise)
        .await
        .map_err(|err| failed("The browser did not subscribe", err))?
        .unchecked_into();
    as_request(&made, events)
}

/// Whether this browser holds a subscription now.
pub async fn subscribed() -> bool {
    match registration().await {
        Ok(registration) => current(&registration).await.is_some(),
        Err(_) => false,
    }
}

/// Ends this browser's subscription (the push service forgets it).
pub async fn unsubscribe() {
    if let Ok(registration) = registration().await
        && let Some(subscription) = current(&registration).await
        && let Ok(promise) = subscription.unsubscribe()
    {
        let _ = JsFuture::from(promise).await;
    }
    remember(None);
}

/// The server's id for this device, as remembered.
pub fn this_device() -> Option<u64> {
    let storage = leptos::prelude::window().local_storage().ok()??;
    storage.get_item(DEVICE_KEY).ok()??.parse().ok()
}

/// Remembers (or forgets) which device this browser is.
pub fn remember(id: Option<u64>) {
    if let Ok(Some(storage)) = leptos::prelude::window().local_storage() {
        let _ = match id {
            Some(id) => storage.set_item(DEVICE_KEY, &id.to_string()),
            None => storage.remove_item(DEVICE_KEY),
        };
    }
}
