//! The proxy towards clients over HTTP/2 and TLS: h2c with prior knowledge
//! and HTTP/1.1 on one clear-text listener, ALPN `h2` and `http/1.1` over
//! TLS, a certificate reloaded on SIGHUP while clients stay connected, and
//! the known HTTP/2 attacks (rapid reset, CONTINUATION flood, SETTINGS
//! flood, oversized headers) answered without harm to anyone else.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Version;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestApp, eventually, http_get};

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1, as
/// PEM files in `dir`: (CA certificate DER, certificate file, key file).
fn certificate(
    dir: &std::path::Path,
    name: &str,
) -> (
    CertificateDer<'static>,
    std::path::PathBuf,
    std::path::PathBuf,
) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let (cert_file, key_file) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&cert_file, leaf.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (CertificateDer::from(ca.der().to_vec()), cert_file, key_file)
}

/// Puts a certificate from a new CA in place of `cert_file` and `key_file`,
/// then sends this process SIGHUP (the test servers run in it); returns
/// the new CA.
fn renew_and_hang_up(
    dir: &std::path::Path,
    cert_file: &std::path::Path,
    key_file: &std::path::Path,
) -> CertificateDer<'static> {
    let (second_ca, second_cert, second_key) = certificate(dir, "second");
    std::fs::copy(&second_cert, cert_file).unwrap();
    std::fs::copy(&second_key, key_file).unwrap();
    let hangup = std::process::Command::new("kill")
        .args(["-HUP", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    second_ca
}

/// One HTTP/1.1 GET of `path` over `io` (a TLS stream): version and status.
async fn http1_get_over<IO>(io: IO, path: &str) -> (Version, u16)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .unwrap();
    tokio::spawn(connection);
    let response = sender
        .send_request(
            hyper::Request::get(path)
                .header("host", "localhost")
                .body(Empty::<Bytes>::new())
                .unwrap(),
        )
        .await
        .unwrap();
    (response.version(), response.status().as_u16())
}

/// A TLS client trusting `ca` that offers `alpn`.
fn tls_client(ca: &CertificateDer<'static>, alpn: &[&[u8]]) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

type Sender<B> = hyper::client::conn::http2::SendRequest<B>;

/// An HTTP/2 connection over `io`.
async fn h2_over<I>(io: I) -> Sender<Empty<Bytes>>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    sender
}

