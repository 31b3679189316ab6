//! The built-in traffic-splitting reverse proxy.
//!
//! HTTP/1.1 with keep-alive on both sides (hyper's server towards clients;
//! towards upstreams, our own HTTP/1.1 client in `proxy/upstream.rs` over
//! connections pooled per proxy thread), bodies streamed both ways,
//! WebSocket upgrades passed through.
//! Each request goes to the side [`crate::domain::split::choose`] picks from
//! the current share; each is recorded for that side when its response ends.

use std::borrow::Cow;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use canary_shared::{CanaryShare, Side};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::{Body, Bytes, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::rt::{TokioIo, TokioTimer};
use sha2::Digest as _;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};

use crate::adapters::recorder::{Outcome, Recorder, TransportFailure};
use crate::config::{Config, HostHeader, ProxyConfig, StickinessMode, UpstreamUrl};
use crate::domain::split::{self, Bucket, Override};

mod http1;
mod upstream;

use upstream::{BodyWriter, Connection, ConnectionPool, RequestBody, UpstreamBody};

/// A boxed, streaming body.
pub type ProxyBody = BoxBody<Bytes, BoxError>;
type BoxError = Box<dyn StdError + Send + Sync>;

// === Shared share ===

/// The canary share every new request reads; changed atomically by the
/// controller, so a change applies to the next request and never to one in flight.
#[derive(Clone, Debug, Default)]
pub struct SharedShare(Arc<AtomicU16>);

impl SharedShare {
    /// A share starting at `share`.
    pub fn new(share: CanaryShare) -> SharedShare {
        SharedShare(Arc::new(AtomicU16::new(share.basis_points())))
    }

    /// The current share.
    pub fn get(&self) -> CanaryShare {
        CanaryShare::from_basis_points(self.0.load(Ordering::Relaxed))
            .expect("only valid shares are ever stored")
    }

    /// Sets the share for every request from now on.
    pub fn set(&self, share: CanaryShare) {
        self.0.store(share.basis_points(), Ordering::Relaxed);
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
}

/// Everything a proxied request needs; shared by all connections.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    production: Upstream,
    canary: Upstream,
    /// Idle connections to production, owned by this proxy's thread.
    production_pool: Arc<ConnectionPool>,
    /// Idle connections to the canary, owned by this proxy's thread.
    canary_pool: Arc<ConnectionPool>,
    share: SharedShare,
    recorder: Arc<Recorder>,
}

impl Proxy {
    /// A proxy for the upstreams in `config`, reading `share` and recording into `recorder`.
    pub fn new(config: &Config, share: SharedShare, recorder: Arc<Recorder>) -> Arc<Proxy> {
        let upstream = |url: &UpstreamUrl| Upstream {
            url: url.clone(),
            authority: url
                .uri()
                .authority()
                .and_then(|authority| HeaderValue::from_str(authority.as_str()).ok())
                .unwrap_or_else(|| HeaderValue::from_static("localhost")),
            address: {
                let uri = url.uri();
                let host = uri.host().unwrap_or("localhost");
                let port = uri.port_u16().unwrap_or(80);
                // An IPv6 literal keeps its brackets in `host()`.
                format!("{host}:{port}")
            },
            in_flight: Arc::new(AtomicU32::new(0)),
        };
        Arc::new(Proxy {
            config: config.proxy.clone(),
            production: upstream(&config.upstreams.production.url),
            canary: upstream(&config.upstreams.canary.url),
            production_pool: Arc::default(),
            canary_pool: Arc::default(),
            share,
            recorder,
        })
    }

    /// The same proxy (shares, limits, recorder) with a connection pool of
    /// its own, for a thread that runs its own runtime.
    fn for_another_thread(&self) -> Arc<Proxy> {
        Arc::new(Proxy {
            config: self.config.clone(),
            production: self.production.clone(),
            canary: self.canary.clone(),
            production_pool: Arc::default(),
            canary_pool: Arc::default(),
            share: self.share.clone(),
            recorder: Arc::clone(&self.recorder),
        })
    }

    fn upstream(&self, side: Side) -> &Upstream {
        match side {
            Side::Production => &self.production,
            Side::Canary => &self.canary,
        }
    }

    fn pool(&self, side: Side) -> &Arc<ConnectionPool> {
        match side {
            Side::Production => &self.production_pool,
            Side::Canary => &self.canary_pool,
        }
    }
}

// === Serving ===

