//! The judge's guarantees on small simulations with fixed seeds, and its
//! statistics against values computed independently.

use crate::domain::judge::{
    ALTERNATIVES, COMPARED_PER_SECOND, Comparison, Conclusion, EVIDENCE_POINTS, EvidenceHistory,
    FailureRateJudge, JudgeSettings, LatencyJudge, OddsTest, PARTNERS, RolloutJudge,
    compare_concurrent,
};

/// One canary request against one production request.
fn pair(judge: &mut LatencyJudge, canary_ms: f64, production_ms: f64) {
    for comparison in compare_concurrent(&[canary_ms], &[production_ms]) {
        judge.observe(comparison);
    }
}

#[test]
fn the_mixture_weights_are_a_probability_distribution() {
    // Otherwise the mixture is not an e-process and the promise is void.
    let total: f64 = ALTERNATIVES.iter().map(|(_, weight)| weight).sum();
    assert!((total - 1.0).abs() < 1e-12, "weights sum to {total}");
    assert!(
        ALTERNATIVES
            .iter()
            .all(|&(factor, weight)| factor > 1.0 && weight > 0.0)
    );
}

#[test]
fn the_e_value_is_the_weighted_mean_likelihood_ratio_over_the_alternatives() {
    // Three observations at base ½ against θ₀ = 1: success, success, failure.
    let mut test = OddsTest::new(1.0, true);
    for success in [true, true, false] {
        test.observe(0.5, success);
    }
    // By hand: under θ the success probability is θ / (θ + 1).
    let expected: f64 = ALTERNATIVES
        .iter()
        .map(|(theta, weight)| {
            let p = theta / (theta + 1.0);
            weight * (p / 0.5) * (p / 0.5) * ((1.0 - p) / 0.5)
        })
        .sum();
    assert!(
        (test.e_value() - expected).abs() < 1e-12,
        "{} vs {expected}",
        test.e_value()
    );
    assert_eq!(test.observations(), 3);
    // With a base other than ½ and θ₀ = 1.2: the null success probability is
    // 0.05·1.2 / (0.05·1.2 + 0.95) for one failure seen on the canary.
    let mut shifted = OddsTest::new(1.2, true);
    shifted.observe(0.05, true);
    let null = 0.06 / (0.06 + 0.95);
    let expected: f64 = ALTERNATIVES
        .iter()
        .map(|(factor, weight)| {
            let theta = 1.2 * factor;
            weight * (0.05 * theta / (0.05 * theta + 0.95)) / null
        })
        .sum();
    assert!((shifted.e_value() - expected).abs() < 1e-9);
}

/// Runs `runs` rollouts of `failures` failures each; a failure lands on the
/// canary with the probability a canary `ratio` times as failure-prone gets
/// at share `share(i)`. Returns how many rollouts ever concluded `fail`,
/// and when (in failures) each did.
fn simulate_failures(
    seed: u64,
    runs: usize,
    failures: usize,
    ratio: f64,
    share: impl Fn(usize) -> f64,
    settings: JudgeSettings,
) -> Vec<Option<usize>> {
    let mut rng = fastrand::Rng::with_seed(seed);
    (0..runs)
        .map(|_| {
            let mut judge = FailureRateJudge::new(settings);
            for index in 0..failures {
                let share = share(index);
                let canary_probability = share * ratio / (share * ratio + 1.0 - share);
                judge.observe(rng.f64() < canary_probability, true, share);
                if judge.judged().conclusion == Conclusion::Fail {
                    return Some(index + 1);
                }
            }
            None
        })
        .collect()
}

fn settings(alpha: f64) -> JudgeSettings {
    JudgeSettings {
        alpha,
        ..JudgeSettings::default()
    }
}

#[test]
fn identical_canaries_checked_after_every_failure_are_wrongly_failed_at_most_alpha_of_the_time() {
    let alpha = 0.05;
    for (seed, ratio) in [(1, 1.0), (2, 1.2)] {
        // 1.2 is the tolerance itself: the hardest case the promise covers.
        let outcomes = simulate_failures(seed, 400, 600, ratio, |_| 0.05, settings(alpha));
        let failed = outcomes.iter().filter(|outcome| outcome.is_some()).count();
        assert!(
            (failed as f64) / 400.0 <= alpha,
            "ratio {ratio}: {failed} of 400 wrongly failed"
        );
    }
}

