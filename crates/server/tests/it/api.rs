//! REST and static-file behaviour through a real socket.

use axum::http::StatusCode;
use canary_shared::{ApiErrorBody, CanaryState, Health, Phase};

use crate::support::{TestApp, eventually, http_get};

async fn status(app: &TestApp) -> CanaryState {
    let (code, headers, body) =
        http_get(&app.url("/admin/canary/status"), "application/json").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/json");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn status_reports_the_idle_rollout_and_live_upstream_health() {
    let app = TestApp::start().await;
    let state = eventually("production to be probed healthy", async || {
        let state = status(&app).await;
        (state.production.health == Health::Healthy).then_some(state)
    })
    .await;
    assert_eq!(state.phase, Phase::Idle);
    assert_eq!(state.summary, "Production only (100 %)");
    assert_eq!(state.production.version.as_deref(), Some("v2.6.0"));
    assert_eq!(
        state.production.health_detail.as_deref(),
        Some("HTTP 200 from /healthz")
    );
    assert_eq!(state.traffic.canary().percent(), 0.0);

    app.production.set_health_status(503);
    let state = eventually("production to turn unhealthy", async || {
        let state = status(&app).await;
        (state.production.health == Health::Unhealthy).then_some(state)
    })
    .await;
    assert_eq!(
        state.production.health_detail.as_deref(),
        Some("HTTP 503 from /healthz")
    );
}

#[tokio::test]
async fn an_unreachable_upstream_is_unhealthy_with_the_reason() {
    // A port that was just released refuses connections.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let mut app = TestApp::start_with(|config| {
        config.upstreams.production.url = format!("http://{closed}").parse().unwrap();
    })
    .await;
    let state = eventually("production to be found unreachable", async || {
        let state = status(&app).await;
        (state.production.health == Health::Unhealthy).then_some(state)
    })
    .await;
    assert_eq!(
        state.production.health_detail.as_deref(),
        Some("unreachable: connection refused")
    );
    app.shut_down().await;
}

#[tokio::test]
async fn unknown_paths_and_wrong_methods_get_json_errors() {
    let app = TestApp::start().await;
    let (code, headers, body) =
        http_get(&app.url("/admin/canary/no-such-api"), "application/json").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(headers["content-type"], "application/json");
    let error: ApiErrorBody = serde_json::from_str(&body).unwrap();
    assert_eq!(error.code, "not_found");
    assert!(
        error.message.contains("/admin/canary/no-such-api"),
        "{}",
        error.message
    );

    let (code, _, body) = http_get(&app.url("/elsewhere"), "*/*").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_str::<ApiErrorBody>(&body).unwrap().code,
        "not_found"
    );

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let request = hyper::Request::post(app.url("/admin/canary/status"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let (code, headers, body) = crate::support::send(client, request).await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers["allow"], "GET,HEAD");
    assert_eq!(
        serde_json::from_str::<ApiErrorBody>(&body).unwrap().code,
        "method_not_allowed"
    );
}

#[tokio::test]
async fn the_console_is_served_with_the_right_cache_rules() {
    let app = TestApp::start().await;

    for path in [
        "/admin/canary",
        "/admin/canary/",
        "/admin/canary/index.html",
    ] {
        let (code, headers, body) = http_get(&app.url(path), "text/html").await;
        assert_eq!(code, StatusCode::OK, "{path}");
        assert_eq!(
            headers["cache-control"], "no-cache",
            "{path}: the index must never be cached"
        );
        assert!(body.contains("<title>console</title>"), "{path}");
    }

    let (code, headers, body) = http_get(
        &app.url("/admin/canary/canary-app-0123456789abcdef.js"),
        "*/*",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(body, "export {}");

    let (_, headers, _) = http_get(&app.url("/admin/canary/favicon.svg"), "*/*").await;
    assert_eq!(
        headers["cache-control"], "no-cache",
        "an unhashed file may change"
    );

    // A client-side route loads the console; a missing file does not.
    let (code, headers, body) = http_get(&app.url("/admin/canary/history"), "text/html,*/*").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["cache-control"], "no-cache");
    assert!(body.contains("<title>console</title>"));
    let (code, _, _) = http_get(&app.url("/admin/canary/missing-0123456789abcdef.js"), "*/*").await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // Path traversal stays inside the assets folder.
    let (code, _, body) = http_get(&app.url("/admin/canary/../../etc/passwd"), "*/*").await;
    assert_ne!(code, StatusCode::OK, "{body}");

    let (_, headers, _) = http_get(&app.url("/admin/canary/"), "text/html").await;
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
}

