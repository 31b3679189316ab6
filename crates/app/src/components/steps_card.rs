//! The rollout's steps in order, with their status.

use canary_shared::CanaryState;
use leptos::prelude::*;

use crate::view_model::{step_class, step_status_label};

/// The deployment workflow as an ordered list.
#[component]
pub fn StepsCard(state: RwSignal<Option<CanaryState>>) -> impl IntoView {
    let steps = move || {
        state.with(|state| {
            state
                .as_ref()
                .map(|state| state.steps.clone())
                .unwrap_or_default()
        })
    };
    view! {
        <article class="card" aria-labelledby="steps-title">
            <header class="card__header">
                <h2 class="card__title" id="steps-title">"Rollout steps"</h2>
            </header>
            <ol class="steps" data-testid="steps">
                {move || {
                    steps()
                        .into_iter()
                        .map(|step| {
                            view! {
                                <li class=step_class(step.status)>
                                    <span class="step__label">{step.kind.label()}</span>
                                    <span class="step__status">{step_status_label(step.status)}</span>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
        </article>
    }
}