/// One GET on an HTTP/2 connection: the version, status and which upstream answered.
async fn h2_get(sender: &mut Sender<Empty<Bytes>>, authority: &str) -> (Version, u16, String) {
    let request = hyper::Request::get(format!("https://{authority}/work"))
        .body(Empty::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let upstream = response
        .headers()
        .get("x-upstream")
        .map(|name| name.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (version, status) = (response.version(), response.status().as_u16());
    response.into_body().collect().await.unwrap();
    (version, status, upstream)
}

async fn proxy_metrics(app: &TestApp) -> String {
    let (_, _, body) = http_get(&app.url("/metrics"), "text/plain").await;
    body
}

fn connections(metrics: &str, protocol: &str) -> u64 {
    let line = format!("canary_proxy_connections_total{{protocol=\"{protocol}\"}} ");
    metrics
        .lines()
        .find_map(|text| text.strip_prefix(&line))
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge_and_http1_share_one_clear_text_listener() {
    let app = TestApp::start().await;
    app.start_canary_at(50.0).await;
    let tcp = tokio::net::TcpStream::connect(app.proxy_addr)
        .await
        .unwrap();
    let mut h2 = h2_over(tcp).await;
    let mut sides = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let (version, status, upstream) = h2_get(&mut h2, &app.proxy_addr.to_string()).await;
        assert_eq!((version, status), (Version::HTTP_2, 200));
        sides.insert(upstream);
    }
    assert_eq!(
        sides.len(),
        2,
        "both sides answered over one HTTP/2 connection: {sides:?}"
    );
    let (status, headers, _) = http_get(&app.proxy_url("/work"), "*/*").await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("x-upstream"));
    let snapshot = app
        .metrics_where(|metrics| {
            metrics.production.last_1m.requests + metrics.canary.last_1m.requests >= 41
        })
        .await;
    assert_eq!(
        snapshot.production.last_1m.requests + snapshot.canary.last_1m.requests,
        41,
        "every request recorded"
    );
    let metrics = proxy_metrics(&app).await;
    assert_eq!(connections(&metrics, "h2c"), 1, "{metrics}");
    assert!(connections(&metrics, "http1") >= 1, "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_alpn_picks_http2_or_http1_and_a_reloaded_certificate_serves_new_clients() {
    let dir = tempfile::tempdir().unwrap();
    let (first_ca, cert_file, key_file) = certificate(dir.path(), "first");
    let app = TestApp::start_with(|config| {
        config.proxy.tls = Some(canary_server::config::TlsConfig {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    })
    .await;
    app.start_canary_at(50.0).await;
    let connect = async |ca: &CertificateDer<'static>, alpn: &[&[u8]]| {
        let tcp = tokio::net::TcpStream::connect(app.proxy_addr)
            .await
            .unwrap();
        tls_client(ca, alpn)
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    };

    // ALPN h2: HTTP/2.
    let tls = connect(&first_ca, &[b"h2", b"http/1.1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut kept = h2_over(tls).await;
    assert_eq!(h2_get(&mut kept, "localhost").await.0, Version::HTTP_2);

    // ALPN http/1.1 (or none): HTTP/1.1 on the same listener.
    let tls = connect(&first_ca, &[b"http/1.1"]).await.unwrap();
    assert_eq!(http1_get_over(tls, "/work").await, (Version::HTTP_11, 200));

    // A new certificate from another CA, and SIGHUP: new clients get it,
    // the HTTP/2 connection opened before keeps working.
    let second_ca = renew_and_hang_up(dir.path(), &cert_file, &key_file);
    eventually("new handshakes to get the new certificate", async || {
        connect(&second_ca, &[b"h2"]).await.ok().map(drop)
    })
    .await;
    assert!(
        connect(&first_ca, &[b"h2"]).await.is_err(),
        "the old certificate is gone"
    );
    for _ in 0..5 {
        let (version, status, _) = h2_get(&mut kept, "localhost").await;
        assert_eq!(
            (version, status),
            (Version::HTTP_2, 200),
            "the connection from before still serves"
        );
    }

    // Not TLS at all: the handshake fails, is counted, and nothing else changes.
    let mut plain = tokio::net::TcpStream::connect(app.proxy_addr)
        .await
        .unwrap();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), plain.read_to_end(&mut answer)).await;
    assert!(
        !String::from_utf8_lossy(&answer).contains("200"),
        "no HTTP answer in clear text"
    );
    let metrics = eventually("the failed handshake to be counted", async || {
        let metrics = proxy_metrics(&app).await;
        (connections(&metrics, "tls_handshake_failed") >= 1).then_some(metrics)
    })
    .await;
    assert!(connections(&metrics, "h2_tls") >= 1, "{metrics}");
    assert!(connections(&metrics, "http1_tls") >= 1, "{metrics}");

    // TLS with no cipher suite in common: a TLS 1.2 client that offers only
    // suites for RSA keys, against the proxy's ECDSA certificate. Refused
    // in the handshake with an alert, counted, and the listener serves on.
    let failed_before = connections(&metrics, "tls_handshake_failed");
    let mut rsa_only = rustls::crypto::ring::default_provider();
    rsa_only.cipher_suites.retain(|suite| {
        matches!(
            suite.suite(),
            rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        )
    });
    assert!(!rsa_only.cipher_suites.is_empty());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(second_ca.clone()).unwrap();
    let no_common_suite = rustls::ClientConfig::builder_with_provider(Arc::new(rsa_only))
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(app.proxy_addr)
        .await
        .unwrap();
    let refused = tokio_rustls::TlsConnector::from(Arc::new(no_common_suite))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect_err("no cipher suite in common");
    assert!(
        refused.to_string().contains("HandshakeFailure"),
        "the proxy answers with a handshake_failure alert: {refused}"
    );
    eventually("the refused handshake to be counted", async || {
        let metrics = proxy_metrics(&app).await;
        (connections(&metrics, "tls_handshake_failed") > failed_before).then_some(())
    })
    .await;
    let tls = connect(&second_ca, &[b"h2"]).await.unwrap();
    let mut after = h2_over(tls).await;
    assert_eq!(h2_get(&mut after, "localhost").await.1, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consoles_listener_reloads_its_certificate_on_sighup_too() {
    let dir = tempfile::tempdir().unwrap();
    let (first_ca, cert_file, key_file) = certificate(dir.path(), "first");
    let app = TestApp::start_with(|config| {
        config.server.tls = Some(canary_server::config::TlsConfig {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    })
    .await;
    let connect = async |ca: &CertificateDer<'static>| {
        let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        tls_client(ca, &[b"http/1.1"])
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
    };
    let kept = connect(&first_ca).await.unwrap();

    let second_ca = renew_and_hang_up(dir.path(), &cert_file, &key_file);
    eventually("new handshakes to get the new certificate", async || {
        connect(&second_ca).await.ok().map(drop)
    })
    .await;
    assert!(
        connect(&first_ca).await.is_err(),
        "the old certificate is gone"
    );
    // The connection opened before the reload still answers.
    assert_eq!(http1_get_over(kept, "/admin/canary/status").await.1, 200);
}

// === Attacks, with hand-made HTTP/2 frames (RFC 9113 §4) ===

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let length = payload.len() as u32;
    let mut bytes = vec![
        (length >> 16) as u8,
        (length >> 8) as u8,
        length as u8,
        kind,
        flags,
    ];
    bytes.extend_from_slice(&stream.to_be_bytes());
    bytes.extend_from_slice(payload);
    bytes
}

/// A GET for `/` as an HPACK block: static-table fields and a literal
/// `:authority` (no indexing, no Huffman).
fn request_block() -> Vec<u8> {
    let mut block = vec![0x82, 0x87, 0x84]; // :method GET, :scheme https, :path /
    block.extend(literal(":authority", "localhost"));
    block
}

/// One header field as an HPACK literal without indexing.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut field = vec![0x00];
    encode_length(&mut field, name.len());
    field.extend_from_slice(name.as_bytes());
    encode_length(&mut field, value.len());
    field.extend_from_slice(value.as_bytes());
    field
}

/// An HPACK string length (7-bit prefix, no Huffman).
fn encode_length(block: &mut Vec<u8>, length: usize) {
    if length < 127 {
        block.push(length as u8);
        return;
    }
    block.push(127);
    let mut rest = length - 127;
    while rest >= 128 {
        block.push((rest % 128) as u8 | 0x80);
        rest /= 128;
    }
    block.push(rest as u8);
}

/// Reads frames until a GOAWAY or the end of the connection (`None` then);
/// whichever comes first within 10 s.
async fn goaway_or_close(stream: &mut tokio::net::TcpStream) -> Option<u32> {
    let read = async {
        let mut header = [0u8; 9];
        loop {
            if stream.read_exact(&mut header).await.is_err() {
                return None;
            }
            let length = (usize::from(header[0]) << 16)
                | (usize::from(header[1]) << 8)
                | usize::from(header[2]);
            let mut payload = vec![0u8; length];
            if stream.read_exact(&mut payload).await.is_err() {
                return None;
            }
            if header[3] == GOAWAY && payload.len() >= 8 {
                return Some(u32::from_be_bytes([
                    payload[4], payload[5], payload[6], payload[7],
                ]));
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the proxy ends the connection")
}

/// Sends `bytes` until the proxy stops reading or closes; whether it did.
async fn send_until_cut_off(stream: &mut tokio::net::TcpStream, bytes: &[u8]) -> bool {
    tokio::time::timeout(Duration::from_secs(5), stream.write_all(bytes))
        .await
        .map_or(true, |written| written.is_err())
}

/// A raw connection to the proxy, and the bytes an HTTP/2 client starts
/// with: the preface and an empty SETTINGS frame.
async fn attacker(app: &TestApp) -> (tokio::net::TcpStream, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(app.proxy_addr)
        .await
        .unwrap();
    let mut opening = PREFACE.to_vec();
    opening.extend(frame(SETTINGS, 0, 0, &[]));
    (stream, opening)
}

/// The proxy still serves an ordinary HTTP/2 client.
async fn still_serves(app: &TestApp) {
    let tcp = tokio::net::TcpStream::connect(app.proxy_addr)
        .await
        .unwrap();
    let mut h2 = h2_over(tcp).await;
    assert_eq!(h2_get(&mut h2, &app.proxy_addr.to_string()).await.1, 200);
}

const ENHANCE_YOUR_CALM: u32 = 0xb;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_storm_is_cut_off_and_others_are_served() {
    let app = TestApp::start().await;
    app.start_canary_at(50.0).await;
    let (mut attacker, mut storm) = attacker(&app).await;
    let block = request_block();
    for stream in (1..20_000u32).step_by(2) {
        storm.extend(frame(HEADERS, END_HEADERS | END_STREAM, stream, &block));
        storm.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    }
    let _ = send_until_cut_off(&mut attacker, &storm).await;
    assert_eq!(
        goaway_or_close(&mut attacker).await,
        Some(ENHANCE_YOUR_CALM),
        "GOAWAY ENHANCE_YOUR_CALM"
    );
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_continuation_flood_is_cut_off_before_it_grows_without_bound() {
    let app = TestApp::start().await;
    let (mut attacker, mut flood) = attacker(&app).await;
    flood.extend(frame(HEADERS, END_STREAM, 1, &request_block()));
    // 64 MiB of header block that never ends: far past the 64 KiB limit.
    let continuation = frame(CONTINUATION, 0, 1, &literal("x-junk", &"j".repeat(15_000)));
    for _ in 0..4_000 {
        flood.extend_from_slice(&continuation);
    }
    let cut_off = send_until_cut_off(&mut attacker, &flood).await;
    let ending = goaway_or_close(&mut attacker).await;
    assert!(
        cut_off || ending.is_some(),
        "the proxy took 64 MiB of one header block"
    );
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_flood_from_a_client_that_reads_nothing_is_bounded() {
    let app = TestApp::start().await;
    let (mut attacker, mut flood) = attacker(&app).await;
    // Each SETTINGS asks for an ACK; the attacker never reads them.
    let settings = frame(SETTINGS, 0, 0, &[0, 3, 0, 0, 0, 100]);
    for _ in 0..2_000_000 {
        flood.extend_from_slice(&settings);
    }
    // Either the proxy stops reading (it acknowledges each SETTINGS before
    // reading on, so once its ACKs back up it reads no more: bounded) or
    // cuts the connection; it never takes all 30 MB while owing 2,000,000
    // ACKs (loopback's socket buffers hold a few MB).
    let cut_off = send_until_cut_off(&mut attacker, &flood).await;
    assert!(
        cut_off,
        "the proxy read 2,000,000 SETTINGS without their ACKs being read"
    );
    still_serves(&app).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_headers_are_refused_and_the_connection_serves_on() {
    let app = TestApp::start().await;
    app.start_canary_at(50.0).await;
    let tcp = tokio::net::TcpStream::connect(app.proxy_addr)
        .await
        .unwrap();
    let mut h2 = h2_over(tcp).await;
    let request = hyper::Request::get(format!("http://{}/work", app.proxy_addr))
        .header("x-large", "a".repeat(100 * 1024))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let refused = h2.send_request(request).await;
    match refused {
        Ok(response) => assert_eq!(response.status().as_u16(), 431),
        Err(err) => assert!(
            err.to_string().contains("refused")
                || err.to_string().contains("reset")
                || err.to_string().contains("size"),
            "{err}"
        ),
    }
    assert_eq!(
        h2_get(&mut h2, &app.proxy_addr.to_string()).await.1,
        200,
        "the connection still serves"
    );
}
