//! Validation before any traffic: after its health check the canary goes
//! through the team's test runs, one after another, then the shadow step
//! (production's requests copied to it, its answers compared); the first
//! to fail fails the rollout at 0 %, and after the last the canary gets
//! its starting share. An operator may skip what is left (Continue).

use canary_shared::{AuditAction, CanaryShare, Phase, StepKind, StepStatus};

use crate::domain::deployment::{
    Change, Deployment, FIRST_TEST_STEP, Hook, Rules, Verdict, human_duration,
};

impl Deployment {
    /// The test run in progress, by its place in `validation.test_runs`.
    pub fn current_test_run(&self) -> Option<u8> {
        self.steps.iter().find_map(|step| match step.kind {
            StepKind::TestRun { index } if step.status == StepStatus::InProgress => Some(index),
            _ => None,
        })
    }
}

impl Deployment {
    /// The share of production's requests to copy to the canary now: while
    /// the shadow step is in progress.
    pub fn mirror_share(&self) -> Option<CanaryShare> {
        if self.phase != Phase::Validating {
            return None;
        }
        self.steps.iter().find_map(|step| match step.kind {
            StepKind::Shadow { percent } if step.status == StepStatus::InProgress => Some(percent),
            _ => None,
        })
    }

    /// The share the step at `index` copies, if it is the shadow step.
    fn mirror_share_of(&self, index: usize) -> CanaryShare {
        match self.steps.get(index).map(|step| step.kind) {
            Some(StepKind::Shadow { percent }) => percent,
            _ => CanaryShare::ZERO,
        }
    }

    /// The index of the shadow step, if the rollout has one.
    pub fn shadow_step(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|step| matches!(step.kind, StepKind::Shadow { .. }))
    }
}

impl Change {
    /// The step of test run `index`.
    fn test_step(&self, index: u8) -> usize {
        FIRST_TEST_STEP + usize::from(index)
    }

    fn test_name(&self, index: u8) -> String {
        self.deployment
            .steps
            .get(self.test_step(index))
            .and_then(|step| step.name.clone())
            .unwrap_or_else(|| format!("test run {}", u16::from(index) + 1))
    }

    fn test_runs(&self) -> usize {
        self.deployment
            .steps
            .iter()
            .filter(|step| matches!(step.kind, StepKind::TestRun { .. }))
            .count()
    }

    /// The health check passed: the first test run or the shadow step
    /// starts, or, without either, the canary gets its starting share.
    pub(super) fn healthy(&mut self, detail: String) {
        self.set_step(1, StepStatus::Complete);
        self.next_validation(FIRST_TEST_STEP, AuditAction::Healthy, detail);
    }

    /// Starts the validation step at `index` (a test run or the shadow
    /// step) with the decision `action` said in `done`; past the last one,
    /// the canary gets its starting share.
    fn next_validation(&mut self, index: usize, action: AuditAction, done: String) {
        let Some(kind) = self
            .deployment
            .steps
            .get(index)
            .map(|step| step.kind)
            .filter(|_| index < self.first_traffic_step())
        else {
            return self.begin_traffic("controller", action, Some(done));
        };
        self.set_step(index, StepStatus::InProgress);
        let (reason, hook) = match kind {
            StepKind::TestRun { index: run } => (
                format!("{done}; test run {} next", self.test_name(run)),
                Some(Hook::TestRun(run)),
            ),
            _ => {
                self.deployment.green_for_ms = 0;
                self.deployment.no_data_for_ms = 0;
                self.deployment.last_verdict = None;
                let share = self.deployment.mirror_share_of(index);
                let reason = format!(
                    "{done}; shadow traffic next: {share} of production's requests copied to the canary, answered by production"
                );
                (reason, None)
            }
        };
        self.decide(
            "controller",
            action,
            Phase::Validating,
            CanaryShare::ZERO,
            Some(reason),
        );
        if let Some(hook) = hook {
            self.run_hook(hook);
        }
    }

