//! The defects of the outside security probe, each as a test through real
//! sockets: request framing through the proxy (against a raw upstream that
//! logs exactly what it receives), client faults that must never count
//! against a side (sign-in attempts are in `security_sign_in.rs`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use canary_shared::Phase;
use expect_test::expect;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::TestApp;

// === A raw upstream ===

/// One complete request as the upstream received it.
#[derive(Clone, Debug)]
struct Received {
    /// Which of the upstream's connections it came on, counting from 0.
    connection: usize,
    /// The head, exactly as sent (request line, fields, blank line).
    head: String,
    /// The body, de-chunked when it was chunked.
    body: Vec<u8>,
}

/// An HTTP/1.1 upstream written by hand: it parses each request itself
/// (by `Content-Length` or chunked), logs it, and answers with its request
/// line and body length, so a test sees byte for byte what the proxy sent
/// and can tell whose answer each client got.
struct RawUpstream {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    _task: JoinHandle<()>,
}

impl RawUpstream {
    async fn start() -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let task = tokio::spawn(async move {
            let mut connection = 0;
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve_raw(stream, connection, Arc::clone(&log)));
                connection += 1;
            }
        });
        RawUpstream {
            addr,
            received,
            _task: task,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The requests received since the last call, health checks left out.
    fn take(&self) -> Vec<Received> {
        let mut received = std::mem::take(&mut *self.received.lock().unwrap());
        received.retain(|request| !request.head.starts_with("GET /healthz "));
        received
    }
}

/// Reads more into `buf`; false at the end of the stream.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

/// One CRLF-terminated line from the front of `buf`, reading as needed.
async fn line(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(2).position(|pair| pair == b"\r\n") {
            let line = buf[..end].to_vec();
            buf.drain(..end + 2);
            return Some(line);
        }
        if !fill(stream, buf).await {
            return None;
        }
    }
}

async fn serve_raw(mut stream: TcpStream, connection: usize, log: Arc<Mutex<Vec<Received>>>) {
    let mut buf = Vec::new();
    loop {
        let head_len = loop {
            let mut fields = [httparse::EMPTY_HEADER; 64];
            let mut request = httparse::Request::new(&mut fields);
            match request.parse(&buf) {
                Ok(httparse::Status::Complete(len)) => break len,
                Ok(httparse::Status::Partial) => {
                    if !fill(&mut stream, &mut buf).await {
                        return;
                    }
                }
                Err(_) => return,
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
        buf.drain(..head_len);
        let lower = head.to_ascii_lowercase();
        let field = |name: &str| {
            lower
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}:")))
                .map(|value| value.trim().to_owned())
        };
        let mut body = Vec::new();
        if field("transfer-encoding").is_some_and(|value| value.ends_with("chunked")) {
            loop {
                let Some(size_line) = line(&mut stream, &mut buf).await else {
                    return;
                };
                let Ok(size) = usize::from_str_radix(&String::from_utf8_lossy(&size_line), 16)
                else {
                    return;
                };
                if size == 0 {
                    // Trailers, then the blank line.
                    while let Some(trailer) = line(&mut stream, &mut buf).await {
                        if trailer.is_empty() {
                            break;
                        }
                    }
                    break;
                }
                while buf.len() < size + 2 {
                    if !fill(&mut stream, &mut buf).await {
                        return;
                    }
                }
                body.extend_from_slice(&buf[..size]);
                buf.drain(..size + 2);
            }
        } else if let Some(length) = field("content-length") {
            let length: usize = length.parse().unwrap();
            while buf.len() < length {
                if !fill(&mut stream, &mut buf).await {
                    return;
                }
            }
            body = buf.drain(..length).collect();
        }
        let request_line = head.lines().next().unwrap_or_default().to_owned();
        log.lock().unwrap().push(Received {
            connection,
            head: head.clone(),
            body: body.clone(),
        });
        let response: Vec<u8> = if request_line.contains(" /te-and-cl ") {
            // Both framings: RFC 9112 has the chunking win.
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec()
        } else {
            let text = format!("{request_line} body={}", body.len());
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .into_bytes()
        };
        if stream.write_all(&response).await.is_err() {
            return;
        }
    }
}

// === A raw client ===

/// Sends `bytes` to `addr` on a fresh connection and reads until the
/// connection closes or stays quiet for `quiet`.
async fn raw_exchange(addr: SocketAddr, bytes: &[u8], quiet: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    while let Ok(Ok(n)) = tokio::time::timeout(quiet, stream.read(&mut chunk)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&chunk[..n]);
    }
    out
}

