//! The top bar: product name and the live-connection indicator.

use canary_shared::CredentialKind;
use leptos::prelude::*;

use crate::Viewer;
use crate::view_model::Connection;

/// The header with the connection indicator and who is signed in.
#[component]
pub fn AppHeader(connection: RwSignal<Connection>) -> impl IntoView {
    let viewer = use_context::<Viewer>();
    let identity = viewer.map(|viewer| {
        let can_sign_out = viewer.me.kind == CredentialKind::Session;
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
            </div>
        }
    });
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
            {identity}
        </header>
    }
}
