//! `canary.auto_progression`, its thresholds, `canary.auto_rollback` and
//! `canary.safety_checks`: what the checks judge, each validated as read.

use canary_shared::{AlertLevel, Comparator};
use serde::{Deserialize, Serialize};

use crate::config::{ConfigDuration, FastWindow, Rate};
use crate::domain::analysis::BuiltInMetric;

/// `canary.auto_progression:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoProgressionConfig {
    /// Whether green metrics advance the rollout.
    pub enabled: bool,
    /// How long checks must stay green before the next step.
    pub wait_time: ConfigDuration,
    /// Implicit checks that apply to every rollout.
    pub thresholds: ThresholdsConfig,
}

/// `canary.auto_progression.thresholds:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsConfig {
    /// Highest acceptable p95 latency.
    pub max_latency: ConfigDuration,
    /// Lowest acceptable success rate, `0..=1`.
    pub min_success_rate: Rate,
    /// Highest acceptable error rate, `0..=1`.
    pub max_error_rate: Rate,
    /// Also judge these three on the canary's last few seconds, so a
    /// canary that fails hard is caught before a minute of healthy
    /// requests stops diluting its failures. Off by default: a short
    /// window holds fewer requests, so at low traffic it breaches on
    /// chance more often.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fast_window: Option<FastWindow>,
}

/// `canary.auto_rollback:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AutoRollbackConfig {
    /// Whether a critical breach rolls back without a human.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for AutoRollbackConfig {
    fn default() -> Self {
        AutoRollbackConfig { enabled: true }
    }
}

fn default_true() -> bool {
    true
}

/// One entry of `canary.safety_checks:`, validated.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(try_from = "SafetyCheckInput")]
pub struct SafetyCheckConfig {
    /// Shown to people.
    pub name: String,
    /// The metric read.
    pub metric: String,
    /// Upper or lower limit, given or implied by the metric.
    pub comparator: Comparator,
    /// The limit.
    pub threshold: f64,
    /// What a breach leads to.
    pub alert_level: AlertLevel,
    /// Also judged on the canary's last few seconds (a metric the proxy
    /// measures only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fast_window: Option<FastWindow>,
}

/// A safety check as written, before its comparator is settled.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SafetyCheckInput {
    name: String,
    metric: String,
    threshold: f64,
    alert_level: AlertLevel,
    #[serde(default)]
    comparator: Option<Comparator>,
    #[serde(default)]
    fast_window: Option<FastWindow>,
}

impl TryFrom<SafetyCheckInput> for SafetyCheckConfig {
    type Error = String;

    fn try_from(input: SafetyCheckInput) -> Result<Self, Self::Error> {
        if input.name.trim().is_empty() {
            return Err("a safety check needs a non-empty `name`".to_owned());
        }
        if !input.threshold.is_finite() {
            return Err(format!(
                "check {:?}: `threshold` must be a finite number",
                input.name
            ));
        }
        let implied = implied_comparator(&input.metric);
        let comparator = match (implied, input.comparator) {
            (Some((implied, true)), Some(given)) if given != implied => {
                return Err(format!(
                    "check {:?}: metric `{}` is always a {}imum, so `comparator: {}` cannot apply",
                    input.name,
                    input.metric,
                    comparator_name(implied),
                    comparator_name(given),
                ));
            }
            (_, Some(given)) => given,
            (Some((implied, _)), None) => implied,
            (None, None) => {
                return Err(format!(
                    "check {:?}: metric `{}` does not say whether the threshold is a maximum \
                     or a minimum; add `comparator: max` or `comparator: min`",
                    input.name, input.metric
                ));
            }
        };
        if matches!(
            input.metric.as_str(),
            "success_rate" | "error_rate" | crate::domain::shadow::MISMATCH_RATE_METRIC
        ) && !(0.0..=1.0).contains(&input.threshold)
        {
            return Err(format!(
                "check {:?}: `{}` is a rate between 0 and 1, so `threshold: {}` cannot be reached",
                input.name, input.metric, input.threshold
            ));
        }
        if input.fast_window.is_some() && BuiltInMetric::from_name(&input.metric).is_none() {
            return Err(format!(
                "check {:?}: `fast_window` applies to the metrics the proxy measures (such as \
                 error_rate); `{}` comes from a source on its own schedule",
                input.name, input.metric
            ));
        }
        Ok(SafetyCheckConfig {
            name: input.name,
            metric: input.metric,
            comparator,
            threshold: input.threshold,
            alert_level: input.alert_level,
            fast_window: input.fast_window,
        })
    }
}

fn comparator_name(comparator: Comparator) -> &'static str {
    match comparator {
        Comparator::Max => "max",
        Comparator::Min => "min",
    }
}

/// The comparator a metric's name implies, and whether it is fixed (a
/// built-in metric) or only a default (a custom metric named by convention).
fn implied_comparator(metric: &str) -> Option<(Comparator, bool)> {
    let built_in = BuiltInMetric::from_name(metric).is_some();
    if metric == crate::domain::shadow::MISMATCH_RATE_METRIC {
        return Some((Comparator::Max, true));
    }
    if metric.ends_with("success_rate") {
        Some((Comparator::Min, built_in))
    } else if metric.ends_with("error_rate")
        || metric.ends_with("_latency_ms")
        || metric.ends_with("_ms")
        || metric.ends_with("_seconds")
    {
        Some((Comparator::Max, built_in))
    } else {
        None
    }
}

// === Loading ===
