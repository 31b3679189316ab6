//! The Actions card: start a canary, move its share, walk it forward, and stop it.
//!
//! Each control is enabled only when the signed-in role may act and the
//! server lists its action in `allowed_actions`; otherwise it is disabled and
//! the server's reason is shown beside it (a viewer's reason, which is about
//! who they are, once for the card). Destructive actions (stop, rollback,
//! promote, undo a promotion) ask for a confirmation that states what will happen; promote's
//! also shows what the operator reviews first: the safety checks, the
//! judge's verdicts, how long the canary has held its share, and what
//! promotion does to the upstreams. A failed action shows the server's reason.

use canary_shared::{ActionKind, CanaryState, Role, StepKind};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api::{self, Simple};
use crate::components::scale_panel::ScalePanel;
use crate::view_model::{action_view, clamp_share, promotion_review, undo_offer};
use crate::{ActionRequests, Viewer};

/// What waits for the operator's confirmation.
#[derive(Clone, Debug, PartialEq)]
enum Pending {
    Start,
    Promote,
    Rollback,
    Stop,
    Undo,
}

/// The step buttons, in order, with their labels.
const STEP_CONTROLS: [(ActionKind, &str); 5] = [
    (ActionKind::Continue, "Continue"),
    (ActionKind::Pause, "Pause"),
    (ActionKind::Resume, "Resume"),
    (ActionKind::Promote, "Promote"),
    (ActionKind::Rollback, "Roll back"),
];

