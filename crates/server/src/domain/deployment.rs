//! The deployment state machine: every rule that decides when traffic moves.
//!
//! Sans-IO: [`Deployment::apply`] takes one [`Input`] and the time, and
//! returns the next deployment with the [`Effect`]s to carry out, in order.
//! No clock, socket, database or async inside; the controller runs the
//! effects. Time comes in twice: wall time (`now`) to stamp what happened,
//! and monotonic elapsed time in [`Input::Tick`] to measure waits, so a
//! wall-clock jump can neither end a wait early nor stretch it.
//!
//! Rules (see the tests):
//! - stop and rollback are accepted in every phase with a canary, and beat a
//!   promotion that has not finished;
//! - a rollback sets the canary share to 0 as its very first effect;
//! - auto-progression advances one step at a time after `wait` of
//!   continuously green checks; anything not green restarts the wait;
//! - a critical breach rolls back at once when auto-rollback is armed;
//! - steps never go backwards except by a rollback or a manual scale down.

use canary_shared::AuditAction;
use canary_shared::{
    ActionKind, BlockedAction, CanaryShare, Command, DeploymentStep, Phase, StepKind, StepStatus,
    UnixMillis,
};
use serde::{Deserialize, Serialize};

use crate::domain::roles::{Promotion, Roles, Routing};

/// The rules a deployment follows, from the config.
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// The traffic steps, strictly increasing, the last being 100 %.
    pub traffic_steps: Vec<CanaryShare>,
    /// Whether green checks advance the rollout by themselves.
    pub auto_progression: bool,
    /// How long checks must stay green before the next step, in milliseconds.
    pub wait_ms: u64,
    /// Whether a critical breach rolls back without a human.
    pub auto_rollback: bool,
    /// How long missing data is tolerated before [`Rules::on_long_no_data`] applies.
    pub no_data_timeout_ms: u64,
    /// What a long stretch of missing data leads to.
    pub on_long_no_data: NoDataAction,
    /// What a promotion does to the upstreams' roles.
    pub promotion: Promotion,
    /// How long, after a promotion that swapped the roles, the previous
    /// version stays deployed as a standby an undo sends traffic back to,
    /// in milliseconds (0: it is retired at once).
    pub undo_window_ms: u64,
    /// The names of the test runs that check the canary, in order, after
    /// its health check and before any traffic.
    pub test_runs: Vec<String>,
    /// The shadow step after the test runs, when there is one.
    pub shadow: Option<ShadowRules>,
}

/// The shadow step: production's requests copied to the canary, its
/// answers compared with production's; it passes once the checks on them
/// stayed green for `duration_ms`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShadowRules {
    /// The share of production's requests copied.
    pub share: CanaryShare,
    /// How long the checks must stay green, in milliseconds.
    pub duration_ms: u64,
}

/// What happens when checks have had no data for too long.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDataAction {
    /// Keep holding the current step and say why.
    Hold,
    /// Roll the canary back.
    Rollback,
}

/// The hooks the machine asks the controller to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// Build and deploy the canary version.
    Deploy,
    /// Check the new version before it gets traffic.
    HealthCheck,
    /// Make the canary version production.
    Promote,
    /// Undo the canary deployment.
    Rollback,
    /// Retire the version a promotion replaced, once its undo window is over.
    Retire,
    /// Run the test run at this place of `validation.test_runs` against the canary.
    TestRun(u8),
}

/// The combined judgement of the safety checks at one evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Verdict {
    /// Every check is safe (or watch): the wait may run.
    Green,
    /// A warning-level check is breached: alert, and the wait restarts.
    Warning {
        /// Which check and the numbers, in words.
        reason: String,
    },
    /// A critical check is breached.
    Critical {
        /// Which check and the numbers, in words.
        reason: String,
    },
    /// Some check has too little data to judge; never counts as green.
    NoData {
        /// Which check and why, in words.
        reason: String,
    },
    /// Every check is green but the statistical judge (enforce mode) has not
    /// passed the canary yet: the wait runs, but the step does not advance
    /// until the judge passes. Not missing data: it never times out into a
    /// rollback, the evidence simply keeps coming.
    Undecided {
        /// The judge's numbers so far, in words.
        reason: String,
    },
    /// The statistical judge (advisory mode) found a regression: the first
    /// time in a rollout it pauses the rollout and alerts, for a person to
    /// decide; after that it holds like a warning.
    Suspect {
        /// The judge's finding, in words.
        reason: String,
    },
}

