//! Web Push through real sockets: devices subscribe through the API, the
//! controller's decisions reach a fake push service that checks each
//! message as a real one does (the VAPID signature, TTL, `aes128gcm`) and
//! decrypts it with the device's private key, and the service's answers
//! (404, 410, 413, 429, 500) decide what happens to the alert and the device.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canary_server::config::{AllowedOrigin, PushConfig};
use canary_shared::push::{PushDevice, PushOverview, PushTestResult};
use hyper::body::Bytes;
use p256::ecdsa::signature::Verifier as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::support::{TestApp, eventually, eventually_for, http_get, json_client, post_json, send};

/// The answers a fake push service gives, in order: a status and a
/// `Retry-After` in seconds.
type Script = Arc<Mutex<VecDeque<(u16, Option<u64>)>>>;

/// A message the fake push service took apart.
#[derive(Clone, Debug)]
struct Received {
    device: u32,
    ttl: String,
    urgency: String,
    topic: String,
    /// The VAPID token's claims, after its signature verified with `k`.
    claims: serde_json::Value,
    /// `k`: the key the signature verified with.
    key: String,
    /// The decrypted alert.
    alert: serde_json::Value,
}

/// A browser's keys as the push service's side of a subscription.
struct DeviceKeys {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

/// An RFC 8030 push service on loopback: `POST /push/{device}`.
struct FakePushService {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    /// Answers to give, in order (status, `Retry-After`); 201 when empty.
    script: Script,
    /// Every message's attempt, taken or not.
    attempts: Arc<Mutex<Vec<(u32, u16, tokio::time::Instant)>>>,
    devices: Arc<Mutex<HashMap<u32, DeviceKeys>>>,
    task: JoinHandle<()>,
}

impl Drop for FakePushService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

impl FakePushService {
    async fn start() -> FakePushService {
        let received = Arc::new(Mutex::new(Vec::new()));
        let script: Script = Arc::new(Mutex::new(VecDeque::new()));
        let attempts = Arc::new(Mutex::new(Vec::new()));
        let devices: Arc<Mutex<HashMap<u32, DeviceKeys>>> = Arc::new(Mutex::new(HashMap::new()));
        let state = (
            Arc::clone(&received),
            Arc::clone(&script),
            Arc::clone(&attempts),
            Arc::clone(&devices),
        );
        let app = Router::new().route(
            "/push/{device}",
            post(
                move |Path(device): Path<u32>, headers: HeaderMap, body: Bytes| {
                    let (received, script, attempts, devices) = state.clone();
                    async move {
                        let header = |name: &str| {
                            headers
                                .get(name)
                                .and_then(|value| value.to_str().ok())
                                .unwrap_or_default()
                                .to_owned()
                        };
                        let (status, retry_after) =
                            script.lock().unwrap().pop_front().unwrap_or((201, None));
                        attempts.lock().unwrap().push((
                            device,
                            status,
                            tokio::time::Instant::now(),
                        ));
                        // What every real push service checks before taking a message.
                        if header("ttl").parse::<u64>().is_err()
                            || header("content-encoding") != "aes128gcm"
                        {
                            return (StatusCode::BAD_REQUEST, HeaderMap::new());
                        }
                        let (claims, key) = verify_vapid(&header("authorization"));
                        let alert = {
                            let devices = devices.lock().unwrap();
                            let keys = &devices[&device];
                            web_push_native::decrypt(
                                body.to_vec(),
                                &keys.secret,
                                web_push_native::Auth::from_slice(&keys.auth),
                            )
                            .expect("the message decrypts with the device's key")
                        };
                        let mut answer = HeaderMap::new();
                        if let Some(after) = retry_after {
                            answer.insert("retry-after", after.into());
                        }
                        if status == 201 {
                            received.lock().unwrap().push(Received {
                                device,
                                ttl: header("ttl"),
                                urgency: header("urgency"),
                                topic: header("topic"),
                                claims,
                                key,
                                alert: serde_json::from_slice(&alert).unwrap(),
                            });
                        }
                        (StatusCode::from_u16(status).unwrap(), answer)
                    }
                },
            ),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakePushService {
            addr,
            received,
            script,
            attempts,
            devices,
            task,
        }
    }

    fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A new device at this service: its subscription JSON, as a browser's
    /// `PushSubscription.toJSON()` gives it, with `events`.
    fn subscription(&self, device: u32, events: &str) -> String {
        let secret = p256::SecretKey::from_slice(&{
            let mut bytes = [7u8; 32];
            bytes[0] = device as u8;
            bytes
        })
        .unwrap();
        let auth = [device as u8; 16];
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &secret.public_key(),
            false,
        );
        let json = format!(
            r#"{{"endpoint":"{}/push/{device}","expirationTime":null,"keys":{{"p256dh":"{}","auth":"{}"}},"events":{events}}}"#,
            self.origin(),
            URL_SAFE_NO_PAD.encode(point.as_bytes()),
            URL_SAFE_NO_PAD.encode(auth)
        );
        self.devices
            .lock()
            .unwrap()
            .insert(device, DeviceKeys { secret, auth });
        json
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    fn answer(&self, answers: &[(u16, Option<u64>)]) {
        self.script.lock().unwrap().extend(answers.iter().copied());
    }
}

/// A VAPID `Authorization` header checked as a push service does: the
/// ES256 signature with the key `k` names.
fn verify_vapid(header: &str) -> (serde_json::Value, String) {
    let rest = header.strip_prefix("vapid t=").expect("vapid scheme");
    let (token, key) = rest.split_once(", k=").expect("t= then k=");
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&b64(key)).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&b64(signature)).unwrap();
    verifying
        .verify(signed.as_bytes(), &signature)
        .expect("the ES256 signature verifies");
    let claims = signed.split_once('.').unwrap().1;
    (
        serde_json::from_slice(&b64(claims)).unwrap(),
        key.to_owned(),
    )
}

