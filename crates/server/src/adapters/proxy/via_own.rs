//! Forwarding to a plain HTTP/1.1 upstream through the proxy's own client
//! (`upstream.rs`): the request as `prepare` left it, a
//! refused canary's request served by production instead, and the
//! upstream's answer turned into the client's response, recorded for its
//! side when its body ends.

use std::sync::Arc;

use canary_shared::Side;
use http_body_util::BodyExt;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Response, StatusCode, Uri};
use tokio::time::Instant;

use super::failure::{Failure, classify};
use super::headers::{strip_hop_by_hop, upstream_target};
use super::recorded::{InFlight, RecordedBody, Recording, acquire};
use super::upstream::{self, BodyWriter, Connection, RequestBody, UpstreamBody};
use super::{Proxy, ProxyBody, Reply, http1, plain, upgrade};
use crate::adapters::recorder::{Outcome, TransportFailure};
use crate::config::HostHeader;
use crate::domain::roles::UpstreamSlot;

/// A request ready for a plain HTTP/1.1 upstream: its head encoded, its
/// body to stream, and what its answer needs.
pub(super) struct OwnRequest {
    pub(super) side: Side,
    pub(super) slot: UpstreamSlot,
    pub(super) method: Method,
    pub(super) head: Vec<u8>,
    pub(super) body: RequestBody,
    /// What production needs to serve a body-less canary request when the
    /// canary refuses the connection (`proxy.retry_refused_canary`).
    pub(super) retry: Option<Box<Retry>>,
    pub(super) reply: Reply,
    pub(super) started: Instant,
    pub(super) in_flight: InFlight,
    /// The client's side of a connection upgrade (WebSocket), when asked.
    pub(super) client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    pub(super) upgrade: bool,
}

/// A canary request production may serve instead.
pub(super) struct Retry {
    pub(super) production: UpstreamSlot,
    pub(super) method: Method,
    pub(super) uri: Uri,
    pub(super) headers: HeaderMap,
}

/// Sends a prepared request to its plain HTTP/1.1 upstream and turns the
/// answer into the client's response.
pub(super) async fn forward(proxy: &Arc<Proxy>, request: Box<OwnRequest>) -> Response<ProxyBody> {
    let OwnRequest {
        side,
        slot,
        method,
        head,
        body,
        retry,
        reply,
        started,
        in_flight,
        client_upgrade,
        upgrade,
    } = *request;
    match send(proxy, (side, slot), &method, &head, body).await {
        // A canary that refused the connection got nothing, so production may
        // serve the request instead; the refusal still counts against the canary.
        Err(failure) if failure.kind == TransportFailure::Refused && retry.is_some() => {
            proxy.recorder.record(
                Side::Canary,
                Outcome::Transport(TransportFailure::Refused),
                started.elapsed(),
            );
            drop(in_flight);
            let retry = retry.expect("checked by the guard");
            // Boxed: rare, and its future is as large as this one.
            Box::pin(retry_on_production(proxy, retry, reply.new_cookie, started)).await
        }
        Err(failure) => {
            proxy
                .recorder
                .record(side, failure.outcome(), started.elapsed());
            failure.response()
        }
        Ok(sent) => match client_upgrade {
            Some(client_upgrade) if sent.head.status == StatusCode::SWITCHING_PROTOCOLS => {
                proxy
                    .recorder
                    .record(side, Outcome::Status(101), started.elapsed());
                upgrade::splice_own(sent, client_upgrade)
            }
            // An upgrade the upstream declined leaves it unclear what it
            // expects next on that connection, so it is not pooled.
            _ => finish(proxy, side, sent, reply, (started, in_flight), !upgrade),
        },
    }
}

/// A request sent and its response head received.
#[derive(Debug)]
pub(super) struct Sent {
    pub(super) head: http1::ResponseHead,
    pub(super) connection: Connection,
    /// Still writing the request body, when the response came first.
    pub(super) writer: Option<BodyWriter>,
}

