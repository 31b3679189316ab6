//! Forwarding to an upstream that is not plain HTTP/1.1 (h2c, h2, https)
//! through hyper's client: the request as rewritten by `handle`, the
//! response streamed back with its trailers (gRPC's `grpc-status` rides in
//! them), and recorded for its side when its body ends; a WebSocket to an
//! https (HTTP/1.1) upstream is spliced once both sides upgraded.

use std::sync::Arc;

use canary_shared::Side;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use tokio::time::Instant;

use crate::adapters::proxy::headers::{strip_hop_by_hop, upstream_target};
use crate::adapters::proxy::recorded::{InFlight, RecordedBody, Recording};
use crate::adapters::proxy::{BoxError, Proxy, ProxyBody, ViaClient, classify};
use crate::config::{HostHeader, UpstreamProtocol};

/// What `handle` has decided for a request going through hyper's client.
pub(super) struct Forward {
    pub(super) side: Side,
    /// The request head, rewritten for the upstream.
    pub(super) parts: hyper::http::request::Parts,
    pub(super) body: ProxyBody,
    /// The client asked for trailers (`TE: trailers`, as gRPC clients do).
    pub(super) wants_trailers: bool,
    /// A new stickiness cookie, and the capture of a copied request's answer.
    pub(super) reply: super::Reply,
    pub(super) started: Instant,
    pub(super) in_flight: InFlight,
    /// The client's side of a connection upgrade (WebSocket), when asked.
    pub(super) client_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// Sends the request to the upstream of `via` and streams its answer back.
pub(super) async fn forward(
    proxy: &Arc<Proxy>,
    via: &ViaClient,
    request: Forward,
) -> Response<ProxyBody> {
    let Forward {
        side,
        mut parts,
        body,
        wants_trailers,
        reply,
        started,
        in_flight,
        client_upgrade,
    } = request;
    if prepare(proxy, via, &mut parts, wants_trailers).is_err() {
        proxy.recorder.record(
            side,
            crate::adapters::recorder::Outcome::ClientError,
            started.elapsed(),
        );
        return super::plain(
            hyper::StatusCode::BAD_REQUEST,
            "request target not forwardable\n",
        );
    }
    let request = Request::from_parts(parts, body);
    let timeout = proxy.config.response_timeout(side);
    let answered = tokio::time::timeout(timeout, via.client.request(request)).await;
    let response = match answered {
        Ok(Ok(response)) => response,
        Ok(Err(err)) => {
            let failure = classify(&err);
            tracing::debug!(error = %crate::adapters::error_chain(&err), ?side, "upstream request failed");
            proxy
                .recorder
                .record(side, failure.outcome(), started.elapsed());
            return failure.response();
        }
        Err(_) => {
            let failure = super::Failure {
                kind: crate::adapters::recorder::TransportFailure::Timeout,
                client_fault: None,
            };
            proxy
                .recorder
                .record(side, failure.outcome(), started.elapsed());
            return failure.response();
        }
    };
    if let Some(client_upgrade) = client_upgrade
        && response.status() == StatusCode::SWITCHING_PROTOCOLS
    {
        proxy.recorder.record(
            side,
            crate::adapters::recorder::Outcome::Status(101),
            started.elapsed(),
        );
        return super::upgrade::splice_via_client(response, client_upgrade);
    }
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let recording = Recording::new(proxy, side, head.status.as_u16(), &head.headers, started);
    if let Some(cookie) = reply.new_cookie {
        head.headers.append(header::SET_COOKIE, cookie);
    }
    let capture = reply.capture.map(|mut capture| {
        capture.head(head.status.as_u16(), started.elapsed());
        capture
    });
    // hyper's client speaks HTTP/2 or HTTP/1.1 to the upstream; the client
    // gets whatever its own connection speaks.
    head.version = Version::HTTP_11;
    let body = RecordedBody {
        inner: body.map_err(|err| Box::new(err) as BoxError).boxed(),
        recording: Some(recording),
        capture,
        _in_flight: in_flight,
    };
    Response::from_parts(head, body.boxed())
}

/// The request's URI and version for hyper's client towards `via`'s
/// upstream; `Err` when the target cannot be written as a URI.
pub(super) fn prepare(
    proxy: &Proxy,
    via: &ViaClient,
    parts: &mut hyper::http::request::Parts,
    wants_trailers: bool,
) -> Result<(), ()> {
    let url = &via.settings.url;
    let target = upstream_target(url, &parts.uri);
    let http2 = via.settings.protocol != UpstreamProtocol::Http1;
    // HTTP/2 names the host in `:authority`, which hyper takes from the
    // URI: the client's host when `host_header: preserve` (already in
    // `Host`, see `rewrite_request`), the upstream's otherwise. The
    // connection goes to the upstream either way (`ToUpstream`).
    let authority = match parts.headers.get(header::HOST) {
        Some(host) if http2 && proxy.config.host_header == HostHeader::Preserve => host
            .to_str()
            .ok()
            .and_then(|host| host.parse::<hyper::http::uri::Authority>().ok()),
        _ => None,
    }
    .or_else(|| url.uri().authority().cloned());
    let uri = format!(
        "{}://{}{target}",
        url.uri().scheme_str().unwrap_or("http"),
        authority
            .as_ref()
            .map_or("localhost", |authority| authority.as_str())
    );
    parts.uri = uri.parse().map_err(|_| ())?;
    if !http2 {
        parts.version = Version::HTTP_11;
    } else {
        parts.version = Version::HTTP_2;
        // The host is in `:authority` now (RFC 9113 §8.3.1: a `Host` that
        // differs from it must not be sent).
        parts.headers.remove(header::HOST);
        parts.headers.remove(header::TRANSFER_ENCODING);
        if wants_trailers {
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
        }
    }
    Ok(())
}
