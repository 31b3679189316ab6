//! The rollout and how it is shown: from the rollout's facts, the config and
//! the upstreams' health to the [`CanaryState`] every client renders.
//!
//! The server computes every rule here (summary line, allowed actions, check
//! statuses) so the console never re-derives them.

use canary_shared::{
    self as wire, ActionKind, AutoProgression, AutoRollback, BlockedAction, CanaryShare,
    CanaryState, CheckStatus, DeploymentStep, Health, Phase, SafetyCheck, ServiceHealth, Side,
    StepKind, TrafficSplit, UnixMillis, WindowStats,
};

use crate::config::CanaryConfig;

/// The facts of the current rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollout {
    /// Where it stands.
    pub phase: Phase,
    /// The canary version, when one is deployed.
    pub image_tag: Option<String>,
    /// The canary's share of traffic.
    pub canary_share: CanaryShare,
    /// The workflow, in order.
    pub steps: Vec<DeploymentStep>,
}

impl Rollout {
    /// No canary: production serves everything, every step is pending.
    pub fn idle(config: &CanaryConfig) -> Rollout {
        let mut steps = vec![
            DeploymentStep::pending(StepKind::BuildDeploy),
            DeploymentStep::pending(StepKind::HealthCheck),
        ];
        steps.extend(
            config
                .traffic_steps
                .shares()
                .iter()
                .map(|&percent| DeploymentStep::pending(StepKind::Traffic { percent })),
        );
        steps.push(DeploymentStep::pending(StepKind::Promoted));
        Rollout {
            phase: Phase::Idle,
            image_tag: None,
            canary_share: CanaryShare::ZERO,
            steps,
        }
    }

    /// Whether a canary is running: deployed in this phase, or sent traffic by hand.
    pub fn has_canary(&self) -> bool {
        self.canary_share > CanaryShare::ZERO
            || !matches!(
                self.phase,
                Phase::Idle | Phase::RolledBack | Phase::Failed | Phase::Promoted
            )
    }
}

/// What is known about one upstream outside the rollout.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamView {
    /// The version label from the config.
    pub version: Option<String>,
    /// Its base URL.
    pub url: String,
    /// The health-check verdict.
    pub health: Health,
    /// Why.
    pub health_detail: Option<String>,
    /// What the proxy measured over the last minute, once it has measured.
    pub last_minute: Option<WindowStats>,
}

/// Everything [`render`] needs.
#[derive(Clone, Copy, Debug)]
pub struct RenderInput<'a> {
    /// The rollout's facts.
    pub rollout: &'a Rollout,
    /// The rules from the config.
    pub config: &'a CanaryConfig,
    /// Production's upstream.
    pub production: &'a UpstreamView,
    /// The canary's upstream.
    pub canary: &'a UpstreamView,
    /// The revision the state gets.
    pub revision: u64,
    /// When.
    pub now: UnixMillis,
}

/// Builds the state clients see.
pub fn render(input: RenderInput<'_>) -> CanaryState {
    let RenderInput {
        rollout,
        config,
        production,
        canary,
        revision,
        now,
    } = input;
    let traffic = TrafficSplit::with_canary(rollout.canary_share);
    let service = |side: Side, upstream: &UpstreamView| {
        let window = upstream.last_minute.as_ref();
        let mut health = upstream.health;
        let mut health_detail = upstream.health_detail.clone();
        if side == Side::Canary && !rollout.has_canary() {
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
                Side::Canary => rollout
                    .image_tag
                    .clone()
                    .or_else(|| upstream.version.clone()),
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
        }
    };
    let safety_checks = config
        .safety_checks
        .iter()
        .map(|check| SafetyCheck {
            name: check.name.clone(),
            metric: check.metric.clone(),
            comparator: check.comparator,
            threshold: check.threshold,
            alert_level: check.alert_level,
            current_value: None,
            status: CheckStatus::NoData,
            reason: Some(if rollout.has_canary() {
                "not judged yet: checks are evaluated by the deployment controller".to_owned()
            } else {
                "no canary running".to_owned()
            }),
        })
        .collect();
    let (allowed_actions, blocked_actions) = actions(rollout);
    CanaryState {
        revision,
        phase: rollout.phase,
        summary: summary(rollout),
        image_tag: rollout.image_tag.clone(),
        traffic,
        production: service(Side::Production, production),
        canary: service(Side::Canary, canary),
        safety_checks,
        steps: rollout.steps.clone(),
        auto_progression: AutoProgression {
            enabled: config.auto_progression.enabled,
            wait_ms: duration_millis(config.auto_progression.wait_time.0),
            green_for_ms: 0,
        },
        auto_rollback: AutoRollback {
            armed: config.auto_rollback.enabled,
        },
        allowed_actions,
        blocked_actions,
        updated_at: now,
    }
}

