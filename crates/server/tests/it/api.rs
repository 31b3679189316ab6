//! REST and static-file behaviour through a real socket.

use axum::http::StatusCode;
use canary_shared::{ApiErrorBody, AuditPage, CanaryState, Health, Phase};

use crate::api_writes::{JSON, error, post_with};
use crate::support::{TestApp, eventually, http_get};

pub(crate) async fn status(app: &TestApp) -> CanaryState {
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
    let (closed, _held) = crate::support::refusing_address();
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

#[tokio::test]
async fn the_openapi_document_is_served_and_matches_the_routes() {
    // With a shadow step, so that its report is there to be found.
    let app = TestApp::start_with(|config| {
        config.validation.shadow = Some(serde_yaml_ng::from_str("{ share: 5 }").unwrap());
    })
    .await;
    let (code, headers, body) = http_get(&app.url("/admin/canary/openapi.yaml"), "*/*").await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(headers["content-type"], "application/yaml");
    let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).unwrap();
    let paths = document["paths"].as_mapping().expect("paths");
    assert!(paths.len() >= 15, "{} paths documented", paths.len());
    for (path, operations) in paths {
        let path = path.as_str().unwrap();
        let concrete = path
            .replace("{handle}", "nonesuch")
            .replace("{percent}", "5")
            .replace("{event}", "health-check")
            .replace("{id}", "4242");
        for (method, operation) in operations.as_mapping().unwrap() {
            let method = method.as_str().unwrap();
            assert!(
                operation["responses"]
                    .as_mapping()
                    .is_some_and(|responses| !responses.is_empty()),
                "{method} {path} lists its responses"
            );
            let code = match method {
                "get" if path.ends_with("/ws") => continue,
                // Answers 404 by design outside `canary demo`; demo.rs covers both.
                _ if path == canary_shared::demo::DEMO_PATH => continue,
                "get" => http_get(&app.url(&concrete), "application/json").await.0,
                // No device has this id, but the route exists: 404 with an
                // error body naming it.
                "post" if path.contains("{id}") => {
                    let (code, body) = post_with(&app, &concrete, &[JSON], "{}").await;
                    assert_eq!(code, StatusCode::NOT_FOUND, "POST {path}: {body}");
                    assert!(body.contains("devices/4242"), "POST {path}: {body}");
                    continue;
                }
                "post" => post_with(&app, &concrete, &[JSON], "{}").await.0,
                // No session has this handle, but the route exists: 404 with
                // an error body naming it, not the router's bare 404.
                "delete" => {
                    let client = hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build_http::<http_body_util::Full<hyper::body::Bytes>>();
                    let request = hyper::Request::delete(app.url(&concrete))
                        .body(http_body_util::Full::default())
                        .unwrap();
                    let (code, _, body) = crate::support::send(client, request).await;
                    assert_eq!(code, StatusCode::NOT_FOUND, "DELETE {path}: {body}");
                    assert!(
                        body.contains("session") || body.contains("devices/4242"),
                        "DELETE {path}: {body}"
                    );
                    continue;
                }
                other => panic!("undocumented method {other}"),
            };
            assert!(
                code != StatusCode::NOT_FOUND && code != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but the server answers {code}"
            );
        }
    }
}

