//! The routers behind [`crate::ports::Router`]: the built-in proxy (here),
//! HAProxy through its Runtime API (`router/haproxy.rs`) and nginx through
//! a config file canary writes (`router/nginx.rs`), whose requests are
//! measured from their access logs (`router/access_log.rs`), and a
//! Kubernetes Gateway API `HTTPRoute` through the API server
//! (`router/gateway_api.rs`).

use canary_shared::CanaryShare;

use crate::adapters::proxy::SharedRouting;
use crate::domain::roles::Routing;
use crate::domain::router::RouterCapabilities;
use crate::ports::Router;

pub mod access_log;
pub mod gateway_api;
pub mod haproxy;
pub mod nginx;

/// The built-in proxy: a routing is in force on the next request.
#[derive(Clone, Debug)]
pub struct BuiltinRouter {
    routing: SharedRouting,
}

impl BuiltinRouter {
    /// The router of the proxy that reads `routing`.
    pub fn new(routing: SharedRouting) -> BuiltinRouter {
        BuiltinRouter { routing }
    }
}

impl Router for BuiltinRouter {
    fn capabilities(&self) -> RouterCapabilities {
        RouterCapabilities {
            kind: "builtin",
            applies_at_once: true,
            exact_zero: true,
            change: "the proxy itself, on the next request",
            granularity: "every 0.01 %",
            stickiness: "each request drawn afresh, unless proxy.stickiness keeps a client on its side",
        }
    }

    fn effective(&self, routing: Routing) -> CanaryShare {
        routing.share
    }

    fn request(&self, routing: Routing) {
        self.routing.set(routing);
    }
}
