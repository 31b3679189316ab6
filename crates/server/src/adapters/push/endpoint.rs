//! Which push endpoints the server will call: the browsers' own push
//! services over HTTPS on port 443, and the origins `push.services` names.
//! A subscription's endpoint comes from a browser, that is from anyone who
//! can sign in; without this list it could point the server at any address
//! (an internal admin API, a cloud metadata service).

use crate::config::AllowedOrigin;

/// The browsers' push services, by host and its subdomains: Google's (Chrome,
/// Edge on Android, Opera, Samsung Internet), Mozilla's, Apple's (Safari,
/// iOS and iPadOS Home Screen apps) and Microsoft's (Edge on Windows).
const KNOWN_SERVICES: &[&str] = &[
    "fcm.googleapis.com",
    "push.services.mozilla.com",
    "push.apple.com",
    "notify.windows.com",
];

/// The longest endpoint taken (browsers' are under 500 bytes).
const MAX_ENDPOINT: usize = 2048;

/// The push services the server calls.
#[derive(Clone, Debug)]
pub struct PushServices {
    /// Configured origins, `scheme://host[:port]`.
    extra: Vec<String>,
}

impl PushServices {
    /// The browsers' services plus `extra`.
    pub fn new(extra: &[AllowedOrigin]) -> PushServices {
        PushServices {
            extra: extra.iter().map(|origin| origin.0.clone()).collect(),
        }
    }

    /// Whether the server may send to `endpoint`, and if not why.
    pub fn check(&self, endpoint: &str) -> Result<(), String> {
        if endpoint.len() > MAX_ENDPOINT {
            return Err(format!("must be at most {MAX_ENDPOINT} bytes"));
        }
        let uri: hyper::Uri = endpoint
            .parse()
            .map_err(|_| "must be the URL a browser's push subscription gives".to_owned())?;
        let Some(authority) = uri.authority() else {
            return Err("must be an absolute https:// URL".to_owned());
        };
        if authority.as_str().contains('@') {
            return Err("must not carry a user name or password".to_owned());
        }
        if self.extra.iter().any(|allowed| *allowed == origin(&uri)) {
            return Ok(());
        }
        let host = authority.host().to_ascii_lowercase();
        let known = KNOWN_SERVICES
            .iter()
            .any(|service| host == *service || host.ends_with(&format!(".{service}")));
        if !known {
            return Err(format!(
                "{host} is not a known push service (Google's, Mozilla's, Apple's or \
                 Microsoft's) or one in push.services"
            ));
        }
        if uri.scheme_str() != Some("https") || uri.port_u16().is_some_and(|port| port != 443) {
            return Err("a browser's push service is reached over https:// on port 443".to_owned());
        }
        Ok(())
    }
}

/// `scheme://host[:port]` of a URL: a VAPID token's audience, and how
/// `push.services` names a service.
pub(super) fn origin(uri: &hyper::Uri) -> String {
    let scheme = uri.scheme_str().unwrap_or("https");
    let authority = uri.authority().map_or("", |authority| authority.as_str());
    format!("{scheme}://{}", authority.to_ascii_lowercase())
}

/// The push service of an endpoint, as shown and as queues are kept: its
/// host (and port, when not the default).
pub fn service_of(endpoint: &str) -> &str {
    let rest = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}
