//! Test support: the server on an ephemeral port and fake upstreams whose
//! behaviour can be switched while a test runs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use canary_server::adapters::clock::SystemClock;
use canary_server::config::Config;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An in-process HTTP service standing in for production or canary.
#[derive(Debug)]
pub(crate) struct FakeUpstream {
    pub(crate) addr: SocketAddr,
    health_status: Arc<AtomicU16>,
    task: JoinHandle<()>,
}

impl FakeUpstream {
    /// Starts a service whose `/healthz` answers 200 until told otherwise.
    pub(crate) async fn start() -> FakeUpstream {
        let health_status = Arc::new(AtomicU16::new(200));
        let app = Router::new()
            .route(
                "/healthz",
                get(|State(status): State<Arc<AtomicU16>>| async move {
                    StatusCode::from_u16(status.load(Ordering::SeqCst)).unwrap()
                }),
            )
            .with_state(Arc::clone(&health_status));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeUpstream {
            addr,
            health_status,
            task,
        }
    }

    /// Makes `/healthz` answer `status` from now on.
    pub(crate) fn set_health_status(&self, status: u16) {
        self.health_status.store(status, Ordering::SeqCst);
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A config for tests: fast health checks that decide on a single result.
pub(crate) fn test_config(production: &str, canary: &str, assets_dir: &Path) -> Config {
    let text = format!(
        r#"
server:
  assets_dir: "{assets}"
upstreams:
  production:
    url: "{production}"
    version: "v2.6.0"
    health_check: {{ path: /healthz, interval: 50ms, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
  canary:
    url: "{canary}"
    version: "v2.7.0"
    health_check: {{ path: /healthz, interval: 50ms, timeout: 500ms, healthy_threshold: 1, unhealthy_threshold: 1 }}
canary:
  auto_progression:
    enabled: true
    wait_time: "24h"
    thresholds: {{ max_latency: "1000ms", min_success_rate: 0.85, max_error_rate: 0.15 }}
  traffic_steps: [5, 25, 50, 100]
  safety_checks:
    - {{ name: "Total Latency", metric: "p95_latency_ms", threshold: 1000, alert_level: "critical" }}
"#,
        assets = assets_dir.display(),
    );
    Config::from_yaml(&text).unwrap()
}

/// A running server and what it talks to; everything stops when dropped.
#[derive(Debug)]
pub(crate) struct TestApp {
    pub(crate) addr: SocketAddr,
    pub(crate) production: FakeUpstream,
    #[allow(dead_code, reason = "kept running so the server has a canary to probe")]
    pub(crate) canary: FakeUpstream,
    pub(crate) assets: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    pub(crate) server: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestApp {
    /// Starts fake upstreams, a console build in a temp dir, and the server.
    pub(crate) async fn start() -> TestApp {
        TestApp::start_with(|_| {}).await
    }

    /// Like [`TestApp::start`], with the config adjusted by `adjust` first.
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        let production = FakeUpstream::start().await;
        let canary = FakeUpstream::start().await;
        let assets = tempfile::tempdir().unwrap();
        std::fs::write(
            assets.path().join("index.html"),
            "<!doctype html><title>console</title>",
        )
        .unwrap();
        std::fs::write(
            assets.path().join("canary-app-0123456789abcdef.js"),
            "export {}",
        )
        .unwrap();
        std::fs::write(assets.path().join("favicon.svg"), "<svg/>").unwrap();
        let mut config = test_config(&production.url(), &canary.url(), assets.path());
        adjust(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let server = tokio::spawn(canary_server::run(
            config,
            listener,
            Arc::new(SystemClock),
            async {
                let _ = shutdown_rx.await;
            },
        ));
        TestApp {
            addr,
            production,
            canary,
            assets,
            shutdown: Some(shutdown_tx),
            server: Some(server),
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Asks the server to shut down gracefully and waits until it has.
    pub(crate) async fn shut_down(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// A tiny HTTP/1.1 client for tests, on hyper's own client.
pub(crate) async fn http_get(
    url: &str,
    accept: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::get(url)
        .header("accept", accept)
        .body(Empty::new())
        .unwrap();
    send(client, request).await
}

/// Sends `request` and reads the whole response.
pub(crate) async fn send<B>(
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        B,
    >,
    request: hyper::Request<B>,
) -> (StatusCode, axum::http::HeaderMap, String)
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let response = client.request(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}

/// Polls `check` every 20 ms for up to 10 s; the deadline is generous because
/// CI machines are noisy, and the poll returns as soon as `check` holds.
pub(crate) async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
