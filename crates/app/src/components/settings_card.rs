//! "Advanced settings", folded away by default: the rules rollouts follow
//! (steps, auto-progression, auto-rollback, how checks are judged,
//! stickiness), read from the server the first time the fold is opened.

use canary_shared::RolloutSettings;
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::view_model::settings_rows;

/// Where the settings stand in this page.
#[derive(Clone, Debug, PartialEq)]
enum Loaded {
    NotYet,
    Loading,
    Ready(Box<RolloutSettings>),
    Failed(String),
}

/// The folded settings card.
#[component]
pub fn SettingsCard() -> impl IntoView {
    let loaded = RwSignal::new(Loaded::NotYet);
    let load = move || {
        loaded.set(Loaded::Loading);
        spawn_local(async move {
            loaded.set(match api::settings().await {
                Ok(settings) => Loaded::Ready(Box::new(settings)),
                Err(err) => Loaded::Failed(err.to_string()),
            });
        });
    };
    let on_toggle = move |event: leptos::ev::Event| {
        let open = event_target::<web_sys::HtmlDetailsElement>(&event).open();
        // Read once, and again after a failure.
        if open && matches!(loaded.get_untracked(), Loaded::NotYet | Loaded::Failed(_)) {
            load();
        }
    };
    let body = move || {
        match loaded.get() {
        Loaded::NotYet | Loaded::Loading => {
            view! { <p class="card__note" role="status">"Loading…"</p> }.into_any()
        }
        Loaded::Failed(message) => view! {
            <p class="notice notice--error" role="alert">
                {format!("The settings could not be read: {message}")}
            </p>
        }
        .into_any(),
        Loaded::Ready(settings) => view! {
            <dl class="settings" data-testid="settings-list">
                {settings_rows(&settings)
                    .into_iter()
                    .map(|(term, meaning)| view! { <dt>{term}</dt><dd>{meaning}</dd> })
                    .collect_view()}
            </dl>
            <p class="card__note">
                "Thresholds are the safety checks above. All of this is set in canary-config.yaml and read when the server starts; auto-progression can also be switched for one rollout beside its steps."
            </p>
        }
        .into_any(),
    }
    };
    view! {
        <details class="card card--help" data-testid="settings" on:toggle=on_toggle>
            <summary class="card__title">"Advanced settings: steps, auto-progression, thresholds, the statistical judge, stickiness"</summary>
            <div class="help">{body}</div>
        </details>
    }
}