/// Resolves once `stopping` is true (or its sender is gone).
pub(crate) async fn stopped(stopping: &mut tokio::sync::watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it before resolving.
    let _ = stopping.wait_for(|stopping| *stopping).await.map(|_| ());
}

/// A client connection handed from the accepting task to a proxy thread.
type Accepted = (std::net::TcpStream, SocketAddr);

/// Serves the proxy on `threads` threads, each with a single-threaded
/// runtime of its own; this task accepts and deals the connections out in
/// turn. A request then never hops between threads, which on a small machine
/// costs more than the work itself (see BENCHMARKS.md), and dealing in turn
/// keeps the threads evenly loaded. Returns when every thread has drained
/// after `stopping` turned true.
pub async fn serve_on_threads(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    threads: usize,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<()> {
    let mut workers = Vec::new();
    let mut finished = Vec::new();
    for index in 0..threads.max(1) {
        let (connections_tx, connections_rx) = tokio::sync::mpsc::unbounded_channel::<Accepted>();
        workers.push(connections_tx);
        let proxy = proxy.for_another_thread();
        let stopping = stopping.clone();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
        finished.push(done_rx);
        std::thread::Builder::new()
            .name(format!("canary-proxy-{index}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => {
                        runtime.block_on(serve_connections(connections_rx, proxy, stopping))
                    }
                    Err(err) => tracing::error!(%err, "cannot start a proxy thread's runtime"),
                }
                let _ = done_tx.send(());
            })?;
    }
    let mut next_worker = 0;
    loop {
        let (stream, client_addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%err, "proxy accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut stopping) => break,
        };
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(%err, "cannot hand over a proxy connection");
                continue;
            }
        };
        let _ = workers[next_worker % workers.len()].send((stream, client_addr));
        next_worker = next_worker.wrapping_add(1);
    }
    drop(listener);
    drop(workers);
    for done in finished {
        let _ = done.await;
    }
    Ok(())
}

