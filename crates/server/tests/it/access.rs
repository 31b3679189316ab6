//! Access control end to end: the role matrix over every route, logins and
//! sessions, cross-site and cross-origin attempts, WebSocket commands
//! (notifications to a real receiver are in `notifications.rs`).

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, Method, StatusCode};
use canary_server::adapters::credentials::{hash_password, new_token};
use canary_server::api::access::{ROUTES, RouteAccess};
use canary_server::config::Config;
use canary_shared::{ClientMessage, Command, Role, ServerMessage};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::{self, Message, client::IntoClientRequest};

use crate::support::{TestApp, eventually};

const PASSWORD: &str = "a long test password";

/// Secrets for one token per role, and users named after their roles.
struct Secrets {
    viewer: String,
    operator: String,
    admin: String,
}

/// Adds an auth section: users `vera` (viewer), `oscar` (operator) and `ada`
/// (admin), all with [`PASSWORD`], and one token per role.
fn with_auth(config: &mut Config, extra: &str) -> Secrets {
    let hash = hash_password(PASSWORD).unwrap();
    let (viewer, viewer_hash) = new_token().unwrap();
    let (operator, operator_hash) = new_token().unwrap();
    let (admin, admin_hash) = new_token().unwrap();
    let yaml = format!(
        r#"
canary:
  auto_progression: {{ enabled: false, wait_time: "1h", thresholds: {{ max_latency: "1000ms", min_success_rate: 0.85, max_error_rate: 0.15 }} }}
  traffic_steps: [5, 100]
auth:
  users:
    - {{ name: vera, role: viewer, password_hash: "{hash}" }}
    - {{ name: oscar, role: operator, password_hash: "{hash}" }}
    - {{ name: ada, role: admin, password_hash: "{hash}" }}
  tokens:
    - {{ name: viewer-bot, role: viewer, secret_hash: "{viewer_hash}" }}
    - {{ name: deploy-bot, role: operator, secret_hash: "{operator_hash}" }}
    - {{ name: admin-bot, role: admin, secret_hash: "{admin_hash}" }}
{extra}
"#
    );
    let parsed = Config::from_yaml(&yaml).unwrap();
    config.auth = parsed.auth;
    config.notifications = parsed.notifications;
    Secrets {
        viewer,
        operator,
        admin,
    }
}

/// A request with optional headers and body; returns status, headers, body.
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    headers: &[(&str, String)],
    body: &str,
) -> (StatusCode, HeaderMap, String) {
    let mut request = hyper::Request::builder().method(method).uri(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    if !body.is_empty() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            body.to_owned(),
        )))
        .unwrap();
    crate::support::send(crate::support::json_client(), request).await
}

fn bearer(secret: &str) -> (&'static str, String) {
    ("authorization", format!("Bearer {secret}"))
}

