//! Wall-clock instants on the wire.

use serde::{Deserialize, Serialize};

/// Wall time in milliseconds since the Unix epoch (UTC).
///
/// Only for showing and recording *when* something happened; waits and
/// timeouts are measured with a monotonic clock on the server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UnixMillis(#[serde(deserialize_with = "crate::number::whole_u64")] pub u64);

impl UnixMillis {
    /// Milliseconds from `earlier` to `self`, or zero if `earlier` is later.
    pub fn saturating_since(self, earlier: UnixMillis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}
