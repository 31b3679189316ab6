//! The one place that glues the pure core to the outside world.
//!
//! The controller is the single writer of the deployment. It receives
//! [`Event`]s on an mpsc channel, applies them with the pure
//! [`crate::domain`] functions, commits the result and its audit entries to
//! the store, and only then carries out the effects (set the share, run a
//! hook) and publishes the new [`CanaryState`] on a `watch` channel.

use std::sync::Arc;

use canary_shared::{
    AuditAction, AuditEvent, CanaryShare, CanaryState, Command, MetricsSnapshot, Phase,
    SafetyCheck, Side, UnixMillis,
};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::time::Instant;

use crate::adapters::hooks::{self, HookVars};
use crate::adapters::own_metrics::OwnMetrics;
use crate::adapters::proxy::SharedRouting;
use crate::adapters::recorder::Recorder;
use crate::adapters::shadow::ShadowTap;
use crate::adapters::store::{AuditEntry, SqliteStore, StoreError};
use crate::config::{Config, UpstreamConfig};
use crate::domain::analysis;
use crate::domain::deployment::{AuditRecord, Deployment, Hook, Input, Rules};
use crate::domain::health::{HealthThresholds, HealthTracker};
use crate::domain::judge::RolloutJudge;
use crate::domain::roles::Routing;
use crate::domain::roles::UpstreamSlot;
use crate::domain::view::{self, RenderInput, UpstreamView};
use crate::ports::{Clock, Router};

mod decisions;
mod fast_path;
mod judging;
mod recovery;
mod routing;
mod shadow;
mod ticker;
mod unrecorded;

pub use crate::events::{CommandError, Event};
pub use ticker::run_ticker;

/// How other tasks talk to the controller.
#[derive(Clone, Debug)]
pub struct ControllerHandle {
    /// Events in. Senders: health probes, the metrics ticker, hook runs and
    /// the API; receiver: the controller task.
    pub events: mpsc::Sender<Event>,
    /// The latest state out. Sender: the controller task; receivers: the REST
    /// handlers and every WebSocket stream. A `watch` keeps only the latest
    /// value, so a slow client skips states instead of holding memory.
    pub state: watch::Receiver<CanaryState>,
    /// The latest measurements. Sender: the controller, once a second;
    /// receivers: `GET /admin/canary/metrics` and every WebSocket stream.
    pub metrics: watch::Receiver<Arc<MetricsSnapshot>>,
    /// Every new audit entry, once durable. Sender: the controller; receivers:
    /// WebSocket streams (a lagging stream skips entries; the REST API has all).
    pub audit: broadcast::Sender<AuditEvent>,
    /// Decisions, hook runs and store errors, counted for `/metrics`.
    pub own_metrics: Arc<OwnMetrics>,
}

impl ControllerHandle {
    /// Sends a script's report and waits until it is durable (or refused).
    pub async fn report(&self, actor: String, input: Input) -> Result<CanaryState, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.events
            .send(Event::Reported {
                actor,
                input,
                reply,
            })
            .await
            .map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)?
    }

    /// Records an access decision in the audit trail; never waits for it.
    pub fn access(&self, actor: String, action: AuditAction, reason: String) {
        let sent = self.events.try_send(Event::Access {
            actor,
            action,
            reason,
        });
        if let Err(err) = sent {
            // A full queue means the controller is far behind; an access
            // record is not worth slowing down rollout decisions for.
            tracing::warn!(%err, "access record dropped");
        }
    }

    /// Sends a command and waits until it is durable (or refused).
    pub async fn command(
        &self,
        actor: String,
        command: Command,
        expected_revision: Option<u64>,
    ) -> Result<CanaryState, CommandError> {
        let (reply, answer) = oneshot::channel();
        self.events
            .send(Event::Command {
                actor,
                command,
                expected_revision,
                reply,
            })
            .await
            .map_err(|_| CommandError::Stopped)?;
        answer.await.map_err(|_| CommandError::Stopped)?
    }
}

