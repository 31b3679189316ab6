//! Validation before any traffic: after its health check the canary goes
//! through the team's test runs, one after another; the first to fail
//! fails the rollout at 0 %, and after the last the canary gets its
//! starting share. An operator may skip what is left (Continue).

use canary_shared::{AuditAction, CanaryShare, Phase, StepKind, StepStatus};

use crate::domain::deployment::{Change, Deployment, FIRST_TEST_STEP, Hook};

impl Deployment {
    /// The test run in progress, by its place in `validation.test_runs`.
    pub fn current_test_run(&self) -> Option<u8> {
        self.steps.iter().find_map(|step| match step.kind {
            StepKind::TestRun { index } if step.status == StepStatus::InProgress => Some(index),
            _ => None,
        })
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

    /// The health check passed: the first test run starts, or, without
    /// any, the canary gets its starting share.
    pub(super) fn healthy(&mut self, detail: String) {
        if self.test_runs() == 0 {
            return self.begin_traffic("controller", AuditAction::Healthy, Some(detail));
        }
        self.set_step(1, StepStatus::Complete);
        self.set_step(self.test_step(0), StepStatus::InProgress);
        self.decide(
            "controller",
            AuditAction::Healthy,
            Phase::Validating,
            CanaryShare::ZERO,
            Some(format!("{detail}; test run {} next", self.test_name(0))),
        );
        self.run_hook(Hook::TestRun(0));
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
        let next = index.saturating_add(1);
        if usize::from(next) < self.test_runs() {
            self.set_step(step, StepStatus::Complete);
            self.set_step(self.test_step(next), StepStatus::InProgress);
            let reason = format!(
                "{name} passed ({detail}); test run {} next",
                self.test_name(next)
            );
            self.decide(
                "controller",
                AuditAction::TestRunPassed,
                Phase::Validating,
                CanaryShare::ZERO,
                Some(reason),
            );
            self.run_hook(Hook::TestRun(next));
        } else {
            let reason = format!("{name} passed ({detail}); every test run passed");
            self.begin_traffic("controller", AuditAction::TestRunPassed, Some(reason));
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
        let reason = format!("validation skipped: {}", skipped.join(", "));
        self.begin_traffic(actor, AuditAction::Continue, Some(reason));
    }
}
