//! canary's own metrics, for Prometheus to scrape at `GET /metrics`:
//! traffic per side, the share, the phase, decisions, hook durations and
//! store errors. Counters start at zero when the server starts, as
//! Prometheus expects of any process.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use canary_shared::{AuditAction, CanaryState, Phase, Side};

use crate::adapters::recorder::{LATENCY_BUCKETS_SECS, Totals};
use crate::domain::exposition::{MetricType, Writer};

/// Runs and total seconds of each hook, by hook name and whether it succeeded.
type HookRuns = BTreeMap<(&'static str, bool), (u64, f64)>;

/// Counters the controller keeps for `/metrics`.
#[derive(Debug, Default)]
pub struct OwnMetrics {
    /// Hook runs by hook and result: count and total seconds.
    hooks: Mutex<HookRuns>,
    /// Writes to the store that failed.
    store_errors: AtomicU64,
    /// Decisions recorded, by action.
    decisions: Mutex<BTreeMap<AuditAction, u64>>,
    /// Access-log lines of an external router that were recorded.
    log_lines_recorded: AtomicU64,
    /// Access-log lines that did not parse or named another backend or server.
    log_lines_unusable: AtomicU64,
    /// Client connections to the proxy, by protocol.
    proxy_connections: [AtomicU64; ProxyConnection::ALL.len()],
}

/// How a client connection to the proxy went, for `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyConnection {
    /// HTTP/1.1 in clear text.
    Http1,
    /// HTTP/2 with prior knowledge, in clear text.
    H2c,
    /// HTTP/1.1 over TLS.
    Http1Tls,
    /// HTTP/2 over TLS (ALPN `h2`).
    H2Tls,
    /// A TLS handshake that failed (no shared protocol or cipher, not TLS, too slow).
    TlsHandshakeFailed,
}

impl ProxyConnection {
    const ALL: [ProxyConnection; 5] = [
        ProxyConnection::Http1,
        ProxyConnection::H2c,
        ProxyConnection::Http1Tls,
        ProxyConnection::H2Tls,
        ProxyConnection::TlsHandshakeFailed,
    ];

    fn label(self) -> &'static str {
        match self {
            ProxyConnection::Http1 => "http1",
            ProxyConnection::H2c => "h2c",
            ProxyConnection::Http1Tls => "http1_tls",
            ProxyConnection::H2Tls => "h2_tls",
            ProxyConnection::TlsHandshakeFailed => "tls_handshake_failed",
        }
    }
}

impl OwnMetrics {
    /// A hook of `name` ran for `took` and succeeded or not.
    pub fn hook_finished(&self, name: &'static str, succeeded: bool, took: Duration) {
        let mut hooks = self.hooks.lock().unwrap_or_else(PoisonError::into_inner);
        let entry = hooks.entry((name, succeeded)).or_insert((0, 0.0));
        entry.0 += 1;
        entry.1 += took.as_secs_f64();
    }

