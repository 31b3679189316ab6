//! The audit trail: who did what, when, from which share to which, and why.

use canary_shared::AuditEvent;
use leptos::prelude::*;

use crate::view_model::{action_label, clock_time};

/// The newest audit entries, live.
#[component]
pub fn AuditCard(audit: RwSignal<Vec<AuditEvent>>) -> impl IntoView {
    view! {
        <article class="card card--audit" aria-labelledby="audit-title">
            <header class="card__header">
                <h2 class="card__title" id="audit-title">"Audit trail"</h2>
            </header>
            <p class="card__note" hidden=move || audit.with(|entries| !entries.is_empty())>"No decisions yet."</p>
            <ol class="audit" data-testid="audit">
                {move || {
                    audit
                        .get()
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
