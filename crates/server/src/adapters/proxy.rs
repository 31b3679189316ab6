//! The built-in traffic-splitting reverse proxy.
//!
//! Towards clients, hyper's server: HTTP/1.1 with keep-alive and HTTP/2
//! (with prior knowledge in clear text, or chosen by ALPN over TLS with
//! `proxy.tls`); towards a plain HTTP/1.1 upstream, our own client in
//! `proxy/upstream.rs` over connections pooled per proxy thread, and
//! towards h2c, h2 and https upstreams hyper's (`proxy/via_client.rs`).
//! Bodies and trailers are streamed both ways, WebSocket upgrades passed
//! through to plain HTTP/1.1 upstreams.
//! Each request goes to the side [`crate::domain::split::choose`] picks from
//! the current share; each is recorded for that side when its response ends.

use std::error::Error as StdError;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use canary_shared::{CanaryShare, Side};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, Response, StatusCode};
use sha2::Digest as _;
use tokio::time::Instant;

use crate::adapters::own_metrics::OwnMetrics;
use crate::adapters::recorder::{Outcome, Recorder, TransportFailure};
use crate::adapters::shadow::ShadowTap;
use crate::adapters::upstream_client::{self, UpstreamClient};
use crate::config::{Config, ProxyConfig, StickinessMode, UpstreamUrl};
use crate::domain::roles::{Routing, UpstreamSlot};
use crate::domain::split::{self, Bucket, Override};

mod client_io;
mod failure;
#[doc(hidden)]
pub mod fuzzing;
mod headers;
mod http1;
mod mirror;
mod recorded;
mod serve;
mod upgrade;
mod upstream;
mod via_client;
mod via_own;

pub use serve::serve_on_threads;

use failure::{ClientBodyError, Failure, classify};
use headers::{
    BodyFraming, ClientInfo, RequestRewrite, is_upgrade, rewrite_request, set_framing,
    upstream_target,
};
use recorded::acquire;
use upstream::{ConnectionPool, RequestBody};
use via_own::{OwnRequest, Retry};

/// A boxed, streaming body.
pub type ProxyBody = BoxBody<Bytes, BoxError>;
pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

// === Shared routing ===

/// The canary share and which upstream serves production, read by every
/// new request as one atomic value; changed by the controller, so a change
/// applies to the next request and never to one in flight, and no request
/// sees a new share with the old roles.
#[derive(Clone, Debug, Default)]
pub struct SharedRouting(Arc<AtomicU32>);

/// The bit that says production is served by the upstream listed as canary.
const SWAPPED: u32 = 1 << 16;

impl SharedRouting {
    /// Routing starting at `routing`.
    pub fn new(routing: Routing) -> SharedRouting {
        SharedRouting(Arc::new(AtomicU32::new(Self::encode(routing))))
    }

    fn encode(routing: Routing) -> u32 {
        let swapped = match routing.production {
            UpstreamSlot::ListedAsProduction => 0,
            UpstreamSlot::ListedAsCanary => SWAPPED,
        };
        u32::from(routing.share.basis_points()) | swapped
    }

    /// The routing in force.
    pub fn get(&self) -> Routing {
        let bits = self.0.load(Ordering::Relaxed);
        Routing {
            share: CanaryShare::from_basis_points((bits & 0xffff) as u16)
                .expect("only valid shares are ever stored"),
            production: if bits & SWAPPED == 0 {
                UpstreamSlot::ListedAsProduction
            } else {
                UpstreamSlot::ListedAsCanary
            },
        }
    }

    /// The canary share in force.
    pub fn share(&self) -> CanaryShare {
        self.get().share
    }

    /// Sets the routing for every request from now on.
    pub fn set(&self, routing: Routing) {
        self.0.store(Self::encode(routing), Ordering::Relaxed);
    }
}

// === Proxy state ===