/// A page size outside what a query allows is refused, naming the bounds,
/// not quietly clamped to something the caller did not ask for.
#[tokio::test]
async fn a_limit_out_of_range_is_refused_with_its_bounds() {
    let app = TestApp::start().await;
    for (path, bounds) in [
        ("/admin/canary/audit?limit=501", "from 1 to 500, got 501"),
        ("/admin/canary/audit?limit=0", "from 1 to 500, got 0"),
        (
            "/admin/canary/metrics/history?side=canary&limit=86401",
            "from 1 to 86400, got 86401",
        ),
    ] {
        let (code, _, body) = http_get(&app.url(path), "application/json").await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{path}: {body}");
        assert!(
            body.contains("limit") && body.contains(bounds),
            "{path}: {body}"
        );
    }
    let (code, _, body) = http_get(
        &app.url("/admin/canary/audit?limit=500"),
        "application/json",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

/// A plain GET of the WebSocket route is told, in the API's JSON error,
/// that it needs an upgrade.
#[tokio::test]
async fn a_plain_get_of_the_websocket_route_gets_a_json_error_naming_the_upgrade() {
    let app = TestApp::start().await;
    let (code, headers, body) = http_get(&app.url("/admin/canary/ws"), "application/json").await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    let error: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(error["field"], "Upgrade", "{body}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("WebSocket upgrade"),
        "{body}"
    );
}

/// The document and the access table name the same routes with the same
/// roles, so a script's author can trust it (the console's own files and the
/// bare `scale` forms, which only answer with an error, are left out).
#[test]
fn the_openapi_document_names_every_route_with_its_role() {
    use canary_server::api::access::{ROUTES, RouteAccess};

    let document: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(include_str!("../../openapi.yaml")).unwrap();
    let mut documented = std::collections::BTreeSet::new();
    for (path, operations) in document["paths"].as_mapping().unwrap() {
        for (method, operation) in operations.as_mapping().unwrap() {
            let role = operation["x-canary-role"]
                .as_str()
                .unwrap_or_else(|| panic!("{method:?} {path:?} has no x-canary-role"));
            // The document names each webhook event apart, for its body.
            let path = path.as_str().unwrap();
            let path = match path.strip_prefix("/admin/canary/webhook/") {
                Some(_) => "/admin/canary/webhook/{event}",
                None => path,
            };
            documented.insert((
                method.as_str().unwrap().to_uppercase(),
                path.to_owned(),
                role.to_owned(),
            ));
        }
    }
    let served: std::collections::BTreeSet<_> = ROUTES
        .iter()
        .filter(|(_, path, _)| {
            !matches!(
                *path,
                "/" | "/admin/canary"
                    | "/admin/canary/"
                    | "/admin/canary/{*path}"
                    | "/admin/canary/scale"
                    | "/admin/canary/scale/"
            )
        })
        .map(|(method, path, access)| {
            let role = match access {
                RouteAccess::Public => "public".to_owned(),
                RouteAccess::Needs(role) => role.as_str().to_owned(),
            };
            (method.as_str().to_owned(), (*path).to_owned(), role)
        })
        .collect();
    assert_eq!(documented, served);
}

#[tokio::test]
async fn the_config_in_effect_is_served_as_written() {
    let app = TestApp::start().await;
    let (code, _, body) = http_get(&app.url("/admin/canary/config"), "application/json").await;
    assert_eq!(code, StatusCode::OK);
    let config: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        config["canary"]["traffic_steps"],
        serde_json::json!([5.0, 25.0, 50.0, 100.0])
    );
    assert_eq!(config["canary"]["auto_progression"]["wait_time"], "1d");
    assert_eq!(config["canary"]["safety_checks"][0]["comparator"], "max");
    assert_eq!(config["proxy"]["client_header_timeout"], "300ms");

    let (code, _, body) = http_get(&app.url("/admin/canary/settings"), "application/json").await;
    assert_eq!(code, StatusCode::OK);
    let settings: canary_shared::RolloutSettings = serde_json::from_str(&body).unwrap();
    assert_eq!(settings.wait_ms, 24 * 3600 * 1000);
    assert_eq!(settings.traffic_steps.len(), 4);
    assert_eq!(settings.stickiness, "cookie canary_bucket for 24 h");
    assert_eq!(settings.on_long_no_data, "hold");
    assert_eq!(
        (settings.judge.as_str(), settings.judge_alpha),
        ("off", 0.01),
        "the judge's mode and promise are there for the console to say"
    );
}

#[tokio::test]
async fn a_canary_that_fails_its_requests_is_rolled_back_without_a_human() {
    let app = TestApp::start().await;
    app.set_share(50.0).await;
    app.canary.set_status(500);
    // Traffic until the controller acts; the evaluation runs every second.
    let state = crate::support::eventually("an automatic rollback", async || {
        for _ in 0..20 {
            let _ = http_get(&app.proxy_url("/work"), "*/*").await;
        }
        let state = status(&app).await;
        matches!(state.phase, Phase::RollingBack | Phase::RolledBack).then_some(state)
    })
    .await;
    assert_eq!(state.traffic.canary(), canary_shared::CanaryShare::ZERO);
    let (_, _, body) = http_get(
        &app.url("/admin/canary/audit?action=auto_rollback"),
        "application/json",
    )
    .await;
    let page: AuditPage = serde_json::from_str(&body).unwrap();
    let decision = &page.events[0];
    assert_eq!(decision.actor, "controller");
    let reason = decision.reason.as_deref().unwrap_or_default();
    assert!(
        reason.starts_with("Success rate threshold") || reason.starts_with("Error rate threshold"),
        "{reason}"
    );
    let figures = decision
        .metrics
        .as_ref()
        .expect("the figures behind the decision");
    assert!(figures.canary.errors_5xx > 0);
}

#[tokio::test]
async fn another_sites_page_cannot_act_through_the_operators_browser() {
    let app = TestApp::start().await;
    app.set_share(25.0).await;
    let host = app.addr.to_string();
    for headers in [
        vec![("origin", "http://evil.example"), ("host", host.as_str())],
        vec![("origin", "null"), ("host", host.as_str())],
        vec![("sec-fetch-site", "cross-site")],
    ] {
        let (code, body) = post_with(&app, "/admin/canary/stop", &headers, "").await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{headers:?}: {body}");
        assert_eq!(error(&body).code, "cross_site");
    }
    assert_eq!(
        status(&app).await.traffic.canary().percent(),
        25.0,
        "nothing was stopped"
    );

    // The WebSocket handshake is held to the same rule.
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(format!(
            "ws://{}/admin/canary/ws",
            app.addr
        ))
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "a foreign page opened the stream");

    // The console's own page passes.
    let origin = format!("http://{host}");
    let (code, body) = post_with(
        &app,
        "/admin/canary/continue",
        &[("origin", &origin), ("host", &host)],
        "",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_admin_listener_reachable_from_other_machines_is_refused() {
    let admin = tokio::net::TcpListener::bind("0.0.0.0:0").await.unwrap();
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config =
        crate::support::test_config("http://127.0.0.1:1", "http://127.0.0.1:2", dir.path());
    config.server.data_dir = dir.path().join("data");
    let refused = canary_server::start(
        config,
        canary_server::Listeners {
            admin,
            proxy: Some(proxy),
        },
        std::sync::Arc::new(canary_server::adapters::clock::SystemClock),
        std::future::pending(),
    )
    .expect_err("a 0.0.0.0 admin listener is refused");
    let message = refused.to_string();
    assert!(
        message.contains("refusing to serve the admin API on 0.0.0.0:"),
        "{message}"
    );
    assert!(
        message.contains("ssh -L"),
        "the message says how to reach it safely: {message}"
    );
}

#[tokio::test]
async fn a_new_rollout_is_judged_on_its_own_requests_not_the_last_minute_of_the_one_before() {
    let app = TestApp::start().await;
    // The first canary fails every request and is rolled back.
    app.canary.set_status(500);
    app.start_canary().await;
    let traffic = crate::support::background_traffic(&app);
    eventually("the rollback", async || {
        (status(&app).await.phase == Phase::RolledBack).then_some(())
    })
    .await;
    // Fixed within the same minute and started again: its own requests are clean.
    app.canary.set_status(200);
    app.start_canary().await;
    // Without forgetting, the old errors would stay in its last minute and
    // roll the fixed canary back at once.
    let state = eventually("the new canary judged on its own requests", async || {
        let state = status(&app).await;
        assert_ne!(state.phase, Phase::RollingBack, "{}", state.summary);
        (state.canary.request_count >= 20 && state.canary.error_rate == Some(0.0)).then_some(state)
    })
    .await;
    traffic.abort();
    assert_eq!(state.phase, Phase::Progressing, "{}", state.summary);
}
