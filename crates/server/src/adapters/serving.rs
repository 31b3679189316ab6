//! What the proxy's threads and the admin listener share when they stop:
//! waiting for the stop signal, and draining open connections.

use std::time::Duration;

/// Resolves once `stopping` is true (or its sender is gone).
pub(crate) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it before resolving.
    let _ = stopping.wait_for(|stopping| *stopping).await.map(|_| ());
}

/// Waits up to ten seconds for `connections` to finish their requests, then
/// closes whatever is still open.
pub(crate) async fn drain(connections: &mut tokio::task::JoinSet<()>, listener: &str) {
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(listener, "connections still open after 10 s; closing them");
        connections.abort_all();
    }
}
