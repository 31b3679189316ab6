//! The rollout's steps in order, with their status, Continue and
//! Stop & roll back beside the step in progress, and where auto-progression
//! stands with a switch to turn it off (or on) for this rollout.

use canary_shared::{ActionKind, CanaryState, Role, StepKind, StepStatus};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Simple};
use crate::view_model::{
    action_view, auto_progression_words, clock_time, duration_words, step_class, step_status_label,
};
use crate::{ActionRequests, Viewer};

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
pub fn StepsCard(state: ReadSignal<Option<CanaryState>>) -> impl IntoView {
    let steps = move || {
        state.with(|state| {
            state
                .as_ref()
                .map(|state| state.steps.clone())
                .unwrap_or_default()
        })
    };
    let role = use_context::<Viewer>().map_or(Role::Viewer, |viewer| viewer.me.role);
    let requests = use_context::<ActionRequests>();
    let allowed = move |action: ActionKind| {
        state.with(|state| action_view(state.as_ref(), action, role).enabled)
    };
    // Continue and Stop & roll back, beside the step in progress (during
    // the test runs, Continue skips those left).
    let step_actions = move |kind: StepKind| {
        let requests = requests?;
        (allowed(ActionKind::Continue) || allowed(ActionKind::Rollback)).then(|| {
            view! {
                <div class="step__actions">
                    <button
                        type="button"
                        class="button button--small"
                        data-testid="step-continue"
                        disabled=move || !allowed(ActionKind::Continue)
                        on:click=move |_| requests.request(ActionKind::Continue)
                    >
                        {match kind {
                            StepKind::TestRun { .. } => "Skip the tests",
                            StepKind::Shadow { .. } => "Skip shadow traffic",
                            _ => "Continue",
                        }}
                    </button>
                    <button
                        type="button"
                        class="button button--small button--danger-quiet"
                        data-testid="step-rollback"
                        disabled=move || !allowed(ActionKind::Rollback)
                        on:click=move |_| requests.request(ActionKind::Rollback)
                    >
                        "Stop & roll back"
                    </button>
                </div>
            }
        })
    };
    let unconfirmed = move || {
        state.with(|state| {
            state
                .as_ref()
                .is_some_and(|state| !state.router.confirmed && !state.router.kind.is_empty())
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
                            let current = step.status == StepStatus::InProgress;
                            let kind = step.kind;
                            // A traffic step waits for an external router
                            // to confirm its share before it counts.
                            let label = if current && unconfirmed() {
                                "Waiting for the router"
                            } else {
                                step_status_label(step.status)
                            };
                            view! {
                                <li class=step_class(step.status)>
                                    <span class="step__label">{step.label()}</span>
                                    <span class="step__time">{step_time(&step)}</span>
                                    <span class="step__status" data-testid=current.then_some("current-step-status")>{label}</span>
                                    {step.detail.clone().map(|detail| view! { <span class="step__detail" data-testid="step-detail">{detail}</span> })}
                                    {current.then(move || step_actions(kind))}
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
            <AutoProgressionSwitch state role />
        </article>
    }
}

/// The auto-progression line and its switch. Not destructive either way, so
/// it acts at once; the audit trail records who changed it.
#[component]
fn AutoProgressionSwitch(state: ReadSignal<Option<CanaryState>>, role: Role) -> impl IntoView {
    // Taken now: a command answers in a task, where no context is at hand.
    let live = expect_context::<crate::stream::LiveData>();
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let enabled = move || {
        state.with(|state| {
            state
                .as_ref()
                .is_some_and(|state| state.auto_progression.enabled)
        })
    };
    let control = move || {
        state.with(|state| action_view(state.as_ref(), ActionKind::SetAutoProgression, role))
    };
    let words = move || state.with(|state| state.as_ref().map(auto_progression_words));
    let toggle = move |_| {
        let wanted = !enabled();
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::command(Simple::AutoProgression(wanted)).await {
                Ok(new_state) => live.adopt(new_state),
                Err(err) => error.set(Some(err.to_string())),
            }
            busy.set(false);
        });
    };
    view! {
        <div class="auto-progression" data-testid="auto-progression">
            <button
                type="button"
                role="switch"
                class="switch"
                data-testid="auto-progression-switch"
                aria-checked=move || enabled().to_string()
                aria-describedby="auto-progression-words"
                disabled=move || !control().enabled || busy.get()
                title=move || control().reason.unwrap_or_default()
                on:click=toggle
            >
                <span class="switch__track" aria-hidden="true"><span class="switch__thumb"></span></span>
                <span class="switch__label">"Auto-progression"</span>
            </button>
            <p class="auto-progression__words" id="auto-progression-words" data-testid="auto-progression-words">
                {words}
            </p>
            <p class="notice notice--error" role="alert" data-testid="auto-progression-error" hidden=move || error.with(Option::is_none)>
                {move || error.get().unwrap_or_default()}
            </p>
        </div>
    }
}
