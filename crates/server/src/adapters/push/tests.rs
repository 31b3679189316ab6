//! Web Push, message by message: the RFC 8291 example, our messages decrypted
//! and our VAPID tokens verified as a push service does, which endpoints are
//! taken, and what each push service answer leads to.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use canary_shared::UnixMillis;
use canary_shared::audit::NotifyEvent;
use canary_shared::push::{PushKeys, PushSubscribe};
use p256::ecdsa::signature::Verifier as _;

use super::{Attempt, Push, PushServices, VapidKey, classify, device_label, service_of};
use crate::adapters::store::SqliteStore;
use crate::config::{AllowedOrigin, PushConfig};

/// Wall time that stands still.
#[derive(Debug)]
struct FixedClock(UnixMillis);

impl crate::ports::Clock for FixedClock {
    fn now(&self) -> UnixMillis {
        self.0
    }
}

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD.decode(text).unwrap()
}

/// RFC 8291, Appendix A: the user agent's keys and the message an
/// application server sent it.
#[test]
fn the_rfc_8291_example_message_decrypts_to_its_plaintext() {
    let message = b64(
        "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
    );
    let ua_private =
        p256::SecretKey::from_slice(&b64("q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94")).unwrap();
    let auth = b64("BTBZMqHH6r4Tts7J_aSIgg");
    let plaintext = web_push_native::decrypt(
        message,
        &ua_private,
        web_push_native::Auth::from_slice(&auth),
    )
    .unwrap();
    assert_eq!(plaintext, b"When I grow up, I want to be a watermelon");
}

/// A browser's keys, as a test's fake browser holds them.
struct Browser {
    secret: p256::SecretKey,
    auth: [u8; 16],
}

impl Browser {
    fn new() -> Browser {
        let secret = p256::SecretKey::from_slice(&VapidKey::generate()).unwrap();
        Browser {
            secret,
            auth: *b"sixteen byte key",
        }
    }

    fn subscription(&self, endpoint: &str) -> PushSubscribe {
        let point = p256::elliptic_curve::sec1::ToEncodedPoint::to_encoded_point(
            &self.secret.public_key(),
            false,
        );
        PushSubscribe {
            endpoint: endpoint.to_owned(),
            keys: PushKeys {
                p256dh: URL_SAFE_NO_PAD.encode(point.as_bytes()),
                auth: URL_SAFE_NO_PAD.encode(self.auth),
            },
            events: Some(vec![NotifyEvent::Breach]),
            replaces: None,
        }
    }
}

fn push_with(config: PushConfig) -> (Push, Arc<SqliteStore>) {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let clock = Arc::new(FixedClock(UnixMillis(1_765_000_000_000)));
    let push = Push::new(
        &config,
        Arc::clone(&store),
        clock,
        "/admin/canary/".to_owned(),
    )
    .unwrap();
    (push, store)
}

/// Checks a VAPID `Authorization` header as a push service does: the
/// token's ES256 signature with the key `k` names, its audience and expiry.
fn verify_vapid(header: &str, public_key: &str) -> serde_json::Value {
    let rest = header.strip_prefix("vapid t=").expect("vapid scheme");
    let (token, key) = rest.split_once(", k=").expect("t= then k=");
    assert_eq!(key, public_key, "k is the key browsers subscribed with");
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let verifying = p256::ecdsa::VerifyingKey::from_sec1_bytes(&b64(key)).unwrap();
    let signature = p256::ecdsa::Signature::from_slice(&b64(signature)).unwrap();
    verifying
        .verify(signed.as_bytes(), &signature)
        .expect("the ES256 signature verifies");
    let (header, claims) = signed.split_once('.').unwrap();
    let header: serde_json::Value = serde_json::from_slice(&b64(header)).unwrap();
    assert_eq!(header["alg"], "ES256");
    serde_json::from_slice(&b64(claims)).unwrap()
}