#[test]
fn changing_the_share_mid_rollout_creates_no_false_evidence() {
    let alpha = 0.05;
    // 5 % for the first 300 failures, then 50 %: a pooled proportion would
    // see the canary's failures jump; the per-failure base does not.
    let outcomes = simulate_failures(
        3,
        400,
        600,
        1.0,
        |index| if index < 300 { 0.05 } else { 0.5 },
        settings(alpha),
    );
    let failed = outcomes.iter().filter(|outcome| outcome.is_some()).count();
    assert!(
        (failed as f64) / 400.0 <= alpha,
        "{failed} of 400 wrongly failed"
    );
}

#[test]
fn a_clearly_worse_canary_is_failed_within_few_failures() {
    // Ten times production's failure rate at a 5 % share.
    let outcomes = simulate_failures(4, 200, 2_000, 10.0, |_| 0.05, settings(0.01));
    let mut times: Vec<usize> = outcomes
        .iter()
        .map(|outcome| outcome.expect("detected"))
        .collect();
    times.sort_unstable();
    assert!(
        times[times.len() / 2] <= 60,
        "median {} failures",
        times[times.len() / 2]
    );
    // A canary failing everything: its first failures are already evidence.
    let mut judge = FailureRateJudge::new(settings(0.01));
    let mut rng = fastrand::Rng::with_seed(5);
    let mut requests = 0;
    while judge.judged().conclusion != Conclusion::Fail {
        requests += 1;
        let canary = rng.f64() < 0.05;
        // Production fails 0.5 % of requests; the canary every one.
        let failed = canary || rng.f64() < 0.005;
        judge.observe(canary, failed, 0.05);
    }
    assert!(requests < 400, "{requests} requests");
    let judged = judge.judged();
    assert!(
        judged
            .words
            .starts_with("failure rate: the canary fails more than 1.20× as often"),
        "{}",
        judged.words
    );
    // Production may not have failed yet: then there is no ratio to show.
    assert!(
        judged.estimate.is_none_or(|ratio| ratio > 10.0),
        "{:?}",
        judged.estimate
    );
}

#[test]
fn an_identical_canary_passes_once_there_is_enough_evidence() {
    let mut judge = FailureRateJudge::new(settings(0.01));
    let mut rng = fastrand::Rng::with_seed(6);
    let mut failures = 0;
    while judge.judged().conclusion == Conclusion::Inconclusive {
        let canary = rng.f64() < 0.5;
        if rng.f64() < 0.01 {
            failures += 1;
        }
        judge.observe(canary, rng.f64() < 0.01, 0.5);
        assert!(failures < 100_000, "never decided");
    }
    assert_eq!(judge.judged().conclusion, Conclusion::Pass);
    assert!(
        judge
            .judged()
            .words
            .starts_with("failure rate: within 1.20× production's")
    );
}

#[test]
fn latency_by_stochastic_order_keeps_the_promise_and_catches_a_slower_canary() {
    let log_normal = |rng: &mut fastrand::Rng, median: f64| {
        median * (0.6 * crate::sampling::standard_normal(|| rng.f64())).exp()
    };
    let alpha = 0.05;
    let mut rng = fastrand::Rng::with_seed(7);
    let mut wrongly_failed = 0;
    for _ in 0..300 {
        let mut judge = LatencyJudge::new(settings(alpha));
        for _ in 0..1_000 {
            let (canary, production) = (log_normal(&mut rng, 20.0), log_normal(&mut rng, 20.0));
            pair(&mut judge, canary, production);
            if judge.judged().conclusion == Conclusion::Fail {
                wrongly_failed += 1;
                break;
            }
        }
    }
    assert!(
        (wrongly_failed as f64) / 300.0 <= alpha,
        "{wrongly_failed} of 300"
    );

    let mut judge = LatencyJudge::new(settings(0.01));
    let mut pairs = 0;
    while judge.judged().conclusion != Conclusion::Fail {
        pairs += 1;
        pair(
            &mut judge,
            log_normal(&mut rng, 40.0),
            log_normal(&mut rng, 20.0),
        );
        assert!(pairs < 5_000, "a canary twice as slow was never failed");
    }
    assert!(
        judge
            .judged()
            .words
            .starts_with("latency: the canary is slower than production more than 55 %")
    );
}

