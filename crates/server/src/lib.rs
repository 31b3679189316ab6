//! canary's server: the deployment controller, its admin API and WebSocket
//! stream, and the console's static files.
//!
//! # Layout
//! - [`config`]: `canary-config.yaml`, typed and validated (pure parsing).
//! - [`domain`]: the pure core — health verdicts and how the rollout is shown.
//! - [`query`]: percent-encoding of query values.
//! - [`ports`]: small traits for the outside world ([`ports::Clock`]).
//! - [`adapters`]: the I/O behind the ports and the upstream health probes.
//! - [`controller`]: the one place that glues them; owns the rollout state.
//! - [`api`]: the HTTP and WebSocket shell.
//! - [`cli`]: the client commands for scripts (`canary status`, `start`, `watch`, …).
//!
//! [`run`] serves everything on bound listeners until a shutdown future
//! resolves; `main.rs` only parses arguments, loads config and calls it.

pub mod access;
pub mod adapters;
pub mod api;
pub mod cli;
pub mod config;
pub mod controller;
pub mod cookies;
pub mod domain;
pub mod events;
#[doc(hidden)]
pub mod fuzzing;
pub mod ports;
pub mod preflight;
pub mod query;
pub mod sampling;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::adapters::proxy::{Proxy, SharedRouting};
use crate::adapters::recorder::Recorder;

/// How long notifications already announced may take to go out at shutdown.
const NOTIFY_GRACE: std::time::Duration = std::time::Duration::from_secs(5);
use crate::api::AppState;
use crate::config::Config;
use crate::controller::ControllerHandle;
use crate::ports::Clock;

pub use crate::api::router;

/// The bound sockets the server serves on.
#[derive(Debug)]
pub struct Listeners {
    /// Console, REST API and WebSocket.
    pub admin: TcpListener,
    /// The traffic-splitting proxy; none when an external router splits
    /// the traffic (`router.kind` other than `builtin`).
    pub proxy: Option<TcpListener>,
}

