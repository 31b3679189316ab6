//! The statistical judge: anytime-valid evidence that the canary is worse
//! than production by more than a tolerance, or that it is not.
//!
//! # Why this test
//! Checking a fixed-sample test (Kayenta's Mann–Whitney) every second makes
//! false alarms near certain over a long rollout. An *e-process* can be
//! checked after every request: by Ville's inequality, the chance that it
//! ever reaches `1/α` when the null holds is at most `α` (Lindon et al.,
//! KDD 2022; Lindon & Malek, NeurIPS 2022; Ramdas et al., "Game-theoretic
//! statistics and safe anytime-valid inference", 2023).
//!
//! Our proxy assigns each request to a side at random with the current
//! share `s`, so production in the same seconds is a concurrent control:
//!
//! - **Failure rate.** Given that a request failed, it came from the canary
//!   with probability `s·θ / (s·θ + 1 − s)`, where `θ` is the canary's
//!   failure rate divided by production's (Lindon & Malek's multinomial
//!   reduction of count data). Each failure is one Bernoulli observation
//!   whose base probability is the share *at that moment*, so changing the
//!   share mid-rollout creates no false evidence.
//! - **Latency.** Each request of the quieter side (the canary, below a
//!   50 % share) is compared with up to [`PARTNERS`] different concurrent
//!   requests of the other side, no request in two comparisons, so the
//!   comparisons are independent. The share of them in which the canary
//!   was slower has mean ½ when both sides are alike; its odds measure
//!   stochastic order (a probability index, as Mann–Whitney's), so a
//!   slower tail or a slower whole moves it. At a 5 % share each canary
//!   request has 19 partners, and their average varies about 2.7× less
//!   than one coin, so the evidence grows that much faster where a rollout
//!   starts; at 50 % each request has one partner, a plain pair.
//!
//! Both reduce to one test: observations in `0..=1` with a known base
//! probability `b` and mean `b·θ / (b·θ + 1 − b)`, where `θ` is an odds
//! multiplier (failures are coins; latency comparisons are averages of
//! coins, `b = ½`). "Worse than tolerance" is `θ > θ₀`; its e-process is a
//! mixture, over a weighted grid of alternatives `θ > θ₀`, of bets against
//! `θ₀` that are the likelihood ratio on a coin ([`OddsTest::observe_fraction`]).
//! Each bet is a supermartingale under every `θ ≤ θ₀` (its expectation falls
//! with the mean), so the mixture is too and the guarantee holds for the
//! whole composite null. "Within tolerance" is the mirror test with
//! alternatives `θ < θ₀`.
//!
//! A canary fails when either metric's "worse" evidence reaches
//! `JUDGED_METRICS / α` (the metrics share `α`), and passes when both
//! metrics' "within" evidence reaches `1/α`.
//!
//! Why not confidence sequences: they give the same guarantee as an
//! interval, but the e-value reads directly as "how much evidence so far",
//! which is what the console charts; and why not a plug-in (predictable)
//! bet: against one known effect it is no faster than a good mixture, and
//! the mixture's weights say plainly which effects it is tuned for.

mod latency;

pub use latency::{COMPARED_PER_SECOND, Comparison, LatencyJudge, PARTNERS, compare_concurrent};

/// How the judge weighs evidence.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct JudgeSettings {
    /// The false-alarm rate promised for a canary within tolerance (0.01).
    pub alpha: f64,
    /// How much worse the canary's failure rate may be: 0.2 allows 1.2× production's.
    pub failure_tolerance: f64,
    /// How much more often the canary may be the slower of two concurrent
    /// requests: 0.05 allows it to be slower 55 % of the time.
    pub latency_tolerance: f64,
    /// Observations needed before a pass (a fail needs only the evidence).
    pub min_samples: u64,
}

impl Default for JudgeSettings {
    fn default() -> Self {
        JudgeSettings {
            alpha: 0.01,
            failure_tolerance: 0.2,
            latency_tolerance: 0.05,
            min_samples: 100,
        }
    }
}

