//! A start on a saved deployment: the `recovered` entry says how the last
//! server ended (a clean stop, a crash, a backup put in place), and the
//! hook a restart interrupted runs again.

use canary_shared::{AuditAction, Phase, UnixMillis};

use crate::adapters::hooks;
use crate::controller::Controller;
use crate::domain::deployment::Hook;

impl Controller {
    /// After a restart: a hook that was running is gone, so the one of the
    /// current phase runs again (hooks must be safe to repeat), and the
    /// recovery is recorded.
    pub(super) fn recover(&mut self) {
        let phase = self.deployment.phase;
        let share = self.deployment.share;
        let pending_hook = match phase {
            Phase::BuildDeploy => Some(Hook::Deploy),
            Phase::HealthCheck => Some(Hook::HealthCheck),
            Phase::Promoting => Some(Hook::Promote),
            Phase::RollingBack => Some(Hook::Rollback),
            _ => None,
        };
        let reason = recovery_words(
            self.store.opening(),
            self.clock.now(),
            &format!("{} at {share} to the canary", phase.label().to_lowercase()),
            pending_hook.map(hooks::hook_name),
        );
        self.record_unchanged("controller".to_owned(), AuditAction::Recovered, reason);
        tracing::info!(phase = phase.label(), %share, "recovered the deployment from the store");
        if let Some(hook) = pending_hook {
            self.start_hook(hook, self.deployment.image_tag.clone().unwrap_or_default());
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
