//! The controller's side of the router port: it asks the router for a
//! routing, and decides from the instances' readings whether that routing
//! is in force. A step counts as done only on a confirmed routing
//! (`domain::router::with_router`); a failed change holds the step and
//! alerts while the router keeps trying; a routing changed behind canary's
//! back is audited and asked for again.

use canary_shared::{AuditAction, CanaryShare, RouterInstance, RouterStatus};

use crate::controller::Controller;
use crate::domain::roles::Routing;
use crate::domain::router::{Assessment, InstanceReading, assess};

/// Where the routing asked for stands.
#[derive(Clone, Debug)]
pub(super) struct RouterProgress {
    /// The routing asked for.
    pub(super) wanted: Routing,
    /// The share it gives on this router.
    pub(super) effective: CanaryShare,
    /// What the last readings said of it.
    pub(super) assessment: Assessment,
    /// Whether it has been confirmed on every instance since it was asked for.
    pub(super) confirmed_once: bool,
    /// The last readings, one per instance.
    pub(super) readings: Vec<InstanceReading>,
    /// What the router's own counters say the access log misses.
    pub(super) measurement: Option<String>,
}

impl RouterProgress {
    /// Before anything is asked for.
    pub(super) fn new(wanted: Routing, effective: CanaryShare, at_once: bool) -> RouterProgress {
        RouterProgress {
            wanted,
            effective,
            assessment: if at_once {
                Assessment::Confirmed
            } else {
                Assessment::Waiting
            },
            confirmed_once: at_once,
            readings: Vec::new(),
            measurement: None,
        }
    }
}

impl Controller {
    /// Asks the router for `routing`; the measurements count with the share
    /// it gives there.
    pub(super) fn route(&mut self, routing: Routing) {
        let capabilities = self.router.capabilities();
        let effective = self.router.effective(routing);
        self.routing.set(Routing {
            share: effective,
            ..routing
        });
        self.router.request(routing);
        let measurement = self.router_progress.measurement.take();
        self.router_progress = RouterProgress {
            measurement,
            ..RouterProgress::new(routing, effective, capabilities.applies_at_once)
        };
        tracing::info!(
            router = capabilities.kind,
            share = %routing.share,
            %effective,
            production = routing.production.config_key(),
            "routing asked for"
        );
    }

    /// The router and where the split stands, for the state clients see.
    pub(super) fn router_state(&self) -> RouterStatus {
        let progress = &self.router_progress;
        RouterStatus {
            kind: self.router.capabilities().kind.to_owned(),
            about: self.router.capabilities().describe(),
            effective_percent: progress.effective,
            confirmed: progress.assessment == Assessment::Confirmed,
            detail: match &progress.assessment {
                Assessment::Confirmed => None,
                Assessment::Waiting => {
                    Some("waiting for the router to confirm the split".to_owned())
                }
                Assessment::Failed { reason } | Assessment::Drifted { reason } => {
                    Some(reason.clone())
                }
            },
            measurement: progress.measurement.clone(),
            instances: progress
                .readings
                .iter()
                .map(|reading| RouterInstance {
                    name: reading.instance.clone(),
                    canary_percent: reading.in_force.map(|routing| routing.share),
                    error: reading.error.clone(),
                    waiting: reading.waiting.clone(),
                })
                .collect(),
        }
    }

    /// Takes what an external router's counters say of its access log.
    pub(super) fn router_measurement(&mut self, note: Option<String>) {
        if let Some(note) = &note {
            tracing::warn!(%note, "the router's access log misses requests");
        }
        if self.router_progress.measurement != note {
            self.router_progress.measurement = note;
            self.publish();
        }
    }

    /// Takes an external router's readings.
    pub(super) fn router_read(&mut self, routing: Routing, readings: Vec<InstanceReading>) {
        let progress = &mut self.router_progress;
        if routing != progress.wanted {
            // Read while an earlier routing was asked for: the next reading counts.
            return;
        }
        let assessment = assess(
            progress.wanted,
            progress.effective,
            &readings,
            progress.confirmed_once,
        );
        progress.readings = readings;
        let before = std::mem::replace(&mut progress.assessment, assessment.clone());
        match &assessment {
            Assessment::Confirmed if !progress.confirmed_once => {
                progress.confirmed_once = true;
                tracing::info!(share = %progress.effective, "the router confirmed the split");
            }
            Assessment::Drifted { reason } => {
                let reason = format!("{reason}; setting it again");
                tracing::warn!(%reason, "router drift");
                self.record_unchanged(
                    "controller".to_owned(),
                    AuditAction::RouterDrift,
                    reason.clone(),
                );
                let wanted = self.router_progress.wanted;
                self.route(wanted);
                if self.config.router.on_drift == crate::config::OnDrift::Pause
                    && self.deployment.phase == canary_shared::Phase::Progressing
                {
                    let pause = crate::domain::deployment::Input::Command {
                        actor: "controller".to_owned(),
                        command: canary_shared::Command::Pause,
                    };
                    self.automatic(pause, None);
                }
            }
            Assessment::Failed { reason } if before != assessment => {
                tracing::warn!(%reason, "the router has not applied the split");
            }
            _ => {}
        }
        if before != self.router_progress.assessment {
            self.publish();
        }
    }
}
