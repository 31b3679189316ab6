//! How the deployment is shown: from the deployment, the checks' readings and
//! the upstreams to the [`CanaryState`] every client renders.
//!
//! The server computes every rule here (summary line, allowed actions) so the
//! console never re-derives them.

use canary_shared::{
    AutoProgression, AutoRollback, CanaryState, Health, Phase, SafetyCheck, ServiceHealth, Side,
    TrafficSplit, UnixMillis, WindowStats,
};

use crate::domain::deployment::{Deployment, Rules, human_duration};

/// What is known about one upstream outside the deployment.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamView {
    /// Its version label: for production what the last promotion put there
    /// (else the config's); for the canary the config's, while the
    /// upstreams play the roles they are listed under.
    pub version: Option<String>,
    /// Its base URL.
    pub url: String,
    /// The health-check verdict.
    pub health: Health,
    /// Why.
    pub health_detail: Option<String>,
    /// What the proxy measured over the last minute, once it has measured.
    pub last_minute: Option<WindowStats>,
    /// The custom metrics' latest readings.
    pub custom: Vec<canary_shared::CustomMetric>,
}

/// Everything [`render`] needs.
#[derive(Clone, Copy, Debug)]
pub struct RenderInput<'a> {
    /// The deployment.
    pub deployment: &'a Deployment,
    /// The rules it follows.
    pub rules: &'a Rules,
    /// Each check's latest reading.
    pub checks: &'a [SafetyCheck],
    /// Production's upstream.
    pub production: &'a UpstreamView,
    /// The canary's upstream.
    pub canary: &'a UpstreamView,
    /// The version the last promotion replaced (production's before it),
    /// which stands by on the canary's upstream while an undo is possible.
    pub standby_version: Option<&'a str>,
    /// The revision the state gets.
    pub revision: u64,
    /// When.
    pub now: UnixMillis,
}

/// Builds the state clients see.
pub fn render(input: RenderInput<'_>) -> CanaryState {
    let RenderInput {
        deployment,
        rules,
        checks,
        production,
        canary,
        standby_version,
        revision,
        now,
    } = input;
    let traffic = TrafficSplit::with_canary(deployment.share);
    // After a promotion the promoted version is production's: the canary's
    // upstream holds no canary until the next start.
    let canary_running = deployment.has_canary();
    let standing_by = deployment.can_undo_promotion();
    let service = |side: Side, upstream: &UpstreamView| {
        let window = upstream.last_minute.as_ref();
        let mut health = upstream.health;
        let mut health_detail = upstream.health_detail.clone();
        if side == Side::Canary && standing_by {
            // The version the promotion replaced still runs there, and its
            // health is what an undo depends on.
            health_detail = Some(match &upstream.health_detail {
                Some(probe) => format!("previous version, standing by for an undo ({probe})"),
                None => "previous version, standing by for an undo".to_owned(),
            });
        } else if side == Side::Canary && !canary_running {
            // The canary upstream may answer, but no canary version is deployed
            // there; say so instead of showing a healthy card without a rollout.
            health = Health::Stopped;
            health_detail = Some(match &upstream.health_detail {
                Some(probe) => format!("no canary deployed (upstream: {probe})"),
                None => "no canary deployed".to_owned(),
            });
        }
        ServiceHealth {
            side,
            version: match side {
                Side::Canary if canary_running => deployment
                    .image_tag
                    .clone()
                    .or_else(|| upstream.version.clone()),
                Side::Canary if standing_by => standby_version.map(str::to_owned),
                Side::Canary => upstream.version.clone(),
                Side::Production => upstream.version.clone(),
            },
            url: upstream.url.clone(),
            health,
            health_detail,
            traffic_percent: traffic.of(side),
            request_count: window.map_or(0, |window| window.requests),
            avg_latency_ms: window.and_then(|window| window.avg_latency_ms),
            p50_latency_ms: window.and_then(|window| window.p50_latency_ms),
            p95_latency_ms: window.and_then(|window| window.p95_latency_ms),
            p99_latency_ms: window.and_then(|window| window.p99_latency_ms),
            success_rate: window.and_then(|window| window.success_rate),
            error_rate: window.and_then(|window| window.error_rate),
            custom_metrics: upstream
                .custom
                .iter()
                .map(|metric| canary_shared::CustomValue {
                    name: metric.name.clone(),
                    value: metric.value,
                    reason: metric.reason.clone(),
                })
                .collect(),
        }
    };
    let (allowed_actions, blocked_actions) = deployment.actions();
    CanaryState {
        revision,
        phase: deployment.phase,
        summary: summary(deployment, rules),
        image_tag: deployment.image_tag.clone(),
        traffic,
        production: service(Side::Production, production),
        canary: service(Side::Canary, canary),
        safety_checks: checks.to_vec(),
        steps: deployment.steps.clone(),
        auto_progression: AutoProgression {
            enabled: deployment.auto_progresses(rules),
            as_configured: deployment
                .auto_progression
                .is_none_or(|chosen| chosen == rules.auto_progression),
            wait_ms: rules.wait_ms,
            green_for_ms: deployment.green_for_ms,
        },
        auto_rollback: AutoRollback {
            armed: rules.auto_rollback,
        },
        allowed_actions,
        blocked_actions,
        undo_promotion: standing_by.then(|| canary_shared::UndoWindow {
            standby_version: standby_version.map(str::to_owned),
            standby_url: canary.url.clone(),
            left_ms: deployment.undo_left_ms.unwrap_or(0),
            window_ms: rules.undo_window_ms,
        }),
        // Filled in by the controller, which runs the statistical judge.
        judge: Vec::new(),
        // Filled in by the controller, which talks to the router.
        router: canary_shared::RouterStatus::default(),
        updated_at: now,
    }
}

