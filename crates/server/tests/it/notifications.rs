//! Notifications delivered to a real receiver on loopback: every decision
//! announced, a failing receiver retried, and a decision taken just before
//! a shutdown still sent.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use canary_server::config::Config;

use crate::support::{TestApp, eventually};

#[tokio::test]
async fn notifications_reach_a_real_receiver_and_a_failing_one_is_retried() {
    let received: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let failures_left = Arc::new(Mutex::new(2_u32));
    let receiver = {
        let received = Arc::clone(&received);
        let failures_left = Arc::clone(&failures_left);
        axum::Router::new().route(
            "/{kind}",
            axum::routing::post(
                move |axum::extract::Path(kind): axum::extract::Path<String>, body: String| {
                    let received = Arc::clone(&received);
                    let failures_left = Arc::clone(&failures_left);
                    async move {
                        let mut left = failures_left.lock().unwrap();
                        if kind == "flaky" && *left > 0 {
                            *left -= 1;
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        drop(left);
                        received
                            .lock()
                            .unwrap()
                            .push((kind, serde_json::from_str(&body).unwrap()));
                        StatusCode::OK
                    }
                },
            ),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_addr = listener.local_addr().unwrap();
    let receiver_task = tokio::spawn(async move { axum::serve(listener, receiver).await });
    let app = TestApp::start_with(|config| {
        let yaml = format!(
            r#"
canary:
  auto_progression: {{ enabled: false, wait_time: "1h", thresholds: {{ max_latency: "1000ms", min_success_rate: 0.85, max_error_rate: 0.15 }} }}
  traffic_steps: [5, 100]
notifications:
  - {{ name: flaky, url: "http://{receiver_addr}/flaky", format: json, retries: 3, timeout: 2s }}
  - {{ name: chat, url: "http://{receiver_addr}/slack", format: slack, events: [started, rolled_back] }}
"#
        );
        config.notifications = Config::from_yaml(&yaml).unwrap().notifications;
    })
    .await;
    app.start_canary().await;
    app.stop_canary("oscar", "testing notifications").await;
    let received = eventually("the notifications", async || {
        let received = received.lock().unwrap().clone();
        let json_events: Vec<String> = received
            .iter()
            .filter(|(kind, _)| kind == "flaky")
            .map(|(_, body)| body["event"].as_str().unwrap_or_default().to_owned())
            .collect();
        let slack = received.iter().filter(|(kind, _)| kind == "slack").count();
        (json_events.contains(&"rolled_back".to_owned()) && slack == 2).then_some(received)
    })
    .await;
    assert_eq!(
        *failures_left.lock().unwrap(),
        0,
        "the first two attempts failed"
    );
    let json: Vec<&serde_json::Value> = received
        .iter()
        .filter(|(kind, _)| kind == "flaky")
        .map(|(_, body)| body)
        .collect();
    assert_eq!(
        json[0]["event"], "started",
        "retried, still first: {json:?}"
    );
    assert_eq!(json[0]["state"]["image_tag"], "v2.7.0");
    let stop = json
        .iter()
        .find(|body| body["event"] == "rolled_back")
        .unwrap();
    assert_eq!(stop["actor"], "oscar");
    assert!(
        stop["message"]
            .as_str()
            .unwrap()
            .contains("testing notifications"),
        "{stop}"
    );
    let texts: Vec<&str> = received
        .iter()
        .filter(|(kind, _)| kind == "slack")
        .map(|(_, body)| body["text"].as_str().unwrap())
        .collect();
    assert!(texts[0].contains("rollout started"), "{texts:?}");
    assert!(texts[1].contains("rolled back to production"), "{texts:?}");
    receiver_task.abort();
}

#[tokio::test]
async fn a_decision_just_before_shutdown_is_still_announced() {
    let received: Arc<Mutex<Vec<String>>> = Arc::default();
    let receiver = {
        let received = Arc::clone(&received);
        axum::Router::new().route(
            "/hook",
            axum::routing::post(move |body: String| {
                let received = Arc::clone(&received);
                async move {
                    // A slow receiver: the server is already stopping when it answers.
                    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
                    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
                    received
                        .lock()
                        .unwrap()
                        .push(body["event"].as_str().unwrap_or_default().to_owned());
                    StatusCode::OK
                }
            }),
        )
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver_addr = listener.local_addr().unwrap();
    let receiver_task = tokio::spawn(async move { axum::serve(listener, receiver).await });
    let mut app = TestApp::start_with(|config| {
        let yaml = format!(
            "canary:\n  auto_progression: {{ enabled: false, wait_time: 1h, thresholds: {{ max_latency: 1000ms, min_success_rate: 0.85, max_error_rate: 0.15 }} }}\n  traffic_steps: [5, 100]\nnotifications:\n  - {{ name: ops, url: \"http://{receiver_addr}/hook\", format: json, events: [started, rolled_back] }}\n"
        );
        config.notifications = Config::from_yaml(&yaml).unwrap().notifications;
    })
    .await;
    app.start_canary().await;
    app.stop_canary("oscar", "stopping for the night").await;
    app.shut_down().await;
    assert_eq!(
        *received.lock().unwrap(),
        ["started", "rolled_back"],
        "delivered before the server finished stopping"
    );
    receiver_task.abort();
}
