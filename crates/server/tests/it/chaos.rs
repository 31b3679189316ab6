//! A crash loop: the real `canary` binary killed with SIGKILL at random
//! moments while a script drives rollouts through every kind of command
//! (start, scale, continue, pause, resume, promote, stop, rollback,
//! auto-progression, webhooks), with a ledger of every command the server
//! acknowledged. After each restart, before anything else:
//! - no acknowledged command is lost: each has its audit entry, and the
//!   state's revision is at least the last one acknowledged;
//! - the audit trail has no gaps (its numbers run on, one by one);
//! - the proxy serves the share the stored state says, from its first
//!   request.
//!
//! `CANARY_CHAOS_ROUNDS` sets the rounds (CI runs 8; `cargo xtask chaos`
//! runs 50 and prints what it saw).

use std::collections::BTreeMap;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;

use crate::support::FakeUpstream;

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// A request that may meet a killed server: `None` when it got no answer.
async fn try_send(client: &Client, method: &str, url: &str, body: &str) -> Option<(u16, String)> {
    let request = hyper::Request::builder()
        .method(method)
        .uri(url)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(5), client.request(request))
        .await
        .ok()?
        .ok()?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.ok()?.to_bytes();
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The audit actions a command of each kind records: `continue` after the
/// last step promotes, and auto-progression says on or off.
fn actions_of(kind: &str) -> &'static [&'static str] {
    match kind {
        "start" => &["start"],
        "scale" => &["scale"],
        "continue" | "promote" => &["continue", "promote"],
        "pause" => &["pause"],
        "resume" => &["resume"],
        "stop" => &["stop"],
        "rollback" => &["rollback"],
        "auto_progression" => &["auto_progression_on", "auto_progression_off"],
        other => panic!("no such command kind {other}"),
    }
}

