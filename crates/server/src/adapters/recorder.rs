//! Per-side request metrics, cheap enough to record every proxied request.
//!
//! Recording locks one of a few shards (picked per thread), never a lock
//! shared by every request, and only for a counter update and a histogram
//! increment. Once a second [`Recorder::tick`] moves the shards' counts into a
//! ring of per-second buckets (HDR histograms, 1 % precision) covering the last
//! five minutes, from which the rolling windows and the chart series are built.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use canary_shared::{
    CanaryShare, MetricsSnapshot, SecondSample, Side, SideMetrics, TransportErrors, UnixMillis,
    WindowStats,
};
use hdrhistogram::Histogram;

use crate::domain::judge::{JudgeSecond, compare_concurrent};

/// How a proxied request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The upstream answered with this status.
    Status(u16),
    /// It failed in transport.
    Transport(TransportFailure),
    /// A gRPC call answered with a `grpc-status` that counts as a failure
    /// (`proxy.grpc.failure_codes`): an error like a 5xx, although its HTTP
    /// status was 200.
    GrpcFailure(u8),
    /// The client's own fault (a malformed, aborted, too slow or too large
    /// request body, or an upgrade with a body): answered 4xx by the proxy,
    /// counted apart, and never a request of the side, so it feeds neither
    /// the checks nor the judge.
    ClientError,
}

impl Outcome {
    /// Whether it counts against its side: a 5xx, a gRPC failure, or a
    /// transport failure (what the error rate and the judge count).
    pub fn is_failure(self) -> bool {
        match self {
            Outcome::Status(status) => status >= 500,
            Outcome::Transport(_) | Outcome::GrpcFailure(_) => true,
            Outcome::ClientError => false,
        }
    }
}

/// The kinds of transport failure, counted separately.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportFailure {
    /// Connection refused.
    Refused,
    /// Reset or closed before the response ended.
    Reset,
    /// No connection or no answer in time.
    Timeout,
    /// The side had its maximum of requests in flight.
    Overloaded,
    /// Anything else.
    Other,
}

/// Seconds of history kept: the longest window.
const HISTORY_SECS: usize = 300;
/// The short window.
const SHORT_WINDOW_SECS: usize = 60;
/// Latencies are recorded in microseconds up to a minute; longer ones count as a minute.
const MAX_LATENCY_MICROS: u64 = 60_000_000;

fn new_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_LATENCY_MICROS, 2).expect("static histogram bounds are valid")
}

/// Counts of one second (or one shard's share of it).
#[derive(Clone, Debug)]
struct Counts {
    latency_micros: Histogram<u32>,
    requests: u64,
    latency_sum_micros: u64,
    errors_4xx: u64,
    errors_5xx: u64,
    /// gRPC calls whose `grpc-status` counts as a failure.
    grpc_failures: u64,
    transport: TransportErrors,
    /// Client faults; not in `requests`.
    client_errors: u64,
}

impl Counts {
    fn new() -> Counts {
        Counts {
            latency_micros: new_histogram(),
            requests: 0,
            latency_sum_micros: 0,
            errors_4xx: 0,
            errors_5xx: 0,
            grpc_failures: 0,
            transport: TransportErrors::default(),
            client_errors: 0,
        }
    }

    fn record(&mut self, outcome: Outcome, latency: Duration) {
        if outcome == Outcome::ClientError {
            self.client_errors += 1;
            return;
        }
        let micros = u64::try_from(latency.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_LATENCY_MICROS);
        self.latency_micros.saturating_record(micros);
        self.requests += 1;
        self.latency_sum_micros = self.latency_sum_micros.saturating_add(micros);
        match outcome {
            Outcome::Status(status) if (400..500).contains(&status) => self.errors_4xx += 1,
            Outcome::Status(status) if status >= 500 => self.errors_5xx += 1,
            Outcome::Status(_) | Outcome::ClientError => {}
            Outcome::GrpcFailure(_) => self.grpc_failures += 1,
            Outcome::Transport(failure) => {
                let counter = match failure {
                    TransportFailure::Refused => &mut self.transport.refused,
                    TransportFailure::Reset => &mut self.transport.reset,
                    TransportFailure::Timeout => &mut self.transport.timeout,
                    TransportFailure::Overloaded => &mut self.transport.overloaded,
                    TransportFailure::Other => &mut self.transport.other,
                };
                *counter += 1;
            }
        }
    }

