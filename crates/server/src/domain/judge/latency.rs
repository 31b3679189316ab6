//! The judge's latency evidence: each request of the quieter side against
//! up to [`PARTNERS`] concurrent requests of the other side
//! ([`compare_concurrent`]), and the two-sided test over those comparisons
//! ([`LatencyJudge`]). Why this comparison: the parent module's notes.

use super::{Conclusion, JudgeSettings, JudgedMetric, TwoSidedTest};

/// How many requests of the busier side each request of the quieter side
/// is compared with at most. The spread of an average of `k` comparisons
/// falls from ¼ (one coin) towards 1/12 (the quieter request's rank among
/// all of the other side's) as `1/12 + 1/(6k)`: 20 gets within 10 % of the
/// floor, at bounded cost.
pub const PARTNERS: usize = 20;

/// Comparisons (requests of the quieter side) judged per second at most,
/// so a busy canary costs bounded work.
pub const COMPARED_PER_SECOND: usize = 500;

/// One request of the quieter side against its own partners on the busier
/// side, all of the same second.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// Of the comparisons, the share in which the canary was the slower
    /// (a tie counts half).
    pub slower: f64,
    /// How many comparisons (the partners).
    pub count: u32,
}

/// Each request of the quieter side of one second against [`PARTNERS`] (or
/// fewer, if there are not enough) requests of the busier side, no request
/// used twice, at most [`COMPARED_PER_SECOND`] of them.
///
/// The latencies must come in random order (the recorder shuffles them):
/// then, when the sides are alike, every comparison's mean is ½ whatever
/// came before, which is all the judge's guarantee asks of them.
pub fn compare_concurrent(canary_ms: &[f64], production_ms: &[f64]) -> Vec<Comparison> {
    let canary_is_quieter = canary_ms.len() <= production_ms.len();
    let (quieter, busier) = if canary_is_quieter {
        (canary_ms, production_ms)
    } else {
        (production_ms, canary_ms)
    };
    let compared = quieter.len().min(COMPARED_PER_SECOND);
    if compared == 0 {
        return Vec::new();
    }
    let partners = (busier.len() / compared).min(PARTNERS);
    quieter[..compared]
        .iter()
        .zip(busier.chunks_exact(partners))
        .map(|(&own, others)| {
            let slower_than: f64 = others
                .iter()
                .map(|&other| match own.total_cmp(&other) {
                    std::cmp::Ordering::Greater => 1.0,
                    std::cmp::Ordering::Equal => 0.5,
                    std::cmp::Ordering::Less => 0.0,
                })
                .sum();
            let own_slower = slower_than / partners as f64;
            // A tie counts half either way, so the other side's share is the rest.
            Comparison {
                slower: if canary_is_quieter {
                    own_slower
                } else {
                    1.0 - own_slower
                },
                count: partners as u32,
            }
        })
        .collect()
}

/// Latency by stochastic order: requests of one side against concurrent
/// requests of the other.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LatencyJudge {
    test: TwoSidedTest,
    /// Requests of the quieter side compared (the test's observations).
    compared: u64,
    /// Canary-against-production comparisons within them.
    comparisons: u64,
    /// Of those, how many found the canary slower (ties count half).
    slower: f64,
}

impl LatencyJudge {
    /// A judge with nothing observed.
    pub fn new(settings: JudgeSettings) -> LatencyJudge {
        let p0 = 0.5 + settings.latency_tolerance;
        let theta0 = p0 / (1.0 - p0);
        LatencyJudge {
            test: TwoSidedTest::new(theta0, settings),
            compared: 0,
            comparisons: 0,
            slower: 0.0,
        }
    }

    /// One request against its partners on the other side.
    pub fn observe(&mut self, comparison: Comparison) {
        if comparison.count == 0 {
            return;
        }
        self.compared += 1;
        self.comparisons += u64::from(comparison.count);
        self.slower += comparison.slower * f64::from(comparison.count);
        self.test.observe(0.5, comparison.slower);
    }

    /// The verdict so far.
    pub fn judged(&self) -> JudgedMetric {
        let conclusion = self.test.conclusion();
        let estimate = (self.comparisons > 0).then(|| self.slower / self.comparisons as f64);
        let limit = 50.0 + self.test.settings.latency_tolerance * 100.0;
        let share = estimate.map_or_else(
            || "nothing compared yet".to_owned(),
            |share| {
                format!(
                    "slower in {:.1} % of {} comparisons",
                    share * 100.0,
                    canary_shared::words::thousands(self.comparisons)
                )
            },
        );
        let words = match conclusion {
            Conclusion::Fail => format!(
                "latency: the canary is slower than production more than {limit:.0} % of the time ({share}; {})",
                self.test.fail_words()
            ),
            Conclusion::Pass => format!(
                "latency: the canary is slower at most {limit:.0} % of the time ({share}; {})",
                self.test.pass_words()
            ),
            Conclusion::Inconclusive => format!(
                "latency: not decided yet ({share}; {})",
                self.test.undecided_words()
            ),
        };
        self.test.judged(conclusion, self.compared, estimate, words)
    }
}