/// The controller's own data; lives inside its task.
#[derive(Debug)]
struct Controller {
    config: Arc<Config>,
    rules: Rules,
    clock: Arc<dyn Clock>,
    store: Arc<SqliteStore>,
    deployment: Deployment,
    /// Counts rollouts started since this process began; tags hook runs.
    rollout: u64,
    checks: Vec<SafetyCheck>,
    /// Each upstream's health, by slot (whichever side it plays).
    health: [HealthTracker; 2],
    /// The routing in force as the measurements count it (the share an
    /// external router gives after its quantization).
    routing: SharedRouting,
    /// What splits the traffic.
    router: Arc<dyn Router>,
    /// Where the routing asked of it stands.
    router_progress: routing::RouterProgress,
    /// The proxy's measurements; a new rollout forgets the old canary's seconds.
    recorder: Arc<Recorder>,
    /// Copies of production's requests for the canary, when the config
    /// has a shadow step: the share is set from the deployment.
    shadow: Option<Arc<ShadowTap>>,
    /// The statistical judge of the current rollout's shadow step, with
    /// the rollout's start.
    shadow_judge: Option<(UnixMillis, RolloutJudge)>,
    /// When the previous measurement arrived, for monotonic waits.
    last_measured: Option<Instant>,
    events: mpsc::Sender<Event>,
    state: watch::Sender<CanaryState>,
    metrics: watch::Sender<Arc<MetricsSnapshot>>,
    audit: broadcast::Sender<AuditEvent>,
    own: Arc<OwnMetrics>,
    /// The statistical judge of the current rollout, with the start of the
    /// rollout it belongs to; started afresh for every rollout.
    judge: Option<(UnixMillis, RolloutJudge)>,
    /// Rollbacks carried out while the store refused writes, with their
    /// audit entries: recorded, in order, as soon as it takes writes again.
    unrecorded: Vec<Vec<AuditEntry>>,
    /// The short windows the checks are also judged on, in seconds.
    fast_windows: Vec<u32>,
    /// The critical checks the fast path judges between ticks.
    fast_specs: Vec<analysis::CheckSpec>,
    /// The test run in flight, ended (with everything its command started)
    /// once the rollout leaves its validation: a stop or a rollback leaves
    /// no suite running against a canary that takes no traffic.
    test_run: Option<tokio::task::AbortHandle>,
}

/// Starts the controller task from what the store saved; it ends when every
/// event sender is dropped.
///
/// The proxy's `routing` is set from the saved deployment before this returns,
/// so no request is ever split by a share the store does not hold.
pub fn spawn(
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    store: Arc<SqliteStore>,
    routing: SharedRouting,
    make_router: impl FnOnce(mpsc::Sender<Event>, Routing) -> Arc<dyn Router>,
    recorder: Arc<Recorder>,
    shadow: Option<Arc<ShadowTap>>,
) -> Result<(ControllerHandle, tokio::task::JoinHandle<()>), StoreError> {
    let tracker = |upstream: &UpstreamConfig| {
        HealthTracker::new(HealthThresholds {
            healthy_after: upstream.health_check.healthy_threshold.0,
            unhealthy_after: upstream.health_check.unhealthy_threshold.0,
        })
    };
    let rules = config.rules();
    let saved = store.load()?;
    let (deployment, revision) = match &saved {
        Some(saved) => (saved.deployment.clone(), saved.revision),
        None => (Deployment::idle(&rules), 0),
    };
    let (events_tx, mut events_rx) = mpsc::channel(256);
    let router = make_router(events_tx.clone(), deployment.routing());
    let router_progress = routing::RouterProgress::new(
        deployment.routing(),
        router.effective(deployment.routing()),
        false,
    );
    let first_metrics = Arc::new(recorder.snapshot(clock.now(), CanaryShare::ZERO));
    let health = UpstreamSlot::BOTH.map(|slot| tracker(config.upstreams.slot(slot)));
    let checks = judge(&config, &first_metrics, &[]).checks;
    let initial = StateParts {
        config: &config,
        rules: &rules,
        deployment: &deployment,
        checks: &checks,
        health: &health,
        metrics: &first_metrics,
        judge: Vec::new(),
    }
    .render(revision + 1, clock.now());
    let (state_tx, state_rx) = watch::channel(initial);
    let (metrics_tx, metrics_rx) = watch::channel(Arc::clone(&first_metrics));
    let (audit_tx, _) = broadcast::channel(256);
    let own = Arc::new(OwnMetrics::default());
    let mut controller = Controller {
        rules,
        clock,
        store,
        deployment,
        rollout: 0,
        checks,
        health,
        config,
        routing,
        router,
        router_progress,
        recorder,
        shadow,
        shadow_judge: None,
        last_measured: None,
        events: events_tx.clone(),
        state: state_tx,
        metrics: metrics_tx,
        audit: audit_tx.clone(),
        own: Arc::clone(&own),
        judge: None,
        unrecorded: Vec::new(),
        fast_windows: Vec::new(),
        fast_specs: Vec::new(),
        test_run: None,
    };
    controller.fast_windows = fast_path::windows(&controller.config.check_specs());
    controller.fast_specs = fast_path::specs(&controller.config.check_specs());
    // Before any listener accepts: the router gets the stored routing (an
    // external one again after a restart of canary).
    let stored = controller.deployment.routing();
    controller.route(match controller.pulled_before_stop() {
        // The last server took the canary's traffic away and died before
        // recording why: it stays away (recorded by `recover`).
        Some(_) => Routing {
            share: CanaryShare::ZERO,
            ..stored
        },
        None => stored,
    });
    controller.mirror();
    controller.publish();
    if saved.is_some() {
        controller.recover();
        controller.resume_judge();
    }
    let recorder = Arc::clone(&controller.recorder);
    let task = tokio::spawn(async move {
        loop {
            // Failures first: taking traffic off a failing canary must not
            // wait behind a queue of other events.
            tokio::select! {
                biased;
                () = recorder.failure_seen() => controller.failures_seen(),
                event = events_rx.recv() => match event {
                    Some(event) => controller.handle(event),
                    None => break,
                },
            }
        }
    });
    Ok((
        ControllerHandle {
            events: events_tx,
            state: state_rx,
            metrics: metrics_rx,
            audit: audit_tx,
            own_metrics: own,
        },
        task,
    ))
}

