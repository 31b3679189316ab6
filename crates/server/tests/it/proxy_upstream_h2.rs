//! The proxy towards upstreams that are not plain HTTP/1.1: gRPC servers
//! over h2c (a call's outcome from `grpc-status` in its trailers, streamed
//! messages passed through as they come), and an HTTPS upstream verified
//! against a configured CA, or refused with the reason when not trusted.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use canary_server::config::{HostHeader, UpstreamProtocol, UpstreamUrl};
use canary_shared::Phase;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};

use crate::support::TestApp;

/// A gRPC message on the wire: uncompressed flag, length, bytes.
fn grpc_message(payload: &[u8]) -> Bytes {
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    framed.extend_from_slice(payload);
    Bytes::from(framed)
}

/// Holds back the last message of the first call that reaches it until
/// the caller has its first message: a proxy that buffered the answer
/// would never pass that first message on.
#[derive(Clone, Default)]
struct Gate(Arc<(std::sync::atomic::AtomicBool, tokio::sync::Notify)>);

impl Gate {
    fn armed() -> Gate {
        let gate = Gate::default();
        gate.0.0.store(true, std::sync::atomic::Ordering::SeqCst);
        gate
    }
}

/// An HTTP/2 (h2c) gRPC server on loopback answering every call with
/// `messages` messages, 50 ms apart, then `grpc-status: status`; the last
/// message of the first call waits for `gate`.
async fn grpc_server(name: &'static str, status: u8, messages: usize, gate: Gate) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let gate = gate.clone();
            tokio::spawn(async move {
                let service =
                    hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                        let gate = gate.clone();
                        async move {
                            let is_grpc =
                                request.headers().get("content-type").is_some_and(|value| {
                                    value.as_bytes().starts_with(b"application/grpc")
                                });
                            let te = request.headers().get("te").cloned();
                            let authority = request.uri().authority().map(|a| a.to_string());
                            let saw_host = request.headers().contains_key("host");
                            let (send, mut receive) =
                                tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
                            tokio::spawn(async move {
                                for index in 0..messages {
                                    if index > 0 {
                                        tokio::time::sleep(Duration::from_millis(50)).await;
                                    }
                                    if index + 1 == messages
                                        && index > 0
                                        && gate.0.0.swap(false, std::sync::atomic::Ordering::SeqCst)
                                    {
                                        gate.0.1.notified().await;
                                    }
                                    let message =
                                        grpc_message(format!("{name} {index}").as_bytes());
                                    if send.send(Ok(Frame::data(message))).await.is_err() {
                                        return;
                                    }
                                }
                                let mut trailers = hyper::HeaderMap::new();
                                trailers.insert("grpc-status", status.to_string().parse().unwrap());
                                let _ = send.send(Ok(Frame::trailers(trailers))).await;
                            });
                            let frames =
                                futures_util::stream::poll_fn(move |cx| receive.poll_recv(cx));
                            let mut response = Response::new(StreamBody::new(frames));
                            response
                                .headers_mut()
                                .insert("content-type", "application/grpc".parse().unwrap());
                            response
                                .headers_mut()
                                .insert("x-upstream", name.parse().unwrap());
                            response.headers_mut().insert(
                                "x-saw-grpc",
                                (if is_grpc { "yes" } else { "no" }).parse().unwrap(),
                            );
                            if let Some(te) = te {
                                response.headers_mut().insert("x-saw-te", te);
                            }
                            if let Some(authority) = authority {
                                response
                                    .headers_mut()
                                    .insert("x-saw-authority", authority.parse().unwrap());
                            }
                            response.headers_mut().insert(
                                "x-saw-host-header",
                                (if saw_host { "yes" } else { "no" }).parse().unwrap(),
                            );
                            Ok::<_, Infallible>(response)
                        }
                    });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    address
}

/// One gRPC call through the proxy over h2c: (upstream, the messages, the
/// grpc-status trailer, the response headers); each message received
/// opens `gate`.
async fn call(
    sender: &mut hyper::client::conn::http2::SendRequest<Full<Bytes>>,
    proxy: SocketAddr,
    gate: &Gate,
) -> (String, Vec<Bytes>, Option<String>, hyper::HeaderMap) {
    let request = Request::post(format!("http://{proxy}/shop.Cart/Watch"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(grpc_message(b"cart-1")))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let headers = response.headers().clone();
    let upstream = headers
        .get("x-upstream")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let mut body = response.into_body();
    let mut messages = Vec::new();
    let mut status = None;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap();
        if let Some(data) = frame.data_ref() {
            messages.push(data.clone());
            // The server holds its last message back until this one arrived.
            gate.0.1.notify_one();
        }
        if let Some(trailers) = frame.trailers_ref() {
            status = trailers
                .get("grpc-status")
                .map(|value| value.to_str().unwrap().to_owned());
        }
    }
    (upstream, messages, status, headers)
}