/// The odds multipliers the mixture puts weight on, as factors of `θ₀`
/// (and their inverses for the mirror test), with their prior weights.
///
/// A weight `w` costs `ln(1/w)` of evidence, and evidence arrives at a rate
/// that grows with the effect: a canary failing everything gathers dozens
/// of nats a second, one 1.5× as bad a hundredth of a nat per failure.
/// So the weight goes where it buys the most time, to the moderate effects
/// (1.2–5×), and the extreme ones keep a sliver that still fails a broken
/// canary within its first second of traffic. Effects barely beyond the
/// tolerance (1.05×) would take hours whatever their weight.
pub(crate) const ALTERNATIVES: [(f64, f64); 10] = [
    (1.1, 0.04),
    (1.25, 0.12),
    (1.5, 0.15),
    (1.8, 0.16),
    (2.2, 0.16),
    (3.0, 0.12),
    (5.0, 0.09),
    (10.0, 0.08),
    (50.0, 0.04),
    (500.0, 0.04),
];

/// How many metrics the judge fails on: the false-alarm rate `α` is split
/// evenly between them (a union bound), so a canary within tolerance on
/// both is wrongly failed at most `α` of the time, not `2α`. A pass needs
/// every metric to pass, so each pass test keeps the whole `α`.
pub const JUDGED_METRICS: f64 = 2.0;

/// A one-sided mixture test of an odds multiplier against `θ₀`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OddsTest {
    theta0: f64,
    /// Each alternative's `θ`, the log of its weight, and the log of its
    /// likelihood ratio so far.
    alternatives: Vec<(f64, f64, f64)>,
    observations: u64,
}

/// A coin as an observation in `0..=1`.
fn coin(success: bool) -> f64 {
    if success { 1.0 } else { 0.0 }
}

/// Success probability of a Bernoulli with base probability `base` and odds multiplier `theta`.
fn tilted(base: f64, theta: f64) -> f64 {
    let base = base.clamp(1e-12, 1.0 - 1e-12);
    base * theta / (base * theta + 1.0 - base)
}

impl OddsTest {
    /// The test of `θ > θ₀` (`worse`) or of `θ < θ₀` (not `worse`).
    pub fn new(theta0: f64, worse: bool) -> OddsTest {
        let alternatives = ALTERNATIVES
            .iter()
            .map(|&(factor, weight)| {
                let theta = if worse {
                    theta0 * factor
                } else {
                    theta0 / factor
                };
                (theta, weight.ln(), 0.0)
            })
            .collect();
        OddsTest {
            theta0,
            alternatives,
            observations: 0,
        }
    }

    /// One observation: `success` with base probability `base`.
    pub fn observe(&mut self, base: f64, success: bool) {
        self.observe_fraction(base, coin(success));
    }

    /// One observation `x` in `0..=1` whose mean is the tilted probability:
    /// a coin is 0 or 1, an average of coins anything between.
    ///
    /// Each alternative bets `1 + λ·(x − p₀)` with `λ = (p₁ − p₀) / (p₀(1 − p₀))`.
    /// On a coin that is exactly its likelihood ratio (`p₁/p₀` or
    /// `(1 − p₁)/(1 − p₀)`); on any `x` in `0..=1` it stays non-negative and
    /// its expectation is at most 1 whenever the mean is on the null's side
    /// of `p₀` (Waudby-Smith and Ramdas, "Estimating means of bounded random
    /// variables by betting", 2023). An average varies less than a coin, so
    /// the same bet grows faster on it when the canary is worse.
    pub fn observe_fraction(&mut self, base: f64, x: f64) {
        let x = x.clamp(0.0, 1.0);
        let null = tilted(base, self.theta0);
        for (theta, _, log_ratio) in &mut self.alternatives {
            let alternative = tilted(base, *theta);
            let bet = (alternative - null) / (null * (1.0 - null));
            *log_ratio += (1.0 + bet * (x - null)).ln();
        }
        self.observations += 1;
    }

