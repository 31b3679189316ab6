//! The admin and proxy listening sockets: bound from the config, or
//! inherited from whoever keeps them open across restarts (systemd's socket
//! activation, or any supervisor speaking its protocol), so an upgrade or a
//! restart refuses no connection: while no server runs, connections wait in
//! the socket's queue, and the next server accepts them.
//!
//! The protocol: `LISTEN_FDS` sockets starting at fd 3 (or at
//! `LISTEN_FDS_FIRST_FD`), for this process when `LISTEN_PID` is unset or
//! names it; `LISTEN_FDNAMES` names them `proxy` and `admin` (systemd's
//! `FileDescriptorName=`), and without names the first is the proxy's and
//! the second the admin listener's. The `listenfd` crate reads the variables
//! and takes the sockets.

use anyhow::Context;
use tokio::net::TcpListener;

use crate::Listeners;
use crate::config::Config;

/// Sockets handed over at start, if any.
#[derive(Debug, Default)]
pub struct Inherited {
    proxy: Option<std::net::TcpListener>,
    admin: Option<std::net::TcpListener>,
}

impl Inherited {
    /// Takes the sockets this process was given. Call it first thing in
    /// `main`, before any thread starts: it clears `LISTEN_FDS` and
    /// `LISTEN_PID`, so the hooks the server runs do not see them.
    pub fn take() -> anyhow::Result<Inherited> {
        let names: Vec<String> = std::env::var("LISTEN_FDNAMES")
            .map(|names| names.split(':').map(str::to_owned).collect())
            .unwrap_or_default();
        let mut fds = listenfd::ListenFd::from_env();
        let mut inherited = Inherited::default();
        for index in 0..fds.len() {
            let Some(listener) = fds
                .take_tcp_listener(index)
                .with_context(|| format!("inherited socket {index} is not a TCP listener"))?
            else {
                continue;
            };
            let named = names.get(index).map(String::as_str);
            let slot = match (named, index) {
                (Some("proxy"), _) => &mut inherited.proxy,
                (Some("admin"), _) => &mut inherited.admin,
                (_, 0) => &mut inherited.proxy,
                (_, 1) => &mut inherited.admin,
                _ => anyhow::bail!(
                    "inherited socket {index} has no use: name them proxy and admin (LISTEN_FDNAMES)"
                ),
            };
            anyhow::ensure!(
                slot.is_none(),
                "two inherited sockets are named {}",
                named.unwrap_or("alike")
            );
            *slot = Some(listener);
        }
        Ok(inherited)
    }

    /// Whether any socket was handed over.
    pub fn any(&self) -> bool {
        self.proxy.is_some() || self.admin.is_some()
    }
}

/// The listeners for `config`: the inherited ones where there are some
/// (their addresses win over the config's), else bound now.
pub async fn bind(config: &Config, inherited: Inherited) -> anyhow::Result<Listeners> {
    let admin = match inherited.admin {
        Some(listener) => adopt(listener, "admin")?,
        None => TcpListener::bind(config.server.admin_listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (server.admin_listen or --admin-listen)",
                    config.server.admin_listen
                )
            })?,
    };
    let proxy = match inherited.proxy {
        Some(listener) => Some(adopt(listener, "proxy")?),
        // An external router carries the traffic: the proxy's address is
        // left to whoever wants it.
        None if config.router.kind != crate::config::RouterKind::Builtin => None,
        None => Some(
            TcpListener::bind(config.server.proxy_listen)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on {} (server.proxy_listen or --proxy-listen)",
                        config.server.proxy_listen
                    )
                })?,
        ),
    };
    Ok(Listeners { admin, proxy })
}

fn adopt(listener: std::net::TcpListener, name: &str) -> anyhow::Result<TcpListener> {
    listener
        .set_nonblocking(true)
        .with_context(|| format!("cannot use the inherited {name} socket"))?;
    let listener = TcpListener::from_std(listener)
        .with_context(|| format!("cannot use the inherited {name} socket"))?;
    if let Ok(address) = listener.local_addr() {
        tracing::info!(%address, "{name}: listening on an inherited socket");
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn with_an_external_router_the_proxy_address_is_left_alone() {
        let seed = include_str!("../../../../canary-config.yaml");
        let seed = &seed[seed.find("\ncanary:\n").unwrap() + 1..];
        // The proxy's address is taken by something else.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let text = format!(
            "server:\n  admin_listen: \"127.0.0.1:0\"\n  proxy_listen: \"{}\"\nrouter:\n  kind: haproxy\n  haproxy:\n    instances: [\"/run/haproxy/admin.sock\"]\n    backend: app\n    servers: {{ production: prod, canary: canary }}\n    log_listen: \"127.0.0.1:5140\"\n{seed}",
            taken.local_addr().unwrap()
        );
        let config = Config::from_yaml(&text).unwrap();
        let listeners = bind(&config, Inherited::default()).await.unwrap();
        assert!(listeners.proxy.is_none());
        let mut builtin = config;
        builtin.router.kind = crate::config::RouterKind::Builtin;
        let err = bind(&builtin, Inherited::default()).await.err().unwrap();
        assert!(
            format!("{err:#}").contains("server.proxy_listen"),
            "{err:#}"
        );
    }
}
