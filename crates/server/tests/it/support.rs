//! Test support: the server on an ephemeral port and fake upstreams whose
//! behaviour can be switched while a test runs.

mod processes;
pub(crate) use processes::{ended, pid_written_to};

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use canary_server::Listeners;
use canary_server::adapters::clock::SystemClock;
use canary_server::config::Config;
use canary_server::controller::ControllerHandle;
use canary_shared::{CanaryShare, CanaryState, Command, MetricsSnapshot, Phase, StartRequest};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// An in-process HTTP service standing in for production or canary.
///
/// Every answer carries `x-upstream: <name>`. Routes: `/healthz` (status
/// switchable), `/echo` (returns the request body, streamed), `/headers`
/// (the request headers as JSON), `/bytes/{n}` (n bytes, streamed), `/ws`
/// (WebSocket echo), and anything else answers with the switchable status
/// after the switchable delay.
#[derive(Debug)]
pub(crate) struct FakeUpstream {
    pub(crate) addr: SocketAddr,
    behaviour: Arc<Behaviour>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Behaviour {
    name: &'static str,
    health_status: AtomicU16,
    status: AtomicU16,
    delay_ms: AtomicU64,
    /// Ordinary requests being answered right now.
    in_progress: AtomicU64,
}

impl FakeUpstream {
    /// Starts a service that names itself `name` in `x-upstream`.
    pub(crate) async fn named(name: &'static str) -> FakeUpstream {
        use axum::body::Body;
        use axum::extract::Path;
        use axum::extract::ws::{Message, WebSocketUpgrade};
        use axum::http::HeaderMap;
        use axum::response::IntoResponse;

        let behaviour = Arc::new(Behaviour {
            name,
            health_status: AtomicU16::new(200),
            status: AtomicU16::new(200),
            delay_ms: AtomicU64::new(0),
            in_progress: AtomicU64::new(0),
        });
        let app = Router::new()
            .route(
                "/healthz",
                get(|State(behaviour): State<Arc<Behaviour>>| async move {
                    StatusCode::from_u16(behaviour.health_status.load(Ordering::SeqCst)).unwrap()
                }),
            )
            .route(
                "/echo",
                axum::routing::post(|body: Body| async move {
                    Body::from_stream(body.into_data_stream())
                }),
            )
            .route(
                "/headers",
                get(|headers: HeaderMap| async move {
                    let map: std::collections::BTreeMap<String, String> = headers
                        .iter()
                        .map(|(name, value)| {
                            (
                                name.to_string(),
                                value.to_str().unwrap_or_default().to_owned(),
                            )
                        })
                        .collect();
                    axum::Json(map)
                }),
            )
            .route(
                "/bytes/{n}",
                get(|Path(n): Path<usize>| async move {
                    let chunk = hyper::body::Bytes::from(vec![b'x'; 64 * 1024]);
                    let chunks = n.div_ceil(chunk.len());
                    let stream = futures_util::stream::iter((0..chunks).map(move |index| {
                        let len = chunk.len().min(n - index * chunk.len());
                        Ok::<_, std::io::Error>(chunk.slice(..len))
                    }));
                    Body::from_stream(stream)
                }),
            )
            .route(
                "/ws",
                get(|ws: WebSocketUpgrade| async move {
                    ws.on_upgrade(|mut socket| async move {
                        while let Some(Ok(message)) = socket.recv().await {
                            if let Message::Text(text) = message {
                                let _ = socket
                                    .send(Message::Text(format!("echo: {text}").into()))
                                    .await;
                            }
                        }
                    })
                }),
            )
            .fallback(|State(behaviour): State<Arc<Behaviour>>| async move {
                behaviour.in_progress.fetch_add(1, Ordering::SeqCst);
                let delay = behaviour.delay_ms.load(Ordering::SeqCst);
                if delay > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
                }
                behaviour.in_progress.fetch_sub(1, Ordering::SeqCst);
                let status = StatusCode::from_u16(behaviour.status.load(Ordering::SeqCst)).unwrap();
                (status, behaviour.name).into_response()
            })
            .layer(axum::middleware::map_response_with_state(
                Arc::clone(&behaviour),
                |State(behaviour): State<Arc<Behaviour>>,
                 mut response: axum::response::Response| async move {
                    response
                        .headers_mut()
                        .insert("x-upstream", behaviour.name.parse().unwrap());
                    response
                },
            ))
            .with_state(Arc::clone(&behaviour));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeUpstream {
            addr,
            behaviour,
            task,
        }
    }

