//! The safety checks and where each stands, with the automatic decisions
//! they led to, each explained in words and the figures of its moment.

use canary_shared::{AuditEvent, CanaryState, JudgeConclusion, JudgedMetric};
use leptos::prelude::*;

use crate::chart_model::evidence_markup;
use crate::view_model::{
    action_label, check_class, clock_time, decision_figures, rollout_decisions,
};

/// How many automatic decisions the panel explains (the audit trail has all).
const DECISIONS_SHOWN: usize = 4;

/// Every configured safety check with its threshold and status, then the
/// latest automatic decisions.
#[component]
pub fn SafetyCard(
    state: ReadSignal<Option<CanaryState>>,
    audit: ReadSignal<Vec<AuditEvent>>,
) -> impl IntoView {
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
    // During the shadow step the judge compares the copies' answers.
    let judge_title = move || {
        state.with(|state| match state {
            Some(state)
                if state
                    .judge
                    .iter()
                    .any(|metric| metric.metric.starts_with("shadow_")) =>
            {
                "Statistical judge, on shadow traffic"
            }
            _ => "Statistical judge",
        })
    };
    // The statistical judge's verdicts, when it runs (each in words with its evidence).
    let judged = move || {
        state.with(|state| {
            state
                .as_ref()
                .map(|state| state.judge.clone())
                .unwrap_or_default()
        })
    };
    let decisions = move || {
        let started = state.with(|state| {
            state
                .as_ref()
                .and_then(|state| state.steps.first())
                .and_then(|step| step.started_at)
        });
        audit.with(|entries| rollout_decisions(entries, started, DECISIONS_SHOWN))
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
            <section class="decisions" aria-labelledby="judge-title" hidden=move || judged().is_empty()>
                <h3 class="decisions__title" id="judge-title">{move || judge_title()}</h3>
                <ul class="checks" data-testid="judge">
                    {move || {
                        judged()
                            .into_iter()
                            .map(|metric| {
                                let (class, label) = match metric.conclusion {
                                    JudgeConclusion::Fail => ("badge badge--bad", "Fail"),
                                    JudgeConclusion::Pass => ("badge badge--good", "Pass"),
                                    JudgeConclusion::Inconclusive => ("badge badge--neutral", "Undecided"),
                                };
                                let chart = evidence_chart(&metric);
                                view! {
                                    <li class="check check--judged" data-testid="judged-metric">
                                        <span class="check__reason">{metric.words}</span>
                                        <span class=class>{label}</span>
                                        {chart}
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
            </section>
            <section class="decisions" aria-labelledby="decisions-title" hidden=move || decisions().is_empty()>
                <h3 class="decisions__title" id="decisions-title">"Automatic decisions"</h3>
                <ol class="decisions__list" data-testid="decisions">
                    {move || {
                        decisions()
                            .into_iter()
                            .map(|entry| {
                                let good = entry.kind() == Some(canary_shared::AuditAction::AutoProgress);
                                let figures = entry.metrics.as_deref().map(decision_figures).unwrap_or_default();
                                let moved = format!("{} → {}", entry.from_percent, entry.to_percent);
                                view! {
                                    <li class="decision" class:decision--good=good class:decision--bad=!good data-testid="decision">
                                        <div class="decision__head">
                                            <span class="decision__time">{clock_time(entry.at)}</span>
                                            <span>{action_label(&entry.action)}</span>
                                            <span>{moved}</span>
                                        </div>
                                        <p class="decision__reason">{entry.reason.clone().unwrap_or_default()}</p>
                                        <ul class="decision__figures">
                                            {figures.into_iter().map(|line| view! { <li>{line}</li> }).collect_view()}
                                        </ul>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ol>
            </section>
        </article>
    }
}

/// A judged metric's evidence over the rollout: "worse" climbing to its
/// threshold is a coming rollback, "within" climbing to its own a coming
/// pass. The SVG is written as markup (figures only, nothing a user typed):
/// far less code in the WASM than a tree of view nodes.
fn evidence_chart(metric: &JudgedMetric) -> Option<impl IntoView + use<>> {
    let markup = evidence_markup(metric)?;
    Some(
        view! { <figure class="evidence" data-testid="evidence-chart" inner_html=markup></figure> },
    )
}