/// Sends the request (`head` encoded, then `body`) to `side` on a pooled
/// connection (or a new one, within the connect timeout) and reads the
/// response head within the upstream response timeout.
///
/// A pooled connection the upstream closed just as the request went out
/// answers nothing; an idempotent body-less request is then sent again on
/// another connection, as nginx does (never a request with a body, never
/// after a byte of a response).
pub(super) async fn send(
    proxy: &Proxy,
    (side, slot): (Side, UpstreamSlot),
    method: &Method,
    head: &[u8],
    body: RequestBody,
) -> Result<Sent, Failure> {
    let replayable = matches!(body, RequestBody::Empty) && method.is_idempotent();
    let started = Instant::now();
    let timeout = proxy.config.response_timeout(side);
    let mut body = Some(body);
    loop {
        let (mut connection, reused) = match proxy.pool(slot).take(started) {
            Some(connection) => (connection, true),
            None => {
                // Boxed: a new connection is rare on a busy proxy, and its
                // future would otherwise widen every request's.
                let opened = Box::pin(Connection::open(
                    &proxy.upstream(slot).address,
                    proxy.config.upstream_connect_timeout.0,
                ))
                .await
                .map_err(|failed| classify(&*failed.error))?;
                (opened, false)
            }
        };
        let attempt = body.take().unwrap_or(RequestBody::Empty);
        match upstream::exchange(&mut connection, method, head, attempt, (started, timeout)).await {
            Ok((head, writer)) => {
                return Ok(Sent {
                    head,
                    connection,
                    writer,
                });
            }
            Err(failed) if reused && replayable && failed.nothing_received => {}
            Err(failed) => return Err(classify(&*failed.error)),
        }
    }
}

/// Sends a body-less request to production after the canary refused it.
async fn retry_on_production(
    proxy: &Arc<Proxy>,
    retry: Box<Retry>,
    new_cookie: Option<HeaderValue>,
    started: Instant,
) -> Response<ProxyBody> {
    let Retry {
        production,
        method,
        uri,
        mut headers,
    } = *retry;
    let upstream = proxy.upstream(production);
    let Some(in_flight) = acquire(proxy, production) else {
        proxy.recorder.record(
            Side::Production,
            Outcome::Transport(TransportFailure::Overloaded),
            started.elapsed(),
        );
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream busy, try again\n",
        );
    };
    if proxy.config.host_header == HostHeader::Upstream {
        headers.insert(header::HOST, upstream.authority.clone());
    }
    let mut head = Vec::new();
    http1::encode_request_head(
        &mut head,
        &method,
        &upstream_target(&upstream.url, &uri),
        &headers,
    );
    match send(
        proxy,
        (Side::Production, production),
        &method,
        &head,
        RequestBody::Empty,
    )
    .await
    {
        Err(failure) => {
            proxy
                .recorder
                .record(Side::Production, failure.outcome(), started.elapsed());
            failure.response()
        }
        Ok(sent) => finish(
            proxy,
            Side::Production,
            sent,
            Reply {
                new_cookie,
                capture: None,
            },
            (started, in_flight),
            true,
        ),
    }
}

/// Turns the upstream's response into the client's, recording it when its
/// body ends; the connection goes back to the pool afterwards only when
/// `reusable` (and the response allows it).
fn finish(
    proxy: &Arc<Proxy>,
    side: Side,
    sent: Sent,
    reply: Reply,
    (started, in_flight): (Instant, InFlight),
    reusable: bool,
) -> Response<ProxyBody> {
    let Sent {
        head,
        connection,
        writer,
    } = sent;
    let pool = reusable.then(|| Arc::clone(proxy.pool(in_flight.slot)));
    let body = UpstreamBody::new(connection, &head, writer, pool);
    let mut headers = head.headers;
    strip_hop_by_hop(&mut headers);
    // The client's framing follows the body as decoded here: a length only
    // when the upstream delimited the body by one (RFC 9112 §6.3 has a
    // `Transfer-Encoding` override any `Content-Length` beside it).
    match head.framing {
        http1::Framing::Length(length) => {
            // Almost always the upstream's one plain field already says it;
            // written anew only when it came as a list or in several lines.
            let mut lengths = headers.get_all(header::CONTENT_LENGTH).iter();
            let plain = matches!(
                (lengths.next(), lengths.next()),
                (Some(value), None) if value.as_bytes().iter().all(u8::is_ascii_digit)
            );
            if !plain {
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
            }
        }
        http1::Framing::Chunked | http1::Framing::UntilClose => {
            headers.remove(header::CONTENT_LENGTH);
        }
        // HEAD, 204 and 304 keep what the upstream said of the full body.
        http1::Framing::Empty => {}
    }
    if let Some(cookie) = reply.new_cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    let recording = Recording::new(proxy, side, head.status.as_u16(), &headers, started);
    let capture = reply.capture.map(|mut capture| {
        capture.head(head.status.as_u16(), started.elapsed());
        capture
    });
    let body = RecordedBody {
        inner: body,
        recording: Some(recording),
        capture,
        _in_flight: in_flight,
    };
    let mut response = Response::new(body.boxed());
    *response.status_mut() = head.status;
    *response.headers_mut() = headers;
    response
}