/// Something the machine reacts to.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// An operator's or script's command.
    Command {
        /// Who asked (user, token name).
        actor: String,
        /// What.
        command: Command,
    },
    /// A hook finished.
    HookFinished {
        /// Which hook.
        hook: Hook,
        /// Whether it succeeded.
        succeeded: bool,
        /// What it said (exit code, last output line), in words.
        detail: String,
    },
    /// A judgement of the safety checks.
    Judged(Verdict),
    /// Monotonic time passed since the previous tick.
    Tick {
        /// Milliseconds elapsed.
        elapsed_ms: u64,
    },
}

/// What the controller must do, in the given order.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Set the router's canary share and which upstream serves production
    /// (together: a promotion moves both at once).
    Route(Routing),
    /// Run a hook.
    RunHook {
        /// Which.
        hook: Hook,
        /// The image tag it concerns.
        image_tag: String,
    },
    /// Record a decision in the audit trail.
    Audit(AuditRecord),
    /// Tell people (notifications, console alerts).
    Alert {
        /// What happened, in words.
        message: String,
    },
}

/// An audit entry as the machine decides it; the store adds its sequence number.
#[derive(Clone, Debug, PartialEq)]
pub struct AuditRecord {
    /// When.
    pub at: UnixMillis,
    /// Who: a user or token name, or `"controller"`.
    pub actor: String,
    /// What (`start`, `scale`, `auto_progress`, `auto_rollback`, …).
    pub action: AuditAction,
    /// Phase before.
    pub from_phase: Phase,
    /// Phase after.
    pub to_phase: Phase,
    /// Share before.
    pub from_share: CanaryShare,
    /// Share after.
    pub to_share: CanaryShare,
    /// Why, in words.
    pub reason: Option<String>,
}

/// Why an input cannot be applied; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{action:?} is not possible while {phase:?}: {reason}")]
pub struct TransitionRejected {
    /// The phase it was tried in.
    pub phase: Phase,
    /// What was tried.
    pub action: ActionKind,
    /// Why not, in words.
    pub reason: String,
}

/// The result of a successful [`Deployment::apply`].
#[derive(Clone, Debug, PartialEq)]
pub struct Transition {
    /// The deployment afterwards.
    pub next: Deployment,
    /// What to do, in order.
    pub effects: Vec<Effect>,
}

/// The whole deployment; everything here is persisted (as JSON, so a field
/// added later needs a `#[serde(default)]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Where it stands.
    pub phase: Phase,
    /// The canary version, once started.
    pub image_tag: Option<String>,
    /// The canary's share.
    pub share: CanaryShare,
    /// The workflow with each step's status and times.
    pub steps: Vec<DeploymentStep>,
    /// The share asked for at start, applied once the health check passes.
    pub starting_share: CanaryShare,
    /// The phase a pause returns to.
    pub paused_from: Option<Phase>,
    /// Continuous green time in the current step, in milliseconds.
    pub green_for_ms: u64,
    /// Continuous no-data time, in milliseconds.
    pub no_data_for_ms: u64,
    /// The latest verdict.
    pub last_verdict: Option<Verdict>,
    /// Why the rollout holds, failed or rolled back, in words.
    pub reason: Option<String>,
    /// An operator's choice of auto-progression for this rollout, overriding
    /// the config's until the next start.
    #[serde(default)]
    pub auto_progression: Option<bool>,
    /// Whether the advisory judge has already paused this rollout (it pauses
    /// once; after a person resumes, its finding holds like a warning).
    #[serde(default)]
    pub paused_by_judge: bool,
    /// Which upstream serves production, at which version.
    #[serde(default)]
    pub roles: Roles,
    /// The roles before the last promotion, kept for an undo.
    #[serde(default)]
    pub before_promotion: Option<Roles>,
    /// After a promotion that kept the previous version as a standby: how
    /// long an undo stays possible, in milliseconds (counted down by ticks,
    /// so the time a server is down does not count; 0 once it is over).
    /// `None`: no standby was kept.
    #[serde(default)]
    pub undo_left_ms: Option<u64>,
    /// Whether the retire hook is running for the standby (the next canary
    /// deploys to its upstream, so a start waits for it).
    #[serde(default)]
    pub retiring: bool,
}

