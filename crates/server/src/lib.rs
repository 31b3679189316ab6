//! canary's server: the deployment controller, its admin API and WebSocket
//! stream, and the console's static files.
//!
//! # Layout
//! - [`config`]: `canary-config.yaml`, typed and validated (pure parsing).
//! - [`domain`]: the pure core — health verdicts and how the rollout is shown.
//! - [`ports`]: small traits for the outside world ([`ports::Clock`]).
//! - [`adapters`]: the I/O behind the ports and the upstream health probes.
//! - [`controller`]: the one place that glues them; owns the rollout state.
//! - [`api`]: the HTTP and WebSocket shell.
//!
//! [`run`] serves everything on a bound listener until a shutdown future
//! resolves; `main.rs` only parses arguments, loads config and calls it.

pub mod adapters;
pub mod api;
pub mod config;
pub mod controller;
pub mod domain;
pub mod ports;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::api::AppState;
use crate::config::Config;
use crate::ports::Clock;

pub use crate::api::router;

/// Serves the admin API and console on `admin_listener` until `shutdown`
/// resolves, then stops every task it started.
pub async fn run(
    config: Config,
    admin_listener: TcpListener,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = Arc::new(config);
    let (controller, controller_task) = controller::spawn(Arc::clone(&config), clock);
    // The JoinSet aborts every probe when it is dropped at the end of `run`.
    let mut tasks = JoinSet::new();
    for side in canary_shared::Side::BOTH {
        let upstream = config.upstreams.of(side).clone();
        tasks.spawn(adapters::health_probe::run(
            side,
            upstream,
            controller.events.clone(),
        ));
    }
    let (stopping_tx, stopping_rx) = watch::channel(false);
    let app_state = AppState {
        state: controller.state.clone(),
        assets_dir: config.server.assets_dir.clone(),
        shutdown: stopping_rx,
    };
    let result = axum::serve(admin_listener, router(app_state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            tracing::info!("shutting down");
            // Open WebSocket streams close themselves with "going away".
            let _ = stopping_tx.send(true);
        })
        .await;
    tasks.abort_all();
    drop(controller);
    controller_task.abort();
    result
}