    /// Makes `/healthz` answer `status` from now on.
    pub(crate) fn set_health_status(&self, status: u16) {
        self.behaviour.health_status.store(status, Ordering::SeqCst);
    }

    /// Makes ordinary requests answer `status` from now on.
    pub(crate) fn set_status(&self, status: u16) {
        self.behaviour.status.store(status, Ordering::SeqCst);
    }

    /// Makes ordinary requests wait `delay_ms` before answering.
    pub(crate) fn set_delay_ms(&self, delay_ms: u64) {
        self.behaviour.delay_ms.store(delay_ms, Ordering::SeqCst);
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Ordinary requests being answered right now.
    pub(crate) fn in_progress(&self) -> u64 {
        self.behaviour.in_progress.load(Ordering::SeqCst)
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP service that resets every connection once the request arrived.
pub(crate) async fn resetting_upstream() -> (SocketAddr, JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buffer = [0u8; 1024];
                let _ = stream.read(&mut buffer).await;
                // Linger zero turns the close into a TCP reset (and does not block).
                #[allow(deprecated, reason = "a zero linger never blocks")]
                let _ = stream.set_linger(Some(std::time::Duration::ZERO));
                drop(stream);
            });
        }
    });
    (addr, task)
}

/// A loopback address that refuses connections for as long as the returned
/// socket lives: the socket holds the port (bound, never listening), so no
/// other test's server can take it, and the kernel refuses connections to it.
pub(crate) fn refusing_address() -> (SocketAddr, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    (socket.local_addr().unwrap(), socket)
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
proxy:
  override: {{ trusted_networks: ["127.0.0.0/8"] }}
  client_header_timeout: 300ms
  upstream_connect_timeout: 1s
  upstream_response_timeout: 5s
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
    pub(crate) proxy_addr: SocketAddr,
    pub(crate) production: FakeUpstream,
    pub(crate) canary: FakeUpstream,
    pub(crate) assets: tempfile::TempDir,
    /// The server's data directory (store and lock), removed on drop.
    #[allow(
        dead_code,
        reason = "held so the directory lives as long as the server"
    )]
    pub(crate) data: tempfile::TempDir,
    pub(crate) controller: ControllerHandle,
    shutdown: Option<oneshot::Sender<()>>,
    pub(crate) server: Option<JoinHandle<std::io::Result<()>>>,
    /// The config it runs with, for a restart.
    pub(crate) config: Config,
}

impl TestApp {
    /// Starts fake upstreams, a console build in a temp dir, and the server.
    pub(crate) async fn start() -> TestApp {
        TestApp::start_with(|_| {}).await
    }