/// The status line.
pub fn summary(deployment: &Deployment, rules: &Rules) -> String {
    let share = deployment.share;
    let tag = deployment.image_tag.as_deref().unwrap_or("the canary");
    let reason = deployment.reason.as_deref().unwrap_or("no reason given");
    match deployment.phase {
        Phase::Idle => format!("Production only ({})", share.complement()),
        Phase::BuildDeploy => format!("Deploying {tag}…"),
        Phase::HealthCheck => format!("Health-checking {tag}…"),
        Phase::Validating => {
            let runs: Vec<&canary_shared::DeploymentStep> = deployment
                .steps
                .iter()
                .filter(|step| matches!(step.kind, canary_shared::StepKind::TestRun { .. }))
                .collect();
            match runs
                .iter()
                .position(|step| step.status == canary_shared::StepStatus::InProgress)
            {
                Some(at) => format!(
                    "Validating {tag}: test run {} ({} of {}), no traffic yet…",
                    runs[at].name.as_deref().unwrap_or("unnamed"),
                    at + 1,
                    runs.len()
                ),
                None => match (deployment.mirror_share(), deployment.reason.as_deref()) {
                    (Some(share), Some(reason)) => format!(
                        "Shadow traffic: {tag} gets copies of {share} of production's requests, serving no one; {reason}"
                    ),
                    (Some(share), None) => format!(
                        "Shadow traffic: {tag} gets copies of {share} of production's requests, serving no one; its answers are compared with production's…"
                    ),
                    (None, _) => format!("Validating {tag}, no traffic yet…"),
                },
            }
        }
        Phase::Progressing => {
            // Numbered as the console's list of steps numbers them (deploy
            // and health check first, promotion last), so both say the same.
            let steps = deployment.steps.len();
            let step = deployment.current_step().map_or(0, |index| index + 1);
            let mut line = format!("Canary at {share}, step {step} of {steps}");
            if let Some(reason) = &deployment.reason {
                line.push_str(&format!(", {reason}"));
            } else if deployment.auto_progresses(rules) {
                let left = rules.wait_ms.saturating_sub(deployment.green_for_ms);
                if left < 1000 {
                    // The next tick moves it; a countdown in milliseconds reads oddly.
                    line.push_str(", moving on to the next step");
                } else {
                    line.push_str(&format!(", auto-progression in {}", human_duration(left)));
                }
            } else {
                line.push_str(", waiting for an operator to continue");
            }
            line
        }
        Phase::Paused => match &deployment.reason {
            // Why it is paused (the advisory judge), or what a check says now.
            Some(reason) => format!("Paused with the canary at {share}: {reason}"),
            None => format!("Paused with the canary at {share}"),
        },
        Phase::Promoting => format!("Promoting {tag}…"),
        Phase::Promoted => match deployment.undo_left_ms {
            Some(left) if deployment.can_undo_promotion() => format!(
                "Promoted {tag}: production serves it (100 %); undo possible for {}",
                human_duration(left)
            ),
            _ => format!("Promoted {tag}: production serves it (100 %)"),
        },
        Phase::RollingBack => format!("Rolling back: {reason}"),
        Phase::RolledBack => format!("Rolled back: {reason}"),
        Phase::Failed => format!("Failed: {reason}"),
    }
}

