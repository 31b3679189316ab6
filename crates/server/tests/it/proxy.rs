//! The traffic-splitting proxy with real upstreams on 127.0.0.1:0.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use canary_server::config::{ByteSize, ConfigDuration, HeaderName, StickinessMode};
use canary_shared::{MetricsSnapshot, Side};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use sha2::Digest as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{TestApp, refusing_address, resetting_upstream};

pub(crate) type TestClient = Client<HttpConnector, Full<Bytes>>;

pub(crate) fn client() -> TestClient {
    Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(64)
        .build_http()
}

/// What one request through the proxy saw.
#[derive(Debug)]
pub(crate) struct Seen {
    pub(crate) status: StatusCode,
    pub(crate) upstream: Option<String>,
    pub(crate) set_cookie: Option<String>,
    pub(crate) body: Bytes,
}

pub(crate) async fn get(client: &TestClient, url: &str, headers: &[(&str, &str)]) -> Seen {
    let mut request = hyper::Request::get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let upstream = response
        .headers()
        .get("x-upstream")
        .map(|v| v.to_str().unwrap().to_owned());
    let set_cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.into_body().collect().await.unwrap().to_bytes();
    Seen {
        status,
        upstream,
        set_cookie,
        body,
    }
}

/// Sends `n` cookie-less GETs, 32 at a time, and counts answers per upstream.
async fn count_sides(app: &TestApp, n: usize) -> HashMap<String, usize> {
    let client = client();
    let url = app.proxy_url("/work");
    let mut counts = HashMap::new();
    let mut pending = futures_util::stream::iter(0..n)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            async move { get(&client, &url, &[]).await }
        })
        .buffer_unordered(32);
    while let Some(seen) = pending.next().await {
        assert_eq!(seen.status, StatusCode::OK);
        *counts.entry(seen.upstream.unwrap()).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_observed_split_matches_the_share_within_binomial_bounds() {
    let app = TestApp::start().await;
    for percent in [5.0, 25.0, 50.0] {
        app.set_share(percent).await;
        let n = 10_000;
        let counts = count_sides(&app, n).await;
        let canary = *counts.get("canary").unwrap_or(&0) as f64;
        let p = percent / 100.0;
        let mean = n as f64 * p;
        // 4 standard deviations, two-sided: a fair split fails one of the
        // three shares about once in 5,000 runs (3.29 failed one in 350),
        // while a bias of one point at 5 % (100 of 10,000) is 4.6 out.
        let margin = 4.0 * (n as f64 * p * (1.0 - p)).sqrt();
        assert!(
            (canary - mean).abs() <= margin,
            "at {percent} %: {canary} of {n} went to the canary, expected {mean} ± {margin:.0}"
        );
    }
    app.set_share(0.0).await;
    assert_eq!(
        count_sides(&app, 1000).await.get("canary"),
        None,
        "at 0 % nothing reaches the canary"
    );
    app.set_share(100.0).await;
    assert_eq!(
        count_sides(&app, 1000).await.get("production"),
        None,
        "at 100 % everything does"
    );
}

#[tokio::test]
async fn a_cookie_keeps_clients_on_their_side_as_the_share_moves() {
    let app = TestApp::start().await;
    app.set_share(25.0).await;
    let client = client();
    let url = app.proxy_url("/page");
    let mut clients = Vec::new();
    for _ in 0..400 {
        let first = get(&client, &url, &[]).await;
        let cookie = first.set_cookie.expect("a new client gets a cookie");
        let cookie = cookie.split(';').next().unwrap().to_owned();
        clients.push((cookie, first.upstream.unwrap()));
    }
    let on_canary = clients.iter().filter(|(_, side)| side == "canary").count();
    assert!(
        (50..=150).contains(&on_canary),
        "{on_canary} of 400 at 25 %"
    );
    for (cookie, side) in &clients {
        let again = get(&client, &url, &[("cookie", cookie)]).await;
        assert_eq!(
            again.upstream.as_deref(),
            Some(side.as_str()),
            "same share, same side"
        );
        assert_eq!(again.set_cookie, None, "a known client keeps its cookie");
    }
    app.set_share(50.0).await;
    for (cookie, side) in &clients {
        if side == "canary" {
            let seen = get(&client, &url, &[("cookie", cookie)]).await;
            assert_eq!(
                seen.upstream.as_deref(),
                Some("canary"),
                "raising the share keeps canary clients"
            );
        }
    }
    app.set_share(10.0).await;
    let mut moved_back = 0;
    for (cookie, side) in &clients {
        let seen = get(&client, &url, &[("cookie", cookie)]).await;
        if side == "production" {
            assert_eq!(
                seen.upstream.as_deref(),
                Some("production"),
                "lowering never sends production clients over"
            );
        } else if seen.upstream.as_deref() == Some("production") {
            moved_back += 1;
        }
    }
    assert!(
        moved_back > 0,
        "lowering the share moves the excess back to production"
    );
}

#[tokio::test]
async fn a_header_hash_keeps_api_clients_sticky() {
    let app = TestApp::start_with(|config| {
        config.proxy.stickiness.mode = StickinessMode::Header;
        config.proxy.stickiness.header = HeaderName("x-user-id".to_owned());
    })
    .await;
    app.set_share(50.0).await;
    let client = client();
    let url = app.proxy_url("/api");
    let mut sides = std::collections::HashSet::new();
    for user in 0..40 {
        let user = format!("user-{user}");
        let first = get(&client, &url, &[("x-user-id", &user)]).await;
        assert_eq!(first.set_cookie, None, "header mode sets no cookie");
        for _ in 0..5 {
            let again = get(&client, &url, &[("x-user-id", &user)]).await;
            assert_eq!(again.upstream, first.upstream, "{user} changed sides");
        }
        sides.insert(first.upstream.unwrap());
    }
    assert_eq!(sides.len(), 2, "users spread over both sides at 50 %");
}

#[tokio::test]
async fn the_override_header_picks_a_side_only_for_trusted_clients_and_never_a_canary_at_zero() {
    let app = TestApp::start().await;
    let http = client();
    let url = app.proxy_url("/x");
    assert_eq!(
        get(&http, &url, &[("x-canary", "always")])
            .await
            .upstream
            .as_deref(),
        Some("production"),
        "no rollout: the canary's share is 0 %, and 0 % means no request at all"
    );
    app.start_canary().await;
    assert_eq!(
        get(&http, &url, &[("x-canary", "always")])
            .await
            .upstream
            .as_deref(),
        Some("canary")
    );
    app.set_share(100.0).await;
    assert_eq!(
        get(&http, &url, &[("x-canary", "never")])
            .await
            .upstream
            .as_deref(),
        Some("production")
    );

    app.stop_canary("test", "test").await;
    assert_eq!(
        on_canary(&app, &[("x-canary", "always")], 20).await,
        0,
        "after an emergency stop nothing reaches the canary"
    );

    // Off, or from an untrusted network without the token, the header is
    // ignored: about 5 of 100 requests reach the canary, as the share says.
    let untrusted: canary_server::config::IpNetwork = "10.0.0.0/8".to_owned().try_into().unwrap();
    let token_digest =
        canary_server::config::TokenDigest(sha2::Sha256::digest(b"tester-token-0123456789").into());
    for side_override in [
        None,
        Some(canary_server::config::OverrideConfig {
            header: HeaderName("x-canary".to_owned()),
            trusted_networks: vec![untrusted],
            token_sha256: Some(token_digest),
            token_header: HeaderName("x-canary-token".to_owned()),
        }),
    ] {
        let with_token = side_override.is_some();
        let app =
            TestApp::start_with(move |config| config.proxy.side_override = side_override).await;
        app.start_canary().await;
        let forced = on_canary(&app, &[("x-canary", "always")], 100).await;
        assert!(forced < 30, "{forced} of 100 forced onto the canary");
        if with_token {
            let wrong_token = [
                ("x-canary", "always"),
                ("x-canary-token", "tester-token-0123456789x"),
            ];
            let wrong_on_canary = on_canary(&app, &wrong_token, 50).await;
            assert!(
                wrong_on_canary < 20,
                "a wrong token forced {wrong_on_canary} of 50"
            );
            for _ in 0..20 {
                let seen = get(
                    &http,
                    &app.proxy_url("/headers"),
                    &[
                        ("x-canary", "always"),
                        ("x-canary-token", "tester-token-0123456789"),
                    ],
                )
                .await;
                assert_eq!(
                    seen.upstream.as_deref(),
                    Some("canary"),
                    "the token lets a tester through"
                );
                let headers: HashMap<String, String> = serde_json::from_slice(&seen.body).unwrap();
                assert!(
                    !headers.contains_key("x-canary-token"),
                    "the token never goes upstream"
                );
            }
        }
    }
}

/// How many of `n` requests with `headers` reached the canary.
async fn on_canary(app: &TestApp, headers: &[(&str, &str)], n: usize) -> usize {
    let http = client();
    let mut on_canary = 0;
    for _ in 0..n {
        let seen = get(&http, &app.proxy_url("/x"), headers).await;
        on_canary += usize::from(seen.upstream.as_deref() == Some("canary"));
    }
    on_canary
}

/// The canary's 1-minute window once it holds `n` requests.
async fn canary_window(app: &TestApp, n: u64) -> MetricsSnapshot {
    app.metrics_where(|metrics| metrics.canary.last_1m.requests >= n)
        .await
}

#[tokio::test]
async fn failures_count_against_the_side_that_failed() {
    // 5xx from the canary.
    let app = TestApp::start().await;
    app.start_canary().await;
    app.canary.set_status(503);
    let client = client();
    let seen = get(&client, &app.proxy_url("/x"), &[("x-canary", "always")]).await;
    assert_eq!(seen.status, StatusCode::SERVICE_UNAVAILABLE);
    let metrics = canary_window(&app, 1).await;
    assert_eq!(metrics.canary.last_1m.errors_5xx, 1);
    assert_eq!(metrics.production.last_1m.requests, 0);

    // A canary that times out: 504, counted as a timeout.
    let app = TestApp::start_with(|config| {
        config.proxy.upstream_response_timeout = ConfigDuration(Duration::from_millis(300));
    })
    .await;
    app.start_canary().await;
    // Fast answers first, so the slow request goes out on a pooled connection
    // whose response timer has served other requests.
    for _ in 0..3 {
        let seen = get(&client, &app.proxy_url("/fast"), &[("x-canary", "always")]).await;
        assert_eq!(seen.status, StatusCode::OK);
    }
    app.canary.set_delay_ms(3_000);
    let seen = get(&client, &app.proxy_url("/slow"), &[("x-canary", "always")]).await;
    assert_eq!(seen.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(
        canary_window(&app, 4)
            .await
            .canary
            .last_1m
            .transport_errors
            .timeout,
        1
    );

    // A canary that resets the connection: 502, counted as a reset.
    let (reset_addr, _resetter) = resetting_upstream().await;
    let app = TestApp::start_with(|config| {
        config.upstreams.canary.url = format!("http://{reset_addr}").parse().unwrap();
        TestApp::pass_health_checks_blindly(config);
    })
    .await;
    app.start_canary().await;
    let seen = get(&client, &app.proxy_url("/x"), &[("x-canary", "always")]).await;
    assert_eq!(seen.status, StatusCode::BAD_GATEWAY);
    assert_eq!(
        canary_window(&app, 1)
            .await
            .canary
            .last_1m
            .transport_errors
            .reset,
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_side_at_its_in_flight_limit_answers_503_at_once() {
    let app = TestApp::start_with(|config| config.proxy.max_in_flight_per_side = 2).await;
    app.start_canary().await;
    app.canary.set_delay_ms(1_500);
    let client = client();
    let url = app.proxy_url("/slow");
    let requests = (0..6).map(|_| {
        let client = client.clone();
        let url = url.clone();
        tokio::spawn(async move { get(&client, &url, &[("x-canary", "always")]).await.status })
    });
    let statuses = futures_util::future::join_all(requests).await;
    let statuses: Vec<StatusCode> = statuses.into_iter().map(Result::unwrap).collect();
    let served = statuses
        .iter()
        .filter(|status| **status == StatusCode::OK)
        .count();
    let refused = statuses
        .iter()
        .filter(|status| **status == StatusCode::SERVICE_UNAVAILABLE)
        .count();
    assert_eq!((served, refused), (2, 4), "{statuses:?}");
    let metrics = canary_window(&app, 6).await;
    assert_eq!(metrics.canary.last_1m.transport_errors.overloaded, 4);
    // Production has its own limit and is not affected.
    assert_eq!(
        get(&client, &app.proxy_url("/x"), &[]).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_refused_canary_is_counted_and_body_less_requests_fall_back_to_production() {
    let (closed, _held) = refusing_address();
    let app = TestApp::start_with(|config| {
        config.upstreams.canary.url = format!("http://{closed}").parse().unwrap();
        TestApp::pass_health_checks_blindly(config);
    })
    .await;
    app.start_canary().await;
    let client = client();
    let seen = get(&client, &app.proxy_url("/x"), &[("x-canary", "always")]).await;
    assert_eq!(
        seen.status,
        StatusCode::OK,
        "the GET was retried on production"
    );
    assert_eq!(seen.upstream.as_deref(), Some("production"));

    // A request with a body is never retried.
    let request = hyper::Request::post(app.proxy_url("/echo"))
        .header("x-canary", "always")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);

    let metrics = app
        .metrics_where(|m| m.canary.last_1m.requests >= 2 && m.production.last_1m.requests >= 1)
        .await;
    assert_eq!(
        metrics.canary.last_1m.transport_errors.refused, 2,
        "both refusals count against the canary"
    );
    assert_eq!(metrics.production.last_1m.requests, 1);
    assert_eq!(metrics.production.last_1m.error_rate, Some(0.0));

    let app = TestApp::start_with(|config| {
        config.upstreams.canary.url = format!("http://{closed}").parse().unwrap();
        config.proxy.retry_refused_canary = false;
        TestApp::pass_health_checks_blindly(config);
    })
    .await;
    app.start_canary().await;
    let seen = get(&client, &app.proxy_url("/x"), &[("x-canary", "always")]).await;
    assert_eq!(
        seen.status,
        StatusCode::BAD_GATEWAY,
        "without retry the refusal reaches the client"
    );
}

#[tokio::test]
async fn large_bodies_stream_both_ways_and_oversized_ones_are_refused() {
    let app =
        TestApp::start_with(|config| config.proxy.max_request_body = ByteSize(64 << 20)).await;
    let client = client();

    // 24 MiB up and back, sent in chunks without a length.
    let chunk = Bytes::from(vec![7u8; 256 * 1024]);
    let stream = futures_util::stream::iter(
        (0..96).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))),
    );
    let streaming_client: Client<HttpConnector, StreamBody<_>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::post(app.proxy_url("/echo"))
        .body(StreamBody::new(stream))
        .unwrap();
    let response = streaming_client.request(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let echoed = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(echoed.len(), 24 << 20);
    assert!(echoed.iter().all(|&byte| byte == 7));

    let downloaded = get(&client, &app.proxy_url("/bytes/33554432"), &[]).await;
    assert_eq!(downloaded.body.len(), 32 << 20);

    // Over the limit: refused by its declared length, or when the stream passes it.
    let app = TestApp::start_with(|config| config.proxy.max_request_body = ByteSize(1024)).await;
    let request = hyper::Request::post(app.proxy_url("/echo"))
        .body(Full::new(Bytes::from(vec![0u8; 4096])))
        .unwrap();
    assert_eq!(
        client.request(request).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![1u8; 512])))),
    );
    let streaming_client: Client<HttpConnector, StreamBody<_>> =
        Client::builder(TokioExecutor::new()).build_http();
    let request = hyper::Request::post(app.proxy_url("/echo"))
        .body(StreamBody::new(chunks))
        .unwrap();
    assert_eq!(
        streaming_client.request(request).await.unwrap().status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
}

