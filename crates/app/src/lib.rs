//! The canary operator console: a Leptos client-side app fed by the server's
//! WebSocket stream.
//!
//! # Layout
//! - [`api`]: the typed REST client.
//! - [`stream`]: the live connection, with reconnect and backoff, as signals.
//! - [`view_model`]: pure presentation logic, tested on the host.
//! - [`components`]: presentational pieces that take signals and props.
//! - [`pages`]: screens that wire components to the live data.

pub mod api;
pub mod components;
pub mod pages;
pub mod stream;
pub mod view_model;

use leptos::prelude::*;

use crate::stream::LiveData;

/// The whole console.
#[component]
pub fn App() -> impl IntoView {
    let live: LiveData = stream::connect();
    provide_context(live);
    // The tab title shows the state, so a background tab still tells the story.
    Effect::new(move |_| {
        let title = live
            .state
            .with(|state| view_model::page_title(state.as_ref(), live.connection.get()));
        document().set_title(&title);
    });
    view! { <pages::dashboard::Dashboard /> }
}
