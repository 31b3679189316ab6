//! Undoing a promotion: the previous version stands by for the undo window,
//! an undo sends everything back to it at once, and when the time is up the
//! retire hook runs.

use canary_shared::{ActionKind, Command, Phase, StartRequest};
use expect_test::expect;

use super::{Sim, rules, share};
use crate::domain::deployment::{Hook, Input};
use crate::domain::roles::{Promotion, Roles, UpstreamSlot};

/// A rollout at 50 % under `rules`, promoted and waiting for its promote
/// hook, its log cleared.
fn promoting(rules: super::Rules) -> Sim {
    let mut sim = Sim::new(rules);
    sim.start(50.0);
    sim.hook(Hook::Deploy, true);
    sim.hook(Hook::HealthCheck, true);
    sim.command(Command::Promote).unwrap();
    sim.log.clear();
    sim
}

/// A rollout promoted at 50 % with the roles swapped, its log cleared.
fn promoted(undo_window_ms: u64) -> Sim {
    let mut sim = promoting(super::Rules {
        undo_window_ms,
        ..rules()
    });
    sim.hook(Hook::Promote, true);
    assert_eq!(sim.deployment.phase, Phase::Promoted);
    sim.log.clear();
    sim
}

fn pass(sim: &mut Sim, ms: u64) {
    sim.now_ms += ms;
    sim.apply(Input::Tick { elapsed_ms: ms }).unwrap();
}

fn undo(sim: &mut Sim) -> Result<(), crate::domain::deployment::TransitionRejected> {
    sim.command(Command::UndoPromotion {
        reason: "v2.7.0 leaks memory".to_owned(),
    })
}