#[tokio::test]
async fn hop_by_hop_headers_are_dropped_and_forwarding_headers_set() {
    let app = TestApp::start().await;
    let seen = get(
        &client(),
        &app.proxy_url("/headers"),
        &[
            ("connection", "x-secret-hop"),
            ("x-secret-hop", "1"),
            ("x-kept", "yes"),
            ("host", "shop.example"),
        ],
    )
    .await;
    let headers: HashMap<String, String> = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(headers.get("x-kept").map(String::as_str), Some("yes"));
    assert!(
        !headers.contains_key("x-secret-hop"),
        "a header named in Connection is hop-by-hop"
    );
    assert_eq!(
        headers.get("x-forwarded-for").map(String::as_str),
        Some("127.0.0.1")
    );
    assert_eq!(
        headers.get("x-forwarded-proto").map(String::as_str),
        Some("http")
    );
    assert_eq!(
        headers.get("x-forwarded-host").map(String::as_str),
        Some("shop.example")
    );
    assert_eq!(
        headers.get("host").map(String::as_str),
        Some("shop.example"),
        "Host is preserved by default"
    );

    let app = TestApp::start_with(|config| {
        config.proxy.host_header = canary_server::config::HostHeader::Upstream
    })
    .await;
    let seen = get(
        &client(),
        &app.proxy_url("/headers"),
        &[("host", "shop.example")],
    )
    .await;
    let headers: HashMap<String, String> = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(headers.get("host"), Some(&app.production.addr.to_string()));
}

