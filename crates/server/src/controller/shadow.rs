//! The shadow step in the controller: the proxy copies production's
//! requests while the deployment says so, and the checks and a statistical
//! judge of its own are fed the canary's answers to the copies instead of
//! the (empty) live split.

use canary_shared::{CanaryShare, MetricsSnapshot};

use crate::config::JudgeMode;
use crate::controller::Controller;
use crate::domain::analysis::{self, Analysis, AnalysisSettings};
use crate::domain::deployment::Verdict;
use crate::domain::judge::{JudgeSecond, RolloutJudge};

/// A failure among copied requests is the canary's half the time when it
/// answers like production: each request is sent to both sides.
const PAIRED_SHARE: f64 = 0.5;

impl Controller {
    /// Tells the proxy what to copy: the shadow step's share while it is in
    /// progress, nothing otherwise. Called after every decision takes effect.
    pub(super) fn mirror(&self) {
        if let Some(tap) = &self.shadow {
            tap.set_share(self.deployment.mirror_share());
        }
    }

    /// Whether the rollout is in its shadow step (and the proxy copies).
    pub(super) fn shadowing(&self) -> bool {
        self.shadow.is_some() && self.deployment.mirror_share().is_some()
    }

    /// Feeds the shadow step's judge one second of copied requests.
    pub(super) fn observe_shadow(&mut self, second: &JudgeSecond) {
        let Some(judge) = self.shadow_judge() else {
            return;
        };
        judge.observe_second(
            (second.canary_requests, second.canary_failures),
            (second.production_requests, second.production_failures),
            PAIRED_SHARE,
            &second.comparisons,
        );
    }

    /// The shadow step's judge, made at its first use when the judge is on.
    fn shadow_judge(&mut self) -> Option<&mut RolloutJudge> {
        let config = &self.config.canary.judge;
        if config.mode == JudgeMode::Off || !self.shadowing() {
            return None;
        }
        let rollout = self.rollout_started_at()?;
        if !matches!(&self.shadow_judge, Some((of, _)) if *of == rollout) {
            self.shadow_judge = Some((rollout, RolloutJudge::new(config.settings())));
        }
        self.shadow_judge.as_mut().map(|(_, judge)| judge)
    }

    /// The checks judged on the canary's answers to copied requests (the
    /// mismatch rate among them), with the shadow judge's say.
    pub(super) fn judge_shadow(&self, snapshot: &MetricsSnapshot) -> Analysis {
        let settings = AnalysisSettings {
            shadow: true,
            ..self.config.canary.analysis_settings()
        };
        let Some(tap) = &self.shadow else {
            return analysis::analyse(&[], &Default::default(), &[], &[], settings);
        };
        let mut custom = snapshot.canary.custom.clone();
        custom.push(tap.mismatch_metric(settings.min_requests));
        let mut analysis = analysis::analyse(
            &self.config.check_specs(),
            &tap.canary_window(),
            &[],
            &custom,
            settings,
        );
        let judged = self
            .shadow_judge
            .as_ref()
            .filter(|(rollout, _)| Some(*rollout) == self.rollout_started_at())
            .map(|(_, judge)| judge.overall());
        analysis.verdict = crate::domain::verdicts::with_judge(
            self.config.canary.judge.mode,
            judged,
            analysis.verdict,
            CanaryShare::ZERO,
        );
        if let Verdict::Critical { reason } | Verdict::Suspect { reason } = &mut analysis.verdict
            && reason.starts_with("statistical judge")
        {
            *reason = reason.replacen(
                "statistical judge",
                "statistical judge on shadow traffic",
                1,
            );
        }
        analysis
    }

    /// The statistical judge's evidence for the console: the current
    /// rollout's, from the shadow step while it runs (or when the rollout
    /// never got further), from the live split otherwise. The shadow
    /// judge's metrics are named `shadow_failure_rate` and `shadow_latency`.
    pub(super) fn judge_views(&self) -> Vec<canary_shared::JudgedMetric> {
        let rollout = self.rollout_started_at();
        let of_this = |judge: &Option<(canary_shared::UnixMillis, RolloutJudge)>| {
            judge
                .as_ref()
                .filter(|(of, _)| Some(*of) == rollout)
                .map(|(_, judge)| judge.views())
        };
        let live = of_this(&self.judge);
        let shadow = of_this(&self.shadow_judge).map(|mut views| {
            for view in &mut views {
                view.metric = format!("shadow_{}", view.metric);
            }
            views
        });
        match (live, shadow) {
            (_, Some(shadow)) if self.shadowing() => shadow,
            (Some(live), _) => live,
            (None, shadow) => shadow.unwrap_or_default(),
        }
    }
}
