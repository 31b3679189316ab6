//! The one place that glues the pure core to the outside world.
//!
//! The controller owns the rollout and the upstreams' health trackers. It
//! receives [`Event`]s on an mpsc channel, applies them with the pure
//! [`crate::domain`] functions, and publishes every changed [`CanaryState`] on a
//! `watch` channel that the REST handlers and WebSocket streams read.

use std::sync::Arc;

use canary_shared::{CanaryShare, CanaryState, MetricsSnapshot, Side};
use tokio::sync::{mpsc, oneshot, watch};

use crate::adapters::proxy::SharedShare;
use crate::config::{Config, UpstreamConfig};
use crate::domain::health::{HealthThresholds, HealthTracker, ProbeOutcome};
use crate::domain::rollout::{self, RenderInput, Rollout, UpstreamView};
use crate::ports::Clock;

/// Something that happened, for the controller to take into account.
#[derive(Debug)]
pub enum Event {
    /// A health probe of `side` finished.
    Probed {
        /// The probed upstream.
        side: Side,
        /// What it answered.
        outcome: ProbeOutcome,
    },
    /// A second of traffic was measured.
    Measured(Arc<MetricsSnapshot>),
    /// Set the canary share directly (`POST /admin/canary/scale/{percent}`);
    /// `applied` receives the state once the proxy uses the new share.
    SetShare {
        /// The new share.
        share: CanaryShare,
        /// Told when the share is in effect, if anyone is waiting.
        applied: Option<oneshot::Sender<CanaryState>>,
    },
}

/// How other tasks talk to the controller.
#[derive(Clone, Debug)]
pub struct ControllerHandle {
    /// Events in. Senders: the health probes (and later the API and the
    /// metrics ticker); receiver: the controller task.
    pub events: mpsc::Sender<Event>,
    /// The latest state out. Sender: the controller task; receivers: the REST
    /// handlers and every WebSocket stream. A `watch` keeps only the latest
    /// value, so a slow client skips states instead of holding memory.
    pub state: watch::Receiver<CanaryState>,
    /// The latest measurements. Sender: the controller, once a second;
    /// receivers: `GET /admin/canary/metrics` and every WebSocket stream.
    pub metrics: watch::Receiver<Arc<MetricsSnapshot>>,
}

/// The controller's own data; lives inside its task.
#[derive(Debug)]
struct Controller {
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    rollout: Rollout,
    production: HealthTracker,
    canary: HealthTracker,
    share: SharedShare,
    state: watch::Sender<CanaryState>,
    metrics: watch::Sender<Arc<MetricsSnapshot>>,
}

/// Starts the controller task; it ends when every event sender is dropped.
///
/// The proxy's `share` is set from the rollout before this returns, so no
/// request is ever split by a share the controller does not hold.
pub fn spawn(
    config: Arc<Config>,
    clock: Arc<dyn Clock>,
    share: SharedShare,
    first_metrics: MetricsSnapshot,
) -> (ControllerHandle, tokio::task::JoinHandle<()>) {
    let tracker = |upstream: &UpstreamConfig| {
        HealthTracker::new(HealthThresholds {
            healthy_after: upstream.health_check.healthy_threshold.0,
            unhealthy_after: upstream.health_check.unhealthy_threshold.0,
        })
    };
    let rollout = Rollout::idle(&config.canary);
    let production = tracker(&config.upstreams.production);
    let canary = tracker(&config.upstreams.canary);
    share.set(rollout.canary_share);
    let (events_tx, mut events_rx) = mpsc::channel(256);
    let first_metrics = Arc::new(first_metrics);
    let initial = render(
        &config,
        &rollout,
        &production,
        &canary,
        &first_metrics,
        1,
        clock.now(),
    );
    let (state_tx, state_rx) = watch::channel(initial);
    let (metrics_tx, metrics_rx) = watch::channel(first_metrics);
    let mut controller = Controller {
        config,
        clock,
        rollout,
        production,
        canary,
        share,
        state: state_tx,
        metrics: metrics_tx,
    };
    let task = tokio::spawn(async move {
        while let Some(event) = events_rx.recv().await {
            controller.apply(event);
        }
    });
    (
        ControllerHandle {
            events: events_tx,
            state: state_rx,
            metrics: metrics_rx,
        },
        task,
    )
}

impl Controller {
    fn apply(&mut self, event: Event) {
        match event {
            Event::Probed { side, outcome } => {
                let path = &self.config.upstreams.of(side).health_check.path.0;
                let tracker = match side {
                    Side::Production => &mut self.production,
                    Side::Canary => &mut self.canary,
                };
                let before = tracker.health();
                tracker.observe(&outcome, path);
                if tracker.health() != before {
                    tracing::info!(
                        side = side.as_str(),
                        from = before.label(),
                        to = tracker.health().label(),
                        detail = tracker.detail().unwrap_or_default(),
                        "upstream health changed"
                    );
                }
            }
            Event::Measured(snapshot) => {
                self.metrics.send_replace(snapshot);
            }
            Event::SetShare { share, applied } => {
                tracing::info!(from = %self.rollout.canary_share, to = %share, "canary share set");
                self.rollout.canary_share = share;
                self.share.set(share);
                self.publish();
                if let Some(applied) = applied {
                    let _ = applied.send(self.state.borrow().clone());
                }
                return;
            }
        }
        self.publish();
    }

    /// Sends the state to every reader if anything in it changed.
    fn publish(&mut self) {
        let current_revision = self.state.borrow().revision;
        let metrics = Arc::clone(&*self.metrics.borrow());
        let next = render(
            &self.config,
            &self.rollout,
            &self.production,
            &self.canary,
            &metrics,
            current_revision + 1,
            self.clock.now(),
        );
        self.state.send_if_modified(|current| {
            if rollout::same_content(current, &next) {
                false
            } else {
                *current = next;
                true
            }
        });
    }
}

fn render(
    config: &Config,
    rollout: &Rollout,
    production: &HealthTracker,
    canary: &HealthTracker,
    metrics: &MetricsSnapshot,
    revision: u64,
    now: canary_shared::UnixMillis,
) -> CanaryState {
    let view = |upstream: &UpstreamConfig,
                tracker: &HealthTracker,
                measured: &canary_shared::SideMetrics| {
        UpstreamView {
            version: upstream.version.clone(),
            url: upstream.url.to_string(),
            health: tracker.health(),
            health_detail: tracker.detail().map(str::to_owned),
            last_minute: Some(measured.last_1m.clone()),
        }
    };
    rollout::render(RenderInput {
        rollout,
        config: &config.canary,
        production: &view(
            &config.upstreams.production,
            production,
            &metrics.production,
        ),
        canary: &view(&config.upstreams.canary, canary, &metrics.canary),
        revision,
        now,
    })
}
