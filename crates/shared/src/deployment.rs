//! The rollout as the console sees it: [`CanaryState`] and its parts.

use serde::{Deserialize, Serialize};

use crate::safety::SafetyCheck;
use crate::share::{CanaryShare, ShareError};
use crate::time::UnixMillis;

/// Where a rollout stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Production serves all traffic; no canary exists.
    Idle,
    /// The deploy hook is building and deploying the canary version.
    BuildDeploy,
    /// The new version is deployed and being health-checked.
    HealthCheck,
    /// The team's test runs check the canary before it gets any traffic.
    Validating,
    /// The canary serves a traffic step.
    Progressing,
    /// The rollout is held by an operator or by missing data.
    Paused,
    /// Moving to 100 % and running the promote hook.
    Promoting,
    /// The canary version is now production.
    Promoted,
    /// Moving traffic back to production and running the rollback hook.
    RollingBack,
    /// Production serves all traffic again after a stop or rollback.
    RolledBack,
    /// A hook or health check failed before any traffic moved.
    Failed,
}

impl Phase {
    /// A short label for people.
    pub fn label(self) -> &'static str {
        match self {
            Phase::Idle => "Idle",
            Phase::BuildDeploy => "Build & deploy",
            Phase::HealthCheck => "Health check",
            Phase::Validating => "Validating",
            Phase::Progressing => "Progressing",
            Phase::Paused => "Paused",
            Phase::Promoting => "Promoting",
            Phase::Promoted => "Promoted",
            Phase::RollingBack => "Rolling back",
            Phase::RolledBack => "Rolled back",
            Phase::Failed => "Failed",
        }
    }
}

/// One of the two upstreams.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The version serving users today.
    Production,
    /// The new version under test.
    Canary,
}

impl Side {
    /// Both sides, production first.
    pub const BOTH: [Side; 2] = [Side::Production, Side::Canary];

    /// `"production"` or `"canary"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Production => "production",
            Side::Canary => "canary",
        }
    }
}

/// How traffic is split; the two shares always add up to 100 %.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "TrafficSplitWire")]
pub struct TrafficSplit {
    canary_percent: CanaryShare,
    production_percent: CanaryShare,
}

/// The unchecked wire form of [`TrafficSplit`].
#[derive(Deserialize)]
struct TrafficSplitWire {
    canary_percent: CanaryShare,
    production_percent: CanaryShare,
}

impl TryFrom<TrafficSplitWire> for TrafficSplit {
    type Error = ShareError;

    fn try_from(wire: TrafficSplitWire) -> Result<Self, Self::Error> {
        if wire.canary_percent.complement() != wire.production_percent {
            return Err(ShareError::OutOfRange(
                wire.canary_percent.percent() + wire.production_percent.percent(),
            ));
        }
        Ok(TrafficSplit::with_canary(wire.canary_percent))
    }
}

impl TrafficSplit {
    /// Production gets whatever the canary does not.
    pub fn with_canary(canary: CanaryShare) -> TrafficSplit {
        TrafficSplit {
            canary_percent: canary,
            production_percent: canary.complement(),
        }
    }

    /// The canary's share.
    pub fn canary(self) -> CanaryShare {
        self.canary_percent
    }

    /// Production's share.
    pub fn production(self) -> CanaryShare {
        self.production_percent
    }

    /// The share of `side`.
    pub fn of(self, side: Side) -> CanaryShare {
        match side {
            Side::Production => self.production_percent,
            Side::Canary => self.canary_percent,
        }
    }
}

/// The health of one upstream as the active health checks see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Health {
    /// Not checked yet, or too few results to say.
    Unknown,
    /// Passing its health checks.
    Healthy,
    /// Failing its health checks.
    Unhealthy,
    /// Not running: no canary is deployed.
    Stopped,
}

impl Health {
    /// A short label for people.
    pub fn label(self) -> &'static str {
        match self {
            Health::Unknown => "Unknown",
            Health::Healthy => "Healthy",
            Health::Unhealthy => "Unhealthy",
            Health::Stopped => "Stopped",
        }
    }
}

