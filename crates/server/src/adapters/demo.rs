//! `canary demo`: two real HTTP services standing in for production and
//! canary, and a steady load generator sending traffic through the proxy,
//! so a newcomer sees a live rollout from the first second.
//!
//! The services answer like a small web API: a heavy-tailed (log-normal)
//! latency around 12 ms, JSON bodies, `/healthz` always healthy. The canary's
//! behaviour (error rate, added latency, hang) is changed live through
//! [`DemoControl`], which the console's demo panel drives.
//!
//! With `--grpc` the services are gRPC servers too (HTTP/2 with prior
//! knowledge on the same port, beside HTTP/1.1 for `/healthz` and
//! `/metrics`), the upstreams are `h2c`, and the load is gRPC calls: a
//! failing canary answers `UNAVAILABLE` in its trailers with HTTP 200, and
//! the proxy counts it from `grpc-status`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use canary_shared::demo::{DemoBehaviour, DemoService, DemoStatus};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// The production service's version.
pub const PRODUCTION_VERSION: &str = "v2.6.0";
/// The canary service's version.
pub const CANARY_VERSION: &str = "v2.7.0";

/// Median latency of a demo answer, in milliseconds.
const MEDIAN_LATENCY_MS: f64 = 12.0;
/// Spread of the log-normal latency: p95 ≈ 2.3 × the median, p99 ≈ 3.2 ×.
const LATENCY_SIGMA: f64 = 0.5;
/// Requests the load generator keeps in flight at most (a hanging canary
/// must not make it open sockets without end).
const MAX_IN_FLIGHT: usize = 256;

/// Paths the load generator asks for, like the traffic of a small API.
const PATHS: [&str; 5] = [
    "/",
    "/api/items",
    "/api/items/42",
    "/api/search?q=canary",
    "/api/cart",
];

/// Upper bounds of the memory-query histogram the demo services expose, in seconds.
const MEMORY_BUCKETS: [f64; 8] = [0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.25, 1.0];
/// Median of a demo memory query, in milliseconds.
const MEMORY_MEDIAN_MS: f64 = 12.0;

/// One demo service's identity and its current behaviour.
#[derive(Debug)]
struct ServiceState {
    version: &'static str,
    url: String,
    behaviour: Mutex<DemoBehaviour>,
    /// Cumulative counts per bucket (the last is +Inf), and the sum in seconds,
    /// of the memory queries each request makes: exposed at `/metrics`.
    memory: Mutex<([u64; MEMORY_BUCKETS.len() + 1], f64)>,
}

impl ServiceState {
    fn observe_memory_query(&self, seconds: f64) {
        let mut memory = self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        for (index, bound) in MEMORY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                memory.0[index] += 1;
            }
        }
        memory.0[MEMORY_BUCKETS.len()] += 1;
        memory.1 += seconds;
    }

    /// The service's own metrics in the Prometheus text format.
    fn exposition(&self) -> String {
        let (counts, sum) = *self.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let mut writer = crate::domain::exposition::Writer::new();
        writer.metric(
            "memory_query_duration_seconds",
            crate::domain::exposition::MetricType::Histogram,
            "How long the service's memory queries took.",
        );
        for (index, bound) in MEMORY_BUCKETS.iter().enumerate() {
            let le = bound.to_string();
            writer.sample(
                "memory_query_duration_seconds_bucket",
                &[("le", le.as_str())],
                counts[index] as f64,
            );
        }
        let total = counts[MEMORY_BUCKETS.len()] as f64;
        writer
            .sample(
                "memory_query_duration_seconds_bucket",
                &[("le", "+Inf")],
                total,
            )
            .sample("memory_query_duration_seconds_sum", &[], sum)
            .sample("memory_query_duration_seconds_count", &[], total);
        writer.finish()
    }
}