    /// The canary's starting share, at the highest step it reaches, ending
    /// the step in progress.
    fn begin_traffic(&mut self, actor: &str, action: AuditAction, reason: Option<String>) {
        let starting = self.deployment.starting_share;
        let first = self.first_traffic_step();
        let index = (first..=self.last_traffic_step())
            .rev()
            .find(|&index| self.traffic_share(index) <= starting)
            .unwrap_or(first);
        self.enter_traffic_step(index);
        self.decide(actor, action, Phase::Progressing, starting, reason);
    }

    /// Test run `index` finished: the next one, traffic after the last, or
    /// a failed rollout.
    pub(super) fn test_run_finished(&mut self, index: u8, succeeded: bool, detail: String) {
        let step = self.test_step(index);
        let name = self.test_name(index);
        if let Some(step) = self.deployment.steps.get_mut(step) {
            step.detail = Some(detail.clone());
        }
        if !succeeded {
            return self.fail(
                AuditAction::TestRunFailed,
                format!("test run {name} failed: {detail}"),
            );
        }
        self.set_step(step, StepStatus::Complete);
        let done = if usize::from(index) + 1 < self.test_runs() {
            format!("{name} passed ({detail})")
        } else {
            format!("{name} passed ({detail}); every test run passed")
        };
        self.next_validation(step + 1, AuditAction::TestRunPassed, done);
    }

    /// A verdict of the checks (and the judge) on shadow traffic: a
    /// critical breach fails the rollout before anyone was served by the
    /// canary (when auto-rollback is armed); anything short of green
    /// restarts the wait.
    pub(super) fn shadow_judged(&mut self, verdict: Verdict, rules: &Rules) {
        match verdict {
            Verdict::Green | Verdict::Undecided { .. } => {
                self.deployment.no_data_for_ms = 0;
                self.deployment.reason = None;
            }
            Verdict::Critical { reason } if rules.auto_rollback => {
                self.fail(
                    AuditAction::ShadowFailed,
                    format!("on shadow traffic, before any user was served: {reason}"),
                );
            }
            Verdict::Critical { reason }
            | Verdict::Warning { reason }
            | Verdict::Suspect { reason } => self.hold_on_finding(reason, "shadow traffic: "),
            Verdict::NoData { reason } => {
                self.deployment.green_for_ms = 0;
                self.deployment.reason = Some(format!("holding: {reason}"));
            }
        }
    }

    /// Time passing in the shadow step: green checks for the step's
    /// duration pass it; missing data for too long fails it (or holds, by
    /// `analysis.on_long_no_data`).
    pub(super) fn shadow_tick(&mut self, elapsed_ms: u64, rules: &Rules) {
        let Some(shadow) = rules.shadow else {
            return;
        };
        match &self.deployment.last_verdict {
            Some(Verdict::Green | Verdict::Undecided { .. }) => {
                self.deployment.green_for_ms =
                    self.deployment.green_for_ms.saturating_add(elapsed_ms);
                if self.deployment.green_for_ms >= shadow.duration_ms {
                    let reason = format!(
                        "the canary answered {} of production's requests like production for {}",
                        shadow.share,
                        human_duration(shadow.duration_ms)
                    );
                    self.begin_traffic("controller", AuditAction::ShadowPassed, Some(reason));
                }
            }
            Some(Verdict::NoData { reason }) => {
                let reason = reason.clone();
                if let Some(why) = self.missing_data_too_long(elapsed_ms, &reason, rules) {
                    self.fail(
                        AuditAction::ShadowFailed,
                        format!("no shadow traffic to judge for {why}"),
                    );
                }
            }
            _ => {}
        }
    }

    /// An operator goes on without the test runs left: they are skipped
    /// (one still running is no longer waited for) and the canary gets its
    /// starting share.
    pub(super) fn skip_validation(&mut self, actor: &str) {
        let mut skipped = Vec::new();
        for index in FIRST_TEST_STEP..self.first_traffic_step() {
            if matches!(
                self.deployment.steps[index].status,
                StepStatus::Pending | StepStatus::InProgress
            ) {
                skipped.push(self.deployment.steps[index].label());
                self.set_step(index, StepStatus::Skipped);
            }
        }
        self.deployment.reason = None;
        let reason = format!("validation skipped: {}", skipped.join(", "));
        self.begin_traffic(actor, AuditAction::Continue, Some(reason));
    }
}