/// One upstream as the proxy sees it.
#[derive(Clone, Debug)]
struct Upstream {
    url: UpstreamUrl,
    /// `host[:port]` for the `Host` header in [`HostHeader::Upstream`] mode
    /// (and for a client that sent none).
    authority: HeaderValue,
    /// `host:port` to connect to.
    address: String,
    /// Requests in flight; a slot is held until the response body ends.
    in_flight: Arc<AtomicU32>,
    /// hyper's client, for an upstream that is not plain HTTP/1.1 (h2c, h2,
    /// https); one per proxy thread, like the HTTP/1.1 pool.
    via_client: Option<ViaClient>,
}

/// An upstream reached through hyper's client.
#[derive(Clone, Debug)]
struct ViaClient {
    settings: crate::config::UpstreamConfig,
    tls: Arc<rustls::ClientConfig>,
    client: UpstreamClient<ProxyBody>,
    connect_timeout: std::time::Duration,
}

impl ViaClient {
    /// The same upstream with a client (and so a pool) of its own.
    fn fresh(&self) -> ViaClient {
        ViaClient {
            client: upstream_client::client(&self.settings, &self.tls, self.connect_timeout),
            ..self.clone()
        }
    }
}

/// Everything a proxied request needs; shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    /// The two upstreams, in the config's order (see [`UpstreamSlot`]).
    slots: [Upstream; 2],
    /// Idle connections to each upstream, owned by this proxy's thread.
    pools: [Arc<ConnectionPool>; 2],
    routing: SharedRouting,
    recorder: Arc<Recorder>,
    /// TLS towards clients (`proxy.tls`), when configured.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// Where connections are counted, by protocol.
    metrics: Arc<OwnMetrics>,
    /// Copies of production's requests for the canary (`validation.shadow`).
    shadow: Option<Arc<ShadowTap>>,
}

impl Proxy {
    /// A proxy for the upstreams in `config`, reading `share` and recording
    /// into `recorder`; over TLS with `tls` (`adapters::tls::proxy_config`).
    pub fn new(
        config: &Config,
        routing: SharedRouting,
        recorder: Arc<Recorder>,
        tls: Option<Arc<rustls::ServerConfig>>,
        upstream_tls: [Option<Arc<rustls::ClientConfig>>; 2],
        metrics: Arc<OwnMetrics>,
        shadow: Option<Arc<ShadowTap>>,
    ) -> Arc<Proxy> {
        let connect_timeout = config.proxy.upstream_connect_timeout.0;
        let upstream = |settings: &crate::config::UpstreamConfig,
                        tls: Option<Arc<rustls::ClientConfig>>| Upstream {
            via_client: tls.map(|tls| ViaClient {
                client: upstream_client::client(settings, &tls, connect_timeout),
                settings: settings.clone(),
                tls,
                connect_timeout,
            }),
            url: settings.url.clone(),
            authority: upstream_authority(&settings.url),
            address: {
                let uri = settings.url.uri();
                let host = uri.host().unwrap_or("localhost");
                // An IPv6 literal keeps its brackets in `host()`.
                format!("{host}:{}", settings.url.port())
            },
            in_flight: Arc::new(AtomicU32::new(0)),
        };
        let [production_tls, canary_tls] = upstream_tls;
        Arc::new(Proxy {
            config: config.proxy.clone(),
            slots: [
                upstream(&config.upstreams.production, production_tls),
                upstream(&config.upstreams.canary, canary_tls),
            ],
            pools: Default::default(),
            routing,
            recorder,
            tls,
            metrics,
            shadow,
        })
    }

    /// The same proxy (shares, limits, recorder) with a connection pool of
    /// its own, for a thread that runs its own runtime.
    fn for_another_thread(&self) -> Arc<Proxy> {
        let fresh = |upstream: &Upstream| Upstream {
            via_client: upstream.via_client.as_ref().map(ViaClient::fresh),
            ..upstream.clone()
        };
        Arc::new(Proxy {
            config: self.config.clone(),
            slots: [fresh(&self.slots[0]), fresh(&self.slots[1])],
            pools: Default::default(),
            routing: self.routing.clone(),
            recorder: Arc::clone(&self.recorder),
            tls: self.tls.clone(),
            metrics: Arc::clone(&self.metrics),
            shadow: self.shadow.clone(),
        })
    }