impl ServiceState {
    fn behaviour(&self) -> DemoBehaviour {
        self.behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn status(&self) -> DemoService {
        DemoService {
            version: self.version.to_owned(),
            url: self.url.clone(),
            behaviour: self.behaviour(),
        }
    }
}

/// The running demo: both services and the load generator, stopped when dropped.
#[derive(Debug)]
pub struct Demo {
    control: Arc<DemoControl>,
    tasks: JoinSet<()>,
    /// The load is gRPC calls, and the upstreams are h2c.
    grpc: bool,
}

/// A demo answer's body: whole, or a gRPC message and its trailers.
type DemoBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn whole(body: impl Into<Bytes>) -> DemoBody {
    Full::new(body.into()).boxed()
}

/// What the admin API sees of the demo: read its status, change the canary.
#[derive(Debug)]
pub struct DemoControl {
    production: Arc<ServiceState>,
    canary: Arc<ServiceState>,
    load_per_sec: u32,
}

impl DemoControl {
    /// The two services as the roles stand: the one at `canary_url` plays
    /// the canary (after a promotion swapped the upstreams, that is the
    /// service started as production).
    fn by_role(&self, canary_url: &str) -> (&ServiceState, &ServiceState) {
        if self.production.url == canary_url {
            (&self.canary, &self.production)
        } else {
            (&self.production, &self.canary)
        }
    }

    /// Both services, by the roles they play now, and the load.
    pub fn status(&self, canary_url: &str) -> DemoStatus {
        let (production, canary) = self.by_role(canary_url);
        DemoStatus {
            production: production.status(),
            canary: canary.status(),
            load_per_sec: self.load_per_sec,
        }
    }

    /// Makes the service playing the canary (at `canary_url`) answer as
    /// `behaviour` says, from its next request.
    pub fn set_canary(&self, canary_url: &str, behaviour: DemoBehaviour) {
        tracing::info!(?behaviour, "demo: the canary service changes its behaviour");
        let (_, canary) = self.by_role(canary_url);
        *canary
            .behaviour
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = behaviour;
    }
}

impl Demo {
    /// Starts both services on loopback ports chosen by the system; with
    /// `grpc`, the load will be gRPC calls.
    pub async fn start(load_per_sec: u32, grpc: bool) -> std::io::Result<Demo> {
        let mut tasks = JoinSet::new();
        let production = serve_service(PRODUCTION_VERSION, &mut tasks).await?;
        let canary = serve_service(CANARY_VERSION, &mut tasks).await?;
        Ok(Demo {
            control: Arc::new(DemoControl {
                production,
                canary,
                load_per_sec,
            }),
            tasks,
            grpc,
        })
    }

    /// Whether the demo speaks gRPC.
    pub fn grpc(&self) -> bool {
        self.grpc
    }

    /// The production service's base URL.
    pub fn production_url(&self) -> &str {
        &self.control.production.url
    }

    /// The canary service's base URL.
    pub fn canary_url(&self) -> &str {
        &self.control.canary.url
    }

    /// The handle the admin API uses.
    pub fn control(&self) -> Arc<DemoControl> {
        Arc::clone(&self.control)
    }

    /// Starts sending `load_per_sec` requests a second to the proxy at `proxy`.
    pub fn send_load(&mut self, proxy: SocketAddr) {
        let rate = self.control.load_per_sec;
        self.tasks.spawn(generate_load(proxy, rate, self.grpc));
    }
}

async fn serve_service(
    version: &'static str,
    tasks: &mut JoinSet<()>,
) -> std::io::Result<Arc<ServiceState>> {
    let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let state = Arc::new(ServiceState {
        version,
        url,
        behaviour: Mutex::new(DemoBehaviour::default()),
        memory: Mutex::new(([0; MEMORY_BUCKETS.len() + 1], 0.0)),
    });
    let serving = Arc::clone(&state);
    tasks.spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let state = Arc::clone(&serving);
            connections.spawn(async move {
                let service = service_fn(move |request| answer(Arc::clone(&state), request));
                // HTTP/1.1, and HTTP/2 with prior knowledge for gRPC.
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
            // Reap finished connections so the set does not grow without end.
            while connections.try_join_next().is_some() {}
        }
    });
    Ok(state)
}

/// A log-normal draw around `median_ms` (Box–Muller).
fn log_normal_ms(median_ms: f64) -> f64 {
    median_ms * (LATENCY_SIGMA * crate::sampling::standard_normal(fastrand::f64)).exp()
}