    /// Like [`TestApp::start`], with the config adjusted by `adjust` first.
    pub(crate) async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        TestApp::start_with_clock(adjust, Arc::new(SystemClock)).await
    }

    /// Like [`TestApp::start_with`], with `clock` as the server's wall clock.
    pub(crate) async fn start_with_clock(
        adjust: impl FnOnce(&mut Config),
        clock: Arc<dyn canary_server::ports::Clock>,
    ) -> TestApp {
        let production = FakeUpstream::named("production").await;
        let canary = FakeUpstream::named("canary").await;
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
        let data = tempfile::tempdir().unwrap();
        let mut config = test_config(&production.url(), &canary.url(), assets.path());
        config.server.data_dir = data.path().to_owned();
        adjust(&mut config);
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = admin.local_addr().unwrap();
        let proxy_addr = proxy.local_addr().unwrap();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        let (controller, server) = canary_server::start(
            config.clone(),
            Listeners {
                admin,
                proxy: Some(proxy),
            },
            clock,
            async {
                let _ = shutdown_rx.await;
            },
        )
        .expect("the server starts");
        TestApp {
            addr,
            proxy_addr,
            production,
            canary,
            assets,
            data,
            controller,
            shutdown: Some(shutdown_tx),
            server: Some(server),
            config,
        }
    }

    /// Shuts the server down gracefully and starts it again on the same
    /// store, upstreams and config (on new addresses).
    pub(crate) async fn restart(&mut self) {
        self.shut_down().await;
        let admin = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        self.addr = admin.local_addr().unwrap();
        self.proxy_addr = proxy.local_addr().unwrap();
        let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
        // The stopped server's last tasks (the console-session writer) let go
        // of the store a moment after it returned; a process that exits has
        // no such moment, so only an in-process restart waits for it.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        let lock = self.config.server.data_dir.join("canary.lock");
        while tokio::time::Instant::now() < deadline {
            let free = std::fs::File::open(&lock).is_ok_and(|file| file.try_lock().is_ok());
            if free {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (controller, server) = canary_server::start(
            self.config.clone(),
            Listeners {
                admin,
                proxy: Some(proxy),
            },
            Arc::new(SystemClock),
            async {
                let _ = shutdown_rx.await;
            },
        )
        .expect("the server starts again");
        self.controller = controller;
        self.shutdown = Some(shutdown_tx);
        self.server = Some(server);
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn proxy_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy_addr)
    }

    /// Starts a canary at 5 % whatever the canary's health: for tests of a
    /// canary that refuses or resets connections (the health check is a
    /// hook that always passes, and no probe runs).
    pub(crate) fn pass_health_checks_blindly(config: &mut Config) {
        config.hooks.health_check = Some(canary_server::config::HookConfig {
            command: canary_server::config::HookCommand(vec!["true".to_owned()]),
            timeout: canary_server::config::ConfigDuration(std::time::Duration::from_secs(10)),
        });
    }

    /// Starts a canary at 5 % (no hooks are configured, so it deploys at
    /// once and passes the health check on the fake canary's `/healthz`) and
    /// waits until it progresses.
    pub(crate) async fn start_canary(&self) {
        self.start_canary_at(5.0).await;
    }

    /// Emergency stop, as `actor` with `reason`.
    pub(crate) async fn stop_canary(&self, actor: &str, reason: &str) {
        let stop = Command::Stop {
            reason: reason.to_owned(),
        };
        self.controller
            .command(actor.to_owned(), stop, None)
            .await
            .unwrap();
    }

    /// Like [`TestApp::start_canary`], at `percent`.
    pub(crate) async fn start_canary_at(&self, percent: f64) {
        self.begin_canary_at(percent).await;
        self.wait_for_phase(Phase::Progressing).await;
    }

    /// Starts v2.7.0 with `percent` as its starting share, without waiting
    /// for it to get there.
    pub(crate) async fn begin_canary_at(&self, percent: f64) {
        let start = Command::Start(StartRequest {
            image_tag: "v2.7.0".to_owned(),
            traffic_percent: CanaryShare::from_percent(percent).unwrap(),
        });
        self.controller
            .command("test".to_owned(), start, None)
            .await
            .unwrap();
    }

    /// Waits until the deployment reaches `phase`.
    pub(crate) async fn wait_for_phase(&self, phase: Phase) -> CanaryState {
        let mut state = self.controller.state.clone();
        tokio::time::timeout(
            std::time::Duration::from_secs(15),
            state.wait_for(|state| state.phase == phase),
        )
        .await
        .unwrap_or_else(|_| {
            panic!(
                "never reached {phase:?}; now {:?}",
                self.controller.state.borrow().summary
            )
        })
        .unwrap()
        .clone()
    }

    /// Sets the canary share through a running canary (started if there is
    /// none); the proxy uses it for every request once this returns.
    pub(crate) async fn set_share(&self, percent: f64) {
        if self.controller.state.borrow().phase != Phase::Progressing {
            self.start_canary().await;
        }
        let share = CanaryShare::from_percent(percent).unwrap();
        self.controller
            .command("test".to_owned(), Command::Scale { percent: share }, None)
            .await
            .unwrap();
    }

    /// Waits for a metrics snapshot that satisfies `check`.
    pub(crate) async fn metrics_where(
        &self,
        check: impl Fn(&MetricsSnapshot) -> bool,
    ) -> MetricsSnapshot {
        let mut metrics = self.controller.metrics.clone();
        let found = tokio::time::timeout(
            std::time::Duration::from_secs(15),
            metrics.wait_for(|m| check(m)),
        )
        .await
        .expect("no matching metrics within 15 s")
        .unwrap();
        MetricsSnapshot::clone(&found)
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
    try_http_get(url, accept)
        .await
        .unwrap_or_else(|err| panic!("{url}: {err}"))
}

/// Like [`http_get`], an error returned instead of failing the test: for
/// background traffic, which must outlive one refused request.
pub(crate) async fn try_http_get(
    url: &str,
    accept: &str,
) -> Result<(StatusCode, axum::http::HeaderMap, String), String> {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let request = hyper::Request::get(url)
        .header("accept", accept)
        .body(Empty::new())
        .unwrap();
    try_send(client, request).await
}

/// The newest 100 entries of the audit trail, newest first.
pub(crate) async fn audit_page(app: &TestApp) -> canary_shared::AuditPage {
    let (_, _, body) = http_get(
        &app.url("/admin/canary/audit?limit=100"),
        "application/json",
    )
    .await;
    serde_json::from_str(&body).unwrap()
}

/// The actions of an audit page (which comes newest first), oldest first:
/// the order a rollout's story is told in.
pub(crate) fn actions_oldest_first(page: &canary_shared::AuditPage) -> Vec<&str> {
    page.events
        .iter()
        .rev()
        .map(|event| event.action.as_str())
        .collect()
}

/// A client for JSON bodies.
pub(crate) fn json_client() -> hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Full<hyper::body::Bytes>,
> {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http()
}

/// POSTs a JSON body; returns the status code and the body.
pub(crate) async fn post_json(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<hyper::body::Bytes>,
    >,
    url: &str,
    body: &str,
) -> (u16, String) {
    let request = hyper::Request::post(url)
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let (status, _, body) = send(client.clone(), request).await;
    (status.as_u16(), body)
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
    let uri = request.uri().clone();
    try_send(client, request)
        .await
        .unwrap_or_else(|err| panic!("{uri}: {err}"))
}

/// Like [`send`], an error (or no whole answer within 30 s, which a test
/// would otherwise wait for forever) returned instead of failing the test:
/// for background traffic, which must outlive one refused request.
pub(crate) async fn try_send<B>(
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        B,
    >,
    request: hyper::Request<B>,
) -> Result<(StatusCode, axum::http::HeaderMap, String), String>
where
    B: hyper::body::Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    use http_body_util::BodyExt;
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|err| err.to_string())?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|err| err.to_string())?
            .to_bytes();
        Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), exchange)
        .await
        .unwrap_or_else(|_| Err("no whole answer within 30 s".to_owned()))
}

