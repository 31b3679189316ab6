//! The top bar: product name and the live-connection indicator.

use leptos::prelude::*;

use crate::view_model::Connection;

/// The header with the connection indicator.
#[component]
pub fn AppHeader(connection: RwSignal<Connection>) -> impl IntoView {
    view! {
        <header class="app-header">
            <div class="brand">
                <span class="brand__mark" aria-hidden="true"></span>
                <span class="brand__name">"canary"</span>
                <span class="brand__subtitle">"Deployment console"</span>
            </div>
            <div
                class=move || connection.get().css_class()
                data-testid="connection-status"
                role="status"
                aria-live="polite"
            >
                <span class="connection__dot" aria-hidden="true"></span>
                <span class="connection__label">{move || connection.get().label()}</span>
            </div>
        </header>
    }
}
