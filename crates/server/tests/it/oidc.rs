//! Single sign-on through real sockets, against an OpenID Connect provider
//! on loopback that does what one does (discovery, keys, PKCE checked at
//! its token endpoint, ES256-signed ID tokens with the nonce it was given):
//! a person signs in with the role their groups give, one in no mapped
//! group is refused, a forged state, a wrong nonce or a bad signature is
//! refused and audited, a provider that is down leaves passwords working,
//! and signing out goes on to the provider's end-session endpoint.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canary_server::adapters::credentials::hash_password;
use canary_server::config::Config;
use p256::ecdsa::signature::Signer as _;
use sha2::Digest;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::{TestApp, http_get, json_client, send};

const CLIENT_ID: &str = "canary-console";
const CLIENT_SECRET: &str = "a client secret the provider knows";

/// How the provider misbehaves, for the refusal tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Twist {
    #[default]
    None,
    /// The ID token carries another nonce than the one asked for.
    WrongNonce,
    /// The ID token's signature is not the provider's.
    ForgedSignature,
}

/// A sign-in the provider remembers between its authorize and token steps.
#[derive(Clone, Debug)]
struct Grant {
    nonce: String,
    challenge: String,
    user: String,
    groups: Vec<String>,
}

#[derive(Clone)]
struct Provider {
    issuer: String,
    key: p256::ecdsa::SigningKey,
    grants: Arc<Mutex<HashMap<String, Grant>>>,
    twist: Arc<Mutex<Twist>>,
    /// `code_verifier`s the token endpoint was sent.
    verifiers: Arc<Mutex<Vec<String>>>,
}

struct FakeProvider {
    provider: Provider,
    task: JoinHandle<()>,
}

impl Drop for FakeProvider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn jwt(key: &p256::ecdsa::SigningKey, claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#);
    let signed = format!("{header}.{}", URL_SAFE_NO_PAD.encode(claims.to_string()));
    let signature: p256::ecdsa::Signature = key.sign(signed.as_bytes());
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

async fn discovery(State(provider): State<Provider>) -> axum::Json<serde_json::Value> {
    let issuer = &provider.issuer;
    axum::Json(serde_json::json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "jwks_uri": format!("{issuer}/jwks"),
        "end_session_endpoint": format!("{issuer}/session/end"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["ES256"],
    }))
}

async fn keys(State(provider): State<Provider>) -> axum::Json<serde_json::Value> {
    let point = provider.key.verifying_key().to_encoded_point(false);
    axum::Json(serde_json::json!({ "keys": [{
        "kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256",
        "x": URL_SAFE_NO_PAD.encode(point.x().unwrap()),
        "y": URL_SAFE_NO_PAD.encode(point.y().unwrap()),
    }]}))
}

async fn token(
    State(provider): State<Provider>,
    headers: axum::http::HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> (StatusCode, axum::Json<serde_json::Value>) {
    let refuse = |error: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({ "error": error })),
        )
    };
    // A confidential client authenticates with HTTP Basic.
    let basic = base64::engine::general_purpose::STANDARD
        .encode(format!("{CLIENT_ID}:{}", CLIENT_SECRET.replace(' ', "+")));
    let authorized = headers
        .get("authorization")
        .is_some_and(|value| value.to_str().unwrap_or_default() == format!("Basic {basic}"));
    if !authorized {
        return refuse("invalid_client");
    }
    let Some(grant) = form
        .get("code")
        .and_then(|code| provider.grants.lock().unwrap().remove(code))
    else {
        return refuse("invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    provider.verifiers.lock().unwrap().push(verifier.clone());
    if URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes())) != grant.challenge {
        return refuse("invalid_grant");
    }
    let twist = *provider.twist.lock().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "iss": provider.issuer, "aud": CLIENT_ID, "sub": format!("id-{}", grant.user),
        "iat": now, "exp": now + 300,
        "nonce": if twist == Twist::WrongNonce { "another".to_owned() } else { grant.nonce },
        "preferred_username": grant.user, "groups": grant.groups,
    });
    let key = if twist == Twist::ForgedSignature {
        p256::ecdsa::SigningKey::from_slice(&[9u8; 32]).unwrap()
    } else {
        provider.key.clone()
    };
    (
        StatusCode::OK,
        axum::Json(serde_json::json!({
            "access_token": "an access token", "token_type": "Bearer", "expires_in": 300,
            "id_token": jwt(&key, &claims),
        })),
    )
}