#[tokio::test]
async fn a_missing_console_build_says_how_to_build_it() {
    let app = TestApp::start().await;
    std::fs::remove_file(app.assets.path().join("index.html")).unwrap();
    let (code, _, body) = http_get(&app.url("/admin/canary/"), "text/html").await;
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.contains("cargo xtask build-app"), "{body}");
}

async fn post(app: &TestApp, path: &str) -> (StatusCode, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<hyper::body::Bytes>>();
    let request = hyper::Request::post(app.url(path))
        .body(http_body_util::Empty::new())
        .unwrap();
    let (code, _, body) = crate::support::send(client, request).await;
    (code, body)
}

#[tokio::test]
async fn scale_sets_the_share_the_proxy_serves() {
    let app = TestApp::start().await;
    let (code, body) = post(&app, "/admin/canary/scale/25").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let state: CanaryState = serde_json::from_str(&body).unwrap();
    assert_eq!(state.traffic.canary().percent(), 25.0);
    assert_eq!(state.canary.traffic_percent.percent(), 25.0);
    assert_eq!(status(&app).await.traffic.canary().percent(), 25.0);

    let (code, _) = post(&app, "/admin/canary/scale/100").await;
    assert_eq!(code, StatusCode::OK);
    let (_, _, body) = http_get(&app.proxy_url("/anything"), "*/*").await;
    assert_eq!(body, "canary", "at 100 % the proxy serves the canary");
}

#[tokio::test]
async fn bad_shares_are_refused_with_the_field_named_and_nothing_changes() {
    let app = TestApp::start().await;
    let (code, _) = post(&app, "/admin/canary/scale/5").await;
    assert_eq!(code, StatusCode::OK);
    let cases = [
        ("-1", StatusCode::UNPROCESSABLE_ENTITY, "out_of_range"),
        ("101", StatusCode::UNPROCESSABLE_ENTITY, "out_of_range"),
        ("50.555", StatusCode::UNPROCESSABLE_ENTITY, "out_of_range"),
        ("abc", StatusCode::BAD_REQUEST, "invalid_field"),
        ("NaN", StatusCode::UNPROCESSABLE_ENTITY, "out_of_range"),
    ];
    for (percent, expected_status, expected_code) in cases {
        let (code, body) = post(&app, &format!("/admin/canary/scale/{percent}")).await;
        assert_eq!(code, expected_status, "{percent}: {body}");
        let error: ApiErrorBody = serde_json::from_str(&body).unwrap();
        assert_eq!(error.code, expected_code, "{percent}");
        assert_eq!(error.field.as_deref(), Some("percent"), "{percent}");
        assert!(
            error.message.contains("percent"),
            "{percent}: {}",
            error.message
        );
    }
    for missing in ["/admin/canary/scale/", "/admin/canary/scale"] {
        let (code, body) = post(&app, missing).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            serde_json::from_str::<ApiErrorBody>(&body)
                .unwrap()
                .field
                .as_deref(),
            Some("percent")
        );
    }
    let (code, _, _) = http_get(&app.url("/admin/canary/scale/5"), "application/json").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        status(&app).await.traffic.canary().percent(),
        5.0,
        "no bad request changed the share"
    );
}