async fn app_with_push(service: &FakePushService) -> TestApp {
    let origin = service.origin();
    TestApp::start_with(move |config| {
        config.push = PushConfig {
            contact: Some("mailto:oncall@example.com".to_owned().try_into().unwrap()),
            services: vec![AllowedOrigin::try_from(origin).unwrap()],
            ..PushConfig::default()
        };
    })
    .await
}

async fn overview(app: &TestApp) -> PushOverview {
    let (status, _, body) = http_get(&app.url("/admin/canary/push"), "application/json").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    serde_json::from_str(&body).unwrap()
}

async fn subscribe(app: &TestApp, body: &str) -> PushDevice {
    let (status, body) =
        post_json(&json_client(), &app.url("/admin/canary/push/devices"), body).await;
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[tokio::test]
async fn a_rollback_reaches_the_devices_that_asked_for_it_encrypted_and_signed() {
    let service = FakePushService::start().await;
    let app = app_with_push(&service).await;
    let on_call = subscribe(
        &app,
        &service.subscription(1, r#"["breach","rolled_back"]"#),
    )
    .await;
    subscribe(&app, &service.subscription(2, r#"["promoted"]"#)).await;
    let public_key = overview(&app).await.public_key;

    app.start_canary().await;
    app.stop_canary("alice", "errors in the logs").await;

    eventually("the rollback's alert", async || {
        (!service.received().is_empty()).then_some(())
    })
    .await;
    // Give a wrong extra alert time to show up before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let alerts: Vec<Received> = service.received();
    assert_eq!(
        alerts.len(),
        1,
        "one alert, to the on-call device only: {alerts:#?}"
    );
    let alert = &alerts[0];
    assert_eq!(alert.device, 1);
    assert_eq!(alert.urgency, "high");
    assert_eq!(alert.topic, "canary-rollback");
    assert_eq!(alert.ttl, "3600");
    assert_eq!(
        alert.key, public_key,
        "signed with the key browsers subscribe with"
    );
    assert_eq!(alert.claims["aud"], service.origin());
    assert_eq!(alert.claims["sub"], "mailto:oncall@example.com");
    assert!(
        alert.alert["title"]
            .as_str()
            .unwrap()
            .ends_with("rolled back"),
        "{}",
        alert.alert
    );
    let body = alert.alert["body"].as_str().unwrap();
    assert!(body.contains("errors in the logs"), "{body}");
    assert!(body.contains("by alice"), "{body}");
    assert_eq!(alert.alert["url"], "/admin/canary/");
    assert_eq!(alert.alert["event"], "rolled_back");

    let devices = overview(&app).await.devices;
    let on_call = devices
        .iter()
        .find(|device| device.id == on_call.id)
        .unwrap();
    assert!(on_call.last_delivered_at.is_some(), "{on_call:?}");
    assert_eq!(on_call.service, service.addr.to_string());
}

#[tokio::test]
async fn the_push_services_answers_retry_wait_forget_or_report() {
    let service = FakePushService::start().await;
    let app = app_with_push(&service).await;
    let device = subscribe(
        &app,
        &service.subscription(1, r#"["started","rolled_back"]"#),
    )
    .await;

    // Rate limited, then a failure: the alert waits out Retry-After, is
    // retried after the failure, and arrives.
    service.answer(&[(429, Some(1)), (503, None)]);
    app.start_canary().await;
    let started = eventually_for(Duration::from_secs(15), "the start's alert", async || {
        service.received().first().cloned()
    })
    .await;
    assert_eq!(started.alert["event"], "started");
    assert_eq!(started.urgency, "normal");
    let attempts = service.attempts.lock().unwrap().clone();
    assert_eq!(
        attempts
            .iter()
            .map(|(_, status, _)| *status)
            .collect::<Vec<_>>(),
        vec![429, 503, 201]
    );
    assert!(
        attempts[1].2 - attempts[0].2 >= Duration::from_millis(950),
        "Retry-After: 1 was honoured"
    );

    // Too large: nothing to retry; the device shows why.
    service.answer(&[(413, None)]);
    app.stop_canary("alice", "not today").await;
    let refused = eventually("the 413 on the device", async || {
        overview(&app)
            .await
            .devices
            .into_iter()
            .find_map(|device| device.last_error)
    })
    .await;
    assert!(refused.contains("413"), "{refused}");
    assert_eq!(
        service.attempts.lock().unwrap().len(),
        4,
        "no retry after a 413"
    );

    // Gone: the device is forgotten.
    service.answer(&[(410, None)]);
    app.start_canary().await;
    eventually("the device forgotten after a 410", async || {
        overview(&app).await.devices.is_empty().then_some(())
    })
    .await;
    let request =
        hyper::Request::delete(app.url(&format!("/admin/canary/push/devices/{}", device.id)))
            .body(http_body_util::Full::new(Bytes::new()))
            .unwrap();
    let (status, _, body) = send(json_client(), request).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn a_test_alert_answers_with_what_the_push_service_said() {
    let service = FakePushService::start().await;
    let app = app_with_push(&service).await;
    let device = subscribe(&app, &service.subscription(3, r#"["breach"]"#)).await;
    let test_url = app.url(&format!("/admin/canary/push/devices/{}/test", device.id));
    let (status, body) = post_json(&json_client(), &test_url, "").await;
    assert_eq!(status, 200, "{body}");
    let result: PushTestResult = serde_json::from_str(&body).unwrap();
    assert!(result.delivered, "{result:?}");
    let received = service.received();
    assert_eq!(received[0].alert["title"], "canary: test alert");

    service.answer(&[(404, None)]);
    let (_, body) = post_json(&json_client(), &test_url, "").await;
    let result: PushTestResult = serde_json::from_str(&body).unwrap();
    assert!(!result.delivered);
    assert!(
        result.detail.contains("404") && result.detail.contains("removed"),
        "{result:?}"
    );
    assert!(overview(&app).await.devices.is_empty());
    let (status, body) = post_json(&json_client(), &test_url, "").await;
    assert_eq!(status, 404, "{body}");
}

#[tokio::test]
async fn subscriptions_outside_the_push_services_or_with_bad_keys_are_refused_by_field() {
    let service = FakePushService::start().await;
    let app = app_with_push(&service).await;
    let good: serde_json::Value =
        serde_json::from_str(&service.subscription(1, r#"["breach"]"#)).unwrap();
    let cases = [
        (
            "/endpoint",
            serde_json::json!("http://169.254.169.254/latest/meta-data"),
            "endpoint",
        ),
        (
            "/endpoint",
            serde_json::json!("https://attacker.example/push"),
            "endpoint",
        ),
        ("/keys/p256dh", serde_json::json!("AAAA"), "keys.p256dh"),
        ("/keys/auth", serde_json::json!("c2hvcnQ"), "keys.auth"),
        ("/events", serde_json::json!([]), "events"),
    ];
    for (pointer, value, field) in cases {
        let mut body = good.clone();
        *body.pointer_mut(pointer).unwrap() = value;
        let (status, answer) = post_json(
            &json_client(),
            &app.url("/admin/canary/push/devices"),
            &body.to_string(),
        )
        .await;
        assert_eq!(status, 422, "{pointer}: {answer}");
        let answer: serde_json::Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["field"], field, "{answer}");
        assert!(
            answer["message"].as_str().unwrap().starts_with(field),
            "{answer}"
        );
    }
    let mut unknown = good.clone();
    unknown["events"] = serde_json::json!(["deployed"]);
    let (status, answer) = post_json(
        &json_client(),
        &app.url("/admin/canary/push/devices"),
        &unknown.to_string(),
    )
    .await;
    assert!(status == 422 || status == 400, "{answer}");
    assert!(answer.contains("events"), "{answer}");
    assert!(
        overview(&app).await.devices.is_empty(),
        "nothing was stored"
    );

    // Removing a device that is not there, or by a name that is no id.
    let request = hyper::Request::delete(app.url("/admin/canary/push/devices/abc"))
        .body(http_body_util::Full::new(Bytes::new()))
        .unwrap();
    let (status, _, body) = send(json_client(), request).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("\"field\":\"id\""), "{body}");
}

/// A request as `secret`'s token; status and body.
async fn as_token(
    app: &TestApp,
    method: hyper::Method,
    path: &str,
    secret: &str,
    body: &str,
) -> (StatusCode, String) {
    let request = hyper::Request::builder()
        .method(method)
        .uri(app.url(path))
        .header("authorization", format!("Bearer {secret}"))
        .header("content-type", "application/json")
        .header(
            "user-agent",
            "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) Version/17.4 Mobile/15E148 Safari/604.1",
        )
        .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let (status, _, body) = send(json_client(), request).await;
    (status, body)
}

/// The server with logins by token for viewers vera and val and admin ada,
/// and push on `service`; their secrets, in that order.
async fn app_with_three_tokens(service: &FakePushService) -> (TestApp, [String; 3]) {
    use canary_server::adapters::credentials::new_token;
    let (vera, vera_hash) = new_token().unwrap();
    let (val, val_hash) = new_token().unwrap();
    let (ada, ada_hash) = new_token().unwrap();
    let origin = service.origin();
    let app = TestApp::start_with(move |config| {
        let yaml = format!(
            "canary:\n  traffic_steps: [5, 100]\n  auto_progression: {{ enabled: false, wait_time: 1h, thresholds: {{ max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 }} }}\n\
             auth:\n  tokens:\n    - {{ name: vera, role: viewer, secret_hash: \"{vera_hash}\" }}\n    - {{ name: val, role: viewer, secret_hash: \"{val_hash}\" }}\n    - {{ name: ada, role: admin, secret_hash: \"{ada_hash}\" }}\n\
             push:\n  services: [\"{origin}\"]\n"
        );
        let parsed = canary_server::config::Config::from_yaml(&yaml).unwrap();
        config.auth = parsed.auth;
        config.push = parsed.push;
    })
    .await;
    (app, [vera, val, ada])
}

/// The owners of the devices `secret` may see, newest first.
async fn device_owners(app: &TestApp, secret: &str) -> Vec<String> {
    let (status, body) = as_token(app, hyper::Method::GET, "/admin/canary/push", secret, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let overview: PushOverview = serde_json::from_str(&body).unwrap();
    overview
        .devices
        .into_iter()
        .map(|device| device.user)
        .collect()
}

#[tokio::test]
async fn people_see_and_remove_their_own_devices_and_an_admin_everyones() {
    let service = FakePushService::start().await;
    let (app, [vera, val, ada]) = app_with_three_tokens(&service).await;
    let devices = "/admin/canary/push/devices";
    let (status, body) = as_token(
        &app,
        hyper::Method::POST,
        devices,
        &vera,
        &service.subscription(1, r#"["breach"]"#),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::CREATED,
        "a viewer may be alerted: {body}"
    );
    let veras: PushDevice = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (veras.user.as_str(), veras.label.as_str()),
        ("vera", "Safari on iPad")
    );
    let (_, body) = as_token(
        &app,
        hyper::Method::POST,
        devices,
        &val,
        &service.subscription(2, r#"["breach"]"#),
    )
    .await;
    let vals: PushDevice = serde_json::from_str(&body).unwrap();

    let listed = async |secret: &str| device_owners(&app, secret).await;
    assert_eq!(listed(&vera).await, vec!["vera"]);
    assert_eq!(
        listed(&ada).await,
        vec!["val", "vera"],
        "an admin sees everyone's, newest first"
    );

    let val_device = format!("{devices}/{}", vals.id);
    let (status, _) = as_token(&app, hyper::Method::DELETE, &val_device, &vera, "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not hers to remove");
    let (status, _) = as_token(
        &app,
        hyper::Method::POST,
        &format!("{val_device}/test"),
        &vera,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nor to test");
    assert!(service.received().is_empty());
    let (status, _) = as_token(&app, hyper::Method::DELETE, &val_device, &ada, "").await;
    assert_eq!(status, StatusCode::NO_CONTENT, "an admin removes anyone's");
    assert_eq!(listed(&ada).await, vec!["vera"]);
}

#[tokio::test]
async fn the_devices_of_someone_taken_out_of_the_config_are_forgotten_at_the_next_start() {
    let service = FakePushService::start().await;
    let (mut app, [vera, val, ada]) = app_with_three_tokens(&service).await;
    for (device, secret) in [(1, &vera), (2, &val)] {
        let (status, body) = as_token(
            &app,
            hyper::Method::POST,
            "/admin/canary/push/devices",
            secret,
            &service.subscription(device, r#"["breach", "rolled_back"]"#),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    assert_eq!(device_owners(&app, &ada).await, vec!["val", "vera"]);

    // val leaves the team: her token goes from the config, and the server
    // restarts with it.
    let auth = app.config.auth.as_mut().unwrap();
    auth.tokens.retain(|token| token.name.0 != "val");
    app.restart().await;
    assert_eq!(
        device_owners(&app, &ada).await,
        vec!["vera"],
        "val's tablet is told nothing more"
    );
    let (status, _) = as_token(&app, hyper::Method::GET, "/admin/canary/push", &val, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The rest stay across restarts.
    app.restart().await;
    assert_eq!(device_owners(&app, &ada).await, vec!["vera"]);
}

#[tokio::test]
async fn no_push_secret_reaches_a_log_line_or_an_api_answer() {
    let service = FakePushService::start().await;
    let upstream = crate::support::FakeUpstream::named("production").await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::binary_config(
        dir.path(),
        &upstream.url(),
        &upstream.url(),
        &format!(
            "canary:\n  traffic_steps: [5, 100]\n  auto_progression: {{ enabled: false, wait_time: 1h, thresholds: {{ max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 }} }}\npush:\n  contact: \"mailto:oncall@example.com\"\n  services: [\"{}\"]\n",
            service.origin()
        ),
    );
    let log = dir.path().join("canary.log");
    let served = crate::support::serve_binary_logging(&config, Some(&log));
    let console = served.console.clone();
    let get = async |path: &str| {
        http_get(&format!("{console}{path}"), "application/json")
            .await
            .2
    };

    let subscription = service.subscription(5, r#"["breach","rolled_back"]"#);
    let (status, subscribed) = post_json(
        &json_client(),
        &format!("{console}push/devices"),
        &subscription,
    )
    .await;
    assert_eq!(status, 201, "{subscribed}");
    let device: PushDevice = serde_json::from_str(&subscribed).unwrap();
    let (status, tested) = post_json(
        &json_client(),
        &format!("{console}push/devices/{}/test", device.id),
        "",
    )
    .await;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(
        service.received().len(),
        1,
        "the test alert went out, signed"
    );
    let answers = [subscribed, tested, get("push").await, get("config").await];

    drop(served);
    let store = rusqlite::Connection::open(dir.path().join("data/canary.db")).unwrap();
    let private: Vec<u8> = store
        .query_row("SELECT private_key FROM push_key", [], |row| row.get(0))
        .unwrap();
    let subscription: serde_json::Value = serde_json::from_str(&subscription).unwrap();
    let secrets = [
        (
            "the VAPID private key, base64url",
            URL_SAFE_NO_PAD.encode(&private),
        ),
        (
            "the VAPID private key, standard base64",
            base64::engine::general_purpose::STANDARD.encode(&private),
        ),
        (
            "the VAPID private key, hex",
            private.iter().map(|byte| format!("{byte:02x}")).collect(),
        ),
        (
            "the device's auth secret",
            subscription["keys"]["auth"].as_str().unwrap().to_owned(),
        ),
        ("the device's endpoint path", "/push/5".to_owned()),
    ];
    let log = std::fs::read_to_string(&log).unwrap();
    assert!(
        log.contains("push alert delivered"),
        "the log is at debug level: {log}"
    );
    crate::support::assert_secrets_kept(&secrets, &log, &answers);
}
