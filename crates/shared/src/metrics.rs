//! Measured traffic per side: rolling windows and a per-second series.

use serde::{Deserialize, Serialize};

use crate::share::CanaryShare;
use crate::time::UnixMillis;

/// Requests that failed in transport, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransportErrors {
    /// The upstream refused the connection.
    pub refused: u64,
    /// The connection was reset or closed before the response ended.
    pub reset: u64,
    /// The upstream did not connect or answer in time.
    pub timeout: u64,
    /// The side already had its maximum of requests in flight.
    pub overloaded: u64,
    /// Any other transport failure.
    pub other: u64,
}

impl TransportErrors {
    /// All kinds together.
    pub fn total(&self) -> u64 {
        self.refused + self.reset + self.timeout + self.overloaded + self.other
    }
}

/// Figures over one rolling window of one side.
///
/// An *error* is a 5xx response or a transport failure; 4xx responses are
/// counted separately because they are the client's doing, not the side's.
/// Latency figures are `None` when the window holds no request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct WindowStats {
    /// Length of the window in seconds.
    pub window_secs: u32,
    /// Requests completed in the window.
    pub requests: u64,
    /// Requests per second over the window.
    pub requests_per_sec: f64,
    /// Mean latency in milliseconds.
    pub avg_latency_ms: Option<f64>,
    /// Median latency in milliseconds.
    pub p50_latency_ms: Option<f64>,
    /// 95th-percentile latency in milliseconds.
    pub p95_latency_ms: Option<f64>,
    /// 99th-percentile latency in milliseconds.
    pub p99_latency_ms: Option<f64>,
    /// Highest latency in milliseconds.
    pub max_latency_ms: Option<f64>,
    /// Share of requests without error, `None` without requests.
    pub success_rate: Option<f64>,
    /// Share of requests with an error, `None` without requests.
    pub error_rate: Option<f64>,
    /// Responses with a 4xx status.
    pub errors_4xx: u64,
    /// Responses with a 5xx status.
    pub errors_5xx: u64,
    /// gRPC calls answered with a `grpc-status` that counts as a failure
    /// (`proxy.grpc.failure_codes`); their HTTP status is usually 200, so
    /// they are in neither `errors_4xx` nor `errors_5xx`. Absent from
    /// messages of servers older than the field, hence the default.
    #[serde(default)]
    pub grpc_failures: u64,
    /// Requests that failed in transport, by kind.
    pub transport_errors: TransportErrors,
}

/// One second of one side, for charts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SecondSample {
    /// The start of the second.
    pub at: UnixMillis,
    /// Requests completed in that second.
    pub requests: u64,
    /// Of which failed (5xx or transport).
    pub errors: u64,
    /// Median latency in milliseconds, `None` without requests.
    pub p50_latency_ms: Option<f64>,
    /// 95th-percentile latency in milliseconds.
    pub p95_latency_ms: Option<f64>,
    /// 99th-percentile latency in milliseconds.
    pub p99_latency_ms: Option<f64>,
}

/// Everything measured for one side.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SideMetrics {
    /// The last minute.
    pub last_1m: WindowStats,
    /// The last five minutes.
    pub last_5m: WindowStats,
    /// One sample per second, oldest first, covering at least five minutes.
    pub series: Vec<SecondSample>,
    /// The custom metrics from the config (`metrics.custom`), in config order.
    #[serde(default)]
    pub custom: Vec<CustomMetric>,
}

/// One custom metric of one side: scraped from the service, queried from
/// Prometheus, or pushed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomMetric {
    /// Its name in the config (and in `safety_checks`).
    pub name: String,
    /// The latest value, when there is a fresh one.
    pub value: Option<f64>,
    /// Why there is no value (`source timed out`, `series missing: …`), in words.
    pub reason: Option<String>,
    /// When the latest value was read.
    pub at: Option<UnixMillis>,
    /// The values of the last five minutes, oldest first, for the charts.
    pub points: Vec<CustomPoint>,
}

/// One reading of a custom metric.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CustomPoint {
    /// When it was read.
    pub at: UnixMillis,
    /// The value.
    pub value: f64,
}

/// The body of `POST /admin/canary/metrics/custom`: a service reports a value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomMetricPush {
    /// `production` or `canary`.
    pub side: crate::deployment::Side,
    /// A name configured with `from: push` under `metrics.custom`.
    pub name: String,
    /// The value.
    pub value: f64,
    /// When it was measured (Unix milliseconds); now when left out.
    #[serde(default)]
    pub timestamp: Option<UnixMillis>,
}

/// Both sides' measurements at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsSnapshot {
    /// When the snapshot was taken.
    pub at: UnixMillis,
    /// The canary share when the snapshot was taken.
    pub canary_percent: CanaryShare,
    /// Production's figures.
    pub production: SideMetrics,
    /// The canary's figures.
    pub canary: SideMetrics,
    /// The canary's answers to mirrored requests, while the rollout has a
    /// shadow step (counts and windows; no series, no examples).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<crate::validation::ShadowReport>,
}
