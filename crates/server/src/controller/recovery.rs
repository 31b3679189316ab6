//! A start on a saved deployment: the `recovered` entry says how the last
//! server ended (a clean stop, a crash, a backup put in place), the hook a
//! restart interrupted runs again, and a canary the last server pulled
//! without recording why is rolled back on the record.

use canary_shared::{AuditAction, CanaryShare, Phase, UnixMillis};

use crate::adapters::hooks;
use crate::adapters::store::Pulled;
use crate::controller::Controller;

impl Controller {
    /// After a restart: a hook that was running is gone, so the one of the
    /// current phase runs again (hooks must be safe to repeat), and the
    /// recovery is recorded.
    pub(super) fn recover(&mut self) {
        let phase = self.deployment.phase;
        let share = self.deployment.share;
        let pending_hook = self.deployment.hook_under_way();
        let reason = recovery_words(
            self.store.opening(),
            self.clock.now(),
            &format!("{} at {share} to the canary", phase.label().to_lowercase()),
            pending_hook.map(hooks::hook_name),
        );
        self.record_unchanged("controller".to_owned(), AuditAction::Recovered, reason);
        tracing::info!(phase = phase.label(), %share, "recovered the deployment from the store");
        if let Some(pulled) = self.pulled_before_stop() {
            self.roll_back_pulled(&pulled);
        } else if let Some(hook) = pending_hook {
            self.start_hook(hook, self.deployment.image_tag.clone().unwrap_or_default());
        }
        self.store.clear_pulled();
    }

    /// The canary the last server pulled (its share dropped to 0 %) without
    /// recording the decision, when the stored rollout is that one and
    /// still gives it traffic.
    pub(super) fn pulled_before_stop(&self) -> Option<Pulled> {
        let pulled = self.store.opening().pulled.clone()?;
        let still_routed = self.rollout_started_at() == Some(pulled.rollout)
            && self.deployment.share > CanaryShare::ZERO
            && matches!(self.deployment.phase, Phase::Progressing | Phase::Paused);
        still_routed.then_some(pulled)
    }

    /// Records the pull the last server did not: a rollback (the rollback
    /// hook runs), saying when the traffic went and why.
    fn roll_back_pulled(&mut self, pulled: &Pulled) {
        let ago = canary_shared::words::duration(self.clock.now().0.saturating_sub(pulled.at.0));
        let reason = format!(
            "the last server took the canary's traffic away {ago} before this start and stopped before recording it; recorded now as a rollback. Its reason: {}",
            pulled.reason
        );
        tracing::warn!(%reason, "recovering a canary pulled before its decision was recorded");
        let command = canary_shared::Command::Rollback { reason };
        if let Err(err) = self.command("controller".to_owned(), command, None) {
            // The share stays at 0 % (set before any listener accepted);
            // the rollout shows as recorded until an operator acts.
            tracing::error!(%err, "cannot record the pulled canary's rollback");
        }
    }
}

/// What the `recovered` entry says: how the last server ended (a clean
/// stop, a crash, or a backup put in place, and from when), the rollout as
/// recorded, and the interrupted hook being run again.
fn recovery_words(
    opening: &crate::adapters::store::Opening,
    now: UnixMillis,
    recorded: &str,
    rerun: Option<&str>,
) -> String {
    let mut words = match opening.restored_from {
        Some(taken) => format!(
            "restored from a backup taken {} before this start; the rollout is as the backup left it: {recorded}",
            canary_shared::words::duration(now.0.saturating_sub(taken.0))
        ),
        None if opening.clean_stop => {
            format!("server restarted after a clean stop; the rollout as recorded: {recorded}")
        }
        None => format!(
            "server restarted after an unclean stop (a crash or a kill); the rollout as recorded: {recorded}"
        ),
    };
    if let Some((first, last)) = opening.missing_seqs {
        let range = if first == last {
            format!("entry {first} is")
        } else {
            format!("entries {first}–{last} are")
        };
        words.push_str(&format!(
            "; audit {range} not in this store (written after the backup) and their numbers are not reused"
        ));
    }
    if let Some(hook) = rerun {
        words.push_str(&format!("; running the interrupted {hook} hook again"));
    }
    words
}
