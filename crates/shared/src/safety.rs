//! Safety checks: a metric, a limit, and where the metric stands against it.

use serde::{Deserialize, Serialize};

/// Whether the threshold is an upper or a lower limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparator {
    /// The metric must stay at or below the threshold (latency, error rate).
    Max,
    /// The metric must stay at or above the threshold (success rate).
    Min,
}

impl Comparator {
    /// Whether `value` is within the limit `threshold`.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparator::Max => value <= threshold,
            Comparator::Min => value >= threshold,
        }
    }

    /// `≤` or `≥`, for people.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparator::Max => "≤",
            Comparator::Min => "≥",
        }
    }
}

/// What a breach of the check leads to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertLevel {
    /// A breach rolls the canary back when auto-rollback is armed.
    Critical,
    /// A breach raises an alert only.
    Warning,
}

/// Where a check stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CheckStatus {
    /// Within the limit with room to spare.
    Safe,
    /// Within the limit but close to it.
    Watch,
    /// Past the limit.
    Breach,
    /// Too little data to judge; never counts as a pass.
    NoData,
    /// Nothing in the config provides the metric (no built-in metric and
    /// no `metrics.custom` entry of that name): the check is shown but not
    /// judged, so it can neither pass nor hold a rollout; `canary check`
    /// warns about it.
    NoSource,
    /// Judged at another step only (`shadow_mismatch_rate` is judged on
    /// mirrored requests, during the shadow step): shown, not judged now,
    /// so it can neither pass nor hold a rollout.
    Inactive,
}

impl CheckStatus {
    /// A short label for people.
    pub fn label(self) -> &'static str {
        match self {
            CheckStatus::Safe => "Safe",
            CheckStatus::Watch => "Watch",
            CheckStatus::Breach => "Breach",
            CheckStatus::NoData => "No data",
            CheckStatus::NoSource => "No source",
            CheckStatus::Inactive => "Not now",
        }
    }
}

/// One safety check from the config with its current reading.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SafetyCheck {
    /// The name shown to people ("Total Latency").
    pub name: String,
    /// The metric it reads ("p95_latency_ms", or a custom metric's name).
    pub metric: String,
    /// Upper or lower limit.
    pub comparator: Comparator,
    /// The limit.
    pub threshold: f64,
    /// What a breach leads to.
    pub alert_level: AlertLevel,
    /// The canary's current value of the metric, if there is data.
    pub current_value: Option<f64>,
    /// Where the check stands.
    pub status: CheckStatus,
    /// Why, in words ("12 requests in the window, 50 needed").
    pub reason: Option<String>,
}