    /// The e-value: the weighted mixture of the likelihood ratios.
    pub fn e_value(&self) -> f64 {
        // Summed in log space around the largest term, so it cannot overflow.
        let largest = self
            .alternatives
            .iter()
            .map(|(_, log_weight, log_ratio)| log_weight + log_ratio)
            .fold(f64::NEG_INFINITY, f64::max);
        let sum: f64 = self
            .alternatives
            .iter()
            .map(|(_, log_weight, log_ratio)| (log_weight + log_ratio - largest).exp())
            .sum();
        (largest + sum.ln()).exp()
    }

    /// How many observations it has seen.
    pub fn observations(&self) -> u64 {
        self.observations
    }
}

/// What the judge concludes about one metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conclusion {
    /// Evidence of a regression beyond tolerance.
    Fail,
    /// Enough evidence that any regression is within tolerance.
    Pass,
    /// Not enough evidence either way yet.
    Inconclusive,
}

/// A metric's verdict with the numbers behind it.
#[derive(Clone, Debug, PartialEq)]
pub struct JudgedMetric {
    /// Fail, pass or inconclusive.
    pub conclusion: Conclusion,
    /// The evidence of "worse than tolerance" (fail at `1/α`).
    pub worse_evidence: f64,
    /// The evidence of "within tolerance" (pass at `1/α`).
    pub within_evidence: f64,
    /// Observations so far (failures, or requests compared).
    pub samples: u64,
    /// The effect as estimated so far (a ratio of failure rates, or the
    /// share of comparisons in which the canary was slower).
    pub estimate: Option<f64>,
    /// All of it in words.
    pub words: String,
    /// The evidence at which it fails.
    pub fail_at: f64,
    /// The evidence at which it passes.
    pub pass_at: f64,
}

/// An e-value for people: `3.2`, `1,250`, or `over 1,000,000` (beyond
/// that the exact figure says nothing more).
fn evidence(value: f64) -> String {
    if value < 10.0 {
        format!("{value:.1}")
    } else if value < 1e6 {
        canary_shared::words::thousands(value.round() as u64)
    } else {
        "over 1,000,000".to_owned()
    }
}

/// The evidence at which "worse" is concluded (its share of `α`).
fn fail_threshold(settings: JudgeSettings) -> f64 {
    JUDGED_METRICS / settings.alpha
}

/// The evidence at which "within tolerance" is concluded.
fn pass_threshold(settings: JudgeSettings) -> f64 {
    1.0 / settings.alpha
}

/// Both one-sided tests of one metric against the same `θ₀`: "worse than
/// tolerance" and "within tolerance", fed the same observations.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct TwoSidedTest {
    worse: OddsTest,
    within: OddsTest,
    settings: JudgeSettings,
    /// The "within" evidence when it first crossed its threshold: a pass is
    /// the first crossing and stays one (the guarantee is about that
    /// crossing), so a step that advanced on it is not held again when the
    /// evidence wanders back below. A later fail still wins.
    #[serde(default)]
    passed_with: Option<f64>,
}

impl TwoSidedTest {
    fn new(theta0: f64, settings: JudgeSettings) -> TwoSidedTest {
        TwoSidedTest {
            worse: OddsTest::new(theta0, true),
            within: OddsTest::new(theta0, false),
            settings,
            passed_with: None,
        }
    }

    /// One observation in `0..=1` ([`OddsTest::observe_fraction`]).
    fn observe(&mut self, base: f64, x: f64) {
        self.worse.observe_fraction(base, x);
        self.within.observe_fraction(base, x);
        if self.passed_with.is_none()
            && self.within.e_value() >= pass_threshold(self.settings)
            && self.within.observations() >= self.settings.min_samples
        {
            self.passed_with = Some(self.within.e_value());
        }
    }

    fn conclusion(&self) -> Conclusion {
        if self.worse.e_value() >= fail_threshold(self.settings) {
            Conclusion::Fail
        } else if self.passed_with.is_some() {
            Conclusion::Pass
        } else {
            Conclusion::Inconclusive
        }
    }

    /// `evidence 1,250 ≥ 200`, for a fail.
    fn fail_words(&self) -> String {
        format!(
            "evidence {} ≥ {:.0}",
            evidence(self.worse.e_value()),
            fail_threshold(self.settings)
        )
    }

