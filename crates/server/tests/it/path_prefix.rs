//! canary behind a team's admin panel: served under `server.path_prefix`
//! (the console, the API, the WebSocket, the session cookie, the console's
//! own files), with a link back to the panel.

use axum::http::StatusCode;
use base64::Engine;
use canary_server::adapters::credentials::hash_password;
use canary_server::config::{Config, PanelLink, PathPrefix};
use futures_util::StreamExt;
use sha2::Digest;

use crate::support::{TestApp, http_get, json_client, send};

const PASSWORD: &str = "correct horse battery staple";

/// trunk's start-up script, as it writes it for a console at the root.
const SCRIPT: &str = "\nimport init from '/admin/canary/canary-app-0123456789abcdef.js';\nawait init({ module_or_path: '/admin/canary/canary-app-0123456789abcdef_bg.wasm' });\n";

async fn under_ops(with_logins: bool) -> TestApp {
    let hash = hash_password(PASSWORD).unwrap();
    let app = TestApp::start_with(move |config| {
        config.server.path_prefix = Some(PathPrefix("/ops".to_owned()));
        config.server.panel_link = Some(serde_yaml_ng::from_str::<PanelLink>(
            "{ url: \"https://panel.example.com/\", label: \"Back to the panel\" }",
        )
        .unwrap());
        if with_logins {
            let yaml = format!(
                "canary:\n  traffic_steps: [5, 100]\n  auto_progression: {{ enabled: false, wait_time: 1h, thresholds: {{ max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 }} }}\nauth:\n  users:\n    - {{ name: ada, role: admin, password_hash: \"{hash}\" }}\n"
            );
            config.auth = Config::from_yaml(&yaml).unwrap().auth;
        }
    })
    .await;
    std::fs::write(
        app.assets.path().join("index.html"),
        format!(
            "<!doctype html><script type=\"module\">{SCRIPT}</script><link rel=\"stylesheet\" href=\"/admin/canary/main-0123456789abcdef.css\">"
        ),
    )
    .unwrap();
    app
}

#[tokio::test]
async fn the_console_the_api_and_the_stream_answer_under_the_prefix_and_only_there() {
    let app = under_ops(false).await;
    let (status, _, body) =
        http_get(&app.url("/ops/admin/canary/status"), "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = http_get(&app.url("/admin/canary/status"), "application/json").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not at the root any more");
    let (status, headers, _) = http_get(&app.url("/"), "text/html").await;
    assert_eq!(status, StatusCode::TEMPORARY_REDIRECT);
    assert_eq!(headers["location"], "/ops/admin/canary/");

    // The console's files are asked for under the prefix, and the CSP
    // allows the start-up script as it is sent.
    let (status, headers, html) = http_get(&app.url("/ops/admin/canary/"), "text/html").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        html.contains("import init from '/ops/admin/canary/canary-app-0123456789abcdef.js'"),
        "{html}"
    );
    assert!(
        html.contains("href=\"/ops/admin/canary/main-0123456789abcdef.css\""),
        "{html}"
    );
    let sent_script = SCRIPT.replace("'/admin/canary/", "'/ops/admin/canary/");
    let digest = base64::engine::general_purpose::STANDARD
        .encode(sha2::Sha256::digest(sent_script.as_bytes()));
    let policy = headers["content-security-policy"].to_str().unwrap();
    assert!(policy.contains(&format!("'sha256-{digest}'")), "{policy}");
    let (status, _, _) = http_get(&app.url("/ops/admin/canary/favicon.svg"), "*/*").await;
    assert_eq!(status, StatusCode::OK);

    // The API's own document says where its paths start.
    let (status, _, document) = http_get(&app.url("/ops/admin/canary/openapi.yaml"), "*/*").await;
    assert_eq!(status, StatusCode::OK);
    let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(&document).unwrap();
    assert_eq!(document["servers"][0]["url"].as_str(), Some("/ops"));

    // The header's link back to the panel.
    let (_, _, me) = http_get(&app.url("/ops/admin/canary/me"), "application/json").await;
    let me: canary_shared::Me = serde_json::from_str(&me).unwrap();
    assert_eq!(me.panel_url.as_deref(), Some("https://panel.example.com/"));
    assert_eq!(me.panel_label.as_deref(), Some("Back to the panel"));

    let url = format!("ws://{}/ops/admin/canary/ws", app.addr);
    let (mut socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    let first = socket.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains("\"type\":\"snapshot\""));
}

#[tokio::test]
async fn a_session_cookie_is_scoped_to_the_prefixed_console_and_works_there() {
    let app = under_ops(true).await;
    let request = hyper::Request::post(app.url("/ops/admin/canary/login"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            format!(r#"{{"user":"ada","password":"{PASSWORD}"}}"#),
        )))
        .unwrap();
    let (status, headers, body) = send(json_client(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Path=/ops/admin/canary;"), "{cookie}");
    let me: canary_shared::Me = serde_json::from_str(&body).unwrap();
    assert_eq!(me.panel_label.as_deref(), Some("Back to the panel"));

    let session = cookie.split(';').next().unwrap().to_owned();
    let request = hyper::Request::get(app.url("/ops/admin/canary/status"))
        .header("cookie", &session)
        .body(http_body_util::Full::default())
        .unwrap();
    let (status, _, body) = send(json_client(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _, _) = http_get(&app.url("/ops/admin/canary/status"), "application/json").await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the routes keep their roles under the prefix"
    );
}
