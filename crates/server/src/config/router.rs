//! `router:` — what splits the traffic: the built-in proxy (the default),
//! HAProxy instances a team already runs (steered through their Runtime API),
//! an nginx (through a config file canary writes), both measured through
//! their access log, or a Kubernetes Gateway API `HTTPRoute`.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `router:`
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RouterConfig {
    /// `builtin` or `haproxy`.
    #[serde(default)]
    pub kind: RouterKind,
    /// The HAProxy instances, with `kind: haproxy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub haproxy: Option<HaproxyConfig>,
    /// The nginx whose config canary writes a part of, with `kind: nginx`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nginx: Option<NginxConfig>,
    /// The `HTTPRoute` whose weights canary sets, with `kind: gateway_api`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_api: Option<GatewayApiConfig>,
    /// What a split changed behind canary's back leads to.
    #[serde(default)]
    pub on_drift: OnDrift,
}

/// `router.on_drift:`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OnDrift {
    /// Audit it and set canary's split again.
    #[default]
    Correct,
    /// The same, and pause the rollout for a person to look.
    Pause,
}

/// `router.kind:`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RouterKind {
    /// canary's own proxy on `server.proxy_listen`.
    #[default]
    Builtin,
    /// HAProxy, through its Runtime API.
    Haproxy,
    /// nginx (open source: no runtime API), through a config file canary
    /// writes, `nginx -t` and a reload, confirmed through the data plane.
    Nginx,
    /// A Kubernetes Gateway API `HTTPRoute`'s `backendRefs` weights, through
    /// the API server, confirmed by the Gateways' `Accepted` condition.
    GatewayApi,
}

impl RouterKind {
    /// As the config spells it.
    pub fn config_name(self) -> &'static str {
        match self {
            RouterKind::Builtin => "builtin",
            RouterKind::Haproxy => "haproxy",
            RouterKind::Nginx => "nginx",
            RouterKind::GatewayApi => "gateway_api",
        }
    }
}

/// `router.gateway_api:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayApiConfig {
    /// The `HTTPRoute`'s name.
    pub route: KubeName,
    /// Its namespace (and the Services'); by default the kubeconfig
    /// context's namespace, or the pod's own when canary runs in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<KubeName>,
    /// The Services that are the upstreams listed as production and canary.
    pub services: GatewayServices,
    /// The kubeconfig file to use; by default `KUBECONFIG`, `~/.kube/config`,
    /// or the service account's when canary runs in a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use; by default its current one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// How long a Gateway may take to accept a change before it counts as
    /// failed (and alerts); until then the step waits.
    #[serde(default = "default_accept_timeout")]
    pub accept_timeout: crate::config::ConfigDuration,
    /// Where canary receives the Gateway's access log, in canary's format
    /// (syslog over UDP, loopback), when its data plane or a log shipper
    /// beside canary can send it. Without it, no request is measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_listen: Option<LoopbackAddr>,
}

fn default_accept_timeout() -> crate::config::ConfigDuration {
    crate::config::ConfigDuration(std::time::Duration::from_secs(60))
}

/// `router.gateway_api.services:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GatewayServices {
    /// The Service that is the upstream listed as `upstreams.production`.
    pub production: KubeName,
    /// The Service that is the upstream listed as `upstreams.canary`.
    pub canary: KubeName,
}

/// A Kubernetes object name: lowercase letters, digits, `-` and `.`,
/// starting and ending with a letter or digit, at most 253 characters.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct KubeName(pub String);

impl TryFrom<String> for KubeName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let allowed =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.');
        let edge =
            |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if name.len() > 253
            || !name.chars().all(allowed)
            || !edge(name.chars().next())
            || !edge(name.chars().last())
        {
            return Err(format!(
                "{name:?} is not a Kubernetes name: lowercase letters, digits, '-' and '.', \
                 starting and ending with a letter or digit"
            ));
        }
        Ok(KubeName(name))
    }
}