/// The responses in `bytes`, one line each: status code and body.
fn responses(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let mut fields = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut fields);
        let Ok(httparse::Status::Complete(head_len)) = response.parse(bytes) else {
            out.push(format!("unparsable: {:?}", String::from_utf8_lossy(bytes)));
            break;
        };
        let field = |name: &str| {
            response
                .headers
                .iter()
                .find(|field| field.name.eq_ignore_ascii_case(name))
                .map(|field| String::from_utf8_lossy(field.value).into_owned())
        };
        let code = response.code.unwrap();
        if field("transfer-encoding").is_some() {
            // De-chunk; the proxy's own responses are well formed.
            let mut rest = &bytes[head_len..];
            let mut body = Vec::new();
            while let Some(end) = rest.windows(2).position(|pair| pair == b"\r\n") {
                let size =
                    usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
                rest = &rest[end + 2..];
                if size == 0 {
                    rest = rest.get(2..).unwrap_or_default();
                    break;
                }
                body.extend_from_slice(&rest[..size]);
                rest = &rest[size + 2..];
            }
            out.push(format!(
                "{code} chunked {:?}",
                String::from_utf8_lossy(&body)
            ));
            bytes = rest;
            continue;
        }
        let length = field("content-length").map_or(0, |value| value.parse().unwrap());
        let end = (head_len + length).min(bytes.len());
        out.push(format!(
            "{code} {:?}",
            String::from_utf8_lossy(&bytes[head_len..end]).trim_end()
        ));
        bytes = &bytes[end..];
    }
    out
}

/// What the upstream received, rendered for a snapshot: the proxy's `Date`
/// free head as it came, and the body.
fn render_received(received: &[Received]) -> String {
    received
        .iter()
        .map(|request| {
            format!(
                "{}body {:?}\n",
                request.head.replace("\r\n", "⏎\n"),
                String::from_utf8_lossy(&request.body)
            )
        })
        .collect()
}

// === Framing ===

