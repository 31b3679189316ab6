//! The rules that tie one section of the config to another (an admin
//! listener on the network needs logins, a router kind needs its section,
//! an upstream's protocol must fit its URL, …), checked after the sections
//! parsed, so that `canary check` refuses everything `canary serve` would.

use crate::config::locate::{PathSegment, locate};
use crate::config::{CompareBody, Config, ConfigError, OnPromotion, RouterKind, UpstreamProtocol};

impl Config {
    /// The rules that tie one section to another, checked here so that
    /// `canary check` refuses everything `canary serve` would.
    pub(super) fn check_across_sections(&self, text: &str) -> Result<(), ConfigError> {
        let admin = self.server.admin_listen;
        if self.auth.is_none() && !admin.ip().is_loopback() {
            return Err(invalid_at(
                text,
                &["server", "admin_listen"],
                format!(
                    "{admin} is reachable from other machines, but there is no auth section: anyone who \
                     can reach it could start, stop or promote rollouts. Add an auth section with users \
                     or tokens (`canary hash-password`, `canary new-token`), or listen on 127.0.0.1"
                ),
            ));
        }
        if let Some(oidc) = self.auth.as_ref().and_then(|auth| auth.oidc.as_ref())
            && !oidc
                .redirect_url
                .0
                .split(['?', '#'])
                .next()
                .is_some_and(|path| path.ends_with(canary_shared::auth::OIDC_CALLBACK_PATH))
        {
            return Err(invalid_at(
                text,
                &["auth", "oidc", "redirect_url"],
                format!(
                    "{:?} must be this console's callback as browsers reach it, ending in {} \
                     (such as \"https://canary.example.com{}\")",
                    oidc.redirect_url.0,
                    canary_shared::auth::OIDC_CALLBACK_PATH,
                    canary_shared::auth::OIDC_CALLBACK_PATH
                ),
            ));
        }
        match (&self.router.kind, &self.router.haproxy) {
            (RouterKind::Haproxy, None) => {
                return Err(invalid_at(
                    text,
                    &["router", "kind"],
                    "haproxy needs router.haproxy: the instances' sockets, the backend, its two \
                     servers and the log listener"
                        .to_owned(),
                ));
            }
            (RouterKind::Haproxy, Some(haproxy)) if haproxy.instances.is_empty() => {
                return Err(invalid_at(
                    text,
                    &["router", "haproxy", "instances"],
                    "at least one HAProxy instance's stats socket is needed".to_owned(),
                ));
            }
            (RouterKind::Nginx, _) if self.router.nginx.is_none() => {
                return Err(invalid_at(
                    text,
                    &["router", "kind"],
                    "nginx needs router.nginx: the include file canary writes, where its split \
                     answers, and the log listener"
                        .to_owned(),
                ));
            }
            (RouterKind::GatewayApi, _) if self.router.gateway_api.is_none() => {
                return Err(invalid_at(
                    text,
                    &["router", "kind"],
                    "gateway_api needs router.gateway_api: the HTTPRoute and the two Services \
                     whose weights canary sets"
                        .to_owned(),
                ));
            }
            (RouterKind::GatewayApi, _)
                if self.router.gateway_api.as_ref().is_some_and(|gateway| {
                    gateway.services.production == gateway.services.canary
                }) =>
            {
                return Err(invalid_at(
                    text,
                    &["router", "gateway_api", "services", "canary"],
                    "production and canary must be two different Services".to_owned(),
                ));
            }
            (RouterKind::Haproxy, Some(haproxy))
                if haproxy.servers.production == haproxy.servers.canary =>
            {
                return Err(invalid_at(
                    text,
                    &["router", "haproxy", "servers", "canary"],
                    "production and canary must be two different servers".to_owned(),
                ));
            }
            _ => {}
        }
        for slot in crate::domain::roles::UpstreamSlot::BOTH {
            let key = slot.config_key();
            let upstream = self.upstreams.slot(slot);
            let https = upstream.url.is_https();
            let problem = match upstream.protocol {
                UpstreamProtocol::H2 if !https => Some((
                    "protocol",
                    "h2 is HTTP/2 over TLS: give an https:// URL, or use h2c for HTTP/2 in clear text",
                )),
                UpstreamProtocol::H2c if https => Some((
                    "protocol",
                    "h2c is HTTP/2 in clear text: give an http:// URL, or use h2 for HTTP/2 over TLS",
                )),
                _ if upstream.ca_file.is_some() && !https => {
                    Some(("ca_file", "a CA file is for an https:// URL"))
                }
                _ => None,
            };
            if let Some((field, message)) = problem {
                return Err(invalid_at(
                    text,
                    &["upstreams", key, field],
                    message.to_owned(),
                ));
            }
        }
        let http2 = &self.proxy.http2;
        for (key, size, least) in [
            ("stream_window", http2.stream_window.0, 65_535),
            ("connection_window", http2.connection_window.0, 65_535),
            ("max_header_list_size", http2.max_header_list_size.0, 1_024),
        ] {
            // HTTP/2's windows and sizes are 31-bit numbers (RFC 9113 §6.9.2).
            if size < least || size > 2_147_483_647 {
                return Err(invalid_at(
                    text,
                    &["proxy", "http2", key],
                    format!(
                        "must be from {least} to 2147483647 bytes (HTTP/2 counts them in 31 bits), not {size}"
                    ),
                ));
            }
        }
        if http2.max_concurrent_streams == 0 {
            return Err(invalid_at(
                text,
                &["proxy", "http2", "max_concurrent_streams"],
                "0 streams would refuse every HTTP/2 request".to_owned(),
            ));
        }
        if let Some(shadow) = &self.validation.shadow {
            if self.router.kind != RouterKind::Builtin {
                return Err(invalid_at(
                    text,
                    &["validation", "shadow"],
                    format!(
                        "shadow traffic is copied by the built-in proxy, and router.kind is {}: \
                         leave validation.shadow out, or use the built-in router",
                        self.router.kind.config_name()
                    ),
                ));
            }
            if !shadow.ignore_fields.is_empty() && shadow.compare_body != CompareBody::Json {
                return Err(invalid_at(
                    text,
                    &["validation", "shadow", "ignore_fields"],
                    "ignore_fields are JSON pointers: they apply with compare_body: json"
                        .to_owned(),
                ));
            }
        }
        if self.upstreams.on_promotion == Some(OnPromotion::PromoteHook)
            && self.hooks.promote.is_none()
        {
            return Err(invalid_at(
                text,
                &["upstreams", "on_promotion"],
                "promote_hook needs hooks.promote, the script that redeploys production with the \
                 promoted version; without one use swap_roles"
                    .to_owned(),
            ));
        }
        Ok(())
    }
}

/// A cross-section error at the value under `keys`, located in `text`.
pub(super) fn invalid_at(text: &str, keys: &[&str], message: String) -> ConfigError {
    let path: Vec<PathSegment> = keys
        .iter()
        .map(|key| match key.parse::<usize>() {
            // A list's item, such as `validation.test_runs.0`.
            Ok(index) => PathSegment::Index(index),
            Err(_) => PathSegment::Key((*key).to_owned()),
        })
        .collect();
    let (line, column) = locate(text, &path, false)
        .map_or((None, None), |(line, column)| (Some(line), Some(column)));
    ConfigError::Invalid {
        file: None,
        line,
        column,
        field: Some(keys.join(".")),
        message,
    }
}