/// Index of the first step after build & deploy and health check: the
/// first test run, or the first traffic step.
const FIRST_TEST_STEP: usize = 2;

impl Deployment {
    /// No canary: production serves everything, every step pending.
    pub fn idle(rules: &Rules) -> Deployment {
        Deployment {
            phase: Phase::Idle,
            image_tag: None,
            share: CanaryShare::ZERO,
            steps: fresh_steps(rules),
            starting_share: CanaryShare::ZERO,
            paused_from: None,
            green_for_ms: 0,
            no_data_for_ms: 0,
            last_verdict: None,
            reason: None,
            auto_progression: None,
            paused_by_judge: false,
            roles: Roles::default(),
            before_promotion: None,
            undo_left_ms: None,
            retiring: false,
        }
    }

    /// Whether *Undo promotion* is possible: right after a promotion, while
    /// the previous version stands by.
    pub fn can_undo_promotion(&self) -> bool {
        self.phase == Phase::Promoted
            && self.before_promotion.is_some()
            && self.undo_left_ms.is_some_and(|left| left > 0)
    }

    /// The hook this deployment waits on, which a restart runs again.
    pub fn hook_under_way(&self) -> Option<Hook> {
        match self.phase {
            Phase::BuildDeploy => Some(Hook::Deploy),
            Phase::HealthCheck => Some(Hook::HealthCheck),
            Phase::Validating => self.current_test_run().map(Hook::TestRun),
            Phase::Promoting => Some(Hook::Promote),
            Phase::RollingBack => Some(Hook::Rollback),
            Phase::Promoted if self.retiring => Some(Hook::Retire),
            _ => None,
        }
    }

    /// The share and roles a router must apply for this deployment.
    pub fn routing(&self) -> Routing {
        Routing {
            share: self.share,
            production: self.roles.production,
        }
    }

    /// Whether green checks advance this rollout by themselves.
    pub fn auto_progresses(&self, rules: &Rules) -> bool {
        self.auto_progression.unwrap_or(rules.auto_progression)
    }

    /// Whether a canary version is deployed (or being deployed).
    pub fn has_canary(&self) -> bool {
        !matches!(
            self.phase,
            Phase::Idle | Phase::RolledBack | Phase::Failed | Phase::Promoted
        )
    }

    /// The index in `steps` of the traffic step in progress, if any.
    pub fn current_step(&self) -> Option<usize> {
        self.steps.iter().position(|step| {
            step.status == StepStatus::InProgress && matches!(step.kind, StepKind::Traffic { .. })
        })
    }

    /// What may be asked for now, and why the rest may not.
    pub fn actions(&self) -> (Vec<ActionKind>, Vec<BlockedAction>) {
        let mut allowed = Vec::new();
        let mut blocked = Vec::new();
        for action in ALL_ACTIONS {
            match self.why_not(action) {
                None => allowed.push(action),
                Some(reason) => blocked.push(BlockedAction { action, reason }),
            }
        }
        (allowed, blocked)
    }