/// RFC 9112 §6–7 smuggling and desync cases through the proxy. For each:
/// what the client got, what the upstream received byte for byte, and that
/// two clients right after (one per proxy thread, so both pools) get their
/// own answers from a clean connection.
#[tokio::test]
async fn the_proxy_forwards_only_well_framed_requests_and_keeps_its_pool_clean() {
    let upstream = RawUpstream::start().await;
    let production = upstream.url();
    let app = TestApp::start_with(move |config| {
        config.upstreams.production.url = production.parse().unwrap();
        config.proxy.side_override = None;
    })
    .await;
    let smuggled = b"POST /_mode HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil";
    let mut smuggle = format!(
        "POST /first HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\nConnection: content-length\r\n\r\n",
        smuggled.len()
    )
    .into_bytes();
    smuggle.extend_from_slice(smuggled);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("Connection names Content-Length", smuggle),
        (
            "Connection names Transfer-Encoding and Host",
            b"POST /named HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: transfer-encoding, host, close\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "two different Content-Lengths",
            b"POST /two-lengths HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!".to_vec(),
        ),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /cl-te HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "Transfer-Encoding with chunked not last",
            b"POST /te-not-last HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "obfuscated Transfer-Encoding",
            b"POST /xchunked HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "space before the colon",
            b"POST /space HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "signed Content-Length",
            b"POST /signed HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello".to_vec(),
        ),
        (
            "invalid chunk size",
            b"POST /zz HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "signed chunk size",
            b"POST /plus HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "chunk extension",
            b"POST /ext HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n".to_vec(),
        ),
        (
            "bare LF in the chunked body",
            b"POST /bare-lf HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\n0\n\n".to_vec(),
        ),
        (
            "upgrade with a body",
            b"GET /upgrade-body HTTP/1.1\r\nHost: a\r\nUpgrade: foo\r\nConnection: upgrade\r\nContent-Length: 40\r\n\r\nZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZZ".to_vec(),
        ),
        (
            "two X-Forwarded-For lines",
            b"GET /xff HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.1.1.1\r\nX-Forwarded-For: 2.2.2.2\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "pipelined requests",
            b"GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET /three HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec(),
        ),
        (
            "an upstream answering with both framings",
            b"GET /te-and-cl HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec(),
        ),
    ];
    let mut report = String::new();
    for (index, (name, bytes)) in cases.iter().enumerate() {
        let answer = raw_exchange(app.proxy_addr, bytes, Duration::from_millis(500)).await;
        let received = upstream.take();
        report.push_str(&format!("## {name}\nclient: {:?}\n", responses(&answer)));
        report.push_str(&render_received(&received));
        // Two clients right after: each must get the answer to its own request.
        for follower in 0..2 {
            let path = format!("/after-{index}-{follower}");
            let answer = raw_exchange(
                app.proxy_addr,
                format!("GET {path} HTTP/1.1\r\nHost: v\r\nConnection: close\r\n\r\n").as_bytes(),
                Duration::from_secs(2),
            )
            .await;
            assert_eq!(
                responses(&answer),
                [format!("200 \"GET {path} HTTP/1.1 body=0\"")],
                "after {name:?}"
            );
            let received = upstream.take();
            assert_eq!(received.len(), 1, "after {name:?}: {received:?}");
        }
    }
    expect![[r###"
        ## Connection names Content-Length
        client: ["200 \"POST /first HTTP/1.1 body=56\""]
        POST /first HTTP/1.1⏎
        host: a⏎
        x-forwarded-host: a⏎
        x-forwarded-for: 127.0.0.1⏎
        x-forwarded-proto: http⏎
        content-length: 56⏎
        ⏎
        body "POST /_mode HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nevil"
        ## Connection names Transfer-Encoding and Host
        client: ["200 \"POST /named HTTP/1.1 body=5\""]
        POST /named HTTP/1.1⏎
        host: a⏎
        x-forwarded-for: 127.0.0.1⏎
        x-forwarded-proto: http⏎
        x-forwarded-host: a⏎
        transfer-encoding: chunked⏎
        ⏎
        body "hello"
        ## two different Content-Lengths
        client: ["400 \"\""]
        ## Content-Length with Transfer-Encoding
        client: ["200 \"POST /cl-te HTTP/1.1 body=5\""]
        POST /cl-te HTTP/1.1⏎
        host: a⏎
        x-forwarded-for: 127.0.0.1⏎
        x-forwarded-proto: http⏎
        x-forwarded-host: a⏎
        transfer-encoding: chunked⏎
        ⏎
        body "hello"
        ## Transfer-Encoding with chunked not last
        client: ["400 \"\""]
        ## obfuscated Transfer-Encoding
        client: ["400 \"\""]
        ## space before the colon
        client: ["400 \"\""]
        ## signed Content-Length
        client: ["400 \"\""]
        ## invalid chunk size
        client: ["400 \"malformed or incomplete request body\""]
        ## signed chunk size
        client: ["400 \"malformed or incomplete request body\""]
        ## chunk extension
        client: ["200 \"POST /ext HTTP/1.1 body=5\""]
        POST /ext HTTP/1.1⏎
        host: a⏎
        x-forwarded-for: 127.0.0.1⏎
        x-forwarded-proto: http⏎
        x-forwarded-host: a⏎
        transfer-encoding: chunked⏎
        ⏎
        body "hello"
        ## bare LF in the chunked body
        client: ["400 \"malformed or incomplete request body\""]
        ## upgrade with a body
        client: ["400 \"a request that upgrades the connection cannot carry a body\""]
        ## two X-Forwarded-For lines
        client: ["200 \"GET /xff HTTP/1.1 body=0\""]
        GET /xff HTTP/1.1⏎
        host: a⏎
        x-forwarded-for: 1.1.1.1, 2.2.2.2, 127.0.0.1⏎
        x-forwarded-proto: http⏎
        x-forwarded-host: a⏎
        ⏎
        body ""
        ## pipelined requests
        client: ["200 \"GET /one HTTP/1.1 body=0\"", "200 \"POST /two HTTP/1.1 body=3\"", "200 \"GET /three HTTP/1.1 body=0\""]
        GET /one HTTP/1.1⏎
        host: a⏎
        x-forwarded-for: 127.0.0.1⏎
        x-forwarded-proto: http⏎
        x-forwarded-host: a⏎
        ⏎
        body ""
        POST /two HTTP/1.1⏎
        host: a⏎
        x-forwarded-host: a⏎
        x-forwarded-for: 127.0.0.1⏎
        x-forwarded-proto: http⏎
        content-length: 3⏎
        ⏎
        body "abc"
        GET /three HTTP/1.1⏎
        host: a⏎
        x-forwarded-for: 127.0.0.1⏎
        x-forwarded-proto: http⏎
        x-forwarded-host: a⏎
        ⏎
        body ""
        ## an upstream answering with both framings
        client: ["200 chunked \"hello\""]
        GET /te-and-cl HTTP/1.1⏎
        host: a⏎
        x-forwarded-for: 127.0.0.1⏎
        x-forwarded-proto: http⏎
        x-forwarded-host: a⏎
        ⏎
        body ""
    "###]].assert_eq(&report);

    // None of it was the upstream's fault.
    let metrics = app
        .metrics_where(|metrics| metrics.production.last_1m.requests >= 32)
        .await;
    assert_eq!(metrics.production.last_1m.transport_errors.total(), 0);
    assert_eq!(metrics.production.last_1m.errors_5xx, 0);
}

#[tokio::test]
async fn an_upgrade_the_upstream_declines_does_not_return_its_connection_to_the_pool() {
    let upstream = RawUpstream::start().await;
    let production = upstream.url();
    let app = TestApp::start_with(move |config| {
        config.upstreams.production.url = production.parse().unwrap();
    })
    .await;
    let mut stream = TcpStream::connect(app.proxy_addr).await.unwrap();
    let mut next_connection = Vec::new();
    for (path, upgrade) in [("/plain", false), ("/declined", true), ("/after", false)] {
        let upgrade = if upgrade {
            "Upgrade: websocket\r\nConnection: upgrade\r\n"
        } else {
            ""
        };
        stream
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: a\r\n{upgrade}\r\n").as_bytes())
            .await
            .unwrap();
        let mut answer = vec![0u8; 4096];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(answer[..n].starts_with(b"HTTP/1.1 200"), "{path}");
        let received = upstream.take();
        next_connection.push(received[0].connection);
    }
    assert_eq!(
        next_connection[0], next_connection[1],
        "the plain request's connection was pooled and reused"
    );
    assert_ne!(
        next_connection[1], next_connection[2],
        "the declined upgrade's connection was closed, not pooled"
    );
}

// === Client faults never count against a side ===

/// Sends `head` and `first`, waits `pause`, then sends `rest` (or closes
/// the connection when `rest` is `None`); returns the status code, if any.
async fn upload(
    addr: SocketAddr,
    head: &str,
    first: &[u8],
    pause: Duration,
    rest: Option<&[u8]>,
) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(pause).await;
    match rest {
        Some(rest) => {
            let _ = stream.write_all(rest).await;
        }
        None => {
            let _ = stream.shutdown().await;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    std::str::from_utf8(answer.get(9..12)?).ok()?.parse().ok()
}

/// The `canary_requests_total` sample for `side` and `outcome` at `/metrics`.
async fn requests_total(app: &TestApp, side: &str, outcome: &str) -> u64 {
    let (_, _, text) = crate::support::http_get(&app.url("/metrics"), "text/plain").await;
    let wanted = format!("canary_requests_total{{side=\"{side}\",outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .map_or(0, |value| value.parse::<f64>().unwrap() as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sending_only_malformed_requests_leaves_a_healthy_rollout_progressing() {
    // The probe's defect 3: 40 healthy canary requests, then client faults,
    // once rolled back a healthy canary at a 50 % share.
    let canary_upstream = RawUpstream::start().await;
    let canary_url = canary_upstream.url();
    let app = TestApp::start_with(move |config| {
        config.upstreams.canary.url = canary_url.parse().unwrap();
        config.canary.analysis.min_requests = 20;
        config.proxy.upstream_response_timeout =
            canary_server::config::ConfigDuration(Duration::from_millis(300));
        config.proxy.client_idle_timeout =
            canary_server::config::ClientTimeout(Duration::from_millis(800));
        config.proxy.max_request_body = canary_server::config::ByteSize(1024);
    })
    .await;
    app.start_canary_at(50.0).await;
    let proxy = app.proxy_addr;
    let always = "Host: a\r\nX-Canary: always\r\n";
    for _ in 0..40 {
        let answer = raw_exchange(
            proxy,
            format!("GET / HTTP/1.1\r\n{always}Connection: close\r\n\r\n").as_bytes(),
            Duration::from_secs(2),
        )
        .await;
        assert_eq!(responses(&answer), ["200 \"GET / HTTP/1.1 body=0\""]);
    }

    let mut statuses = Vec::new();
    for _ in 0..15 {
        let answer = raw_exchange(
            proxy,
            format!("POST / HTTP/1.1\r\n{always}Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n").as_bytes(),
            Duration::from_secs(2),
        )
        .await;
        statuses.push(responses(&answer).join(" "));
    }
    for _ in 0..5 {
        // Gone after 10 of 100 bytes.
        let head = format!("POST / HTTP/1.1\r\n{always}Content-Length: 100\r\n\r\n");
        let status = upload(proxy, &head, &[b'a'; 10], Duration::from_millis(50), None).await;
        statuses.push(format!("aborted: {status:?}"));
    }
    for _ in 0..2 {
        // Stalls longer than the client idle timeout.
        let head = format!("POST / HTTP/1.1\r\n{always}Content-Length: 10\r\n\r\n");
        let status = upload(
            proxy,
            &head,
            b"12345",
            Duration::from_millis(1500),
            Some(b"67890"),
        )
        .await;
        statuses.push(format!("stalled: {status:?}"));
    }
    for _ in 0..3 {
        let answer = raw_exchange(
            proxy,
            format!("POST / HTTP/1.1\r\n{always}Content-Length: 2000\r\n\r\n").as_bytes(),
            Duration::from_secs(2),
        )
        .await;
        statuses.push(responses(&answer).join(" "));
        let answer = raw_exchange(
            proxy,
            format!("GET / HTTP/1.1\r\n{always}Upgrade: x\r\nConnection: upgrade\r\nContent-Length: 3\r\n\r\nabc").as_bytes(),
            Duration::from_secs(2),
        )
        .await;
        statuses.push(responses(&answer).join(" "));
    }
    statuses.sort();
    statuses.dedup();
    expect![[r#"
        400 "a request that upgrades the connection cannot carry a body"
        400 "malformed or incomplete request body"
        413 "request body too large"
        aborted: Some(400)
        stalled: Some(408)"#]]
    .assert_eq(&statuses.join("\n"));

    // A slow upload whose pauses are within the client idle timeout but
    // longer than the upstream response timeout is served: the upstream's
    // time only runs while it has something to do.
    let head = format!(
        "POST /slow-upload HTTP/1.1\r\n{always}Content-Length: 10\r\nConnection: close\r\n\r\n"
    );
    let status = upload(
        proxy,
        &head,
        b"12345",
        Duration::from_millis(600),
        Some(b"67890"),
    )
    .await;
    assert_eq!(status, Some(200));

    // Time for the recorder's tick, and for the controller to judge the
    // seconds that held them.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        requests_total(&app, "canary", "client_error").await,
        28,
        "15 malformed, 5 aborted, 2 stalled, 3 too large, 3 upgrades"
    );
    let state = app.controller.state.borrow().clone();
    assert_eq!(state.phase, Phase::Progressing, "{:?}", state.summary);
    let metrics = app
        .metrics_where(|metrics| metrics.canary.last_1m.requests >= 41)
        .await;
    assert_eq!(
        metrics.canary.last_1m.requests, 41,
        "only the served requests count"
    );
    assert_eq!(metrics.canary.last_1m.transport_errors.total(), 0);
    assert_eq!(metrics.canary.last_1m.error_rate, Some(0.0));
}

// === Queries the store cannot hold ===

#[tokio::test]
async fn out_of_range_cursors_are_a_bad_query_naming_the_parameter() {
    let app = TestApp::start().await;
    for (path, parameter) in [
        ("/admin/canary/audit?before=9223372036854775808", "before"),
        (
            "/admin/canary/metrics/history?side=canary&since=18446744073709551615",
            "since",
        ),
    ] {
        let (status, _, body) = crate::support::http_get(&app.url(path), "application/json").await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("bad_query"), "{body}");
        assert!(
            body.contains(&format!("{parameter}: must be at most 9223372036854775807")),
            "{body}"
        );
    }
}