    /// `evidence 150 ≥ 100`, for a pass: the evidence it passed with.
    fn pass_words(&self) -> String {
        format!(
            "evidence {} ≥ {:.0}",
            evidence(self.passed_with.unwrap_or_else(|| self.within.e_value())),
            pass_threshold(self.settings)
        )
    }

    /// Both evidences against what each needs, while undecided.
    fn undecided_words(&self) -> String {
        format!(
            "evidence of worse {} of {:.0} needed, of within {} of {:.0}",
            evidence(self.worse.e_value()),
            fail_threshold(self.settings),
            evidence(self.within.e_value()),
            pass_threshold(self.settings)
        )
    }

    /// The verdict with its numbers.
    fn judged(
        &self,
        conclusion: Conclusion,
        samples: u64,
        estimate: Option<f64>,
        words: String,
    ) -> JudgedMetric {
        JudgedMetric {
            conclusion,
            worse_evidence: self.worse.e_value(),
            within_evidence: self.within.e_value(),
            samples,
            estimate,
            words,
            fail_at: fail_threshold(self.settings),
            pass_at: pass_threshold(self.settings),
        }
    }
}

/// Failure rates of both sides, judged failure by failure.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FailureRateJudge {
    test: TwoSidedTest,
    requests: [u64; 2],
    failures: [u64; 2],
}

impl FailureRateJudge {
    /// A judge with nothing observed.
    pub fn new(settings: JudgeSettings) -> FailureRateJudge {
        FailureRateJudge {
            test: TwoSidedTest::new(1.0 + settings.failure_tolerance, settings),
            requests: [0; 2],
            failures: [0; 2],
        }
    }

    /// One finished request: on the canary or not, failed or not, sent while
    /// the canary's share was `share` (0–1).
    pub fn observe(&mut self, canary: bool, failed: bool, share: f64) {
        self.requests[usize::from(canary)] += 1;
        if !(failed && share > 0.0 && share < 1.0) {
            // Only failures carry evidence about the ratio of failure rates,
            // and only while both sides get traffic.
            return;
        }
        self.failures[usize::from(canary)] += 1;
        self.test.observe(share, coin(canary));
    }

    /// One second of traffic at `share`: requests and failures per side.
    /// Within a second the order of failures does not matter: the evidence
    /// is a product over them.
    pub fn observe_second(&mut self, canary: (u64, u64), production: (u64, u64), share: f64) {
        self.observe_requests(canary.0, production.0);
        self.observe_failures(canary.1, production.1, share);
    }

    /// Finished requests per side, failed or not (their failures are
    /// observed apart, as they happen: [`FailureRateJudge::observe_failures`]).
    pub fn observe_requests(&mut self, canary: u64, production: u64) {
        self.requests[1] += canary;
        self.requests[0] += production;
    }

    /// Failures per side since the last call, while the canary's share was
    /// `share`. Failures are the only evidence about the ratio of failure
    /// rates, so the evidence can be brought up to date after every one:
    /// an e-process may be looked at after every observation, and a batch
    /// gives the same product as its failures one by one.
    pub fn observe_failures(&mut self, canary: u64, production: u64, share: f64) {
        if !(share > 0.0 && share < 1.0) {
            // Only while both sides get traffic.
            return;
        }
        self.failures[1] += canary;
        self.failures[0] += production;
        for _ in 0..canary {
            self.test.observe(share, coin(true));
        }
        for _ in 0..production {
            self.test.observe(share, coin(false));
        }
    }

    /// The canary's failure rate over production's, from the counts so far.
    pub fn estimate(&self) -> Option<f64> {
        let rate = |side: usize| {
            (self.requests[side] > 0)
                .then(|| self.failures[side] as f64 / self.requests[side] as f64)
        };
        match (rate(1), rate(0)) {
            (Some(canary), Some(production)) if production > 0.0 => Some(canary / production),
            _ => None,
        }
    }

