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
