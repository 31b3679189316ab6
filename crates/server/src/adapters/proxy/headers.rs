//! Rewriting headers on their way through the proxy, as pure functions:
//! hop-by-hop fields out (never the framing or routing ones), the
//! `X-Forwarded-*` fields in, and the request target on the upstream's base
//! path.

use std::borrow::Cow;
use std::net::SocketAddr;

use hyper::Uri;
use hyper::header::{self, HeaderMap, HeaderValue};

use crate::config::{HostHeader, UpstreamUrl};

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
pub(super) const HOP_BY_HOP: [header::HeaderName; 8] = [
    header::CONNECTION,
    header::HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// Fields a `Connection` header may not name for removal: they frame the
/// message or route it, and the proxy writes them itself. Letting a client
/// strip `Content-Length` this way would forward a body without its length,
/// which the upstream then reads as a request of the client's writing.
pub(super) const FRAMING_AND_ROUTING: [header::HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Most messages carry none: one pass over the names is cheaper than nine lookups.
    if !headers
        .keys()
        .any(|name| HOP_BY_HOP.contains(name) || name == header::UPGRADE)
    {
        return;
    }
    // Headers named in `Connection` are hop-by-hop too.
    let named: Vec<header::HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| header::HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .filter(|name| !FRAMING_AND_ROUTING.contains(name))
        .collect();
    for name in named.iter().chain(HOP_BY_HOP.iter()) {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

pub(super) fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .any(|value| {
                value
                    .split(',')
                    .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
            })
}

pub(super) const X_FORWARDED_FOR: header::HeaderName =
    header::HeaderName::from_static("x-forwarded-for");
pub(super) const X_FORWARDED_PROTO: header::HeaderName =
    header::HeaderName::from_static("x-forwarded-proto");
pub(super) const X_FORWARDED_HOST: header::HeaderName =
    header::HeaderName::from_static("x-forwarded-host");

/// What the proxy knows of a client connection, computed once per connection.
#[derive(Debug)]
pub(super) struct ClientInfo {
    pub(super) ip: std::net::IpAddr,
    pub(super) ip_text: String,
    pub(super) ip_header: HeaderValue,
    /// Whether it reached the proxy over TLS (`X-Forwarded-Proto: https`).
    pub(super) over_tls: bool,
}

impl ClientInfo {
    pub(super) fn new(addr: SocketAddr) -> ClientInfo {
        let ip_text = addr.ip().to_string();
        let ip_header =
            HeaderValue::from_str(&ip_text).expect("an IP address is a valid header value");
        ClientInfo {
            ip: addr.ip(),
            ip_text,
            ip_header,
            over_tls: false,
        }
    }

    /// The same client, over TLS.
    pub(super) fn over_tls(self) -> ClientInfo {
        ClientInfo {
            over_tls: true,
            ..self
        }
    }
}

/// Sets `X-Forwarded-For` (appended), `-Proto` and `-Host`.
pub(super) fn add_forwarded(
    headers: &mut HeaderMap,
    client: &ClientInfo,
    original_host: Option<&HeaderValue>,
) {
    // Every field line counts: a front load balancer may have added its hop
    // as a line of its own (RFC 9110 §5.3 lets lines be combined with ", ").
    let mut previous = headers.get_all(X_FORWARDED_FOR).iter().peekable();
    let forwarded_for = if previous.peek().is_none() {
        Some(client.ip_header.clone())
    } else {
        let mut joined = Vec::new();
        for value in previous {
            joined.extend_from_slice(value.as_bytes());
            joined.extend_from_slice(b", ");
        }
        joined.extend_from_slice(client.ip_text.as_bytes());
        HeaderValue::from_bytes(&joined).ok()
    };
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, value);
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if client.over_tls { "https" } else { "http" }),
    );
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

