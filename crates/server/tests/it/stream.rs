//! The WebSocket stream, read with tokio-tungstenite as a browser would.

use canary_shared::{Health, ServerMessage};
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::TestApp;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(app: &TestApp) -> Socket {
    let url = format!("ws://{}/admin/canary/ws", app.addr);
    let (socket, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.status(), 101);
    socket
}

/// The next state change, skipping metrics messages.
async fn next_state(socket: &mut Socket) -> Box<canary_shared::CanaryState> {
    loop {
        match next_message(socket).await {
            Ok(ServerMessage::State { state }) => return state,
            Ok(ServerMessage::Metrics { .. }) => continue,
            other => panic!("expected a state change, got {other:?}"),
        }
    }
}

/// The next server message, skipping pings; `None` when the socket closed.
async fn next_message(socket: &mut Socket) -> Result<ServerMessage, Option<CloseCode>> {
    let deadline = std::time::Duration::from_secs(10);
    loop {
        let frame = tokio::time::timeout(deadline, socket.next())
            .await
            .expect("no message within 10 s");
        match frame {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => return Err(frame.map(|frame| frame.code)),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return Err(None),
        }
    }
}

#[tokio::test]
async fn a_client_gets_a_snapshot_then_every_change() {
    let app = TestApp::start().await;
    let mut socket = connect(&app).await;

    let Ok(ServerMessage::Snapshot { state, metrics }) = next_message(&mut socket).await else {
        panic!("the first message must be a snapshot");
    };
    let metrics = metrics.expect("a snapshot carries the metrics");
    assert_eq!(
        metrics.canary.last_1m.requests, 0,
        "nothing is measured yet"
    );
    let mut last_revision = state.revision;
    let mut production_health = state.production.health;

    // Wait for the first probe to find production healthy, then break it.
    while production_health != Health::Healthy {
        let state = next_state(&mut socket).await;
        assert!(state.revision > last_revision, "revisions must increase");
        last_revision = state.revision;
        production_health = state.production.health;
    }
    app.production.set_health_status(500);
    loop {
        let state = next_state(&mut socket).await;
        assert!(state.revision > last_revision, "revisions must increase");
        last_revision = state.revision;
        if state.production.health == Health::Unhealthy {
            assert_eq!(
                state.production.health_detail.as_deref(),
                Some("HTTP 500 from /healthz")
            );
            break;
        }
    }
}

#[tokio::test]
async fn an_unchanged_state_is_not_resent() {
    let app = TestApp::start().await;
    let mut socket = connect(&app).await;
    let Ok(ServerMessage::Snapshot { .. }) = next_message(&mut socket).await else {
        panic!("the first message must be a snapshot");
    };
    // Probes run every 50 ms; with both upstreams steady and no traffic,
    // after the first verdicts no further state may arrive (metrics messages
    // come every second and are not state changes).
    let mut changes = 0;
    let until = tokio::time::Instant::now() + std::time::Duration::from_millis(2500);
    while let Ok(frame) = tokio::time::timeout_at(until, socket.next()).await {
        if let Some(Ok(Message::Text(text))) = frame
            && matches!(
                serde_json::from_str(&text).unwrap(),
                ServerMessage::State { .. }
            )
        {
            changes += 1;
        }
    }
    assert!(changes <= 2, "a steady server sent {changes} state changes");
}

#[tokio::test]
async fn metrics_arrive_every_second_carrying_only_new_seconds() {
    let app = TestApp::start().await;
    let mut socket = connect(&app).await;
    let Ok(ServerMessage::Snapshot { .. }) = next_message(&mut socket).await else {
        panic!("the first message must be a snapshot");
    };
    let mut seconds_seen = Vec::new();
    while seconds_seen.len() < 3 {
        if let Ok(ServerMessage::Metrics { metrics }) = next_message(&mut socket).await {
            assert!(
                metrics.production.series.len() <= 2,
                "only new seconds are sent"
            );
            seconds_seen.extend(metrics.production.series.iter().map(|sample| sample.at));
        }
    }
    assert!(
        seconds_seen.windows(2).all(|pair| pair[0] < pair[1]),
        "seconds are sent once, in order"
    );
}

#[tokio::test]
async fn a_reconnecting_client_starts_from_a_fresh_snapshot() {
    let app = TestApp::start().await;
    let mut first = connect(&app).await;
    let _ = next_message(&mut first).await;
    first.close(None).await.unwrap();
    let mut second = connect(&app).await;
    assert!(matches!(
        next_message(&mut second).await,
        Ok(ServerMessage::Snapshot { .. })
    ));
}

#[tokio::test]
async fn shutdown_closes_streams_with_going_away() {
    let mut app = TestApp::start().await;
    let mut socket = connect(&app).await;
    let _ = next_message(&mut socket).await;
    let shutdown = tokio::spawn(async move {
        app.shut_down().await;
    });
    loop {
        match next_message(&mut socket).await {
            Ok(_) => continue,
            Err(code) => {
                assert_eq!(code, Some(CloseCode::Away));
                break;
            }
        }
    }
    shutdown.await.unwrap();
}