    fn why_not(&self, action: ActionKind) -> Option<String> {
        let phase = self.phase;
        let busy = || format!("not possible while {}", phase.label().to_lowercase());
        match action {
            ActionKind::Start if self.retiring => Some(
                "the retire hook is still running on the upstream the next canary deploys to"
                    .to_owned(),
            ),
            ActionKind::Start => self
                .has_canary()
                .then(|| "a canary is already running; stop it first".to_owned()),
            ActionKind::Scale | ActionKind::Pause => match phase {
                Phase::Progressing => None,
                Phase::Paused if action == ActionKind::Scale => None,
                Phase::Paused => Some("already paused".to_owned()),
                _ => Some(busy()),
            },
            ActionKind::Continue => match phase {
                Phase::Progressing | Phase::Paused | Phase::Validating => None,
                _ => Some(busy()),
            },
            ActionKind::Resume => (phase != Phase::Paused).then(|| "not paused".to_owned()),
            ActionKind::Promote => match phase {
                Phase::Progressing | Phase::Paused => None,
                _ => Some(busy()),
            },
            ActionKind::SetAutoProgression => match phase {
                Phase::BuildDeploy
                | Phase::HealthCheck
                | Phase::Validating
                | Phase::Progressing
                | Phase::Paused => None,
                _ if self.has_canary() => Some(busy()),
                _ => Some("no canary is running".to_owned()),
            },
            ActionKind::Rollback | ActionKind::Stop => match phase {
                Phase::RollingBack => Some("already rolling back".to_owned()),
                _ if self.has_canary() || self.share > CanaryShare::ZERO => None,
                _ if self.can_undo_promotion() => Some(
                    "no canary is running; Undo promotion sends the traffic back to the previous version"
                        .to_owned(),
                ),
                _ => Some("no canary is running".to_owned()),
            },
            ActionKind::UndoPromotion => match (phase, self.undo_left_ms) {
                _ if self.can_undo_promotion() => None,
                (Phase::Promoted, Some(_)) => {
                    Some("the undo window is over: the previous version was retired".to_owned())
                }
                (Phase::Promoted, None) => Some(
                    "no previous version stands by: the promote hook redeployed production in place"
                        .to_owned(),
                ),
                _ => Some("only right after a promotion".to_owned()),
            },
        }
    }

    /// Applies `input` at wall time `now`.
    pub fn apply(
        &self,
        input: Input,
        now: UnixMillis,
        rules: &Rules,
    ) -> Result<Transition, TransitionRejected> {
        let mut change = Change::new(self.clone(), now);
        match input {
            Input::Command { actor, command } => change.command(actor, command, rules)?,
            Input::HookFinished {
                hook,
                succeeded,
                detail,
            } => change.hook_finished(hook, succeeded, detail, rules),
            Input::Judged(verdict) => change.judged(verdict, rules),
            Input::Tick { elapsed_ms } => change.tick(elapsed_ms, rules),
        }
        Ok(change.finish())
    }
}

const ALL_ACTIONS: [ActionKind; 10] = [
    ActionKind::Start,
    ActionKind::Scale,
    ActionKind::Continue,
    ActionKind::Pause,
    ActionKind::Resume,
    ActionKind::Promote,
    ActionKind::SetAutoProgression,
    ActionKind::Rollback,
    ActionKind::Stop,
    ActionKind::UndoPromotion,
];

fn fresh_steps(rules: &Rules) -> Vec<DeploymentStep> {
    let mut steps = vec![
        DeploymentStep::pending(StepKind::BuildDeploy),
        DeploymentStep::pending(StepKind::HealthCheck),
    ];
    steps.extend(
        rules
            .test_runs
            .iter()
            .enumerate()
            .map(|(index, name)| DeploymentStep {
                name: Some(name.clone()),
                ..DeploymentStep::pending(StepKind::TestRun {
                    index: u8::try_from(index).unwrap_or(u8::MAX),
                })
            }),
    );
    steps.extend(rules.shadow.map(|shadow| {
        DeploymentStep::pending(StepKind::Shadow {
            percent: shadow.share,
        })
    }));
    steps.extend(
        rules
            .traffic_steps
            .iter()
            .map(|&percent| DeploymentStep::pending(StepKind::Traffic { percent })),
    );
    steps.push(DeploymentStep::pending(StepKind::Promoted));
    steps
}

