//! Writes through the REST API on a real socket: a script driving a whole
//! rollout, a stop, the 4xx answers to bad writes (nothing changed),
//! `If-Match` and idempotency keys, and two clients racing.

use axum::http::StatusCode;
use canary_shared::{ApiErrorBody, AuditPage, CanaryState, Phase};

use crate::api::status;
use crate::support::{TestApp, actions_oldest_first, http_get};

async fn post(app: &TestApp, path: &str) -> (StatusCode, String) {
    post_with(app, path, &[], "").await
}

/// POSTs `body` with `headers` and reads the answer.
pub(crate) async fn post_with(
    app: &TestApp,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (StatusCode, String) {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<hyper::body::Bytes>>();
    let mut request = hyper::Request::post(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    let (code, _, body) = crate::support::send(client, request).await;
    (code, body)
}

pub(crate) const JSON: (&str, &str) = ("content-type", "application/json");

pub(crate) fn error(body: &str) -> ApiErrorBody {
    serde_json::from_str(body).unwrap_or_else(|err| panic!("not an error body ({err}): {body}"))
}

#[tokio::test]
async fn a_script_runs_a_whole_canary_through_the_rest_api() {
    let app = TestApp::start().await;
    let (code, body) = post_with(
        &app,
        "/admin/canary/start",
        &[JSON],
        r#"{"image_tag":"v2.7.0"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let state: CanaryState = serde_json::from_str(&body).unwrap();
    assert_eq!(state.phase, Phase::BuildDeploy);
    let state = app.wait_for_phase(Phase::Progressing).await;
    assert_eq!(
        state.traffic.canary().percent(),
        5.0,
        "the default starting share"
    );

    let (code, body) = post(&app, "/admin/canary/scale/25").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (_, _, served) = http_get(&app.proxy_url("/anything"), "*/*").await;
    assert!(served == "production" || served == "canary");
    let (code, body) = post_with(
        &app,
        "/admin/canary/auto-progression",
        &[JSON],
        r#"{"enabled":"no"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(error(&body).field.as_deref(), Some("enabled"));
    let (code, body) = post_with(
        &app,
        "/admin/canary/auto-progression",
        &[JSON],
        r#"{"enabled":false}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let state: CanaryState = serde_json::from_str(&body).unwrap();
    assert!(!state.auto_progression.enabled && !state.auto_progression.as_configured);
    assert!(
        state
            .summary
            .ends_with("waiting for an operator to continue"),
        "{}",
        state.summary
    );
    for step in ["continue", "continue"] {
        let (code, body) = post(&app, &format!("/admin/canary/{step}")).await;
        assert_eq!(code, StatusCode::OK, "{step}: {body}");
    }
    assert_eq!(status(&app).await.traffic.canary().percent(), 100.0);
    let (code, _) = post(&app, "/admin/canary/promote").await;
    assert_eq!(code, StatusCode::OK);
    app.wait_for_phase(Phase::Promoted).await;

    let (code, _, body) = http_get(
        &app.url("/admin/canary/audit?limit=100"),
        "application/json",
    )
    .await;
    assert_eq!(code, StatusCode::OK);
    let page: AuditPage = serde_json::from_str(&body).unwrap();
    let actions = actions_oldest_first(&page);
    assert_eq!(
        actions,
        [
            "start",
            "deployed",
            "healthy",
            "scale",
            "auto_progression_off",
            "continue",
            "continue",
            "promote",
            "promoted"
        ],
        "the audit trail tells the story in order"
    );
    let seqs: Vec<u64> = page.events.iter().rev().map(|event| event.seq).collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<u64>>(), "gap-free");
    assert!(
        page.events.iter().all(|event| event.metrics.is_some()),
        "each carries the figures of its moment"
    );
}

#[tokio::test]
async fn a_stop_moves_every_request_back_to_production_at_once() {
    let app = TestApp::start().await;
    app.set_share(100.0).await;
    let (_, _, served) = http_get(&app.proxy_url("/x"), "*/*").await;
    assert_eq!(served, "canary");
    let (code, body) = post_with(
        &app,
        "/admin/canary/stop",
        &[JSON],
        r#"{"reason":"pager went off"}"#,
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let state: CanaryState = serde_json::from_str(&body).unwrap();
    assert_eq!(state.traffic.canary(), canary_shared::CanaryShare::ZERO);
    let (_, _, served) = http_get(&app.proxy_url("/x"), "*/*").await;
    assert_eq!(served, "production", "acknowledged means in effect");
    let state = app.wait_for_phase(Phase::RolledBack).await;
    assert_eq!(state.summary, "Rolled back: pager went off");
}

#[tokio::test]
async fn bad_writes_get_the_right_4xx_and_change_nothing() {
    let app = TestApp::start().await;
    app.set_share(5.0).await;
    let before = status(&app).await;
    let eleven_mb = format!(r#"{{"image_tag":"{}"}}"#, "x".repeat(11 << 20));
    // Path, headers, body, expected status, expected error code.
    type Case<'a> = (
        &'a str,
        Vec<(&'a str, &'a str)>,
        String,
        StatusCode,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "/admin/canary/scale/-1",
            vec![],
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
        ),
        (
            "/admin/canary/scale/101",
            vec![],
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
        ),
        (
            "/admin/canary/scale/50.555",
            vec![],
            String::new(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "out_of_range",
        ),
        (
            "/admin/canary/scale/abc",
            vec![],
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/admin/canary/scale/",
            vec![],
            String::new(),
            StatusCode::BAD_REQUEST,
            "invalid_field",
        ),
        (
            "/admin/canary/start",
            vec![JSON],
            r#"{"image_tag":"v3","traffic_percent":null}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "/admin/canary/start",
            vec![JSON],
            r#"{"traffic_percent":5}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "/admin/canary/start",
            vec![JSON],
            r#"{"image_tag":"v3","traffic_percent":"abc"}"#.to_owned(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            "/admin/canary/start",
            vec![JSON],
            r#"{"image_tag":"v3""#.to_owned(),
            StatusCode::BAD_REQUEST,
            "bad_json",
        ),
        (
            "/admin/canary/start",
            vec![("content-type", "text/plain")],
            r#"{"image_tag":"v3"}"#.to_owned(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            "/admin/canary/start",
            vec![JSON],
            eleven_mb,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            "/admin/canary/start",
            vec![JSON],
            r#"{"image_tag":"v3"}"#.to_owned(),
            StatusCode::CONFLICT,
            "not_allowed",
        ),
        (
            "/admin/canary/resume",
            vec![],
            String::new(),
            StatusCode::CONFLICT,
            "not_allowed",
        ),
        (
            "/admin/canary/continue",
            vec![("if-match", "1")],
            String::new(),
            StatusCode::CONFLICT,
            "stale_revision",
        ),
        (
            "/admin/canary/no-such-command",
            vec![],
            String::new(),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (path, headers, body, expected_status, expected_code) in cases {
        let (code, answer) = post_with(&app, path, &headers, &body).await;
        assert_eq!(
            code,
            expected_status,
            "{path} {}: {}",
            &body[..body.len().min(60)],
            &answer[..answer.len().min(300)]
        );
        assert_eq!(error(&answer).code, expected_code, "{path}: {answer}");
    }
    let (_, answer) = post_with(
        &app,
        "/admin/canary/start",
        &[JSON],
        r#"{"image_tag":"v3","traffic_percent":101}"#,
    )
    .await;
    assert_eq!(
        error(&answer).field.as_deref(),
        Some("traffic_percent"),
        "{answer}"
    );
    let (code, _, _) = http_get(&app.url("/admin/canary/scale/5"), "application/json").await;
    assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    let after = status(&app).await;
    assert_eq!(
        after.traffic, before.traffic,
        "no bad request changed the share"
    );
    assert_eq!(after.phase, before.phase);
}

#[tokio::test]
async fn if_match_guards_and_an_idempotency_key_applies_once() {
    let app = TestApp::start().await;
    app.set_share(5.0).await;
    let revision = status(&app).await.revision.to_string();
    let (code, body) = post_with(
        &app,
        "/admin/canary/continue",
        &[("if-match", &revision)],
        "",
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{body}");
    let (code, _) = post_with(
        &app,
        "/admin/canary/continue",
        &[("if-match", &revision)],
        "",
    )
    .await;
    assert_eq!(code, StatusCode::CONFLICT, "the same revision is stale now");

    let key = ("idempotency-key", "retry-me-1");
    let (first_code, first) = post_with(&app, "/admin/canary/continue", &[key], "").await;
    assert_eq!(first_code, StatusCode::OK);
    let (second_code, second) = post_with(&app, "/admin/canary/continue", &[key], "").await;
    assert_eq!(second_code, StatusCode::OK);
    assert_eq!(first, second, "the retry gets the first answer");
    assert_eq!(
        status(&app).await.traffic.canary().percent(),
        50.0,
        "applied once: 5 → 25 → 50, not 100"
    );
    // The same key with another command is another request: it runs.
    let (code, body) = post_with(&app, "/admin/canary/pause", &[key], "").await;
    assert_eq!(code, StatusCode::OK, "{body}");
    assert_eq!(
        status(&app).await.phase,
        Phase::Paused,
        "not the remembered answer"
    );
}

#[tokio::test]
async fn two_clients_racing_end_in_one_state_the_audit_explains() {
    let app = TestApp::start().await;
    app.set_share(25.0).await;
    let (stop, promote) = tokio::join!(
        post_with(&app, "/admin/canary/stop", &[JSON], r#"{"reason":"first"}"#),
        post(&app, "/admin/canary/promote"),
    );
    let oks = [stop.0, promote.0]
        .iter()
        .filter(|code| **code == StatusCode::OK)
        .count();
    assert!(oks >= 1, "{stop:?} {promote:?}");
    let state = status(&app).await;
    let (_, _, body) = http_get(
        &app.url("/admin/canary/audit?limit=100"),
        "application/json",
    )
    .await;
    let page: AuditPage = serde_json::from_str(&body).unwrap();
    let latest = &page.events[0];
    assert_eq!(
        latest.to_phase, state.phase,
        "the newest entry explains the current phase"
    );
    assert_eq!(latest.to_percent, state.traffic.canary());
    // Whatever the order, a stop always wins: the canary ends with no traffic.
    assert_eq!(
        app.wait_for_phase(Phase::RolledBack).await.traffic.canary(),
        canary_shared::CanaryShare::ZERO
    );
}
