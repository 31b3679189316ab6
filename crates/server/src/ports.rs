//! The small traits through which the glue reaches the outside world, so the
//! controller can be driven in tests without real clocks or sockets.

use std::fmt::Debug;

use canary_shared::UnixMillis;

/// Tells wall time, for recording *when* something happened.
///
/// Waits and timeouts use tokio's monotonic clock instead, so a wall-clock
/// jump cannot end a wait early.
pub trait Clock: Debug + Send + Sync + 'static {
    /// Now, as wall time.
    fn now(&self) -> UnixMillis;
}

/// Whatever splits the traffic between the two upstreams: the built-in
/// proxy, or a load balancer a team already runs.
///
/// `request` returns at once. A router that applies a routing before
/// returning says so in its capabilities; any other applies it from a task
/// of its own (retrying until it holds) and reports what every instance has
/// in force through the controller's events, so the controller, not the
/// router, decides when a change is done.
pub trait Router: Debug + Send + Sync + 'static {
    /// What it can do.
    fn capabilities(&self) -> crate::domain::router::RouterCapabilities;

    /// The share `routing` gives once applied (the router's quantization).
    fn effective(&self, routing: crate::domain::roles::Routing) -> canary_shared::CanaryShare;

    /// Asks for `routing` from now on, replacing any routing asked before.
    fn request(&self, routing: crate::domain::roles::Routing);
}