#[tokio::test]
async fn a_websocket_passes_through() {
    let app = TestApp::start().await;
    let url = format!("ws://{}/ws", app.proxy_addr);
    let (mut socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.headers()["x-upstream"], "production");
    socket
        .send(tokio_tungstenite::tungstenite::Message::Text("hi".into()))
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), socket.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply.into_text().unwrap().as_str(), "echo: hi");
}

#[tokio::test]
async fn a_client_that_stalls_mid_request_is_disconnected() {
    let app = TestApp::start().await;
    let mut stream = tokio::net::TcpStream::connect(app.proxy_addr)
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Half")
        .await
        .unwrap();
    // The header timeout is 300 ms in the test config; allow far more for a busy machine.
    let mut buffer = Vec::new();
    // Either a clean close or a reset ends the read; only a still-open connection times out.
    let closed =
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buffer)).await;
    assert!(closed.is_ok(), "the proxy kept a stalled client connected");
}

#[tokio::test]
async fn an_idle_keep_alive_connection_outlives_the_header_timeout() {
    let app = TestApp::start().await;
    let mut stream = tokio::net::TcpStream::connect(app.proxy_addr)
        .await
        .unwrap();
    for _ in 0..2 {
        stream
            .write_all(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut response = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut response))
            .await
            .unwrap()
            .unwrap();
        assert!(
            response[..n].starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&response[..n])
        );
        // Longer than the 300 ms header timeout, far shorter than the idle timeout.
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_the_share_under_load_causes_no_errors() {
    let app = Arc::new(TestApp::start().await);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let app = Arc::clone(&app);
        let stop = Arc::clone(&stop);
        workers.push(tokio::spawn(async move {
            let client = client();
            let url = app.proxy_url("/load");
            let (mut ok, mut failed) = (0u64, 0u64);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match client
                    .request(
                        hyper::Request::get(&url)
                            .body(Full::new(Bytes::new()))
                            .unwrap(),
                    )
                    .await
                {
                    Ok(response) if response.status() == StatusCode::OK => {
                        let _ = response.into_body().collect().await.unwrap();
                        ok += 1;
                    }
                    _ => failed += 1,
                }
            }
            (ok, failed)
        }));
    }
    for percent in [5.0, 25.0, 50.0, 100.0, 0.0, 50.0, 0.0] {
        app.set_share(percent).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut ok, mut failed) = (0, 0);
    for worker in workers {
        let (worker_ok, worker_failed) = worker.await.unwrap();
        ok += worker_ok;
        failed += worker_failed;
    }
    assert!(ok > 100, "too little load to mean anything: {ok}");
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed while the share moved",
        ok + failed
    );
    let metrics = app
        .metrics_where(|m| m.production.last_1m.requests + m.canary.last_1m.requests >= ok)
        .await;
    assert_eq!(
        metrics.production.last_1m.requests + metrics.canary.last_1m.requests,
        ok,
        "every request was recorded once"
    );
    assert!(metrics.canary.last_1m.requests > 0);
}