/// The request target sent upstream (origin form): the upstream's base path
/// joined with the request's path and query. The asterisk form
/// (`OPTIONS *`) is about the server as a whole and goes as it came.
pub(super) fn upstream_target<'a>(base: &UpstreamUrl, request_uri: &'a Uri) -> Cow<'a, str> {
    let base_path = base.uri().path().trim_end_matches('/');
    let path_and_query = request_uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    if base_path.is_empty() || !path_and_query.starts_with('/') {
        // The common case: the parsed path and query as they are.
        return Cow::Borrowed(path_and_query);
    }
    Cow::Owned(format!("{base_path}{path_and_query}"))
}

/// What [`rewrite_request`] needs to know besides the headers.
#[derive(Debug)]
pub(super) struct RequestRewrite<'a> {
    /// The client at the other end.
    pub(super) client: &'a ClientInfo,
    /// Which `Host` the upstream sees.
    pub(super) host_header: HostHeader,
    /// The upstream's `host[:port]`.
    pub(super) upstream_authority: &'a HeaderValue,
    /// A header for the proxy alone (the override token), removed.
    pub(super) hidden: Option<&'a str>,
    /// The request upgrades the connection (`Upgrade` and `Connection: upgrade`).
    pub(super) upgrade: bool,
}

/// A client's request headers as the upstream gets them (framing aside, see
/// [`set_framing`]): hop-by-hop fields out, the upgrade kept when asked
/// for, the proxy's own header out, `X-Forwarded-*` in, and the `Host`.
pub(super) fn rewrite_request(headers: &mut HeaderMap, rewrite: &RequestRewrite<'_>) {
    let original_host = headers.get(header::HOST).cloned();
    let upgrade_value = rewrite
        .upgrade
        .then(|| headers.get(header::UPGRADE).cloned())
        .flatten();
    strip_hop_by_hop(headers);
    if let Some(hidden) = rewrite.hidden {
        headers.remove(hidden);
    }
    if let Some(upgrade_value) = upgrade_value {
        headers.insert(header::UPGRADE, upgrade_value);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    add_forwarded(headers, rewrite.client, original_host.as_ref());
    match rewrite.host_header {
        HostHeader::Preserve if headers.contains_key(header::HOST) => {}
        // HTTP/1.0 clients may send no `Host`; the upstream still needs one.
        HostHeader::Preserve | HostHeader::Upstream => {
            headers.insert(header::HOST, rewrite.upstream_authority.clone());
        }
    }
}

/// How a request's body goes upstream, which decides its framing fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum BodyFraming {
    /// No body, and no length said.
    None,
    /// No body, and `Content-Length: 0` said (some servers want a length on
    /// every POST, if only a zero).
    EmptyWithLength,
    /// Exactly this many bytes.
    Length(u64),
    /// Chunked anew by this hop: the client sent no length.
    Chunked,
}

impl BodyFraming {
    /// The framing for a request whose client declared `declared_length`
    /// (hyper has refused conflicting or malformed ones) and that has a
    /// body (`has_body`) or not.
    pub(super) fn of(declared_length: Option<u64>, has_body: bool) -> BodyFraming {
        match (declared_length, has_body) {
            (Some(0), _) => BodyFraming::EmptyWithLength,
            (_, false) => BodyFraming::None,
            (Some(length), true) => BodyFraming::Length(length),
            (None, true) => BodyFraming::Chunked,
        }
    }
}

/// Writes the framing fields from the body actually forwarded, whatever
/// the client sent.
pub(super) fn set_framing(headers: &mut HeaderMap, framing: BodyFraming) {
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::TRANSFER_ENCODING);
    match framing {
        BodyFraming::None => {}
        BodyFraming::EmptyWithLength => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0_u64));
        }
        BodyFraming::Length(length) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        BodyFraming::Chunked => {
            headers.insert(
                header::TRANSFER_ENCODING,
                HeaderValue::from_static("chunked"),
            );
        }
    }
}

#[cfg(test)]
mod tests;
