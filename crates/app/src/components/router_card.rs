//! The router card, shown when an external router (HAProxy, nginx, a
//! Gateway API route) splits the traffic: the share it applies, whether
//! every instance has it, each instance's reading or error, and a warning
//! when the router counted requests its access log did not bring.

use canary_shared::CanaryState;
use leptos::prelude::*;

use crate::view_model::router_view;

/// The router and where the split stands on it; nothing for the built-in proxy.
#[component]
pub fn RouterCard(state: ReadSignal<Option<CanaryState>>) -> impl IntoView {
    let view =
        move || state.with(|state| state.as_ref().and_then(|state| router_view(&state.router)));
    move || {
        view().map(|view| {
            view! {
                <article class="card card--router" data-testid="router-card" aria-labelledby="router-title">
                    <header class="card__header">
                        <h2 class="card__title" id="router-title">{view.title}</h2>
                        <span class=view.badge_class data-testid="router-state">{view.badge}</span>
                    </header>
                    <p class="router__headline" data-testid="router-headline">{view.headline}</p>
                    {view.measurement.map(|note| view! {
                        <p class="router__measurement" role="status" data-testid="router-measurement">{note}</p>
                    })}
                    <ul class="router__instances">
                        {view.instances.into_iter().map(|(name, reading)| view! {
                            <li class="router__instance">
                                <span class="router__name">{name}</span>
                                <span>{reading}</span>
                            </li>
                        }).collect_view()}
                    </ul>
                    <p class="router__about">{view.about}</p>
                </article>
            }
        })
    }
}