/// One proxy thread: serves the connections it is handed until `stopping`
/// turns true, then lets open connections finish their requests for up to
/// ten seconds.
async fn serve_connections(
    mut incoming: tokio::sync::mpsc::UnboundedReceiver<Accepted>,
    proxy: Arc<Proxy>,
    stopping: tokio::sync::watch::Receiver<bool>,
) {
    let mut connections = tokio::task::JoinSet::new();
    let mut stop_signal = stopping.clone();
    loop {
        let (stream, client_addr) = tokio::select! {
            received = incoming.recv() => match received {
                Some(received) => received,
                None => break,
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next() => continue,
            () = stopped(&mut stop_signal) => break,
        };
        let stream = match TcpStream::from_std(stream) {
            Ok(stream) => stream,
            Err(err) => {
                tracing::warn!(%err, "cannot register a proxy connection");
                continue;
            }
        };
        spawn_connection(
            &mut connections,
            stream,
            client_addr,
            &proxy,
            stopping.clone(),
        );
    }
    drain(&mut connections, "proxy").await;
}

/// Waits up to ten seconds for `connections` to finish their requests, then
/// closes whatever is still open.
pub(crate) async fn drain(connections: &mut tokio::task::JoinSet<()>, listener: &str) {
    let drained = tokio::time::timeout(Duration::from_secs(10), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(listener, "connections still open after 10 s; closing them");
        connections.abort_all();
    }
}

/// Serves one client connection: HTTP/1.1 keep-alive with upgrades, and a
/// graceful close when `stopping` turns true.
fn spawn_connection(
    connections: &mut tokio::task::JoinSet<()>,
    stream: TcpStream,
    client_addr: SocketAddr,
    proxy: &Arc<Proxy>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let proxy = Arc::clone(proxy);
    let activity = Arc::new(ConnectionActivity::new(ClientInfo::new(client_addr)));
    let io = ClientIo::new(stream, Arc::clone(&activity), &proxy.config);
    let service = hyper::service::service_fn(move |request| {
        let proxy = Arc::clone(&proxy);
        let activity = Arc::clone(&activity);
        async move {
            // The head has been read in full: the header timer stops, and
            // the connection counts as busy until the response body ends.
            activity.request_started();
            let response = handle(&proxy, request, &activity.client).await;
            let (parts, body) = response.into_parts();
            let body = ActivityBody {
                inner: body,
                activity: Some(activity),
            };
            Ok::<_, Infallible>(Response::from_parts(parts, body))
        }
    });
    connections.spawn(async move {
        // Header and idle timeouts are enforced by `ClientIo`: hyper's own
        // header timer also runs while a keep-alive connection waits for its
        // next request, which would cut idle connections short.
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .keep_alive(true)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades();
        let mut connection = std::pin::pin!(connection);
        // Not a `select!`: that would poll the stop signal on every wake-up of
        // the connection, a lock and a waker registration per request. The
        // signal is polled once to register, then only after the watch changed.
        let watch = stopping.clone();
        let mut stop = std::pin::pin!(stopped(&mut stopping));
        let mut armed = false;
        let mut shutting_down = false;
        let result = std::future::poll_fn(|cx| {
            if !shutting_down
                && (!armed || watch.has_changed().unwrap_or(true))
                && stop.as_mut().poll(cx).is_ready()
            {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
            armed = true;
            connection.as_mut().poll(cx)
        })
        .await;
        if let Err(err) = result {
            tracing::debug!(%err, %client_addr, "proxy connection ended with an error");
        }
    });
}

/// Headers that describe one hop and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [header::HeaderName; 8] = [
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
const FRAMING_AND_ROUTING: [header::HeaderName; 3] = [
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::HOST,
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

fn is_upgrade(headers: &HeaderMap) -> bool {
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

/// Counts a request in flight for a side until dropped; a response body
/// holds it, so a slow download still counts.
///
/// It holds this thread's `Proxy` rather than the shared counter's own
/// `Arc`: a reference count touched by every thread on every request costs
/// a cache line bouncing between cores.
#[derive(Debug)]
struct InFlight {
    proxy: Arc<Proxy>,
    side: Side,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.proxy
            .upstream(self.side)
            .in_flight
            .fetch_sub(1, Ordering::AcqRel);
    }
}

fn acquire(proxy: &Arc<Proxy>, side: Side) -> Option<InFlight> {
    let previous = proxy
        .upstream(side)
        .in_flight
        .fetch_add(1, Ordering::AcqRel);
    let guard = InFlight {
        proxy: Arc::clone(proxy),
        side,
    };
    (previous < proxy.config.max_in_flight_per_side).then_some(guard)
}

/// One proxied request, from choosing a side to recording its outcome.
async fn handle(
    proxy: &Arc<Proxy>,
    mut request: Request<Incoming>,
    client: &ClientInfo,
) -> Response<ProxyBody> {
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
    let side = split::choose(proxy.share.get(), bucket, forced);

    // A chunked body is not at its end before it is read; an empty one is.
    let has_body =
        declared_length.is_some_and(|length| length > 0) || !request.body().is_end_stream();
    let upgrade = is_upgrade(request.headers());
    if let Some(refusal) = refuse_client_request(declared_length, max_body, upgrade, has_body) {
        proxy
            .recorder
            .record(side, Outcome::ClientError, started.elapsed());
        return refusal;
    }

    let upstream = proxy.upstream(side);
    let Some(in_flight) = acquire(proxy, side) else {
        proxy.recorder.record(
            side,
            Outcome::Transport(TransportFailure::Overloaded),
            started.elapsed(),
        );
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream busy, try again\n",
        );
    };

    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    let original_host = parts.headers.get(header::HOST).cloned();
    let upgrade_headers = upgrade.then(|| {
        (
            parts.headers.get(header::UPGRADE).cloned(),
            parts.headers.get(header::CONNECTION).cloned(),
        )
    });
    strip_hop_by_hop(&mut parts.headers);
    if let Some(side_override) = &proxy.config.side_override {
        // The token is for this proxy; the upstream never sees it.
        parts.headers.remove(side_override.token_header.0.as_str());
    }
    if let Some((Some(upgrade_value), _)) = &upgrade_headers {
        parts.headers.insert(header::UPGRADE, upgrade_value.clone());
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    add_forwarded(&mut parts.headers, client, original_host.as_ref());
    match proxy.config.host_header {
        HostHeader::Preserve if parts.headers.contains_key(header::HOST) => {}
        // HTTP/1.0 clients may send no `Host`; the upstream still needs one.
        HostHeader::Preserve | HostHeader::Upstream => {
            parts
                .headers
                .insert(header::HOST, upstream.authority.clone());
        }
    }
    let retry_parts =
        (side == Side::Canary && proxy.config.retry_refused_canary && !has_body && !upgrade).then(
            || {
                (
                    parts.method.clone(),
                    parts.uri.clone(),
                    parts.headers.clone(),
                )
            },
        );
    // The framing the upstream sees is written here, from the body that is
    // actually forwarded, never taken over from the client's fields.
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.remove(header::TRANSFER_ENCODING);
    let request_body = if !has_body {
        if declared_length == Some(0) {
            // Some servers want a length on every POST, if only a zero.
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(0_u64));
        }
        RequestBody::Empty
    } else {
        // Errors reading the client's body are marked as the client's, so
        // they are never counted against the side (see `classify`).
        let limited = Limited::new(
            body.map_err(|err| ClientBodyError(Box::new(err))),
            usize::try_from(max_body).unwrap_or(usize::MAX),
        )
        .boxed();
        match declared_length {
            Some(length) => {
                parts
                    .headers
                    .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
                RequestBody::Length(limited)
            }
            None => {
                // The client's own chunking is hop-by-hop; this hop chunks anew.
                parts.headers.insert(
                    header::TRANSFER_ENCODING,
                    HeaderValue::from_static("chunked"),
                );
                RequestBody::Chunked(limited)
            }
        }
    };
    let mut head = Vec::new();
    http1::encode_request_head(
        &mut head,
        &parts.method,
        &upstream_target(&upstream.url, &parts.uri),
        &parts.headers,
    );

    match send(proxy, side, &parts.method, &head, request_body).await {
        // A canary that refused the connection got nothing, so production may
        // serve the request instead; the refusal still counts against the canary.
        Err(failure) if failure.kind == TransportFailure::Refused && retry_parts.is_some() => {
            proxy.recorder.record(
                Side::Canary,
                Outcome::Transport(TransportFailure::Refused),
                started.elapsed(),
            );
            drop(in_flight);
            let (method, uri, headers) = retry_parts.expect("checked by the guard");
            retry_on_production(proxy, method, uri, headers, new_cookie, started).await
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
                splice_upgrade(sent, client_upgrade)
            }
            // An upgrade the upstream declined leaves it unclear what it
            // expects next on that connection, so it is not pooled.
            _ => finish(proxy, side, sent, new_cookie, started, in_flight, !upgrade),
        },
    }
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

const X_FORWARDED_FOR: header::HeaderName = header::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: header::HeaderName = header::HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: header::HeaderName = header::HeaderName::from_static("x-forwarded-host");

/// What the proxy knows of a client connection, computed once per connection.
#[derive(Debug)]
struct ClientInfo {
    ip: std::net::IpAddr,
    ip_text: String,
    ip_header: HeaderValue,
}

impl ClientInfo {
    fn new(addr: SocketAddr) -> ClientInfo {
        let ip_text = addr.ip().to_string();
        let ip_header =
            HeaderValue::from_str(&ip_text).expect("an IP address is a valid header value");
        ClientInfo {
            ip: addr.ip(),
            ip_text,
            ip_header,
        }
    }
}

/// Sets `X-Forwarded-For` (appended), `-Proto` and `-Host`.
fn add_forwarded(
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
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if let Some(host) = original_host {
        headers.insert(X_FORWARDED_HOST, host.clone());
    }
}

/// The request target sent upstream (origin form): the upstream's base path
/// joined with the request's path and query.
fn upstream_target<'a>(base: &UpstreamUrl, request_uri: &'a Uri) -> Cow<'a, str> {
    let base_path = base.uri().path().trim_end_matches('/');
    let path_and_query = request_uri
        .path_and_query()
        .map_or("/", |path_and_query| path_and_query.as_str());
    if base_path.is_empty() {
        // The common case: the parsed path and query as they are.
        return Cow::Borrowed(path_and_query);
    }
    Cow::Owned(format!("{base_path}{path_and_query}"))
}