/// Whether two states differ in anything but their revision and time.
pub fn same_content(a: &CanaryState, b: &CanaryState) -> bool {
    let strip = |state: &CanaryState| CanaryState {
        revision: 0,
        updated_at: UnixMillis(0),
        ..state.clone()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use canary_shared::{
        ActionKind, CanaryShare, Command, Health, Phase, StartRequest, UnixMillis,
    };

    use crate::config::Config;
    use crate::domain::deployment::{Deployment, Hook, Input, Rules};
    use crate::domain::view::{RenderInput, UpstreamView, render};

    fn upstream(health: Health) -> UpstreamView {
        UpstreamView {
            version: Some("v2.6.0".to_owned()),
            url: "http://127.0.0.1:9001".to_owned(),
            health,
            health_detail: Some("HTTP 200 from /healthz".to_owned()),
            last_minute: None,
            custom: Vec::new(),
        }
    }

    fn shipped_config() -> Config {
        Config::from_yaml(include_str!("../../../../canary-config.yaml")).unwrap()
    }

    /// The state of `deployment` with both upstreams healthy and no checks.
    fn rendered(
        deployment: &Deployment,
        rules: &Rules,
        revision: u64,
    ) -> canary_shared::CanaryState {
        let healthy = upstream(Health::Healthy);
        render(RenderInput {
            deployment,
            rules,
            checks: &[],
            production: &healthy,
            canary: &healthy,
            standby_version: Some("v2.6.0"),
            revision,
            now: UnixMillis(5),
        })
    }

    #[test]
    fn an_idle_deployment_shows_production_only_and_offers_start() {
        let config = shipped_config();
        let rules = config.rules();
        let state = rendered(&Deployment::idle(&rules), &rules, 1);
        assert_eq!(state.phase, Phase::Idle);
        assert_eq!(state.summary, "Production only (100 %)");
        assert_eq!(
            state.canary.health,
            Health::Stopped,
            "no canary is deployed"
        );
        let kinds: Vec<String> = state.steps.iter().map(|step| step.kind.label()).collect();
        assert_eq!(
            kinds,
            [
                "Build & deploy",
                "Health check",
                "Traffic 5 %",
                "Traffic 25 %",
                "Traffic 50 %",
                "Traffic 100 %",
                "Promoted"
            ]
        );
        assert_eq!(state.allowed_actions, [ActionKind::Start]);
        assert_eq!(
            state.blocked_reason(ActionKind::Stop),
            Some("no canary is running")
        );
    }

    #[test]
    fn a_progressing_deployment_says_where_it_is_and_when_it_moves_on() {
        let config = shipped_config();
        let rules = config.rules();
        let mut deployment = Deployment::idle(&rules);
        let start = Command::Start(StartRequest {
            image_tag: "v2.7.0".to_owned(),
            traffic_percent: CanaryShare::from_percent(25.0).unwrap(),
        });
        for input in [
            Input::Command {
                actor: "ops".to_owned(),
                command: start,
            },
            Input::HookFinished {
                hook: Hook::Deploy,
                succeeded: true,
                detail: String::new(),
            },
            Input::HookFinished {
                hook: Hook::HealthCheck,
                succeeded: true,
                detail: String::new(),
            },
        ] {
            deployment = deployment.apply(input, UnixMillis(0), &rules).unwrap().next;
        }
        deployment.green_for_ms = 48 * 60 * 1000 + 59_000;
        let state = rendered(&deployment, &rules, 3);
        assert_eq!(
            state.summary,
            "Canary at 25 %, step 4 of 7, auto-progression in 23 h 11 min"
        );
        assert_eq!(state.canary.version.as_deref(), Some("v2.7.0"));
        assert_eq!(state.canary.health, Health::Healthy);
        assert!(state.allows(ActionKind::Stop));
        assert!(state.allows(ActionKind::Continue));
    }
}
