//! Help, folded away until asked for: what each measure and each action
//! means, in the words the console uses.

use leptos::prelude::*;

/// Terms and what they mean, in the order the dashboard shows them.
const METRICS: [(&str, &str); 6] = [
    (
        "Latency (p50, p95, p99)",
        "How long the upstream took to answer, measured by canary's proxy for every request. p95 is the time 95 % of requests beat; p99 shows the slow tail that users notice.",
    ),
    (
        "Success rate",
        "The share of requests answered without a 5xx status or a transport failure (refused, reset, timed out). 4xx answers count as successes: the service answered.",
    ),
    (
        "Error rate",
        "The share of requests that failed: 5xx answers plus transport failures. It is what automatic rollback usually watches.",
    ),
    (
        "Request rate",
        "Requests per second on each side. The canary sees fewer by design: its share of the traffic.",
    ),
    (
        "Difference",
        "The canary's last minute minus production's. It turns red when the canary is notably worse (latency by more than 10 %, rates by more than 0.1 points).",
    ),
    (
        "Safety checks",
        "Rules from canary-config.yaml, judged every second on the canary's last minute: Safe (green), Watch (amber, close to the limit), Breach (red), or No data (too few requests to judge). A critical breach rolls back at once while auto-rollback is armed.",
    ),
];

const ACTIONS: [(&str, &str); 8] = [
    (
        "Start canary",
        "Runs your deploy hook for the image tag, health-checks the new version, then sends it the starting share.",
    ),
    (
        "Scale traffic",
        "Moves the canary to any share from 0 to 100 %, after a confirmation that states the move.",
    ),
    (
        "Continue",
        "Goes on to the next configured step now, instead of waiting for the green time.",
    ),
    (
        "Auto-progression",
        "When on, each step moves on by itself once every check has stayed green for the configured wait. The switch beside the steps turns it off (or on) for this rollout only.",
    ),
    (
        "Pause / Resume",
        "Holds the rollout at its share; resuming starts the green wait again.",
    ),
    (
        "Promote",
        "Sends the canary all traffic and finishes the rollout.",
    ),
    (
        "Roll back",
        "Moves all traffic back to production and runs your rollback hook.",
    ),
    (
        "Emergency stop",
        "Takes the canary to 0 % at once, before anything else, and records who and why. Always in the header while a canary runs.",
    ),
];

/// The help panel: a folded card at the foot of the dashboard.
#[component]
pub fn HelpCard() -> impl IntoView {
    let list = |entries: &'static [(&'static str, &'static str)]| {
        entries
            .iter()
            .map(|(term, meaning)| {
                view! {
                    <dt>{*term}</dt>
                    <dd>{*meaning}</dd>
                }
            })
            .collect_view()
    };
    view! {
        <details class="card card--help" data-testid="help">
            <summary class="card__title">"Help: what the measures and actions mean"</summary>
            <div class="help">
                <section>
                    <h3>"Measures"</h3>
                    <dl>{list(&METRICS)}</dl>
                </section>
                <section>
                    <h3>"Actions"</h3>
                    <dl>{list(&ACTIONS)}</dl>
                </section>
            </div>
        </details>
    }
}
