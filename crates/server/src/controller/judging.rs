//! The statistical judge in the controller: the running rollout's judge,
//! fed a second's requests and latency comparisons (its failures come as
//! they happen, `fast_path.rs`), saved as it goes and resumed after a
//! restart, and its say in the checks' verdict.

use std::sync::Arc;

use canary_shared::{Phase, UnixMillis};

use crate::config::JudgeMode;
use crate::controller::Controller;
use crate::domain::deployment::Verdict;
use crate::domain::judge::RolloutJudge;

/// How often the statistical judge is saved, in judged seconds: a restart
/// loses at most this much of its evidence.
const JUDGE_SAVE_EVERY_SECS: u32 = 10;

impl Controller {
    /// When the current rollout started: it names the rollout a judge belongs to.
    pub(super) fn rollout_started_at(&self) -> Option<UnixMillis> {
        self.deployment
            .steps
            .first()
            .and_then(|step| step.started_at)
    }

    /// Feeds the statistical judge one second of a rollout that is taking
    /// traffic (a new rollout gets a new judge), and saves it every
    /// [`JUDGE_SAVE_EVERY_SECS`] seconds.
    ///
    /// The second's failures reached the judge as they happened
    /// (`fast_path.rs`); here come its requests and latency comparisons.
    pub(super) fn observe(&mut self, second: &crate::domain::judge::JudgeSecond) {
        let now = self.clock.now();
        let store = Arc::clone(&self.store);
        let Some((rollout, judge)) = self.rollout_judge() else {
            return;
        };
        judge.observe_traffic(
            second.canary_requests,
            second.production_requests,
            &second.comparisons,
        );
        if judge.seconds().is_multiple_of(JUDGE_SAVE_EVERY_SECS)
            && let Err(err) = store.save_judge(rollout, judge, now)
        {
            self.own.store_error();
            tracing::error!(%err, "cannot save the statistical judge; a restart would start it afresh");
        }
    }

    /// The running rollout's judge, made at its first use, when the judge
    /// is on and the rollout takes traffic; with the rollout it judges.
    pub(super) fn rollout_judge(&mut self) -> Option<(UnixMillis, &mut RolloutJudge)> {
        let config = &self.config.canary.judge;
        let rollout = self.rollout_started_at()?;
        if config.mode == JudgeMode::Off
            || !matches!(self.deployment.phase, Phase::Progressing | Phase::Paused)
        {
            return None;
        }
        if !matches!(&self.judge, Some((of, _)) if *of == rollout) {
            self.judge = Some((rollout, RolloutJudge::new(config.settings())));
        }
        self.judge.as_mut().map(|(of, judge)| (*of, judge))
    }

    /// After a restart: the running rollout's judge, as last saved, if it was
    /// saved for this rollout under the same settings.
    pub(super) fn resume_judge(&mut self) {
        let Some(rollout) = self.rollout_started_at() else {
            return;
        };
        match self.store.load_judge() {
            Ok(Some((of, judge)))
                if of == rollout && judge.settings() == self.config.canary.judge.settings() =>
            {
                tracing::info!(
                    seconds = judge.seconds(),
                    "resumed the statistical judge's evidence"
                );
                self.judge = Some((rollout, judge));
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(%err, "cannot read the saved statistical judge; it starts afresh");
            }
        }
    }

    /// The checks' verdict, with the statistical judge's say in `advisory`
    /// and `enforce` modes.
    pub(super) fn with_judge(&self, verdict: Verdict) -> Verdict {
        let judged = self
            .judge
            .as_ref()
            .filter(|(rollout, _)| Some(*rollout) == self.rollout_started_at())
            .map(|(_, judge)| judge.overall());
        crate::domain::verdicts::with_judge(
            self.config.canary.judge.mode,
            judged,
            verdict,
            self.deployment.share,
        )
    }
}
