//! The top bar: product name (and a link back to the team's admin panel,
//! when configured), the live-connection indicator, Emergency Stop whenever
//! a stop is possible, browser alerts, and who is signed in.

use canary_shared::{ActionKind, CredentialKind};
use leptos::prelude::*;

use crate::alerts::{self, AlertPermission};
use crate::stream::LiveData;
use crate::view_model::{Connection, action_view};
use crate::{ActionRequests, Viewer};

/// The header with the connection indicator and who is signed in.
#[component]
pub fn AppHeader(connection: ReadSignal<Connection>) -> impl IntoView {
    let viewer = use_context::<Viewer>();
    let panel = viewer.as_ref().and_then(|viewer| {
        let url = viewer.me.panel_url.clone()?;
        let label = viewer.me.panel_label.clone().unwrap_or_default();
        let words = label.clone();
        // On a phone only the arrow shows; its name stays the label.
        Some(view! {
            <a class="panel-link" href=url title=label.clone() aria-label=label.clone() data-testid="panel-link">
                "← "<span class="panel-link__label">{words}</span>
            </a>
        })
    });
    let identity = viewer.map(|viewer| {
        let can_sign_out = viewer.me.kind == CredentialKind::Session;
        let proxy_sign_out = viewer
            .me
            .sign_out_url
            .clone()
            .filter(|_| viewer.me.kind == CredentialKind::Proxy);
        let sign_out = viewer.sign_out;
        view! {
            <div class="identity" data-testid="identity">
                <span class="identity__name">{viewer.me.name.clone()}</span>
                <span class="identity__role">{viewer.me.role.as_str()}</span>
                <Show when=move || can_sign_out>
                    <button class="button button--quiet" type="button" on:click=move |_| sign_out.run(()) data-testid="sign-out">
                        "Sign out"
                    </button>
                </Show>
                // Signed in by the company's authenticating proxy: signing
                // out is the proxy's business, at the address it gave.
                {proxy_sign_out.map(|url| view! {
                    <a class="button button--quiet" href=url data-testid="sign-out">"Sign out"</a>
                })}
            </div>
        }
    });
    // The countdown to the next attempt ticks: the label is worked out from
    // when the connection last changed, re-read twice a second.
    let changed_at = RwSignal::new(js_sys::Date::now());
    let now = RwSignal::new(js_sys::Date::now());
    Effect::new(move |_| {
        connection.track();
        let at = js_sys::Date::now();
        changed_at.set(at);
        now.set(at);
    });
    if let Ok(ticker) = set_interval_with_handle(
        move || {
            if connection.get_untracked().is_stale() {
                now.set(js_sys::Date::now());
            }
        },
        std::time::Duration::from_millis(500),
    ) {
        on_cleanup(move || ticker.clear());
    }
    let label = move || {
        let elapsed = (now.get() - changed_at.get()).max(0.0) as u64;
        connection.get().label_after(elapsed)
    };
    view! {
        <header class="app-header">
            <div class="brand">
                <span class="brand__mark" aria-hidden="true"></span>
                <span class="brand__name">"canary"</span>
                <span class="brand__subtitle">"Deployment console"</span>
                {panel}
            </div>
            <div
                class=move || connection.get().css_class()
                data-testid="connection-status"
                role="status"
                aria-live="polite"
            >
                <span class="connection__dot" aria-hidden="true"></span>
                <span class="connection__label">{label}</span>
            </div>
            <HeaderStop />
            <AlertsControl />
            {identity}
        </header>
    }
}

/// Turns browser notifications on (on a click, as browsers require) and says
/// where they stand.
#[component]
fn AlertsControl() -> impl IntoView {
    let permission = RwSignal::new(alerts::permission());
    let ask = move |_| {
        leptos::task::spawn_local(async move {
            permission.set(alerts::request().await);
        });
    };
    move || {
        match permission.get() {
        AlertPermission::Unsupported => ().into_any(),
        AlertPermission::NotAsked => view! {
            <button
                class="button button--quiet alerts"
                type="button"
                on:click=ask
                title="Get a browser notification on a safety breach or a rollback while this console is open"
                data-testid="alerts-enable"
            >
                <span class="alerts__long">"Turn on alerts"</span>
                <span class="alerts__short">"Alerts"</span>
            </button>
        }
        .into_any(),
        AlertPermission::Granted => status_chip(
            "alerts alerts--on",
            "A browser notification is raised on a safety breach or a rollback while this console is open",
            "Alerts on",
        ),
        AlertPermission::Denied => status_chip(
            "alerts alerts--off",
            "This browser blocks notifications from this site; allow them in the site settings",
            "Alerts blocked",
        ),
    }
    }
}

/// Where browser alerts stand, with the explanation on hover.
fn status_chip(class: &'static str, title: &'static str, text: &'static str) -> AnyView {
    view! {
        <span class=class title=title data-testid="alerts-status">
            {text}
        </span>
    }
    .into_any()
}

/// Emergency Stop in the sticky header: on screen however far the page is
/// scrolled, whenever a stop is possible. It opens the Actions card's
/// confirmation, so nothing stops without a second tap.
#[component]
fn HeaderStop() -> impl IntoView {
    let live = use_context::<LiveData>();
    let requests = use_context::<ActionRequests>();
    let role = use_context::<Viewer>().map(|viewer| viewer.me.role);
    let (Some(live), Some(requests), Some(role)) = (live, requests, role) else {
        return ().into_any();
    };
    let possible = move || {
        live.state
            .with(|state| action_view(state.as_ref(), ActionKind::Stop, role).enabled)
    };
    view! {
        <Show when=possible>
            <button
                type="button"
                class="button button--danger header-stop"
                data-testid="header-stop"
                // The phone's label is the short "Stop"; its name stays the whole one.
                aria-label="Emergency stop"
                on:click=move |_| requests.request(ActionKind::Stop)
            >
                <span class="header-stop__long">"Emergency stop"</span>
                <span class="header-stop__short">"Stop"</span>
            </button>
        </Show>
    }
    .into_any()
}
