//! The proxy against a raw upstream scripted to send every framing of a
//! response (lengths, chunks, a close, heads without bodies): each relayed
//! to the client as it was meant, and only connections left clean reused.

use std::sync::Arc;

use axum::http::StatusCode;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::proxy::{client, get};
use crate::support::TestApp;

/// A raw HTTP/1.1 upstream that answers each request with bytes chosen by
/// its path, to reach framings a well-behaved server library never sends.
/// Counts the connections it accepted.
async fn scripted_upstream(
    answer: fn(&str) -> (&'static str, bool),
) -> (
    std::net::SocketAddr,
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::spawn(async move {
                let mut pending = Vec::new();
                loop {
                    let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                        let mut chunk = [0u8; 4096];
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&chunk[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                    pending.drain(..end + 4);
                    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
                    let (response, then_close) = answer(&path);
                    if stream.write_all(response.as_bytes()).await.is_err() || then_close {
                        return;
                    }
                }
            });
        }
    });
    (addr, accepted, task)
}

fn scripted_answer(path: &str) -> (&'static str, bool) {
    match path {
        "/chunked" => (
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n",
            false,
        ),
        "/until-close" => ("HTTP/1.0 200 OK\r\n\r\nread until the close", true),
        "/continue" => (
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nafter",
            false,
        ),
        "/no-content" => ("HTTP/1.1 204 No Content\r\n\r\n", false),
        // Answers, then closes without saying so: the pooled connection goes stale.
        "/then-close" => ("HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nfresh", true),
        "/truncated" => (
            "HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly this",
            true,
        ),
        "/garbage" => ("SSH-2.0-OpenSSH_9.2\r\n\r\n", true),
        // The same length said as a list, and on two lines (RFC 9110 §8.6).
        "/length-list" => (
            "HTTP/1.1 200 OK\r\ncontent-length: 5, 5\r\nx-said: a list\r\n\r\nhello",
            false,
        ),
        "/length-lines" => (
            "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 5\r\n\r\nhello",
            false,
        ),
        _ => ("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", false),
    }
}

#[tokio::test]
async fn every_upstream_framing_is_relayed_and_only_clean_connections_are_reused() {
    let (addr, accepted, _upstream) = scripted_upstream(scripted_answer).await;
    let app = TestApp::start_with(|config| {
        config.upstreams.production.url = format!("http://{addr}").parse().unwrap();
    })
    .await;
    let client = client();

    for (path, body) in [
        ("/chunked", "hello world"),
        ("/until-close", "read until the close"),
        ("/continue", "after"),
        ("/no-content", ""),
    ] {
        let seen = get(&client, &app.proxy_url(path), &[]).await;
        assert!(seen.status.is_success(), "{path}: {}", seen.status);
        assert_eq!(seen.body, body, "{path}");
    }

    // A length said twice reaches the client once, plainly, with the rest
    // of the head as the upstream wrote it.
    for path in ["/length-list", "/length-lines"] {
        let response = client
            .request(
                hyper::Request::get(app.proxy_url(path))
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
            .await
            .unwrap();
        let lengths: Vec<_> = response
            .headers()
            .get_all("content-length")
            .iter()
            .map(|value| value.to_str().unwrap().to_owned())
            .collect();
        assert_eq!(lengths, ["5"], "{path}");
        if path == "/length-list" {
            assert_eq!(response.headers()["x-said"], "a list");
        }
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello", "{path}");
    }

    // Keep-alive works: many requests, one more connection at most.
    let before = accepted.load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(get(&client, &app.proxy_url("/ok"), &[]).await.body, "ok");
    }
    let after = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        after - before <= 1,
        "{} connections for 20 requests",
        after - before
    );

    // An upstream that closes every connection after answering: each next
    // request finds its pooled connection stale and still gets through.
    for _ in 0..10 {
        let seen = get(&client, &app.proxy_url("/then-close"), &[]).await;
        assert_eq!(
            (seen.status, seen.body.as_ref()),
            (StatusCode::OK, &b"fresh"[..])
        );
    }

    // A body cut short is a reset of production; a head that is not HTTP a 502.
    // The client sees the cut: an incomplete response (or body), never a whole one.
    let truncated = client
        .request(
            hyper::Request::get(app.proxy_url("/truncated"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    if let Ok(response) = truncated {
        assert!(response.into_body().collect().await.is_err());
    }
    assert_eq!(
        get(&client, &app.proxy_url("/garbage"), &[]).await.status,
        StatusCode::BAD_GATEWAY
    );
    let metrics = app
        .metrics_where(|metrics| metrics.production.last_1m.requests >= 38)
        .await;
    let errors = &metrics.production.last_1m.transport_errors;
    assert_eq!((errors.reset, errors.other), (1, 1), "{errors:?}");
    assert_eq!(metrics.production.last_1m.requests, 38);
}