async fn answer(
    state: Arc<ServiceState>,
    request: Request<Incoming>,
) -> Result<Response<DemoBody>, Infallible> {
    let path = request.uri().path().to_owned();
    if path == "/healthz" {
        return Ok(Response::new(whole(Bytes::from_static(b"ok"))));
    }
    if path == "/metrics" {
        let mut response = Response::new(whole(state.exposition()));
        response.headers_mut().insert(
            hyper::header::CONTENT_TYPE,
            hyper::header::HeaderValue::from_static("text/plain; version=0.0.4"),
        );
        return Ok(response);
    }
    let behaviour = state.behaviour();
    if behaviour.hang {
        // Longer than any sensible proxy timeout; the proxy gives up first.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    }
    let latency_ms = log_normal_ms(MEDIAN_LATENCY_MS) + behaviour.added_latency_ms as f64;
    // Each request makes a memory query; a slow canary is slow there too.
    let memory_ms = log_normal_ms(MEMORY_MEDIAN_MS) + behaviour.added_latency_ms as f64 / 4.0;
    state.observe_memory_query(memory_ms / 1000.0);
    tokio::time::sleep(Duration::from_secs_f64(latency_ms / 1000.0)).await;
    let failed = fastrand::f64() < behaviour.error_rate;
    let is_grpc = request
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if is_grpc {
        return Ok(grpc_answer(&state, &path, failed));
    }
    let (status, body) = if failed {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "{{\"error\":\"internal error\",\"version\":\"{}\"}}",
                state.version
            ),
        )
    } else {
        // The figure a correct answer holds; a wrong one is off by one.
        let answer = if fastrand::f64() < behaviour.wrong_answer_rate {
            41
        } else {
            42
        };
        (
            StatusCode::OK,
            format!(
                "{{\"version\":\"{}\",\"path\":{},\"answer\":{answer}}}",
                state.version,
                serde_json::Value::String(path)
            ),
        )
    };
    let mut response = Response::new(whole(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    if let Ok(version) = hyper::header::HeaderValue::from_str(state.version) {
        headers.insert("x-upstream-version", version);
    }
    Ok(response)
}

/// A gRPC answer, as gRPC servers send one: HTTP 200, one message, and the
/// outcome in the trailers (`UNAVAILABLE` for a failure).
fn grpc_answer(state: &ServiceState, method: &str, failed: bool) -> Response<DemoBody> {
    let mut trailers = hyper::HeaderMap::new();
    let mut frames = Vec::new();
    if failed {
        trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("14"));
        trailers.insert(
            "grpc-message",
            hyper::header::HeaderValue::from_static("demo canary unavailable"),
        );
    } else {
        let reply = format!("{} answered {method}", state.version);
        frames.push(Ok(hyper::body::Frame::data(grpc_message(reply.as_bytes()))));
        trailers.insert("grpc-status", hyper::header::HeaderValue::from_static("0"));
    }
    frames.push(Ok(hyper::body::Frame::trailers(trailers)));
    let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames)).boxed();
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    if let Ok(version) = hyper::header::HeaderValue::from_str(state.version) {
        headers.insert("x-upstream-version", version);
    }
    response
}

/// A gRPC message on the wire: not compressed, its length, its bytes (the
/// demo's messages are plain text; gRPC does not look inside).
fn grpc_message(payload: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(payload.len() + 5);
    framed.push(0);
    framed.extend_from_slice(
        &u32::try_from(payload.len())
            .unwrap_or(u32::MAX)
            .to_be_bytes(),
    );
    framed.extend_from_slice(payload);
    Bytes::from(framed)
}

/// The gRPC methods the load generator calls.
const GRPC_METHODS: [&str; 3] = [
    "/demo.Shop/GetCart",
    "/demo.Shop/ListItems",
    "/demo.Shop/Search",
];

/// Starts `send()` `rate` times a second, each on a task of its own, with
/// at most [`MAX_IN_FLIGHT`] unfinished: a tick while they are all stuck (a
/// hanging canary) is skipped.
async fn at_rate<F, Call>(rate: u32, mut send: F)
where
    F: FnMut() -> Call,
    Call: std::future::Future<Output = ()> + Send + 'static,
{
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            continue;
        };
        let call = send();
        tokio::spawn(async move {
            call.await;
            drop(permit);
        });
    }
}

