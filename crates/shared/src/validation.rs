//! Shadow validation as the console, the CLI and scripts see it: how the
//! canary answered production's mirrored requests, compared with
//! production's answers to the very same requests.

use serde::{Deserialize, Serialize};

use crate::metrics::WindowStats;
use crate::share::CanaryShare;
use crate::time::UnixMillis;

/// Shadow traffic of the current rollout: in every metrics message while a
/// rollout has a shadow step (counts and windows only), and whole, with the
/// per-second series and the latest mismatched examples, at
/// `GET /admin/canary/validation`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShadowReport {
    /// Whether requests are being mirrored now (the shadow step is in progress).
    pub active: bool,
    /// The share of production's requests copied to the canary.
    pub share: CanaryShare,
    /// Requests copied to the canary since the shadow step started.
    pub mirrored: u64,
    /// Of those, the ones whose answers were compared with production's.
    pub compared: u64,
    /// Requests not copied because the queue of mirrored requests was full
    /// (mirroring never makes a client wait).
    pub dropped: u64,
    /// Requests not copied because their body was over
    /// `validation.shadow.max_request_body`.
    pub skipped_large_body: u64,
    /// Mirrored requests left uncompared: production's answer did not end
    /// (its client went away, or production failed in transport).
    pub unpaired: u64,
    /// Compared requests whose answers differed, by how.
    pub mismatches: MismatchCounts,
    /// Mismatched share of the requests compared in the last minute,
    /// `None` before any.
    pub mismatch_rate: Option<f64>,
    /// Requests mirrored per second over the last minute.
    pub mirrored_per_sec: f64,
    /// The canary's answers to mirrored requests over the last minute
    /// (latency to the response head).
    pub canary: WindowStats,
    /// Production's answers to the same requests over the last minute
    /// (latency to the response head).
    pub production: WindowStats,
    /// One sample per second, oldest first (only at `GET /admin/canary/validation`).
    #[serde(default)]
    pub series: Vec<ShadowSecond>,
    /// The latest mismatched requests, newest first (only at
    /// `GET /admin/canary/validation`); credentials are never kept.
    #[serde(default)]
    pub examples: Vec<MismatchExample>,
}

/// Mismatches by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MismatchCounts {
    /// The status class differed (say 200 against 500).
    pub status: u64,
    /// The bodies differed under `validation.shadow.compare_body`.
    pub body: u64,
    /// The canary gave no answer (refused, reset, timed out).
    pub failed: u64,
}

impl MismatchCounts {
    /// Every mismatch.
    pub fn total(&self) -> u64 {
        self.status + self.body + self.failed
    }
}

/// How a canary's answer differed from production's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MismatchKind {
    /// Another status class.
    Status,
    /// Another body.
    Body,
    /// No answer.
    Failed,
}

impl MismatchKind {
    /// A short label for people.
    pub fn label(self) -> &'static str {
        match self {
            MismatchKind::Status => "status",
            MismatchKind::Body => "body",
            MismatchKind::Failed => "no answer",
        }
    }
}

/// One second of shadow traffic.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShadowSecond {
    /// The start of the second.
    pub at: UnixMillis,
    /// Requests compared in that second.
    pub compared: u64,
    /// Of those, mismatched.
    pub mismatches: u64,
    /// The canary's 95th-percentile latency to the response head.
    pub canary_p95_ms: Option<f64>,
    /// Production's, for the same requests.
    pub production_p95_ms: Option<f64>,
}

/// A mirrored request whose answers differed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MismatchExample {
    /// When production answered it.
    pub at: UnixMillis,
    /// The request's method.
    pub method: String,
    /// Its path and query.
    pub path: String,
    /// The request's headers, with `Authorization`, `Cookie`,
    /// `Proxy-Authorization` and `validation.shadow.redact_headers` left
    /// out (named in `redacted`).
    pub headers: Vec<(String, String)>,
    /// The names of the headers left out.
    pub redacted: Vec<String>,
    /// How the answers differed.
    pub kind: MismatchKind,
    /// Production's status.
    pub production_status: u16,
    /// The canary's status, `None` when it gave no answer.
    pub canary_status: Option<u16>,
    /// Where the bodies part, or why the canary gave no answer, in words.
    pub detail: String,
}
