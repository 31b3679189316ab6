//! The demo's services, which `canary demo` runs in place of a real
//! production and canary, and how their behaviour is changed live.

use serde::{Deserialize, Serialize};

/// `GET` the [`DemoStatus`], `POST` a [`DemoBehaviour`] for the canary
/// service (404 outside `canary demo`).
pub const DEMO_PATH: &str = "/admin/canary/demo";

/// How a demo service answers the requests it gets (health checks always pass).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoBehaviour {
    /// The share of requests answered `500`, from 0 to 1.
    #[serde(default)]
    pub error_rate: f64,
    /// Milliseconds added to every answer, on top of the usual latency.
    #[serde(default, deserialize_with = "crate::number::whole_u64")]
    pub added_latency_ms: u64,
    /// Never answer (until the proxy's response timeout gives up).
    #[serde(default)]
    pub hang: bool,
    /// The share of requests answered `200` with a wrong answer (another
    /// figure in the body than production's), from 0 to 1: only a
    /// comparison of the answers can see it.
    #[serde(default)]
    pub wrong_answer_rate: f64,
}

impl DemoBehaviour {
    /// The largest added latency accepted: one minute.
    pub const MAX_ADDED_LATENCY_MS: u64 = 60_000;

    /// Why this behaviour cannot be set, naming the field, if it cannot.
    pub fn invalid_field(&self) -> Option<(&'static str, String)> {
        if !(0.0..=1.0).contains(&self.error_rate) {
            return Some((
                "error_rate",
                format!(
                    "error_rate must be between 0 and 1 (0.05 means 5 %), got {}",
                    self.error_rate
                ),
            ));
        }
        if !(0.0..=1.0).contains(&self.wrong_answer_rate) {
            return Some((
                "wrong_answer_rate",
                format!(
                    "wrong_answer_rate must be between 0 and 1 (0.1 means 10 %), got {}",
                    self.wrong_answer_rate
                ),
            ));
        }
        if self.added_latency_ms > Self::MAX_ADDED_LATENCY_MS {
            return Some((
                "added_latency_ms",
                format!(
                    "added_latency_ms must be at most {}, got {}",
                    Self::MAX_ADDED_LATENCY_MS,
                    self.added_latency_ms
                ),
            ));
        }
        None
    }

    /// Whether it answers like a healthy service.
    pub fn is_healthy(&self) -> bool {
        *self == DemoBehaviour::default()
    }
}

/// What the demo is doing now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoStatus {
    /// The production service's version and behaviour.
    pub production: DemoService,
    /// The canary service's version and behaviour.
    pub canary: DemoService,
    /// Requests per second the load generator sends through the proxy.
    pub load_per_sec: u32,
}

/// One demo service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DemoService {
    /// The version it reports.
    pub version: String,
    /// Its base URL.
    pub url: String,
    /// How it answers.
    pub behaviour: DemoBehaviour,
}