/// Polls `check` every 20 ms for up to 10 s; the deadline is generous because
/// CI machines are noisy, and the poll returns as soon as `check` holds.
pub(crate) async fn eventually<T>(what: &str, check: impl AsyncFnMut() -> Option<T>) -> T {
    eventually_for(std::time::Duration::from_secs(10), what, check).await
}

/// Like [`eventually`], for something that takes up to `limit`.
pub(crate) async fn eventually_for<T>(
    limit: std::time::Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    eventually_saying(limit, what, async || check().await.ok_or_else(String::new)).await
}

/// Like [`eventually_for`], `check` saying what it saw instead (`Err`),
/// which a timeout then reports: a wait that fails on a loaded machine
/// should tell why, not only that it gave up.
pub(crate) async fn eventually_saying<T>(
    limit: std::time::Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let seen = match check().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}{}{seen}",
            if seen.is_empty() { "" } else { "; last seen: " }
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// Sends requests through `app`'s proxy, one after another, until the
/// returned task is aborted (or dropped with the test).
pub(crate) fn background_traffic(app: &TestApp) -> JoinHandle<()> {
    traffic_to(app.proxy_url("/work"))
}

/// Sends requests to `proxy`, one after another, until the returned task is
/// aborted; a refused or failed request is followed by the next one.
pub(crate) fn traffic_to(proxy: String) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let _ = try_http_get(&proxy, "*/*").await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
}