    /// The verdict so far.
    ///
    /// Failures are the only evidence about their ratio, so a rollout in
    /// which neither side fails could never pass on it: after `min_samples`
    /// canary requests without a single failure on either side, the failure
    /// rate passes on that count alone (there is no failure to be worse at).
    pub fn judged(&self) -> JudgedMetric {
        let settings = self.test.settings;
        let mut conclusion = self.test.conclusion();
        if conclusion == Conclusion::Inconclusive
            && self.failures == [0, 0]
            && self.requests[1] >= settings.min_samples
        {
            conclusion = Conclusion::Pass;
        }
        let estimate = self.estimate();
        let tolerance = 1.0 + settings.failure_tolerance;
        let failures = self.failures[0] + self.failures[1];
        let counted = canary_shared::words::thousands(failures);
        let ratio = estimate.map_or_else(
            || "not estimable yet".to_owned(),
            |ratio| format!("{ratio:.2}× production's"),
        );
        let words = match conclusion {
            Conclusion::Fail => format!(
                "failure rate: the canary fails more than {tolerance:.2}× as often as production (estimate {ratio}; {}, from {counted} failures)",
                self.test.fail_words()
            ),
            Conclusion::Pass if failures == 0 => format!(
                "failure rate: no failure on either side in {} canary requests",
                canary_shared::words::thousands(self.requests[1])
            ),
            Conclusion::Pass => format!(
                "failure rate: within {tolerance:.2}× production's (estimate {ratio}; {}, from {counted} failures)",
                self.test.pass_words()
            ),
            Conclusion::Inconclusive => format!(
                "failure rate: not decided yet (estimate {ratio}; {}; {counted} failures)",
                self.test.undecided_words()
            ),
        };
        self.test.judged(conclusion, failures, estimate, words)
    }
}

/// One second as the statistical judge sees it; the recorder makes one
/// each second from the requests it recorded.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JudgeSecond {
    /// Canary requests finished.
    pub canary_requests: u64,
    /// Production requests finished.
    pub production_requests: u64,
    /// Failed canary requests (5xx or transport).
    pub canary_failures: u64,
    /// Failed production requests.
    pub production_failures: u64,
    /// The second's latencies compared across the sides, requests taken
    /// in random order ([`compare_concurrent`]).
    pub comparisons: Vec<Comparison>,
}

impl JudgedMetric {
    /// The wire form, under `metric`'s name, with its evidence over time.
    pub fn view(&self, metric: &str, history: &EvidenceHistory) -> canary_shared::JudgedMetric {
        canary_shared::JudgedMetric {
            metric: metric.to_owned(),
            conclusion: match self.conclusion {
                Conclusion::Fail => canary_shared::JudgeConclusion::Fail,
                Conclusion::Pass => canary_shared::JudgeConclusion::Pass,
                Conclusion::Inconclusive => canary_shared::JudgeConclusion::Inconclusive,
            },
            words: self.words.clone(),
            worse_evidence: self.worse_evidence,
            within_evidence: self.within_evidence,
            samples: self.samples,
            fail_at: self.fail_at,
            pass_at: self.pass_at,
            history: history.points().to_vec(),
        }
    }
}

/// The most points an [`EvidenceHistory`] keeps.
pub const EVIDENCE_POINTS: usize = 240;

/// A metric's evidence over a rollout, for the console's chart: one point
/// per `spacing` seconds, at most [`EVIDENCE_POINTS`] of them. When full,
/// every other point goes and the spacing doubles, so a rollout of any
/// length fits in a few kilobytes of the stream and still shows its whole
/// course, the first seconds included.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvidenceHistory {
    spacing: u32,
    seconds: u32,
    points: Vec<canary_shared::EvidencePoint>,
}

impl Default for EvidenceHistory {
    fn default() -> Self {
        EvidenceHistory {
            spacing: 1,
            seconds: 0,
            points: Vec::new(),
        }
    }
}