async fn h2c(proxy: SocketAddr) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(proxy).await.unwrap();
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    sender
}

/// The test server with the two gRPC servers as h2c upstreams, and the
/// config adjusted by `adjust`.
pub(crate) async fn grpc_app(
    production: SocketAddr,
    canary: SocketAddr,
    adjust: impl FnOnce(&mut canary_server::config::Config),
) -> TestApp {
    TestApp::start_with(|config| {
        for (upstream, address) in [
            (&mut config.upstreams.production, production),
            (&mut config.upstreams.canary, canary),
        ] {
            upstream.url = format!("http://{address}").parse::<UpstreamUrl>().unwrap();
            upstream.protocol = UpstreamProtocol::H2c;
        }
        TestApp::pass_health_checks_blindly(config);
        adjust(config);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_calls_stream_through_and_unavailable_in_trailers_rolls_the_canary_back() {
    // Production answers OK; the canary UNAVAILABLE (14) after its messages.
    let gate = Gate::armed();
    let production = grpc_server("production", 0, 3, gate.clone()).await;
    let canary = grpc_server("canary", 14, 3, gate.clone()).await;
    let app = grpc_app(production, canary, |_| {}).await;
    app.start_canary_at(50.0).await;
    let mut sender = h2c(app.proxy_addr).await;

    // Streamed: the server sends its last message only once the first has
    // reached the caller, so a proxy that held the answer back would hang.
    let (upstream, messages, status, headers) = tokio::time::timeout(
        Duration::from_secs(10),
        call(&mut sender, app.proxy_addr, &gate),
    )
    .await
    .expect("the first message passed through before the answer ended");
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert_eq!(headers["x-saw-grpc"], "yes");
    assert_eq!(
        headers["x-saw-te"], "trailers",
        "TE: trailers reaches the upstream"
    );
    let expected = if upstream == "canary" { "14" } else { "0" };
    assert_eq!(
        status.as_deref(),
        Some(expected),
        "the trailers are forwarded"
    );

    // Calls until the canary's UNAVAILABLE answers, HTTP 200 each, breach
    // the error-rate check and roll it back.
    for _ in 0..60 {
        if app.controller.state.borrow().phase == Phase::RolledBack {
            break;
        }
        let mut calls = Vec::new();
        let proxy = app.proxy_addr;
        for _ in 0..10 {
            let mut sender = sender.clone();
            let gate = Gate::default();
            calls.push(tokio::spawn(async move {
                call(&mut sender, proxy, &gate).await
            }));
        }
        for call in calls {
            let _ = call.await;
        }
    }
    app.wait_for_phase(Phase::RolledBack).await;
    let snapshot = app
        .metrics_where(|metrics| metrics.canary.last_1m.requests > 0)
        .await;
    assert!(
        snapshot.canary.last_1m.error_rate.unwrap_or(0.0) > 0.9,
        "UNAVAILABLE counts as a failure: {:?}",
        snapshot.canary.last_1m
    );
    assert_eq!(
        snapshot.production.last_1m.error_rate,
        Some(0.0),
        "OK does not: {:?}",
        snapshot.production.last_1m
    );
}

/// An HTTPS (HTTP/1.1) server on loopback with a certificate for
/// `localhost` that a fresh CA signed: its address and the CA's PEM file.
async fn https_server(
    dir: &std::path::Path,
    name: &'static str,
) -> (SocketAddr, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    use rustls::pki_types::pem::PemObject;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let ca_file = dir.join(format!("{name}-ca.pem"));
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(stream).await else {
                    return;
                };
                let service = hyper::service::service_fn(
                    move |mut request: Request<hyper::body::Incoming>| async move {
                        if let Some(key) = request.headers().get("sec-websocket-key").cloned() {
                            return Ok::<_, Infallible>(websocket_echo(&mut request, &key, name));
                        }
                        let mut response = Response::new(Full::new(Bytes::from_static(b"ok\n")));
                        response
                            .headers_mut()
                            .insert("x-upstream", name.parse().unwrap());
                        if let Some(proto) = request.headers().get("x-forwarded-proto") {
                            response.headers_mut().insert("x-saw-proto", proto.clone());
                        }
                        Ok::<_, Infallible>(response)
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .with_upgrades()
                    .await;
            });
        }
    });
    (address, ca_file)
}

