//! Rollbacks decided while the store refused writes (a full or read-only
//! disk). Taking traffic off a failing canary never waits for the disk, so
//! such a rollback happens at once and is kept here with its audit
//! entries; the controller records it, in order and with the time it was
//! decided, as soon as the store takes writes again: before any later
//! decision, and on every measurement (once a second) until then. Until
//! it is recorded a restart would find the rollout as the store last held
//! it, which is why the log says so loudly.

use crate::adapters::store::StoreError;
use crate::controller::Controller;

impl Controller {
    /// Records the waiting rollbacks (the deployment as it stands now, and
    /// each one's audit entries), oldest first; stops at the first failure.
    pub(super) fn record_unrecorded(&mut self) -> Result<(), StoreError> {
        while let Some(entries) = self.unrecorded.first() {
            let revision = self.state.borrow().revision + 1;
            let stored = self
                .store
                .commit(&self.deployment, revision, entries, self.clock.now())
                .inspect_err(|_| self.own.store_error())?;
            self.unrecorded.remove(0);
            tracing::warn!(
                entries = stored.len(),
                "the store takes writes again: recorded a rollback decided while it failed"
            );
            for event in stored {
                if let Some(action) = event.kind() {
                    self.own.decided(action);
                }
                let _ = self.audit.send(event);
            }
            if self.unrecorded.is_empty() {
                // The pulled canary's decision is on record now.
                self.store.clear_pulled();
            }
        }
        Ok(())
    }

    /// [`Controller::record_unrecorded`] where nothing waits for the outcome.
    pub(super) fn record_unrecorded_quietly(&mut self) {
        if !self.unrecorded.is_empty()
            && let Err(err) = self.record_unrecorded()
        {
            tracing::debug!(%err, "the store still refuses writes");
        }
    }
}