/// A transition being built: the deployment so far and the effects in order.
struct Change {
    deployment: Deployment,
    effects: Vec<Effect>,
    now: UnixMillis,
    /// The routing the effects so far leave in force.
    routing: Routing,
}

impl Change {
    fn new(deployment: Deployment, now: UnixMillis) -> Change {
        Change {
            routing: deployment.routing(),
            deployment,
            effects: Vec::new(),
            now,
        }
    }

    fn finish(self) -> Transition {
        Transition {
            next: self.deployment,
            effects: self.effects,
        }
    }

    fn reject(&self, action: ActionKind) -> Result<(), TransitionRejected> {
        match self.deployment.why_not(action) {
            None => Ok(()),
            Some(reason) => Err(TransitionRejected {
                phase: self.deployment.phase,
                action,
                reason,
            }),
        }
    }

    /// Moves to `phase` and `share`, recording the decision; a share change
    /// is the first effect so traffic moves before anything else happens.
    fn decide(
        &mut self,
        actor: &str,
        action: AuditAction,
        phase: Phase,
        share: CanaryShare,
        reason: Option<String>,
    ) {
        let from_phase = self.deployment.phase;
        let from_share = self.deployment.share;
        self.deployment.phase = phase;
        self.deployment.share = share;
        let routing = self.deployment.routing();
        if routing != self.routing {
            self.routing = routing;
            self.effects.push(Effect::Route(routing));
        }
        self.effects.push(Effect::Audit(AuditRecord {
            at: self.now,
            actor: actor.to_owned(),
            action,
            from_phase,
            to_phase: phase,
            from_share,
            to_share: share,
            reason,
        }));
    }

    fn run_hook(&mut self, hook: Hook) {
        let image_tag = self.deployment.image_tag.clone().unwrap_or_default();
        self.effects.push(Effect::RunHook { hook, image_tag });
    }

    fn set_step(&mut self, index: usize, status: StepStatus) {
        let now = self.now;
        if let Some(step) = self.deployment.steps.get_mut(index) {
            match status {
                StepStatus::InProgress => {
                    step.started_at = Some(now);
                    step.ended_at = None;
                }
                StepStatus::Complete | StepStatus::Failed | StepStatus::Skipped => {
                    if step.started_at.is_none() && status != StepStatus::Skipped {
                        step.started_at = Some(now);
                    }
                    step.ended_at = Some(now);
                }
                StepStatus::Pending => {
                    step.started_at = None;
                    step.ended_at = None;
                }
            }
            step.status = status;
        }
    }

    /// Ends the step in progress (if any) with `status`.
    fn end_current(&mut self, status: StepStatus) {
        if let Some(index) = self
            .deployment
            .steps
            .iter()
            .position(|step| step.status == StepStatus::InProgress)
        {
            self.set_step(index, status);
        }
    }

    /// Makes traffic step `index` the current one, marking the ones jumped over.
    fn enter_traffic_step(&mut self, index: usize) {
        self.end_current(StepStatus::Complete);
        for jumped in self.first_traffic_step()..index {
            if self.deployment.steps[jumped].status == StepStatus::Pending {
                self.set_step(jumped, StepStatus::Skipped);
            }
        }
        self.set_step(index, StepStatus::InProgress);
        self.deployment.green_for_ms = 0;
        self.deployment.no_data_for_ms = 0;
    }

    fn traffic_share(&self, index: usize) -> CanaryShare {
        match self.deployment.steps.get(index).map(|step| step.kind) {
            Some(StepKind::Traffic { percent }) => percent,
            _ => CanaryShare::FULL,
        }
    }

    /// The index of the first traffic step (after any test runs).
    fn first_traffic_step(&self) -> usize {
        self.deployment
            .steps
            .iter()
            .position(|step| matches!(step.kind, StepKind::Traffic { .. }))
            .unwrap_or(FIRST_TEST_STEP)
    }

    /// The index of the last traffic step.
    fn last_traffic_step(&self) -> usize {
        self.deployment.steps.len() - 2
    }

