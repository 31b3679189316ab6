//! The Actions card: Start Canary, Scale Traffic, Emergency Stop.
//!
//! Each control is enabled only when the server lists its action in
//! `allowed_actions`; otherwise it is disabled and the server's reason is shown.

use canary_shared::{ActionKind, CanaryState};
use leptos::prelude::*;

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
                        view! {
                            <button type="button" class=class data-testid=test_id disabled=disabled>
                                {label}
                            </button>
                        }
                    })
                    .collect_view()}
            </div>
            <p class="actions__reason" data-testid="actions-reason">{reasons}</p>
        </article>
    }
}