/// One side's card: what runs there, whether it is healthy, and how it serves.
///
/// Measured figures are `None` when there is no data: missing data is never
/// shown or judged as a good value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ServiceHealth {
    /// Which side this is.
    pub side: Side,
    /// The version label (an image tag), if known.
    pub version: Option<String>,
    /// The upstream's base URL.
    pub url: String,
    /// The result of the active health checks.
    pub health: Health,
    /// Why the health is what it is, in words ("HTTP 503 from /healthz").
    pub health_detail: Option<String>,
    /// This side's share of traffic.
    pub traffic_percent: CanaryShare,
    /// Requests served in the last minute.
    pub request_count: u64,
    /// Mean latency over the last minute, in milliseconds.
    pub avg_latency_ms: Option<f64>,
    /// Median latency over the last minute, in milliseconds.
    pub p50_latency_ms: Option<f64>,
    /// 95th-percentile latency over the last minute, in milliseconds.
    pub p95_latency_ms: Option<f64>,
    /// 99th-percentile latency over the last minute, in milliseconds.
    pub p99_latency_ms: Option<f64>,
    /// Share of requests answered without error, in `0.0..=1.0`.
    pub success_rate: Option<f64>,
    /// Share of requests answered with an error, in `0.0..=1.0`.
    pub error_rate: Option<f64>,
    /// The custom metrics from the config: each one's latest value, or why
    /// there is none (the history is in the metrics stream).
    #[serde(default)]
    pub custom_metrics: Vec<CustomValue>,
}

/// A custom metric's latest reading on one side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomValue {
    /// Its name in the config.
    pub name: String,
    /// The value, when there is a fresh one.
    pub value: Option<f64>,
    /// Why there is none, in words.
    pub reason: Option<String>,
}

impl CustomValue {
    /// The value with the digits that matter, the same in the console and
    /// the CLI: `27.9`, `1340`, `0.042` (a scraped rate or quantile has
    /// many meaningless ones); `None` when there is no value.
    pub fn readable_value(&self) -> Option<String> {
        self.value.map(readable_number)
    }
}

/// A measured figure with the digits that matter: three significant-ish
/// decimals below 1, one below 100, none above.
pub fn readable_number(value: f64) -> String {
    let decimals = match value.abs() {
        magnitude if magnitude >= 100.0 => 0,
        magnitude if magnitude >= 1.0 => 1,
        _ => 3,
    };
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" { "0" } else { text }.to_owned()
}

/// The kind of one step of the deployment workflow.
///
/// Written internally tagged (`{"type": "traffic", "percent": 5.0}`) and
/// read through `StepKindFields`: serde's internally tagged reader buffers
/// each value into a generic tree first, which cost the console's WASM
/// several kilobytes for this one type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "StepKindFields")]
pub enum StepKind {
    /// Run the deploy hook for the image tag.
    BuildDeploy,
    /// Health-check the new version before it gets traffic.
    HealthCheck,
    /// Run one of the team's test runs (`validation.test_runs`, in order)
    /// against the canary before it gets traffic; the step's `name` says which.
    TestRun {
        /// Its place in `validation.test_runs`, from 0.
        index: u8,
    },
    /// Copy a share of production's requests to the canary and compare
    /// its answers with production's (`validation.shadow`); clients are
    /// answered by production only.
    Shadow {
        /// The share of production's requests copied to the canary.
        percent: CanaryShare,
    },
    /// Serve the given share from the canary.
    Traffic {
        /// The canary's share during this step.
        percent: CanaryShare,
    },
    /// The canary version has become production.
    Promoted,
}

/// A [`StepKind`] as it is written: the tag and the fields any kind has.
#[derive(Deserialize)]
struct StepKindFields {
    #[serde(rename = "type")]
    kind: StepType,
    #[serde(default)]
    index: Option<u8>,
    #[serde(default)]
    percent: Option<CanaryShare>,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum StepType {
    BuildDeploy,
    HealthCheck,
    TestRun,
    Shadow,
    Traffic,
    Promoted,
}

impl TryFrom<StepKindFields> for StepKind {
    type Error = &'static str;

    fn try_from(fields: StepKindFields) -> Result<Self, Self::Error> {
        Ok(match (fields.kind, fields.index, fields.percent) {
            (StepType::BuildDeploy, ..) => StepKind::BuildDeploy,
            (StepType::HealthCheck, ..) => StepKind::HealthCheck,
            (StepType::Promoted, ..) => StepKind::Promoted,
            (StepType::TestRun, Some(index), _) => StepKind::TestRun { index },
            (StepType::Shadow, _, Some(percent)) => StepKind::Shadow { percent },
            (StepType::Traffic, _, Some(percent)) => StepKind::Traffic { percent },
            (StepType::TestRun, None, _) => return Err("a test_run step needs its index"),
            (StepType::Shadow | StepType::Traffic, _, None) => {
                return Err("a shadow or traffic step needs its percent");
            }
        })
    }
}

impl StepKind {
    /// A short label for people.
    pub fn label(self) -> String {
        match self {
            StepKind::BuildDeploy => "Build & deploy".to_owned(),
            StepKind::HealthCheck => "Health check".to_owned(),
            StepKind::TestRun { index } => format!("Test run {}", u16::from(index) + 1),
            StepKind::Shadow { percent } => format!("Shadow traffic {percent}"),
            StepKind::Traffic { percent } => format!("Traffic {percent}"),
            StepKind::Promoted => "Promoted".to_owned(),
        }
    }
}

/// Where one step stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Not reached yet.
    Pending,
    /// The current step.
    InProgress,
    /// Done.
    Complete,
    /// Failed; the rollout stopped here.
    Failed,
    /// Passed over (for example by a direct scale or promote).
    Skipped,
}

