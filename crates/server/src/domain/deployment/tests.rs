//! The deployment state machine, driven input by input with a fake clock.

use canary_shared::{CanaryShare, Command, Phase, StartRequest, StepStatus, UnixMillis};
use expect_test::{Expect, expect};
use proptest::prelude::*;

use crate::domain::deployment::{
    Deployment, Effect, Hook, Input, NoDataAction, Rules, TransitionRejected, Verdict,
};
use crate::domain::roles::{Promotion, UpstreamSlot};

mod shadow;
mod undo;
mod validation;

fn share(percent: f64) -> CanaryShare {
    CanaryShare::from_percent(percent).unwrap()
}

fn rules() -> Rules {
    Rules {
        traffic_steps: vec![share(5.0), share(25.0), share(50.0), share(100.0)],
        auto_progression: true,
        wait_ms: 10_000,
        auto_rollback: true,
        no_data_timeout_ms: 30_000,
        on_long_no_data: NoDataAction::Hold,
        promotion: Promotion::SwapRoles,
        undo_window_ms: 3_600_000,
        test_runs: Vec::new(),
        shadow: None,
    }
}

/// A deployment driven by inputs, with every effect written down as a line.
struct Sim {
    deployment: Deployment,
    rules: Rules,
    now_ms: u64,
    log: Vec<String>,
}

impl Sim {
    fn new(rules: Rules) -> Sim {
        Sim {
            deployment: Deployment::idle(&rules),
            rules,
            now_ms: 0,
            log: Vec::new(),
        }
    }

    fn apply(&mut self, input: Input) -> Result<(), TransitionRejected> {
        let transition = self
            .deployment
            .apply(input, UnixMillis(self.now_ms), &self.rules)?;
        for effect in &transition.effects {
            self.log.push(describe(effect, self.now_ms));
        }
        self.deployment = transition.next;
        Ok(())
    }

    fn command(&mut self, command: Command) -> Result<(), TransitionRejected> {
        self.apply(Input::Command {
            actor: "ops".to_owned(),
            command,
        })
    }

    fn start(&mut self, percent: f64) {
        self.command(Command::Start(StartRequest {
            image_tag: "v2.7.0".to_owned(),
            traffic_percent: share(percent),
        }))
        .unwrap();
    }

    fn hook(&mut self, hook: Hook, succeeded: bool) {
        self.apply(Input::HookFinished {
            hook,
            succeeded,
            detail: "exit 0".to_owned(),
        })
        .unwrap();
    }

    /// Start, deploy and pass the health check: progressing at `percent`.
    fn progressing(percent: f64) -> Sim {
        let mut sim = Sim::new(rules());
        sim.start(percent);
        sim.hook(Hook::Deploy, true);
        sim.hook(Hook::HealthCheck, true);
        sim.log.clear();
        sim
    }

    fn judge(&mut self, verdict: Verdict) {
        self.apply(Input::Judged(verdict)).unwrap();
    }

    /// One evaluation tick: a verdict, then `ms` of monotonic time.
    fn tick(&mut self, ms: u64, verdict: Verdict) {
        self.judge(verdict);
        self.now_ms += ms;
        self.apply(Input::Tick { elapsed_ms: ms }).unwrap();
    }

    fn check(&self, expected: Expect) {
        expected.assert_eq(&self.log.join("\n"));
    }

    fn statuses(&self) -> String {
        self.deployment
            .steps
            .iter()
            .map(|step| match step.status {
                StepStatus::Pending => '.',
                StepStatus::InProgress => '>',
                StepStatus::Complete => '+',
                StepStatus::Failed => 'x',
                StepStatus::Skipped => '-',
            })
            .collect()
    }
}