impl FakeProvider {
    async fn start() -> FakeProvider {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let provider = Provider {
            issuer: format!("http://{addr}"),
            key: p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap(),
            grants: Arc::default(),
            twist: Arc::default(),
            verifiers: Arc::default(),
        };
        let app = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/jwks", get(keys))
            .route("/token", post(token))
            .with_state(provider.clone());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeProvider { provider, task }
    }

    /// The person signs in at the provider: the code it hands back for the
    /// authorization request at `authorize`.
    fn approve(&self, authorize: &str, user: &str, groups: &[&str]) -> String {
        let query = authorize.split_once('?').unwrap().1;
        let params: HashMap<String, String> = serde_urlencoded::from_str(query).unwrap();
        assert_eq!(params["response_type"], "code");
        assert_eq!(params["client_id"], CLIENT_ID);
        assert_eq!(params["code_challenge_method"], "S256", "PKCE with SHA-256");
        assert!(params["scope"].split(' ').any(|scope| scope == "openid"));
        let code = format!("code-{}", self.provider.grants.lock().unwrap().len());
        self.provider.grants.lock().unwrap().insert(
            code.clone(),
            Grant {
                nonce: params["nonce"].clone(),
                challenge: params["code_challenge"].clone(),
                user: user.to_owned(),
                groups: groups.iter().map(|group| (*group).to_owned()).collect(),
            },
        );
        code
    }
}

const PASSWORD: &str = "a long test password";

/// The server, and an admin token to read its audit trail with.
async fn app_with(issuer: &str) -> (TestApp, String) {
    let issuer = issuer.to_owned();
    let hash = hash_password(PASSWORD).unwrap();
    let (token, token_hash) = canary_server::adapters::credentials::new_token().unwrap();
    let app = TestApp::start_with(move |config| {
        let yaml = format!(
            "canary:\n  traffic_steps: [5, 100]\n  auto_progression: {{ enabled: false, wait_time: 1h, thresholds: {{ max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 }} }}\n\
             auth:\n  users:\n    - {{ name: ada, role: admin, password_hash: \"{hash}\" }}\n\
             \x20 tokens:\n    - {{ name: auditor, role: admin, secret_hash: \"{token_hash}\" }}\n\
             \x20 oidc:\n    issuer: \"{issuer}\"\n    client_id: {CLIENT_ID}\n    client_secret: \"{CLIENT_SECRET}\"\n\
             \x20   redirect_url: \"http://canary.test/admin/canary/auth/oidc/callback\"\n\
             \x20   roles: {{ admin: [platform], operator: [sre] }}\n    label: \"Sign in with Example SSO\"\n"
        );
        config.auth = Config::from_yaml(&yaml).unwrap().auth;
    })
    .await;
    (app, token)
}

