//! `cargo xtask bench judge`: the statistical judge on synthetic rollouts,
//! beside the seed's fixed thresholds, Kayenta-style repeated Mann–Whitney
//! checks, a sequential test told the true effect (Wald's SPRT on failures,
//! Kelly's bet on latency), and the fixed-sample lower bound.
//!
//! Traffic: 200 requests a second, 5 % to the canary, log-normal latencies
//! (median 50 ms, σ 0.5) with a heavy tail (1 % of requests ten times
//! slower), 0.5 % of production's requests failing. Every verdict is checked
//! after every simulated second, as the controller does. Prints a table;
//! asserts nothing (the figures go to BENCHMARKS.md).
//!
//! A second table runs the shadow step's judge on the same scenarios: 5 %
//! of production's requests copied to the canary, each copy's latency
//! compared with production's for the same request (a true pair: a request
//! heavy on one side is heavy on the other, so σ 0.46 of the log-latency is
//! the request's and σ 0.2 each side's own, the same marginal law as
//! above), failures judged at a 50 % share, beside the live split's judge
//! at a 5 % share, which sees as many canary requests.
//!
//! `RUNS` (default 1000) sets the number of A/A rollouts; regression
//! scenarios use a fifth of it.

use canary_server::domain::judge::{
    Conclusion, FailureRateJudge, JudgeSettings, LatencyJudge, compare_concurrent,
};

const RATE: usize = 200;
const SHARE: f64 = 0.05;
const BASE_FAILURE: f64 = 0.005;
const ROLLOUT_SECS: usize = 30 * 60;
const ALPHA: f64 = 0.01;

/// What differs in the canary.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    name: &'static str,
    failure_ratio: f64,
    /// Multiplies every canary latency (so p95 grows by as much).
    latency_factor: f64,
}

/// When each method first said "fail", in seconds, per rollout.
#[derive(Default)]
struct Detections {
    judge: Vec<Option<usize>>,
    thresholds: Vec<Option<usize>>,
    mann_whitney: Vec<Option<usize>>,
    oracle: Vec<Option<usize>>,
}

/// Failures land on the canary with this probability when its failure rate
/// is `theta` times production's at the simulated share.
fn failure_on_canary(theta: f64) -> f64 {
    SHARE * theta / (SHARE * theta + 1.0 - SHARE)
}

/// What a test told the effect in advance knows about one metric.
#[derive(Clone, Copy, Debug)]
enum KnownEffect {
    /// Failures land on the canary with probability `truth`, against the
    /// tolerance's `null`.
    Failures { null: f64, truth: f64 },
    /// The latency comparisons' law against the tolerance's mean `null`.
    Latency { null: f64, law: ComparisonLaw },
}

/// How a scenario's latency comparisons ([`compare_concurrent`]) are
/// spread, measured on simulated seconds.
#[derive(Clone, Copy, Debug)]
struct ComparisonLaw {
    mean: f64,
    variance: f64,
    per_sec: f64,
    /// The constant bet that grows fastest against the null (Kelly's).
    best_bet: f64,
}

const LAW_SECONDS: usize = 4_000;

fn comparison_law(scenario: Scenario, null: f64) -> ComparisonLaw {
    let mut rng = fastrand::Rng::with_seed(99);
    let mut values = Vec::new();
    for _ in 0..LAW_SECONDS {
        let (canary, production) = traffic_second(&mut rng, scenario);
        values.extend(
            compare_concurrent(&latencies(&canary), &latencies(&production))
                .iter()
                .map(|comparison| comparison.slower),
        );
    }
    let count = values.len() as f64;
    let mean = values.iter().sum::<f64>() / count;
    let variance = values.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / count;
    let growth = |bet: f64| {
        values
            .iter()
            .map(|x| (1.0 + bet * (x - null)).ln())
            .sum::<f64>()
    };
    let best_bet = (1..1000)
        .map(|step| f64::from(step) / 1000.0 / null)
        .max_by(|a, b| growth(*a).total_cmp(&growth(*b)))
        .unwrap_or(0.0);
    ComparisonLaw {
        mean,
        variance,
        per_sec: count / LAW_SECONDS as f64,
        best_bet,
    }
}