fn describe(effect: &Effect, now_ms: u64) -> String {
    let t = format!("t={}s", now_ms / 1000);
    match effect {
        Effect::Route(routing) if routing.production == UpstreamSlot::ListedAsProduction => {
            format!("{t} share {}", routing.share)
        }
        Effect::Route(routing) => format!(
            "{t} share {}, production on the upstream listed as {}",
            routing.share,
            routing.production.config_key()
        ),
        Effect::RunHook { hook, image_tag } => format!("{t} hook {hook:?} {image_tag}"),
        Effect::Alert { message } => format!("{t} alert {message}"),
        Effect::Audit(record) => format!(
            "{t} audit {} {}: {:?} -> {:?}, {} -> {}{}",
            record.actor,
            record.action,
            record.from_phase,
            record.to_phase,
            record.from_share,
            record.to_share,
            record
                .reason
                .as_ref()
                .map(|reason| format!(" ({reason})"))
                .unwrap_or_default()
        ),
    }
}

fn green() -> Verdict {
    Verdict::Green
}

#[test]
fn a_healthy_canary_walks_every_step_and_is_promoted() {
    let mut sim = Sim::new(rules());
    sim.start(5.0);
    sim.hook(Hook::Deploy, true);
    sim.hook(Hook::HealthCheck, true);
    for _ in 0..4 {
        for _ in 0..10 {
            sim.tick(1_000, green());
        }
    }
    sim.hook(Hook::Promote, true);
    sim.check(expect![[r#"
        t=0s audit ops start: Idle -> BuildDeploy, 0 % -> 0 % (deploy v2.7.0 and start at 5 %)
        t=0s hook Deploy v2.7.0
        t=0s audit controller deployed: BuildDeploy -> HealthCheck, 0 % -> 0 % (exit 0)
        t=0s hook HealthCheck v2.7.0
        t=0s share 5 %
        t=0s audit controller healthy: HealthCheck -> Progressing, 0 % -> 5 % (exit 0)
        t=10s share 25 %
        t=10s audit controller auto_progress: Progressing -> Progressing, 5 % -> 25 % (checks green for 10 s)
        t=20s share 50 %
        t=20s audit controller auto_progress: Progressing -> Progressing, 25 % -> 50 % (checks green for 10 s)
        t=30s share 100 %
        t=30s audit controller auto_progress: Progressing -> Progressing, 50 % -> 100 % (checks green for 10 s)
        t=40s audit controller promote: Progressing -> Promoting, 100 % -> 100 % (checks green for 10 s)
        t=40s hook Promote v2.7.0
        t=40s share 0 %, production on the upstream listed as canary
        t=40s audit controller promoted: Promoting -> Promoted, 100 % -> 0 % (exit 0; production is now v2.7.0 on the upstream listed as canary; the next canary deploys to the upstream listed as production; the previous version stands by for 1 h (Undo promotion sends the traffic back to it))"#]]);
    assert_eq!(sim.deployment.phase, Phase::Promoted);
    assert_eq!(sim.statuses(), "+++++++");
}

#[test]
fn anything_not_green_restarts_the_wait() {
    let mut sim = Sim::progressing(5.0);
    for _ in 0..6 {
        sim.tick(1_000, green());
    }
    sim.tick(
        1_000,
        Verdict::Warning {
            reason: "memory queries 55 ms > 50 ms".to_owned(),
        },
    );
    for _ in 0..9 {
        sim.tick(1_000, green());
    }
    assert_eq!(
        sim.deployment.share,
        share(5.0),
        "the warning restarted the wait"
    );
    sim.tick(
        1_000,
        Verdict::NoData {
            reason: "3 requests, 50 needed".to_owned(),
        },
    );
    assert_eq!(
        sim.deployment.green_for_ms, 0,
        "missing data never counts as green"
    );
    for _ in 0..10 {
        sim.tick(1_000, green());
    }
    assert_eq!(sim.deployment.share, share(25.0));
    sim.check(expect![[r#"
        t=6s alert memory queries 55 ms > 50 ms
        t=27s share 25 %
        t=27s audit controller auto_progress: Progressing -> Progressing, 5 % -> 25 % (checks green for 10 s)"#]]);
}

#[test]
fn auto_progression_never_skips_a_step() {
    let mut sim = Sim::progressing(5.0);
    sim.judge(green());
    sim.apply(Input::Tick {
        elapsed_ms: 3_600_000,
    })
    .unwrap();
    assert_eq!(
        sim.deployment.share,
        share(25.0),
        "an hour of green moves one step, not four"
    );
    assert_eq!(sim.deployment.green_for_ms, 0);
}

#[test]
fn a_critical_breach_rolls_back_with_the_share_at_zero_first() {
    let mut sim = Sim::progressing(25.0);
    sim.tick(
        1_000,
        Verdict::Critical {
            reason: "p95 latency 1,340 ms > 1,000 ms".to_owned(),
        },
    );
    sim.hook(Hook::Rollback, true);
    sim.check(expect![[r#"
        t=0s share 0 %
        t=0s audit controller auto_rollback: Progressing -> RollingBack, 25 % -> 0 % (p95 latency 1,340 ms > 1,000 ms)
        t=0s alert Rolling back: p95 latency 1,340 ms > 1,000 ms
        t=0s hook Rollback v2.7.0
        t=1s audit controller rolled_back: RollingBack -> RolledBack, 0 % -> 0 % (exit 0)"#]]);
    assert_eq!(
        sim.statuses(),
        "++-x...",
        "5 % was skipped by the start at 25 %, which failed"
    );
}

#[test]
fn a_critical_breach_only_alerts_when_auto_rollback_is_off() {
    let mut sim = Sim::progressing(5.0);
    sim.rules.auto_rollback = false;
    sim.tick(
        1_000,
        Verdict::Critical {
            reason: "error rate 20 % > 15 %".to_owned(),
        },
    );
    assert_eq!(sim.deployment.phase, Phase::Progressing);
    sim.check(expect![[r#"t=0s alert error rate 20 % > 15 %"#]]);
}

#[test]
fn stop_beats_a_promotion_in_flight_and_a_late_hook_changes_nothing() {
    let mut sim = Sim::progressing(50.0);
    sim.command(Command::Promote).unwrap();
    sim.command(Command::Stop {
        reason: "pager went off".to_owned(),
    })
    .unwrap();
    sim.hook(Hook::Promote, true);
    assert_eq!(sim.deployment.phase, Phase::RollingBack);
    assert_eq!(sim.deployment.share, CanaryShare::ZERO);
    sim.check(expect![[r#"
        t=0s share 100 %
        t=0s audit ops promote: Progressing -> Promoting, 50 % -> 100 %
        t=0s hook Promote v2.7.0
        t=0s share 0 %
        t=0s audit ops stop: Promoting -> RollingBack, 100 % -> 0 % (pager went off)
        t=0s alert Rolling back: pager went off
        t=0s hook Rollback v2.7.0"#]]);
}

#[test]
fn the_next_rollout_after_a_swap_keeps_production_on_the_promoted_upstream() {
    let mut sim = Sim::progressing(50.0);
    sim.command(Command::Promote).unwrap();
    sim.hook(Hook::Promote, true);
    let promoted = sim.deployment.roles.clone();
    assert_eq!(promoted.production, UpstreamSlot::ListedAsCanary);
    assert_eq!(promoted.production_version.as_deref(), Some("v2.7.0"));
    sim.log.clear();
    sim.command(Command::Start(StartRequest {
        image_tag: "v2.8.0".to_owned(),
        traffic_percent: share(5.0),
    }))
    .unwrap();
    assert_eq!(sim.deployment.roles, promoted, "a start keeps the roles");
    assert_eq!(
        sim.deployment
            .routing()
            .slot_of(canary_shared::Side::Canary),
        UpstreamSlot::ListedAsProduction,
        "the next canary runs on the upstream the promotion freed"
    );
    sim.check(expect![[r#"
        t=0s audit ops start: Promoted -> BuildDeploy, 0 % -> 0 % (deploy v2.8.0 and start at 5 %; this ends the last promotion's undo window (the new canary deploys over the previous version))
        t=0s hook Deploy v2.8.0"#]]);
}

#[test]
fn a_promote_hook_that_redeploys_production_keeps_the_upstreams_roles() {
    let mut sim = Sim::new(Rules {
        promotion: Promotion::HookRedeploysProduction,
        ..rules()
    });
    sim.start(5.0);
    sim.hook(Hook::Deploy, true);
    sim.hook(Hook::HealthCheck, true);
    sim.command(Command::Promote).unwrap();
    sim.log.clear();
    sim.hook(Hook::Promote, true);
    assert_eq!(
        sim.deployment.roles.production,
        UpstreamSlot::ListedAsProduction
    );
    assert_eq!(
        sim.deployment.roles.production_version.as_deref(),
        Some("v2.7.0")
    );
    sim.check(expect![[r#"
        t=0s share 0 %
        t=0s audit controller promoted: Promoting -> Promoted, 100 % -> 0 % (exit 0; the promote hook put v2.7.0 on production (the upstream listed as production))"#]]);
    sim.log.clear();
    let mut failed = Sim::new(Rules {
        promotion: Promotion::HookRedeploysProduction,
        ..rules()
    });
    failed.start(5.0);
    failed.hook(Hook::Deploy, true);
    failed.hook(Hook::HealthCheck, true);
    failed.command(Command::Promote).unwrap();
    failed.hook(Hook::Promote, false);
    assert_eq!(
        failed.deployment.phase,
        Phase::RollingBack,
        "its success is required"
    );
    assert_eq!(
        failed.deployment.roles,
        crate::domain::roles::Roles::default()
    );
}

#[test]
fn commands_that_do_not_fit_the_phase_are_rejected_without_change() {
    let mut sim = Sim::new(rules());
    let before = sim.deployment.clone();
    let rejected = sim.command(Command::Continue).unwrap_err();
    assert_eq!(rejected.phase, Phase::Idle);
    assert!(
        sim.command(Command::Stop {
            reason: "x".to_owned()
        })
        .is_err(),
        "nothing to stop"
    );
    assert_eq!(sim.deployment, before);

    let mut sim = Sim::progressing(5.0);
    let rejected = sim.command(Command::Start(StartRequest {
        image_tag: "v3".to_owned(),
        traffic_percent: share(5.0),
    }));
    assert_eq!(
        rejected.unwrap_err().reason,
        "a canary is already running; stop it first"
    );
    assert!(sim.command(Command::Resume).is_err(), "not paused");
}

#[test]
fn pause_holds_the_step_and_resume_restarts_the_wait() {
    let mut sim = Sim::progressing(5.0);
    for _ in 0..8 {
        sim.tick(1_000, green());
    }
    sim.command(Command::Pause).unwrap();
    for _ in 0..30 {
        sim.tick(1_000, green());
    }
    assert_eq!(sim.deployment.share, share(5.0), "a pause holds");
    sim.command(Command::Resume).unwrap();
    assert_eq!(sim.deployment.phase, Phase::Progressing);
    assert_eq!(sim.deployment.green_for_ms, 0);
    let (allowed, _) = sim.deployment.actions();
    assert!(allowed.contains(&canary_shared::ActionKind::Pause));
}

#[test]
fn auto_progression_turned_off_holds_the_step_and_turned_on_waits_afresh() {
    let mut sim = Sim::progressing(5.0);
    for _ in 0..8 {
        sim.tick(1_000, green());
    }
    sim.command(Command::SetAutoProgression { enabled: false })
        .unwrap();
    for _ in 0..30 {
        sim.tick(1_000, green());
    }
    assert_eq!(sim.deployment.share, share(5.0), "no step without it");
    // Asking again for what is already so records nothing.
    sim.command(Command::SetAutoProgression { enabled: false })
        .unwrap();
    sim.command(Command::SetAutoProgression { enabled: true })
        .unwrap();
    for _ in 0..9 {
        sim.tick(1_000, green());
    }
    assert_eq!(
        sim.deployment.share,
        share(5.0),
        "the 8 s before do not count"
    );
    sim.tick(1_000, green());
    sim.check(expect![[r#"
        t=8s audit ops auto_progression_off: Progressing -> Progressing, 5 % -> 5 % (auto-progression off: steps move only when an operator continues)
        t=38s audit ops auto_progression_on: Progressing -> Progressing, 5 % -> 5 % (auto-progression on: the next step after 10 s of green checks)
        t=48s share 25 %
        t=48s audit controller auto_progress: Progressing -> Progressing, 5 % -> 25 % (checks green for 10 s)"#]]);
    // The choice lasts for this rollout only.
    sim.command(Command::SetAutoProgression { enabled: false })
        .unwrap();
    sim.command(Command::Stop {
        reason: "done".to_owned(),
    })
    .unwrap();
    sim.hook(Hook::Rollback, true);
    assert!(
        sim.command(Command::SetAutoProgression { enabled: true })
            .is_err(),
        "nothing to set without a canary"
    );
    sim.start(5.0);
    assert!(sim.deployment.auto_progresses(&sim.rules));
}

#[test]
fn an_operator_can_turn_auto_progression_on_where_the_config_has_it_off() {
    let mut sim = Sim::new(Rules {
        auto_progression: false,
        ..rules()
    });
    sim.start(5.0);
    sim.hook(Hook::Deploy, true);
    sim.hook(Hook::HealthCheck, true);
    for _ in 0..20 {
        sim.tick(1_000, green());
    }
    assert_eq!(sim.deployment.share, share(5.0));
    sim.command(Command::SetAutoProgression { enabled: true })
        .unwrap();
    for _ in 0..10 {
        sim.tick(1_000, green());
    }
    assert_eq!(sim.deployment.share, share(25.0));
}

#[test]
fn scaling_down_reopens_the_steps_above() {
    let mut sim = Sim::progressing(50.0);
    assert_eq!(
        sim.statuses(),
        "++-->..",
        "5 % and 25 % were skipped by a start at 50 %"
    );
    sim.command(Command::Scale {
        percent: share(5.0),
    })
    .unwrap();
    assert_eq!(sim.statuses(), "++>....");
    sim.command(Command::Scale {
        percent: share(30.0),
    })
    .unwrap();
    assert_eq!(sim.deployment.share, share(30.0));
    assert_eq!(sim.statuses(), "+++>...", "30 % is within the 25 % step");
    sim.command(Command::Continue).unwrap();
    assert_eq!(sim.deployment.share, share(50.0));
}

#[test]
fn a_failed_deploy_or_health_check_ends_in_failed_at_zero() {
    let mut sim = Sim::new(rules());
    sim.start(5.0);
    sim.hook(Hook::Deploy, false);
    assert_eq!(sim.deployment.phase, Phase::Failed);
    assert_eq!(sim.deployment.share, CanaryShare::ZERO);
    assert_eq!(sim.statuses(), "x......");

    let mut sim = Sim::new(rules());
    sim.start(5.0);
    sim.hook(Hook::Deploy, true);
    sim.hook(Hook::HealthCheck, false);
    assert_eq!(sim.deployment.phase, Phase::Failed);
    assert_eq!(
        sim.deployment.reason.as_deref(),
        Some("health check failed: exit 0")
    );
    sim.start(5.0);
    assert_eq!(
        sim.deployment.phase,
        Phase::BuildDeploy,
        "a failed rollout can start again"
    );
}

#[test]
fn long_missing_data_holds_or_rolls_back_as_configured() {
    let mut sim = Sim::progressing(5.0);
    for _ in 0..60 {
        sim.tick(
            1_000,
            Verdict::NoData {
                reason: "no canary requests".to_owned(),
            },
        );
    }
    assert_eq!(
        sim.deployment.phase,
        Phase::Progressing,
        "holding is the default"
    );
    assert_eq!(
        sim.deployment.reason.as_deref(),
        Some("holding: no canary requests")
    );

    let mut sim = Sim::progressing(5.0);
    sim.rules.on_long_no_data = NoDataAction::Rollback;
    for _ in 0..30 {
        sim.tick(
            1_000,
            Verdict::NoData {
                reason: "no canary requests".to_owned(),
            },
        );
    }
    assert_eq!(sim.deployment.phase, Phase::RollingBack);
    assert_eq!(
        sim.deployment.reason.as_deref(),
        Some("no data for 30 s: no canary requests")
    );
}

#[test]
fn an_undecided_judge_lets_the_wait_run_but_not_advance_and_never_times_out() {
    let mut sim = Sim::progressing(5.0);
    sim.rules.on_long_no_data = NoDataAction::Rollback;
    let undecided = || Verdict::Undecided {
        reason: "waiting for the statistical judge: 12 failures".to_owned(),
    };
    // Far longer than both the wait and the no-data timeout.
    for _ in 0..45 {
        sim.tick(1_000, undecided());
    }
    assert_eq!(
        sim.deployment.phase,
        Phase::Progressing,
        "never rolled back"
    );
    assert_eq!(sim.deployment.share, share(5.0), "never advanced");
    assert_eq!(
        sim.deployment.reason.as_deref(),
        Some("holding: waiting for the statistical judge: 12 failures")
    );
    assert_eq!(sim.deployment.green_for_ms, 10_000, "the wait is done");
    // The judge passes: the step advances at once, the wait already served.
    sim.tick(1_000, green());
    assert_eq!(sim.deployment.share, share(25.0));
    sim.check(expect![[r#"
        t=46s share 25 %
        t=46s audit controller auto_progress: Progressing -> Progressing, 5 % -> 25 % (checks green for 10 s)"#]]);
    // A warning still restarts the wait.
    sim.tick(1_000, undecided());
    sim.tick(
        1_000,
        Verdict::Warning {
            reason: "p95 high".to_owned(),
        },
    );
    assert_eq!(sim.deployment.green_for_ms, 0);
}

#[test]
fn an_advisory_judge_pauses_a_rollout_once_then_holds_like_a_warning() {
    let mut sim = Sim::progressing(25.0);
    for _ in 0..5 {
        sim.tick(1_000, green());
    }
    let suspect = || Verdict::Suspect {
        reason: "statistical judge (advisory): latency: slower in 71 % of comparisons".to_owned(),
    };
    sim.tick(1_000, suspect());
    assert_eq!(sim.deployment.phase, Phase::Paused);
    assert_eq!(sim.deployment.share, share(25.0), "a pause keeps the share");
    for _ in 0..20 {
        sim.tick(1_000, suspect());
    }
    // A person looked and resumed: the finding holds the step, without
    // pausing again.
    sim.command(Command::Resume).unwrap();
    for _ in 0..20 {
        sim.tick(1_000, suspect());
    }
    assert_eq!(sim.deployment.phase, Phase::Progressing);
    assert_eq!(sim.deployment.share, share(25.0), "held, not advanced");
    sim.check(expect![[r#"
        t=5s audit controller auto_pause: Progressing -> Paused, 25 % -> 25 % (statistical judge (advisory): latency: slower in 71 % of comparisons)
        t=5s alert paused: statistical judge (advisory): latency: slower in 71 % of comparisons
        t=26s audit ops resume: Paused -> Progressing, 25 % -> 25 %"#]]);
    // The next rollout may be paused again.
    sim.command(Command::Promote).unwrap();
    sim.hook(Hook::Promote, true);
    sim.start(5.0);
    sim.hook(Hook::Deploy, true);
    sim.hook(Hook::HealthCheck, true);
    sim.tick(1_000, suspect());
    assert_eq!(sim.deployment.phase, Phase::Paused);
}

/// Any input the machine can be given.
fn any_input() -> impl Strategy<Value = Input> {
    let command = prop_oneof![
        (0u16..=10_000).prop_map(|bp| Command::Start(StartRequest {
            image_tag: "v9".to_owned(),
            traffic_percent: CanaryShare::from_basis_points(bp).unwrap(),
        })),
        (0u16..=10_000).prop_map(|bp| Command::Scale {
            percent: CanaryShare::from_basis_points(bp).unwrap()
        }),
        Just(Command::Continue),
        Just(Command::Pause),
        Just(Command::Resume),
        Just(Command::Promote),
        any::<bool>().prop_map(|enabled| Command::SetAutoProgression { enabled }),
        Just(Command::Rollback {
            reason: "r".to_owned()
        }),
        Just(Command::Stop {
            reason: "s".to_owned()
        }),
        Just(Command::UndoPromotion {
            reason: "u".to_owned()
        }),
    ];
    let hook = prop_oneof![
        Just(Hook::Deploy),
        Just(Hook::HealthCheck),
        Just(Hook::Promote),
        Just(Hook::Rollback),
        Just(Hook::Retire)
    ];
    let verdict = prop_oneof![
        Just(Verdict::Green),
        Just(Verdict::Warning {
            reason: "w".to_owned()
        }),
        Just(Verdict::Critical {
            reason: "c".to_owned()
        }),
        Just(Verdict::NoData {
            reason: "n".to_owned()
        }),
        Just(Verdict::Undecided {
            reason: "u".to_owned()
        }),
        Just(Verdict::Suspect {
            reason: "s".to_owned()
        }),
    ];
    prop_oneof![
        command.prop_map(|command| Input::Command {
            actor: "p".to_owned(),
            command
        }),
        (hook, any::<bool>()).prop_map(|(hook, succeeded)| Input::HookFinished {
            hook,
            succeeded,
            detail: String::new()
        }),
        verdict.prop_map(Input::Judged),
        (0u64..20_000).prop_map(|elapsed_ms| Input::Tick { elapsed_ms }),
    ]
}

proptest! {
    #[test]
    fn stop_from_any_state_ends_at_zero_with_an_audit_entry(inputs in proptest::collection::vec(any_input(), 0..40)) {
        let rules = rules();
        let mut deployment = Deployment::idle(&rules);
        for (tick, input) in inputs.into_iter().enumerate() {
            if let Ok(transition) = deployment.apply(input, UnixMillis(tick as u64), &rules) {
                deployment = transition.next;
            }
        }
        match deployment.apply(Input::Command { actor: "p".to_owned(), command: Command::Stop { reason: "now".to_owned() } }, UnixMillis(99), &rules) {
            Ok(transition) => {
                prop_assert_eq!(transition.next.share, CanaryShare::ZERO);
                if deployment.share != CanaryShare::ZERO {
                    prop_assert_eq!(&transition.effects[0], &Effect::Route(crate::domain::roles::Routing { share: CanaryShare::ZERO, production: deployment.roles.production }), "the share moves first");
                }
                let audited = transition.effects.iter().any(|effect| matches!(effect, Effect::Audit(record) if record.action == canary_shared::AuditAction::Stop));
                prop_assert!(audited);
            }
            Err(rejected) => {
                // Only refused when nothing runs (or a rollback is already under way).
                prop_assert!(deployment.share == CanaryShare::ZERO || deployment.phase == Phase::RollingBack, "{:?}", rejected);
            }
        }
    }

    #[test]
    fn steps_never_go_backwards_except_by_rollback_or_scale_down(inputs in proptest::collection::vec(any_input(), 0..60)) {
        let rules = rules();
        let mut deployment = Deployment::idle(&rules);
        for (tick, input) in inputs.into_iter().enumerate() {
            let excused = matches!(
                &input,
                Input::Command { command: Command::Scale { .. } | Command::Start(_) | Command::Stop { .. } | Command::Rollback { .. } | Command::UndoPromotion { .. }, .. }
            );
            let before = deployment.current_step();
            let Ok(transition) = deployment.apply(input, UnixMillis(tick as u64), &rules) else { continue };
            let after = transition.next.current_step();
            let rolled_back = matches!(transition.next.phase, Phase::RollingBack | Phase::RolledBack | Phase::Failed);
            if let (Some(before), Some(after)) = (before, after) && !excused && !rolled_back {
                prop_assert!(after >= before, "step went from {} to {}", before, after);
            }
            let moved = transition.effects.iter().filter(|effect| matches!(effect, Effect::Route(_))).count();
            prop_assert!(moved <= 1, "at most one share change per input");
            deployment = transition.next;
        }
    }
}
