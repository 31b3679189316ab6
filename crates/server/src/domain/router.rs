//! Routers: whatever splits the traffic (the built-in proxy, HAProxy, …),
//! as the controller sees them through [`crate::ports::Router`]: what each
//! can do, what each instance reports it has in force, and whether that is
//! the routing asked for. Pure: the adapters read the instances, the
//! controller asks [`assess`] what their readings mean, and only a routing
//! confirmed on every instance lets a step count as done.

use canary_shared::CanaryShare;

use crate::domain::deployment::Verdict;
use crate::domain::roles::{Routing, UpstreamSlot};

pub mod httproute;

/// What a kind of router can do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterCapabilities {
    /// `builtin`, `haproxy`, ….
    pub kind: &'static str,
    /// Whether it applies a routing before `request` returns (the built-in
    /// proxy), so no read-back is awaited.
    pub applies_at_once: bool,
    /// Whether 0 % sends a side nothing at all (HAProxy's weight 0 still
    /// admits clients that stick to a server by cookie).
    pub exact_zero: bool,
    /// How a change is made, in words (`at once`, `runtime API`, `reload`).
    pub change: &'static str,
    /// Which shares it can give exactly, in words.
    pub granularity: &'static str,
    /// Whether a client stays on one side, in words.
    pub stickiness: &'static str,
}

impl RouterCapabilities {
    /// All of it in one line, for people.
    pub fn describe(&self) -> String {
        format!(
            "Changes by {}. Shares: {}. Clients: {}.",
            self.change, self.granularity, self.stickiness
        )
    }
}

/// What one instance of a router reports having in force.
#[derive(Clone, Debug, PartialEq)]
pub struct InstanceReading {
    /// Which instance (a socket path, an address).
    pub instance: String,
    /// The routing it has in force, when it could be read.
    pub in_force: Option<Routing>,
    /// Why it could not be read or written, in words.
    pub error: Option<String>,
    /// What it has yet to do before it counts (a Gateway that has not
    /// accepted the route's new generation yet), in words.
    pub waiting: Option<String>,
}

impl InstanceReading {
    /// `instance` has `in_force` (`None`: nothing it serves, both weights 0).
    pub fn in_force(instance: impl Into<String>, in_force: Option<Routing>) -> InstanceReading {
        InstanceReading {
            instance: instance.into(),
            in_force,
            error: None,
            waiting: None,
        }
    }

    /// `instance` could not be read or written.
    pub fn failed(instance: impl Into<String>, error: impl Into<String>) -> InstanceReading {
        InstanceReading {
            instance: instance.into(),
            in_force: None,
            error: Some(error.into()),
            waiting: None,
        }
    }

    /// `instance` is still taking the change.
    pub fn waiting(instance: impl Into<String>, what: impl Into<String>) -> InstanceReading {
        InstanceReading {
            instance: instance.into(),
            in_force: None,
            error: None,
            waiting: Some(what.into()),
        }
    }
}

/// What the instances' readings mean for the routing asked for.
#[derive(Clone, Debug, PartialEq)]
pub enum Assessment {
    /// Every instance has the routing in force.
    Confirmed,
    /// Not yet read back since it was asked for.
    Waiting,
    /// Some instance cannot be reached or refused the change.
    Failed {
        /// Which and why, in words.
        reason: String,
    },
    /// Some instance has another routing in force than the one it had
    /// confirmed: changed behind canary's back.
    Drifted {
        /// Which and what it has, in words.
        reason: String,
    },
}

/// What `readings` mean for `wanted` (quantized by the router to
/// `effective`), given whether it had been confirmed before.
pub fn assess(
    wanted: Routing,
    effective: CanaryShare,
    readings: &[InstanceReading],
    confirmed_before: bool,
) -> Assessment {
    if readings.is_empty() {
        return Assessment::Waiting;
    }
    let mut failed = Vec::new();
    let mut different = Vec::new();
    for reading in readings {
        match (&reading.error, reading.in_force) {
            (Some(error), _) => failed.push(format!("{}: {error}", reading.instance)),
            (None, None) if reading.waiting.is_none() => {
                failed.push(format!("{}: nothing read back", reading.instance));
            }
            (None, None) => {}
            (None, Some(in_force))
                if in_force.share != effective || in_force.production != wanted.production =>
            {
                different.push(format!(
                    "{} has {} to the canary{}",
                    reading.instance,
                    in_force.share,
                    if in_force.production == wanted.production {
                        String::new()
                    } else {
                        format!(
                            " with production on the upstream listed as {}",
                            in_force.production.config_key()
                        )
                    }
                ));
            }
            (None, Some(_)) => {}
        }
    }
    if !failed.is_empty() {
        return Assessment::Failed {
            reason: failed.join("; "),
        };
    }
    if readings.iter().any(|reading| reading.waiting.is_some()) {
        return Assessment::Waiting;
    }
    if different.is_empty() {
        return Assessment::Confirmed;
    }
    let reason = format!("{} (asked for {effective})", different.join("; "));
    if confirmed_before {
        Assessment::Drifted { reason }
    } else {
        Assessment::Failed { reason }
    }
}

