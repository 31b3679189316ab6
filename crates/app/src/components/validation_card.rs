//! The shadow step's panel: how the canary answered copies of production's
//! requests, compared with production's answers to the same requests. The
//! counts come with every metrics message; the per-second series and the
//! latest mismatched examples are fetched when the counts move: every few
//! seconds while the step runs, at once once it is over.

use canary_shared::{CanaryState, MetricsSnapshot, ShadowReport, StepKind, UnixMillis};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::view_model::{shadow_markup, shadow_summary};

/// How often the whole report is fetched while the step runs.
const REFRESH_MS: u64 = 3_000;

/// The panel; renders nothing unless rollouts have a shadow step.
#[component]
pub fn ValidationCard(
    state: ReadSignal<Option<CanaryState>>,
    metrics: ReadSignal<Option<MetricsSnapshot>>,
) -> impl IntoView {
    let has_step = move || {
        state.with(|state| {
            state.as_ref().is_some_and(|state| {
                state
                    .steps
                    .iter()
                    .any(|step| matches!(step.kind, StepKind::Shadow { .. }))
            })
        })
    };
    let live = move || metrics.with(|metrics| metrics.as_ref().and_then(|m| m.shadow.clone()));
    // The whole report as last fetched, and when (by the metrics' clock)
    // and at which counts: it is fetched again when the counts moved, at
    // most every few seconds while the step runs and at once after it.
    let whole = RwSignal::new(None::<ShadowReport>);
    let fetched = StoredValue::new(None::<(UnixMillis, u64)>);
    let error = RwSignal::new(None::<String>);
    Effect::new(move |_| {
        let Some((at, active, counts)) = metrics.with(|metrics| {
            metrics.as_ref().and_then(|m| {
                m.shadow
                    .as_ref()
                    .map(|shadow| (m.at, shadow.active, shadow.mirrored + shadow.compared))
            })
        }) else {
            return;
        };
        let due = match fetched.get_value() {
            None => true,
            Some((last, last_counts)) => {
                counts != last_counts && (!active || at.0.saturating_sub(last.0) >= REFRESH_MS)
            }
        };
        if !due || !has_step() {
            return;
        }
        fetched.set_value(Some((at, counts)));
        spawn_local(async move {
            match api::validation().await {
                Ok(report) => {
                    whole.set(Some(report));
                    error.set(None);
                }
                Err(err) => error.set(Some(err.to_string())),
            }
        });
    });
    // The counts from the stream, the series and examples from the fetch.
    let report = move || {
        let mut report = live().or_else(|| whole.get())?;
        if let Some(whole) = whole.get() {
            report.series = whole.series;
            report.examples = whole.examples;
        }
        Some(report)
    };
    view! {
        <article class="card validation" aria-labelledby="validation-title" data-testid="validation" hidden=move || !has_step()>
            <header class="card__header">
                <h2 class="card__title" id="validation-title">"Shadow traffic"</h2>
                <span class="badge" class:badge--good=move || report().is_some_and(|r| r.active) class:badge--muted=move || !report().is_some_and(|r| r.active)>
                    {move || if report().is_some_and(|r| r.active) { "Copying" } else { "Not copying" }}
                </span>
            </header>
            <p class="card__note" data-testid="shadow-summary">{move || report().map(|r| shadow_summary(&r))}</p>
            <div class="shadow" inner_html=move || report().map(|r| shadow_markup(&r)).unwrap_or_default()></div>
            <p class="form__error" role="alert" hidden=move || error.get().is_none()>{move || error.get()}</p>
        </article>
    }
}