fn duration_millis(duration: std::time::Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// The status line.
fn summary(rollout: &Rollout) -> String {
    let share = rollout.canary_share;
    match rollout.phase {
        Phase::Idle if share == CanaryShare::ZERO => {
            format!("Production only ({})", share.complement())
        }
        Phase::Idle => format!("Canary at {share} (set by hand, no rollout running)"),
        Phase::Progressing => format!("Canary at {share}"),
        phase => format!("{} (canary at {share})", phase.label()),
    }
}

/// Which actions are possible now, and why the others are not.
///
/// Scaling by hand works in every phase. The other commands are taken by the
/// deployment controller, which this server does not run yet, so they are
/// blocked with that reason; the console shows it beside each control
/// instead of offering buttons that cannot work.
fn actions(_rollout: &Rollout) -> (Vec<ActionKind>, Vec<BlockedAction>) {
    const CONTROLLER_ACTIONS: [ActionKind; 7] = [
        ActionKind::Start,
        ActionKind::Continue,
        ActionKind::Pause,
        ActionKind::Resume,
        ActionKind::Promote,
        ActionKind::Rollback,
        ActionKind::Stop,
    ];
    let blocked = CONTROLLER_ACTIONS
        .into_iter()
        .map(|action| BlockedAction {
            action,
            reason: "this server does not run the deployment controller yet".to_owned(),
        })
        .collect();
    (vec![ActionKind::Scale], blocked)
}

/// Whether two states differ in anything but their revision and time.
pub fn same_content(a: &CanaryState, b: &CanaryState) -> bool {
    let strip = |state: &CanaryState| wire::CanaryState {
        revision: 0,
        updated_at: UnixMillis(0),
        ..state.clone()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use canary_shared::{ActionKind, CheckStatus, Health, Phase, StepKind, StepStatus, UnixMillis};

    use crate::config::Config;
    use crate::domain::rollout::{RenderInput, Rollout, UpstreamView, render, same_content};

    fn upstream(health: Health) -> UpstreamView {
        UpstreamView {
            version: Some("v2.6.0".to_owned()),
            url: "http://127.0.0.1:9001".to_owned(),
            health,
            health_detail: Some("HTTP 200 from /healthz".to_owned()),
            last_minute: None,
        }
    }

    fn shipped_config() -> Config {
        Config::from_yaml(include_str!("../../../../canary-config.yaml")).unwrap()
    }

    #[test]
    fn an_idle_rollout_shows_production_only_with_every_step_pending() {
        let config = shipped_config();
        let rollout = Rollout::idle(&config.canary);
        let healthy = upstream(Health::Healthy);
        let state = render(RenderInput {
            rollout: &rollout,
            config: &config.canary,
            production: &healthy,
            canary: &healthy,
            revision: 1,
            now: UnixMillis(5),
        });
        assert_eq!(state.phase, Phase::Idle);
        assert_eq!(state.summary, "Production only (100 %)");
        assert_eq!(state.production.health, Health::Healthy);
        assert_eq!(state.production.traffic_percent.percent(), 100.0);
        assert_eq!(
            state.canary.health,
            Health::Stopped,
            "no canary is deployed"
        );
        assert_eq!(
            state.canary.health_detail.as_deref(),
            Some("no canary deployed (upstream: HTTP 200 from /healthz)")
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
        assert!(
            state
                .steps
                .iter()
                .all(|step| step.status == StepStatus::Pending)
        );
        assert!(matches!(state.steps[2].kind, StepKind::Traffic { .. }));
        assert!(
            state
                .safety_checks
                .iter()
                .all(|check| check.status == CheckStatus::NoData)
        );
        assert_eq!(state.allowed_actions, [ActionKind::Scale]);
        assert!(state.blocked_reason(ActionKind::Start).is_some());
        assert_eq!(state.auto_progression.wait_ms, 86_400_000);
    }

    #[test]
    fn a_canary_given_traffic_by_hand_shows_its_real_health() {
        let config = shipped_config();
        let mut rollout = Rollout::idle(&config.canary);
        rollout.canary_share = canary_shared::CanaryShare::from_percent(25.0).unwrap();
        let healthy = upstream(Health::Healthy);
        let state = render(RenderInput {
            rollout: &rollout,
            config: &config.canary,
            production: &healthy,
            canary: &healthy,
            revision: 1,
            now: UnixMillis(5),
        });
        assert_eq!(
            state.canary.health,
            Health::Healthy,
            "a canary serving traffic is not 'Stopped'"
        );
        assert_eq!(
            state.summary,
            "Canary at 25 % (set by hand, no rollout running)"
        );
        assert_eq!(state.production.traffic_percent.percent(), 75.0);
    }

    #[test]
    fn revision_and_time_alone_are_not_a_change() {
        let config = shipped_config();
        let rollout = Rollout::idle(&config.canary);
        let view = |health, revision, now| {
            render(RenderInput {
                rollout: &rollout,
                config: &config.canary,
                production: &upstream(health),
                canary: &upstream(Health::Unknown),
                revision,
                now: UnixMillis(now),
            })
        };
        assert!(same_content(
            &view(Health::Healthy, 1, 10),
            &view(Health::Healthy, 2, 20)
        ));
        assert!(!same_content(
            &view(Health::Healthy, 1, 10),
            &view(Health::Unhealthy, 1, 10)
        ));
    }
}
