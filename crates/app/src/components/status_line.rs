//! The one-sentence status of the rollout.

use canary_shared::{CanaryState, Phase};
use leptos::prelude::*;

use crate::view_model::Connection;

/// The summary the server wrote, with the phase, or a loading line.
#[component]
pub fn StatusLine(
    state: ReadSignal<Option<CanaryState>>,
    connection: ReadSignal<Connection>,
) -> impl IntoView {
    let summary = move || {
        state.with(|state| match state {
            Some(state) => state.summary.clone(),
            None => "Waiting for the first update from the server…".to_owned(),
        })
    };
    let phase = move || {
        state.with(|state| {
            state
                .as_ref()
                .map(|state| state.phase.label())
                .unwrap_or("—")
        })
    };
    // The accent says at a glance whether all is well, in motion, or wrong.
    let tone = move || {
        state.with(|state| match state.as_ref().map(|state| state.phase) {
            Some(Phase::RollingBack | Phase::RolledBack | Phase::Failed) => "bad",
            Some(Phase::Promoted) => "good",
            Some(Phase::Idle) | None => "neutral",
            Some(_) => "active",
        })
    };
    let stale_note = move || {
        (connection.get().is_stale() && state.with(Option::is_some))
            .then_some("Not live: showing the last known state")
    };
    view! {
        <section class=move || format!("status-line status-line--{}", tone()) aria-label="Rollout status">
            <span class="status-line__phase" data-testid="phase">{phase}</span>
            <h1 class="status-line__summary" data-testid="status-line">{summary}</h1>
            <span class="status-line__stale" data-testid="stale-note">{stale_note}</span>
        </section>
    }
}