#[test]
fn a_sent_alert_is_encrypted_to_the_device_and_signed_for_its_push_service() {
    let config = PushConfig {
        contact: Some("mailto:oncall@example.com".to_owned().try_into().unwrap()),
        ..PushConfig::default()
    };
    let (push, _store) = push_with(config);
    let browser = Browser::new();
    let device = push
        .subscribe(
            "alice",
            &browser.subscription("https://fcm.googleapis.com/fcm/send/abc:def"),
            "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile Safari/537.36",
        )
        .unwrap();
    assert_eq!(device.label, "Chrome on Android");
    assert_eq!(device.service, "fcm.googleapis.com");
    let stored = push.device(device.id, Some("alice")).unwrap().unwrap();
    let message = super::Message {
        device: stored,
        alert: Arc::new(b"{\"title\":\"t\"}".to_vec()),
        urgency: "high",
        topic: "canary-breach",
    };
    let request = push.sender.request(&message).unwrap();
    let headers = request.headers();
    assert_eq!(headers["ttl"], "3600");
    assert_eq!(headers["urgency"], "high");
    assert_eq!(headers["topic"], "canary-breach");
    assert_eq!(headers["content-encoding"], "aes128gcm");
    let claims = verify_vapid(
        headers["authorization"].to_str().unwrap(),
        push.sender.key.public(),
    );
    assert_eq!(claims["aud"], "https://fcm.googleapis.com");
    assert_eq!(claims["sub"], "mailto:oncall@example.com");
    let exp = claims["exp"].as_u64().unwrap();
    let now = 1_765_000_000;
    assert!(
        exp > now && exp <= now + 24 * 3600,
        "RFC 8292: at most 24 hours ahead"
    );
    let body = http_body_util::BodyExt::collect(request.into_body());
    let body = futures_util::FutureExt::now_or_never(body)
        .unwrap()
        .unwrap()
        .to_bytes();
    let plaintext = web_push_native::decrypt(
        body.to_vec(),
        &browser.secret,
        web_push_native::Auth::from_slice(&browser.auth),
    )
    .unwrap();
    assert_eq!(plaintext, b"{\"title\":\"t\"}");
}

#[test]
fn the_vapid_key_is_made_once_and_kept_in_the_store() {
    let store = Arc::new(SqliteStore::in_memory().unwrap());
    let clock = Arc::new(FixedClock(UnixMillis(1)));
    let first = Push::new(
        &PushConfig::default(),
        Arc::clone(&store),
        clock.clone(),
        String::new(),
    )
    .unwrap();
    let again = Push::new(&PushConfig::default(), store, clock, String::new()).unwrap();
    assert_eq!(first.sender.key.public(), again.sender.key.public());
    assert_eq!(b64(first.sender.key.public()).len(), 65);
    assert!(
        !format!("{:?}", first.sender.key).contains("signing"),
        "the private key is never printed"
    );
}

#[test]
fn endpoints_outside_the_push_services_are_refused_with_the_reason() {
    let services =
        PushServices::new(&[AllowedOrigin::try_from("http://127.0.0.1:9999".to_owned()).unwrap()]);
    for fine in [
        "https://fcm.googleapis.com/fcm/send/x",
        "https://updates.push.services.mozilla.com/wpush/v2/x",
        "https://web.push.apple.com/QGm",
        "https://wns2-by3p.notify.windows.com/w/?token=x",
        "http://127.0.0.1:9999/push/1",
    ] {
        assert_eq!(services.check(fine), Ok(()), "{fine}");
    }
    for (refused, why) in [
        (
            "https://169.254.169.254/latest/meta-data",
            "not a known push service",
        ),
        (
            "https://fcm.googleapis.com.evil.example/x",
            "not a known push service",
        ),
        (
            "https://evilfcm.googleapis.com.example/x",
            "not a known push service",
        ),
        (
            "http://fcm.googleapis.com/fcm/send/x",
            "https:// on port 443",
        ),
        (
            "https://fcm.googleapis.com:8443/fcm/send/x",
            "https:// on port 443",
        ),
        (
            "https://user:pw@fcm.googleapis.com/x",
            "user name or password",
        ),
        ("http://127.0.0.1:9998/push/1", "not a known push service"),
        ("/relative", "absolute"),
    ] {
        let error = services.check(refused).unwrap_err();
        assert!(error.contains(why), "{refused}: {error}");
    }
}

