//! The Actions card: Start Canary, Scale Traffic, Emergency Stop.
//!
//! Each control is enabled only when the server lists its action in
//! `allowed_actions`; otherwise it is disabled and the server's reason is shown.

use canary_shared::{ActionKind, CanaryState};
use leptos::prelude::*;

use crate::components::scale_panel::ScalePanel;
use crate::view_model::action_view;

/// The operator's actions with their availability.
#[component]
pub fn ActionsCard(state: RwSignal<Option<CanaryState>>) -> impl IntoView {
    let actions = [
        (
            ActionKind::Start,
            "Start canary",
            "button button--primary",
            "action-start",
        ),
        (ActionKind::Scale, "Scale traffic", "button", "action-scale"),
        (
            ActionKind::Stop,
            "Emergency stop",
            "button button--danger",
            "action-stop",
        ),
    ];
    let scale_open = RwSignal::new(false);
    // One line of reasons instead of the same sentence three times.
    let reasons = move || {
        let mut reasons: Vec<String> = Vec::new();
        for (action, ..) in actions {
            if let Some(reason) = state.with(|state| action_view(state.as_ref(), action).reason)
                && !reasons.contains(&reason)
            {
                reasons.push(reason);
            }
        }
        reasons.join("; ")
    };
    view! {
        <article class="card card--actions" data-testid="actions-card" aria-labelledby="actions-title">
            <header class="card__header">
                <h2 class="card__title" id="actions-title">"Actions"</h2>
            </header>
            <div class="actions">
                {actions
                    .into_iter()
                    .map(|(action, label, class, test_id)| {
                        let disabled = move || !state.with(|state| action_view(state.as_ref(), action).enabled);
                        let expanded = move || (action == ActionKind::Scale && scale_open.get()).to_string();
                        view! {
                            <button
                                type="button"
                                class=class
                                data-testid=test_id
                                disabled=disabled
                                aria-expanded=expanded
                                on:click=move |_| {
                                    if action == ActionKind::Scale {
                                        scale_open.update(|open| *open = !*open);
                                    }
                                }
                            >
                                {label}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <ScalePanel state=state open=scale_open />
            <p class="actions__reason" data-testid="actions-reason">{reasons}</p>
        </article>
    }
}