/// An error reading the client's request body: the client's fault (it sent
/// malformed chunking, went away mid-body, or stalled), never the upstream's.
#[derive(Debug, thiserror::Error)]
#[error("reading the client's request body: {0}")]
struct ClientBodyError(#[source] BoxError);

/// How a client spoiled its own request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientFault {
    /// Its body went past the limit while it streamed.
    BodyTooLarge,
    /// Its body stalled past the client idle timeout.
    TooSlow,
    /// Its body was malformed or cut short.
    BadBody,
}

/// A failed upstream exchange, classified.
#[derive(Debug)]
struct Failure {
    kind: TransportFailure,
    /// Set when the client, not the upstream, is at fault.
    client_fault: Option<ClientFault>,
}

impl Failure {
    /// What to record for the side.
    fn outcome(&self) -> Outcome {
        match self.client_fault {
            Some(_) => Outcome::ClientError,
            None => Outcome::Transport(self.kind),
        }
    }

    fn response(&self) -> Response<ProxyBody> {
        match (self.client_fault, self.kind) {
            (Some(ClientFault::BodyTooLarge), _) => {
                plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n")
            }
            (Some(ClientFault::TooSlow), _) => {
                plain(StatusCode::REQUEST_TIMEOUT, "request body too slow\n")
            }
            (Some(ClientFault::BadBody), _) => plain(
                StatusCode::BAD_REQUEST,
                "malformed or incomplete request body\n",
            ),
            (None, TransportFailure::Timeout) => {
                plain(StatusCode::GATEWAY_TIMEOUT, "upstream timed out\n")
            }
            (None, _) => plain(StatusCode::BAD_GATEWAY, "upstream unavailable\n"),
        }
    }
}