/// Accepts a WebSocket and answers each text message with "echo: " and it.
fn websocket_echo(
    request: &mut Request<hyper::body::Incoming>,
    key: &hyper::header::HeaderValue,
    name: &'static str,
) -> Response<Full<Bytes>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key, protocol::Role};
    let upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let upgraded = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
        let mut socket =
            tokio_tungstenite::WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
        while let Some(Ok(Message::Text(text))) = socket.next().await {
            let reply = format!("echo: {}", text.as_str());
            if socket.send(Message::Text(reply.into())).await.is_err() {
                return;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-accept", derive_accept_key(key.as_bytes()))
        .header("x-upstream", name)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_is_verified_against_its_ca_and_an_untrusted_one_is_refused_with_the_reason()
 {
    let dir = tempfile::tempdir().unwrap();
    let (production, production_ca) = https_server(dir.path(), "production").await;
    let (canary, _canary_ca) = https_server(dir.path(), "canary").await;
    let app = TestApp::start_with(|config| {
        config.upstreams.production.url = format!("https://localhost:{}", production.port())
            .parse()
            .unwrap();
        config.upstreams.production.ca_file = Some(production_ca.clone());
        // The canary's CA is not given: the system does not trust it.
        config.upstreams.canary.url = format!("https://localhost:{}", canary.port())
            .parse()
            .unwrap();
    })
    .await;

    // Production, trusted through its CA: served over TLS, health checked.
    let (status, headers, body) = crate::support::http_get(&app.proxy_url("/work"), "*/*").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "ok\n"));
    assert_eq!(headers["x-upstream"], "production");
    assert_eq!(
        headers["x-saw-proto"], "http",
        "the client reached canary in clear text"
    );

    // The canary's certificate is not trusted: its health check says why,
    // and the rollout does not start.
    let start = canary_shared::Command::Start(canary_shared::StartRequest {
        image_tag: "v2.7.0".to_owned(),
        traffic_percent: canary_shared::CanaryShare::from_percent(50.0).unwrap(),
    });
    app.controller
        .command("test".to_owned(), start, None)
        .await
        .unwrap();
    let failed = app.wait_for_phase(Phase::Failed).await;
    let summary = serde_json::to_string(&failed).unwrap();
    assert!(
        summary.contains("certificate is not trusted") && summary.contains("ca_file"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stickiness_by_header_keeps_a_grpc_caller_on_one_side_by_its_metadata() {
    let production = grpc_server("production", 0, 1, Gate::default()).await;
    let canary = grpc_server("canary", 0, 1, Gate::default()).await;
    let app = grpc_app(production, canary, |config| {
        config.proxy.stickiness.mode = canary_server::config::StickinessMode::Header;
        config.proxy.stickiness.header = canary_server::config::HeaderName("x-user-id".to_owned());
    })
    .await;
    app.start_canary_at(50.0).await;
    let sender = h2c(app.proxy_addr).await;
    let mut users_on_canary = 0;
    for user in 0..60 {
        let mut sides = std::collections::BTreeSet::new();
        for _ in 0..3 {
            // gRPC metadata travel as HTTP/2 headers.
            let request = Request::post(format!("http://{}/shop.Cart/Get", app.proxy_addr))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                .header("x-user-id", format!("user-{user}"))
                .body(Full::new(grpc_message(b"cart")))
                .unwrap();
            let response = sender.clone().send_request(request).await.unwrap();
            sides.insert(
                response.headers()["x-upstream"]
                    .to_str()
                    .unwrap()
                    .to_owned(),
            );
            response.into_body().collect().await.unwrap();
        }
        assert_eq!(sides.len(), 1, "user-{user} went to {sides:?}");
        if sides.contains("canary") {
            users_on_canary += 1;
        }
    }
    assert!(
        (15..=45).contains(&users_on_canary),
        "{users_on_canary} of 60 callers on the canary at 50 %"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_caller_cancels_is_not_a_failure_of_the_server() {
    // Each server holds its last message until told: the caller stops
    // watching after the first, as a client of a server stream does.
    let production = grpc_server("production", 0, 3, Gate::armed()).await;
    let canary = grpc_server("canary", 0, 3, Gate::armed()).await;
    let app = grpc_app(production, canary, |_| {}).await;
    app.start_canary_at(50.0).await;
    let sender = h2c(app.proxy_addr).await;
    let request = Request::post(format!("http://{}/shop.Cart/Watch", app.proxy_addr))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(grpc_message(b"cart-1")))
        .unwrap();
    let response = sender.clone().send_request(request).await.unwrap();
    let side = response.headers()["x-upstream"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut body = response.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.is_data());
    drop(body);
    let snapshot = app
        .metrics_where(|metrics| {
            metrics.production.last_1m.requests + metrics.canary.last_1m.requests >= 1
        })
        .await;
    let window = if side == "canary" {
        &snapshot.canary.last_1m
    } else {
        &snapshot.production.last_1m
    };
    assert_eq!(
        (window.requests, window.error_rate),
        (1, Some(0.0)),
        "{side}: {window:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_upstream_sees_the_clients_host_or_its_own_as_host_header_says() {
    let production = grpc_server("production", 0, 1, Gate::default()).await;
    let canary = grpc_server("canary", 0, 1, Gate::default()).await;
    for (host_header, expected) in [
        (HostHeader::Preserve, "shop.example:8443".to_owned()),
        (HostHeader::Upstream, production.to_string()),
    ] {
        let app = grpc_app(production, canary, |config| {
            config.proxy.host_header = host_header;
        })
        .await;
        for client_speaks_http2 in [true, false] {
            let request = Request::post("/shop.Cart/Watch")
                .header("content-type", "application/grpc")
                .header("te", "trailers");
            // The host as each protocol carries it: `:authority`, or `Host`.
            let body = Full::new(grpc_message(b"cart-1"));
            let response = if client_speaks_http2 {
                let request = request.uri("http://shop.example:8443/shop.Cart/Watch");
                h2c(app.proxy_addr)
                    .await
                    .send_request(request.body(body).unwrap())
                    .await
            } else {
                let stream = tokio::net::TcpStream::connect(app.proxy_addr)
                    .await
                    .unwrap();
                let (mut sender, connection) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                        .await
                        .unwrap();
                tokio::spawn(connection);
                let request = request.header("host", "shop.example:8443");
                sender.send_request(request.body(body).unwrap()).await
            };
            let headers = response.unwrap().headers().clone();
            assert_eq!(headers["x-upstream"], "production");
            assert_eq!(
                headers["x-saw-authority"],
                expected.as_str(),
                "{host_header:?}, the client speaking HTTP/2: {client_speaks_http2}"
            );
            assert_eq!(
                headers["x-saw-host-header"], "no",
                "HTTP/2 carries the host in :authority only"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_passes_through_to_an_https_upstream_and_not_to_an_http2_one() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let dir = tempfile::tempdir().unwrap();
    let (production, production_ca) = https_server(dir.path(), "production").await;
    let grpc_canary = grpc_server("canary", 0, 1, Gate::default()).await;
    let app = TestApp::start_with(|config| {
        config.upstreams.production.url = format!("https://localhost:{}", production.port())
            .parse()
            .unwrap();
        config.upstreams.production.ca_file = Some(production_ca.clone());
        config.upstreams.canary.url = format!("http://{grpc_canary}").parse().unwrap();
        config.upstreams.canary.protocol = UpstreamProtocol::H2c;
        TestApp::pass_health_checks_blindly(config);
    })
    .await;

    // Production over TLS: the upgrade and the messages pass both ways.
    let url = format!("ws://{}/ws", app.proxy_addr);
    let (mut socket, response) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .unwrap();
    assert_eq!(response.headers()["x-upstream"], "production");
    for text in ["hi", "again"] {
        socket.send(Message::Text(text.into())).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(reply.into_text().unwrap().as_str(), format!("echo: {text}"));
    }

    // The canary speaks HTTP/2: refused with the reason, counted as the
    // client's (no fault of the canary's).
    app.start_canary_at(100.0).await;
    let refused = tokio_tungstenite::connect_async(url.as_str()).await;
    let Err(tokio_tungstenite::tungstenite::Error::Http(response)) = refused else {
        panic!("a WebSocket to an HTTP/2 upstream is refused: {refused:?}");
    };
    assert_eq!(response.status().as_u16(), 501);
    let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
    assert!(body.contains("protocol: http1"), "{body}");

    // The first socket still works after the split moved.
    socket.send(Message::Text("still".into())).await.unwrap();
    let reply = socket.next().await.unwrap().unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo: still");
}
