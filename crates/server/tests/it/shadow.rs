//! Shadow traffic through the real proxy and controller: production's
//! requests copied to the canary during the shadow step, answered by
//! production only, and compared. A canary that answers differently fails
//! the rollout with no client ever served by it; one that answers alike
//! passes; methods not listed never reach it; a hanging one holds no
//! client; credentials are never kept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::routing::get;
use canary_server::config::{SafetyCheckConfig, ShadowConfig};
use canary_shared::{CanaryShare, Phase, ShadowReport};
use hyper::body::Bytes;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::{TestApp, audit_page, eventually, http_get, json_client, send};

const ALIKE: u8 = 0;
const WRONG: u8 = 1;
const HANGING: u8 = 2;

/// A service answering `{"total": 42, "at": n}` (`n` counts requests, so
/// two sides never agree on it), `41` when wrong, or never when hanging;
/// it notes every request it gets.
struct Service {
    addr: SocketAddr,
    mode: Arc<AtomicU8>,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

#[derive(Clone, Debug)]
struct Seen {
    method: Method,
    shadow: bool,
    authorization: Option<String>,
    body: String,
}

impl Service {
    async fn start(mode: u8) -> Service {
        let mode = Arc::new(AtomicU8::new(mode));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicU64::new(0));
        let (answer_mode, answer_seen) = (Arc::clone(&mode), Arc::clone(&seen));
        let app = Router::new()
            .route("/healthz", get(|| async { StatusCode::OK }))
            .fallback(move |method: Method, headers: HeaderMap, body: String| {
                let (mode, seen, count) = (
                    Arc::clone(&answer_mode),
                    Arc::clone(&answer_seen),
                    Arc::clone(&count),
                );
                async move {
                    seen.lock().unwrap().push(Seen {
                        method,
                        shadow: headers.contains_key("canary-shadow"),
                        authorization: headers
                            .get("authorization")
                            .map(|value| value.to_str().unwrap().to_owned()),
                        body,
                    });
                    let at = count.fetch_add(1, Ordering::SeqCst);
                    let total = match mode.load(Ordering::SeqCst) {
                        WRONG => 41,
                        HANGING => std::future::pending().await,
                        _ => 42,
                    };
                    (
                        [("content-type", "application/json")],
                        format!(r#"{{"total": {total}, "at": {at}}}"#),
                    )
                }
            });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Service {
            addr,
            mode,
            seen,
            task,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server whose upstreams are `production` and `canary`, with a shadow
/// step set by `shadow` and a critical check on the mismatch rate.
async fn with_shadow(production: &Service, canary: &Service, shadow: &str) -> TestApp {
    let urls = (
        format!("http://{}", production.addr),
        format!("http://{}", canary.addr),
    );
    let shadow: ShadowConfig = serde_yaml_ng::from_str(shadow).unwrap();
    TestApp::start_with(move |config| {
        config.upstreams.production.url = urls.0.parse().unwrap();
        config.upstreams.canary.url = urls.1.parse().unwrap();
        config.validation.shadow = Some(shadow);
        config.proxy.canary_response_timeout = Some(serde_yaml_ng::from_str("60s").unwrap());
        let check: SafetyCheckConfig = serde_yaml_ng::from_str(
            "{ name: Same answers, metric: shadow_mismatch_rate, threshold: 0.05, alert_level: critical }",
        )
        .unwrap();
        config.canary.safety_checks.push(check);
    })
    .await
}

/// A client's request through the proxy, with credentials; its status and body.
async fn request(app: &TestApp, method: Method) -> (StatusCode, String) {
    let mut builder = hyper::Request::builder()
        .method(method.clone())
        .uri(app.proxy_url("/api/orders/7?expand=items"))
        .header("authorization", "Bearer s3cret-token")
        .header("cookie", "session=s3cret-cookie");
    let body = if method == Method::POST {
        builder = builder.header("content-type", "application/json");
        Bytes::from_static(br#"{"item": 3}"#)
    } else {
        Bytes::new()
    };
    let request = builder.body(http_body_util::Full::new(body)).unwrap();
    let (status, _, body) = send(json_client(), request).await;
    (status, body)
}

async fn report(app: &TestApp) -> (ShadowReport, String) {
    let (status, _, body) =
        http_get(&app.url("/admin/canary/validation"), "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (serde_json::from_str(&body).unwrap(), body)
}

/// Sends requests until the rollout reaches `phase`; every answer, in order.
async fn traffic_until(
    app: &TestApp,
    phase: Phase,
    methods: &[Method],
) -> Vec<(StatusCode, String)> {
    let mut answers = Vec::new();
    for round in 0.. {
        if app.controller.state.borrow().phase == phase {
            return answers;
        }
        assert!(round < 5_000, "never reached {phase:?}");
        answers.push(request(app, methods[round % methods.len()].clone()).await);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    unreachable!()
}

#[tokio::test]
async fn a_canary_that_answers_differently_fails_at_the_shadow_step_having_served_no_one() {
    let production = Service::start(ALIKE).await;
    let canary = Service::start(WRONG).await;
    let app = with_shadow(
        &production,
        &canary,
        "{ share: 100, duration: 10m, compare_body: json, ignore_fields: [/at] }",
    )
    .await;
    app.begin_canary_at(25.0).await;
    app.wait_for_phase(Phase::Validating).await;
    let answers = traffic_until(&app, Phase::Failed, &[Method::GET]).await;

    // Every client got production's answer.
    assert!(!answers.is_empty());
    for (status, body) in &answers {
        assert_eq!(*status, StatusCode::OK);
        assert!(body.contains(r#""total": 42"#), "{body}");
    }
    let state = app.controller.state.borrow().clone();
    assert_eq!(state.traffic.canary(), CanaryShare::ZERO);
    assert_eq!(
        state.canary.request_count, 0,
        "no client request was the canary's"
    );
    let seen = canary.seen();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|request| request.shadow),
        "only copies reached the canary"
    );
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer s3cret-token"),
        "a copy is the request as production got it"
    );

    let page = audit_page(&app).await;
    let failed = &page.events[0];
    assert_eq!(failed.action, "shadow_failed");
    let reason = failed.reason.clone().unwrap_or_default();
    assert!(
        reason.starts_with("on shadow traffic, before any user was served: Same answers: shadow mismatch rate 100 % > 5 %"),
        "{reason}"
    );

    // Copies still in flight when the rollout failed finish and count.
    let (report, body) = eventually("the last copies compared", async || {
        let (report, body) = report(&app).await;
        (report.mismatches.body == report.compared && report.examples.len() == 20)
            .then_some((report, body))
    })
    .await;
    assert!(!report.active, "copying stopped with the rollout");
    assert!(report.compared >= 20, "{report:?}");
    assert_eq!(report.mismatches.body, report.compared);
    let example = &report.examples[0];
    assert_eq!(
        (example.method.as_str(), example.path.as_str()),
        ("GET", "/api/orders/7?expand=items")
    );
    assert_eq!(example.detail, "at /total: production 42, canary 41");
    assert_eq!(example.redacted, ["authorization", "cookie"]);

    // Credentials are kept nowhere: not in the API, not in the store.
    let (_, _, audit) = http_get(
        &app.url("/admin/canary/audit?limit=100"),
        "application/json",
    )
    .await;
    for (what, text) in [("validation", &body), ("audit", &audit)] {
        assert!(!text.contains("s3cret"), "{what}: {text}");
    }
    for entry in std::fs::read_dir(app.data.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap_or_default();
        assert!(
            !bytes.windows(6).any(|window| window == b"s3cret"),
            "{} holds a credential",
            path.display()
        );
    }
}

#[tokio::test]
async fn a_canary_that_answers_like_production_passes_and_gets_only_the_listed_methods() {
    let production = Service::start(ALIKE).await;
    let canary = Service::start(ALIKE).await;
    let app = with_shadow(
        &production,
        &canary,
        "{ share: 100, duration: 3s, compare_body: json, ignore_fields: [/at] }",
    )
    .await;
    app.begin_canary_at(25.0).await;
    app.wait_for_phase(Phase::Validating).await;
    let answers = traffic_until(
        &app,
        Phase::Progressing,
        &[Method::GET, Method::POST, Method::HEAD],
    )
    .await;
    assert!(answers.iter().all(|(status, _)| *status == StatusCode::OK));

    let state = app.controller.state.borrow().clone();
    assert_eq!(
        state.traffic.canary(),
        CanaryShare::from_percent(25.0).unwrap()
    );
    let methods: Vec<Method> = canary
        .seen()
        .iter()
        .filter(|seen| seen.shadow)
        .map(|seen| seen.method.clone())
        .collect();
    assert!(
        methods.contains(&Method::GET) && methods.contains(&Method::HEAD),
        "{methods:?}"
    );
    assert!(
        !methods.contains(&Method::POST),
        "POST is not copied by default"
    );
    assert!(
        production
            .seen()
            .iter()
            .any(|seen| seen.method == Method::POST)
    );

    let (report, _) = report(&app).await;
    assert_eq!(report.mismatches.total(), 0, "{report:?}");
    assert!(report.compared >= 20, "{report:?}");
    let page = audit_page(&app).await;
    let actions: Vec<&str> = page
        .events
        .iter()
        .map(|event| event.action.as_str())
        .collect();
    assert!(actions.starts_with(&["shadow_passed"]), "{actions:?}");
}

#[tokio::test]
async fn a_hanging_canary_holds_no_client_and_what_it_cannot_take_is_dropped() {
    let production = Service::start(ALIKE).await;
    let canary = Service::start(HANGING).await;
    let app = with_shadow(
        &production,
        &canary,
        "{ share: 100, duration: 10m, queue: 4 }",
    )
    .await;
    app.begin_canary_at(25.0).await;
    app.wait_for_phase(Phase::Validating).await;
    // The canary answers nothing for the whole test: a client that waited
    // on its copy would never be answered.
    for _ in 0..50 {
        let (status, body) = request(&app, Method::GET).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains(r#""total": 42"#));
    }
    let report = eventually("the copies counted", async || {
        let (report, _) = report(&app).await;
        (report.dropped >= 46 && report.mirrored == 4).then_some(report)
    })
    .await;
    assert_eq!(
        report.mirrored, 4,
        "as many copies as the queue holds: {report:?}"
    );
    assert_eq!(report.compared, 0);
    assert_eq!(app.controller.state.borrow().phase, Phase::Validating);
    canary.mode.store(ALIKE, Ordering::SeqCst);
}

#[tokio::test]
async fn without_a_shadow_step_the_validation_report_says_so() {
    let app = TestApp::start().await;
    let (status, _, body) =
        http_get(&app.url("/admin/canary/validation"), "application/json").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("no validation.shadow"), "{body}");
}

#[tokio::test]
async fn a_copied_request_carries_its_body() {
    let production = Service::start(ALIKE).await;
    let canary = Service::start(ALIKE).await;
    let app = with_shadow(
        &production,
        &canary,
        "{ share: 100, duration: 10m, methods: [POST], compare_body: json, ignore_fields: [/at] }",
    )
    .await;
    app.begin_canary_at(25.0).await;
    app.wait_for_phase(Phase::Validating).await;
    for _ in 0..10 {
        let (status, _) = request(&app, Method::POST).await;
        assert_eq!(status, StatusCode::OK);
    }
    let report = eventually("the copies compared", async || {
        let (report, _) = report(&app).await;
        (report.compared == 10).then_some(report)
    })
    .await;
    assert_eq!(report.mismatches.total(), 0, "{report:?}");
    let copies: Vec<Seen> = canary
        .seen()
        .into_iter()
        .filter(|seen| seen.shadow)
        .collect();
    assert_eq!(copies.len(), 10);
    assert!(
        copies
            .iter()
            .all(|seen| seen.method == Method::POST && seen.body == r#"{"item": 3}"#),
        "{copies:?}"
    );
}
