//! The shadow tap: what the proxy needs to copy production's requests to
//! the canary (the share in force, the queue's permits, the rules), and
//! what the copies found (counts, mismatches by kind, the latest examples,
//! both sides' latencies for the same requests in a recorder of their own,
//! and each second's pairs for the statistical judge).
//!
//! Shared by every proxy thread and the controller. A request that is not
//! copied costs one atomic load; the locks here are taken per copied
//! request at most, never held across an await.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::time::Duration;

use canary_shared::{
    CanaryShare, MismatchCounts, MismatchExample, MismatchKind, ShadowReport, ShadowSecond, Side,
    UnixMillis,
};
use hyper::Method;
use hyper::header::{self, HeaderMap, HeaderName};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::adapters::recorder::{Outcome, Recorder};
use crate::config::ShadowConfig;
use crate::domain::judge::{Comparison, JudgeSecond};
use crate::domain::shadow::{BodyRule, Match};
use crate::ports::Clock;

/// Mismatched examples kept, newest first.
const EXAMPLES: usize = 20;
/// Seconds of per-second figures kept (five minutes, like the recorder).
const HISTORY_SECS: usize = 300;
/// At most this many pairs a second reach the judge (as many as the live
/// split's comparisons).
const PAIRS_PER_SECOND: usize = 500;
/// The window the checks and the report read, in seconds.
const WINDOW_SECS: usize = 60;
/// Headers never kept in an example, whatever the config says.
const ALWAYS_REDACTED: [HeaderName; 3] = [
    header::AUTHORIZATION,
    header::COOKIE,
    header::PROXY_AUTHORIZATION,
];

/// How requests are copied and compared (`validation.shadow`).
#[derive(Debug)]
pub struct ShadowRules {
    methods: Vec<Method>,
    /// Requests with a larger body are not copied.
    pub max_request_body: u64,
    /// Bodies larger than this are compared by status only.
    pub max_compared_body: usize,
    /// How bodies are compared.
    pub body: BodyRule,
    redacted: Vec<HeaderName>,
}

impl ShadowRules {
    /// The rules of `config`.
    pub fn new(config: &ShadowConfig) -> ShadowRules {
        let mut redacted: Vec<HeaderName> = ALWAYS_REDACTED.to_vec();
        redacted.extend(
            config
                .redact_headers
                .iter()
                .filter_map(|name| HeaderName::from_bytes(name.0.as_bytes()).ok()),
        );
        ShadowRules {
            methods: config
                .methods
                .iter()
                .filter_map(|method| Method::from_bytes(method.0.as_bytes()).ok())
                .collect(),
            max_request_body: config.max_request_body.0,
            max_compared_body: usize::try_from(config.max_compared_body.0).unwrap_or(usize::MAX),
            body: config.body_rule(),
            redacted,
        }
    }
}

/// The tally of what the copies found.
#[derive(Debug, Default)]
struct Counters {
    mirrored: AtomicU64,
    compared: AtomicU64,
    dropped: AtomicU64,
    skipped_large_body: AtomicU64,
    unpaired: AtomicU64,
    status: AtomicU64,
    body: AtomicU64,
    failed: AtomicU64,
}

/// The second under way.
#[derive(Debug, Default)]
struct OpenSecond {
    compared: u64,
    mismatches: u64,
    pairs: Vec<Comparison>,
}

/// A closed second's figures.
#[derive(Clone, Copy, Debug)]
struct ClosedSecond {
    at: UnixMillis,
    compared: u64,
    mismatches: u64,
    mirrored: u64,
    canary_p95_ms: Option<f64>,
    production_p95_ms: Option<f64>,
}

/// What a copied request found, for [`ShadowTap::finished`].
#[derive(Debug)]
pub struct Pair<'a> {
    /// The request as production got it.
    pub method: &'a Method,
    /// Its path and query.
    pub path: &'a str,
    /// Its headers (redacted before they are kept).
    pub headers: &'a HeaderMap,
    /// Production's status and time to its response head.
    pub production: (u16, Duration),
    /// What the canary's answer came to, and its time to the head (or to
    /// its failure).
    pub canary: (Outcome, Duration),
    /// The comparison.
    pub found: Match,
}

/// See the module documentation.
#[derive(Debug)]
pub struct ShadowTap {
    /// How requests are copied and compared.
    pub rules: ShadowRules,
    /// The share copied now, in basis points; 0 outside the shadow step.
    share: AtomicU16,
    /// The share of the current shadow step, shown once it is over too.
    last_share: AtomicU16,
    /// One permit per copy waiting or in flight.
    queue: Arc<Semaphore>,
    /// Latency and outcome of both sides' answers to the copied requests:
    /// the canary's as `Canary`, production's as `Production`.
    recorder: Recorder,
    counters: Counters,
    /// Copies sent in the second under way.
    mirrored_this_second: AtomicU64,
    open: Mutex<OpenSecond>,
    history: Mutex<VecDeque<ClosedSecond>>,
    examples: Mutex<VecDeque<MismatchExample>>,
    /// Dates the examples.
    clock: Arc<dyn Clock>,
}

