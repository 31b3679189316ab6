//! What the automatic inputs do: a verdict of the safety checks (and the
//! statistical judge), and monotonic time passing (the wait before the next
//! step, missing data, the undo window after a promotion).

use canary_shared::{AuditAction, Phase};

use crate::domain::deployment::{Change, Effect, NoDataAction, Rules, Verdict, human_duration};

impl Change {
    pub(super) fn judged(&mut self, verdict: Verdict, rules: &Rules) {
        let watching = matches!(self.deployment.phase, Phase::Progressing | Phase::Paused);
        self.deployment.last_verdict = Some(verdict.clone());
        if self.deployment.mirror_share().is_some() {
            return self.shadow_judged(verdict, rules);
        }
        if !watching {
            return;
        }
        match verdict {
            Verdict::Green => {
                self.deployment.no_data_for_ms = 0;
                if self.deployment.reason.is_some() && self.deployment.phase == Phase::Progressing {
                    self.deployment.reason = None;
                }
            }
            Verdict::Critical { reason } if rules.auto_rollback => {
                self.roll_back("controller", AuditAction::AutoRollback, reason);
            }
            Verdict::Suspect { reason }
                if self.deployment.phase == Phase::Progressing
                    && !self.deployment.paused_by_judge =>
            {
                self.deployment.paused_by_judge = true;
                self.deployment.paused_from = Some(Phase::Progressing);
                self.deployment.green_for_ms = 0;
                let share = self.deployment.share;
                self.decide(
                    "controller",
                    AuditAction::AutoPause,
                    Phase::Paused,
                    share,
                    Some(reason.clone()),
                );
                self.effects.push(Effect::Alert {
                    message: format!("paused: {reason}"),
                });
                self.deployment.reason = Some(reason);
            }
            Verdict::Critical { reason }
            | Verdict::Warning { reason }
            | Verdict::Suspect { reason } => self.hold_on_finding(reason, ""),
            Verdict::NoData { reason } => {
                self.deployment.green_for_ms = 0;
                if self.deployment.phase == Phase::Progressing {
                    self.deployment.reason = Some(format!("holding: {reason}"));
                }
            }
            Verdict::Undecided { reason } => {
                self.deployment.no_data_for_ms = 0;
                if self.deployment.phase == Phase::Progressing {
                    self.deployment.reason = Some(format!("holding: {reason}"));
                }
            }
        }
    }

    /// A finding that holds the step: the green wait restarts, and people
    /// are alerted (their words after `context`) when the finding is new.
    pub(super) fn hold_on_finding(&mut self, reason: String, context: &str) {
        self.deployment.green_for_ms = 0;
        // The figures in parentheses (the judge's evidence) change every
        // second: a new alert only when the finding does.
        let finding = |text: &str| text.split(" (").next().unwrap_or_default().to_owned();
        let known = self.deployment.reason.as_deref().map(finding);
        if known.as_deref() != Some(finding(&reason).as_str()) {
            self.effects.push(Effect::Alert {
                message: format!("{context}{reason}"),
            });
        }
        self.deployment.reason = Some(reason);
    }

    /// Counts `elapsed_ms` more of missing data; once that has lasted
    /// `no_data_timeout` with `on_long_no_data: rollback`, how long and
    /// why, in words.
    pub(super) fn missing_data_too_long(
        &mut self,
        elapsed_ms: u64,
        reason: &str,
        rules: &Rules,
    ) -> Option<String> {
        self.deployment.no_data_for_ms = self.deployment.no_data_for_ms.saturating_add(elapsed_ms);
        (self.deployment.no_data_for_ms >= rules.no_data_timeout_ms
            && rules.on_long_no_data == NoDataAction::Rollback)
            .then(|| {
                format!(
                    "{}: {reason}",
                    human_duration(self.deployment.no_data_for_ms)
                )
            })
    }

    pub(super) fn tick(&mut self, elapsed_ms: u64, rules: &Rules) {
        if self.deployment.can_undo_promotion() {
            return self.count_down_undo(elapsed_ms, rules);
        }
        if self.deployment.mirror_share().is_some() {
            return self.shadow_tick(elapsed_ms, rules);
        }
        if self.deployment.phase != Phase::Progressing {
            return;
        }
        match &self.deployment.last_verdict {
            Some(Verdict::Green) => {
                if !self.deployment.auto_progresses(rules) {
                    return;
                }
                self.deployment.green_for_ms =
                    self.deployment.green_for_ms.saturating_add(elapsed_ms);
                if self.deployment.green_for_ms >= rules.wait_ms {
                    let waited = format!("checks green for {}", human_duration(rules.wait_ms));
                    self.advance("controller", AuditAction::AutoProgress, Some(waited));
                }
            }
            // The wait runs while the judge gathers evidence; the step
            // advances at the first green verdict once both are done.
            Some(Verdict::Undecided { .. }) if self.deployment.auto_progresses(rules) => {
                self.deployment.green_for_ms = self
                    .deployment
                    .green_for_ms
                    .saturating_add(elapsed_ms)
                    .min(rules.wait_ms);
            }
            Some(Verdict::NoData { reason }) => {
                let reason = reason.clone();
                if let Some(why) = self.missing_data_too_long(elapsed_ms, &reason, rules) {
                    self.roll_back(
                        "controller",
                        AuditAction::NoDataRollback,
                        format!("no data for {why}"),
                    );
                }
            }
            _ => {}
        }
    }
}