/// `router.nginx:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NginxConfig {
    /// The file canary writes (and owns), which nginx includes inside `http { }`.
    pub include_file: PathBuf,
    /// Checks nginx's whole config with the new file before a reload.
    #[serde(default = "default_nginx_test")]
    pub test_command: crate::config::HookCommand,
    /// Makes nginx load it.
    #[serde(default = "default_nginx_reload")]
    pub reload_command: crate::config::HookCommand,
    /// Where the written config answers which split it carries (loopback):
    /// canary reads it back there on a new connection, which only the
    /// workers of the loaded config answer.
    pub confirm_listen: LoopbackAddr,
    /// Where canary receives nginx's access log (syslog over UDP, loopback).
    pub log_listen: LoopbackAddr,
    /// What `split_clients` hashes to choose a side: `$request_id` (each
    /// request drawn afresh), or a variable that stays the same for a
    /// client (`$cookie_session`, `$http_x_user_id`, a `map` of your own)
    /// to keep each client on one side.
    #[serde(default)]
    pub split_by: NginxVariable,
}

/// An nginx variable, or several run together (`$cookie_id$remote_addr`):
/// `$`, letters, digits and `_` only, so it cannot change what the written
/// file means.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct NginxVariable(pub String);

impl Default for NginxVariable {
    fn default() -> Self {
        NginxVariable("$request_id".to_owned())
    }
}

impl TryFrom<String> for NginxVariable {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '$';
        if !text.starts_with('$') || text.len() < 2 || !text.chars().all(allowed) {
            return Err(format!(
                "{text:?} is not an nginx variable such as $request_id or $cookie_session"
            ));
        }
        Ok(NginxVariable(text))
    }
}

fn default_nginx_test() -> crate::config::HookCommand {
    crate::config::HookCommand(vec!["nginx".to_owned(), "-t".to_owned()])
}

fn default_nginx_reload() -> crate::config::HookCommand {
    crate::config::HookCommand(vec![
        "nginx".to_owned(),
        "-s".to_owned(),
        "reload".to_owned(),
    ])
}

/// `router.haproxy:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyConfig {
    /// Each instance's admin-level stats socket: a path (`/run/haproxy/admin.sock`)
    /// or a TCP address (`127.0.0.1:9999`).
    pub instances: Vec<RuntimeSocket>,
    /// The backend whose two servers carry the split.
    pub backend: ProxyName,
    /// The servers of that backend for the upstreams listed as production and canary.
    pub servers: HaproxyServers,
    /// Where canary listens (UDP, loopback) for the access log HAProxy
    /// sends as syslog, one line per request, in canary's `log-format`.
    pub log_listen: LoopbackAddr,
}

/// `router.haproxy.servers:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HaproxyServers {
    /// The server that is the upstream listed as `upstreams.production`.
    pub production: ProxyName,
    /// The server that is the upstream listed as `upstreams.canary`.
    pub canary: ProxyName,
}

/// A Runtime API socket: a unix socket path or a TCP address.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum RuntimeSocket {
    /// A unix socket.
    Unix(PathBuf),
    /// A TCP address.
    Tcp(SocketAddr),
}

impl TryFrom<String> for RuntimeSocket {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.starts_with('/') || text.starts_with('.') {
            return Ok(RuntimeSocket::Unix(PathBuf::from(text)));
        }
        text.parse::<SocketAddr>().map(RuntimeSocket::Tcp).map_err(|_| {
            format!("{text:?} is neither a socket path (starting with /) nor an address like 127.0.0.1:9999")
        })
    }
}

impl fmt::Display for RuntimeSocket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeSocket::Unix(path) => write!(f, "{}", path.display()),
            RuntimeSocket::Tcp(address) => write!(f, "{address}"),
        }
    }
}

serialize_as!(RuntimeSocket, |socket| socket.to_string());

/// A backend or server name as HAProxy takes it on its command line: no
/// blanks, `/` or `;`, which would change what a command means.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct ProxyName(pub String);

impl TryFrom<String> for ProxyName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
        if name.is_empty() || !name.chars().all(allowed) {
            return Err(format!(
                "{name:?} is not a backend or server name: letters, digits, '-', '_', '.' and ':' only"
            ));
        }
        Ok(ProxyName(name))
    }
}

/// An address on loopback: syslog over UDP carries no authentication, so
/// only this machine may feed the measurements.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct LoopbackAddr(pub SocketAddr);

impl TryFrom<String> for LoopbackAddr {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let address: SocketAddr = text
            .parse()
            .map_err(|_| format!("{text:?} is not an address like 127.0.0.1:5140"))?;
        if !address.ip().is_loopback() {
            return Err(format!(
                "{address} is not on loopback: syslog over UDP is unauthenticated, so anyone who \
                 reaches it could forge the measurements; listen on 127.0.0.1"
            ));
        }
        Ok(LoopbackAddr(address))
    }
}

serialize_as!(LoopbackAddr, |address| address.0.to_string());