#[test]
fn a_rollout_without_failures_passes_on_the_failure_rate_after_enough_requests() {
    let mut judge = FailureRateJudge::new(settings(0.01));
    judge.observe_second((99, 0), (1_900, 0), 0.05);
    assert_eq!(judge.judged().conclusion, Conclusion::Inconclusive);
    judge.observe_second((1, 0), (20, 0), 0.05);
    let judged = judge.judged();
    assert_eq!(judged.conclusion, Conclusion::Pass);
    assert_eq!(
        judged.words,
        "failure rate: no failure on either side in 100 canary requests"
    );
    // One failure anywhere and the ratio must be judged on evidence again.
    judge.observe_second((10, 0), (190, 1), 0.05);
    assert_eq!(judge.judged().conclusion, Conclusion::Inconclusive);
}

#[test]
fn evidence_reads_as_a_plain_number_until_it_says_nothing_more() {
    assert_eq!(super::evidence(3.24), "3.2");
    assert_eq!(super::evidence(1250.4), "1,250");
    assert_eq!(super::evidence(1.9e10), "over 1,000,000");
}

#[test]
fn a_canary_at_the_tolerance_on_both_metrics_is_wrongly_failed_at_most_alpha_of_the_time_overall() {
    // The hardest canary to keep the promise for: exactly as bad as allowed
    // on both metrics at once. Either metric failing fails the canary, so
    // the two share α between them.
    let alpha = 0.1;
    let mut rng = fastrand::Rng::with_seed(11);
    let runs = 400;
    let mut wrongly_failed = 0;
    for _ in 0..runs {
        let mut failures = FailureRateJudge::new(settings(alpha));
        let mut latency = LatencyJudge::new(settings(alpha));
        for _ in 0..800 {
            let share = 0.05;
            let canary_probability = share * 1.2 / (share * 1.2 + 1.0 - share);
            failures.observe(rng.f64() < canary_probability, true, share);
            // Slower in 55 % of pairs.
            let slower = rng.f64() < 0.55;
            pair(&mut latency, if slower { 2.0 } else { 1.0 }, 1.5);
            if failures.judged().conclusion == Conclusion::Fail
                || latency.judged().conclusion == Conclusion::Fail
            {
                wrongly_failed += 1;
                break;
            }
        }
    }
    assert!(
        (wrongly_failed as f64) / (runs as f64) <= alpha,
        "{wrongly_failed} of {runs}"
    );
}

#[test]
fn the_evidence_history_stays_short_and_evenly_spaced_however_long_the_rollout() {
    let mut judge = LatencyJudge::new(settings(0.01));
    let mut history = EvidenceHistory::default();
    for second in 1..=3_008u32 {
        pair(&mut judge, f64::from(second % 7), 3.0);
        history.record(&judge.judged());
        let points = history.points();
        assert!(points.len() <= EVIDENCE_POINTS, "{} points", points.len());
        let spacing = points[0].secs;
        assert!(
            points
                .iter()
                .enumerate()
                .all(|(index, point)| point.secs == spacing * (index as u32 + 1)),
            "evenly spaced from the start at second {second}"
        );
        assert!(second - points.last().unwrap().secs < spacing, "up to date");
    }
    // 3,008 seconds at a spacing of 16 s: 188 points, the last one now.
    assert_eq!(history.points().len(), 188);
    let last = history.points().last().unwrap();
    assert_eq!(last.worse, judge.judged().worse_evidence);
}

#[test]
fn a_bet_on_a_coin_is_its_likelihood_ratio_and_on_an_average_stays_fair() {
    // On 0 or 1 the bet is the likelihood ratio of the alternative.
    let (mut as_coin, mut as_fraction) = (OddsTest::new(1.5, true), OddsTest::new(1.5, true));
    for success in [true, false, true, true] {
        as_coin.observe(0.3, success);
        as_fraction.observe_fraction(0.3, if success { 1.0 } else { 0.0 });
    }
    assert!((as_coin.e_value() - as_fraction.e_value()).abs() < 1e-12);
    // On an average at the null's mean, by hand: the null of θ₀ = 1 at base
    // ½ is ½, so each alternative θ multiplies by 1 + λ(x − ½), λ = 4(p − ½).
    let mut test = OddsTest::new(1.0, true);
    for x in [0.25, 0.75, 0.5] {
        test.observe_fraction(0.5, x);
    }
    let expected: f64 = ALTERNATIVES
        .iter()
        .map(|(theta, weight)| {
            let bet = 4.0 * (theta / (theta + 1.0) - 0.5);
            weight * (1.0 - bet * 0.25) * (1.0 + bet * 0.25) * 1.0
        })
        .sum();
    assert!((test.e_value() - expected).abs() < 1e-12);
    // Below 1: an average exactly at the null gives the worse test nothing.
    assert!(test.e_value() < 1.0);
}

