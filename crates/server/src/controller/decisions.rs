//! How a decision is taken: a command, a script's report or an automatic
//! input goes through the state machine, is committed with its audit
//! entries, and only then has its effects, except a pull of the canary's
//! traffic, which never waits for the disk.

use canary_shared::{AuditEvent, AuditMetrics, CanaryShare, CanaryState, Command, Phase};

use crate::adapters::store::{AuditEntry, StoreError};
use crate::controller::{CommandError, Controller, log_decision};
use crate::domain::deployment::{Deployment, Effect, Input, TransitionRejected};
use crate::domain::roles::Routing;

impl Controller {
    pub(super) fn command(
        &mut self,
        actor: String,
        command: Command,
        expected_revision: Option<u64>,
    ) -> Result<CanaryState, CommandError> {
        let current = self.state.borrow().revision;
        if let Some(expected) = expected_revision
            && expected != current
        {
            return Err(CommandError::StaleRevision { expected, current });
        }
        let starts = matches!(command, Command::Start(_));
        let transition = self.deployment.apply(
            Input::Command { actor, command },
            self.clock.now(),
            &self.rules,
        )?;
        if starts {
            self.rollout += 1;
            // The previous canary's last minute must not judge the new one.
            self.recorder.forget_canary_seconds();
        }
        self.commit_and_run(transition.next, transition.effects, None, false)?;
        self.publish();
        Ok(self.state.borrow().clone())
    }

    /// A webhook's report: applied like a command, refused when it changes nothing.
    pub(super) fn reported(
        &mut self,
        actor: String,
        input: Input,
    ) -> Result<CanaryState, CommandError> {
        let input = match input {
            Input::Command { command, .. } => Input::Command {
                actor: actor.clone(),
                command,
            },
            other => other,
        };
        let phase = self.deployment.phase;
        let mut transition = self
            .deployment
            .apply(input, self.clock.now(), &self.rules)?;
        // The decision follows the script's report, so the report is its author.
        for effect in &mut transition.effects {
            if let Effect::Audit(record) = effect
                && record.actor == "controller"
            {
                record.actor.clone_from(&actor);
            }
        }
        if transition.effects.is_empty() {
            return Err(CommandError::Rejected(TransitionRejected {
                phase,
                action: canary_shared::ActionKind::Continue,
                reason: format!(
                    "the report does not apply while {}",
                    phase.label().to_lowercase()
                ),
            }));
        }
        self.commit_and_run(transition.next, transition.effects, None, false)?;
        self.publish();
        Ok(self.state.borrow().clone())
    }

    /// Applies an input that no one waits for (a verdict, a tick, a hook).
    pub(super) fn automatic(&mut self, input: Input, output: Option<String>) {
        let transition = match self.deployment.apply(input, self.clock.now(), &self.rules) {
            Ok(transition) => transition,
            Err(rejected) => {
                tracing::warn!(%rejected, "automatic input rejected");
                return;
            }
        };
        if transition.next == self.deployment && transition.effects.is_empty() {
            return;
        }
        let to_zero = transition.effects.iter().any(
            |effect| matches!(effect, Effect::Route(routing) if routing.share == CanaryShare::ZERO),
        );
        // Finishing a rollback (its hook done, or failed) sends no traffic
        // anywhere new either; it too goes ahead and is recorded later.
        let ends_rollback = matches!(
            transition.next.phase,
            Phase::RollingBack | Phase::RolledBack | Phase::Failed
        ) && !transition.effects.iter().any(
            |effect| matches!(effect, Effect::Route(routing) if routing.share != CanaryShare::ZERO),
        );
        let effects = transition.effects.clone();
        let entries = self.audit_entries(&effects, output.clone());
        let goes_ahead = to_zero || ends_rollback;
        let committed = self.commit_and_run(
            transition.next.clone(),
            transition.effects,
            output,
            goes_ahead,
        );
        if let Err(err) = committed {
            tracing::error!(%err, "cannot record an automatic decision");
            if goes_ahead {
                // Taking traffic off a failing canary must not wait for the
                // disk: the rollback goes ahead now and is recorded (state
                // and audit entries) as soon as the store takes writes.
                tracing::error!(
                    "rolling back before it is recorded because the store is failing; \
                     it will be recorded when the store takes writes again"
                );
                self.pull_ahead(&transition.next, &effects);
                self.deployment = transition.next;
                self.unrecorded.push(entries);
                self.run_effects(effects, &[]);
            }
        }
    }

