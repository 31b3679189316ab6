//! The shadow step: after the test runs, production's requests are copied
//! to the canary; green checks for the step's duration pass it, a critical
//! breach fails the rollout with no user ever served by the canary.

use canary_shared::{CanaryShare, Command, Phase, StepKind, StepStatus};
use expect_test::expect;

use super::{Sim, green, rules, share};
use crate::domain::deployment::{Hook, Input, NoDataAction, ShadowRules, Verdict};

/// Started at `percent` with a test run and a 30 s shadow step at 5 %,
/// deployed and health-checked.
fn shadowing(percent: f64) -> Sim {
    let mut sim = Sim::new(super::Rules {
        test_runs: vec!["smoke".to_owned()],
        shadow: Some(ShadowRules {
            share: share(5.0),
            duration_ms: 30_000,
        }),
        ..rules()
    });
    sim.start(percent);
    sim.hook(Hook::Deploy, true);
    sim.hook(Hook::HealthCheck, true);
    sim.log.clear();
    sim.apply(Input::HookFinished {
        hook: Hook::TestRun(0),
        succeeded: true,
        detail: "exit 0".to_owned(),
    })
    .unwrap();
    sim
}

fn critical(reason: &str) -> Verdict {
    Verdict::Critical {
        reason: reason.to_owned(),
    }
}