/// A `canary serve` child process with its addresses; killed when dropped.
#[derive(Debug)]
pub(crate) struct Served {
    pub(crate) child: std::process::Child,
    pub(crate) console: String,
    pub(crate) proxy: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `canary` binary on `config` and reads the console's and the
/// proxy's addresses from its first two lines.
pub(crate) fn serve_binary(config: &Path) -> Served {
    serve_binary_logging(config, None)
}

/// Like [`serve_binary`], its log at debug level written to `log`.
pub(crate) fn serve_binary_logging(config: &Path, log: Option<&Path>) -> Served {
    use std::io::BufRead;
    let stderr = match log {
        Some(log) => std::process::Stdio::from(std::fs::File::create(log).unwrap()),
        None => std::process::Stdio::null(),
    };
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_canary"))
        .args(["serve", "--config"])
        .arg(config)
        .env("CANARY_LOG", if log.is_some() { "debug" } else { "info" })
        .stdout(std::process::Stdio::piped())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = |prefix: &str| {
        let line = lines
            .next()
            .expect("the server printed its addresses")
            .unwrap();
        line.trim_start_matches(prefix).to_owned()
    };
    let console = next("canary: console at ");
    let proxy = next("canary: proxy at ");
    Served {
        child,
        console,
        proxy,
    }
}

/// Writes `dir/canary-config.yaml` for the `canary` binary: both listeners
/// on ephemeral loopback ports, its data in `dir/data`, the two upstreams
/// probed every 100 ms, then `rest` (the proxy, hooks and canary sections
/// the test needs).
pub(crate) fn binary_config(
    dir: &Path,
    production: &str,
    canary: &str,
    rest: &str,
) -> std::path::PathBuf {
    let path = dir.join("canary-config.yaml");
    let text = format!(
        r#"server: {{ admin_listen: "127.0.0.1:0", proxy_listen: "127.0.0.1:0", data_dir: "{data}" }}
upstreams:
  production: {{ url: "{production}", health_check: {{ interval: 100ms }} }}
  canary: {{ url: "{canary}", health_check: {{ interval: 100ms }} }}
{rest}"#,
        data = dir.join("data").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Fails if any of `secrets` (what it is, and its text) is in `log` or in
/// one of the API's `answers`.
pub(crate) fn assert_secrets_kept(secrets: &[(&str, String)], log: &str, answers: &[String]) {
    for (what, secret) in secrets {
        assert!(!log.contains(secret.as_str()), "{what} is in the log");
        for answer in answers {
            assert!(
                !answer.contains(secret.as_str()),
                "{what} is in an API answer: {answer}"
            );
        }
    }
}

/// Waits until the router has confirmed `share` (any share when `None`),
/// up to 30 s: the routers' adapters read every second, but on a loaded
/// machine a write or call that timed out is retried after a pause that
/// doubles up to 8 s. Says what the router last reported when it never comes.
pub(crate) async fn until_confirmed(
    app: &TestApp,
    share: Option<canary_shared::CanaryShare>,
) -> canary_shared::CanaryState {
    let what = format!("the router to confirm {share:?}");
    eventually_saying(std::time::Duration::from_secs(30), &what, async || {
        let state = app.controller.state.borrow().clone();
        if state.router.confirmed
            && share.is_none_or(|share| state.router.effective_percent == share)
        {
            Ok(state)
        } else {
            Err(format!("{:?}", state.router))
        }
    })
    .await
}