/// A request sent and its response head received.
#[derive(Debug)]
struct Sent {
    head: http1::ResponseHead,
    connection: Connection,
    /// Still writing the request body, when the response came first.
    writer: Option<BodyWriter>,
}

/// Sends the request (`head` encoded, then `body`) to `side` on a pooled
/// connection (or a new one, within the connect timeout) and reads the
/// response head within the upstream response timeout.
///
/// A pooled connection the upstream closed just as the request went out
/// answers nothing; an idempotent body-less request is then sent again on
/// another connection, as nginx does (never a request with a body, never
/// after a byte of a response).
async fn send(
    proxy: &Proxy,
    side: Side,
    method: &Method,
    head: &[u8],
    body: RequestBody,
) -> Result<Sent, Failure> {
    let replayable = matches!(body, RequestBody::Empty) && method.is_idempotent();
    let started = Instant::now();
    let timeout = proxy.config.upstream_response_timeout.0;
    let mut body = Some(body);
    loop {
        let (mut connection, reused) = match proxy.pool(side).take(started) {
            Some(connection) => (connection, true),
            None => {
                let opened = Connection::open(
                    &proxy.upstream(side).address,
                    proxy.config.upstream_connect_timeout.0,
                )
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

/// Sorts an exchange's error by its causes: the client's fault when reading
/// its body failed, else a transport failure kind.
fn classify(err: &(dyn StdError + 'static)) -> Failure {
    let mut kind = TransportFailure::Other;
    let mut client_fault = None;
    let mut cause: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(current) = cause {
        if current.is::<http_body_util::LengthLimitError>() {
            client_fault = Some(ClientFault::BodyTooLarge);
        }
        if current.is::<ClientBodyError>() {
            client_fault = Some(ClientFault::BadBody);
        }
        if client_fault == Some(ClientFault::BadBody)
            && current
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
        {
            client_fault = Some(ClientFault::TooSlow);
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            kind = match io.kind() {
                std::io::ErrorKind::ConnectionRefused => TransportFailure::Refused,
                std::io::ErrorKind::TimedOut => TransportFailure::Timeout,
                std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::BrokenPipe
                | std::io::ErrorKind::UnexpectedEof => TransportFailure::Reset,
                _ => kind,
            };
        }
        if let Some(hyper_err) = current.downcast_ref::<hyper::Error>()
            && (hyper_err.is_incomplete_message()
                || hyper_err.is_closed()
                || hyper_err.is_canceled())
            && kind == TransportFailure::Other
        {
            kind = TransportFailure::Reset;
        }
        cause = current.source();
    }
    Failure { kind, client_fault }
}

/// Sends a body-less request to production after the canary refused it.
async fn retry_on_production(
    proxy: &Arc<Proxy>,
    method: Method,
    uri: Uri,
    mut headers: HeaderMap,
    new_cookie: Option<HeaderValue>,
    started: Instant,
) -> Response<ProxyBody> {
    let upstream = proxy.upstream(Side::Production);
    let Some(in_flight) = acquire(proxy, Side::Production) else {
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
    match send(proxy, Side::Production, &method, &head, RequestBody::Empty).await {
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
            new_cookie,
            started,
            in_flight,
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
    new_cookie: Option<HeaderValue>,
    started: Instant,
    in_flight: InFlight,
    reusable: bool,
) -> Response<ProxyBody> {
    let Sent {
        head,
        connection,
        writer,
    } = sent;
    let pool = reusable.then(|| Arc::clone(proxy.pool(side)));
    let body = UpstreamBody::new(connection, &head, writer, pool);
    let mut headers = head.headers;
    strip_hop_by_hop(&mut headers);
    // The client's framing follows the body as decoded here: a length only
    // when the upstream delimited the body by one (RFC 9112 §6.3 has a
    // `Transfer-Encoding` override any `Content-Length` beside it).
    match head.framing {
        http1::Framing::Length(length) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
        http1::Framing::Chunked | http1::Framing::UntilClose => {
            headers.remove(header::CONTENT_LENGTH);
        }
        // HEAD, 204 and 304 keep what the upstream said of the full body.
        http1::Framing::Empty => {}
    }
    if let Some(cookie) = new_cookie {
        headers.append(header::SET_COOKIE, cookie);
    }
    let body = RecordedBody {
        inner: body,
        recording: Some(Recording {
            proxy: Arc::clone(proxy),
            side,
            status: head.status.as_u16(),
            started,
        }),
        _in_flight: in_flight,
    };
    let mut response = Response::new(body.boxed());
    *response.status_mut() = head.status;
    *response.headers_mut() = headers;
    response
}

/// Passes an upgraded connection through in both directions.
fn splice_upgrade(sent: Sent, client_upgrade: hyper::upgrade::OnUpgrade) -> Response<ProxyBody> {
    let Sent {
        head, connection, ..
    } = sent;
    tokio::spawn(async move {
        let Some((mut upstream, early)) = connection.into_tunnel() else {
            return;
        };
        match client_upgrade.await {
            Ok(client) => {
                let mut client = TokioIo::new(client);
                // What the upstream sent right behind its 101 goes first.
                if !early.is_empty()
                    && tokio::io::AsyncWriteExt::write_all(&mut client, &early)
                        .await
                        .is_err()
                {
                    return;
                }
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
            Err(err) => tracing::debug!(%err, "upgrade failed"),
        }
    });
    let mut headers = head.headers;
    headers.remove(header::TRANSFER_ENCODING);
    let mut response = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *response.status_mut() = head.status;
    *response.headers_mut() = headers;
    response
}

// === Recording when the response ends ===

/// What to record once a response body has ended.
#[derive(Debug)]
struct Recording {
    /// This thread's proxy (see [`InFlight`] for why not the recorder's `Arc`).
    proxy: Arc<Proxy>,
    side: Side,
    status: u16,
    started: Instant,
}

impl Recording {
    fn record(self, outcome: Outcome) {
        self.proxy
            .recorder
            .record(self.side, outcome, self.started.elapsed());
    }
}

/// The upstream's response body on its way to the client; records the
/// request when the body ends (a reset mid-body counts as a reset) and holds
/// the side's in-flight slot until then.
struct RecordedBody {
    inner: UpstreamBody,
    recording: Option<Recording>,
    _in_flight: InFlight,
}

impl Body for RecordedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(None) => {
                if let Some(recording) = self.recording.take() {
                    let status = recording.status;
                    recording.record(Outcome::Status(status));
                }
            }
            Poll::Ready(Some(Err(err))) => {
                if let Some(recording) = self.recording.take() {
                    let kind = match classify(&**err).kind {
                        TransportFailure::Other => TransportFailure::Reset,
                        kind => kind,
                    };
                    recording.record(Outcome::Transport(kind));
                }
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for RecordedBody {
    fn drop(&mut self) {
        // The client went away before the body ended (or hyper never polled an
        // empty body to its end): the upstream answered, so its status counts.
        if let Some(recording) = self.recording.take() {
            let status = recording.status;
            recording.record(Outcome::Status(status));
        }
    }
}

// === Client connection timeouts ===

/// What the request handler tells a connection's I/O about its requests.
#[derive(Debug)]
struct ConnectionActivity {
    /// The client at the other end.
    client: ClientInfo,
    /// Requests whose head was read and whose response has not ended.
    open_requests: AtomicU32,
    /// Increases with every request head read; lets a stale header timer be spotted.
    heads_read: std::sync::atomic::AtomicU64,
}

impl ConnectionActivity {
    fn new(client: ClientInfo) -> ConnectionActivity {
        ConnectionActivity {
            client,
            open_requests: AtomicU32::new(0),
            heads_read: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn request_started(&self) {
        self.open_requests.fetch_add(1, Ordering::AcqRel);
        self.heads_read.fetch_add(1, Ordering::AcqRel);
    }

    fn request_ended(&self) {
        self.open_requests.fetch_sub(1, Ordering::AcqRel);
    }

    fn busy(&self) -> bool {
        self.open_requests.load(Ordering::Acquire) > 0
    }
}

/// A response body that marks its request ended when it ends or is dropped.
struct ActivityBody {
    inner: ProxyBody,
    activity: Option<Arc<ConnectionActivity>>,
}

impl ActivityBody {
    fn end(&mut self) {
        if let Some(activity) = self.activity.take() {
            activity.request_ended();
        }
    }
}

impl Body for ActivityBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.end();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ActivityBody {
    fn drop(&mut self) {
        self.end();
    }
}

/// A client connection with two deadlines of its own:
/// - a request head must arrive in full within the header timeout, counted
///   from its first byte (a client that sends half a request and stalls is
///   closed, while an idle keep-alive connection is not);
/// - no byte moving in either direction for the idle timeout closes it.
///
/// Reads and writes only note the time; one timer per connection is re-armed
/// when it fires, so a busy connection touches tokio's timer wheel about once
/// per header timeout rather than on every read and write.
struct ClientIo {
    stream: TcpStream,
    activity: Arc<ConnectionActivity>,
    idle_timeout: Duration,
    header_timeout: Duration,
    timer: Pin<Box<Sleep>>,
    last_activity: Instant,
    /// When the head being received started, with `heads_read` then.
    head_started: Option<(Instant, u64)>,
}

impl ClientIo {
    fn new(stream: TcpStream, activity: Arc<ConnectionActivity>, config: &ProxyConfig) -> ClientIo {
        let idle_timeout = config.client_idle_timeout.0;
        let header_timeout = config.client_header_timeout.0;
        ClientIo {
            stream,
            activity,
            idle_timeout,
            header_timeout,
            timer: Box::pin(tokio::time::sleep(idle_timeout.min(header_timeout))),
            last_activity: Instant::now(),
            head_started: None,
        }
    }

    fn moved_bytes(&mut self) {
        self.last_activity = Instant::now();
    }

    /// Forgets the head start once that head has been read.
    fn forget_finished_head(&mut self) {
        let heads_read = self.activity.heads_read.load(Ordering::Acquire);
        if self
            .head_started
            .is_some_and(|(_, started_at)| started_at != heads_read)
        {
            self.head_started = None;
        }
    }

    fn check_deadlines(&mut self, cx: &mut Context<'_>) -> Option<std::io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return None;
            }
            let now = Instant::now();
            if now >= self.last_activity + self.idle_timeout {
                return Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client connection idle for too long",
                ));
            }
            self.forget_finished_head();
            if let Some((started, _)) = self.head_started
                && now >= started + self.header_timeout
            {
                return Some(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "client too slow to send a request head",
                ));
            }
            // Nothing expired: wake again at the earliest deadline that could,
            // including one for a head that may start from now on.
            let mut next = (self.last_activity + self.idle_timeout).min(now + self.header_timeout);
            if let Some((started, _)) = self.head_started {
                next = next.min(started + self.header_timeout);
            }
            self.timer.as_mut().reset(next);
        }
    }
}

impl AsyncRead for ClientIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved_bytes();
                    self.forget_finished_head();
                    // Bytes while no request is open are the start of a head.
                    if !self.activity.busy() && self.head_started.is_none() {
                        let heads_read = self.activity.heads_read.load(Ordering::Acquire);
                        self.head_started = Some((self.last_activity, heads_read));
                    }
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.check_deadlines(cx) {
                Some(err) => Poll::Ready(Err(err)),
                None => Poll::Pending,
            },
        }
    }
}

impl ClientIo {
    /// Notes bytes written, and turns a pending write into an error once a
    /// deadline has passed.
    fn written(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<usize>>,
    ) -> Poll<std::io::Result<usize>> {
        match polled {
            Poll::Ready(Ok(written)) => {
                if written > 0 {
                    self.moved_bytes();
                }
                Poll::Ready(Ok(written))
            }
            Poll::Pending => match self.check_deadlines(cx) {
                Some(err) => Poll::Ready(Err(err)),
                None => Poll::Pending,
            },
            other => other,
        }
    }
}

impl AsyncWrite for ClientIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write(cx, data);
        self.written(cx, polled)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.written(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