/// The hypotheses a test that knew the effect would weigh.
fn known_effect(scenario: Scenario) -> Option<KnownEffect> {
    if scenario.failure_ratio > 1.0 {
        let truth = scenario.failure_ratio.min(1.0 / BASE_FAILURE);
        return Some(KnownEffect::Failures {
            null: failure_on_canary(1.2),
            truth: failure_on_canary(truth),
        });
    }
    if scenario.latency_factor > 1.0 {
        let null = 0.55;
        let law = comparison_law(scenario, null);
        return (law.mean > null).then_some(KnownEffect::Latency { null, law });
    }
    None
}

/// One simulated second: each side's requests as (latency, failed).
type Second = (Vec<(f64, bool)>, Vec<(f64, bool)>);

fn latencies(side: &[(f64, bool)]) -> Vec<f64> {
    side.iter().map(|(ms, _)| *ms).collect()
}

fn failed(side: &[(f64, bool)]) -> usize {
    side.iter().filter(|(_, failed)| *failed).count()
}

fn traffic_second(rng: &mut fastrand::Rng, scenario: Scenario) -> Second {
    let (mut canary_second, mut production_second) = (Vec::new(), Vec::new());
    for _ in 0..RATE {
        let canary = rng.f64() < SHARE;
        let (failure, factor) = if canary {
            (
                (BASE_FAILURE * scenario.failure_ratio).min(1.0),
                scenario.latency_factor,
            )
        } else {
            (BASE_FAILURE, 1.0)
        };
        let failed = rng.f64() < failure;
        let ms = latency_ms(rng, factor);
        if canary {
            canary_second.push((ms, failed));
        } else {
            production_second.push((ms, failed));
        }
    }
    (canary_second, production_second)
}

fn latency_ms(rng: &mut fastrand::Rng, factor: f64) -> f64 {
    let normal = canary_server::sampling::standard_normal(|| rng.f64());
    let tail = if rng.f64() < 0.01 { 10.0 } else { 1.0 };
    50.0 * (0.5 * normal).exp() * tail * factor
}

/// The seed's checks on the canary's last minute: p95 ≤ 1000 ms, success
/// ≥ 85 %, errors ≤ 15 %, judged with at least 20 requests.
fn thresholds_breached(window: &[(f64, bool)]) -> bool {
    if window.len() < 20 {
        return false;
    }
    let mut latencies: Vec<f64> = window.iter().map(|(ms, _)| *ms).collect();
    latencies.sort_by(f64::total_cmp);
    let p95 = latencies[((latencies.len() as f64) * 0.95) as usize - 1];
    let errors = window.iter().filter(|(_, failed)| *failed).count() as f64 / window.len() as f64;
    p95 > 1000.0 || 1.0 - errors < 0.85 || errors > 0.15
}