/// One step of the deployment workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentStep {
    /// What the step does.
    pub kind: StepKind,
    /// Where it stands.
    pub status: StepStatus,
    /// When it started, if it has.
    pub started_at: Option<UnixMillis>,
    /// When it ended, if it has.
    pub ended_at: Option<UnixMillis>,
    /// A test run's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// How it ended, in words, when there is more to say than its status
    /// (a test run's exit status and last line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl DeploymentStep {
    /// A step that has not started.
    pub fn pending(kind: StepKind) -> DeploymentStep {
        DeploymentStep {
            kind,
            status: StepStatus::Pending,
            started_at: None,
            ended_at: None,
            name: None,
            detail: None,
        }
    }

    /// A short label for people: a test run by its name.
    pub fn label(&self) -> String {
        match (&self.kind, &self.name) {
            (StepKind::TestRun { .. }, Some(name)) => format!("Test: {name}"),
            (kind, _) => kind.label(),
        }
    }
}

/// The auto-progression settings and where the current wait stands.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoProgression {
    /// Whether green metrics advance the rollout by themselves now.
    pub enabled: bool,
    /// Whether that is the config's setting (`false` once an operator turned
    /// it on or off for this rollout).
    #[serde(default = "default_true")]
    pub as_configured: bool,
    /// How long the checks must stay green before the next step, in milliseconds.
    pub wait_ms: u64,
    /// How long they have been green so far in this step, in milliseconds.
    pub green_for_ms: u64,
}

fn default_true() -> bool {
    true
}

/// What the statistical judge concludes about one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeConclusion {
    /// Evidence of a regression beyond tolerance.
    Fail,
    /// Enough evidence that any regression is within tolerance.
    Pass,
    /// Not decided yet.
    Inconclusive,
}

/// One judged metric, with the numbers behind its verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JudgedMetric {
    /// `failure_rate` or `latency`; `shadow_failure_rate` or `shadow_latency` for the shadow step's judge.
    pub metric: String,
    /// Fail, pass or inconclusive.
    pub conclusion: JudgeConclusion,
    /// The verdict and its numbers in words.
    pub words: String,
    /// The evidence of "worse than tolerance" (fails at 1/α).
    pub worse_evidence: f64,
    /// The evidence of "within tolerance" (passes at 1/α).
    pub within_evidence: f64,
    /// Observations so far.
    pub samples: u64,
    /// The evidence at which the canary fails on this metric (its share of α).
    #[serde(default)]
    pub fail_at: f64,
    /// The evidence at which it passes.
    #[serde(default)]
    pub pass_at: f64,
    /// Both evidences over the rollout so far, oldest first, evenly spaced
    /// (the spacing doubles as the rollout grows, so it stays short).
    #[serde(default)]
    pub history: Vec<EvidencePoint>,
}

/// The judge's evidence at one moment of a rollout. On the wire it is a
/// `[secs, worse, within]` triple: hundreds of them stream every second, and
/// an array decodes with far less code in the console than a keyed object.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(from = "(u32, f64, f64)", into = "(u32, f64, f64)")]
pub struct EvidencePoint {
    /// Seconds of judged traffic since the rollout started.
    pub secs: u32,
    /// The evidence of "worse than tolerance".
    pub worse: f64,
    /// The evidence of "within tolerance".
    pub within: f64,
}

impl From<(u32, f64, f64)> for EvidencePoint {
    fn from((secs, worse, within): (u32, f64, f64)) -> Self {
        EvidencePoint {
            secs,
            worse,
            within,
        }
    }
}

impl From<EvidencePoint> for (u32, f64, f64) {
    fn from(point: EvidencePoint) -> Self {
        (point.secs, point.worse, point.within)
    }
}

/// The auto-rollback setting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AutoRollback {
    /// Whether a critical breach rolls the canary back without a human.
    pub armed: bool,
}

/// What an operator (or script) can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    /// Start a canary for an image tag.
    Start,
    /// Set the canary's share to any value.
    Scale,
    /// Go on to the next traffic step.
    Continue,
    /// Hold the rollout where it is.
    Pause,
    /// Let a held rollout go on.
    Resume,
    /// Move to 100 % and finish.
    Promote,
    /// Turn auto-progression on or off for this rollout.
    SetAutoProgression,
    /// Move traffic back to production.
    Rollback,
    /// Emergency stop: 0 % canary at once.
    Stop,
    /// Send all traffic back to the version a promotion replaced, while it
    /// stays deployed as a standby.
    UndoPromotion,
}