    fn upstream(&self, slot: UpstreamSlot) -> &Upstream {
        &self.slots[slot.index()]
    }

    fn pool(&self, slot: UpstreamSlot) -> &Arc<ConnectionPool> {
        &self.pools[slot.index()]
    }
}

/// `host[:port]` of `url`, for the `Host` header.
fn upstream_authority(url: &UpstreamUrl) -> HeaderValue {
    url.uri()
        .authority()
        .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
        .unwrap_or_else(|| HeaderValue::from_static("localhost"))
}

/// A short plain-text response from the proxy itself.
fn plain(status: StatusCode, message: &'static str) -> Response<ProxyBody> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(message.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The client's bucket, and the cookie to set when it is new.
fn bucket_for(proxy: &Proxy, headers: &HeaderMap) -> (Bucket, Option<HeaderValue>) {
    let stickiness = &proxy.config.stickiness;
    match stickiness.mode {
        StickinessMode::None => (Bucket::from_draw(fastrand::u32(..)), None),
        StickinessMode::Header => match headers.get(stickiness.header.0.as_str()) {
            Some(key) => (Bucket::from_key(key.as_bytes()), None),
            None => (Bucket::from_draw(fastrand::u32(..)), None),
        },
        StickinessMode::Cookie => {
            if let Some(bucket) = cookie_bucket(headers, &stickiness.cookie_name) {
                return (bucket, None);
            }
            let bucket = Bucket::from_draw(fastrand::u32(..));
            let cookie = format!(
                "{}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
                stickiness.cookie_name,
                bucket.value(),
                stickiness.cookie_max_age.0.as_secs()
            );
            (bucket, HeaderValue::from_str(&cookie).ok())
        }
    }
}

fn cookie_bucket(headers: &HeaderMap, name: &str) -> Option<Bucket> {
    crate::cookies::value(headers, name)
        .and_then(|value| value.parse().ok())
        .and_then(Bucket::new)
}

/// One proxied request, from choosing a side to recording its outcome.
///
/// Everything before the upstream exchange is done at once, and the
/// future returned keeps only what the exchange needs. That future is moved
/// whole on every request (into hyper's dispatcher, and for HTTP/2 into a
/// task of its own), so its size is CPU time: it was 3.2 KB when this was
/// one `async fn` (see BENCHMARKS.md, fifteenth session).
fn handle(
    proxy: &Arc<Proxy>,
    request: Request<Incoming>,
    client: &ClientInfo,
) -> impl Future<Output = Response<ProxyBody>> + Send + 'static {
    let prepared = prepare(proxy, request, client);
    let proxy = Arc::clone(proxy);
    async move {
        match prepared {
            Prepared::Answered(response) => response,
            Prepared::ViaClient(slot, forward) => {
                let via = proxy
                    .upstream(slot)
                    .via_client
                    .as_ref()
                    .expect("prepared for an upstream reached through hyper's client");
                // Boxed: its future is large, and only such upstreams need it.
                Box::pin(via_client::forward(&proxy, via, *forward)).await
            }
            Prepared::Own(request) => via_own::forward(&proxy, request).await,
        }
    }
}

/// A request as [`prepare`] leaves it.
enum Prepared {
    /// Answered by the proxy itself (refused, or no room upstream).
    Answered(Response<ProxyBody>),
    /// For an upstream reached through hyper's client (h2c, h2, https).
    ViaClient(UpstreamSlot, Box<via_client::Forward>),
    /// For a plain HTTP/1.1 upstream, through the proxy's own client.
    Own(Box<OwnRequest>),
}