#[test]
fn the_shadow_step_follows_the_test_runs_and_copies_without_serving() {
    let sim = shadowing(25.0);
    sim.check(expect![[r#"
        t=0s audit controller test_run_passed: Validating -> Validating, 0 % -> 0 % (smoke passed (exit 0); every test run passed; shadow traffic next: 5 % of production's requests copied to the canary, answered by production)"#]]);
    assert_eq!(
        sim.statuses(),
        "+++>.....",
        "deploy, health, smoke, shadow, 4 steps, promoted"
    );
    assert_eq!(
        sim.deployment.steps[3].kind,
        StepKind::Shadow {
            percent: share(5.0)
        }
    );
    assert_eq!(
        sim.deployment.share,
        CanaryShare::ZERO,
        "nobody is served by the canary"
    );
    assert_eq!(sim.deployment.mirror_share(), Some(share(5.0)));
    assert_eq!(
        sim.deployment.hook_under_way(),
        None,
        "a restart runs nothing again"
    );
}

#[test]
fn green_checks_for_the_duration_pass_it_and_the_canary_gets_its_share() {
    let mut sim = shadowing(25.0);
    sim.log.clear();
    for _ in 0..29 {
        sim.tick(1000, green());
    }
    assert_eq!(sim.deployment.phase, Phase::Validating);
    sim.tick(1000, green());
    sim.check(expect![[r#"
        t=30s share 25 %
        t=30s audit controller shadow_passed: Validating -> Progressing, 0 % -> 25 % (the canary answered 5 % of production's requests like production for 30 s)"#]]);
    assert_eq!(sim.deployment.mirror_share(), None, "copying stops");
    assert_eq!(
        sim.statuses(),
        "++++->...",
        "5 % jumped over for the starting 25 %"
    );
}

#[test]
fn an_undecided_judge_lets_the_step_pass_and_anything_worse_restarts_the_wait() {
    let mut sim = shadowing(5.0);
    let undecided = Verdict::Undecided {
        reason: "waiting for the statistical judge".to_owned(),
    };
    for _ in 0..20 {
        sim.tick(1000, undecided.clone());
    }
    sim.tick(
        1000,
        Verdict::Warning {
            reason: "p99 latency 900 ms > 800 ms".to_owned(),
        },
    );
    assert_eq!(sim.deployment.green_for_ms, 0);
    assert!(
        sim.log
            .last()
            .unwrap()
            .contains("alert shadow traffic: p99 latency"),
        "{:?}",
        sim.log
    );
    for _ in 0..29 {
        sim.tick(1000, undecided.clone());
    }
    assert_eq!(
        sim.deployment.phase,
        Phase::Validating,
        "the wait started again"
    );
    sim.tick(1000, green());
    assert_eq!(sim.deployment.phase, Phase::Progressing);
}

#[test]
fn a_critical_breach_fails_the_rollout_before_anyone_was_served() {
    let mut sim = shadowing(5.0);
    sim.tick(1000, green());
    sim.log.clear();
    sim.judge(critical(
        "shadow mismatches: shadow mismatch rate 40 % > 1 %",
    ));
    sim.check(expect![[r#"
        t=1s audit controller shadow_failed: Validating -> Failed, 0 % -> 0 % (on shadow traffic, before any user was served: shadow mismatches: shadow mismatch rate 40 % > 1 %)
        t=1s alert Canary failed: on shadow traffic, before any user was served: shadow mismatches: shadow mismatch rate 40 % > 1 %"#]]);
    assert_eq!(sim.deployment.steps[3].status, StepStatus::Failed);
    assert_eq!(sim.deployment.mirror_share(), None);
    assert!(
        sim.deployment.steps[3..]
            .iter()
            .all(|step| step.started_at.is_none() || step.status == StepStatus::Failed),
        "no traffic step ever started"
    );
}

#[test]
fn without_auto_rollback_a_breach_alerts_and_holds() {
    let mut sim = shadowing(5.0);
    sim.rules.auto_rollback = false;
    sim.log.clear();
    sim.tick(1000, critical("error rate 30 % > 5 %"));
    assert_eq!(sim.deployment.phase, Phase::Validating);
    assert_eq!(
        sim.deployment.reason.as_deref(),
        Some("error rate 30 % > 5 %")
    );
    sim.check(expect![[r#"
        t=0s alert shadow traffic: error rate 30 % > 5 %"#]]);
}

#[test]
fn no_shadow_traffic_for_too_long_fails_or_holds_as_configured() {
    let no_data = Verdict::NoData {
        reason: "3 shadow requests in the last 60 s, 20 needed to judge".to_owned(),
    };
    let mut sim = shadowing(5.0);
    sim.rules.on_long_no_data = NoDataAction::Rollback;
    for _ in 0..30 {
        sim.tick(1000, no_data.clone());
    }
    assert_eq!(sim.deployment.phase, Phase::Failed);
    assert_eq!(
        sim.deployment.reason.as_deref(),
        Some(
            "no shadow traffic to judge for 30 s: 3 shadow requests in the last 60 s, 20 needed to judge"
        )
    );
    let mut held = shadowing(5.0);
    for _ in 0..120 {
        held.tick(1000, no_data.clone());
    }
    assert_eq!(held.deployment.phase, Phase::Validating);
    assert_eq!(
        held.deployment.reason.as_deref(),
        Some("holding: 3 shadow requests in the last 60 s, 20 needed to judge")
    );
}

#[test]
fn continue_skips_the_shadow_step_and_stop_ends_the_copying() {
    let mut sim = shadowing(5.0);
    sim.log.clear();
    sim.command(Command::Continue).unwrap();
    sim.check(expect![[r#"
        t=0s share 5 %
        t=0s audit ops continue: Validating -> Progressing, 0 % -> 5 % (validation skipped: Shadow traffic 5 %)"#]]);
    assert_eq!(sim.deployment.mirror_share(), None);
    let mut stopped = shadowing(5.0);
    stopped
        .command(Command::Stop {
            reason: "wrong build".to_owned(),
        })
        .unwrap();
    assert_eq!(stopped.deployment.phase, Phase::RollingBack);
    assert_eq!(stopped.deployment.mirror_share(), None);
}

#[test]
fn without_test_runs_the_health_check_leads_to_the_shadow_step() {
    let mut sim = Sim::new(super::Rules {
        shadow: Some(ShadowRules {
            share: share(100.0),
            duration_ms: 5_000,
        }),
        ..rules()
    });
    sim.start(5.0);
    sim.hook(Hook::Deploy, true);
    sim.log.clear();
    sim.hook(Hook::HealthCheck, true);
    sim.check(expect![[r#"
        t=0s audit controller healthy: HealthCheck -> Validating, 0 % -> 0 % (exit 0; shadow traffic next: 100 % of production's requests copied to the canary, answered by production)"#]]);
    assert_eq!(sim.deployment.mirror_share(), Some(CanaryShare::FULL));
}