/// The time left to undo the last promotion.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UndoWindow {
    /// The version an undo goes back to (production's before the promotion).
    pub standby_version: Option<String>,
    /// The upstream it still runs on.
    pub standby_url: String,
    /// How long the undo stays possible, in milliseconds.
    pub left_ms: u64,
    /// The whole window (`upstreams.undo_window`), in milliseconds.
    pub window_ms: u64,
}

/// An action that is not possible now, with the reason shown beside its control.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockedAction {
    /// The action.
    pub action: ActionKind,
    /// Why it is not possible, in words.
    pub reason: String,
}

/// Everything the console shows about the rollout, computed by the server.
///
/// `revision` increases by one on every change, so a client can tell a newer
/// state from an older one and a write can be made conditional on it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CanaryState {
    /// Increases on every change.
    pub revision: u64,
    /// Where the rollout stands.
    pub phase: Phase,
    /// One sentence for the status line, written by the server.
    pub summary: String,
    /// The image tag under test, when a canary exists.
    pub image_tag: Option<String>,
    /// The current split.
    pub traffic: TrafficSplit,
    /// The production card.
    pub production: ServiceHealth,
    /// The canary card.
    pub canary: ServiceHealth,
    /// Every safety check and its current status.
    pub safety_checks: Vec<SafetyCheck>,
    /// The workflow, in order.
    pub steps: Vec<DeploymentStep>,
    /// Auto-progression settings and progress.
    pub auto_progression: AutoProgression,
    /// Auto-rollback setting.
    pub auto_rollback: AutoRollback,
    /// What may be asked for now.
    pub allowed_actions: Vec<ActionKind>,
    /// What may not, and why.
    pub blocked_actions: Vec<BlockedAction>,
    /// The statistical judge's verdicts for this rollout (empty when it is off).
    #[serde(default)]
    pub judge: Vec<JudgedMetric>,
    /// The router that splits the traffic, and whether the split asked for
    /// is in force on it.
    #[serde(default)]
    pub router: RouterStatus,
    /// After a promotion, while the version it replaced stays deployed as a
    /// standby that *Undo promotion* sends all traffic back to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub undo_promotion: Option<UndoWindow>,
    /// When this state was computed.
    pub updated_at: UnixMillis,
}

impl CanaryState {
    /// Whether `action` is allowed now.
    pub fn allows(&self, action: ActionKind) -> bool {
        self.allowed_actions.contains(&action)
    }

    /// Why `action` is not allowed now, if it is not.
    pub fn blocked_reason(&self, action: ActionKind) -> Option<&str> {
        self.blocked_actions
            .iter()
            .find(|blocked| blocked.action == action)
            .map(|blocked| blocked.reason.as_str())
    }

    /// The card of `side`.
    pub fn service(&self, side: Side) -> &ServiceHealth {
        match side {
            Side::Production => &self.production,
            Side::Canary => &self.canary,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::readable_number as readable;

    #[test]
    fn custom_values_show_the_digits_that_matter() {
        assert_eq!(readable(-0.0001), "0");
        assert_eq!(readable(27.894_736_842_105_264), "27.9");
        assert_eq!(readable(1339.6), "1340");
        assert_eq!(readable(0.0421), "0.042");
        assert_eq!(readable(2.0), "2");
        assert_eq!(readable(0.0), "0");
        assert_eq!(readable(-3.25), "-3.2");
    }
}

/// The router that splits the traffic, and whether the split asked for is
/// in force on every instance of it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RouterStatus {
    /// `builtin`, `haproxy`, `nginx` or `gateway_api`.
    pub kind: String,
    /// How it changes the split, which shares it gives exactly and whether
    /// a client stays on one side, in words.
    #[serde(default)]
    pub about: String,
    /// The canary's share as the router applies it (an external router
    /// quantizes: HAProxy's weights make every whole percent exact).
    pub effective_percent: CanaryShare,
    /// Whether every instance has it in force (a step counts as done only then).
    pub confirmed: bool,
    /// Why not, in words.
    pub detail: Option<String>,
    /// Each instance, as last read back (none for the built-in proxy).
    pub instances: Vec<RouterInstance>,
    /// What the router's own counters say its access log misses (HAProxy
    /// answered more requests than log lines arrived): the checks then see
    /// only part of the traffic.
    #[serde(default)]
    pub measurement: Option<String>,
}

/// One instance of an external router, as last read back.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RouterInstance {
    /// Its stats socket or address (a Gateway, for the Gateway API).
    pub name: String,
    /// The canary's share it has in force, when it could be read.
    pub canary_percent: Option<CanaryShare>,
    /// Why it could not be read or written.
    pub error: Option<String>,
    /// What it has yet to do before the split counts as in force there (a
    /// Gateway that has not accepted the route's new generation yet).
    #[serde(default)]
    pub waiting: Option<String>,
}