    /// One step forward: the next traffic step, or promotion after the last.
    fn advance(&mut self, actor: &str, action: AuditAction, reason: Option<String>) {
        let next = match self.deployment.current_step() {
            Some(current) if current < self.last_traffic_step() => current + 1,
            Some(_) => return self.promote(actor, reason),
            None => self.first_traffic_step(),
        };
        self.deployment.paused_from = None;
        self.enter_traffic_step(next);
        let share = self.traffic_share(next);
        self.decide(actor, action, Phase::Progressing, share, reason);
    }

    /// Stop or rollback: the share goes to 0 first, then the decision is
    /// recorded, then the rollback hook runs. It beats a promotion in flight.
    fn roll_back(&mut self, actor: &str, action: AuditAction, reason: String) {
        self.end_current(StepStatus::Failed);
        self.deployment.paused_from = None;
        self.deployment.reason = Some(reason.clone());
        self.decide(
            actor,
            action,
            Phase::RollingBack,
            CanaryShare::ZERO,
            Some(reason.clone()),
        );
        let doing = match action {
            AuditAction::UndoPromotion => "Undoing the promotion",
            _ => "Rolling back",
        };
        self.effects.push(Effect::Alert {
            message: format!("{doing}: {reason}"),
        });
        self.run_hook(Hook::Rollback);
    }

    fn fail(&mut self, action: AuditAction, reason: String) {
        self.end_current(StepStatus::Failed);
        self.deployment.reason = Some(reason.clone());
        self.decide(
            "controller",
            action,
            Phase::Failed,
            CanaryShare::ZERO,
            Some(reason.clone()),
        );
        self.effects.push(Effect::Alert {
            message: format!("Canary failed: {reason}"),
        });
    }

    fn hook_finished(&mut self, hook: Hook, succeeded: bool, detail: String, rules: &Rules) {
        match (self.deployment.phase, hook, succeeded) {
            (Phase::BuildDeploy, Hook::Deploy, true) => {
                self.set_step(0, StepStatus::Complete);
                self.set_step(1, StepStatus::InProgress);
                self.decide(
                    "controller",
                    AuditAction::Deployed,
                    Phase::HealthCheck,
                    CanaryShare::ZERO,
                    Some(detail),
                );
                self.run_hook(Hook::HealthCheck);
            }
            (Phase::BuildDeploy, Hook::Deploy, false) => self.fail(
                AuditAction::DeployFailed,
                format!("deploy hook failed: {detail}"),
            ),
            (Phase::HealthCheck, Hook::HealthCheck, true) => self.healthy(detail),
            (Phase::Validating, Hook::TestRun(index), succeeded)
                if self.deployment.current_test_run() == Some(index) =>
            {
                self.test_run_finished(index, succeeded, detail);
            }
            (Phase::HealthCheck, Hook::HealthCheck, false) => {
                self.fail(
                    AuditAction::HealthCheckFailed,
                    format!("health check failed: {detail}"),
                );
            }
            (Phase::Promoting, Hook::Promote, true) => self.promoted(detail, rules),
            (Phase::Promoting, Hook::Promote, false) => {
                self.roll_back(
                    "controller",
                    AuditAction::PromoteFailed,
                    format!("promote hook failed: {detail}"),
                );
            }
            (Phase::RollingBack, Hook::Rollback, succeeded) => {
                let reason = if succeeded {
                    detail
                } else {
                    format!("rollback hook failed: {detail}")
                };
                self.decide(
                    "controller",
                    AuditAction::RolledBack,
                    Phase::RolledBack,
                    CanaryShare::ZERO,
                    Some(reason),
                );
            }
            (_, Hook::Retire, succeeded) if self.deployment.retiring => {
                self.retired(succeeded, detail);
            }
            // A hook that finishes after the deployment moved on (say, a deploy
            // hook after an emergency stop) changes nothing.
            _ => {}
        }
    }
}

pub use canary_shared::words::duration as human_duration;

mod automatic;
mod commands;
mod promotion;
mod validation;

#[cfg(test)]
mod tests;
