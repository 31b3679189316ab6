//! The demo panel, shown only when the server runs `canary demo`: it changes
//! how the demo's canary service answers (errors, added latency, a hang), so
//! a newcomer can watch a healthy canary progress and a broken one roll back.

use canary_shared::demo::{DemoBehaviour, DemoStatus};
use leptos::prelude::*;
use leptos::task::spawn_local;

use crate::api;
use crate::components::segmented::{Segmented, bind};
use crate::view_model::demo_words;

/// Error rates offered, in percent, and their labels.
/// (Both kept as `u64`: one signal type for both controls is one copy of
/// the reactive code in the release WASM, not two.)
const ERROR_PERCENTS: [u64; 4] = [0, 2, 10, 50];
const ERROR_LABELS: [&str; 4] = ["0 %", "2 %", "10 %", "50 %"];
/// Added latencies offered, in milliseconds, and their labels.
const ADDED_LATENCIES: [u64; 4] = [0, 100, 400, 1500];
const LATENCY_LABELS: [&str; 4] = ["+0", "+100 ms", "+400 ms", "+1.5 s"];
/// Wrong answers offered (status 200, another figure than production's),
/// in percent, and their labels.
const WRONG_PERCENTS: [u64; 4] = [0, 2, 10, 50];
const WRONG_LABELS: [&str; 4] = ["0 %", "2 %", "10 %", "50 %"];

/// The demo panel; renders nothing outside the demo.
#[component]
pub fn DemoCard() -> impl IntoView {
    // The canary service's behaviour in words, once the server says this is the demo.
    let status = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let error_percent = RwSignal::new(0u64);
    let added_latency = RwSignal::new(0u64);
    let hang = RwSignal::new(false);
    let wrong_percent = RwSignal::new(0u64);
    let (error_index, pick_error) = bind(error_percent, &ERROR_PERCENTS);
    let (wrong_index, pick_wrong) = bind(wrong_percent, &WRONG_PERCENTS);
    let (latency_index, pick_latency) = bind(added_latency, &ADDED_LATENCIES);
    // What the server has; a control that differs from it is sent.
    let sent = StoredValue::new(None::<DemoBehaviour>);
    let show = move |loaded: DemoStatus| {
        let behaviour = loaded.canary.behaviour.clone();
        error_percent.set((behaviour.error_rate * 100.0).round() as u64);
        added_latency.set(behaviour.added_latency_ms);
        hang.set(behaviour.hang);
        wrong_percent.set((behaviour.wrong_answer_rate * 100.0).round() as u64);
        sent.set_value(Some(behaviour));
        status.set(Some(demo_words(&loaded)));
    };
    spawn_local(async move {
        // A 404 means this is not the demo: the panel stays away.
        if let Ok(loaded) = api::demo().await {
            show(loaded);
        }
    });
    Effect::new(move |_| {
        let wanted = DemoBehaviour {
            error_rate: error_percent.get() as f64 / 100.0,
            added_latency_ms: added_latency.get(),
            hang: hang.get(),
            wrong_answer_rate: wrong_percent.get() as f64 / 100.0,
        };
        let Some(current) = sent.get_value() else {
            return;
        };
        if current == wanted {
            return;
        }
        sent.set_value(Some(wanted.clone()));
        error.set(None);
        spawn_local(async move {
            match api::set_demo(&wanted).await {
                Ok(loaded) => show(loaded),
                Err(err) => error.set(Some(err.to_string())),
            }
        });
    });
    let heal = move |_| {
        error_percent.set(0);
        added_latency.set(0);
        hang.set(false);
        wrong_percent.set(0);
    };
    let words = move || status.get().unwrap_or_default();
    move || {
        status.with(Option::is_some).then(|| {
            view! {
                <section class="card card--demo" aria-labelledby="demo-title" data-testid="demo">
                    <header class="card__header card__header--wrap">
                        <h2 class="card__title" id="demo-title">"Demo: break the canary"</h2>
                        <span class="card__note" data-testid="demo-words">{words}</span>
                    </header>
                    <p class="card__detail">
                        "canary demo runs two small services and sends them steady traffic through the proxy. Make the canary service misbehave and watch the safety checks roll it back (errors, large delays) or the statistical judge pause it for you (a slower canary, in advisory mode); give wrong answers and watch the shadow step fail it before anyone is served by it; heal it and watch a new rollout progress every 30 s."
                    </p>
                    <div class="demo__controls">
                        <div class="demo__control">
                            <span class="demo__label">"Errors"</span>
                            <Segmented
                                labels=ERROR_LABELS.to_vec()
                                selected=error_index
                                on_select=pick_error
                                label="Share of canary requests that fail"
                                test_id=|label| format!("demo-errors-{}", label.trim_end_matches(" %"))
                            />
                        </div>
                        <div class="demo__control">
                            <span class="demo__label">"Latency"</span>
                            <Segmented
                                labels=LATENCY_LABELS.to_vec()
                                selected=latency_index
                                on_select=pick_latency
                                label="Latency added to canary answers"
                                test_id=|label| format!("demo-latency-{}", label.trim_start_matches('+').replace(' ', ""))
                            />
                        </div>
                        <div class="demo__control">
                            <span class="demo__label">"Wrong answers"</span>
                            <Segmented
                                labels=WRONG_LABELS.to_vec()
                                selected=wrong_index
                                on_select=pick_wrong
                                label="Share of canary answers that are wrong, with status 200"
                                test_id=|label| format!("demo-wrong-{}", label.trim_end_matches(" %"))
                            />
                        </div>
                        <div class="demo__control">
                            <button
                                type="button"
                                role="switch"
                                class="switch"
                                data-testid="demo-hang"
                                aria-checked=move || hang.get().to_string()
                                on:click=move |_| hang.update(|hang| *hang = !*hang)
                            >
                                <span class="switch__track" aria-hidden="true"><span class="switch__thumb"></span></span>
                                <span class="switch__label">"Hang (never answer)"</span>
                            </button>
                            <button type="button" class="button button--small" data-testid="demo-heal" on:click=heal>
                                "Healthy again"
                            </button>
                        </div>
                    </div>
                    <p class="notice notice--error" role="alert" hidden=move || error.with(Option::is_none)>
                        {move || error.get().unwrap_or_default()}
                    </p>
                </section>
            }
        })
    }
}