/// Chooses the side, rewrites the request for its upstream and starts a
/// copy for the shadow step: all the work before the exchange.
fn prepare(proxy: &Arc<Proxy>, mut request: Request<Incoming>, client: &ClientInfo) -> Prepared {
    let started = Instant::now();
    let max_body = proxy.config.max_request_body.0;
    // hyper's parser has refused conflicting or malformed lengths, and drops
    // `Content-Length` when `Transfer-Encoding` is there too (RFC 9112 §6.3).
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());

    let forced = forced_side(proxy, request.headers(), client);
    let (bucket, new_cookie) = bucket_for(proxy, request.headers());
    // One read: the side and the upstream serving it come from the same routing.
    let routing = proxy.routing.get();
    let side = split::choose(routing.share, bucket, forced);
    let slot = routing.slot_of(side);

    // A chunked body is not at its end before it is read; an empty one is.
    let has_body =
        declared_length.is_some_and(|length| length > 0) || !request.body().is_end_stream();
    let upgrade = is_upgrade(request.headers());
    if let Some(refusal) = refuse_client_request(declared_length, max_body, upgrade, has_body) {
        proxy
            .recorder
            .record(side, Outcome::ClientError, started.elapsed());
        return Prepared::Answered(refusal);
    }

    let upstream = proxy.upstream(slot);
    let Some(in_flight) = acquire(proxy, slot) else {
        proxy.recorder.record(
            side,
            Outcome::Transport(TransportFailure::Overloaded),
            started.elapsed(),
        );
        return Prepared::Answered(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream busy, try again\n",
        ));
    };

    // A copy for the canary during the shadow step: production's requests
    // only, never an upgrade, drawn at the share, within the queue.
    let copy = match &proxy.shadow {
        Some(tap) if side == Side::Production && !upgrade => tap
            .ticket(request.method(), declared_length)
            .map(|permit| mirror::start(tap, permit, has_body)),
        _ => None,
    };
    let (copy, mut taps) = match copy {
        Some((copy, taps)) => (Some(copy), Some(taps)),
        None => (None, None),
    };
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let wants_trailers = parts
        .headers
        .get(header::TE)
        .and_then(|te| te.to_str().ok())
        .is_some_and(|te| te.contains("trailers"));
    // Room for what the rewrite adds (`Host`, three `X-Forwarded-*`, the
    // framing), made once: a map grown field by field reallocates each time.
    parts.headers.reserve(5);
    // HTTP/2 carries the host in `:authority`; the upstream's HTTP/1.1
    // request needs it as `Host`.
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        parts.headers.insert(header::HOST, host);
    }
    rewrite_request(
        &mut parts.headers,
        &RequestRewrite {
            client,
            host_header: proxy.config.host_header,
            upstream_authority: &upstream.authority,
            hidden: proxy
                .config
                .side_override
                .as_ref()
                .map(|side_override| side_override.token_header.0.as_str()),
            upgrade,
        },
    );
    let retry =
        (side == Side::Canary && proxy.config.retry_refused_canary && !has_body && !upgrade).then(
            || {
                Box::new(Retry {
                    production: routing.production,
                    method: parts.method.clone(),
                    uri: parts.uri.clone(),
                    headers: parts.headers.clone(),
                })
            },
        );
    // The framing the upstream sees is written from the body that is
    // actually forwarded, never taken over from the client's fields.
    let framing = BodyFraming::of(declared_length, has_body);
    set_framing(&mut parts.headers, framing);
    if let Some(copy) = copy {
        let copied = hyper::http::request::Builder::new()
            .method(parts.method.clone())
            .uri(parts.uri.clone())
            .body(())
            .map(|request| {
                let (mut copied, ()) = request.into_parts();
                copied.headers = parts.headers.clone();
                copied
            });
        if let Ok(copied) = copied {
            copy.spawn(proxy, routing.slot_of(Side::Canary), copied);
        }
    }
    let body_copy = taps.as_mut().and_then(|taps| taps.body.take());
    let reply = Reply {
        new_cookie,
        capture: taps.map(|taps| taps.capture),
    };
    // Errors reading the client's body are marked as the client's, so they
    // are never counted against the side (see `classify`).
    let limited = || {
        let body = Limited::new(
            body.map_err(|err| ClientBodyError(Box::new(err))),
            usize::try_from(max_body).unwrap_or(usize::MAX),
        )
        .boxed();
        match body_copy {
            Some(copy) => copy.wrap(body),
            None => body,
        }
    };
    if let Some(via) = &upstream.via_client {
        if upgrade && via.settings.protocol != crate::config::UpstreamProtocol::Http1 {
            // HTTP/2 carries WebSocket only as an extended CONNECT (RFC
            // 8441), which few servers take: said plainly, not half-done.
            proxy
                .recorder
                .record(side, Outcome::ClientError, started.elapsed());
            return Prepared::Answered(plain(
                StatusCode::NOT_IMPLEMENTED,
                "connection upgrades (WebSocket) are not passed to HTTP/2 upstreams; \
                 give the upstream protocol: http1\n",
            ));
        }
        let body = if has_body {
            limited()
        } else {
            Empty::new().map_err(|never| match never {}).boxed()
        };
        let forward = via_client::Forward {
            side,
            parts,
            body,
            wants_trailers,
            reply,
            started,
            in_flight,
            client_upgrade,
        };
        return Prepared::ViaClient(slot, Box::new(forward));
    }
    let request_body = match framing {
        BodyFraming::None | BodyFraming::EmptyWithLength => RequestBody::Empty,
        BodyFraming::Length(_) => RequestBody::Length(limited()),
        BodyFraming::Chunked => RequestBody::Chunked(limited()),
    };
    let mut head = Vec::new();
    http1::encode_request_head(
        &mut head,
        &parts.method,
        &upstream_target(&upstream.url, &parts.uri),
        &parts.headers,
    );
    Prepared::Own(Box::new(OwnRequest {
        side,
        slot,
        method: parts.method,
        head,
        body: request_body,
        retry,
        reply,
        started,
        in_flight,
        client_upgrade,
        upgrade,
    }))
}