    /// Commits `next` and the audit entries among `effects`, then carries the
    /// effects out. A canary pulled (its share to 0 %) is pulled first,
    /// before the commit ([`Controller::pull_ahead`]); if the commit fails
    /// its share comes back unless `keep_pull`, and nothing else happens.
    pub(super) fn commit_and_run(
        &mut self,
        next: Deployment,
        mut effects: Vec<Effect>,
        output: Option<String>,
        keep_pull: bool,
    ) -> Result<(), StoreError> {
        // Decisions waiting to be recorded go first, so the trail keeps their order.
        self.record_unrecorded()?;
        let pulled = self.pull_ahead(&next, &effects);
        if let Some(pulled) = pulled {
            effects
                .retain(|effect| !matches!(effect, Effect::Route(routing) if *routing == pulled));
        }
        let entries = self.audit_entries(&effects, output);
        let revision = self.state.borrow().revision + 1;
        let stored = match self
            .store
            .commit(&next, revision, &entries, self.clock.now())
        {
            Ok(stored) => stored,
            Err(err) => {
                self.own.store_error();
                if pulled.is_some() && !keep_pull {
                    // Not decided after all: the routing recorded stands.
                    self.route(self.deployment.routing());
                    self.store.clear_pulled();
                }
                return Err(err);
            }
        };
        if pulled.is_some() {
            self.store.clear_pulled();
        }
        self.deployment = next;
        self.run_effects(effects, &stored);
        Ok(())
    }

    /// Takes the canary's traffic away at once, before `next` is committed,
    /// when `effects` do no more than that (its share to 0 %, the roles as
    /// they are): a move towards production is always safe, and a failing
    /// canary must not wait for the disk. A move towards the canary (a step
    /// up, a promotion's swap) never takes effect before its commit. The
    /// lock file notes the pull first, so a server that dies before the
    /// commit ends the rollout at 0 % when it starts again. Returns the
    /// routing set, if any.
    pub(super) fn pull_ahead(&mut self, next: &Deployment, effects: &[Effect]) -> Option<Routing> {
        let current = self.deployment.routing();
        let pulled = Routing {
            share: CanaryShare::ZERO,
            production: current.production,
        };
        let pulls = current.share > CanaryShare::ZERO
            && effects
                .iter()
                .any(|effect| matches!(effect, Effect::Route(routing) if *routing == pulled));
        if !pulls {
            return None;
        }
        if let Some(rollout) = self.rollout_started_at() {
            self.store.note_pulled(&crate::adapters::store::Pulled {
                rollout,
                at: self.clock.now(),
                reason: next.reason.clone().unwrap_or_default(),
            });
        }
        self.route(pulled);
        Some(pulled)
    }

    /// The audit entries among `effects`, with the metrics of this moment.
    pub(super) fn audit_entries(
        &self,
        effects: &[Effect],
        output: Option<String>,
    ) -> Vec<AuditEntry> {
        let metrics = {
            let snapshot = self.metrics.borrow();
            match snapshot.shadow.as_ref().filter(|_| self.shadowing()) {
                // Decided on the copies: their figures, both sides' answers
                // to the same requests.
                Some(shadow) => AuditMetrics {
                    production: shadow.production.clone(),
                    canary: shadow.canary.clone(),
                },
                None => AuditMetrics {
                    production: snapshot.production.last_1m.clone(),
                    canary: snapshot.canary.last_1m.clone(),
                },
            }
        };
        effects
            .iter()
            .filter_map(|effect| match effect {
                Effect::Audit(record) => Some(AuditEntry {
                    record: record.clone(),
                    metrics: Some(metrics.clone()),
                    output: output.clone(),
                }),
                _ => None,
            })
            .collect()
    }

    pub(super) fn run_effects(&mut self, effects: Vec<Effect>, stored: &[AuditEvent]) {
        self.mirror();
        for effect in effects {
            match effect {
                Effect::Route(routing) => self.route(routing),
                Effect::RunHook { hook, image_tag } => self.start_hook(hook, image_tag),
                Effect::Alert { message } => tracing::warn!(%message, "alert"),
                Effect::Audit(record) => log_decision(&record),
            }
        }
        self.end_abandoned_test_run();
        for event in stored {
            if let Some(action) = event.kind() {
                self.own.decided(action);
            }
            let _ = self.audit.send(event.clone());
        }
    }
}