#[tokio::test]
async fn the_cards_show_what_the_proxy_measured() {
    let app = TestApp::start().await;
    app.set_share(50.0).await;
    let counts = count_sides(&app, 200).await;
    let mut state = app.controller.state.clone();
    let state = tokio::time::timeout(
        Duration::from_secs(15),
        state.wait_for(|state| state.production.request_count + state.canary.request_count == 200),
    )
    .await
    .expect("the state never showed the 200 requests")
    .unwrap()
    .clone();
    assert_eq!(
        state.service(Side::Canary).request_count as usize,
        counts["canary"]
    );
    assert_eq!(
        state.service(Side::Production).request_count as usize,
        counts["production"]
    );
    assert_eq!(state.canary.success_rate, Some(1.0));
    assert!(state.canary.p95_latency_ms.is_some());
    assert_eq!(state.traffic.canary().percent(), 50.0);

    let (code, _, body) =
        crate::support::http_get(&app.url("/admin/canary/metrics"), "application/json").await;
    assert_eq!(code, StatusCode::OK);
    let metrics: MetricsSnapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(metrics.canary.last_1m.requests as usize, counts["canary"]);
    assert!(!metrics.canary.series.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_requests_in_flight_finish() {
    let mut app = TestApp::start().await;
    app.production.set_delay_ms(700);
    let url = app.proxy_url("/slow");
    let pending = tokio::spawn(async move { get(&client(), &url, &[]).await });
    crate::support::eventually("the request to reach production", async || {
        (app.production.in_progress() == 1).then_some(())
    })
    .await;
    app.shut_down().await;
    let seen = pending.await.unwrap();
    assert_eq!(
        seen.status,
        StatusCode::OK,
        "a request in flight at shutdown completes"
    );
    assert_eq!(seen.upstream.as_deref(), Some("production"));
    let refused = tokio::net::TcpStream::connect(app.proxy_addr).await;
    assert!(refused.is_err(), "the proxy no longer accepts connections");
}
