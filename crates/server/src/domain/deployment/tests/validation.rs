//! Test runs before any traffic: in order after the health check, each
//! audited; the first failure fails the rollout at 0 %; after the last the
//! canary gets its starting share; Continue skips what is left.

use canary_shared::{ActionKind, CanaryShare, Command, Phase, StepKind, StepStatus};
use expect_test::expect;

use super::{Sim, rules, share};
use crate::domain::deployment::{Hook, Input};

/// Started at `percent` with two test runs, deployed and health-checked.
fn validating(percent: f64) -> Sim {
    let mut sim = Sim::new(super::Rules {
        test_runs: vec!["smoke".to_owned(), "contract".to_owned()],
        ..rules()
    });
    sim.start(percent);
    sim.hook(Hook::Deploy, true);
    sim.log.clear();
    sim.hook(Hook::HealthCheck, true);
    sim
}

fn finish(sim: &mut Sim, index: u8, succeeded: bool, detail: &str) {
    sim.apply(Input::HookFinished {
        hook: Hook::TestRun(index),
        succeeded,
        detail: detail.to_owned(),
    })
    .unwrap();
}

#[test]
fn test_runs_go_one_after_another_before_any_traffic() {
    let mut sim = validating(25.0);
    assert_eq!(sim.deployment.phase, Phase::Validating);
    assert_eq!(sim.deployment.share, CanaryShare::ZERO);
    assert_eq!(
        sim.statuses(),
        "++>......",
        "deploy, health, 2 runs, 4 steps, promoted"
    );
    finish(&mut sim, 0, true, "exit 0");
    assert_eq!(
        sim.deployment.share,
        CanaryShare::ZERO,
        "no traffic between runs"
    );
    finish(&mut sim, 1, true, "exit 0: 12 contracts");
    sim.check(expect![[r#"
        t=0s audit controller healthy: HealthCheck -> Validating, 0 % -> 0 % (exit 0; test run smoke next)
        t=0s hook TestRun(0) v2.7.0
        t=0s audit controller test_run_passed: Validating -> Validating, 0 % -> 0 % (smoke passed (exit 0); test run contract next)
        t=0s hook TestRun(1) v2.7.0
        t=0s share 25 %
        t=0s audit controller test_run_passed: Validating -> Progressing, 0 % -> 25 % (contract passed (exit 0: 12 contracts); every test run passed)"#]]);
    assert_eq!(sim.statuses(), "++++->...");
    assert_eq!(
        sim.deployment.steps[3].detail.as_deref(),
        Some("exit 0: 12 contracts"),
        "the stepper shows how each ended"
    );
}

#[test]
fn a_failed_test_run_fails_the_rollout_before_any_traffic() {
    let mut sim = validating(5.0);
    sim.log.clear();
    finish(&mut sim, 0, false, "exit 1: 3 of 40 failed");
    sim.check(expect![[r#"
        t=0s audit controller test_run_failed: Validating -> Failed, 0 % -> 0 % (test run smoke failed: exit 1: 3 of 40 failed)
        t=0s alert Canary failed: test run smoke failed: exit 1: 3 of 40 failed"#]]);
    assert_eq!(sim.deployment.steps[2].status, StepStatus::Failed);
    assert_eq!(sim.deployment.steps[3].status, StepStatus::Pending);
    // A late report of the next run changes nothing.
    let before = sim.deployment.clone();
    finish(&mut sim, 1, true, "exit 0");
    assert_eq!(sim.deployment, before);
}

#[test]
fn continue_skips_the_test_runs_left_and_a_late_result_changes_nothing() {
    let mut sim = validating(5.0);
    sim.log.clear();
    assert!(sim.deployment.actions().0.contains(&ActionKind::Continue));
    sim.command(Command::Continue).unwrap();
    sim.check(expect![[r#"
        t=0s share 5 %
        t=0s audit ops continue: Validating -> Progressing, 0 % -> 5 % (validation skipped: Test: smoke, Test: contract)"#]]);
    assert_eq!(sim.statuses(), "++-->....");
    let before = sim.deployment.clone();
    finish(&mut sim, 0, false, "exit 1");
    assert_eq!(sim.deployment, before, "the skipped run's end is ignored");
}

#[test]
fn stop_during_validation_rolls_back_and_a_restart_runs_the_test_in_progress_again() {
    let mut sim = validating(5.0);
    finish(&mut sim, 0, true, "exit 0");
    assert_eq!(sim.deployment.hook_under_way(), Some(Hook::TestRun(1)));
    sim.command(Command::Stop {
        reason: "wrong build".to_owned(),
    })
    .unwrap();
    assert_eq!(sim.deployment.phase, Phase::RollingBack);
    assert_eq!(sim.deployment.share, CanaryShare::ZERO);
}

#[test]
fn without_test_runs_the_health_check_leads_straight_to_traffic() {
    let mut sim = Sim::progressing(5.0);
    assert_eq!(sim.deployment.phase, Phase::Progressing);
    assert!(
        !sim.deployment
            .steps
            .iter()
            .any(|step| matches!(step.kind, StepKind::TestRun { .. }))
    );
    sim.command(Command::Scale {
        percent: share(50.0),
    })
    .unwrap();
    assert_eq!(sim.statuses(), "+++->..");
}