impl EvidenceHistory {
    /// One more second judged, ending with this evidence.
    pub fn record(&mut self, judged: &JudgedMetric) {
        self.seconds = self.seconds.saturating_add(1);
        if !self.seconds.is_multiple_of(self.spacing) {
            return;
        }
        self.points.push(canary_shared::EvidencePoint {
            secs: self.seconds,
            worse: judged.worse_evidence,
            within: judged.within_evidence,
        });
        if self.points.len() > EVIDENCE_POINTS {
            self.spacing *= 2;
            let spacing = self.spacing;
            self.points
                .retain(|point| point.secs.is_multiple_of(spacing));
        }
    }

    /// The points kept, oldest first.
    pub fn points(&self) -> &[canary_shared::EvidencePoint] {
        &self.points
    }
}

/// Both judged metrics of one rollout, with their evidence over time.
///
/// Saved as it goes, so a restart continues a rollout's evidence instead of
/// starting afresh. Resuming from a save a few seconds old is still valid:
/// the seconds in between are simply not counted, and leaving out
/// observations (for a reason that does not depend on them) keeps the
/// e-process a supermartingale.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RolloutJudge {
    failures: FailureRateJudge,
    latency: LatencyJudge,
    /// Each metric's evidence over the rollout, for the console's chart.
    history: [EvidenceHistory; 2],
}

impl RolloutJudge {
    /// A judge with nothing observed.
    pub fn new(settings: JudgeSettings) -> RolloutJudge {
        RolloutJudge {
            failures: FailureRateJudge::new(settings),
            latency: LatencyJudge::new(settings),
            history: Default::default(),
        }
    }

    /// The settings it judges by (a saved judge is resumed only under the same).
    pub fn settings(&self) -> JudgeSettings {
        self.failures.test.settings
    }

    /// One second of traffic at `share`: requests and failures per side
    /// (`(requests, failures)`), and its latency comparisons
    /// ([`compare_concurrent`]).
    pub fn observe_second(
        &mut self,
        canary: (u64, u64),
        production: (u64, u64),
        share: f64,
        comparisons: &[Comparison],
    ) {
        self.observe_failures(canary.1, production.1, share);
        self.observe_traffic(canary.0, production.0, comparisons);
    }

    /// Failures per side as they happen, at `share` (the controller's fast
    /// path); the requests they belong to come with their second.
    pub fn observe_failures(&mut self, canary: u64, production: u64, share: f64) {
        self.failures.observe_failures(canary, production, share);
    }

    /// A finished second's requests per side and its latency comparisons;
    /// its failures were observed as they happened.
    pub fn observe_traffic(
        &mut self,
        canary_requests: u64,
        production_requests: u64,
        comparisons: &[Comparison],
    ) {
        self.failures
            .observe_requests(canary_requests, production_requests);
        for comparison in comparisons {
            self.latency.observe(*comparison);
        }
        self.history[0].record(&self.failures.judged());
        self.history[1].record(&self.latency.judged());
    }

    /// Seconds judged so far.
    pub fn seconds(&self) -> u32 {
        self.history[0].seconds
    }

    /// Both metrics in their wire form.
    pub fn views(&self) -> Vec<canary_shared::JudgedMetric> {
        vec![
            self.failures
                .judged()
                .view("failure_rate", &self.history[0]),
            self.latency.judged().view("latency", &self.history[1]),
        ]
    }

    /// A fail if either metric fails (with its words); a pass only when both
    /// pass; otherwise the first undecided metric's words.
    pub fn overall(&self) -> (Conclusion, String) {
        let (failures, latency) = (self.failures.judged(), self.latency.judged());
        for judged in [&failures, &latency] {
            if judged.conclusion == Conclusion::Fail {
                return (Conclusion::Fail, judged.words.clone());
            }
        }
        if failures.conclusion == Conclusion::Pass && latency.conclusion == Conclusion::Pass {
            return (Conclusion::Pass, String::new());
        }
        let undecided = [&failures, &latency]
            .into_iter()
            .find(|judged| judged.conclusion == Conclusion::Inconclusive)
            .map(|judged| judged.words.clone())
            .unwrap_or_default();
        (Conclusion::Inconclusive, undecided)
    }
}

#[cfg(test)]
mod tests;
