//! What each command of an operator or a script does to the deployment
//! (the automatic inputs are in `deployment.rs`).

use canary_shared::{ActionKind, AuditAction, CanaryShare, Command, Phase, StepStatus};

use crate::domain::deployment::{
    Change, Deployment, Hook, Rules, TransitionRejected, fresh_steps, human_duration,
};

impl Change {
    pub(super) fn command(
        &mut self,
        actor: String,
        command: Command,
        rules: &Rules,
    ) -> Result<(), TransitionRejected> {
        match command {
            Command::Start(request) => {
                self.reject(ActionKind::Start)?;
                let fresh = Deployment {
                    image_tag: Some(request.image_tag.clone()),
                    starting_share: request
                        .traffic_percent
                        .max(CanaryShare::from_basis_points(1).expect("0.01 %")),
                    steps: fresh_steps(rules),
                    ..Deployment::idle(rules)
                };
                let from_phase = self.deployment.phase;
                // The next canary deploys where the standby runs: its undo
                // window ends (the deploy hook replaces it, no retire hook).
                let ends_undo = self.deployment.can_undo_promotion();
                // A new rollout keeps who serves production.
                self.deployment = Deployment {
                    phase: from_phase,
                    roles: self.deployment.roles.clone(),
                    before_promotion: self.deployment.before_promotion.clone(),
                    ..fresh
                };
                self.set_step(0, StepStatus::InProgress);
                let mut reason = format!(
                    "deploy {} and start at {}",
                    request.image_tag, request.traffic_percent
                );
                if ends_undo {
                    reason.push_str(
                        "; this ends the last promotion's undo window (the new canary deploys over the previous version)",
                    );
                }
                self.decide(
                    &actor,
                    AuditAction::Start,
                    Phase::BuildDeploy,
                    CanaryShare::ZERO,
                    Some(reason),
                );
                self.run_hook(Hook::Deploy);
            }
            Command::Scale { percent } => {
                self.reject(ActionKind::Scale)?;
                // The current step becomes the highest one the new share reaches.
                let first = self.first_traffic_step();
                let reached = (first..=self.last_traffic_step())
                    .rev()
                    .find(|&index| self.traffic_share(index) <= percent)
                    .unwrap_or(first);
                let current = self.deployment.current_step();
                if current != Some(reached) {
                    if current.is_some_and(|current| reached < current) {
                        // Scaling down reopens the steps above.
                        self.end_current(StepStatus::Pending);
                        for index in reached + 1..=self.last_traffic_step() {
                            self.set_step(index, StepStatus::Pending);
                        }
                        self.set_step(reached, StepStatus::InProgress);
                        self.deployment.green_for_ms = 0;
                    } else {
                        self.enter_traffic_step(reached);
                    }
                }
                let phase = self.deployment.phase;
                self.decide(&actor, AuditAction::Scale, phase, percent, None);
            }
            Command::Continue => {
                self.reject(ActionKind::Continue)?;
                if self.deployment.phase == Phase::Validating {
                    self.skip_validation(&actor);
                } else {
                    self.advance(&actor, AuditAction::Continue, None);
                }
            }
            Command::Pause => {
                self.reject(ActionKind::Pause)?;
                // A person paused it: an earlier hold's words no longer say why.
                self.deployment.reason = None;
                self.deployment.paused_from = Some(self.deployment.phase);
                let share = self.deployment.share;
                self.decide(&actor, AuditAction::Pause, Phase::Paused, share, None);
            }
            Command::Resume => {
                self.reject(ActionKind::Resume)?;
                let back_to = self
                    .deployment
                    .paused_from
                    .take()
                    .unwrap_or(Phase::Progressing);
                self.deployment.green_for_ms = 0;
                let share = self.deployment.share;
                self.decide(&actor, AuditAction::Resume, back_to, share, None);
            }
            Command::Promote => {
                self.reject(ActionKind::Promote)?;
                self.promote(&actor, None);
            }
            Command::SetAutoProgression { enabled } => {
                self.reject(ActionKind::SetAutoProgression)?;
                if self.deployment.auto_progresses(rules) == enabled {
                    // Already so: nothing to record, like a repeated request.
                    return Ok(());
                }
                self.deployment.auto_progression = Some(enabled);
                // A wait starts afresh when turned back on, so switching it
                // off and on cannot advance a step sooner than `wait`.
                self.deployment.green_for_ms = 0;
                let (action, reason) = if enabled {
                    (
                        AuditAction::AutoProgressionOn,
                        format!(
                            "auto-progression on: the next step after {} of green checks",
                            human_duration(rules.wait_ms)
                        ),
                    )
                } else {
                    (
                        AuditAction::AutoProgressionOff,
                        "auto-progression off: steps move only when an operator continues"
                            .to_owned(),
                    )
                };
                let (phase, share) = (self.deployment.phase, self.deployment.share);
                self.decide(&actor, action, phase, share, Some(reason));
            }
            Command::Rollback { reason } => {
                self.reject(ActionKind::Rollback)?;
                self.roll_back(&actor, AuditAction::Rollback, reason);
            }
            Command::Stop { reason } => {
                self.reject(ActionKind::Stop)?;
                self.roll_back(&actor, AuditAction::Stop, reason);
            }
            Command::UndoPromotion { reason } => {
                self.reject(ActionKind::UndoPromotion)?;
                self.undo_promotion(&actor, reason);
            }
        }
        Ok(())
    }
}