    fn add(&mut self, other: &Counts) {
        // Both histograms share bounds, so adding cannot fail.
        let _ = self.latency_micros.add(&other.latency_micros);
        self.requests += other.requests;
        self.latency_sum_micros = self
            .latency_sum_micros
            .saturating_add(other.latency_sum_micros);
        self.errors_4xx += other.errors_4xx;
        self.errors_5xx += other.errors_5xx;
        self.grpc_failures += other.grpc_failures;
        self.transport.refused += other.transport.refused;
        self.transport.reset += other.transport.reset;
        self.transport.timeout += other.transport.timeout;
        self.transport.overloaded += other.transport.overloaded;
        self.transport.other += other.transport.other;
        self.client_errors += other.client_errors;
    }

    fn errors(&self) -> u64 {
        self.errors_5xx + self.grpc_failures + self.transport.total()
    }

    fn quantile_ms(&self, quantile: f64) -> Option<f64> {
        (self.requests > 0).then(|| self.latency_micros.value_at_quantile(quantile) as f64 / 1000.0)
    }

    fn window(&self, window_secs: usize) -> WindowStats {
        let requests = self.requests;
        let has_data = requests > 0;
        let error_rate = has_data.then(|| self.errors() as f64 / requests as f64);
        WindowStats {
            window_secs: window_secs as u32,
            requests,
            requests_per_sec: requests as f64 / window_secs as f64,
            avg_latency_ms: has_data
                .then(|| self.latency_sum_micros as f64 / requests as f64 / 1000.0),
            p50_latency_ms: self.quantile_ms(0.50),
            p95_latency_ms: self.quantile_ms(0.95),
            p99_latency_ms: self.quantile_ms(0.99),
            max_latency_ms: has_data.then(|| self.latency_micros.max() as f64 / 1000.0),
            success_rate: error_rate.map(|rate| 1.0 - rate),
            error_rate,
            errors_4xx: self.errors_4xx,
            errors_5xx: self.errors_5xx,
            grpc_failures: self.grpc_failures,
            transport_errors: self.transport,
        }
    }
}

/// One finished second.
#[derive(Clone, Debug)]
struct Second {
    sample: SecondSample,
    counts: Counts,
}

/// Upper bounds of the latency histogram at `/metrics`, in seconds.
pub const LATENCY_BUCKETS_SECS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// One side's counts since the server started, for `/metrics`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Totals {
    /// Requests finished.
    pub requests: u64,
    /// Of which answered 4xx.
    pub errors_4xx: u64,
    /// Of which answered 5xx.
    pub errors_5xx: u64,
    /// Of which were gRPC calls that failed by their `grpc-status`.
    pub grpc_failures: u64,
    /// Of which failed in transport, by kind.
    pub transport: TransportErrors,
    /// Client faults answered by the proxy itself; not counted in `requests`.
    pub client_errors: u64,
    /// The sum of their latencies, in microseconds.
    pub latency_sum_micros: u64,
    /// How many took at most each of [`LATENCY_BUCKETS_SECS`].
    pub buckets: [u64; LATENCY_BUCKETS_SECS.len()],
}

impl Totals {
    fn add(&mut self, second: &Counts) {
        self.requests += second.requests;
        self.errors_4xx += second.errors_4xx;
        self.errors_5xx += second.errors_5xx;
        self.grpc_failures += second.grpc_failures;
        self.transport.refused += second.transport.refused;
        self.transport.reset += second.transport.reset;
        self.transport.timeout += second.transport.timeout;
        self.transport.overloaded += second.transport.overloaded;
        self.transport.other += second.transport.other;
        self.client_errors += second.client_errors;
        self.latency_sum_micros = self
            .latency_sum_micros
            .saturating_add(second.latency_sum_micros);
        if second.requests > 0 {
            for (bucket, bound) in self.buckets.iter_mut().zip(LATENCY_BUCKETS_SECS) {
                let bound_micros = (bound * 1e6) as u64;
                *bucket += second.latency_micros.count_between(0, bound_micros);
            }
        }
    }
}

