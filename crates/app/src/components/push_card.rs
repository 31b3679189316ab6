//! "Alerts on this device", folded away by default: Web Push alerts that
//! reach this device with no console open (a tablet in a bag, a phone at
//! night), the events it is told about, a test alert, and the devices that
//! get alerts (everyone's, for an admin), each removable.
//!
//! The body is markup from [`push_markup`]; one click handler and one
//! change handler read what was pressed from its `data-` attributes.

use canary_shared::UnixMillis;
use canary_shared::audit::NotifyEvent;
use canary_shared::push::{PushOverview, default_push_events};
use leptos::prelude::*;
use leptos::task::spawn_local;
use wasm_bindgen::JsCast;

use crate::view_model::{PUSH_EVENTS, PushPanel, push_markup};
use crate::{Viewer, api, push};

/// The folded card.
#[component]
pub fn PushCard() -> impl IntoView {
    let me = use_context::<Viewer>()
        .map(|viewer| viewer.me.name)
        .unwrap_or_default();
    let overview = RwSignal::new(None::<PushOverview>);
    // This browser's device, when the server knows it and the browser
    // still holds its subscription.
    let mine = RwSignal::new(None::<u64>);
    let chosen = RwSignal::new(default_push_events());
    let note = RwSignal::new(String::new());
    let busy = RwSignal::new(false);
    let unsupported = push::unsupported();

    let load = move || {
        spawn_local(async move {
            match api::push().await {
                Ok(read) => {
                    let found = push::this_device()
                        .and_then(|id| read.devices.iter().find(|device| device.id == id).cloned());
                    let held = unsupported.is_none() && found.is_some() && push::subscribed().await;
                    let found = found.filter(|_| held);
                    if let Some(device) = &found {
                        chosen.set(device.events.clone());
                    }
                    mine.set(found.map(|device| device.id));
                    overview.set(Some(read));
                }
                Err(err) => note.set(format!("Push alerts could not be read: {err}")),
            }
        });
    };
    // Subscribes this device or saves its events; sends it a test; removes
    // a device (this one also ends the browser's subscription).
    let act = move |what: String, id: u64| {
        busy.set(true);
        spawn_local(async move {
            let done = match what.as_str() {
                "save" => {
                    let key = overview.with_untracked(|read| {
                        read.as_ref()
                            .map(|read| read.public_key.clone())
                            .unwrap_or_default()
                    });
                    match push::subscription(&key, &chosen.get_untracked()).await {
                        Ok(json) => api::subscribe_push(json).await.map(|device| {
                            push::remember(Some(device.id));
                            "Saved: this device gets these alerts, even with the console closed."
                                .to_owned()
                        }),
                        Err(err) => Ok(err),
                    }
                }
                "test" => api::push_device(id, true).await,
                _ => api::push_device(id, false)
                    .await
                    .map(|_| "Removed: that device gets no more alerts.".to_owned()),
            };
            if what == "remove" && mine.get_untracked() == Some(id) {
                push::unsubscribe().await;
            }
            note.set(done.unwrap_or_else(|err| err.to_string()));
            busy.set(false);
            load();
        });
    };
    let on_click = move |event: leptos::ev::MouseEvent| {
        let pressed = event
            .target()
            .and_then(|target| target.dyn_into::<web_sys::Element>().ok())
            .and_then(|target| target.closest("[data-act]").ok().flatten());
        if let Some(button) = pressed {
            let id = button
                .get_attribute("data-id")
                .and_then(|id| id.parse().ok())
                .unwrap_or_default();
            act(button.get_attribute("data-act").unwrap_or_default(), id);
        }
    };
    let on_change = move |event: leptos::ev::Event| {
        let named = event_target::<web_sys::Element>(&event).get_attribute("data-event");
        if let Some(&(event, _)) = PUSH_EVENTS
            .iter()
            .find(|(event, _)| named.as_deref() == Some(event.as_str()))
        {
            chosen.update(|chosen: &mut Vec<NotifyEvent>| {
                match chosen.iter().position(|known| *known == event) {
                    Some(at) => {
                        chosen.remove(at);
                    }
                    None => chosen.push(event),
                }
            });
        }
    };
    let on_toggle = move |event: leptos::ev::Event| {
        if event_target::<web_sys::HtmlDetailsElement>(&event).open() {
            load();
        }
    };
    let markup = move || {
        overview.with(|read| {
            chosen.with(|chosen| {
                push_markup(&PushPanel {
                    unsupported,
                    devices: read.as_ref().map(|read| read.devices.as_slice()),
                    enabled: read.as_ref().is_none_or(|read| read.enabled),
                    mine: mine.get(),
                    chosen,
                    busy: busy.get(),
                    me: &me,
                    now: UnixMillis(js_sys::Date::now() as u64),
                })
            })
        })
    };
    view! {
        <details class="card card--help" data-testid="push" on:toggle=on_toggle>
            <summary class="card__title">"Alerts on this device: safety breaches and rollbacks, even with the console closed"</summary>
            <div class="help push">
                <div on:click=on_click on:change=on_change inner_html=markup></div>
                <p class="card__note" role="status" data-testid="push-note">{move || note.get()}</p>
            </div>
        </details>
    }
}