/// The newest audit entries, read with the admin token.
async fn trail(app: &TestApp, token: &str) -> canary_shared::AuditPage {
    let request = hyper::Request::get(app.url("/admin/canary/audit?limit=50"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let (status, _, body) = send(json_client(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// A browser's GET: status, `Location`, and every `Set-Cookie`.
async fn navigate(
    app: &TestApp,
    path_and_query: &str,
    cookies: &[String],
) -> (StatusCode, String, Vec<String>) {
    let url = if path_and_query.starts_with("http") {
        path_and_query.to_owned()
    } else {
        app.url(path_and_query)
    };
    let mut request = hyper::Request::get(url).header("sec-fetch-site", "cross-site");
    if !cookies.is_empty() {
        request = request.header("cookie", cookies.join("; "));
    }
    let request = request
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let (status, headers, _) = send(json_client(), request).await;
    let location = headers
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let set = headers
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    (status, location, set)
}

fn cookie_named<'a>(set: &'a [String], name: &str) -> &'a str {
    set.iter()
        .find(|cookie| cookie.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {set:?}"))
}

/// `name=value` of a `Set-Cookie`.
fn pair(cookie: &str) -> String {
    cookie.split(';').next().unwrap().to_owned()
}

/// Starts a sign-in: the provider's authorize URL and the login-state cookie.
async fn begin(app: &TestApp) -> (String, String) {
    let (status, location, set) = navigate(app, "/admin/canary/auth/oidc/start", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{location}");
    let state = cookie_named(&set, "canary_oidc");
    assert!(
        state.contains("SameSite=Lax") && state.contains("HttpOnly"),
        "{state}"
    );
    assert!(
        state.contains("Path=/admin/canary/auth/oidc/callback"),
        "{state}"
    );
    (location, pair(state))
}

fn state_of(authorize: &str) -> String {
    let params: HashMap<String, String> =
        serde_urlencoded::from_str(authorize.split_once('?').unwrap().1).unwrap();
    params["state"].clone()
}

async fn callback(
    app: &TestApp,
    code: &str,
    state: &str,
    cookie: &str,
) -> (StatusCode, String, Vec<String>) {
    let query = serde_urlencoded::to_string([("code", code), ("state", state)]).unwrap();
    navigate(
        app,
        &format!("/admin/canary/auth/oidc/callback?{query}"),
        &[cookie.to_owned()],
    )
    .await
}

async fn me(app: &TestApp, session: &str) -> serde_json::Value {
    let request = hyper::Request::get(app.url("/admin/canary/me"))
        .header("cookie", session)
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let (status, _, body) = send(json_client(), request).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_person_signs_in_with_the_role_their_groups_give_and_signs_out_at_the_provider() {
    let idp = FakeProvider::start().await;
    let (app, token) = app_with(&idp.provider.issuer).await;
    let (status, _, options) = http_get(&app.url("/admin/canary/login"), "application/json").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&options).unwrap(),
        serde_json::json!({ "single_sign_on": "Sign in with Example SSO", "passwords": true })
    );

    let (authorize, state_cookie) = begin(&app).await;
    assert!(
        authorize.starts_with(&format!("{}/authorize?", idp.provider.issuer)),
        "{authorize}"
    );
    let code = idp.approve(&authorize, "sam", &["engineering", "sre"]);
    let (status, location, set) = callback(&app, &code, &state_of(&authorize), &state_cookie).await;
    assert_eq!(
        (status, location.as_str()),
        (StatusCode::SEE_OTHER, "/admin/canary/")
    );
    let session = cookie_named(&set, "canary_session");
    assert!(
        session.contains("SameSite=Strict") && session.contains("HttpOnly"),
        "{session}"
    );
    assert!(
        cookie_named(&set, "canary_oidc").contains("Max-Age=0"),
        "the login state is spent"
    );
    let verifiers = idp.provider.verifiers.lock().unwrap().clone();
    assert_eq!(verifiers.len(), 1);
    assert!(
        verifiers[0].len() >= 43,
        "a PKCE verifier went with the code"
    );

    let session = pair(session);
    let me = me(&app, &session).await;
    assert_eq!(me["name"], "sam");
    assert_eq!(me["role"], "operator", "sre maps to operator");
    assert_eq!(me["kind"], "session");
    assert_eq!(me["sign_out_url"], "/admin/canary/auth/oidc/signed-out");
    let trail = trail(&app, &token).await;
    let login = trail
        .events
        .iter()
        .find(|entry| entry.action == "login")
        .unwrap();
    assert_eq!(login.actor, "sam");
    assert!(
        login.reason.as_deref().unwrap().contains("single sign-on"),
        "{login:?}"
    );
    assert!(
        login
            .reason
            .as_deref()
            .unwrap()
            .contains("engineering, sre"),
        "{login:?}"
    );

    // The same code cannot be used twice, nor the login state.
    let (_, location, _) = callback(&app, &code, &state_of(&authorize), &state_cookie).await;
    assert!(location.contains("sign_in_error="), "{location}");

    // Signing out: the console's session ends, then the provider's.
    let logout = hyper::Request::post(app.url("/admin/canary/logout"))
        .header("cookie", &session)
        .header("origin", app.url("").trim_end_matches('/'))
        .body(http_body_util::Full::new(hyper::body::Bytes::new()))
        .unwrap();
    let (status, _, _) = send(json_client(), logout).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, location, _) = navigate(&app, "/admin/canary/auth/oidc/signed-out", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with(&format!("{}/session/end?", idp.provider.issuer)),
        "{location}"
    );
    assert!(
        location.contains(&format!("client_id={CLIENT_ID}")),
        "{location}"
    );
    assert!(
        location.contains("post_logout_redirect_uri=http%3A%2F%2Fcanary.test%2Fadmin%2Fcanary%2F"),
        "{location}"
    );
}

#[tokio::test]
async fn a_person_in_no_mapped_group_is_refused_and_audited() {
    let idp = FakeProvider::start().await;
    let (app, token) = app_with(&idp.provider.issuer).await;
    let (authorize, state_cookie) = begin(&app).await;
    let code = idp.approve(&authorize, "guest", &["contractors"]);
    let (status, location, set) = callback(&app, &code, &state_of(&authorize), &state_cookie).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with("/admin/canary/?sign_in_error="),
        "{location}"
    );
    assert!(location.contains("none+of+your+groups"), "{location}");
    assert!(
        !set.iter()
            .any(|cookie| cookie.starts_with("canary_session=")),
        "{set:?}"
    );
    let trail = trail(&app, &token).await;
    let denied = trail
        .events
        .iter()
        .find(|entry| entry.action == "access_denied")
        .unwrap();
    assert_eq!(denied.actor, "guest");
    assert!(
        denied.reason.as_deref().unwrap().contains("contractors"),
        "{denied:?}"
    );
}

#[tokio::test]
async fn a_forged_state_a_wrong_nonce_or_a_bad_signature_is_refused_and_audited() {
    let idp = FakeProvider::start().await;
    let (app, token) = app_with(&idp.provider.issuer).await;

    // An answer for another sign-in than this browser's.
    let (authorize, state_cookie) = begin(&app).await;
    let code = idp.approve(&authorize, "sam", &["sre"]);
    let (_, location, set) = callback(&app, &code, "a-forged-state", &state_cookie).await;
    assert!(
        location.contains("sign_in_error=") && location.contains("state"),
        "{location}"
    );
    assert!(
        !set.iter()
            .any(|cookie| cookie.starts_with("canary_session="))
    );
    // Without the login-state cookie (another browser).
    let (authorize, _) = begin(&app).await;
    let code = idp.approve(&authorize, "sam", &["sre"]);
    let (_, location, _) = callback(&app, &code, &state_of(&authorize), "canary_oidc=guess").await;
    assert!(location.contains("no+sign-in+was+begun"), "{location}");

    for (twist, words) in [
        (Twist::WrongNonce, "nonce"),
        (Twist::ForgedSignature, "signature"),
    ] {
        *idp.provider.twist.lock().unwrap() = twist;
        let (authorize, state_cookie) = begin(&app).await;
        let code = idp.approve(&authorize, "sam", &["sre"]);
        let (_, location, set) = callback(&app, &code, &state_of(&authorize), &state_cookie).await;
        assert!(
            location.contains("ID+token+is+not+valid"),
            "{twist:?}: {location}"
        );
        assert!(
            location.to_lowercase().contains(words),
            "{twist:?}: {location}"
        );
        assert!(
            !set.iter()
                .any(|cookie| cookie.starts_with("canary_session=")),
            "{twist:?}"
        );
    }
    let trail = trail(&app, &token).await;
    let failed: Vec<_> = trail
        .events
        .iter()
        .filter(|entry| entry.action == "login_failed")
        .collect();
    // Anyone can send the callback forged answers in a loop: the first is
    // recorded, the rest from that address within the minute are counted
    // into the next record (and logged each).
    assert_eq!(failed.len(), 1, "{failed:?}");
    let reason = failed[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("single sign-on refused") && reason.contains("state"),
        "{reason}"
    );
    assert!(!trail.events.iter().any(|entry| entry.action == "login"));
}

#[tokio::test]
async fn a_flood_of_sign_ins_begun_pushes_out_nobody_and_a_login_state_finishes_one_sign_in() {
    let idp = FakeProvider::start().await;
    let (app, _) = app_with(&idp.provider.issuer).await;
    let (authorize, state_cookie) = begin(&app).await;
    // While the person is at the provider, someone begins sign-ins in a
    // loop: more than the 1,024 the server once kept in memory, when each
    // new one pushed out the oldest.
    for _ in 0..1_100 {
        let (status, _, set) = navigate(&app, "/admin/canary/auth/oidc/start", &[]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(cookie_named(&set, "canary_oidc").len() < 400);
    }
    let code = idp.approve(&authorize, "sam", &["sre"]);
    let (_, location, set) = callback(&app, &code, &state_of(&authorize), &state_cookie).await;
    assert_eq!(location, "/admin/canary/");
    assert!(
        set.iter()
            .any(|cookie| cookie.starts_with("canary_session=")),
        "{set:?}"
    );

    // The same login state once more, with a fresh code for its request
    // (the provider's codes are single-use; this one is not yet used).
    let again = idp.approve(&authorize, "sam", &["sre"]);
    let (_, location, set) = callback(&app, &again, &state_of(&authorize), &state_cookie).await;
    assert!(location.contains("finished+already"), "{location}");
    assert!(
        !set.iter()
            .any(|cookie| cookie.starts_with("canary_session="))
    );
}

#[tokio::test]
async fn a_provider_that_is_down_gives_a_clear_error_and_passwords_still_work() {
    let (address, _held) = crate::support::refusing_address();
    let (app, _) = app_with(&format!("http://{address}")).await;
    let (status, location, _) = navigate(&app, "/admin/canary/auth/oidc/start", &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        location.starts_with("/admin/canary/?sign_in_error="),
        "{location}"
    );
    let shown: HashMap<String, String> =
        serde_urlencoded::from_str(location.split_once('?').unwrap().1).unwrap();
    assert!(
        shown["sign_in_error"].contains("Single sign-on is not available now")
            && shown["sign_in_error"].contains("Sign in with a password"),
        "{shown:?}"
    );
    let (status, body) = crate::support::post_json(
        &json_client(),
        &app.url("/admin/canary/login"),
        &serde_json::json!({ "user": "ada", "password": PASSWORD }).to_string(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn no_single_sign_on_secret_reaches_a_log_line_or_an_api_answer() {
    let idp = FakeProvider::start().await;
    let upstream = crate::support::FakeUpstream::named("production").await;
    let dir = tempfile::tempdir().unwrap();
    let (token, token_hash) = canary_server::adapters::credentials::new_token().unwrap();
    let config = crate::support::binary_config(
        dir.path(),
        &upstream.url(),
        &upstream.url(),
        &format!(
            "canary:\n  traffic_steps: [5, 100]\n  auto_progression: {{ enabled: false, wait_time: 1h, thresholds: {{ max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 }} }}\n\
             auth:\n  tokens:\n    - {{ name: auditor, role: admin, secret_hash: \"{token_hash}\" }}\n\
             \x20 oidc:\n    issuer: \"{}\"\n    client_id: {CLIENT_ID}\n    client_secret: \"{CLIENT_SECRET}\"\n\
             \x20   redirect_url: \"http://canary.test/admin/canary/auth/oidc/callback\"\n    roles: {{ operator: [sre] }}\n",
            idp.provider.issuer
        ),
    );
    let log = dir.path().join("canary.log");
    let served = crate::support::serve_binary_logging(&config, Some(&log));
    let console = served.console.clone();
    let get = async |path: &str, cookie: Option<&str>| {
        let mut request = hyper::Request::get(format!("{console}{path}"))
            .header("authorization", format!("Bearer {token}"));
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        let request = request
            .body(http_body_util::Full::new(hyper::body::Bytes::new()))
            .unwrap();
        send(json_client(), request).await
    };

    // A whole sign-in, and a refused one.
    let (_, headers, _) = get("auth/oidc/start", None).await;
    let authorize = headers["location"].to_str().unwrap().to_owned();
    let state_cookie = pair(headers["set-cookie"].to_str().unwrap());
    let code = idp.approve(&authorize, "sam", &["sre"]);
    let query =
        serde_urlencoded::to_string([("code", code.as_str()), ("state", &state_of(&authorize))])
            .unwrap();
    let (status, headers, _) =
        get(&format!("auth/oidc/callback?{query}"), Some(&state_cookie)).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let session = headers
        .get_all("set-cookie")
        .iter()
        .map(|value| pair(value.to_str().unwrap()))
        .find(|cookie| cookie.starts_with("canary_session="))
        .expect("signed in");
    *idp.provider.twist.lock().unwrap() = Twist::ForgedSignature;
    let (_, headers, _) = get("auth/oidc/start", None).await;
    let refused = headers["location"].to_str().unwrap().to_owned();
    let refused_cookie = pair(headers["set-cookie"].to_str().unwrap());
    let refused_code = idp.approve(&refused, "sam", &["sre"]);
    let query = serde_urlencoded::to_string([
        ("code", refused_code.as_str()),
        ("state", &state_of(&refused)),
    ])
    .unwrap();
    get(
        &format!("auth/oidc/callback?{query}"),
        Some(&refused_cookie),
    )
    .await;

    let answers = [
        get("config", None).await.2,
        get("me", Some(&session)).await.2,
        get("audit?limit=50", None).await.2,
        get("sessions", None).await.2,
    ];
    assert!(
        answers[2].contains("single sign-on"),
        "the sign-ins are in the trail: {}",
        answers[2]
    );
    drop(served);
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("single sign-on refused"),
        "the log is at debug level: {log}"
    );
    let secrets = [
        ("the client secret", CLIENT_SECRET.to_owned()),
        (
            "the session's secret",
            session.trim_start_matches("canary_session=").to_owned(),
        ),
        (
            "the login state",
            state_cookie.trim_start_matches("canary_oidc=").to_owned(),
        ),
        ("the authorization code", code),
        ("the admin token", token.clone()),
    ];
    crate::support::assert_secrets_kept(&secrets, &log, &answers);
}

#[tokio::test]
async fn a_single_sign_on_session_survives_a_restart_with_its_role() {
    let idp = FakeProvider::start().await;
    let (mut app, _) = app_with(&idp.provider.issuer).await;
    let (authorize, state_cookie) = begin(&app).await;
    let code = idp.approve(&authorize, "sam", &["sre"]);
    let (_, _, set) = callback(&app, &code, &state_of(&authorize), &state_cookie).await;
    let session = pair(cookie_named(&set, "canary_session"));
    app.restart().await;
    let me = me(&app, &session).await;
    assert_eq!(
        (me["name"].as_str(), me["role"].as_str()),
        (Some("sam"), Some("operator"))
    );
    assert_eq!(me["sign_out_url"], "/admin/canary/auth/oidc/signed-out");
}