/// What the state shown to clients is rendered from.
struct StateParts<'a> {
    config: &'a Config,
    rules: &'a Rules,
    deployment: &'a Deployment,
    checks: &'a [SafetyCheck],
    health: &'a [HealthTracker; 2],
    metrics: &'a MetricsSnapshot,
    judge: Vec<canary_shared::JudgedMetric>,
}

impl StateParts<'_> {
    fn render(&self, revision: u64, now: UnixMillis) -> CanaryState {
        let roles = &self.deployment.roles;
        let view = |side: Side, measured: &canary_shared::SideMetrics| {
            let slot = roles.slot_of(side);
            let upstream = self.config.upstreams.slot(slot);
            let tracker = &self.health[slot.index()];
            UpstreamView {
                version: roles.version_of(side, upstream.version.as_deref()),
                url: upstream.url.to_string(),
                health: tracker.health(),
                health_detail: tracker.detail().map(str::to_owned),
                last_minute: Some(measured.last_1m.clone()),
                custom: measured.custom.clone(),
            }
        };
        let standby_version = self
            .deployment
            .before_promotion
            .as_ref()
            .and_then(|before| {
                let listed = self.config.upstreams.slot(before.production);
                before.version_of(Side::Production, listed.version.as_deref())
            });
        let mut state = view::render(RenderInput {
            standby_version: standby_version.as_deref(),
            deployment: self.deployment,
            rules: self.rules,
            checks: self.checks,
            production: &view(Side::Production, &self.metrics.production),
            canary: &view(Side::Canary, &self.metrics.canary),
            revision,
            now,
        });
        state.judge.clone_from(&self.judge);
        state
    }
}

/// Every check judged on the canary's last minute, and those with a fast
/// window on `short` too (the canary's windows of those lengths).
fn judge(
    config: &Config,
    snapshot: &MetricsSnapshot,
    short: &[canary_shared::WindowStats],
) -> analysis::Analysis {
    analysis::analyse(
        &config.check_specs(),
        &snapshot.canary.last_1m,
        short,
        &snapshot.canary.custom,
        config.canary.analysis_settings(),
    )
}