#[test]
fn each_request_of_the_quieter_side_is_compared_with_its_own_partners() {
    // Canary 10 and 30 ms; production 20 ms six times: three partners each.
    let production = [20.0; 6];
    assert_eq!(
        compare_concurrent(&[10.0, 30.0], &production),
        [
            Comparison {
                slower: 0.0,
                count: 3
            },
            Comparison {
                slower: 1.0,
                count: 3
            },
        ]
    );
    // A tie counts half; the canary busier than production: each production
    // request against canary partners, still "the canary slower".
    assert_eq!(
        compare_concurrent(&[5.0, 20.0, 40.0, 40.0], &[20.0, 30.0]),
        [
            Comparison {
                slower: 0.25,
                count: 2
            },
            Comparison {
                slower: 1.0,
                count: 2
            },
        ]
    );
    // At most PARTNERS each, at most COMPARED_PER_SECOND a second, none
    // without the other side.
    let busy = vec![1.0; 100 * PARTNERS];
    assert!(
        compare_concurrent(&[2.0; 10], &busy)
            .iter()
            .all(|comparison| comparison.count as usize == PARTNERS)
    );
    assert_eq!(
        compare_concurrent(&busy, &busy).len(),
        COMPARED_PER_SECOND.min(busy.len())
    );
    assert!(compare_concurrent(&[1.0], &[]).is_empty());
    assert!(compare_concurrent(&[], &[1.0]).is_empty());
}

/// Seconds of 10 canary and 190 production requests (a 5 % share), the
/// canary's latencies `factor` times production's, until the judge fails
/// it; `partners` caps the production requests each canary one meets.
fn seconds_to_fail(seed: u64, factor: f64, alpha: f64, partners: usize) -> Option<u32> {
    seconds_to_fail_within(600, seed, factor, alpha, partners)
}

fn seconds_to_fail_within(
    seconds: u32,
    seed: u64,
    factor: f64,
    alpha: f64,
    partners: usize,
) -> Option<u32> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut log_normal =
        |median: f64| median * (0.5 * crate::sampling::standard_normal(|| rng.f64())).exp();
    let mut judge = LatencyJudge::new(settings(alpha));
    for second in 1..=seconds {
        let canary: Vec<f64> = (0..10).map(|_| log_normal(50.0 * factor)).collect();
        let production: Vec<f64> = (0..10 * partners).map(|_| log_normal(50.0)).collect();
        for comparison in compare_concurrent(&canary, &production) {
            judge.observe(comparison);
        }
        if judge.judged().conclusion == Conclusion::Fail {
            return Some(second);
        }
    }
    None
}

#[test]
fn comparing_with_many_concurrent_requests_keeps_the_promise_and_finds_a_slower_canary_sooner() {
    // Alike sides, judged at α = 0.05 for ten minutes each: the promise
    // holds for averages as for coins.
    let wrongly_failed = (0..200)
        .filter(|&seed| seconds_to_fail(seed, 1.0, 0.05, PARTNERS).is_some())
        .count();
    assert!(wrongly_failed <= 10, "{wrongly_failed} of 200");
    // The hardest canary to keep the promise for: exactly at the tolerance,
    // slower than production 55 % of the time (log-normal σ 0.5: latencies
    // e^(0.5·√2·0.1257) = 1.093 times production's).
    let at_tolerance = (0.5 * std::f64::consts::SQRT_2 * 0.125_661).exp();
    let wrongly_failed = (0..100)
        .filter(|&seed| {
            seconds_to_fail_within(300, 500 + seed, at_tolerance, 0.05, PARTNERS).is_some()
        })
        .count();
    assert!(
        wrongly_failed <= 5,
        "{wrongly_failed} of 100 at the tolerance"
    );
    // A canary 20 % slower throughout: found every time, and sooner with
    // many partners than with one each.
    let median = |partners: usize| {
        let mut times: Vec<u32> = (0..41)
            .map(|seed| seconds_to_fail(1_000 + seed, 1.2, 0.01, partners).expect("found"))
            .collect();
        times.sort_unstable();
        times[20]
    };
    let (one_partner, many) = (median(1), median(PARTNERS));
    assert!(
        f64::from(many) < 0.6 * f64::from(one_partner),
        "{many} s with {PARTNERS} partners, {one_partner} s with one"
    );
}

