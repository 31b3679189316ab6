//! A Production or Canary card: version, health, traffic share, latency.

use canary_shared::{CanaryState, Side};
use leptos::prelude::*;

use crate::view_model::{custom_figures, health_class, latency, rate, thousands};

/// The card of one side.
#[component]
pub fn ServiceCard(side: Side, state: ReadSignal<Option<CanaryState>>) -> impl IntoView {
    let id = side.as_str();
    let title = match side {
        Side::Production => "Production",
        Side::Canary => "Canary",
    };
    let service =
        move || state.with(|state| state.as_ref().map(|state| state.service(side).clone()));
    let field = move |read: fn(&canary_shared::ServiceHealth) -> String| {
        move || {
            service()
                .map(|service| read(&service))
                .unwrap_or_else(|| "—".to_owned())
        }
    };
    view! {
        <article class=format!("card card--{id}") data-testid=format!("{id}-card") aria-labelledby=format!("{id}-title")>
            <header class="card__header">
                <h2 class="card__title" id=format!("{id}-title")>{title}</h2>
                <span class="version" data-testid=format!("{id}-version")>
                    {field(|service| service.version.clone().unwrap_or_else(|| "unknown version".to_owned()))}
                </span>
            </header>
            <div class="card__health">
                <span
                    class=move || service().map(|service| health_class(service.health)).unwrap_or("badge badge--neutral")
                    data-testid=format!("{id}-health")
                >
                    {field(|service| service.health.label().to_owned())}
                </span>
                <span class="card__detail" data-testid=format!("{id}-health-detail")>
                    {field(|service| service.health_detail.clone().unwrap_or_default())}
                </span>
            </div>
            <div class="share">
                <span class="share__value" data-testid=format!("{id}-share")>
                    {field(|service| service.traffic_percent.to_string())}
                </span>
                <span class="share__label">"of traffic"</span>
            </div>
            <dl class="figures">
                <div><dt>"Avg latency"</dt><dd>{field(|service| latency(service.avg_latency_ms))}</dd></div>
                <div><dt>"p95 latency"</dt><dd>{field(|service| latency(service.p95_latency_ms))}</dd></div>
                <div><dt>"Success rate"</dt><dd>{field(|service| rate(service.success_rate))}</dd></div>
                <div><dt>"Requests (1 min)"</dt><dd data-testid=format!("{id}-requests")>{field(|service| thousands(service.request_count))}</dd></div>
            </dl>
            // The custom metrics from the config, when it has any.
            <dl class="figures figures--custom" data-testid=format!("{id}-custom")>
                {move || {
                    service()
                        .map(|service| custom_figures(&service))
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(name, value, why)| view! { <div><dt>{name}</dt><dd title=why>{value}</dd></div> })
                        .collect_view()
                }}
            </dl>
            <p class="card__url">{field(|service| service.url.clone())}</p>
        </article>
    }
}
