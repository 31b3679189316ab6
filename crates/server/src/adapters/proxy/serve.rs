//! Serving the proxy: an accepting task deals connections out to proxy
//! threads, each with a runtime of its own, and drains them on shutdown.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};

use crate::adapters::own_metrics::ProxyConnection;
use crate::adapters::proxy::client_io::{ActivityBody, ClientIo, ConnectionActivity};
use crate::adapters::proxy::headers::ClientInfo;
use crate::adapters::proxy::{Proxy, handle};
use crate::adapters::serving::{drain, stopped};

/// A client connection handed from the accepting task to a proxy thread.
pub(super) type Accepted = (std::net::TcpStream, SocketAddr);

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

/// How long a connection that has sent no request yet may take to send its
/// first one once the server stops.
const FIRST_REQUEST_GRACE: Duration = Duration::from_secs(1);

/// One proxy thread: serves the connections it is handed until `stopping`
/// turns true, then lets open connections finish their requests for up to
/// ten seconds.
pub(super) async fn serve_connections(
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
        take_up(&mut connections, stream, client_addr, &proxy, &stopping);
    }
    // Connections accepted before the stop but not yet taken up are served
    // too (their clients are already waiting), until the accept loop has
    // stopped and dropped its end.
    while let Some((stream, client_addr)) = incoming.recv().await {
        take_up(&mut connections, stream, client_addr, &proxy, &stopping);
    }
    drain(&mut connections, "proxy").await;
}

/// Registers an accepted connection with this thread's runtime and serves it.
fn take_up(
    connections: &mut tokio::task::JoinSet<()>,
    stream: std::net::TcpStream,
    client_addr: SocketAddr,
    proxy: &Arc<Proxy>,
    stopping: &tokio::sync::watch::Receiver<bool>,
) {
    match TcpStream::from_std(stream) {
        Ok(stream) => spawn_connection(connections, stream, client_addr, proxy, stopping.clone()),
        Err(err) => tracing::warn!(%err, "cannot register a proxy connection"),
    }
}

/// Serves one client connection: over TLS when the proxy has `proxy.tls`
/// (ALPN picks HTTP/2 or HTTP/1.1), else in clear text (HTTP/1.1, or
/// HTTP/2 when the client starts with its preface); HTTP/1.1 with
/// keep-alive and upgrades; a graceful close when `stopping` turns true.
pub(super) fn spawn_connection(
    connections: &mut tokio::task::JoinSet<()>,
    stream: TcpStream,
    client_addr: SocketAddr,
    proxy: &Arc<Proxy>,
    stopping: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let proxy = Arc::clone(proxy);
    let client = ClientInfo::new(client_addr);
    let client = if proxy.tls.is_some() {
        client.over_tls()
    } else {
        client
    };
    let activity = Arc::new(ConnectionActivity::new(client));
    // The deadlines count raw bytes, under TLS: a handshake that stalls is
    // a head that does not arrive.
    let io = ClientIo::new(stream, Arc::clone(&activity), &proxy.config);
    connections.spawn(async move {
        match proxy.tls.clone() {
            None => serve_http(io, activity, proxy, stopping, client_addr).await,
            Some(tls) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                let stream = match acceptor.accept(io).await {
                    Ok(stream) => stream,
                    Err(err) => {
                        proxy
                            .metrics
                            .proxy_connection(ProxyConnection::TlsHandshakeFailed);
                        tracing::debug!(%err, %client_addr, "proxy: TLS handshake failed");
                        return;
                    }
                };
                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    activity.multiplexed();
                }
                serve_http(stream, activity, proxy, stopping, client_addr).await;
            }
        }
    });
}

/// hyper's server on one connection, HTTP/1.1 or HTTP/2.
async fn serve_http<I>(
    io: I,
    activity: Arc<ConnectionActivity>,
    proxy: Arc<Proxy>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    client_addr: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let seen = Arc::clone(&activity);
    let over_tls = proxy.tls.is_some();
    let counted = std::sync::atomic::AtomicBool::new(false);
    let metrics = Arc::clone(&proxy.metrics);
    let limits = proxy.config.http2.clone();
    let service =
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            let proxy = Arc::clone(&proxy);
            let activity = Arc::clone(&activity);
            let http2 = request.version() == hyper::Version::HTTP_2;
            if http2 {
                // No head deadline between a multiplexed connection's streams.
                activity.multiplexed();
            }
            if !counted.swap(true, std::sync::atomic::Ordering::Relaxed) {
                metrics.proxy_connection(match (http2, over_tls) {
                    (false, false) => ProxyConnection::Http1,
                    (true, false) => ProxyConnection::H2c,
                    (false, true) => ProxyConnection::Http1Tls,
                    (true, true) => ProxyConnection::H2Tls,
                });
            }
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
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    // Header and idle timeouts are enforced by `ClientIo`: hyper's own
    // header timer also runs while a keep-alive connection waits for its
    // next request, which would cut idle connections short.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_list_size.0).unwrap_or(u32::MAX))
        .initial_stream_window_size(u32::try_from(limits.stream_window.0).unwrap_or(u32::MAX))
        .initial_connection_window_size(
            u32::try_from(limits.connection_window.0).unwrap_or(u32::MAX),
        )
        .max_pending_accept_reset_streams(limits.max_pending_resets as usize)
        .max_local_error_reset_streams(limits.max_pending_resets as usize)
        .max_send_buf_size(limits.stream_window.0.min(1 << 20) as usize);
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let mut connection = std::pin::pin!(connection);
    // Not a `select!`: that would poll the stop signal on every wake-up of
    // the connection, a lock and a waker registration per request. The
    // signal is polled once to register, then only after the watch changed.
    let watch = stopping.clone();
    let mut stop = std::pin::pin!(stopped(&mut stopping));
    let mut armed = false;
    let mut stop_seen = false;
    let mut shutting_down = false;
    // A connection accepted just before the stop may not have sent its
    // request yet; closing it as idle would fail a client that did
    // nothing wrong (the next server is already taking new ones). It
    // gets its first request served, with `Connection: close`, or this
    // long to send one.
    let mut first_request_grace = std::pin::pin!(tokio::time::sleep(FIRST_REQUEST_GRACE));
    let result = std::future::poll_fn(|cx| {
        if !stop_seen
            && (!armed || watch.has_changed().unwrap_or(true))
            && stop.as_mut().poll(cx).is_ready()
        {
            stop_seen = true;
            first_request_grace
                .as_mut()
                .reset(tokio::time::Instant::now() + FIRST_REQUEST_GRACE);
        }
        armed = true;
        if stop_seen && !shutting_down {
            let fresh = seen.heads_read.load(std::sync::atomic::Ordering::Acquire) == 0;
            if !fresh || first_request_grace.as_mut().poll(cx).is_ready() {
                connection.as_mut().graceful_shutdown();
                shutting_down = true;
            }
        }
        connection.as_mut().poll(cx)
    })
    .await;
    if let Err(err) = result {
        tracing::debug!(%err, %client_addr, "proxy connection ended with an error");
    }
}