#[test]
fn an_undo_within_the_window_gives_production_back_to_the_standby_in_one_routing_change() {
    let mut sim = promoted(3_600_000);
    assert_eq!(sim.deployment.undo_left_ms, Some(3_600_000));
    let (allowed, _) = sim.deployment.actions();
    assert!(allowed.contains(&ActionKind::UndoPromotion));
    pass(&mut sim, 59 * 60_000);
    undo(&mut sim).unwrap();
    sim.check(expect![[r#"
        t=3540s share 0 %
        t=3540s audit ops undo_promotion: Promoted -> RollingBack, 0 % -> 0 % (v2.7.0 leaks memory)
        t=3540s alert Undoing the promotion: v2.7.0 leaks memory
        t=3540s hook Rollback v2.7.0"#]]);
    assert_eq!(
        sim.deployment.roles,
        Roles::default(),
        "production is the upstream and version it was before the promotion"
    );
    sim.hook(Hook::Rollback, true);
    assert_eq!(sim.deployment.phase, Phase::RolledBack);
    assert!(undo(&mut sim).is_err(), "a promotion is undone once");
    // Nothing is left to retire: the standby serves production again.
    pass(&mut sim, 3_600_000);
    assert!(!sim.log.iter().any(|line| line.contains("Retire")));
}

#[test]
fn when_the_window_is_over_the_undo_is_gone_and_the_retire_hook_runs_once() {
    let mut sim = promoted(60_000);
    pass(&mut sim, 59_000);
    assert!(sim.log.is_empty(), "{:?}", sim.log);
    pass(&mut sim, 1_000);
    sim.check(expect![[r#"
        t=60s audit controller undo_window_ended: Promoted -> Promoted, 0 % -> 0 % (the undo window of 60 s is over: the previous version on the upstream listed as production is retired (the retire hook runs))
        t=60s hook Retire v2.7.0"#]]);
    let (_, blocked) = sim.deployment.actions();
    let why = |action| {
        blocked
            .iter()
            .find(|blocked| blocked.action == action)
            .map(|blocked| blocked.reason.clone())
    };
    assert_eq!(
        why(ActionKind::UndoPromotion).as_deref(),
        Some("the undo window is over: the previous version was retired")
    );
    assert_eq!(
        why(ActionKind::Start).as_deref(),
        Some("the retire hook is still running on the upstream the next canary deploys to"),
        "the next canary deploys where the retire hook works"
    );
    assert_eq!(
        sim.deployment.hook_under_way(),
        Some(Hook::Retire),
        "a restart runs it again"
    );
    sim.log.clear();
    pass(&mut sim, 60_000);
    sim.hook(Hook::Retire, false);
    sim.check(expect![[r#"
        t=120s audit controller retired: Promoted -> Promoted, 0 % -> 0 % (retire hook failed: exit 0)"#]]);
    assert_eq!(sim.deployment.hook_under_way(), None);
    assert!(undo(&mut sim).is_err());
    sim.start(5.0);
    assert_eq!(
        sim.deployment.roles.production,
        UpstreamSlot::ListedAsCanary,
        "the next rollout keeps the promoted version in production"
    );
}

#[test]
fn a_window_of_zero_retires_the_previous_version_at_the_promotion() {
    let mut sim = promoting(super::Rules {
        undo_window_ms: 0,
        ..rules()
    });
    sim.hook(Hook::Promote, true);
    sim.check(expect![[r#"
        t=0s share 0 %, production on the upstream listed as canary
        t=0s audit controller promoted: Promoting -> Promoted, 100 % -> 0 % (exit 0; production is now v2.7.0 on the upstream listed as canary; the next canary deploys to the upstream listed as production)
        t=0s audit controller undo_window_ended: Promoted -> Promoted, 0 % -> 0 % (no undo window (upstreams.undo_window is 0): the previous version on the upstream listed as production is retired (the retire hook runs))
        t=0s hook Retire v2.7.0"#]]);
    assert!(undo(&mut sim).is_err());
}

#[test]
fn rollback_and_stop_are_not_an_undo() {
    let mut sim = promoted(3_600_000);
    for command in [
        Command::Rollback {
            reason: "r".to_owned(),
        },
        Command::Stop {
            reason: "s".to_owned(),
        },
    ] {
        let refused = sim.command(command).unwrap_err();
        assert_eq!(
            refused.reason,
            "no canary is running; Undo promotion sends the traffic back to the previous version"
        );
    }
    assert_eq!(sim.deployment.phase, Phase::Promoted);
}

#[test]
fn a_new_start_ends_the_window_without_the_retire_hook() {
    let mut sim = promoted(3_600_000);
    sim.command(Command::Start(StartRequest {
        image_tag: "v2.8.0".to_owned(),
        traffic_percent: share(5.0),
    }))
    .unwrap();
    sim.check(expect![[r#"
        t=0s audit ops start: Promoted -> BuildDeploy, 0 % -> 0 % (deploy v2.8.0 and start at 5 %; this ends the last promotion's undo window (the new canary deploys over the previous version))
        t=0s hook Deploy v2.8.0"#]]);
    sim.hook(Hook::Deploy, true);
    sim.hook(Hook::HealthCheck, true);
    sim.command(Command::Stop {
        reason: "s".to_owned(),
    })
    .unwrap();
    assert_eq!(
        sim.deployment.roles.production,
        UpstreamSlot::ListedAsCanary,
        "stopping the next canary leaves the promoted version in production"
    );
    assert!(undo(&mut sim).is_err());
}

#[test]
fn a_promote_hook_that_redeploys_production_keeps_no_standby() {
    let mut sim = promoting(super::Rules {
        promotion: Promotion::HookRedeploysProduction,
        ..rules()
    });
    sim.hook(Hook::Promote, true);
    sim.log.clear();
    let refused = undo(&mut sim).unwrap_err();
    assert_eq!(
        refused.reason,
        "no previous version stands by: the promote hook redeployed production in place"
    );
    pass(&mut sim, 7_200_000);
    assert!(sim.log.is_empty(), "no retire hook: {:?}", sim.log);
}

#[test]
fn only_the_ticks_in_the_promoted_phase_count_down_and_a_restart_keeps_the_time_left() {
    let mut sim = promoted(600_000);
    pass(&mut sim, 200_000);
    let saved = serde_json::to_string(&sim.deployment).unwrap();
    let restored: crate::domain::deployment::Deployment = serde_json::from_str(&saved).unwrap();
    assert_eq!(restored.undo_left_ms, Some(400_000));
    assert!(restored.can_undo_promotion());
}
