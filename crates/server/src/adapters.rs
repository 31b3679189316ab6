//! All I/O: the implementations of [`crate::ports`] and the tasks that talk
//! to upstreams.

pub mod clock;
pub mod credentials;
pub mod demo;
pub mod demo_router;
pub mod health_probe;
pub mod hooks;
pub mod listeners;
pub mod metric_sources;
pub mod notify;
pub mod oidc;
pub mod own_metrics;
pub mod proxy;
pub mod push;
pub mod recorder;
pub mod router;
pub mod serving;
pub mod shadow;
pub mod store;
pub mod tls;
pub mod upstream_client;

/// An error and its causes in one line (hyper's client says "client error
/// (Connect)" on top and why below; the openidconnect crate nests the
/// same way), for logs, the CLI's messages and the reasons people read.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}
