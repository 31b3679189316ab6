//! The fast path: failures judged as they happen, not once a second.
//!
//! Every failure the proxy records wakes the controller (`Recorder::
//! failure_seen`). It brings the statistical judge's failure-rate evidence
//! up to date (an e-process may be looked at after every observation, so
//! this raises no false alarm: `judge/tests.rs`), and judges the critical
//! checks that have a fast window on the canary's last seconds counting the
//! one under way. When either finds the canary failing and auto-rollback is
//! armed, the rollback is decided at once; the share in the proxy drops to
//! 0 % before the decision is committed (`Controller::commit_and_run`), so
//! a canary that fails hard is out within a few requests.

use canary_shared::{Phase, Side, WindowStats};

use crate::controller::Controller;
use crate::domain::analysis::{self, BuiltInMetric, CheckSpec};
use crate::domain::deployment::{Input, Verdict};

/// The lengths of the short windows `specs` are judged on, each once.
pub(super) fn windows(specs: &[CheckSpec]) -> Vec<u32> {
    let mut windows: Vec<u32> = specs
        .iter()
        .filter_map(|spec| spec.fast_window_secs)
        .collect();
    windows.sort_unstable();
    windows.dedup();
    windows
}

/// The checks the fast path judges between ticks: critical, with a fast
/// window, on a rate (a failure moves a rate; a latency waits for its
/// second's histogram).
pub(super) fn specs(specs: &[CheckSpec]) -> Vec<CheckSpec> {
    specs
        .iter()
        .filter(|spec| {
            spec.fast_window_secs.is_some()
                && spec.alert_level == canary_shared::AlertLevel::Critical
                && matches!(
                    BuiltInMetric::from_name(&spec.metric),
                    Some(BuiltInMetric::ErrorRate | BuiltInMetric::SuccessRate)
                )
        })
        .cloned()
        .collect()
}

impl Controller {
    /// Takes the failures recorded since the last look into the judge's
    /// evidence, and rolls the canary back at once when the judge (in
    /// enforce mode) or a fast check now finds it failing.
    pub(super) fn failures_seen(&mut self) {
        let (canary, production) = self.recorder.take_failures();
        if canary + production == 0 {
            return;
        }
        let share = self.routing.share().percent() / 100.0;
        if let Some((_, judge)) = self.rollout_judge() {
            judge.observe_failures(canary, production, share);
        }
        // Only a failure of the canary can find the canary failing; a
        // rollout not taking traffic has nothing to take back.
        let watching = matches!(self.deployment.phase, Phase::Progressing | Phase::Paused);
        if canary == 0 || !watching || !self.rules.auto_rollback {
            return;
        }
        if let Some(reason) = self.fast_breach() {
            self.automatic(Input::Judged(Verdict::Critical { reason }), None);
            self.publish();
        }
    }

    /// Why the canary fails now, if it does: the judge's failure-rate
    /// evidence, or a fast check's window up to this moment.
    fn fast_breach(&self) -> Option<String> {
        // The judge's say on a verdict that is otherwise green.
        if let Verdict::Critical { reason } = self.with_judge(Verdict::Green) {
            return Some(reason);
        }
        let settings = self.config.canary.analysis_settings();
        self.fast_specs.iter().find_map(|spec| {
            let secs = spec.fast_window_secs?;
            let (requests, failures) = self.recorder.live_counts(Side::Canary, secs as usize);
            let window = live_window(secs, requests, failures);
            analysis::fast_breach(spec, &[window], settings)
                .map(|check| format!("{}: {}", check.name, check.reason.unwrap_or_default()))
        })
    }
}

/// The rates of a window from its counts (what a failure moves).
fn live_window(secs: u32, requests: u64, failures: u64) -> WindowStats {
    let error_rate = (requests > 0).then(|| failures as f64 / requests as f64);
    WindowStats {
        window_secs: secs,
        requests,
        error_rate,
        success_rate: error_rate.map(|rate| 1.0 - rate),
        ..WindowStats::default()
    }
}