/// Serves the admin API, the console and the proxy until `shutdown`
/// resolves, then stops every task it started.
pub async fn run(
    config: Config,
    listeners: Listeners,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let (_controller, server) = start(config, listeners, clock, shutdown)?;
    server
        .await
        .unwrap_or_else(|join_error| Err(std::io::Error::other(join_error)))?;
    Ok(())
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened (locked by another server, unwritable, …).
    #[error(transparent)]
    Store(#[from] adapters::store::StoreError),
    /// Serving failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
    /// The admin listener is reachable from other machines, but logins are off.
    #[error(
        "refusing to serve the admin API on {0} without logins: anyone who can reach that address could \
         start, stop or promote rollouts. Either add an auth section with users or tokens to the config \
         (create hashes with `canary hash-password` and `canary new-token`; add server.tls so passwords \
         do not cross the network in clear), or listen on 127.0.0.1 (server.admin_listen or --admin-listen) \
         and reach it through an SSH tunnel, for example: ssh -L 8000:127.0.0.1:8000 <host>"
    )]
    AdminNotLoopback(std::net::SocketAddr),
    /// `server.tls` names a certificate or key that cannot be used.
    #[error(transparent)]
    Tls(#[from] adapters::tls::TlsError),
    /// An upstream's TLS settings cannot be used (its `ca_file`, the system's roots).
    #[error("{field}: {message}")]
    UpstreamTls {
        /// `upstreams.production` or `upstreams.canary`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// `auth.oidc` cannot be used (its `ca_file`).
    #[error("{0}")]
    SingleSignOn(String),
    /// The access log listener of an external router cannot listen.
    #[error(
        "cannot listen for the router's access log on {address} (router.{field}.log_listen): {source}"
    )]
    AccessLog {
        /// Where.
        address: std::net::SocketAddr,
        /// The router kind whose `log_listen` names it.
        field: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The system gave no random bytes for secrets.
    #[error(transparent)]
    Credentials(#[from] adapters::credentials::CredentialError),
}

/// Like [`run`], but returns the controller's handle at once and the server
/// as a task, so tests can drive and observe it.
pub fn start(
    config: Config,
    listeners: Listeners,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<
    (
        ControllerHandle,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ),
    StartError,
> {
    start_with_demo(config, listeners, clock, shutdown, None)
}

/// Like [`start`], with the demo's services behind the demo panel's API.
pub fn start_with_demo(
    config: Config,
    listeners: Listeners,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    demo: Option<Arc<adapters::demo::DemoControl>>,
) -> Result<
    (
        ControllerHandle,
        tokio::task::JoinHandle<std::io::Result<()>>,
    ),
    StartError,
> {
    let admin_addr = listeners.admin.local_addr()?;
    if !admin_addr.ip().is_loopback() {
        if config.auth.is_none() {
            return Err(StartError::AdminNotLoopback(admin_addr));
        }
        if config.server.tls.is_none() {
            tracing::warn!(
                %admin_addr,
                "the admin API is reachable from the network over plain HTTP: passwords and \
                 session cookies cross it in clear; add server.tls"
            );
        }
    }
    let tls = config
        .server
        .tls
        .as_ref()
        .map(adapters::tls::server_config)
        .transpose()?;
    let proxy_tls = config
        .proxy
        .tls
        .as_ref()
        .map(adapters::tls::proxy_config)
        .transpose()?;
    let upstream_tls = {
        let tls_for = |slot: domain::roles::UpstreamSlot| {
            let upstream = config.upstreams.slot(slot);
            adapters::upstream_client::needs_client(upstream)
                .then(|| adapters::upstream_client::tls_config(upstream))
                .transpose()
                .map_err(|message| StartError::UpstreamTls {
                    field: format!("upstreams.{}", slot.config_key()),
                    message,
                })
        };
        [
            tls_for(domain::roles::UpstreamSlot::ListedAsProduction)?,
            tls_for(domain::roles::UpstreamSlot::ListedAsCanary)?,
        ]
    };
    let config = Arc::new(config);
    // The store is opened, and the deployment restored from it, before any
    // listener accepts a connection.
    let store = Arc::new(adapters::store::SqliteStore::open(&config.server.data_dir)?);
    let recorder = Arc::new(Recorder::new());
    let custom = Arc::new(adapters::metric_sources::CustomReadings::new(&config));
    // The routing starts at no canary share and the listed roles, and is set
    // by the controller from its state before the proxy accepts its first
    // connection.
    let share = SharedRouting::default();
    let shadow = config
        .validation
        .shadow
        .as_ref()
        .map(|shadow| Arc::new(adapters::shadow::ShadowTap::new(shadow, Arc::clone(&clock))));
    // An external router's requests are measured from its access log.
    let log_source = match (
        &config.router.kind,
        &config.router.haproxy,
        &config.router.nginx,
    ) {
        (config::RouterKind::GatewayApi, _, _) => {
            config.router.gateway_api.as_ref().and_then(|gateway| {
                let address = gateway.log_listen?;
                Some((
                    address.0,
                    adapters::router::access_log::LogNames {
                        backend: gateway.route.0.clone(),
                        production: gateway.services.production.0.clone(),
                        canary: gateway.services.canary.0.clone(),
                    },
                ))
            })
        }
        (config::RouterKind::Haproxy, Some(haproxy), _) => Some((
            haproxy.log_listen.0,
            adapters::router::access_log::LogNames {
                backend: haproxy.backend.0.clone(),
                production: haproxy.servers.production.0.clone(),
                canary: haproxy.servers.canary.0.clone(),
            },
        )),
        (config::RouterKind::Nginx, _, Some(nginx)) => Some((
            nginx.log_listen.0,
            adapters::router::access_log::LogNames {
                backend: "nginx".to_owned(),
                production: adapters::router::nginx::upstream_name(
                    domain::roles::UpstreamSlot::ListedAsProduction,
                )
                .to_owned(),
                canary: adapters::router::nginx::upstream_name(
                    domain::roles::UpstreamSlot::ListedAsCanary,
                )
                .to_owned(),
            },
        )),
        _ => None,
    };
    let access_log = match log_source {
        Some((address, names)) => {
            let socket = std::net::UdpSocket::bind(address)
                .and_then(|socket| {
                    socket.set_nonblocking(true)?;
                    tokio::net::UdpSocket::from_std(socket)
                })
                .map_err(|source| StartError::AccessLog {
                    address,
                    field: config.router.kind.config_name(),
                    source,
                })?;
            Some((socket, names))
        }
        None => None,
    };
    let router_config = config.router.clone();
    let servers = domain::roles::UpstreamSlot::BOTH.map(|slot| {
        let url = config.upstreams.slot(slot).url.uri();
        let host = url.host().unwrap_or("localhost");
        format!("{host}:{}", url.port_u16().unwrap_or(80))
    });
    let builtin_routing = share.clone();
    let log_tally = Arc::new(adapters::router::access_log::LogTally::default());
    let router_tally = Arc::clone(&log_tally);
    let make_router = move |events, initial| -> Arc<dyn ports::Router> {
        match (
            &router_config.kind,
            &router_config.haproxy,
            &router_config.nginx,
        ) {
            (config::RouterKind::Haproxy, Some(haproxy), _) => {
                adapters::router::haproxy::HaproxyRouter::spawn(
                    haproxy,
                    initial,
                    events,
                    Arc::clone(&router_tally),
                )
            }
            (config::RouterKind::Nginx, _, Some(nginx)) => {
                adapters::router::nginx::NginxRouter::spawn(nginx, servers, initial, events)
            }
            (config::RouterKind::GatewayApi, _, _) if router_config.gateway_api.is_some() => {
                let gateway = router_config.gateway_api.as_ref().expect("checked above");
                adapters::router::gateway_api::GatewayRouter::spawn(gateway, initial, events)
            }
            _ => Arc::new(adapters::router::BuiltinRouter::new(builtin_routing)),
        }
    };
    let (controller, controller_task) = controller::spawn(
        Arc::clone(&config),
        Arc::clone(&clock),
        Arc::clone(&store),
        share.clone(),
        make_router,
        Arc::clone(&recorder),
        shadow.clone(),
    )?;
    let access = Arc::new(access::AccessControl::new(
        &config,
        controller.clone(),
        Arc::clone(&store),
        clock.now(),
    )?);
    // Subscribed before anything can happen, so no decision goes unnoticed.
    let notifiers = adapters::notify::spawn(
        &config.notifications,
        &controller.audit,
        controller.state.clone(),
    );
    let push = Arc::new(adapters::push::Push::new(
        &config.push,
        Arc::clone(&store),
        Arc::clone(&clock),
        format!(
            "{}{}/",
            config.server.prefix(),
            canary_shared::api::BASE_PATH
        ),
    )?);
    match push.forget_departed(|user| access.may_sign_in(user)) {
        Ok(0) => {}
        Ok(forgotten) => tracing::info!(
            forgotten,
            "push devices of people the config no longer signs in were forgotten"
        ),
        Err(err) => tracing::warn!(%err, "cannot check whose push devices to forget"),
    }
    push.spawn(&controller.audit, controller.state.clone());
    let oidc = match config.auth.as_ref().and_then(|auth| auth.oidc.as_ref()) {
        Some(oidc) => Some(Arc::new(
            adapters::oidc::OidcProvider::new(oidc).map_err(StartError::SingleSignOn)?,
        )),
        None => None,
    };
    let handle = controller.clone();
    let (stop_store, stop_clock) = (Arc::clone(&store), Arc::clone(&clock));
    let server = tokio::spawn(async move {
        // The JoinSet aborts every background task when it is dropped at the end.
        let mut tasks = JoinSet::new();
        for slot in crate::domain::roles::UpstreamSlot::BOTH {
            let upstream = config.upstreams.slot(slot).clone();
            tasks.spawn(adapters::health_probe::run(
                slot,
                upstream,
                controller.events.clone(),
            ));
        }
        for side in canary_shared::Side::BOTH {
            tasks.spawn(adapters::metric_sources::run_scraper(
                side,
                share.clone(),
                Arc::clone(&config),
                Arc::clone(&custom),
                Arc::clone(&clock),
            ));
        }
        tasks.spawn(adapters::metric_sources::run_prometheus(
            Arc::clone(&config),
            Arc::clone(&custom),
            Arc::clone(&clock),
        ));
        tasks.spawn(controller::run_ticker(
            Arc::clone(&recorder),
            shadow.clone(),
            share.clone(),
            Arc::clone(&clock),
            controller.events.clone(),
            Arc::clone(&custom),
        ));
        let (stopping_tx, stopping_rx) = watch::channel(false);
        // The built-in proxy serves only as the router; an external router's
        // requests are measured from its access log instead.
        if let Some((socket, names)) = access_log {
            tasks.spawn(adapters::router::access_log::run(
                socket,
                names,
                share.clone(),
                Arc::clone(&recorder),
                Arc::clone(&controller.own_metrics),
                log_tally,
            ));
        }
        // SIGHUP reloads the listeners' certificates: new handshakes get
        // the files' current ones, open connections keep theirs. Listened
        // for even without one, so `systemctl reload` never ends the server
        // (SIGHUP's default action).
        let certificates: Vec<Arc<adapters::tls::ReloadableCert>> = [&tls, &proxy_tls]
            .into_iter()
            .flatten()
            .map(|(_, certificate)| Arc::clone(certificate))
            .collect();
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(mut hangups) => {
                tasks.spawn(async move {
                    while hangups.recv().await.is_some() {
                        if certificates.is_empty() {
                            tracing::info!(
                                "SIGHUP: nothing to reload (no server.tls or proxy.tls)"
                            );
                        }
                        for certificate in &certificates {
                            let field = certificate.field;
                            match certificate.reload() {
                                Ok(()) => tracing::info!("SIGHUP: {field} certificate reloaded"),
                                Err(err) => tracing::warn!(
                                    %err,
                                    "SIGHUP: cannot reload {field}; the certificate in use stays"
                                ),
                            }
                        }
                    }
                });
            }
            Err(err) => {
                tracing::warn!(%err, "cannot listen for SIGHUP: certificates will not reload")
            }
        }
        let proxy_task = match listeners.proxy {
            Some(listener) if config.router.kind == config::RouterKind::Builtin => {
                let proxy = Proxy::new(
                    &config,
                    share,
                    Arc::clone(&recorder),
                    proxy_tls.as_ref().map(|(tls, _)| Arc::clone(tls)),
                    upstream_tls.clone(),
                    Arc::clone(&controller.own_metrics),
                    shadow.clone(),
                );
                let proxy_threads = std::thread::available_parallelism().map_or(2, usize::from);
                Some(tokio::spawn(adapters::proxy::serve_on_threads(
                    listener,
                    proxy,
                    proxy_threads,
                    stopping_rx.clone(),
                )))
            }
            // An external router carries the traffic: the proxy serves nothing.
            _ => None,
        };
        let app_state = AppState {
            stream: api::stream::StreamFeed::spawn(
                controller.state.clone(),
                controller.metrics.clone(),
                &controller.audit,
            ),
            state: controller.state.clone(),
            metrics: controller.metrics.clone(),
            controller: controller.clone(),
            store: Arc::clone(&store),
            config: Arc::clone(&config),
            access,
            assets_dir: config.server.assets_dir.clone(),
            demo,
            custom,
            clock,
            recorder: Arc::clone(&recorder),
            shadow,
            push: Arc::clone(&push),
            oidc,
            shutdown: stopping_rx,
        };
        let shutdown = async move {
            shutdown.await;
            tracing::info!("shutting down");
            // Open WebSocket streams close with "going away"; the proxy
            // stops accepting and lets requests in flight finish.
            let _ = stopping_tx.send(true);
        };
        let router = router(app_state);
        let result = match tls {
            Some((tls, _)) => adapters::tls::serve(listeners.admin, tls, router, shutdown).await,
            None => {
                axum::serve(
                    listeners.admin,
                    router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                )
                .with_graceful_shutdown(shutdown)
                .await
            }
        };
        if let Some(proxy_task) = proxy_task {
            let _ = proxy_task.await;
        }
        tasks.abort_all();
        drop(controller);
        controller_task.abort();
        let _ = controller_task.await;
        // The next start says the stop was clean (or, without this, a crash).
        if let Err(err) = stop_store.mark_clean_stop(stop_clock.now()) {
            tracing::warn!(%err, "cannot note the clean stop");
        }
        // A decision taken just before the stop (a rollback, say) is still
        // announced: the notifications get a few seconds to go out.
        let (_, ()) = tokio::join!(notifiers.finish(NOTIFY_GRACE), push.finish(NOTIFY_GRACE));
        result
    });
    Ok((handle, server))
}
