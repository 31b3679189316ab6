//! The canary operator console: a Leptos client-side app fed by the server's
//! WebSocket stream.
//!
//! # Layout
//! - [`api`]: the typed REST client.
//! - [`stream`]: the live connection, with reconnect and backoff, as signals.
//! - [`alerts`]: browser notifications on a breach or a rollback.
//! - [`view_model`]: pure presentation logic, tested on the host.
//! - [`chart_model`]: the live charts' series, lines and axes, also pure.
//! - [`components`]: presentational pieces that take signals and props.
//! - [`pages`]: screens that wire components to the live data.

pub mod alerts;
pub mod api;
pub mod chart_model;
pub mod components;
pub mod pages;
pub mod push;
pub mod stream;
pub mod view_model;

use canary_shared::Me;
use leptos::prelude::*;

use crate::stream::LiveData;

/// Where this browser stands with the server.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Session {
    /// Asking the server who we are.
    Checking,
    /// Needs a sign-in, with the reason to show (a session that ended).
    SignedOut(Option<String>),
    /// Signed in (or logins are off on a loopback server).
    SignedIn(Me),
}

/// Who is signed in, and how to sign out; provided to the console's pages.
#[derive(Clone, Debug)]
pub struct Viewer {
    /// The identity the server reported.
    pub me: Me,
    /// Ends the session and returns to the sign-in page.
    pub sign_out: Callback<()>,
}

/// Asks the Actions card to carry out an action started elsewhere on the
/// page (the header's Emergency Stop, the stepper's Continue and Roll back),
/// so every confirmation and every error shows in one place.
#[derive(Clone, Copy, Debug)]
pub struct ActionRequests(RwSignal<(u32, canary_shared::ActionKind)>);

impl ActionRequests {
    fn new() -> ActionRequests {
        ActionRequests(RwSignal::new((0, canary_shared::ActionKind::Stop)))
    }

    /// Asks for `action`.
    pub fn request(self, action: canary_shared::ActionKind) {
        self.0.update(|(count, wanted)| {
            *count = count.wrapping_add(1);
            *wanted = action;
        });
    }

    /// How many requests so far, and the latest one.
    pub fn latest(self) -> (u32, canary_shared::ActionKind) {
        self.0.get()
    }
}

/// The whole console: the sign-in page until the server knows who we are,
/// then the live dashboard.
#[component]
pub fn App() -> impl IntoView {
    let session = RwSignal::new(Session::Checking);
    leptos::task::spawn_local(async move {
        session.set(match api::me().await {
            Ok(me) => Session::SignedIn(me),
            Err(err) if err.is_unauthorized() => Session::SignedOut(None),
            Err(err) => Session::SignedOut(Some(err.to_string())),
        });
    });
    let on_signed_in = Callback::new(move |me: Me| session.set(Session::SignedIn(me)));
    move || match session.get() {
        Session::Checking => view! { <p class="loading" role="status">"Loading…"</p> }.into_any(),
        Session::SignedOut(notice) => {
            view! { <pages::login::Login notice on_signed_in /> }.into_any()
        }
        Session::SignedIn(me) => {
            // Signed in with the identity provider: its sign-out next.
            let then = me
                .sign_out_url
                .clone()
                .filter(|_| me.kind == canary_shared::CredentialKind::Session);
            let sign_out = Callback::new(move |()| {
                let then = then.clone();
                leptos::task::spawn_local(async move {
                    if let Err(err) = api::logout().await {
                        web_sys::console::warn_1(&format!("canary: sign-out: {err}").into());
                    }
                    match then {
                        Some(url) => {
                            let _ = window().location().assign(&url);
                        }
                        None => session.set(Session::SignedOut(None)),
                    }
                });
            });
            let ended = Callback::new(move |reason: String| {
                session.set(Session::SignedOut(Some(reason)));
            });
            view! { <Console viewer=Viewer { me, sign_out } ended /> }.into_any()
        }
    }
}

/// The live console for a signed-in viewer.
#[component]
fn Console(viewer: Viewer, ended: Callback<String>) -> impl IntoView {
    let live: LiveData = stream::connect();
    provide_context(live);
    provide_context(viewer);
    provide_context(ActionRequests::new());
    Effect::new(move |_| {
        if let Some(reason) = live.session_ended.get() {
            let reason = if reason.is_empty() {
                "Your session ended; sign in again.".to_owned()
            } else {
                reason
            };
            ended.run(reason);
        }
    });
    // A socket the server refuses at the handshake (for example after a
    // restart forgot the session) only says "closed": ask who we are.
    Effect::new(move |_| {
        if let view_model::Connection::Reconnecting { .. } = live.connection.get() {
            leptos::task::spawn_local(async move {
                if let Err(err) = api::me().await
                    && err.is_unauthorized()
                {
                    ended.run("Your session ended; sign in again.".to_owned());
                }
            });
        }
    });
    // A breach or a rollback raises a browser notification, once per entry.
    // Entries already in the trail when the console opens are history, not news.
    let alerted_up_to = StoredValue::new(None::<u64>);
    Effect::new(move |_| {
        live.audit.with(|entries| {
            let Some(newest) = entries.first().map(|entry| entry.seq) else {
                return;
            };
            if let Some(seen) = alerted_up_to.get_value() {
                let version = live.state.with_untracked(|state| {
                    state.as_ref().and_then(|state| state.image_tag.clone())
                });
                for alert in view_model::new_alerts(entries, seen, version.as_deref()) {
                    alerts::raise(&alert);
                }
            }
            alerted_up_to.set_value(Some(newest.max(alerted_up_to.get_value().unwrap_or(0))));
        });
    });
    // The tab title shows the state, so a background tab still tells the story.
    Effect::new(move |_| {
        let title = live
            .state
            .with(|state| view_model::page_title(state.as_ref(), live.connection.get()));
        document().set_title(&title);
    });
    view! { <pages::dashboard::Dashboard /> }
}