/// Logs in and returns the `name=value` of the session cookie.
async fn login(app: &TestApp, user: &str, extra: &[(&str, String)]) -> String {
    let (status, headers, body) = call(
        app,
        Method::POST,
        "/admin/canary/login",
        extra,
        &format!(r#"{{"user":"{user}","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cookie = headers["set-cookie"].to_str().unwrap().to_owned();
    cookie.split(';').next().unwrap().to_owned()
}

fn concrete(route: &str) -> String {
    route
        .replace("{*path}", "favicon.svg")
        .replace("{percent}", "25")
        .replace("{event}", "failed")
        .replace("{handle}", "no-such-session")
}

#[tokio::test]
async fn every_route_answers_401_without_credentials_and_403_to_a_weaker_role() {
    let mut secrets = None;
    let app = TestApp::start_with(|config| secrets = Some(with_auth(config, ""))).await;
    let secrets = secrets.unwrap();
    let identities = [
        (None, "no credentials"),
        (
            Some((Role::Viewer, secrets.viewer.as_str())),
            "viewer token",
        ),
        (
            Some((Role::Operator, secrets.operator.as_str())),
            "operator token",
        ),
        (Some((Role::Admin, secrets.admin.as_str())), "admin token"),
    ];
    for (method, route, access) in ROUTES {
        let path = concrete(route);
        for (identity, label) in &identities {
            let headers: Vec<(&str, String)> =
                identity.iter().map(|(_, secret)| bearer(secret)).collect();
            let (status, _, body) = call(&app, method.clone(), &path, &headers, "").await;
            let expected_denial = match (access, identity) {
                (RouteAccess::Public, _) => None,
                (RouteAccess::Needs(_), None) => Some(StatusCode::UNAUTHORIZED),
                (RouteAccess::Needs(needed), Some((role, _))) if !role.allows(*needed) => {
                    Some(StatusCode::FORBIDDEN)
                }
                (RouteAccess::Needs(_), Some(_)) => None,
            };
            match expected_denial {
                Some(denial) => {
                    assert_eq!(status, denial, "{method} {path} with {label}: {body}");
                    assert!(body.contains("\"message\""), "{body}");
                }
                None => assert!(
                    status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN,
                    "{method} {path} with {label} was refused: {status} {body}"
                ),
            }
        }
    }
    // A token in the query string is refused outright, valid or not.
    let (status, _, body) = call(
        &app,
        Method::GET,
        &format!("/admin/canary/status?access_token={}", secrets.admin),
        &[],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _, _) = call(
        &app,
        Method::GET,
        "/admin/canary/status",
        &[bearer("cnry_wrong")],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_login_gives_a_strict_cookie_a_new_session_each_time_and_logout_ends_it() {
    let mut secrets = None;
    let app = TestApp::start_with(|config| secrets = Some(with_auth(config, ""))).await;
    let secrets = secrets.unwrap();
    let (status, headers, body) = call(
        &app,
        Method::POST,
        "/admin/canary/login",
        &[],
        &format!(r#"{{"user":"oscar","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains(r#""name":"oscar""#) && body.contains(r#""role":"operator""#));
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin/canary"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "plain HTTP: {set_cookie}");
    let first = set_cookie.split(';').next().unwrap().to_owned();

    let (status, _, me) = call(
        &app,
        Method::GET,
        "/admin/canary/me",
        &[("cookie", first.clone())],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(me.contains(r#""kind":"session""#), "{me}");

    // Logging in again with the old cookie replaces the session.
    let origin = ("origin", format!("http://{}", app.addr));
    let second = login(&app, "oscar", &[("cookie", first.clone()), origin.clone()]).await;
    assert_ne!(first, second);
    let (status, _, _) = call(
        &app,
        Method::GET,
        "/admin/canary/status",
        &[("cookie", first)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the old session ended");

    // The operator's session can act from the console's own origin.
    let (status, _, body) = call(
        &app,
        Method::POST,
        "/admin/canary/start",
        &[("cookie", second.clone()), origin.clone()],
        r#"{"image_tag":"v2.7.0"}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, headers, _) = call(
        &app,
        Method::POST,
        "/admin/canary/logout",
        &[("cookie", second.clone()), origin],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        headers["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let (status, _, _) = call(
        &app,
        Method::GET,
        "/admin/canary/status",
        &[("cookie", second)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The trail names who did what.
    let audit = eventually("the access records", async || {
        let page: canary_shared::AuditPage = serde_json::from_str(
            &call(
                &app,
                Method::GET,
                "/admin/canary/audit?limit=50",
                &[bearer(&secrets.viewer)],
                "",
            )
            .await
            .2,
        )
        .ok()?;
        let actions: Vec<(String, String)> = page
            .events
            .iter()
            .rev()
            .map(|event| (event.actor.clone(), event.action.clone()))
            .collect();
        actions
            .iter()
            .any(|(_, action)| action == "logout")
            .then_some(actions)
    })
    .await;
    for expected in [("oscar", "login"), ("oscar", "start"), ("oscar", "logout")] {
        assert!(
            audit
                .iter()
                .any(|(actor, action)| (actor.as_str(), action.as_str()) == expected),
            "{expected:?} not in {audit:?}"
        );
    }
}

#[tokio::test]
async fn wrong_passwords_get_one_message_and_the_source_is_slowed_down() {
    let app = TestApp::start_with(|config| {
        with_auth(config, "");
    })
    .await;
    let attempt = async |user: &str, password: &str| {
        call(
            &app,
            Method::POST,
            "/admin/canary/login",
            &[],
            &format!(r#"{{"user":"{user}","password":"{password}"}}"#),
        )
        .await
    };
    let (unknown_status, _, unknown_body) = attempt("mallory", PASSWORD).await;
    let (wrong_status, _, wrong_body) = attempt("oscar", "guess").await;
    assert_eq!(unknown_status, StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown_body, wrong_body, "one message for both");
    // Six wrong guesses at oscar from this address (five are free): the
    // next attempt waits, even with the right password.
    for _ in 0..5 {
        attempt("oscar", "guess").await;
    }
    let (status, headers, body) = attempt("oscar", PASSWORD).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert!(headers.contains_key("retry-after"));
}

#[tokio::test]
async fn cookie_writes_caused_by_other_sites_are_refused() {
    let app = TestApp::start_with(|config| {
        with_auth(
            config,
            "  allowed_origins: [\"https://console.example.com\"]",
        );
    })
    .await;
    let own = format!("http://{}", app.addr);
    let cookie = login(&app, "oscar", &[]).await;
    let attempts: [(&str, Vec<(&str, String)>); 5] = [
        (
            "foreign origin",
            vec![("origin", "https://evil.example".to_owned())],
        ),
        (
            "look-alike origin",
            vec![("origin", format!("{own}.evil.example"))],
        ),
        ("null origin", vec![("origin", "null".to_owned())]),
        ("no origin", vec![]),
        (
            "cross-site fetch",
            vec![
                ("origin", own.clone()),
                ("sec-fetch-site", "cross-site".to_owned()),
            ],
        ),
    ];
    for (label, mut headers) in attempts {
        headers.push(("cookie", cookie.clone()));
        let (status, _, body) = call(
            &app,
            Method::POST,
            "/admin/canary/start",
            &headers,
            r#"{"image_tag":"x"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{label}: {body}");
        assert!(body.contains("cross_site"), "{label}: {body}");
    }
    assert_eq!(
        app.controller.state.borrow().phase,
        canary_shared::Phase::Idle
    );
    for origin in [own, "https://console.example.com".to_owned()] {
        let (status, _, body) = call(
            &app,
            Method::POST,
            "/admin/canary/pause",
            &[("cookie", cookie.clone()), ("origin", origin.clone())],
            "",
        )
        .await;
        // Allowed through; the state machine then says pausing is not possible while idle.
        assert_eq!(status, StatusCode::CONFLICT, "{origin}: {body}");
    }
}

async fn websocket(
    app: &TestApp,
    headers: &[(&'static str, String)],
) -> Result<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
    tungstenite::Error,
> {
    let mut request = format!("ws://{}/admin/canary/ws", app.addr)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request)
        .await
        .map(|(socket, _)| socket)
}

#[tokio::test]
async fn websocket_handshakes_with_a_session_need_this_servers_exact_origin() {
    let app = TestApp::start_with(|config| {
        with_auth(config, "");
    })
    .await;
    let cookie = login(&app, "vera", &[]).await;
    let own = format!("http://{}", app.addr);
    for (label, origin) in [
        ("foreign", Some("https://evil.example".to_owned())),
        ("look-alike", Some(format!("{own}.evil.example"))),
        ("null", Some("null".to_owned())),
        ("missing", None),
    ] {
        let mut headers = vec![("cookie", cookie.clone())];
        headers.extend(origin.map(|origin| ("origin", origin)));
        match websocket(&app, &headers).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), StatusCode::FORBIDDEN, "{label}");
            }
            other => panic!("{label} origin was not refused: {:?}", other.map(|_| ())),
        }
    }
    let (status_no_credentials, _) = match websocket(&app, &[("origin", own.clone())]).await {
        Err(tungstenite::Error::Http(response)) => (response.status(), ()),
        other => panic!(
            "a socket without credentials opened: {:?}",
            other.map(|_| ())
        ),
    };
    assert_eq!(status_no_credentials, StatusCode::UNAUTHORIZED);
    let mut socket = websocket(&app, &[("cookie", cookie), ("origin", own)])
        .await
        .expect("this server's own page may open the stream");
    let first = socket.next().await.unwrap().unwrap();
    assert!(first.to_text().unwrap().contains(r#""type":"snapshot""#));
}

/// The next reply on `socket`, skipping the stream's other messages.
async fn reply(
    socket: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
) -> Option<canary_shared::ApiErrorBody> {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a reply within 10 s")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = message
            && let Ok(ServerMessage::Reply { error, .. }) = serde_json::from_str(text.as_str())
        {
            return error;
        }
    }
}

#[tokio::test]
async fn a_viewers_socket_cannot_send_commands_and_an_operators_can() {
    let mut secrets = None;
    let app = TestApp::start_with(|config| secrets = Some(with_auth(config, ""))).await;
    let secrets = secrets.unwrap();
    let start = |id| {
        serde_json::to_string(&ClientMessage::Command {
            id,
            command: Command::Start(canary_shared::StartRequest {
                image_tag: "v2.7.0".to_owned(),
                traffic_percent: canary_shared::CanaryShare::from_percent(5.0).unwrap(),
            }),
            expected_revision: None,
        })
        .unwrap()
    };
    let mut viewer = websocket(&app, &[bearer(&secrets.viewer)]).await.unwrap();
    viewer.send(Message::text(start(1))).await.unwrap();
    let refused = reply(&mut viewer)
        .await
        .expect("a viewer's command is refused");
    assert_eq!(refused.code, "forbidden", "{refused:?}");
    assert_eq!(
        app.controller.state.borrow().phase,
        canary_shared::Phase::Idle
    );

    let mut operator = websocket(&app, &[bearer(&secrets.operator)]).await.unwrap();
    operator.send(Message::text(start(2))).await.unwrap();
    assert_eq!(reply(&mut operator).await, None);
    app.wait_for_phase(canary_shared::Phase::Progressing).await;
}

#[tokio::test]
async fn revoked_and_idle_sessions_are_refused_and_their_sockets_close() {
    let mut secrets = None;
    let app = TestApp::start_with(|config| {
        secrets = Some(with_auth(
            config,
            "  session: { idle_timeout: 1500ms, absolute_timeout: 1h }",
        ));
    })
    .await;
    let secrets = secrets.unwrap();
    let own = ("origin", format!("http://{}", app.addr));
    let cookie = login(&app, "oscar", &[]).await;
    let mut socket = websocket(&app, &[("cookie", cookie.clone()), own.clone()])
        .await
        .unwrap();
    let (_, _, sessions) = call(
        &app,
        Method::GET,
        "/admin/canary/sessions",
        &[bearer(&secrets.admin)],
        "",
    )
    .await;
    let sessions: serde_json::Value = serde_json::from_str(&sessions).unwrap();
    let handle = sessions[0]["handle"].as_str().unwrap().to_owned();
    assert_eq!(sessions[0]["user"], "oscar");
    assert!(
        !cookie.contains(&handle),
        "the handle does not reveal the secret"
    );
    let (status, _, _) = call(
        &app,
        Method::DELETE,
        &format!("/admin/canary/sessions/{handle}"),
        &[bearer(&secrets.admin)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(message)) = socket.next().await {
            if let Message::Close(frame) = message {
                return frame;
            }
        }
        None
    })
    .await
    .expect("the socket closes after the revocation");
    assert_eq!(u16::from(closed.unwrap().code), 4401);
    let (status, _, _) = call(
        &app,
        Method::GET,
        "/admin/canary/status",
        &[("cookie", cookie)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // An idle session ends on its own.
    let idle = login(&app, "vera", &[]).await;
    tokio::time::sleep(Duration::from_millis(1700)).await;
    let (status, _, body) = call(
        &app,
        Method::GET,
        "/admin/canary/status",
        &[("cookie", idle)],
        "",
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("without use"), "{body}");
}

#[tokio::test]
async fn over_tls_the_console_signs_in_with_a_secure_cookie() {
    use http_body_util::BodyExt;
    use rustls::pki_types::{CertificateDer, ServerName};

    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cert_file = dir.path().join("cert.pem");
    let key_file = dir.path().join("key.pem");
    std::fs::write(&cert_file, certified.cert.pem()).unwrap();
    std::fs::write(&key_file, certified.signing_key.serialize_pem()).unwrap();
    let app = TestApp::start_with(|config| {
        with_auth(config, "");
        config.server.tls = Some(canary_server::config::TlsConfig {
            cert_file: cert_file.clone(),
            key_file: key_file.clone(),
        });
    })
    .await;

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(certified.cert.der().to_vec()))
        .unwrap();
    let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_config));
    let https = async |request: hyper::Request<http_body_util::Full<hyper::body::Bytes>>| {
        let tcp = tokio::net::TcpStream::connect(app.addr).await.unwrap();
        let tls = connector
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .expect("the handshake succeeds with the configured certificate");
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .unwrap();
        tokio::spawn(connection);
        let response = sender.send_request(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    };
    let login = hyper::Request::post("/admin/canary/login")
        .header("host", format!("localhost:{}", app.addr.port()))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(hyper::body::Bytes::from(
            format!(r#"{{"user":"vera","password":"{PASSWORD}"}}"#),
        )))
        .unwrap();
    let (status, headers, body) = https(login).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let set_cookie = headers["set-cookie"].to_str().unwrap();
    assert!(set_cookie.contains("; Secure"), "{set_cookie}");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let status_request = hyper::Request::get("/admin/canary/status")
        .header("host", format!("localhost:{}", app.addr.port()))
        .header("cookie", cookie)
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let (status, headers, body) = https(status_request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(body.contains(r#""phase":"idle""#), "{body}");
}

/// The served OpenAPI document declares the credentials this server asks
/// for: bearer token or session with logins, none without (where every
/// caller on loopback acts as `local`), so a generated client or a
/// conformance checker expects what the server does.
#[tokio::test]
async fn the_served_document_declares_credentials_only_when_the_server_asks_for_them() {
    let mut secrets = None;
    let with_logins = TestApp::start_with(|config| secrets = Some(with_auth(config, ""))).await;
    let secrets = secrets.unwrap();
    let without = TestApp::start().await;
    for (app, credentials, expected) in [
        (
            &with_logins,
            vec![bearer(&secrets.viewer)],
            serde_yaml_ng::from_str::<serde_yaml_ng::Value>("[{bearer: []}, {session: []}]")
                .unwrap(),
        ),
        (
            &without,
            Vec::new(),
            serde_yaml_ng::Value::Sequence(Vec::new()),
        ),
    ] {
        let (status, _, body) = call(
            app,
            Method::GET,
            "/admin/canary/openapi.yaml",
            &credentials,
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let document: serde_yaml_ng::Value = serde_yaml_ng::from_str(&body).unwrap();
        assert_eq!(document["security"], expected);
        assert!(document["paths"].as_mapping().unwrap().len() > 20);
    }
}