/// The proxy's own answer to a request it will not forward, which is the
/// client's fault: a declared body over the limit, or an upgrade with a
/// body (forwarding one leaves the upstream's reading of the connection in
/// doubt, and no WebSocket handshake carries one).
fn refuse_client_request(
    declared_length: Option<u64>,
    max_body: u64,
    upgrade: bool,
    has_body: bool,
) -> Option<Response<ProxyBody>> {
    if declared_length.is_some_and(|length| length > max_body) {
        return Some(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request body too large\n",
        ));
    }
    if upgrade && has_body {
        return Some(plain(
            StatusCode::BAD_REQUEST,
            "a request that upgrades the connection cannot carry a body\n",
        ));
    }
    None
}

/// The side a client forces with the override header, when the proxy lets
/// it: the header is configured, and the client is on a trusted network or
/// sends the token.
fn forced_side(proxy: &Proxy, headers: &HeaderMap, client: &ClientInfo) -> Option<Override> {
    let config = proxy.config.side_override.as_ref()?;
    let forced = Override::parse(headers.get(config.header.0.as_str())?.as_bytes())?;
    let trusted = config
        .trusted_networks
        .iter()
        .any(|network| network.contains(client.ip));
    let token_matches = || {
        config.token_sha256.as_ref().is_some_and(|digest| {
            headers
                .get(config.token_header.0.as_str())
                .is_some_and(|token| {
                    // Digests of equal length compared whole: no early exit to time.
                    let sent: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
                    sent.iter()
                        .zip(digest.0.iter())
                        .fold(0_u8, |diff, (a, b)| diff | (a ^ b))
                        == 0
                })
        })
    };
    (trusted || token_matches()).then_some(forced)
}

/// What goes into the client's response besides the upstream's: a new
/// stickiness cookie, and the capture of a copied request's answer.
struct Reply {
    new_cookie: Option<HeaderValue>,
    capture: Option<mirror::Capture>,
}