/// A one-sided Mann–Whitney test (normal approximation) that the canary's
/// latencies are larger, at level `ALPHA`, as Kayenta runs it per interval.
fn mann_whitney_worse(canary: &[f64], production: &[f64]) -> bool {
    if canary.len() < 20 || production.len() < 20 {
        return false;
    }
    let mut all: Vec<(f64, bool)> = canary
        .iter()
        .map(|ms| (*ms, true))
        .chain(production.iter().map(|ms| (*ms, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let rank_sum: f64 = all
        .iter()
        .enumerate()
        .filter(|(_, (_, is_canary))| *is_canary)
        .map(|(index, _)| index as f64 + 1.0)
        .sum();
    let (n, m) = (canary.len() as f64, production.len() as f64);
    let u = rank_sum - n * (n + 1.0) / 2.0;
    let mean = n * m / 2.0;
    let sd = (n * m * (n + m + 1.0) / 12.0).sqrt();
    (u - mean) / sd > 2.326 // z for a one-sided 1 %
}

/// A two-proportion z-test that the canary fails more, at level `ALPHA`.
fn proportions_worse(canary: (usize, usize), production: (usize, usize)) -> bool {
    let (cf, cn) = (canary.0 as f64, canary.1 as f64);
    let (pf, pn) = (production.0 as f64, production.1 as f64);
    if cn < 20.0 || pn < 20.0 {
        return false;
    }
    let pooled = (cf + pf) / (cn + pn);
    let sd = (pooled * (1.0 - pooled) * (1.0 / cn + 1.0 / pn)).sqrt();
    sd > 0.0 && (cf / cn - pf / pn) / sd > 2.326
}

/// When each method first failed the canary: the judge, the fixed
/// thresholds, repeated Mann–Whitney, and a sequential test that knew the effect.
type FirstFails = (Option<usize>, Option<usize>, Option<usize>, Option<usize>);

fn run(seed: u64, scenario: Scenario, oracle: Option<KnownEffect>) -> FirstFails {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut failures, mut latency) = judges();
    let (mut judge_at, mut thresholds_at, mut mann_whitney_at, mut oracle_at) =
        (None, None, None, None);
    // A test told the effect: one constant bet, the best against the truth.
    // On failures (coins) it is Wald's SPRT, its likelihood ratio; on the
    // latency comparisons, Kelly's bet on their known law. Anytime-valid
    // like the judge, but it knows what the judge has to find out.
    let mut oracle_log_wealth = 0.0;
    let log_gain = |x: f64, null: f64, bet: f64| (1.0 + bet * (x - null)).ln();
    // The last minute of each side, one entry per second.
    let mut canary_window: std::collections::VecDeque<Vec<(f64, bool)>> = Default::default();
    let mut production_window: std::collections::VecDeque<Vec<(f64, bool)>> = Default::default();
    for second in 1..=ROLLOUT_SECS {
        let (canary_second, production_second) = traffic_second(&mut rng, scenario);
        let counts = |side: &[(f64, bool)]| (side.len() as u64, failed(side) as u64);
        failures.observe_second(counts(&canary_second), counts(&production_second), SHARE);
        if let Some(KnownEffect::Failures { null, truth }) = oracle {
            let bet = (truth - null) / (null * (1.0 - null));
            for _ in 0..failed(&canary_second) {
                oracle_log_wealth += log_gain(1.0, null, bet);
            }
            for _ in 0..failed(&production_second) {
                oracle_log_wealth += log_gain(0.0, null, bet);
            }
        }
        // The requests of a second come in random order, as the recorder
        // shuffles them, and are compared across the sides the same way.
        for comparison in
            compare_concurrent(&latencies(&canary_second), &latencies(&production_second))
        {
            latency.observe(comparison);
            if let Some(KnownEffect::Latency { null, law }) = oracle {
                oracle_log_wealth += log_gain(comparison.slower, null, law.best_bet);
            }
        }
        if oracle_at.is_none() && oracle.is_some() && oracle_log_wealth >= (1.0 / ALPHA).ln() {
            oracle_at = Some(second);
        }
        canary_window.push_back(canary_second);
        production_window.push_back(production_second);
        if canary_window.len() > 60 {
            canary_window.pop_front();
            production_window.pop_front();
        }
        if judge_at.is_none()
            && (failures.judged().conclusion == Conclusion::Fail
                || latency.judged().conclusion == Conclusion::Fail)
        {
            judge_at = Some(second);
        }
        if thresholds_at.is_none() {
            let window: Vec<(f64, bool)> = canary_window.iter().flatten().copied().collect();
            if thresholds_breached(&window) {
                thresholds_at = Some(second);
            }
        }
        // Kayenta-style: a fixed-sample comparison of the last minute, once a minute.
        if mann_whitney_at.is_none() && second % 60 == 0 {
            let canary: Vec<(f64, bool)> = canary_window.iter().flatten().copied().collect();
            let production: Vec<(f64, bool)> =
                production_window.iter().flatten().copied().collect();
            let counts = |side: &[(f64, bool)]| (failed(side), side.len());
            if mann_whitney_worse(&latencies(&canary), &latencies(&production))
                || proportions_worse(counts(&canary), counts(&production))
            {
                mann_whitney_at = Some(second);
            }
        }
        if judge_at.is_some()
            && thresholds_at.is_some()
            && mann_whitney_at.is_some()
            && (oracle_at.is_some() || oracle.is_none())
        {
            break;
        }
    }
    (judge_at, thresholds_at, mann_whitney_at, oracle_at)
}

/// `P(X ≥ k)` for every `k` in `0..=n`, `X ~ Binomial(n, p)`: the
/// probabilities by their recurrence in log space, then summed from the top.
fn binomial_tails(n: u64, p: f64) -> Vec<f64> {
    let mut ln_pmf = n as f64 * (1.0 - p).ln();
    let odds = (p / (1.0 - p)).ln();
    let mut pmfs = Vec::with_capacity(n as usize + 1);
    for k in 0..=n {
        pmfs.push(ln_pmf.exp());
        ln_pmf += ((n - k) as f64 / (k + 1) as f64).ln() + odds;
    }
    let mut tails = vec![0.0; pmfs.len()];
    let mut sum = 0.0;
    for k in (0..pmfs.len()).rev() {
        sum += pmfs[k];
        tails[k] = sum;
    }
    tails
}

/// The fewest observations an exact one-sided binomial test at level α
/// needs to reject `p0` with probability `power` when the truth is `p1`:
/// what a fixed-sample test that knew the effect in advance would need.
fn fixed_sample_size(p0: f64, p1: f64, power: f64) -> Option<u64> {
    // Searched one by one: the exact test's power saws up and down with n.
    (1..=20_000u64).find(|&n| {
        // The smallest count that rejects at level α, then its power.
        let critical = binomial_tails(n, p0).iter().position(|tail| *tail <= ALPHA);
        critical.is_some_and(|k| binomial_tails(n, p1)[k] >= power)
    })
}

/// The seconds a fixed-sample test that knew the effect would need (the
/// median of a sequential test's detection time cannot beat it by much):
/// on failures an exact binomial test; on the latency comparisons a z-test
/// that knows their true spread (its sample is large enough for the normal
/// approximation).
fn lower_bound_secs(scenario: Scenario, known: Option<KnownEffect>, power: f64) -> Option<f64> {
    match known? {
        KnownEffect::Failures { null, truth } => {
            let failures_per_sec = RATE as f64
                * (BASE_FAILURE * (1.0 - SHARE)
                    + (BASE_FAILURE * scenario.failure_ratio).min(1.0) * SHARE);
            fixed_sample_size(null, truth, power).map(|n| n as f64 / failures_per_sec)
        }
        KnownEffect::Latency { null, law } => {
            // One-sided z at level α = 0.01, and at power ½ and 0.8.
            let z_alpha = 2.326_348;
            let z_power = if power > 0.5 { 0.841_621 } else { 0.0 };
            let n = ((z_alpha + z_power) * law.variance.sqrt() / (law.mean - null)).powi(2);
            Some(n.ceil() / law.per_sec)
        }
    }
}

/// A fresh judge of both metrics at level `ALPHA`.
fn judges() -> (FailureRateJudge, LatencyJudge) {
    let settings = JudgeSettings {
        alpha: ALPHA,
        ..JudgeSettings::default()
    };
    (FailureRateJudge::new(settings), LatencyJudge::new(settings))
}

/// The shadow step's judge on one rollout: when it first failed the canary.
fn run_paired(seed: u64, scenario: Scenario) -> Option<usize> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let (mut failures, mut latency) = judges();
    // The request's own share of the log-latency's σ 0.5, and each side's.
    let (shared_sigma, own_sigma) = ((0.25_f64 - 0.04).sqrt(), 0.2);
    let canary_failure = (BASE_FAILURE * scenario.failure_ratio).min(1.0);
    for second in 1..=ROLLOUT_SECS {
        let (mut copies, mut canary_failed, mut production_failed) = (0, 0, 0);
        for _ in 0..RATE {
            if rng.f64() >= SHARE {
                continue;
            }
            copies += 1;
            let tail = if rng.f64() < 0.01 { 10.0 } else { 1.0 };
            let mut normal = || canary_server::sampling::standard_normal(|| rng.f64());
            let cost = 50.0 * (shared_sigma * normal()).exp() * tail;
            let production_ms = cost * (own_sigma * normal()).exp();
            let canary_ms = cost * (own_sigma * normal()).exp() * scenario.latency_factor;
            production_failed += u64::from(rng.f64() < BASE_FAILURE);
            canary_failed += u64::from(rng.f64() < canary_failure);
            latency.observe(canary_server::domain::shadow::paired(
                canary_ms,
                production_ms,
            ));
        }
        // Every copy is a request on both sides.
        failures.observe_second((copies, canary_failed), (copies, production_failed), 0.5);
        if failures.judged().conclusion == Conclusion::Fail
            || latency.judged().conclusion == Conclusion::Fail
        {
            return Some(second);
        }
    }
    None
}

fn percentile(values: &[usize], q: f64) -> Option<usize> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    Some(sorted[(((sorted.len() as f64) * q).ceil() as usize).clamp(1, sorted.len()) - 1])
}

