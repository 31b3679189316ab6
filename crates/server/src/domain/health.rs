//! Active health: turning single probe results into a stable health verdict.
//!
//! One failed probe does not make an upstream unhealthy and one pass does not
//! make it healthy again: a verdict changes only after the configured number of
//! consecutive results agree (as HAProxy's `rise` / `fall`). The very first
//! result decides at once, so a fresh server shows a verdict after one interval
//! instead of showing "Unknown" for several.

use canary_shared::Health;

/// The result of one probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeOutcome {
    /// The upstream answered with a 2xx status.
    Passed {
        /// The HTTP status.
        status: u16,
    },
    /// It answered with another status.
    BadStatus {
        /// The HTTP status.
        status: u16,
    },
    /// It did not answer within the timeout.
    TimedOut,
    /// The connection failed (refused, reset, DNS, …).
    Unreachable {
        /// Why, in words.
        reason: String,
    },
}

impl ProbeOutcome {
    /// Whether the probe passed.
    pub fn passed(&self) -> bool {
        matches!(self, ProbeOutcome::Passed { .. })
    }

    /// The outcome in words, naming the checked path.
    pub fn describe(&self, path: &str) -> String {
        match self {
            ProbeOutcome::Passed { status } | ProbeOutcome::BadStatus { status } => {
                format!("HTTP {status} from {path}")
            }
            ProbeOutcome::TimedOut => format!("{path} did not answer in time"),
            ProbeOutcome::Unreachable { reason } => format!("unreachable: {reason}"),
        }
    }
}

/// The thresholds of [`HealthTracker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthThresholds {
    /// Consecutive passes that make an upstream healthy.
    pub healthy_after: u32,
    /// Consecutive failures that make it unhealthy.
    pub unhealthy_after: u32,
}

/// Health of one upstream from its probe results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HealthTracker {
    thresholds: HealthThresholds,
    health: Health,
    /// The description of the result that set the current verdict.
    detail: Option<String>,
    /// Consecutive results that disagree with the current verdict.
    streak: u32,
}

impl HealthTracker {
    /// A tracker with no results yet.
    pub fn new(thresholds: HealthThresholds) -> HealthTracker {
        HealthTracker {
            thresholds,
            health: Health::Unknown,
            detail: None,
            streak: 0,
        }
    }

    /// The current verdict.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Why the verdict is what it is.
    pub fn detail(&self) -> Option<&str> {
        self.detail.as_deref()
    }

    /// Takes one probe result; the path is only used to describe it.
    pub fn observe(&mut self, outcome: &ProbeOutcome, path: &str) {
        let observed = if outcome.passed() {
            Health::Healthy
        } else {
            Health::Unhealthy
        };
        let description = outcome.describe(path);
        if self.health == Health::Unknown {
            self.health = observed;
            self.detail = Some(description);
            self.streak = 0;
            return;
        }
        if observed == self.health {
            // Agreement resets any streak toward the other verdict; the detail
            // follows the latest result so a new status code is visible.
            self.streak = 0;
            self.detail = Some(description);
            return;
        }
        self.streak += 1;
        let needed = match observed {
            Health::Healthy => self.thresholds.healthy_after,
            _ => self.thresholds.unhealthy_after,
        };
        if self.streak >= needed {
            self.health = observed;
            self.detail = Some(description);
            self.streak = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use canary_shared::Health;

    use crate::domain::health::{HealthThresholds, HealthTracker, ProbeOutcome};

    const PASS: ProbeOutcome = ProbeOutcome::Passed { status: 200 };
    const FAIL: ProbeOutcome = ProbeOutcome::BadStatus { status: 503 };

    fn tracker() -> HealthTracker {
        HealthTracker::new(HealthThresholds {
            healthy_after: 2,
            unhealthy_after: 3,
        })
    }

    /// Feeds `outcomes` and returns the verdict after each.
    fn run(outcomes: &[ProbeOutcome]) -> Vec<Health> {
        let mut tracker = tracker();
        outcomes
            .iter()
            .map(|outcome| {
                tracker.observe(outcome, "/healthz");
                tracker.health()
            })
            .collect()
    }

    #[test]
    fn the_first_result_decides_at_once() {
        assert_eq!(tracker().health(), Health::Unknown);
        assert_eq!(run(&[PASS]), [Health::Healthy]);
        assert_eq!(run(&[FAIL]), [Health::Unhealthy]);
    }

    #[test]
    fn a_healthy_upstream_falls_after_three_consecutive_failures() {
        use Health::{Healthy, Unhealthy};
        assert_eq!(
            run(&[PASS, FAIL, FAIL, FAIL]),
            [Healthy, Healthy, Healthy, Unhealthy]
        );
        // A pass in between restarts the count.
        assert_eq!(
            run(&[PASS, FAIL, FAIL, PASS, FAIL, FAIL]),
            [Healthy, Healthy, Healthy, Healthy, Healthy, Healthy]
        );
    }

    #[test]
    fn an_unhealthy_upstream_rises_after_two_consecutive_passes() {
        use Health::{Healthy, Unhealthy};
        assert_eq!(run(&[FAIL, PASS, PASS]), [Unhealthy, Unhealthy, Healthy]);
        assert_eq!(run(&[FAIL, PASS, FAIL, PASS]), [Unhealthy; 4]);
    }

    #[test]
    fn the_detail_says_what_the_probe_saw() {
        let mut tracker = tracker();
        tracker.observe(&ProbeOutcome::TimedOut, "/healthz");
        assert_eq!(tracker.detail(), Some("/healthz did not answer in time"));
        let refused = ProbeOutcome::Unreachable {
            reason: "connection refused".to_owned(),
        };
        tracker.observe(&refused, "/healthz");
        assert_eq!(tracker.detail(), Some("unreachable: connection refused"));
        tracker.observe(&PASS, "/healthz");
        assert_eq!(
            tracker.detail(),
            Some("unreachable: connection refused"),
            "not risen yet"
        );
        tracker.observe(&PASS, "/healthz");
        assert_eq!(tracker.detail(), Some("HTTP 200 from /healthz"));
    }
}