/// The checks' `verdict` with the router's say: a step counts as done only
/// on a confirmed routing, so anything else holds it (a failed change also
/// alerts, as a warning does).
pub fn with_router(assessment: &Assessment, verdict: Verdict) -> Verdict {
    match (assessment, verdict) {
        (Assessment::Confirmed, verdict) => verdict,
        (_, verdict @ (Verdict::Critical { .. } | Verdict::Suspect { .. })) => verdict,
        (Assessment::Waiting, Verdict::Green) => Verdict::Undecided {
            reason: "waiting for the router to confirm the split".to_owned(),
        },
        (Assessment::Waiting, verdict) => verdict,
        (Assessment::Failed { reason } | Assessment::Drifted { reason }, _) => Verdict::Warning {
            reason: format!("the router has not applied the split: {reason}"),
        },
    }
}

/// Requests a router counted on one server, next to the lines its access
/// log brought for it, over the same stretch of time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogCoverage {
    /// Requests the router says the server answered (HAProxy: its HTTP
    /// responses and response errors).
    pub counted: u64,
    /// Lines its access log brought for the server.
    pub logged: u64,
}

/// Too few requests to tell a lost line from a line still in flight.
const COVERAGE_MIN_COUNTED: u64 = 50;

/// Whether the access log brought (nearly) every request the router
/// counted, per server; `None` when it did, or in words what is missing:
/// the checks then see only part of the traffic (UDP lines lost, or an
/// instance that logs elsewhere).
pub fn log_coverage(servers: &[(&str, LogCoverage)]) -> Option<String> {
    let short: Vec<String> = servers
        .iter()
        .filter(|(_, coverage)| {
            coverage.counted >= COVERAGE_MIN_COUNTED && coverage.logged * 10 < coverage.counted * 9
        })
        .map(|(server, coverage)| {
            format!(
                "server {server} answered {} requests, its access log brought {}",
                coverage.counted, coverage.logged
            )
        })
        .collect();
    (!short.is_empty()).then(|| {
        format!(
            "{}: log lines are being lost (UDP drops, or an instance that logs elsewhere), so the \
             checks see only part of the traffic",
            short.join("; ")
        )
    })
}

/// HAProxy weights (0–256 each) for `routing`, as (production's server,
/// canary's server) by slot, and the share they give: the representable
/// share nearest to the one asked for (every whole percent is exact).
pub fn haproxy_weights(routing: Routing) -> ([(UpstreamSlot, u16); 2], CanaryShare) {
    let asked = u32::from(routing.share.basis_points());
    let (production, canary, effective) = if asked == 0 {
        (1, 0, 0)
    } else if asked >= 10_000 {
        (0, 1, 10_000)
    } else {
        // The pair with the nearest share; among equals, the smallest
        // weights (25 % is 3:1, which reads as what it is in `get weight`).
        let mut best = (0u32, 0u32, u32::MAX, 0u32);
        for total in 2..=512u32 {
            let canary = (asked * total + 5_000) / 10_000;
            let production = total - canary.min(total);
            if canary == 0 || production == 0 || canary > 256 || production > 256 {
                continue;
            }
            let share = (canary * 10_000 + total / 2) / total;
            let error = share.abs_diff(asked);
            if error < best.2 {
                best = (production, canary, error, share);
            }
        }
        (best.0, best.1, best.3)
    };
    let weights = [
        (routing.production, production as u16),
        (routing.production.other(), canary as u16),
    ];
    (
        weights,
        CanaryShare::from_basis_points(effective as u16).expect("within 0–100 %"),
    )
}

/// The routing HAProxy has in force, from the weights of the servers in
/// the two slots (`None` when both are 0: nothing is served).
pub fn haproxy_routing(
    listed_as_production: u16,
    listed_as_canary: u16,
    production: UpstreamSlot,
) -> Option<Routing> {
    let (production_weight, canary_weight) = match production {
        UpstreamSlot::ListedAsProduction => (listed_as_production, listed_as_canary),
        UpstreamSlot::ListedAsCanary => (listed_as_canary, listed_as_production),
    };
    let total = u32::from(production_weight) + u32::from(canary_weight);
    if total == 0 {
        return None;
    }
    let share = (u32::from(canary_weight) * 10_000 + total / 2) / total;
    Some(Routing {
        share: CanaryShare::from_basis_points(share as u16).expect("within 0–100 %"),
        production,
    })
}

