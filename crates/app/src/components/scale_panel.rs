//! Moving the canary share by hand: pick a share, read the move back, confirm.
//!
//! Nothing is sent until the operator confirms a sentence that states the
//! move ("Move canary from 5 % to 25 %?"); a refused or failed request shows
//! the server's reason.

use canary_shared::{CanaryShare, CanaryState, StepKind};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::view_model::{clamp_share, share_move_question};

/// The share picker under the Scale button.
#[component]
pub fn ScalePanel(state: ReadSignal<Option<CanaryState>>, open: RwSignal<bool>) -> impl IntoView {
    // Taken now: a command answers in a task, where no context is at hand.
    let live = expect_context::<crate::stream::LiveData>();
    let current = move || {
        state.with(|state| {
            state
                .as_ref()
                .map(|state| state.traffic.canary())
                .unwrap_or_default()
        })
    };
    let target = RwSignal::new(current().percent());
    let confirming = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Reopening starts from the share in effect. Only opening re-runs this:
    // the state changes every second and must not wipe what is being typed.
    Effect::new(move |_| {
        if open.get() {
            let in_effect = state.with_untracked(|state| {
                state
                    .as_ref()
                    .map(|state| state.traffic.canary())
                    .unwrap_or_default()
            });
            target.set(in_effect.percent());
            confirming.set(false);
            error.set(None);
        }
    });
    let marks = move || {
        state.with(|state| {
            state
                .as_ref()
                .map(|state| {
                    state
                        .steps
                        .iter()
                        .filter_map(|step| match step.kind {
                            StepKind::Traffic { percent } => Some(percent),
                            _ => None,
                        })
                        .collect::<Vec<CanaryShare>>()
                })
                .unwrap_or_default()
        })
    };
    let chosen = move || clamp_share(target.get());
    let question = move || share_move_question(current(), chosen());
    let set_target = move |value: String| {
        if let Ok(value) = value.parse::<f64>() {
            target.set(value);
            confirming.set(false);
        }
    };
    let apply = move |_| {
        let share = chosen();
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            match api::scale(share).await {
                Ok(new_state) => {
                    live.adopt(new_state);
                    open.set(false);
                }
                Err(err) => error.set(Some(err.to_string())),
            }
            pending.set(false);
            confirming.set(false);
        });
    };
    // An external router applies a move after the answer: say so until it has.
    let router_note = move || {
        state.with(|state| {
            state
                .as_ref()
                .filter(|state| !state.router.confirmed && !state.router.kind.is_empty())
                .map(|state| {
                    format!(
                        "The router has not confirmed {} yet: {}",
                        state.router.effective_percent,
                        state.router.detail.clone().unwrap_or_default()
                    )
                })
                .unwrap_or_default()
        })
    };
    view! {
        <div class="scale-panel" data-testid="scale-panel" hidden=move || !open.get()>
            <label class="scale-panel__label" for="scale-range">"Canary share"</label>
            <p class="control__reason" data-testid="scale-router-note">{router_note}</p>
            <div class="scale-panel__row">
                <input
                    id="scale-range"
                    class="scale-panel__range"
                    type="range"
                    min="0"
                    max="100"
                    step="0.5"
                    list="scale-marks"
                    data-testid="scale-range"
                    prop:value=move || target.get().to_string()
                    on:input=move |event| set_target(event_target_value(&event))
                />
                <input
                    class="scale-panel__number"
                    type="number"
                    min="0"
                    max="100"
                    step="0.01"
                    inputmode="decimal"
                    aria-label="Canary share in percent"
                    data-testid="scale-input"
                    prop:value=move || target.get().to_string()
                    on:change=move |event| set_target(event_target_value(&event))
                />
            </div>
            <datalist id="scale-marks">
                {move || marks().into_iter().map(|mark| view! { <option value=mark.percent().to_string()></option> }).collect_view()}
            </datalist>
            <div class="scale-panel__marks" aria-hidden="true">
                {move || {
                    marks()
                        .into_iter()
                        .map(|mark| {
                            view! {
                                <button type="button" class="mark" tabindex="-1" on:click=move |_| { target.set(mark.percent()); confirming.set(false); }>
                                    {mark.to_string()}
                                </button>
                            }
                        })
                        .collect_view()
                }}
            </div>
            <p class="scale-panel__split" data-testid="scale-split">
                {move || format!("Canary {} · Production {}", chosen(), chosen().complement())}
            </p>
            <div class="scale-panel__buttons" hidden=move || confirming.get()>
                <button
                    type="button"
                    class="button button--primary"
                    data-testid="scale-review"
                    disabled=move || chosen() == current()
                    on:click=move |_| confirming.set(true)
                >
                    "Review move"
                </button>
                <button type="button" class="button" on:click=move |_| open.set(false)>"Cancel"</button>
            </div>
            <div class="scale-panel__confirm" role="alertdialog" aria-live="assertive" hidden=move || !confirming.get()>
                <p class="scale-panel__question" data-testid="scale-question">{question}</p>
                <div class="scale-panel__buttons">
                    <button type="button" class="button button--primary" data-testid="scale-confirm" disabled=move || pending.get() on:click=apply>
                        {move || if pending.get() { "Moving…" } else { "Confirm" }}
                    </button>
                    <button type="button" class="button" on:click=move |_| confirming.set(false)>"Back"</button>
                </div>
            </div>
            <p class="notice notice--error" role="alert" data-testid="scale-error" hidden=move || error.with(Option::is_none)>
                {move || error.get().unwrap_or_default()}
            </p>
        </div>
    }
}
