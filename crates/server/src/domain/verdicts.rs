//! How the statistical judge's conclusion combines with the safety checks'
//! verdict, by the judge's mode: pure, so each case is a line of a table.

use canary_shared::CanaryShare;
use serde::{Deserialize, Serialize};

use crate::domain::deployment::Verdict;
use crate::domain::judge::Conclusion;

/// What the judge's verdicts do (`canary.judge.mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum JudgeMode {
    /// Not judged.
    Off,
    /// Shown and alerted; a fail pauses the rollout once, then holds it like a warning.
    Advisory,
    /// A fail rolls back (when auto-rollback is armed); only a pass advances.
    Enforce,
}

/// The checks' `verdict` with the judge's say: `judged` is the running
/// rollout's overall conclusion and its words, `None` before its first
/// second; `share` is the canary's share now.
pub fn with_judge(
    mode: JudgeMode,
    judged: Option<(Conclusion, String)>,
    verdict: Verdict,
    share: CanaryShare,
) -> Verdict {
    let (conclusion, words) = match (mode, judged) {
        (JudgeMode::Off, _) => return verdict,
        (_, Some(judged)) => judged,
        // Its first second has not come yet: in enforce mode that is no
        // pass either, so a short wait cannot slip past it.
        (JudgeMode::Enforce, None) if verdict == Verdict::Green => {
            return Verdict::Undecided {
                reason: "waiting for the statistical judge: nothing judged yet".to_owned(),
            };
        }
        (_, None) => return verdict,
    };
    match (mode, conclusion, verdict) {
        (
            JudgeMode::Enforce,
            Conclusion::Fail,
            Verdict::Green | Verdict::Warning { .. } | Verdict::NoData { .. },
        ) => Verdict::Critical {
            reason: format!("statistical judge: {words}"),
        },
        // Pauses the rollout once, then holds like a warning.
        (
            JudgeMode::Advisory,
            Conclusion::Fail,
            Verdict::Green | Verdict::Warning { .. } | Verdict::NoData { .. },
        ) => Verdict::Suspect {
            reason: format!("statistical judge (advisory): {words}"),
        },
        // Only a pass lets auto-progression advance; the wait runs
        // meanwhile, and an undecided judge is not missing data.
        (JudgeMode::Enforce, Conclusion::Inconclusive, Verdict::Green) => {
            // With all traffic on the canary there is nothing to compare
            // it with: say so, rather than wait for evidence that cannot come.
            let reason = if share == CanaryShare::FULL {
                "the statistical judge has not passed the canary, and at 100 % production gets no traffic to compare it with: scale down to let it judge, or promote by hand".to_owned()
            } else {
                format!("waiting for the statistical judge: {words}")
            };
            Verdict::Undecided { reason }
        }
        (_, _, verdict) => verdict,
    }
}

#[cfg(test)]
mod tests {
    use canary_shared::CanaryShare;
    use expect_test::expect;

    use crate::domain::deployment::Verdict;
    use crate::domain::judge::Conclusion;
    use crate::domain::verdicts::{JudgeMode, with_judge};

    #[test]
    fn the_judge_has_its_say_by_mode() {
        let checks = [
            ("green", Verdict::Green),
            (
                "warning",
                Verdict::Warning {
                    reason: "w".to_owned(),
                },
            ),
            (
                "no data",
                Verdict::NoData {
                    reason: "n".to_owned(),
                },
            ),
            (
                "critical",
                Verdict::Critical {
                    reason: "c".to_owned(),
                },
            ),
        ];
        let judged = [
            ("not yet", None),
            ("fail", Some((Conclusion::Fail, "slower".to_owned()))),
            ("pass", Some((Conclusion::Pass, "alike".to_owned()))),
            (
                "inconclusive",
                Some((Conclusion::Inconclusive, "so far".to_owned())),
            ),
        ];
        let half = CanaryShare::from_percent(50.0).unwrap();
        let mut table = String::new();
        for mode in [JudgeMode::Off, JudgeMode::Advisory, JudgeMode::Enforce] {
            for (judged_name, judged) in &judged {
                for (check_name, verdict) in &checks {
                    let combined = with_judge(mode, judged.clone(), verdict.clone(), half);
                    if &combined != verdict {
                        table.push_str(&format!(
                            "{mode:?}, judge {judged_name}, checks {check_name} -> {combined:?}\n"
                        ));
                    }
                }
            }
        }
        // Every combination not listed leaves the checks' verdict as it is.
        expect![[r#"
            Advisory, judge fail, checks green -> Suspect { reason: "statistical judge (advisory): slower" }
            Advisory, judge fail, checks warning -> Suspect { reason: "statistical judge (advisory): slower" }
            Advisory, judge fail, checks no data -> Suspect { reason: "statistical judge (advisory): slower" }
            Enforce, judge not yet, checks green -> Undecided { reason: "waiting for the statistical judge: nothing judged yet" }
            Enforce, judge fail, checks green -> Critical { reason: "statistical judge: slower" }
            Enforce, judge fail, checks warning -> Critical { reason: "statistical judge: slower" }
            Enforce, judge fail, checks no data -> Critical { reason: "statistical judge: slower" }
            Enforce, judge inconclusive, checks green -> Undecided { reason: "waiting for the statistical judge: so far" }
        "#]].assert_eq(&table);
        assert_eq!(
            with_judge(
                JudgeMode::Enforce,
                Some((Conclusion::Inconclusive, "so far".to_owned())),
                Verdict::Green,
                CanaryShare::FULL
            ),
            Verdict::Undecided {
                reason: "the statistical judge has not passed the canary, and at 100 % production gets no traffic to compare it with: scale down to let it judge, or promote by hand".to_owned()
            }
        );
    }
}
