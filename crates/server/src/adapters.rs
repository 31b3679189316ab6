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
