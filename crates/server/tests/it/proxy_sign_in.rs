//! Sign-in through an authenticating reverse proxy, through real sockets:
//! the user and groups headers sign a person in from the proxy's own
//! address, the same headers from any other address are ignored, and a
//! person in no mapped group is refused and audited.

use std::net::IpAddr;

use axum::http::StatusCode;
use canary_shared::{AuditPage, CredentialKind, Me, Role};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::support::TestApp;

/// A server whose only sign-in is the proxy at 127.0.0.1 (the tests' own
/// address; 127.0.0.2 plays any other client on the network).
async fn behind_a_proxy() -> TestApp {
    TestApp::start_with(|config| {
        config.auth = Some(
            serde_yaml_ng::from_str(
                r#"
proxy:
  trusted_networks: ["127.0.0.1/32"]
  roles: { admin: [canary-admins], operator: [sre], viewer: [engineering] }
  sign_out_url: "/oauth2/sign_out"
"#,
            )
            .unwrap(),
        );
    })
    .await
}

/// `method path` from `from`, with `headers`: the status and the body.
async fn call(
    app: &TestApp,
    from: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut connector = HttpConnector::new();
    connector.set_local_address(Some(from.parse::<IpAddr>().unwrap()));
    let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(connector);
    let mut request = hyper::Request::builder().method(method).uri(app.url(path));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = client
        .request(request.body(Empty::new()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

const ALICE: &[(&str, &str)] = &[
    ("x-forwarded-user", "alice@example.com"),
    ("x-forwarded-groups", "engineering,sre"),
];

#[tokio::test]
async fn the_proxy_signs_people_in_and_the_same_headers_from_elsewhere_do_not() {
    let app = behind_a_proxy().await;

    let (status, body) = call(&app, "127.0.0.1", "GET", "/admin/canary/me", ALICE).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let me: Me = serde_json::from_str(&body).unwrap();
    assert_eq!(me.name, "alice@example.com");
    assert_eq!(me.role, Role::Operator, "the highest role of her groups");
    assert_eq!(me.kind, CredentialKind::Proxy);
    assert_eq!(me.sign_out_url.as_deref(), Some("/oauth2/sign_out"));

    // An operator may act, and the trail names her.
    let (status, body) = call(
        &app,
        "127.0.0.1",
        "POST",
        "/admin/canary/auto-progression",
        ALICE,
    )
    .await;
    assert_ne!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");

    // The same headers from another address on the network: no one.
    for path in ["/admin/canary/me", "/admin/canary/status"] {
        let (status, body) = call(&app, "127.0.0.2", "GET", path, ALICE).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }
    let (status, _) = call(&app, "127.0.0.2", "POST", "/admin/canary/stop", ALICE).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Nor does a forwarded-for header make another address the proxy.
    let mut forged = ALICE.to_vec();
    forged.push(("x-forwarded-for", "127.0.0.1"));
    let (status, _) = call(&app, "127.0.0.2", "GET", "/admin/canary/me", &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A person in no mapped group is refused, and the refusal recorded.
    let (status, body) = call(
        &app,
        "127.0.0.1",
        "GET",
        "/admin/canary/status",
        &[
            ("x-forwarded-user", "mallory"),
            ("x-forwarded-groups", "sales"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("mallory is in no group that gives a role (groups: sales)"),
        "{body}"
    );
    let viewer = &[
        ("x-forwarded-user", "victor"),
        ("x-forwarded-groups", "engineering"),
    ];
    let (status, _) = call(&app, "127.0.0.1", "POST", "/admin/canary/stop", viewer).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a viewer may not act");

    let admin = &[
        ("x-forwarded-user", "ada"),
        ("x-forwarded-groups", "canary-admins"),
    ];
    let (status, body) = call(
        &app,
        "127.0.0.1",
        "GET",
        "/admin/canary/audit?limit=100",
        admin,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let page: AuditPage = serde_json::from_str(&body).unwrap();
    let logins: Vec<(&str, &str)> = page
        .events
        .iter()
        .filter(|event| event.action == "login")
        .map(|event| {
            (
                event.actor.as_str(),
                event.reason.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        logins.contains(&(
            "alice@example.com",
            "signed in through the authenticating proxy at 127.0.0.1 as operator (groups: engineering, sre)"
        )),
        "{logins:?}"
    );
    assert_eq!(
        logins
            .iter()
            .filter(|(actor, _)| *actor == "alice@example.com")
            .count(),
        1,
        "one login however many requests"
    );
    assert!(
        page.events
            .iter()
            .any(|event| event.action == "access_denied" && event.actor == "mallory"),
        "the refusal is in the trail"
    );
}