/// One side's shards and history.
#[derive(Debug)]
struct SideRecorder {
    /// The current second's counts, split so concurrent requests rarely meet.
    shards: Box<[Shard]>,
    /// Finished seconds, oldest first. Written by `tick`, read by `snapshot`.
    history: Mutex<VecDeque<Second>>,
    /// Everything since the start. Written by `tick`, read by `/metrics`.
    totals: Mutex<Totals>,
    /// Failures recorded since the controller last took them
    /// ([`Recorder::take_failures`]): its fast path sees them as they happen.
    unseen_failures: AtomicU64,
}

impl SideRecorder {
    /// Takes the second under way out of the shards (they start afresh)
    /// and adds it to the totals; returns it.
    fn close_second(&self) -> Counts {
        let mut total = Counts::new();
        for shard in self.shards.iter() {
            let taken = std::mem::replace(
                &mut *shard
                    .0
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
                Counts::new(),
            );
            total.add(&taken);
        }
        self.totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .add(&total);
        total
    }
}

/// One shard, on cache lines of its own: two threads recording into
/// neighbouring shards must not bounce a shared line between their cores.
#[derive(Debug)]
#[repr(align(128))]
struct Shard(Mutex<Counts>);

impl SideRecorder {
    fn new(n_shards: usize) -> SideRecorder {
        SideRecorder {
            shards: (0..n_shards)
                .map(|_| Shard(Mutex::new(Counts::new())))
                .collect(),
            history: Mutex::new(VecDeque::with_capacity(HISTORY_SECS + 1)),
            totals: Mutex::new(Totals::default()),
            unseen_failures: AtomicU64::new(0),
        }
    }
}

/// Both sides' metrics; shared by every proxy connection and the ticker.
#[derive(Debug)]
pub struct Recorder {
    production: SideRecorder,
    canary: SideRecorder,
    /// Shuffles each second's latencies before the judge's comparisons.
    rng: Mutex<fastrand::Rng>,
    /// Woken by every failure, for the controller's fast path. A failure
    /// costs an atomic add and a wake-up; a success nothing more.
    failure_seen: tokio::sync::Notify,
}