impl ShadowTap {
    /// A tap copying nothing yet.
    pub fn new(config: &ShadowConfig, clock: Arc<dyn Clock>) -> ShadowTap {
        ShadowTap {
            clock,
            rules: ShadowRules::new(config),
            share: AtomicU16::new(0),
            last_share: AtomicU16::new(config.share.0.basis_points()),
            queue: Arc::new(Semaphore::new(config.queue.0 as usize)),
            recorder: Recorder::new(),
            counters: Counters::default(),
            mirrored_this_second: AtomicU64::new(0),
            open: Mutex::new(OpenSecond::default()),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SECS + 1)),
            examples: Mutex::new(VecDeque::with_capacity(EXAMPLES)),
        }
    }

    /// Copies `share` of production's requests from now on (`None`: none).
    /// A shadow step that begins starts from empty figures.
    pub fn set_share(&self, share: Option<CanaryShare>) {
        let bits = share.map_or(0, CanaryShare::basis_points);
        let before = self.share.swap(bits, Ordering::Relaxed);
        if before == 0 && bits > 0 {
            self.last_share.store(bits, Ordering::Relaxed);
            self.forget();
        }
    }

    fn forget(&self) {
        for counter in [
            &self.counters.mirrored,
            &self.counters.compared,
            &self.counters.dropped,
            &self.counters.skipped_large_body,
            &self.counters.unpaired,
            &self.counters.status,
            &self.counters.body,
            &self.counters.failed,
            &self.mirrored_this_second,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
        self.recorder.forget_seconds(Side::Canary);
        self.recorder.forget_seconds(Side::Production);
        *lock(&self.open) = OpenSecond::default();
        lock(&self.history).clear();
        lock(&self.examples).clear();
    }

    /// Whether to copy a request of `method` with this body: drawn at the
    /// share in force; a permit of the queue when it is copied (`None`
    /// when the queue is full, counted as dropped).
    pub fn ticket(
        &self,
        method: &Method,
        declared_length: Option<u64>,
    ) -> Option<OwnedSemaphorePermit> {
        let share = self.share.load(Ordering::Relaxed);
        if share == 0 || fastrand::u16(..10_000) >= share {
            return None;
        }
        if !self.rules.methods.contains(method) {
            return None;
        }
        if declared_length.is_some_and(|length| length > self.rules.max_request_body) {
            self.counters
                .skipped_large_body
                .fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match Arc::clone(&self.queue).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// A copy was not sent after all: its body went over the limit.
    pub fn skipped_large_body(&self) {
        self.counters
            .skipped_large_body
            .fetch_add(1, Ordering::Relaxed);
    }

    /// A copy went to the canary.
    pub fn mirrored(&self) {
        self.counters.mirrored.fetch_add(1, Ordering::Relaxed);
        self.mirrored_this_second.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy whose production answer never ended (its client went away,
    /// or production failed in transport): nothing to compare.
    pub fn unpaired(&self) {
        self.counters.unpaired.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy and production's answer, compared.
    pub fn finished(&self, pair: Pair<'_>) {
        let (production_status, production_latency) = pair.production;
        let (canary_outcome, canary_latency) = pair.canary;
        self.recorder.record(
            Side::Production,
            Outcome::Status(production_status),
            production_latency,
        );
        self.recorder
            .record(Side::Canary, canary_outcome, canary_latency);
        self.counters.compared.fetch_add(1, Ordering::Relaxed);
        let mismatched = pair.found != Match::Same;
        {
            let mut open = lock(&self.open);
            open.compared += 1;
            open.mismatches += u64::from(mismatched);
            if open.pairs.len() < PAIRS_PER_SECOND
                && !matches!(canary_outcome, Outcome::Transport(_))
            {
                open.pairs.push(crate::domain::shadow::paired(
                    canary_latency.as_secs_f64() * 1000.0,
                    production_latency.as_secs_f64() * 1000.0,
                ));
            }
        }
        let Match::Differs { kind, detail } = pair.found else {
            return;
        };
        let counter = match kind {
            MismatchKind::Status => &self.counters.status,
            MismatchKind::Body => &self.counters.body,
            MismatchKind::Failed => &self.counters.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let mut headers = Vec::new();
        let mut redacted = Vec::new();
        for (name, value) in pair.headers {
            if self.rules.redacted.contains(name) {
                if !redacted.contains(&name.as_str().to_owned()) {
                    redacted.push(name.as_str().to_owned());
                }
                continue;
            }
            headers.push((
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            ));
        }
        let example = MismatchExample {
            at: self.clock.now(),
            method: pair.method.as_str().to_owned(),
            path: pair.path.to_owned(),
            headers,
            redacted,
            kind,
            production_status,
            canary_status: match canary_outcome {
                Outcome::Status(status) => Some(status),
                _ => None,
            },
            detail,
        };
        let mut examples = lock(&self.examples);
        if examples.len() == EXAMPLES {
            examples.pop_back();
        }
        examples.push_front(example);
    }

    /// Closes the second that started at `second_start`: both sides' answers
    /// and the pairs, as the statistical judge sees them (each copied
    /// request on both sides: a failure is the canary's half the time when
    /// both are alike, so the judge takes them at a 50 % share).
    pub fn tick(&self, second_start: UnixMillis) -> JudgeSecond {
        let mut second = self.recorder.tick(second_start);
        let open = std::mem::take(&mut *lock(&self.open));
        second.comparisons = open.pairs;
        let mirrored = self.mirrored_this_second.swap(0, Ordering::Relaxed);
        // Outside the step the series keeps the step's seconds, not idle ones.
        if self.share.load(Ordering::Relaxed) == 0 && open.compared == 0 && mirrored == 0 {
            return second;
        }
        let sample = |side: Side| self.recorder.window(side, 1).p95_latency_ms;
        let mut history = lock(&self.history);
        history.push_back(ClosedSecond {
            at: second_start,
            compared: open.compared,
            mismatches: open.mismatches,
            mirrored,
            canary_p95_ms: sample(Side::Canary),
            production_p95_ms: sample(Side::Production),
        });
        while history.len() > HISTORY_SECS {
            history.pop_front();
        }
        second
    }

    /// Compared requests, mismatches and copies over the last minute (or
    /// the seconds of it the step has had), and how many seconds that is.
    fn last_minute(&self) -> (u64, u64, u64, u64) {
        let history = lock(&self.history);
        history.iter().rev().take(WINDOW_SECS).fold(
            (0, 0, 0, 0),
            |(compared, mismatches, mirrored, seconds), second| {
                (
                    compared + second.compared,
                    mismatches + second.mismatches,
                    mirrored + second.mirrored,
                    seconds + 1,
                )
            },
        )
    }

    /// The mismatch rate as the checks read it.
    pub fn mismatch_metric(&self, min_requests: u64) -> canary_shared::CustomMetric {
        let (compared, mismatches, _, _) = self.last_minute();
        crate::domain::shadow::mismatch_metric(
            compared,
            mismatches,
            WINDOW_SECS as u32,
            min_requests,
        )
    }

    /// The canary's answers to copied requests over the last minute.
    pub fn canary_window(&self) -> canary_shared::WindowStats {
        self.recorder.window(Side::Canary, WINDOW_SECS)
    }

    /// What the copies found; with the series and the examples when `whole`.
    pub fn report(&self, whole: bool) -> ShadowReport {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let (compared, mismatches, mirrored, seconds) = self.last_minute();
        let share = self.share.load(Ordering::Relaxed);
        let shown_share = if share > 0 {
            share
        } else {
            self.last_share.load(Ordering::Relaxed)
        };
        ShadowReport {
            active: share > 0,
            share: CanaryShare::from_basis_points(shown_share).unwrap_or(CanaryShare::ZERO),
            mirrored: load(&self.counters.mirrored),
            compared: load(&self.counters.compared),
            dropped: load(&self.counters.dropped),
            skipped_large_body: load(&self.counters.skipped_large_body),
            unpaired: load(&self.counters.unpaired),
            mismatches: MismatchCounts {
                status: load(&self.counters.status),
                body: load(&self.counters.body),
                failed: load(&self.counters.failed),
            },
            mismatch_rate: (compared > 0).then(|| mismatches as f64 / compared as f64),
            mirrored_per_sec: mirrored as f64 / seconds.max(1) as f64,
            canary: self.recorder.window(Side::Canary, WINDOW_SECS),
            production: self.recorder.window(Side::Production, WINDOW_SECS),
            series: if whole {
                lock(&self.history)
                    .iter()
                    .map(|second| ShadowSecond {
                        at: second.at,
                        compared: second.compared,
                        mismatches: second.mismatches,
                        canary_p95_ms: second.canary_p95_ms,
                        production_p95_ms: second.production_p95_ms,
                    })
                    .collect()
            } else {
                Vec::new()
            },
            examples: if whole {
                lock(&self.examples).iter().cloned().collect()
            } else {
                Vec::new()
            },
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