#[test]
fn a_pass_stays_a_pass_when_the_evidence_wanders_back_but_a_fail_still_wins() {
    // Alike sides until the latency test passes, then a run of the canary
    // being the slower: the "within" evidence falls back below its
    // threshold, yet the pass (its first crossing) holds.
    let mut judge = LatencyJudge::new(settings(0.01));
    let mut rng = fastrand::Rng::with_seed(11);
    let mut pairs = 0;
    while judge.judged().conclusion != Conclusion::Pass {
        pair(&mut judge, 10.0 + rng.f64(), 10.0 + rng.f64());
        pairs += 1;
        assert!(pairs < 100_000, "never passed");
    }
    let passed_with = judge.judged().within_evidence;
    for _ in 0..40 {
        pair(&mut judge, 20.0, 10.0);
    }
    let after = judge.judged();
    assert!(
        after.within_evidence < 100.0,
        "the evidence fell back: {} (it passed with {passed_with})",
        after.within_evidence
    );
    assert_eq!(after.conclusion, Conclusion::Pass, "{}", after.words);
    // A canary that then turns clearly worse is still failed.
    let mut slower = 0;
    while judge.judged().conclusion != Conclusion::Fail {
        pair(&mut judge, 20.0, 10.0);
        slower += 1;
        assert!(
            slower < 100_000,
            "a worse canary was never failed after a pass"
        );
    }
}

/// The controller's fast path: failures observed as they happen, in
/// batches of whatever size the proxy recorded between two looks, with the
/// verdict looked at after each batch, and requests once a second.
#[test]
fn the_fast_path_checking_after_every_batch_of_failures_keeps_the_promise() {
    let alpha = 0.05;
    let runs = 400;
    let mut rng = fastrand::Rng::with_seed(21);
    let mut wrongly_failed = 0;
    for _ in 0..runs {
        let mut judge = RolloutJudge::new(settings(alpha));
        'rollout: for _second in 0..120 {
            // 200 requests a second at 5 %, both sides failing 2 %.
            let (mut canary_requests, mut production_requests) = (0, 0);
            let mut batch = (0, 0);
            for _ in 0..200 {
                let canary = rng.f64() < 0.05;
                if canary {
                    canary_requests += 1;
                } else {
                    production_requests += 1;
                }
                if rng.f64() < 0.02 {
                    if canary {
                        batch.0 += 1;
                    } else {
                        batch.1 += 1;
                    }
                }
                // The controller takes what was recorded at random moments.
                if rng.f64() < 0.3 {
                    judge.observe_failures(batch.0, batch.1, 0.05);
                    batch = (0, 0);
                    if judge.overall().0 == Conclusion::Fail {
                        wrongly_failed += 1;
                        break 'rollout;
                    }
                }
            }
            judge.observe_failures(batch.0, batch.1, 0.05);
            judge.observe_traffic(canary_requests, production_requests, &[]);
        }
    }
    assert!(
        f64::from(wrongly_failed) / f64::from(runs) <= alpha,
        "{wrongly_failed} of {runs} identical canaries wrongly failed"
    );
}

/// How many failures, one at a time, a canary failing every request at a
/// 5 % share needs before the judge fails it, production not failing: the
/// floor under the fast path's "failed requests before the rollback".
#[test]
fn a_canary_failing_everything_is_failed_by_its_third_failure() {
    let mut judge = RolloutJudge::new(JudgeSettings::default());
    let mut failures = 0;
    while judge.overall().0 != Conclusion::Fail {
        failures += 1;
        judge.observe_failures(1, 0, 0.05);
        assert!(failures < 100, "never failed");
    }
    assert_eq!(failures, 3, "at α = 0.01 with the default alternatives");
}
