//! The settings a rollout follows, as the console's "Advanced settings" shows
//! them to anyone who may watch (the full config is for admins only).

use serde::{Deserialize, Serialize};

use crate::share::CanaryShare;

/// `GET /admin/canary/settings`: the config's rules for rollouts, in effect now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RolloutSettings {
    /// The traffic steps, in order, the last being 100 %.
    pub traffic_steps: Vec<CanaryShare>,
    /// Whether green checks advance a rollout by themselves (an operator may
    /// change it for one rollout).
    pub auto_progression: bool,
    /// How long checks must stay green before the next step, in milliseconds.
    pub wait_ms: u64,
    /// Whether a critical breach rolls back without a human.
    pub auto_rollback: bool,
    /// Fewer canary requests than this in the last minute is no data.
    pub min_requests: u64,
    /// Within this fraction of a threshold a check is WATCH.
    pub watch_margin: f64,
    /// How long missing data is tolerated, in milliseconds.
    pub no_data_timeout_ms: u64,
    /// What a long stretch of missing data leads to: `hold` or `rollback`.
    pub on_long_no_data: String,
    /// How a client is kept on one side, in words
    /// (`cookie canary_bucket for 24 h`, `header x-user-id`, `none`).
    pub stickiness: String,
    /// The request header that forces a side, when one is configured.
    pub override_header: Option<String>,
    /// The statistical judge's mode: `off`, `advisory` or `enforce`.
    #[serde(default)]
    pub judge: String,
    /// The false-alarm rate it promises.
    #[serde(default)]
    pub judge_alpha: f64,
    /// How much worse the canary's failure rate may be (0.2: 1.2× production's).
    #[serde(default)]
    pub judge_failure_tolerance: f64,
    /// How much more often the canary may be the slower of a pair (0.05: 55 %).
    #[serde(default)]
    pub judge_latency_tolerance: f64,
    /// What a promotion does to the upstreams, in words.
    #[serde(default)]
    pub promotion: String,
    /// Why a promotion might not leave production on the new version, when
    /// nothing in the config moves versions.
    #[serde(default)]
    pub promotion_warning: Option<String>,
}