#[test]
fn a_subscription_with_bad_keys_or_no_events_is_refused_naming_the_field() {
    let (push, store) = push_with(PushConfig::default());
    let browser = Browser::new();
    let good = browser.subscription("https://fcm.googleapis.com/fcm/send/1");
    let field = |request: PushSubscribe| match push.subscribe("alice", &request, "") {
        Err(super::SubscribeError::Invalid { field, .. }) => field,
        other => panic!("expected a refusal, got {other:?}"),
    };
    let mut bad = good.clone();
    bad.endpoint = "https://example.com/push".to_owned();
    assert_eq!(field(bad), "endpoint");
    let mut bad = good.clone();
    bad.keys.p256dh = URL_SAFE_NO_PAD.encode([4u8; 65]);
    assert_eq!(field(bad), "keys.p256dh", "a point off the curve");
    let mut bad = good.clone();
    bad.keys.auth = URL_SAFE_NO_PAD.encode([1u8; 8]);
    assert_eq!(field(bad), "keys.auth");
    let mut bad = good.clone();
    bad.events = Some(Vec::new());
    assert_eq!(field(bad), "events");
    assert!(
        store.push_subscriptions(None).unwrap().is_empty(),
        "nothing stored"
    );
}

#[test]
fn subscribing_again_changes_the_events_and_a_renewal_keeps_the_device() {
    let (push, store) = push_with(PushConfig::default());
    let browser = Browser::new();
    let mut request = browser.subscription("https://fcm.googleapis.com/fcm/send/1");
    let first = push.subscribe("alice", &request, "").unwrap();
    request.events = Some(vec![
        NotifyEvent::Promoted,
        NotifyEvent::Breach,
        NotifyEvent::Breach,
    ]);
    let again = push.subscribe("alice", &request, "").unwrap();
    assert_eq!(again.id, first.id);
    assert_eq!(
        again.events,
        vec![NotifyEvent::Breach, NotifyEvent::Promoted]
    );
    let mut renewed = browser.subscription("https://fcm.googleapis.com/fcm/send/2");
    renewed.replaces = Some(request.endpoint.clone());
    renewed.events = None;
    let moved = push.subscribe("alice", &renewed, "").unwrap();
    assert_eq!(moved.id, first.id, "the device keeps its id");
    assert_eq!(moved.events, again.events, "and its events");
    let all = store.push_subscriptions(None).unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].endpoint, renewed.endpoint);
    assert!(
        push.overview(Some("bob")).unwrap().devices.is_empty(),
        "bob sees only his own"
    );
}

#[test]
fn push_services_answers_decide_what_happens_to_the_alert_and_the_device() {
    assert_eq!(classify(201, None), Attempt::Taken);
    assert_eq!(classify(404, None), Attempt::Gone(404));
    assert_eq!(classify(410, None), Attempt::Gone(410));
    assert_eq!(
        classify(429, Some(7)),
        Attempt::Later(Duration::from_secs(7))
    );
    assert!(matches!(classify(413, None), Attempt::Refused(why) if why.contains("too large")));
    assert!(matches!(classify(403, None), Attempt::Refused(why) if why.contains("VAPID")));
    assert!(matches!(classify(503, None), Attempt::Retry(_)));
}

#[test]
fn devices_are_named_after_their_browser_and_system() {
    let cases = [
        (
            "Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Version/17.4 Mobile/15E148 Safari/604.1",
            "Safari on iPad",
        ),
        (
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
            "Firefox on Linux",
        ),
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36 Edg/131.0",
            "Edge on Windows",
        ),
        ("curl/8.5", "A browser"),
    ];
    for (agent, label) in cases {
        assert_eq!(device_label(agent), label, "{agent}");
    }
    assert_eq!(
        service_of("https://fcm.googleapis.com/fcm/send/x"),
        "fcm.googleapis.com"
    );
    assert_eq!(service_of("http://127.0.0.1:9/p?q"), "127.0.0.1:9");
}