/// One command of the script: (method, path, body, its kind).
fn random_command() -> (&'static str, String, &'static str, &'static str) {
    match fastrand::u8(0..12) {
        0 | 1 => (
            "POST",
            "start".to_owned(),
            r#"{"image_tag":"v2.7.0","traffic_percent":5}"#,
            "start",
        ),
        2 | 3 => (
            "POST",
            format!("scale/{}", fastrand::u8(0..=100)),
            "",
            "scale",
        ),
        4 => ("POST", "continue".to_owned(), "", "continue"),
        5 => ("POST", "pause".to_owned(), "", "pause"),
        6 => ("POST", "resume".to_owned(), "", "resume"),
        7 => ("POST", "promote".to_owned(), "", "continue"),
        8 => ("POST", "stop".to_owned(), r#"{"reason":"chaos"}"#, "stop"),
        10 => (
            "POST",
            "rollback".to_owned(),
            r#"{"reason":"chaos"}"#,
            "rollback",
        ),
        9 => (
            "POST",
            "auto-progression".to_owned(),
            if fastrand::bool() {
                r#"{"enabled":true}"#
            } else {
                r#"{"enabled":false}"#
            },
            "auto_progression",
        ),
        _ => (
            "POST",
            "webhook/traffic-updated".to_owned(),
            r#"{"percent":40}"#,
            "scale",
        ),
    }
}

/// Every audit entry, oldest first: (number, action, actor).
async fn audit_trail(client: &Client, console: &str) -> Vec<(u64, String, String)> {
    let mut entries = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let query = before.map_or(String::new(), |before| format!("&before={before}"));
        let (status, body) = try_send(
            client,
            "GET",
            &format!("{console}audit?limit=500{query}"),
            "",
        )
        .await
        .expect("the audit trail answers");
        assert_eq!(status, 200, "{body}");
        let page: serde_json::Value = serde_json::from_str(&body).unwrap();
        for event in page["events"].as_array().unwrap() {
            entries.push((
                event["seq"].as_u64().unwrap(),
                event["action"].as_str().unwrap().to_owned(),
                event["actor"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_before"].as_u64() {
            Some(next) => before = Some(next),
            None => break,
        }
    }
    entries.reverse();
    entries
}

async fn get_state(client: &Client, console: &str) -> serde_json::Value {
    let (status, body) = try_send(client, "GET", &format!("{console}status"), "")
        .await
        .expect("the restarted server answers");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// The canary's share in `state`, and the name of the upstream playing the
/// canary (after a promotion the roles swap).
fn split_of(state: &serde_json::Value, canary_url: &str) -> (f64, &'static str) {
    let share = state["traffic"]["canary_percent"].as_f64().unwrap();
    let upstream = if state["canary"]["url"] == canary_url {
        "canary"
    } else {
        "production"
    };
    (share, upstream)
}

/// The share of 200 requests through the proxy answered by the upstream
/// named `canary_upstream` (the one playing the canary: after a promotion
/// the roles swap).
async fn served_canary_share(proxy: &str, canary_upstream: &str) -> f64 {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let mut canary = 0;
    for _ in 0..200 {
        let request = hyper::Request::get(format!("{proxy}chaos"))
            .body(Full::default())
            .unwrap();
        let response = client.request(request).await.expect("the proxy answers");
        if response
            .headers()
            .get("x-upstream")
            .is_some_and(|value| value == canary_upstream)
        {
            canary += 1;
        }
        let _ = response.into_body().collect().await;
    }
    f64::from(canary) / 200.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_random_moments_the_server_loses_no_acknowledged_command_and_serves_the_stored_share()
 {
    let rounds: usize = std::env::var("CANARY_CHAOS_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .unwrap_or(8);
    let production = FakeUpstream::named("production").await;
    let canary = FakeUpstream::named("canary").await;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::binary_config(
        dir.path(),
        &production.url(),
        &canary.url(),
        r#"proxy: { stickiness: { mode: none } }
hooks:
  health_check: { command: ["true"] }
canary:
  # Only the script moves the share, so the check after a restart is exact.
  auto_progression: { enabled: false, wait_time: "1h", thresholds: { max_latency: "1000ms", min_success_rate: 0.85, max_error_rate: 0.15 } }
  traffic_steps: [5, 25, 50, 100]
"#,
    );
    let client: Client =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();

    let mut acknowledged: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut last_revision = 0;
    let mut commands_sent = 0;
    let mut splits_checked = 0;
    for round in 0..rounds {
        let server = crate::support::serve_binary(&config);

        // Before anything else: the stored state, the share served, the trail.
        let state = get_state(&client, &server.console).await;
        let (share, canary_upstream) = split_of(&state, &canary.url());
        let served = served_canary_share(&server.proxy, canary_upstream).await;
        // A rollout killed in its health check goes on to its first step
        // by itself: judge only a split that held during the measurement.
        let after = get_state(&client, &server.console).await;
        if split_of(&after, &canary.url()) == (share, canary_upstream) {
            let expected = share / 100.0;
            assert!(
                (served - expected).abs() <= 0.15 && (share != 0.0 || served == 0.0),
                "round {round}: the state says {share} %, the proxy served {:.1} % to the canary",
                served * 100.0
            );
            splits_checked += 1;
        }
        let revision = state["revision"].as_u64().unwrap();
        assert!(
            revision >= last_revision,
            "round {round}: revision {revision} after acknowledging {last_revision}"
        );
        let trail = audit_trail(&client, &server.console).await;
        for pair in trail.windows(2) {
            assert_eq!(
                pair[1].0,
                pair[0].0 + 1,
                "round {round}: a gap in the trail: {pair:?}"
            );
        }
        for (kind, count) in &acknowledged {
            // The script's own entries: the controller's decisions aside.
            let recorded = trail
                .iter()
                .filter(|(_, action, actor)| {
                    actor != "controller" && actions_of(kind).contains(&action.as_str())
                })
                .count();
            assert!(
                recorded >= *count,
                "round {round}: {count} `{kind}` commands acknowledged, {recorded} in the trail"
            );
        }

        // The script, cut short by SIGKILL at a random moment. Asking for
        // the auto-progression already in force records nothing (by
        // design), so it counts only when the last state seen differed.
        let mut last_state = state;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(fastrand::u64(50..600));
        while tokio::time::Instant::now() < deadline {
            let (method, path, body, action) = random_command();
            let url = format!("{}{path}", server.console);
            let kill_now = fastrand::u8(0..8) == 0;
            let sent = try_send(&client, method, &url, body);
            commands_sent += 1;
            let answer = if kill_now {
                // Kill while this command is in flight.
                let (answer, ()) = tokio::join!(sent, async {
                    tokio::time::sleep(Duration::from_micros(fastrand::u64(0..3000))).await;
                    let _ = std::process::Command::new("kill")
                        .args(["-KILL", &server.child.id().to_string()])
                        .status();
                });
                answer
            } else {
                sent.await
            };
            if let Some((200, body)) = &answer {
                let state: serde_json::Value = serde_json::from_str(body).unwrap();
                let changed = action != "auto_progression"
                    || last_state["auto_progression"]["enabled"]
                        != state["auto_progression"]["enabled"];
                if changed {
                    *acknowledged.entry(action).or_default() += 1;
                }
                last_revision = last_revision.max(state["revision"].as_u64().unwrap());
                last_state = state;
            }
            if kill_now {
                break;
            }
        }
        drop(server);
    }
    let total: usize = acknowledged.values().sum();
    assert!(
        total > 0,
        "the script had at least one command acknowledged"
    );
    assert!(
        splits_checked > 0,
        "no round kept its split still long enough to check it"
    );
    eprintln!(
        "chaos: {rounds} rounds, {commands_sent} commands sent, {total} acknowledged \
         ({acknowledged:?}), none lost; the split served checked after {splits_checked} restarts"
    );
}