/// The operator's actions with their availability.
#[component]
pub fn ActionsCard(state: ReadSignal<Option<CanaryState>>) -> impl IntoView {
    // Taken now: a command answers in a task, where no context is at hand.
    let live = expect_context::<crate::stream::LiveData>();
    let scale_open = RwSignal::new(false);
    let pending = RwSignal::new(None::<Pending>);
    let busy = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let image_tag = RwSignal::new(String::new());
    let start_percent = RwSignal::new(String::new());
    let reason = RwSignal::new(String::new());
    // What promotion does to the upstreams, read when its confirmation opens.
    let promotion_words = RwSignal::new(None::<(String, Option<String>)>);

    // Without a known identity, act as the least role; the server decides anyway.
    let role = use_context::<Viewer>().map_or(Role::Viewer, |viewer| viewer.me.role);
    let allowed = move |action: ActionKind| {
        state.with(|state| action_view(state.as_ref(), action, role).enabled)
    };
    let first_step = move || {
        state.with(|state| {
            state
                .as_ref()
                .and_then(|state| {
                    state.steps.iter().find_map(|step| match step.kind {
                        StepKind::Traffic { percent } => Some(percent),
                        _ => None,
                    })
                })
                .map(|share| share.percent().to_string())
                .unwrap_or_else(|| "5".to_owned())
        })
    };
    // Runs a request, shows its error, and closes the confirmation on success.
    let send = move |request: Simple| {
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::command(request).await {
                Ok(new_state) => {
                    live.adopt(new_state);
                    pending.set(None);
                    reason.set(String::new());
                }
                Err(err) => error.set(Some(err.to_string())),
            }
            busy.set(false);
        });
    };
    let start = move || {
        let tag = image_tag.get_untracked().trim().to_owned();
        let share = clamp_share(start_percent.get_untracked().trim().parse().unwrap_or(5.0));
        busy.set(true);
        error.set(None);
        spawn_local(async move {
            match api::start(&tag, share).await {
                Ok(new_state) => {
                    live.adopt(new_state);
                    pending.set(None);
                }
                Err(err) => error.set(Some(err.to_string())),
            }
            busy.set(false);
        });
    };
    let open = move |what: Pending| {
        error.set(None);
        scale_open.set(false);
        if what == Pending::Start {
            start_percent.set(first_step());
        }
        if what == Pending::Promote && promotion_words.get_untracked().is_none() {
            spawn_local(async move {
                if let Ok(settings) = api::settings().await {
                    promotion_words.set(Some((settings.promotion, settings.promotion_warning)));
                }
            });
        }
        pending.set(Some(what));
    };
    // The header's Stop button (on screen however far the page is scrolled)
    // and the stepper's buttons act through this card: its confirmation is
    // opened and brought into view, with the reason field focused.
    let confirm_panel = NodeRef::<leptos::html::Div>::new();
    let reason_input = NodeRef::<leptos::html::Input>::new();
    let reveal = move |what: Pending| {
        open(what);
        // After the panel is shown: a hidden element cannot be scrolled to.
        request_animation_frame(move || {
            if let Some(panel) = confirm_panel.get_untracked() {
                panel.scroll_into_view();
            }
            if let Some(input) = reason_input.get_untracked() {
                let _ = input.focus();
            }
        });
    };
    if let Some(requests) = use_context::<ActionRequests>() {
        Effect::new(move |previous: Option<u32>| {
            let (count, action) = requests.latest();
            if previous.is_some_and(|previous| previous != count) && allowed(action) {
                match action {
                    ActionKind::Continue => send(Simple::Continue),
                    ActionKind::Stop => reveal(Pending::Stop),
                    ActionKind::Rollback => reveal(Pending::Rollback),
                    _ => {}
                }
            }
            count
        });
    }
    let question = move || {
        let share = state.with(|state| {
            state
                .as_ref()
                .map(|state| state.traffic.canary())
                .unwrap_or_default()
        });
        let tag = state
            .with(|state| state.as_ref().and_then(|state| state.image_tag.clone()))
            .unwrap_or_default();
        match pending.get() {
            Some(Pending::Start) => {
                let tag = image_tag.get();
                let tag = if tag.trim().is_empty() {
                    "the new version".to_owned()
                } else {
                    tag.trim().to_owned()
                };
                let share = clamp_share(start_percent.get().trim().parse().unwrap_or(5.0));
                format!("Deploy {tag} and send it {share} of traffic once it is healthy?")
            }
            Some(Pending::Promote) => {
                format!("Promote {tag}: send it 100 % of traffic and finish?")
            }
            Some(Pending::Rollback) => {
                format!("Roll back {tag}: the canary goes from {share} to 0 % now?")
            }
            Some(Pending::Stop) => {
                format!("Emergency stop: move the canary from {share} to 0 % now?")
            }
            Some(Pending::Undo) => state
                .with(|state| state.as_ref().and_then(undo_offer))
                .map(|offer| offer.question)
                .unwrap_or_default(),
            None => String::new(),
        }
    };
    let confirm = move |_| match pending.get_untracked() {
        Some(Pending::Start) => start(),
        Some(Pending::Promote) => send(Simple::Promote),
        Some(Pending::Rollback) => send(Simple::Rollback(reason.get_untracked())),
        Some(Pending::Stop) => send(Simple::Stop(reason.get_untracked())),
        Some(Pending::Undo) => send(Simple::UndoPromotion(reason.get_untracked())),
        None => {}
    };
    // A viewer's controls are all disabled for one reason, which is about
    // them, not the rollout: said once.
    let role_reason = move || {
        (!role.allows(Role::Operator))
            .then(|| action_view(None, ActionKind::Start, role).reason)
            .flatten()
            .unwrap_or_default()
    };
    // Why `action` is disabled, beside its control (empty when enabled or
    // when the role alone explains it).
    let reason_for = move |action: ActionKind| {
        if !role.allows(Role::Operator) {
            return String::new();
        }
        state
            .with(|state| action_view(state.as_ref(), action, role).reason)
            .unwrap_or_default()
    };
    // The step buttons' reasons, beside their row: each reason once, with
    // the controls it holds back.
    let step_reasons = move || {
        let mut grouped: Vec<(String, Vec<&'static str>)> = Vec::new();
        for (action, label) in STEP_CONTROLS {
            let reason = reason_for(action);
            if reason.is_empty() {
                continue;
            }
            match grouped.iter_mut().find(|(known, _)| *known == reason) {
                Some((_, labels)) => labels.push(label),
                None => grouped.push((reason, vec![label])),
            }
        }
        grouped
            .into_iter()
            .map(|(reason, labels)| format!("{}: {reason}", labels.join(", ")))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let review = move || {
        state.with(|state| {
            state
                .as_ref()
                .filter(|_| pending.get() == Some(Pending::Promote))
                .map(promotion_review)
        })
    };
    let step_button = move |action: ActionKind, label: &'static str, test_id: &'static str| {
        view! {
            <button
                type="button"
                class="button button--small"
                data-testid=test_id
                aria-describedby="reason-steps"
                disabled=move || !allowed(action) || busy.get()
                title=move || state.with(|state| action_view(state.as_ref(), action, role).reason).unwrap_or_default()
                on:click=move |_| match action {
                    ActionKind::Continue => send(Simple::Continue),
                    ActionKind::Pause => send(Simple::Pause),
                    ActionKind::Resume => send(Simple::Resume),
                    ActionKind::Promote => open(Pending::Promote),
                    ActionKind::Rollback => open(Pending::Rollback),
                    _ => {}
                }
            >
                {label}
            </button>
        }
    };
    view! {
        <article class="card card--actions" data-testid="actions-card" aria-labelledby="actions-title">
            <header class="card__header">
                <h2 class="card__title" id="actions-title">"Actions"</h2>
            </header>
            <p class="actions__reason" data-testid="actions-reason">{role_reason}</p>
            <div class="actions">
                <div class="control">
                    <button
                        type="button"
                        class="button button--primary"
                        data-testid="action-start"
                        aria-describedby="reason-start"
                        disabled=move || !allowed(ActionKind::Start)
                        aria-expanded=move || (pending.get() == Some(Pending::Start)).to_string()
                        on:click=move |_| open(Pending::Start)
                    >
                        "Start canary"
                    </button>
                    <span class="control__reason" id="reason-start" data-testid="reason-start">{move || reason_for(ActionKind::Start)}</span>
                </div>
                <div class="control">
                    <button
                        type="button"
                        class="button"
                        data-testid="action-scale"
                        aria-describedby="reason-scale"
                        disabled=move || !allowed(ActionKind::Scale)
                        aria-expanded=move || scale_open.get().to_string()
                        on:click=move |_| {
                            pending.set(None);
                            scale_open.update(|open| *open = !*open);
                        }
                    >
                        "Scale traffic"
                    </button>
                    <span class="control__reason" id="reason-scale" data-testid="reason-scale">{move || reason_for(ActionKind::Scale)}</span>
                </div>
                <div class="control">
                    <button
                        type="button"
                        class="button button--danger"
                        data-testid="action-stop"
                        aria-describedby="reason-stop"
                        disabled=move || !allowed(ActionKind::Stop)
                        on:click=move |_| open(Pending::Stop)
                    >
                        "Emergency stop"
                    </button>
                    <span class="control__reason" id="reason-stop" data-testid="reason-stop">{move || reason_for(ActionKind::Stop)}</span>
                </div>
                // Only while the previous version stands by: a control that
                // is disabled for most of a product's life would be noise.
                <div class="control" hidden=move || state.with(|state| state.as_ref().and_then(undo_offer).is_none())>
                    <button
                        type="button"
                        class="button button--danger"
                        data-testid="action-undo-promotion"
                        aria-describedby="undo-standby"
                        disabled=move || !allowed(ActionKind::UndoPromotion) || busy.get()
                        on:click=move |_| open(Pending::Undo)
                    >
                        "Undo promotion"
                    </button>
                    <span class="control__reason" id="undo-standby" data-testid="undo-standby">
                        {move || state.with(|state| state.as_ref().and_then(undo_offer)).map(|offer| offer.standing_by).unwrap_or_default()}
                    </span>
                </div>
            </div>
            <div class="actions actions--steps">
                {step_button(ActionKind::Continue, "Continue", "action-continue")}
                {step_button(ActionKind::Pause, "Pause", "action-pause")}
                {step_button(ActionKind::Resume, "Resume", "action-resume")}
                {step_button(ActionKind::Promote, "Promote", "action-promote")}
                {step_button(ActionKind::Rollback, "Roll back", "action-rollback")}
            </div>
            <p class="control__reason" id="reason-steps" data-testid="reason-steps">{step_reasons}</p>
            <ScalePanel state=state open=scale_open />
            <div node_ref=confirm_panel class="confirm-panel" role="alertdialog" aria-live="assertive" data-testid="confirm-panel" hidden=move || pending.with(Option::is_none)>
                <div class="confirm-panel__fields" hidden=move || pending.get() != Some(Pending::Start)>
                    <label for="start-tag">"Image tag"</label>
                    <input
                        id="start-tag"
                        type="text"
                        autocomplete="off"
                        placeholder="v2.7.0"
                        data-testid="start-tag"
                        prop:value=move || image_tag.get()
                        on:input=move |event| image_tag.set(event_target_value(&event))
                    />
                    <label for="start-share">"Starting share (%)"</label>
                    <input
                        id="start-share"
                        type="number"
                        min="0.01"
                        max="100"
                        step="0.01"
                        inputmode="decimal"
                        data-testid="start-share"
                        prop:value=move || start_percent.get()
                        on:input=move |event| start_percent.set(event_target_value(&event))
                    />
                </div>
                <div
                    class="confirm-panel__fields"
                    hidden=move || !matches!(pending.get(), Some(Pending::Stop | Pending::Rollback | Pending::Undo))
                >
                    <label for="stop-reason">"Reason (for the audit trail)"</label>
                    <input
                        node_ref=reason_input
                        id="stop-reason"
                        type="text"
                        autocomplete="off"
                        placeholder="what went wrong"
                        data-testid="stop-reason"
                        prop:value=move || reason.get()
                        on:input=move |event| reason.set(event_target_value(&event))
                    />
                </div>
                <p class="confirm-panel__question" data-testid="confirm-question">{question}</p>
                {move || review().map(|review| view! {
                    <div class="review" data-testid="promote-review">
                        <p class="review__share">{review.at_share}</p>
                        <ul class="review__lines">
                            {review.lines.into_iter().map(|line| view! {
                                <li class="review__line">
                                    <span class=line.class>{line.badge}</span>
                                    <span>{line.words}</span>
                                </li>
                            }).collect_view()}
                        </ul>
                        {promotion_words.get().map(|(words, warning)| view! {
                            <p class="review__promotion" data-testid="promote-effect">{format!("Promotion: {words}.")}</p>
                            <p class="notice notice--warn" data-testid="promote-warning" hidden=warning.is_none()>{warning.clone().unwrap_or_default()}</p>
                        })}
                    </div>
                })}
                <div class="scale-panel__buttons">
                    <button
                        type="button"
                        class=move || if matches!(pending.get(), Some(Pending::Stop | Pending::Rollback | Pending::Undo)) { "button button--danger" } else { "button button--primary" }
                        data-testid="confirm-yes"
                        disabled=move || busy.get() || (pending.get() == Some(Pending::Start) && image_tag.get().trim().is_empty())
                        on:click=confirm
                    >
                        {move || if busy.get() { "Working…" } else { "Confirm" }}
                    </button>
                    <button type="button" class="button" data-testid="confirm-no" on:click=move |_| pending.set(None)>
                        "Cancel"
                    </button>
                </div>
            </div>
            <p class="notice notice--error" role="alert" data-testid="action-error" hidden=move || error.with(Option::is_none)>
                {move || error.get().unwrap_or_default()}
            </p>
        </article>
    }
}