fn describe(detections: &[Option<usize>]) -> String {
    let found: Vec<usize> = detections.iter().flatten().copied().collect();
    let share = found.len() as f64 / detections.len() as f64 * 100.0;
    match (percentile(&found, 0.5), percentile(&found, 0.95)) {
        (Some(median), Some(p95)) => {
            format!("{share:5.1} % failed; median {median} s, p95 {p95} s")
        }
        _ => format!("{share:5.1} % failed"),
    }
}

#[allow(clippy::print_stdout, reason = "the benchmark's report")]
fn main() {
    let runs: usize = std::env::var("RUNS")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or(1000);
    let scenarios = [
        Scenario {
            name: "A/A (identical canary)",
            failure_ratio: 1.0,
            latency_factor: 1.0,
        },
        Scenario {
            name: "canary fails every request",
            failure_ratio: 1.0 / BASE_FAILURE,
            latency_factor: 1.0,
        },
        Scenario {
            name: "10x failure rate",
            failure_ratio: 10.0,
            latency_factor: 1.0,
        },
        Scenario {
            name: "2x failure rate",
            failure_ratio: 2.0,
            latency_factor: 1.0,
        },
        Scenario {
            name: "+50 % p95 latency",
            failure_ratio: 1.0,
            latency_factor: 1.5,
        },
        Scenario {
            name: "+20 % p95 latency",
            failure_ratio: 1.0,
            latency_factor: 1.2,
        },
    ];
    println!(
        "Judge simulation: {RATE} req/s, {:.0} % canary, {:.1} % baseline failures, {} min rollouts, checked every second, alpha {ALPHA}",
        SHARE * 100.0,
        BASE_FAILURE * 100.0,
        ROLLOUT_SECS / 60
    );
    println!(
        "| scenario | runs | judge (anytime-valid) | fixed thresholds | repeated Mann-Whitney (per minute) | fixed-sample bound, power 1/2 | judge median / bound | fixed-sample size, power 0.8 | judge median / size | told the effect | its median / bound |"
    );
    println!("|---|---:|---|---|---|---:|---:|---:|---:|---|---:|");
    let mut live_judge = Vec::new();
    for (index, scenario) in scenarios.iter().enumerate() {
        let count = if index == 0 { runs } else { (runs / 5).max(20) };
        let known = known_effect(*scenario);
        let mut detections = Detections::default();
        for run_index in 0..count {
            let (judge, thresholds, mann_whitney, oracle) =
                run((index * 1_000_003 + run_index) as u64, *scenario, known);
            detections.judge.push(judge);
            detections.thresholds.push(thresholds);
            detections.mann_whitney.push(mann_whitney);
            detections.oracle.push(oracle);
        }
        let median = |detections: &[Option<usize>]| {
            let found: Vec<usize> = detections.iter().flatten().copied().collect();
            percentile(&found, 0.5)
        };
        let compare = |median: Option<usize>, power: f64| {
            let secs = lower_bound_secs(*scenario, known, power);
            let shown = secs.map_or_else(|| "—".to_owned(), |secs| format!("{secs:.1} s"));
            let ratio = match (median, secs) {
                (Some(median), Some(secs)) => format!("{:.1}×", median as f64 / secs),
                _ => "—".to_owned(),
            };
            (shown, ratio)
        };
        let judge_median = median(&detections.judge);
        live_judge.push(describe(&detections.judge));
        let (bound, ratio) = compare(judge_median, 0.5);
        let (planned, planned_ratio) = compare(judge_median, 0.8);
        let (oracle, oracle_ratio) = if known.is_some() {
            (
                describe(&detections.oracle),
                compare(median(&detections.oracle), 0.5).1,
            )
        } else {
            ("—".to_owned(), "—".to_owned())
        };
        println!(
            "| {} | {count} | {} | {} | {} | {bound} | {ratio} | {planned} | {planned_ratio} | {oracle} | {oracle_ratio} |",
            scenario.name,
            describe(&detections.judge),
            describe(&detections.thresholds),
            describe(&detections.mann_whitney),
        );
    }
    println!();
    println!(
        "Shadow step: {:.0} % of {RATE} req/s copied to the canary, each copy paired with production's answer to the same request, alpha {ALPHA}",
        SHARE * 100.0
    );
    println!(
        "| scenario | runs | shadow judge (paired copies) | live-split judge ({:.0} % canary, from the table above) |",
        SHARE * 100.0
    );
    println!("|---|---:|---|---|");
    for (index, scenario) in scenarios.iter().enumerate() {
        let count = if index == 0 { runs } else { (runs / 5).max(20) };
        let detections: Vec<Option<usize>> = (0..count)
            .map(|run_index| run_paired((index * 1_000_003 + run_index) as u64 ^ 0x5eed, *scenario))
            .collect();
        println!(
            "| {} | {count} | {} | {} |",
            scenario.name,
            describe(&detections),
            live_judge[index]
        );
    }
}