/// Sends `rate` requests a second to `proxy`, each from a new client (no
/// stickiness cookie), so every request is split by the current share; with
/// `grpc`, gRPC calls over one HTTP/2 connection (h2c), as a gRPC client
/// makes them.
async fn generate_load(proxy: SocketAddr, rate: u32, grpc: bool) {
    if rate == 0 {
        return;
    }
    if grpc {
        let mut client = Client::builder(TokioExecutor::new());
        client.http2_only(true);
        let client = client.build_http::<Full<Bytes>>();
        return at_rate(rate, move || {
            let client = client.clone();
            let method = GRPC_METHODS[fastrand::usize(..GRPC_METHODS.len())];
            let request = Request::post(format!("http://{proxy}{method}"))
                .header(hyper::header::CONTENT_TYPE, "application/grpc")
                .header(hyper::header::TE, "trailers")
                .body(Full::new(grpc_message(b"demo")));
            async move {
                if let Ok(request) = request
                    && let Ok(response) = client.request(request).await
                {
                    let _ = response.into_body().collect().await;
                }
            }
        })
        .await;
    }
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build_http::<Empty<Bytes>>();
    at_rate(rate, move || {
        let client = client.clone();
        let path = PATHS[fastrand::usize(..PATHS.len())];
        let uri = format!("http://{proxy}{path}").parse::<hyper::Uri>();
        async move {
            if let Ok(uri) = uri
                && let Ok(response) = client.get(uri).await
            {
                // Read the body so the connection goes back to the pool.
                let _ = response.into_body().collect().await;
            }
        }
    })
    .await;
}

/// The demo's configuration: the shipped rules with the demo services as
/// upstreams, a short wait so progression shows within minutes, the
/// demo's deploy script as the deploy hook, and (with the built-in router)
/// a shadow step.
pub fn config_yaml(
    demo: &Demo,
    data_dir: &str,
    deploy_script: &str,
    builtin_router: bool,
) -> String {
    let quote = |text: &str| serde_json::Value::String(text.to_owned()).to_string();
    // Shadow traffic needs the built-in proxy and copies GET and HEAD (the
    // gRPC demo's calls are POSTs): with an external router or gRPC the
    // demo goes without.
    let shadow = builtin_router && !demo.grpc;
    let (shadow_check, validation) = if shadow {
        (
            "\n    - { name: \"Same answers\", metric: shadow_mismatch_rate, threshold: 0.02, alert_level: critical }",
            SHADOW_YAML,
        )
    } else {
        ("", "")
    };
    // gRPC servers listen with HTTP/2 in clear text.
    let protocol = if demo.grpc { "h2c" } else { "http1" };
    format!(
        r#"# Written by `canary demo`.
server:
  data_dir: {data_dir}
upstreams:
  production:
    url: {production}
    version: {production_version}
    protocol: {protocol}
    health_check: {{ path: /healthz, interval: 1s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2 }}
  canary:
    url: {canary}
    version: {canary_version}
    protocol: {protocol}
    health_check: {{ path: /healthz, interval: 1s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2 }}
proxy:
  # A hanging canary is given up on (and counted as an error) after 3 s.
  upstream_response_timeout: 3s
canary:
  auto_progression:
    enabled: true
    wait_time: 30s
    thresholds:
      max_latency: 1000ms
      min_success_rate: 0.85
      max_error_rate: 0.15
  traffic_steps: [5, 25, 50, 100]
  safety_checks:
    - {{ name: "Total Latency", metric: p95_latency_ms, threshold: 250, alert_level: critical }}
    - {{ name: "Errors", metric: error_rate, threshold: 0.05, alert_level: critical }}
    - {{ name: "Memory Queries", metric: memory_query_latency_ms, threshold: 50, alert_level: warning }}{shadow_check}
  # The statistical judge shows its verdicts beside the checks; in advisory
  # mode a fail alerts and holds, without holding up a healthy demo rollout.
  judge: {{ mode: advisory }}
metrics:
  # Each demo service exposes its own metrics, like a real one would.
  scrape: {{ path: /metrics, interval: 5s, timeout: 1s }}
  custom:
    - {{ name: memory_query_latency_ms, from: scrape, series: memory_query_duration_seconds, quantile: 0.95, scale: 1000 }}
hooks:
  deploy: {{ command: ["sh", {script}, "{{image_tag}}"], timeout: 1m }}
{validation}"#,
        data_dir = quote(data_dir),
        production = quote(demo.production_url()),
        production_version = quote(PRODUCTION_VERSION),
        canary = quote(demo.canary_url()),
        canary_version = quote(CANARY_VERSION),
        script = quote(deploy_script),
    )
}

/// The demo's shadow step: half of production's requests copied to the
/// canary for 15 s and compared as JSON (the version each service reports
/// left out), so a canary giving wrong answers fails before anyone is
/// served by it.
const SHADOW_YAML: &str = "validation:
  shadow: { share: 50, duration: 15s, compare_body: json, ignore_fields: [/version] }
";

/// The demo's deploy hook: a real script, run by the hook mechanism like a
/// team's own, that says what a deployment would do.
pub const DEPLOY_SCRIPT: &str = include_str!("../../../../scripts/demo-deploy.sh");