#[cfg(test)]
mod tests {
    use canary_shared::CanaryShare;

    use super::*;

    fn routing(percent: f64) -> Routing {
        Routing {
            share: CanaryShare::from_percent(percent).unwrap(),
            production: UpstreamSlot::ListedAsProduction,
        }
    }

    #[test]
    fn haproxy_weights_make_every_whole_percent_exact_and_report_the_rest() {
        for percent in 0..=100 {
            let (weights, effective) = haproxy_weights(routing(f64::from(percent)));
            assert_eq!(effective.percent(), f64::from(percent), "{percent} %");
            assert!(weights.iter().all(|(_, weight)| *weight <= 256));
            let back =
                haproxy_routing(weights[0].1, weights[1].1, UpstreamSlot::ListedAsProduction);
            assert_eq!(back.map(|routing| routing.share), Some(effective));
        }
        let (_, effective) = haproxy_weights(routing(0.25));
        assert_ne!(
            effective.percent(),
            0.25,
            "not representable with weights up to 256"
        );
        assert!((effective.percent() - 0.25).abs() < 0.2, "{effective}");
        let (weights, _) = haproxy_weights(routing(0.0));
        assert_eq!(weights[1].1, 0, "0 % gives the canary's server weight 0");
    }

    #[test]
    fn a_swap_of_roles_moves_the_weights_to_the_other_servers() {
        let swapped = Routing {
            share: CanaryShare::from_percent(25.0).unwrap(),
            production: UpstreamSlot::ListedAsCanary,
        };
        let (weights, _) = haproxy_weights(swapped);
        assert_eq!(weights[0].0, UpstreamSlot::ListedAsCanary);
        assert_eq!(weights[0].1 * 25, weights[1].1 * 75, "{weights:?}");
    }

    #[test]
    fn a_routing_is_confirmed_only_when_every_instance_has_it() {
        let wanted = routing(25.0);
        let effective = wanted.share;
        let good = InstanceReading::in_force("a", Some(wanted));
        let stale = InstanceReading::in_force("b", Some(routing(5.0)));
        let down = InstanceReading::failed("c", "connection refused");
        let behind = InstanceReading::waiting("d", "generation 5 not accepted yet");
        assert_eq!(assess(wanted, effective, &[], false), Assessment::Waiting);
        assert_eq!(
            assess(wanted, effective, std::slice::from_ref(&good), false),
            Assessment::Confirmed
        );
        assert!(matches!(
            assess(wanted, effective, &[good.clone(), stale.clone()], false),
            Assessment::Failed { reason } if reason == "b has 5 % to the canary (asked for 25 %)"
        ));
        assert!(matches!(
            assess(wanted, effective, &[good.clone(), stale], true),
            Assessment::Drifted { .. }
        ));
        assert_eq!(
            assess(wanted, effective, &[good.clone(), behind.clone()], true),
            Assessment::Waiting,
            "an instance still taking the change holds it without alerting"
        );
        assert!(matches!(
            assess(wanted, effective, &[good, down, behind], true),
            Assessment::Failed { reason } if reason == "c: connection refused"
        ));
    }

    #[test]
    fn lost_log_lines_are_named_once_there_are_enough_requests_to_tell() {
        let full = LogCoverage {
            counted: 1000,
            logged: 998,
        };
        let lossy = LogCoverage {
            counted: 1000,
            logged: 700,
        };
        let few = LogCoverage {
            counted: 20,
            logged: 0,
        };
        assert_eq!(log_coverage(&[("prod", full), ("canary", few)]), None);
        assert_eq!(
            log_coverage(&[("prod", full), ("canary", lossy)]).as_deref(),
            Some(
                "server canary answered 1000 requests, its access log brought 700: log lines are \
                 being lost (UDP drops, or an instance that logs elsewhere), so the checks see \
                 only part of the traffic"
            )
        );
    }

    #[test]
    fn an_unconfirmed_split_holds_the_step_and_a_failed_one_alerts() {
        let green = Verdict::Green;
        assert_eq!(
            with_router(&Assessment::Confirmed, green.clone()),
            Verdict::Green
        );
        assert!(matches!(
            with_router(&Assessment::Waiting, green.clone()),
            Verdict::Undecided { .. }
        ));
        assert!(matches!(
            with_router(
                &Assessment::Failed {
                    reason: "x".to_owned()
                },
                green
            ),
            Verdict::Warning { .. }
        ));
        let critical = Verdict::Critical {
            reason: "errors".to_owned(),
        };
        assert_eq!(
            with_router(&Assessment::Waiting, critical.clone()),
            critical,
            "a breach still rolls back"
        );
    }
}
