//! Custom metrics from outside the proxy, end to end: scraped from each
//! side's own exposition, pushed by a service, judged like the built-in
//! ones, and a failing source told apart from a bad value.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use canary_server::config::Config;
use canary_shared::{CanaryState, CheckStatus, MetricsSnapshot};
use tokio::net::TcpListener;

use crate::support::{TestApp, eventually, http_get, json_client, post_json};

/// What a fake exporter answers: status, body, and a delay.
#[derive(Clone, Debug)]
struct Answer {
    status: u16,
    body: String,
    delay_ms: u64,
}

/// A service's own `/metrics`, switchable while a test runs.
struct Exporter {
    url: String,
    answer: Arc<Mutex<Answer>>,
    task: tokio::task::JoinHandle<()>,
}

impl Exporter {
    async fn start(body: &str) -> Exporter {
        let answer = Arc::new(Mutex::new(Answer {
            status: 200,
            body: body.to_owned(),
            delay_ms: 0,
        }));
        let app = Router::new()
            .route(
                "/metrics",
                get(|State(answer): State<Arc<Mutex<Answer>>>| async move {
                    let answer = answer.lock().unwrap().clone();
                    tokio::time::sleep(Duration::from_millis(answer.delay_ms)).await;
                    (StatusCode::from_u16(answer.status).unwrap(), answer.body)
                }),
            )
            .with_state(Arc::clone(&answer));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Exporter { url, answer, task }
    }

