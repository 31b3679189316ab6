//! The audit trail: who did what, when, from which share to which, and why.

use canary_shared::AuditEvent;
use leptos::prelude::*;

use crate::components::segmented::{Segmented, bind};
use crate::view_model::{AuditKind, action_label, clock_time};

/// The newest audit entries, live, with filters by kind and by who acted.
#[component]
pub fn AuditCard(audit: ReadSignal<Vec<AuditEvent>>) -> impl IntoView {
    let kind = RwSignal::new(AuditKind::All);
    let (kind_index, pick_kind) = bind(kind, &AuditKind::ALL);
    let actor = RwSignal::new(String::new());
    let actors = move || {
        audit.with(|entries| {
            let mut names: Vec<String> = entries.iter().map(|entry| entry.actor.clone()).collect();
            names.sort();
            names.dedup();
            names
        })
    };
    let shown = move || {
        let wanted_actor = actor.get();
        let kind = kind.get();
        audit.with(|entries| {
            entries
                .iter()
                .filter(|entry| kind.matches(entry))
                .filter(|entry| wanted_actor.is_empty() || entry.actor == wanted_actor)
                .cloned()
                .collect::<Vec<_>>()
        })
    };
    view! {
        <article class="card card--audit" aria-labelledby="audit-title">
            <header class="card__header card__header--wrap">
                <h2 class="card__title" id="audit-title">"Audit trail"</h2>
                <div class="audit__filters">
                    <Segmented
                        labels=AuditKind::ALL.iter().map(|choice| choice.label()).collect()
                        selected=kind_index
                        on_select=pick_kind
                        label="Show entries of kind"
                        test_id=|label| format!("audit-kind-{}", label.to_lowercase())
                    />
                    <label class="audit__actor-filter">
                        <span class="visually-hidden">"Who"</span>
                        <select
                            data-testid="audit-actor"
                            prop:value=move || actor.get()
                            on:change=move |event| actor.set(event_target_value(&event))
                        >
                            <option value="">"Anyone"</option>
                            {move || actors().into_iter().map(|name| view! { <option value=name.clone()>{name.clone()}</option> }).collect_view()}
                        </select>
                    </label>
                </div>
            </header>
            <p class="card__note" hidden=move || audit.with(|entries| !entries.is_empty())>"No decisions yet."</p>
            <p class="card__note" hidden=move || audit.with(Vec::is_empty) || !shown().is_empty()>"No entries match the filter."</p>
            <ol class="audit" data-testid="audit">
                {move || {
                    shown()
                        .into_iter()
                        .map(|event| {
                            let shares = if event.from_percent == event.to_percent {
                                format!("{}", event.to_percent)
                            } else {
                                format!("{} → {}", event.from_percent, event.to_percent)
                            };
                            let output = event.output.clone();
                            view! {
                                <li class="audit__entry" data-testid="audit-entry">
                                    <div class="audit__head">
                                        <span class="audit__time">{clock_time(event.at)}</span>
                                        <span class="audit__action">{action_label(&event.action)}</span>
                                        <span class="audit__shares">{shares}</span>
                                    </div>
                                    <div class="audit__meta">
                                        <span class="audit__actor">{format!("by {}", event.actor)}</span>
                                        <span class="audit__reason">{event.reason.clone().unwrap_or_default()}</span>
                                    </div>
                                    {output.map(|output| view! {
                                        <details class="audit__output">
                                            <summary>"Hook output"</summary>
                                            <pre>{output}</pre>
                                        </details>
                                    })}
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ol>
        </article>
    }
}
