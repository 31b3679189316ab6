//! The safety checks and where each stands.

use canary_shared::CanaryState;
use leptos::prelude::*;

use crate::view_model::check_class;

/// Every configured safety check with its threshold and status.
#[component]
pub fn SafetyCard(state: RwSignal<Option<CanaryState>>) -> impl IntoView {
    let checks = move || {
        state.with(|state| {
            state
                .as_ref()
                .map(|state| state.safety_checks.clone())
                .unwrap_or_default()
        })
    };
    let armed = move || {
        state.with(|state| match state {
            Some(state) if state.auto_rollback.armed => "Auto-rollback armed",
            Some(_) => "Auto-rollback off",
            None => "",
        })
    };
    view! {
        <article class="card" aria-labelledby="safety-title">
            <header class="card__header">
                <h2 class="card__title" id="safety-title">"Safety checks"</h2>
                <span class="card__note" data-testid="auto-rollback">{armed}</span>
            </header>
            <ul class="checks" data-testid="safety-checks">
                {move || {
                    checks()
                        .into_iter()
                        .map(|check| {
                            let limit = format!("{} {} {}", check.metric, check.comparator.symbol(), check.threshold);
                            view! {
                                <li class="check">
                                    <div class="check__text">
                                        <span class="check__name">{check.name.clone()}</span>
                                        <span class="check__limit">{limit}</span>
                                        <span class="check__reason">{check.reason.clone().unwrap_or_default()}</span>
                                    </div>
                                    <span class=check_class(check.status)>{check.status.label()}</span>
                                </li>
                            }
                        })
                        .collect_view()
                }}
            </ul>
        </article>
    }
}
