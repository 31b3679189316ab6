//! The rollout's steps in order, with their status.

use canary_shared::CanaryState;
use leptos::prelude::*;

use crate::view_model::{clock_time, duration_words, step_class, step_status_label};

/// `14:05:09 · 3 min` for a finished step, `since 14:05:09` for the current one.
fn step_time(step: &canary_shared::DeploymentStep) -> String {
    match (step.started_at, step.ended_at) {
        (Some(started), Some(ended)) => format!(
            "{} · {}",
            clock_time(started),
            duration_words(ended.saturating_since(started))
        ),
        (Some(started), None) => format!("since {}", clock_time(started)),
        _ => String::new(),
    }
}

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
                                    <span class="step__time">{step_time(&step)}</span>
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
