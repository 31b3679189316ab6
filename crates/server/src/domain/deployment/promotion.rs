//! Promotion and its undo: 100 % to the canary and the promote hook; the
//! roles after it; the previous version kept as a standby for the undo
//! window, sent all traffic back by an undo, or retired when the time is up.

use canary_shared::{AuditAction, CanaryShare, Phase, StepStatus};

use crate::domain::deployment::{Change, Hook, Rules, human_duration};
use crate::domain::roles::{Promotion, Roles};

/// What a promotion did, in words, for its audit entry.
fn promotion_words(after: &Roles, promotion: Promotion) -> String {
    let version = after.production_version.as_deref().unwrap_or("the canary");
    let slot = after.production.config_key();
    match promotion {
        Promotion::SwapRoles => format!(
            "production is now {version} on the upstream listed as {slot}; the next canary deploys to the upstream listed as {}",
            after.production.other().config_key()
        ),
        Promotion::HookRedeploysProduction => {
            format!("the promote hook put {version} on production (the upstream listed as {slot})")
        }
    }
}

impl Change {
    pub(super) fn promote(&mut self, actor: &str, reason: Option<String>) {
        self.end_current(StepStatus::Complete);
        for index in self.first_traffic_step()..=self.last_traffic_step() {
            if self.deployment.steps[index].status == StepStatus::Pending {
                self.set_step(index, StepStatus::Skipped);
            }
        }
        let promoted = self.deployment.steps.len() - 1;
        self.set_step(promoted, StepStatus::InProgress);
        self.deployment.paused_from = None;
        self.decide(
            actor,
            AuditAction::Promote,
            Phase::Promoting,
            CanaryShare::FULL,
            reason,
        );
        self.run_hook(Hook::Promote);
    }

    /// The promote hook succeeded: production runs the promoted version, and
    /// with swapped roles the previous one stands by for the undo window.
    pub(super) fn promoted(&mut self, detail: String, rules: &Rules) {
        self.end_current(StepStatus::Complete);
        let before = self.deployment.roles.clone();
        let after = before.promoted(self.deployment.image_tag.clone(), rules.promotion);
        let moved = promotion_words(&after, rules.promotion);
        self.deployment.before_promotion = Some(before);
        self.deployment.roles = after;
        // Production now runs the promoted version (on the canary's
        // slot, or redeployed by the hook): the whole of the traffic
        // goes there as "production", in one routing change.
        let standby = match rules.promotion {
            Promotion::SwapRoles if rules.undo_window_ms > 0 => format!(
                "; the previous version stands by for {} (Undo promotion sends the traffic back to it)",
                human_duration(rules.undo_window_ms)
            ),
            _ => String::new(),
        };
        self.decide(
            "controller",
            AuditAction::Promoted,
            Phase::Promoted,
            CanaryShare::ZERO,
            Some(format!("{detail}; {moved}{standby}")),
        );
        match rules.promotion {
            Promotion::SwapRoles if rules.undo_window_ms > 0 => {
                self.deployment.undo_left_ms = Some(rules.undo_window_ms);
            }
            Promotion::SwapRoles => {
                self.end_undo_window("no undo window (upstreams.undo_window is 0)".to_owned())
            }
            // The hook put the new version where the old one ran:
            // nothing stands by, and there is nothing to retire.
            Promotion::HookRedeploysProduction => self.deployment.undo_left_ms = None,
        }
    }

    /// Production goes back to the upstream and version it had before the
    /// promotion (in one routing change that keeps the canary's share at
    /// 0), and the promoted version is rolled back like a canary: its
    /// upstream gets no traffic and the rollback hook runs for it.
    pub(super) fn undo_promotion(&mut self, actor: &str, reason: String) {
        if let Some(before) = self.deployment.before_promotion.take() {
            self.deployment.roles = before;
        }
        self.deployment.undo_left_ms = Some(0);
        self.roll_back(actor, AuditAction::UndoPromotion, reason);
    }

    /// The undo window is over (or there is none): the standby is retired.
    fn end_undo_window(&mut self, why: String) {
        self.deployment.undo_left_ms = Some(0);
        self.deployment.retiring = true;
        let standby = self
            .deployment
            .before_promotion
            .as_ref()
            .map(|before| before.production.config_key())
            .unwrap_or("production");
        self.decide(
            "controller",
            AuditAction::UndoWindowEnded,
            Phase::Promoted,
            CanaryShare::ZERO,
            Some(format!(
                "{why}: the previous version on the upstream listed as {standby} is retired (the retire hook runs)"
            )),
        );
        self.run_hook(Hook::Retire);
    }

    /// Counts the undo window down; at its end the standby is retired.
    pub(super) fn count_down_undo(&mut self, elapsed_ms: u64, rules: &Rules) {
        let left = self
            .deployment
            .undo_left_ms
            .unwrap_or(0)
            .saturating_sub(elapsed_ms);
        self.deployment.undo_left_ms = Some(left);
        if left == 0 {
            let window = human_duration(rules.undo_window_ms);
            self.end_undo_window(format!("the undo window of {window} is over"));
        }
    }

    /// The retire hook finished.
    pub(super) fn retired(&mut self, succeeded: bool, detail: String) {
        self.deployment.retiring = false;
        let reason = if succeeded {
            detail
        } else {
            format!("retire hook failed: {detail}")
        };
        let (phase, share) = (self.deployment.phase, self.deployment.share);
        self.decide(
            "controller",
            AuditAction::Retired,
            phase,
            share,
            Some(reason),
        );
    }
}