impl Controller {
    fn handle(&mut self, event: Event) {
        // Failures recorded so far belong to the share in force before this
        // event, which may change it.
        self.failures_seen();
        match event {
            Event::Probed { slot, outcome } => {
                let path = &self.config.upstreams.slot(slot).health_check.path.0;
                let side = self.deployment.roles.side_of(slot);
                let tracker = &mut self.health[slot.index()];
                let before = tracker.health();
                tracker.observe(&outcome, path);
                if tracker.health() != before {
                    tracing::info!(
                        side = side.as_str(),
                        upstream = slot.config_key(),
                        from = before.label(),
                        to = tracker.health().label(),
                        detail = tracker.detail().unwrap_or_default(),
                        "upstream health changed"
                    );
                }
                self.publish();
            }
            Event::Observed { second, shadow } => {
                self.observe(&second);
                if let Some(shadow) = shadow {
                    self.observe_shadow(&shadow);
                }
            }
            Event::RouterRead { routing, readings } => self.router_read(routing, readings),
            Event::RouterMeasurement { note } => self.router_measurement(note),
            Event::Measured(snapshot) => {
                self.record_unrecorded_quietly();
                self.metrics.send_replace(Arc::clone(&snapshot));
                self.keep_second(&snapshot);
                let short: Vec<_> = self
                    .fast_windows
                    .iter()
                    .map(|&secs| self.recorder.window(Side::Canary, secs as usize))
                    .collect();
                let analysis = if self.shadowing() {
                    self.judge_shadow(&snapshot)
                } else {
                    let mut analysis = judge(&self.config, &snapshot, &short);
                    analysis.verdict = crate::domain::router::with_router(
                        &self.router_progress.assessment,
                        self.with_judge(analysis.verdict),
                    );
                    analysis
                };
                self.checks = analysis.checks;
                let now = Instant::now();
                let elapsed_ms = self.last_measured.map_or(0, |last| {
                    u64::try_from(now.duration_since(last).as_millis()).unwrap_or(u64::MAX)
                });
                self.last_measured = Some(now);
                self.automatic(Input::Judged(analysis.verdict), None);
                self.automatic(Input::Tick { elapsed_ms }, None);
                self.publish();
            }
            Event::Command {
                actor,
                command,
                expected_revision,
                reply,
            } => {
                let result = self.command(actor, command, expected_revision);
                let _ = reply.send(result);
            }
            Event::Reported {
                actor,
                input,
                reply,
            } => {
                let result = self.reported(actor, input);
                let _ = reply.send(result);
            }
            Event::Access {
                actor,
                action,
                reason,
            } => self.record_access(actor, action, reason),
            Event::HookFinished {
                hook,
                rollout,
                outcome,
            } => {
                if rollout != self.rollout {
                    tracing::info!(?hook, "a hook of an earlier rollout finished; ignored");
                    return;
                }
                tracing::info!(?hook, succeeded = outcome.succeeded, detail = %outcome.detail, "hook finished");
                let input = Input::HookFinished {
                    hook,
                    succeeded: outcome.succeeded,
                    detail: outcome.detail.clone(),
                };
                self.automatic(input, outcome.output);
                self.publish();
            }
        }
    }

    /// Appends an access record; the deployment itself does not change.
    fn record_access(&mut self, actor: String, action: AuditAction, reason: String) {
        if !self.record_unchanged(actor, action, reason) {
            tracing::error!(%action, "cannot record an access decision");
        }
    }

    /// Commits an audit entry that leaves the deployment as it is (an access
    /// decision, a recovery) and broadcasts it; `false` when the store
    /// refused it (already logged).
    fn record_unchanged(&mut self, actor: String, action: AuditAction, reason: String) -> bool {
        let record = AuditRecord {
            at: self.clock.now(),
            actor,
            action,
            from_phase: self.deployment.phase,
            to_phase: self.deployment.phase,
            from_share: self.deployment.share,
            to_share: self.deployment.share,
            reason: Some(reason),
        };
        let entry = AuditEntry {
            record: record.clone(),
            metrics: None,
            output: None,
        };
        let revision = self.state.borrow().revision;
        match self
            .store
            .commit(&self.deployment, revision, &[entry], self.clock.now())
        {
            Ok(stored) => {
                log_decision(&record);
                for event in stored {
                    if let Some(action) = event.kind() {
                        self.own.decided(action);
                    }
                    let _ = self.audit.send(event);
                }
                true
            }
            Err(err) => {
                self.own.store_error();
                tracing::error!(%err, %action, "cannot store an audit entry");
                false
            }
        }
    }

    /// Stores the newest second of both sides for the charts' history; a
    /// failure is logged and never holds up the rollout.
    fn keep_second(&self, snapshot: &MetricsSnapshot) {
        let (Some(production), Some(canary)) = (
            snapshot.production.series.last(),
            snapshot.canary.series.last(),
        ) else {
            return;
        };
        let retention =
            u64::try_from(self.config.server.metrics_retention.0.as_millis()).unwrap_or(u64::MAX);
        let keep_since = UnixMillis(snapshot.at.0.saturating_sub(retention));
        if let Err(err) = self.store.record_second(production, canary, keep_since) {
            tracing::warn!(%err, "cannot keep a second of metrics");
        }
    }

    /// The roles whose production a hook must know as the standby: the
    /// promote hook's (kept for an undo, so it must stay running) and the
    /// retire hook's (the one to retire).
    fn standby_for(&self, hook: Hook) -> Option<crate::domain::roles::Roles> {
        match hook {
            Hook::Promote
                if self.rules.promotion == crate::domain::roles::Promotion::SwapRoles
                    && self.rules.undo_window_ms > 0 =>
            {
                Some(self.deployment.roles.clone())
            }
            Hook::Retire => self.deployment.before_promotion.clone(),
            _ => None,
        }
    }