    /// An external router's access-log line was recorded, or could not be used.
    pub fn log_line(&self, recorded: bool) -> u64 {
        let counter = if recorded {
            &self.log_lines_recorded
        } else {
            &self.log_lines_unusable
        };
        counter.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A client connection to the proxy went `how`.
    pub fn proxy_connection(&self, how: ProxyConnection) {
        let index = ProxyConnection::ALL
            .iter()
            .position(|kind| *kind == how)
            .unwrap_or_default();
        self.proxy_connections[index].fetch_add(1, Ordering::Relaxed);
    }

    /// A write to the store failed.
    pub fn store_error(&self) {
        self.store_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A decision was recorded.
    pub fn decided(&self, action: AuditAction) {
        *self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(action)
            .or_insert(0) += 1;
    }

    /// The whole exposition: these counters, both sides' traffic `totals`
    /// and what `state` says now.
    pub fn render(&self, state: &CanaryState, totals: &[(Side, Totals)]) -> String {
        let mut out = Writer::new();
        out.metric(
            "canary_requests_total",
            MetricType::Counter,
            "Requests the proxy finished, by side and outcome (ok is any status below 400; grpc_error is a gRPC call whose grpc-status counts as a failure; transport_error is refused, reset, timed out or overloaded; client_error is the client's own fault, answered by the proxy and never counted against the side).",
        );
        for (side, totals) in totals {
            let side = side.as_str();
            let errors = totals.transport.total();
            let ok = totals.requests.saturating_sub(
                totals.errors_4xx + totals.errors_5xx + totals.grpc_failures + errors,
            );
            for (outcome, count) in [
                ("ok", ok),
                ("4xx", totals.errors_4xx),
                ("5xx", totals.errors_5xx),
                ("grpc_error", totals.grpc_failures),
                ("transport_error", errors),
                ("client_error", totals.client_errors),
            ] {
                out.sample(
                    "canary_requests_total",
                    &[("side", side), ("outcome", outcome)],
                    count as f64,
                );
            }
        }
        out.metric(
            "canary_router_log_lines_total",
            MetricType::Counter,
            "Access-log lines an external router (HAProxy, nginx) sent, by whether they were recorded or could not be used (unparsable, or another backend or server).",
        );
        for (result, counter) in [
            ("recorded", &self.log_lines_recorded),
            ("unusable", &self.log_lines_unusable),
        ] {
            out.sample(
                "canary_router_log_lines_total",
                &[("result", result)],
                counter.load(Ordering::Relaxed) as f64,
            );
        }
        out.metric(
            "canary_proxy_connections_total",
            MetricType::Counter,
            "Client connections to the built-in proxy, by protocol, and TLS handshakes that failed.",
        );
        for (kind, counter) in ProxyConnection::ALL.iter().zip(&self.proxy_connections) {
            out.sample(
                "canary_proxy_connections_total",
                &[("protocol", kind.label())],
                counter.load(Ordering::Relaxed) as f64,
            );
        }
        out.metric(
            "canary_transport_errors_total",
            MetricType::Counter,
            "Requests that failed in transport, by side and kind.",
        );
        for (side, totals) in totals {
            let transport = &totals.transport;
            for (kind, count) in [
                ("refused", transport.refused),
                ("reset", transport.reset),
                ("timeout", transport.timeout),
                ("overloaded", transport.overloaded),
                ("other", transport.other),
            ] {
                out.sample(
                    "canary_transport_errors_total",
                    &[("side", side.as_str()), ("kind", kind)],
                    count as f64,
                );
            }
        }
        out.metric(
            "canary_request_duration_seconds",
            MetricType::Histogram,
            "How long upstreams took to answer through the proxy, by side.",
        );
        for (side, totals) in totals {
            let side = side.as_str();
            for (bound, count) in LATENCY_BUCKETS_SECS.iter().zip(&totals.buckets) {
                let le = bound.to_string();
                out.sample(
                    "canary_request_duration_seconds_bucket",
                    &[("side", side), ("le", le.as_str())],
                    *count as f64,
                );
            }
            out.sample(
                "canary_request_duration_seconds_bucket",
                &[("side", side), ("le", "+Inf")],
                totals.requests as f64,
            )
            .sample(
                "canary_request_duration_seconds_sum",
                &[("side", side)],
                totals.latency_sum_micros as f64 / 1e6,
            )
            .sample(
                "canary_request_duration_seconds_count",
                &[("side", side)],
                totals.requests as f64,
            );
        }
        out.metric(
            "canary_traffic_share_ratio",
            MetricType::Gauge,
            "The share of new requests each side gets, from 0 to 1.",
        );
        for side in Side::BOTH {
            out.sample(
                "canary_traffic_share_ratio",
                &[("side", side.as_str())],
                state.traffic.of(side).percent() / 100.0,
            );
        }
        out.metric(
            "canary_phase",
            MetricType::Gauge,
            "1 for the phase the rollout is in, 0 for the others.",
        );
        for phase in ALL_PHASES {
            let name = serde_json::to_value(phase)
                .ok()
                .and_then(|value| value.as_str().map(str::to_owned))
                .unwrap_or_default();
            out.sample(
                "canary_phase",
                &[("phase", name.as_str())],
                f64::from(u8::from(state.phase == phase)),
            );
        }
        out.metric(
            "canary_judge_evidence",
            MetricType::Gauge,
            "The statistical judge's evidence for the running rollout, per metric: that the canary is worse than tolerance (fails at 2/alpha) or within it (passes at 1/alpha).",
        );
        for judged in &state.judge {
            out.sample(
                "canary_judge_evidence",
                &[("metric", judged.metric.as_str()), ("toward", "worse")],
                judged.worse_evidence,
            )
            .sample(
                "canary_judge_evidence",
                &[("metric", judged.metric.as_str()), ("toward", "within")],
                judged.within_evidence,
            );
        }
        let decisions = self
            .decisions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let count = |counted: fn(AuditAction) -> bool| -> u64 {
            decisions
                .iter()
                .filter(|(action, _)| counted(**action))
                .map(|(_, count)| count)
                .sum()
        };
        out.metric(
            "canary_rollbacks_total",
            MetricType::Counter,
            "Rollbacks decided (by people, by checks, for missing data, or after a failed promotion).",
        )
        .sample(
            "canary_rollbacks_total",
            &[],
            count(AuditAction::is_rollback) as f64,
        );
        out.metric(
            "canary_breaches_total",
            MetricType::Counter,
            "Critical safety-check breaches (and statistical-judge fails in enforce mode) that rolled the canary back.",
        )
        .sample(
            "canary_breaches_total",
            &[],
            count(|action| action == AuditAction::AutoRollback) as f64,
        );
        out.metric(
            "canary_decisions_total",
            MetricType::Counter,
            "Audit-trail decisions recorded, by action.",
        );
        for (action, count) in &decisions {
            out.sample(
                "canary_decisions_total",
                &[("action", action.as_str())],
                *count as f64,
            );
        }
        out.metric(
            "canary_hook_duration_seconds",
            MetricType::Summary,
            "How long hooks ran, by hook and result.",
        );
        let hooks = self
            .hooks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for ((hook, succeeded), (runs, seconds)) in &hooks {
            let result = if *succeeded { "success" } else { "failure" };
            let labels = [("hook", *hook), ("result", result)];
            out.sample("canary_hook_duration_seconds_sum", &labels, *seconds)
                .sample("canary_hook_duration_seconds_count", &labels, *runs as f64);
        }
        out.metric(
            "canary_store_errors_total",
            MetricType::Counter,
            "Writes to the store that failed (the decision was then not carried out).",
        )
        .sample(
            "canary_store_errors_total",
            &[],
            self.store_errors.load(Ordering::Relaxed) as f64,
        );
        out.finish()
    }
}

const ALL_PHASES: [Phase; 11] = [
    Phase::Idle,
    Phase::BuildDeploy,
    Phase::HealthCheck,
    Phase::Validating,
    Phase::Progressing,
    Phase::Paused,
    Phase::Promoting,
    Phase::Promoted,
    Phase::RollingBack,
    Phase::RolledBack,
    Phase::Failed,
];