thread_local! {
    /// This thread's shard, assigned round-robin on first use.
    static SHARD: usize = NEXT_SHARD.fetch_add(1, Ordering::Relaxed);
}
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    /// A recorder with a shard per core (at least two).
    pub fn new() -> Recorder {
        let n_shards = std::thread::available_parallelism()
            .map_or(2, usize::from)
            .max(2);
        Recorder {
            production: SideRecorder::new(n_shards),
            canary: SideRecorder::new(n_shards),
            rng: Mutex::new(fastrand::Rng::new()),
            failure_seen: tokio::sync::Notify::new(),
        }
    }

    /// Resolves once a failure was recorded since the last call's
    /// resolution (a failure while nobody waits is remembered).
    pub async fn failure_seen(&self) {
        self.failure_seen.notified().await;
    }

    /// The failures recorded since the last call, `(canary, production)`.
    pub fn take_failures(&self) -> (u64, u64) {
        let take = |side: Side| self.side(side).unseen_failures.swap(0, Ordering::AcqRel);
        (take(Side::Canary), take(Side::Production))
    }

    /// `side`'s requests and failures in the last `secs` seconds, counting
    /// the second under way: the finished `secs - 1` and the current one so
    /// far. For the fast path, between ticks.
    pub fn live_counts(&self, side: Side, secs: usize) -> (u64, u64) {
        let recorder = self.side(side);
        let (mut requests, mut failures) = {
            let history = recorder
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            history.iter().rev().take(secs.saturating_sub(1)).fold(
                (0, 0),
                |(requests, failures), second| {
                    (
                        requests + second.counts.requests,
                        failures + second.counts.errors(),
                    )
                },
            )
        };
        for shard in recorder.shards.iter() {
            let counts = shard
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            requests += counts.requests;
            failures += counts.errors();
        }
        (requests, failures)
    }

    /// `side`'s window over its last `secs` finished seconds.
    pub fn window(&self, side: Side, secs: usize) -> WindowStats {
        let history = self
            .side(side)
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut counts = Counts::new();
        for second in history.iter().rev().take(secs) {
            counts.add(&second.counts);
        }
        counts.window(secs)
    }

    /// Forgets the canary's finished seconds (its windows and series), for a
    /// new rollout: the checks then judge the new version on its own
    /// requests, not on the last minute of the one before. The totals at
    /// `/metrics` keep counting.
    ///
    /// The second under way goes too: a rollout started right after a
    /// rollback would otherwise inherit the old canary's last failures in
    /// its first second (and a fast window would roll a healthy canary
    /// back on them). Its counts still reach the totals.
    pub fn forget_canary_seconds(&self) {
        self.forget_seconds(Side::Canary);
    }

    /// Forgets `side`'s finished seconds and the one under way (see
    /// [`Recorder::forget_canary_seconds`]).
    pub fn forget_seconds(&self, side: Side) {
        let recorder = self.side(side);
        recorder.close_second();
        recorder
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    fn side(&self, side: Side) -> &SideRecorder {
        match side {
            Side::Production => &self.production,
            Side::Canary => &self.canary,
        }
    }

    /// Records one finished request of `side`.
    pub fn record(&self, side: Side, outcome: Outcome, latency: Duration) {
        let shards = &self.side(side).shards;
        let shard = SHARD.with(|shard| *shard) % shards.len();
        // Held for a counter update only; never across an await.
        let mut counts = shards[shard]
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        counts.record(outcome, latency);
        drop(counts);
        if outcome.is_failure() {
            self.side(side)
                .unseen_failures
                .fetch_add(1, Ordering::AcqRel);
            self.failure_seen.notify_one();
        }
    }

    /// Closes the second that started at `second_start`: moves the shards'
    /// counts into the history and forgets seconds older than five minutes.
    /// Returns that second as the statistical judge sees it.
    pub fn tick(&self, second_start: UnixMillis) -> JudgeSecond {
        let mut finished: Vec<Counts> = Vec::with_capacity(2);
        for side in Side::BOTH {
            let recorder = self.side(side);
            let total = recorder.close_second();
            let sample = SecondSample {
                at: second_start,
                requests: total.requests,
                errors: total.errors(),
                p50_latency_ms: total.quantile_ms(0.50),
                p95_latency_ms: total.quantile_ms(0.95),
                p99_latency_ms: total.quantile_ms(0.99),
            };
            let mut history = recorder
                .history
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            finished.push(total.clone());
            history.push_back(Second {
                sample,
                counts: total,
            });
            while history.len() > HISTORY_SECS {
                history.pop_front();
            }
        }
        match finished.as_slice() {
            [production, canary] => self.judge_second_of(production, canary),
            _ => JudgeSecond::default(),
        }
    }

    /// Failures per side, and the latencies of the second compared across
    /// the sides.
    ///
    /// The judge counts on every comparison having mean ½ when the sides
    /// are alike, whatever came before, so the latencies are shuffled before
    /// they are grouped: the histogram iterates from the fastest up, and
    /// grouping (or cutting a busy second) in that order would make one
    /// side look fast.
    fn judge_second_of(&self, production: &Counts, canary: &Counts) -> JudgeSecond {
        let mut rng = self
            .rng
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut latencies = |counts: &Counts| {
            let mut values: Vec<f64> = counts
                .latency_micros
                .iter_recorded()
                .flat_map(|value| {
                    let ms = value.value_iterated_to() as f64 / 1000.0;
                    std::iter::repeat_n(ms, value.count_at_value() as usize)
                })
                .collect();
            rng.shuffle(&mut values);
            values
        };
        let (canary_ms, production_ms) = (latencies(canary), latencies(production));
        let comparisons = compare_concurrent(&canary_ms, &production_ms);
        JudgeSecond {
            canary_requests: canary.requests,
            production_requests: production.requests,
            canary_failures: canary.errors(),
            production_failures: production.errors(),
            comparisons,
        }
    }

    /// Everything `side` served since the start, as of the last tick.
    pub fn totals(&self, side: Side) -> Totals {
        self.side(side)
            .totals
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Both sides' windows and series, as of the last tick.
    pub fn snapshot(&self, at: UnixMillis, canary_percent: CanaryShare) -> MetricsSnapshot {
        MetricsSnapshot {
            at,
            canary_percent,
            production: self.side_metrics(Side::Production),
            canary: self.side_metrics(Side::Canary),
            shadow: None,
        }
    }

    fn side_metrics(&self, side: Side) -> SideMetrics {
        let history = self
            .side(side)
            .history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = |secs: usize| {
            let mut counts = Counts::new();
            for second in history.iter().rev().take(secs) {
                counts.add(&second.counts);
            }
            counts.window(secs)
        };
        SideMetrics {
            last_1m: window(SHORT_WINDOW_SECS),
            last_5m: window(HISTORY_SECS),
            series: history.iter().map(|second| second.sample.clone()).collect(),
            custom: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use canary_shared::{CanaryShare, Side, UnixMillis};

    use crate::adapters::recorder::{Outcome, Recorder, TransportFailure};

    fn ms(value: u64) -> Duration {
        Duration::from_millis(value)
    }

    #[test]
    fn windows_count_each_side_separately_with_errors_by_kind() {
        let recorder = Recorder::new();
        for latency in 1..=100 {
            recorder.record(Side::Production, Outcome::Status(200), ms(latency));
        }
        recorder.record(Side::Canary, Outcome::Status(200), ms(10));
        recorder.record(Side::Canary, Outcome::Status(404), ms(10));
        recorder.record(Side::Canary, Outcome::Status(503), ms(10));
        recorder.record(
            Side::Canary,
            Outcome::Transport(TransportFailure::Refused),
            ms(1),
        );
        recorder.tick(UnixMillis(1_000));
        let snapshot = recorder.snapshot(UnixMillis(2_000), CanaryShare::ZERO);

        let production = &snapshot.production.last_1m;
        assert_eq!(production.requests, 100);
        assert_eq!(production.success_rate, Some(1.0));
        let p50 = production.p50_latency_ms.unwrap();
        let p95 = production.p95_latency_ms.unwrap();
        assert!((49.5..=51.0).contains(&p50), "p50 {p50}");
        assert!((94.0..=96.0).contains(&p95), "p95 {p95}");
        assert!((production.avg_latency_ms.unwrap() - 50.5).abs() < 0.01);
        assert!((production.requests_per_sec - 100.0 / 60.0).abs() < 1e-9);

        let canary = &snapshot.canary.last_1m;
        assert_eq!(canary.requests, 4);
        assert_eq!(canary.errors_4xx, 1);
        assert_eq!(canary.errors_5xx, 1);
        assert_eq!(canary.transport_errors.refused, 1);
        assert_eq!(
            canary.error_rate,
            Some(0.5),
            "5xx and transport failures are errors; 4xx is not"
        );
        assert_eq!(snapshot.canary.series.len(), 1);
        assert_eq!(snapshot.canary.series[0].errors, 2);
    }

    #[test]
    fn a_new_rollout_forgets_the_old_canary_s_second_under_way_but_the_totals_keep_it() {
        let recorder = Recorder::new();
        recorder.record(Side::Canary, Outcome::Status(500), ms(5));
        recorder.tick(UnixMillis(0));
        // The old canary's last failure, in the second a new rollout starts.
        recorder.record(Side::Canary, Outcome::Status(500), ms(5));
        recorder.forget_canary_seconds();
        assert_eq!(recorder.live_counts(Side::Canary, 10), (0, 0));
        recorder.record(Side::Canary, Outcome::Status(200), ms(5));
        recorder.tick(UnixMillis(1_000));
        let snapshot = recorder.snapshot(UnixMillis(1_000), CanaryShare::ZERO);
        assert_eq!(
            (
                snapshot.canary.last_1m.requests,
                snapshot.canary.last_1m.error_rate
            ),
            (1, Some(0.0)),
            "the new rollout is judged on its own requests"
        );
        let totals = recorder.totals(Side::Canary);
        assert_eq!((totals.requests, totals.errors_5xx), (3, 2));
    }

    #[test]
    fn no_requests_means_no_figures_not_zero() {
        let recorder = Recorder::new();
        recorder.tick(UnixMillis(1_000));
        let window = recorder
            .snapshot(UnixMillis(1_000), CanaryShare::ZERO)
            .canary
            .last_1m;
        assert_eq!(window.requests, 0);
        assert_eq!(window.success_rate, None);
        assert_eq!(window.p95_latency_ms, None);
    }

    #[test]
    fn the_short_window_forgets_after_a_minute_and_history_after_five() {
        let recorder = Recorder::new();
        recorder.record(Side::Canary, Outcome::Status(500), ms(5));
        recorder.tick(UnixMillis(0));
        for second in 1..60 {
            recorder.tick(UnixMillis(second * 1000));
        }
        let snapshot = recorder.snapshot(UnixMillis(60_000), CanaryShare::ZERO);
        assert_eq!(
            snapshot.canary.last_1m.requests, 1,
            "still inside the last minute"
        );
        recorder.tick(UnixMillis(60_000));
        let snapshot = recorder.snapshot(UnixMillis(61_000), CanaryShare::ZERO);
        assert_eq!(snapshot.canary.last_1m.requests, 0);
        assert_eq!(snapshot.canary.last_5m.requests, 1);
        for second in 61..400 {
            recorder.tick(UnixMillis(second * 1000));
        }
        let snapshot = recorder.snapshot(UnixMillis(400_000), CanaryShare::ZERO);
        assert_eq!(snapshot.canary.last_5m.requests, 0);
        assert_eq!(snapshot.canary.series.len(), 300);
        assert_eq!(snapshot.canary.series[0].at, UnixMillis(100_000));
    }

    #[test]
    fn recording_from_many_threads_loses_nothing() {
        let recorder = std::sync::Arc::new(Recorder::new());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let recorder = std::sync::Arc::clone(&recorder);
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        recorder.record(Side::Production, Outcome::Status(200), ms(1));
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        recorder.tick(UnixMillis(0));
        assert_eq!(
            recorder
                .snapshot(UnixMillis(0), CanaryShare::ZERO)
                .production
                .last_1m
                .requests,
            80_000
        );
    }

    #[test]
    fn the_judges_comparisons_of_two_alike_sides_find_the_canary_slower_half_the_time() {
        // The statistical judge trusts that a canary like production is the
        // slower in half the comparisons: grouping must not favour a side.
        // Twenty busy seconds give 10,000 comparisons of 5 or 6 partners, so
        // a fair grouping lands within ±0.03 of a half with odds of failing
        // below one in 10^15, while grouping in the histogram's order (the
        // fastest first) would be far outside it.
        let recorder = Recorder::new();
        let mut rng = fastrand::Rng::with_seed(3);
        let (mut slower, mut compared) = (0.0, 0);
        for second in 1..=20 {
            for _ in 0..4_000 {
                let side = if rng.f64() < 0.25 {
                    Side::Canary
                } else {
                    Side::Production
                };
                let micros = 2_000 + rng.u64(..30_000);
                recorder.record(side, Outcome::Status(200), Duration::from_micros(micros));
            }
            let judged = recorder.tick(UnixMillis(second * 1_000));
            assert_eq!(judged.comparisons.len(), 500, "a busy second is cut to 500");
            for comparison in &judged.comparisons {
                slower += comparison.slower;
                compared += 1;
            }
        }
        let share = slower / f64::from(compared);
        assert!(
            (0.47..=0.53).contains(&share),
            "slower in {share} of {compared} comparisons"
        );
    }
}