    fn start_hook(&mut self, hook: Hook, image_tag: String) {
        let hooks = &self.config.hooks;
        let configured = match hook {
            Hook::Deploy => hooks.deploy.is_some(),
            Hook::HealthCheck => hooks.health_check.is_some(),
            Hook::Promote => hooks.promote.is_some(),
            Hook::Rollback => hooks.rollback.is_some(),
            Hook::Retire => hooks.retire.is_some(),
            Hook::TestRun(index) => usize::from(index) < self.config.validation.test_runs.0.len(),
        };
        // Scripts report deploys and health checks (`started`, `health-check`);
        // promotion and rollback have no report, so they never wait.
        let reported = matches!(hook, Hook::Deploy | Hook::HealthCheck);
        if hooks.wait_for_webhooks && reported && !configured {
            tracing::info!(
                ?hook,
                "waiting for the deploy script to report through the webhook"
            );
            return;
        }
        let roles = &self.deployment.roles;
        let upstreams = &self.config.upstreams;
        let listed = |side: Side| upstreams.slot(roles.slot_of(side));
        let mut vars = HookVars {
            image_tag,
            share: self.deployment.share.percent().to_string(),
            production_version: roles
                .version_of(
                    Side::Production,
                    listed(Side::Production).version.as_deref(),
                )
                .unwrap_or_default(),
            canary_version: roles
                .version_of(Side::Canary, listed(Side::Canary).version.as_deref())
                .unwrap_or_default(),
            production_url: listed(Side::Production).url.to_string(),
            canary_url: listed(Side::Canary).url.to_string(),
            canary_slot: roles.slot_of(Side::Canary),
            standby_version: String::new(),
            standby_url: String::new(),
            undo_window_secs: "0".to_owned(),
        };
        if let Some(standby) = self.standby_for(hook) {
            vars.undo_window_secs = (self.rules.undo_window_ms / 1000).to_string();
            let upstream = upstreams.slot(standby.production);
            vars.standby_version = standby
                .version_of(Side::Production, upstream.version.as_deref())
                .unwrap_or_default();
            vars.standby_url = upstream.url.to_string();
        }
        let config = Arc::clone(&self.config);
        let events = self.events.clone();
        let rollout = self.rollout;
        tracing::info!(?hook, image_tag = %vars.image_tag, "running hook");
        let own = Arc::clone(&self.own);
        let run = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            let outcome = hooks::run(hook, &config, vars).await;
            own.hook_finished(hooks::hook_name(hook), outcome.succeeded, started.elapsed());
            let _ = events
                .send(Event::HookFinished {
                    hook,
                    rollout,
                    outcome,
                })
                .await;
        });
        if matches!(hook, Hook::TestRun(_)) {
            self.test_run = Some(run.abort_handle());
        }
    }

    /// Ends the test run in flight when the rollout is no longer
    /// validating (stopped, rolled back, or moved on by hand). Deploys and
    /// other hooks are left to finish: cutting one short could leave a
    /// half-applied change behind.
    fn end_abandoned_test_run(&mut self) {
        if self.deployment.phase == Phase::Validating {
            return;
        }
        if let Some(run) = self.test_run.take()
            && !run.is_finished()
        {
            run.abort();
            tracing::info!(
                phase = self.deployment.phase.label(),
                "test run stopped: the rollout is no longer validating"
            );
        }
    }

    fn render(&self, revision: u64) -> CanaryState {
        let metrics = Arc::clone(&*self.metrics.borrow());
        let mut state = StateParts {
            config: &self.config,
            rules: &self.rules,
            deployment: &self.deployment,
            checks: &self.checks,
            health: &self.health,
            metrics: &metrics,
            judge: self.judge_views(),
        }
        .render(revision, self.clock.now());
        state.router = self.router_state();
        state
    }

    /// Sends the state to every reader if anything in it changed.
    fn publish(&mut self) {
        let next = self.render(self.state.borrow().revision + 1);
        self.state.send_if_modified(|current| {
            if view::same_content(current, &next) {
                false
            } else {
                *current = next;
                true
            }
        });
    }
}

fn log_decision(record: &AuditRecord) {
    tracing::info!(
        // Debug, not Display: escaped and quoted, whatever a client put in it.
        actor = ?record.actor,
        action = %record.action,
        from = record.from_phase.label(),
        to = record.to_phase.label(),
        from_share = %record.from_share,
        to_share = %record.to_share,
        reason = record.reason.as_deref().unwrap_or_default(),
        "decision"
    );
}

#[cfg(test)]
mod tests;