    fn set(&self, status: u16, body: &str, delay_ms: u64) {
        *self.answer.lock().unwrap() = Answer {
            status,
            body: body.to_owned(),
            delay_ms,
        };
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn gauge(value: f64) -> String {
    format!(
        "# HELP memory_query_latency_ms Latency of memory queries.\n# TYPE memory_query_latency_ms gauge\nmemory_query_latency_ms{{pool=\"main\"}} {value}\n"
    )
}

async fn state(app: &TestApp) -> CanaryState {
    let (_, _, body) = http_get(&app.url("/admin/canary/status"), "application/json").await;
    serde_json::from_str(&body).unwrap()
}

/// The seed's "Memory Queries" check: warning above 50 ms.
async fn memory_check(app: &TestApp) -> canary_shared::SafetyCheck {
    state(app)
        .await
        .safety_checks
        .into_iter()
        .find(|check| check.metric == "memory_query_latency_ms")
        .expect("the seed's check")
}

#[tokio::test]
async fn the_seed_memory_check_is_judged_on_the_canarys_own_metrics_and_a_failing_source_is_no_data()
 {
    let production = Exporter::start(&gauge(20.0)).await;
    let canary = Exporter::start(&gauge(21.0)).await;
    let (production_url, canary_url) = (production.url.clone(), canary.url.clone());
    let app = TestApp::start_with(move |config| {
        let yaml = format!(
            r#"
canary:
  auto_progression: {{ enabled: true, wait_time: 24h, thresholds: {{ max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 }} }}
  traffic_steps: [5, 25, 50, 100]
  safety_checks:
    - {{ name: "Memory Queries", metric: "memory_query_latency_ms", threshold: 50, alert_level: "warning" }}
metrics:
  scrape: {{ production_url: "{production_url}", canary_url: "{canary_url}", interval: 100ms, timeout: 300ms }}
  custom:
    - {{ name: memory_query_latency_ms, from: scrape, series: memory_query_latency_ms, labels: {{ pool: main }} }}
"#
        );
        let parsed = Config::from_yaml(&yaml).unwrap();
        config.canary = parsed.canary;
        config.metrics = parsed.metrics;
    })
    .await;

    let check = eventually("a scraped value", async || {
        let check = memory_check(&app).await;
        (check.status == CheckStatus::Safe).then_some(check)
    })
    .await;
    assert_eq!(check.current_value, Some(21.0));
    let service = state(&app).await.canary;
    assert_eq!(service.custom_metrics[0].name, "memory_query_latency_ms");
    assert_eq!(service.custom_metrics[0].value, Some(21.0));
    // Both sides' values are in the metrics, for the charts.
    let (_, _, body) = http_get(&app.url("/admin/canary/metrics"), "application/json").await;
    let metrics: MetricsSnapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(metrics.production.custom[0].value, Some(20.0));
    assert_eq!(metrics.canary.custom[0].name, "memory_query_latency_ms");

    for (value, status, reason) in [
        (
            47.0,
            CheckStatus::Watch,
            "memory query latency 47 ms, close to the limit of 50 ms",
        ),
        (
            80.0,
            CheckStatus::Breach,
            "memory query latency 80 ms > 50 ms",
        ),
    ] {
        canary.set(200, &gauge(value), 0);
        let check = eventually("the new value judged", async || {
            let check = memory_check(&app).await;
            (check.status == status).then_some(check)
        })
        .await;
        assert_eq!(check.reason.as_deref(), Some(reason));
    }

    // A source that fails is no data with the reason: never a pass, never zero.
    for (status, body, delay_ms, reason) in [
        (
            500,
            "oops".to_owned(),
            0,
            "source answered HTTP 500".to_owned(),
        ),
        (
            200,
            "<html>not metrics</html>".to_owned(),
            0,
            "unreadable exposition: line 1: expected a metric name at \"<html>".to_owned(),
        ),
        (
            200,
            gauge(10.0),
            1_000,
            "source timed out after 300 ms".to_owned(),
        ),
        (
            200,
            "other_metric 1\n".to_owned(),
            0,
            "series missing: no memory_query_latency_ms with pool=\"main\"".to_owned(),
        ),
    ] {
        canary.set(status, &body, delay_ms);
        let check = eventually(&reason, async || {
            let check = memory_check(&app).await;
            // The start of the reason: the rest quotes the text at fault.
            (check
                .reason
                .as_deref()
                .is_some_and(|said| said.starts_with(reason.as_str())))
            .then_some(check)
        })
        .await;
        assert_eq!(check.status, CheckStatus::NoData);
        assert_eq!(check.current_value, None);
    }
}

#[tokio::test]
async fn a_service_pushes_values_that_are_judged_and_bad_pushes_are_refused_by_field() {
    let app = TestApp::start_with(|config| {
        let yaml = r#"
canary:
  auto_progression: { enabled: true, wait_time: 24h, thresholds: { max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 } }
  traffic_steps: [5, 100]
  safety_checks:
    - { name: "Cost", metric: "cost_per_day", comparator: max, threshold: 100, alert_level: "critical" }
metrics:
  custom:
    - { name: cost_per_day, from: push }
"#;
        let parsed = Config::from_yaml(yaml).unwrap();
        config.canary = parsed.canary;
        config.metrics = parsed.metrics;
    })
    .await;
    let client = json_client();
    let push = |body: &'static str| {
        let client = client.clone();
        let url = app.url("/admin/canary/metrics/custom");
        async move { post_json(&client, &url, body).await }
    };
    let (code, body) = push(r#"{"side":"canary","name":"cost_per_day","value":42.5}"#).await;
    assert_eq!(code, 200, "{body}");
    let check = eventually("the pushed value judged", async || {
        let state = state(&app).await;
        let check = state
            .safety_checks
            .into_iter()
            .find(|check| check.name == "Cost")?;
        (check.status == CheckStatus::Safe).then_some(check)
    })
    .await;
    assert_eq!(check.current_value, Some(42.5));

    for (body, field) in [
        (r#"{"side":"canary","name":"cost","value":1}"#, "name"),
        (
            r#"{"side":"middle","name":"cost_per_day","value":1}"#,
            "side",
        ),
        (
            r#"{"side":"canary","name":"cost_per_day","value":"high"}"#,
            "value",
        ),
        (
            r#"{"side":"canary","name":"cost_per_day","value":1,"timestamp":1000}"#,
            "timestamp",
        ),
    ] {
        let (code, answer) = push(body).await;
        assert!(code == 400 || code == 422, "{body}: {code} {answer}");
        let error: canary_shared::ApiErrorBody = serde_json::from_str(&answer).unwrap();
        assert_eq!(error.field.as_deref(), Some(field), "{body}: {answer}");
    }
    let (code, answer) = push(r#"{"side":"canary","name":"cost","value":1}"#).await;
    assert_eq!(code, 422);
    assert!(answer.contains("these are: cost_per_day"), "{answer}");
}

#[tokio::test]
async fn canarys_own_metrics_read_back_with_the_same_parser() {
    let app = TestApp::start().await;
    app.set_share(50.0).await;
    app.canary.set_status(500);
    eventually("an automatic rollback", async || {
        for _ in 0..20 {
            let _ = http_get(&app.proxy_url("/work"), "*/*").await;
        }
        let state = state(&app).await;
        (state.phase == canary_shared::Phase::RolledBack).then_some(())
    })
    .await;
    // The ticker folds a finished second in once a second.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let (code, headers, text) = http_get(&app.url("/metrics"), "text/plain").await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        headers[axum::http::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let exposition = canary_server::domain::exposition::parse(&text).unwrap();
    let value = |name: &str, labels: &[(&str, &str)]| -> f64 {
        exposition
            .samples
            .iter()
            .find(|sample| {
                sample.name == name
                    && labels
                        .iter()
                        .all(|(label, value)| sample.label(label) == Some(value))
            })
            .unwrap_or_else(|| panic!("no {name} {labels:?} in\n{text}"))
            .value
    };
    use canary_server::domain::exposition::MetricType;
    assert_eq!(
        exposition.type_of("canary_requests_total"),
        MetricType::Counter
    );
    assert_eq!(
        exposition.type_of("canary_request_duration_seconds"),
        MetricType::Histogram
    );
    let canary_5xx = value(
        "canary_requests_total",
        &[("side", "canary"), ("outcome", "5xx")],
    );
    assert!(canary_5xx > 0.0, "the failures are counted");
    let canary_count = value(
        "canary_request_duration_seconds_count",
        &[("side", "canary")],
    );
    let canary_inf = value(
        "canary_request_duration_seconds_bucket",
        &[("side", "canary"), ("le", "+Inf")],
    );
    assert_eq!(canary_count, canary_inf);
    assert!(canary_count >= canary_5xx);
    assert_eq!(value("canary_phase", &[("phase", "rolled_back")]), 1.0);
    assert_eq!(value("canary_phase", &[("phase", "progressing")]), 0.0);
    assert_eq!(
        value("canary_traffic_share_ratio", &[("side", "production")]),
        1.0
    );
    assert_eq!(value("canary_rollbacks_total", &[]), 1.0);
    assert_eq!(value("canary_breaches_total", &[]), 1.0);
    assert_eq!(
        value("canary_decisions_total", &[("action", "auto_rollback")]),
        1.0
    );
    assert_eq!(value("canary_store_errors_total", &[]), 0.0);
}

/// A real Prometheus server (Debian's package, installed by `cargo xtask
/// setup`) scraping `target` every second; killed when dropped.
struct Prometheus {
    url: String,
    child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    async fn start(target: &str) -> Prometheus {
        let binary = "/usr/bin/prometheus";
        assert!(
            std::path::Path::new(binary).exists(),
            "this test needs Debian's prometheus: run `cargo xtask setup` (as root) or apt-get install prometheus"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{ scrape_interval: 1s, evaluation_interval: 1s }}\nscrape_configs:\n  - job_name: app\n    static_configs: [{{ targets: [\"{target}\"] }}]\n"
            ),
        )
        .unwrap();
        // Prometheus cannot report a port it chose, so one is reserved and
        // released just before it starts.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = tokio::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Prometheus {
            url: format!("http://127.0.0.1:{port}"),
            child,
            _dir: dir,
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

#[tokio::test]
async fn values_queried_from_a_real_prometheus_are_judged_per_side() {
    let exporter = Exporter::start(
        "# TYPE queue_depth gauge\nqueue_depth{deployment=\"production\"} 5\nqueue_depth{deployment=\"canary\"} 17\n",
    )
    .await;
    let target = exporter
        .url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let prometheus = Prometheus::start(&target).await;
    // Prometheus is up once it has scraped the exporter at least once.
    let query = format!("{}/api/v1/query?query=queue_depth", prometheus.url);
    let (tries, step) = (200, Duration::from_millis(100));
    let mut ready = false;
    for _ in 0..tries {
        let client = json_client();
        let request = hyper::Request::get(query.as_str())
            .body(http_body_util::Full::new(hyper::body::Bytes::new()))
            .unwrap();
        if let Ok(Ok(response)) = tokio::time::timeout(step * 5, client.request(request)).await {
            use http_body_util::BodyExt;
            let body = response
                .into_body()
                .collect()
                .await
                .map(|body| body.to_bytes())
                .unwrap_or_default();
            if String::from_utf8_lossy(&body).contains("\"canary\"") {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(step).await;
    }
    assert!(
        ready,
        "Prometheus at {} never scraped the exporter",
        prometheus.url
    );

    let prometheus_url = prometheus.url.clone();
    let app = TestApp::start_with(move |config| {
        let yaml = format!(
            r#"
canary:
  auto_progression: {{ enabled: true, wait_time: 24h, thresholds: {{ max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 }} }}
  traffic_steps: [5, 100]
  safety_checks:
    - {{ name: "Queue", metric: "queue_depth", comparator: max, threshold: 10, alert_level: "warning" }}
    - {{ name: "Ghost", metric: "ghost", comparator: max, threshold: 1, alert_level: "warning" }}
metrics:
  prometheus: {{ url: "{prometheus_url}", interval: 200ms, timeout: 2s }}
  custom:
    - {{ name: queue_depth, from: prometheus, query: 'max(queue_depth{{deployment="{{side}}"}})' }}
    - {{ name: ghost, from: prometheus, query: 'ghost_metric{{deployment="{{side}}"}}' }}
"#
        );
        let parsed = Config::from_yaml(&yaml).unwrap_or_else(|err| panic!("{err}"));
        config.canary = parsed.canary;
        config.metrics = parsed.metrics;
    })
    .await;
    let (queue, ghost) = eventually("both queries answered", async || {
        let state = state(&app).await;
        let find = |name: &str| {
            state
                .safety_checks
                .iter()
                .find(|check| check.name == name)
                .cloned()
        };
        let (queue, ghost) = (find("Queue")?, find("Ghost")?);
        (queue.current_value.is_some() && ghost.reason.as_deref() != Some("not queried yet"))
            .then_some((queue, ghost))
    })
    .await;
    // The canary's own value, not production's: 17 against a limit of 10.
    assert_eq!(queue.current_value, Some(17.0));
    assert_eq!(queue.status, CheckStatus::Breach);
    assert_eq!(ghost.status, CheckStatus::NoData);
    assert_eq!(ghost.reason.as_deref(), Some("query returned no series"));
    let (_, _, body) = http_get(&app.url("/admin/canary/metrics"), "application/json").await;
    let metrics: MetricsSnapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(metrics.production.custom[0].value, Some(5.0));
}
