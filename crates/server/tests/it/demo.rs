//! `canary demo`: one command gives a live rollout with real services,
//! real traffic, a real deploy script, and a canary that can be broken.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use canary_shared::demo::DemoStatus;
use canary_shared::{CanaryState, Phase};

use crate::support::{eventually, eventually_for, http_get, json_client, post_json};

/// The demo process, killed when the test ends however it ends.
struct DemoProcess {
    child: Child,
    console: String,
}

impl Drop for DemoProcess {
    /// SIGTERM first: the demo then stops what it started (a router in
    /// front of its services); a kill after 10 s if it has not.
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo(data_dir: &std::path::Path) -> DemoProcess {
    start_demo_with(data_dir, &[])
}

fn start_demo_with(data_dir: &std::path::Path, extra: &[&str]) -> DemoProcess {
    let mut child = Command::new(env!("CARGO_BIN_EXE_canary"))
        .args([
            "demo",
            "--admin-listen",
            "127.0.0.1:0",
            "--proxy-listen",
            "127.0.0.1:0",
            "--load",
            "60",
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env("CANARY_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let console = lines.next().unwrap().unwrap();
    let console = console
        .strip_prefix("canary: console at ")
        .unwrap_or_else(|| panic!("unexpected first line: {console}"))
        .trim_end_matches('/')
        .to_owned();
    // The rest of its output is not needed; keep reading so it never blocks.
    std::thread::spawn(move || for _ in lines {});
    DemoProcess { child, console }
}

async fn status(demo: &DemoProcess) -> CanaryState {
    let (_, _, body) = http_get(&format!("{}/status", demo.console), "application/json").await;
    serde_json::from_str(&body).unwrap()
}

/// Starts a rollout at 50 % through the demo's REST API.
async fn start_at_half(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<hyper::body::Bytes>,
    >,
    demo: &DemoProcess,
) {
    let (code, body) = post_json(
        client,
        &format!("{}/start", demo.console),
        r#"{"image_tag":"v2.7.0","traffic_percent":50}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
}

/// Makes every canary request fail through the demo panel's API, and
/// waits for the automatic rollback; the state then.
async fn break_canary(
    client: &hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<hyper::body::Bytes>,
    >,
    demo: &DemoProcess,
) -> CanaryState {
    let (code, body) = post_json(
        client,
        &format!("{}/demo", demo.console),
        r#"{"error_rate":1.0}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    eventually("an automatic rollback", async || {
        let state = status(demo).await;
        // Rolling back is published first; rolled back follows once the
        // (absent) rollback hook is done.
        (state.phase == Phase::RolledBack).then_some(state)
    })
    .await
}

/// Waits until the rollout progresses and the canary has served requests
/// (after the demo's 15 s shadow step, when it has one).
async fn canary_traffic(demo: &DemoProcess) {
    eventually_for(Duration::from_secs(40), "canary traffic", async || {
        let state = status(demo).await;
        (state.phase == Phase::Progressing && state.canary.request_count > 10).then_some(())
    })
    .await;
}

#[tokio::test]
async fn the_demo_serves_live_traffic_and_a_broken_canary_is_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(&dir.path().join("demo-data"));

    // Traffic flows through the proxy from the start: production is measured.
    eventually("production traffic", async || {
        let state = status(&demo).await;
        (state.production.request_count > 10).then_some(())
    })
    .await;
    let (code, _, body) = http_get(&format!("{}/demo", demo.console), "application/json").await;
    assert_eq!(code.as_u16(), 200, "{body}");
    let demo_status: DemoStatus = serde_json::from_str(&body).unwrap();
    assert_eq!(demo_status.canary.version, "v2.7.0");
    assert!(demo_status.canary.behaviour.is_healthy());

    // Start: the demo's deploy script runs as the deploy hook, then traffic splits.
    let client = json_client();
    start_at_half(&client, &demo).await;
    let deployed = eventually("the deploy script to finish", async || {
        let (_, _, body) = http_get(
            &format!("{}/audit?action=deployed", demo.console),
            "application/json",
        )
        .await;
        let page: canary_shared::AuditPage = serde_json::from_str(&body).unwrap();
        page.events.into_iter().next()
    })
    .await;
    let output = deployed.output.unwrap_or_default();
    assert!(output.contains("deployed app:v2.7.0"), "{output}");
    canary_traffic(&demo).await;
    // Before that, the shadow step compared its answers with production's.
    let (_, _, body) = http_get(&format!("{}/validation", demo.console), "application/json").await;
    let shadow: canary_shared::ShadowReport = serde_json::from_str(&body).unwrap();
    assert!(shadow.compared >= 20, "{shadow:?}");
    assert_eq!(shadow.mismatches.total(), 0, "{shadow:?}");

    // A bad field is refused by name and changes nothing.
    let (code, body) = post_json(
        &client,
        &format!("{}/demo", demo.console),
        r#"{"error_rate":5}"#,
    )
    .await;
    assert_eq!(code, 422, "{body}");
    assert!(body.contains("\"field\":\"error_rate\""), "{body}");

    // Break the canary: the safety checks roll it back without a human.
    let state = break_canary(&client, &demo).await;
    assert!(
        state.summary.starts_with("Rolled back: "),
        "{}",
        state.summary
    );
    assert!(state.summary.contains("rate"), "{}", state.summary);
}

#[tokio::test]
async fn the_demo_fails_a_canary_giving_wrong_answers_before_anyone_gets_one() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo(&dir.path().join("demo-data"));
    let client = json_client();
    let (code, body) = post_json(
        &client,
        &format!("{}/demo", demo.console),
        r#"{"wrong_answer_rate":0.5}"#,
    )
    .await;
    assert_eq!(code, 200, "{body}");
    start_at_half(&client, &demo).await;
    let failed = eventually_for(
        Duration::from_secs(40),
        "the shadow step to fail it",
        async || {
            let state = status(&demo).await;
            (state.phase == Phase::Failed).then_some(state)
        },
    )
    .await;
    assert!(
        failed
            .summary
            .starts_with("Failed: on shadow traffic, before any user was served: Same answers: shadow mismatch rate"),
        "{}",
        failed.summary
    );
    assert_eq!(
        failed.canary.request_count, 0,
        "no client got the canary's answer"
    );
    let (_, _, body) = http_get(&format!("{}/validation", demo.console), "application/json").await;
    let shadow: canary_shared::ShadowReport = serde_json::from_str(&body).unwrap();
    assert_eq!(
        shadow.examples[0].detail,
        "at /answer: production 42, canary 41"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_demo_rolls_back_a_canary_that_answers_unavailable_with_http_200() {
    let dir = tempfile::tempdir().unwrap();
    let demo = start_demo_with(&dir.path().join("demo-data"), &["--grpc"]);
    eventually("production gRPC traffic", async || {
        let state = status(&demo).await;
        (state.production.request_count > 10).then_some(())
    })
    .await;
    let client = json_client();
    start_at_half(&client, &demo).await;
    canary_traffic(&demo).await;
    let healthy = status(&demo).await;
    assert_eq!(healthy.canary.error_rate, Some(0.0), "{:?}", healthy.canary);

    // Every failing call is HTTP 200 with grpc-status 14 in its trailers.
    let state = break_canary(&client, &demo).await;
    assert!(state.summary.contains("rate"), "{}", state.summary);
    let (_, _, metrics) = http_get(
        &format!("{}/metrics", demo.console.trim_end_matches("/admin/canary")),
        "text/plain",
    )
    .await;
    let grpc_errors = metrics
        .lines()
        .find_map(|line| {
            line.strip_prefix("canary_requests_total{side=\"canary\",outcome=\"grpc_error\"} ")
        })
        .and_then(|value| value.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(grpc_errors > 0.0, "{metrics}");
}

#[tokio::test]
async fn outside_the_demo_the_demo_panel_api_says_so() {
    let app = crate::support::TestApp::start().await;
    // The console asks on every load: "no demo here" is a normal, empty answer.
    let (code, _, body) = http_get(&app.url("/admin/canary/demo"), "application/json").await;
    assert_eq!(code.as_u16(), 204, "{body}");
    assert!(body.is_empty(), "{body}");
    let (code, body) = crate::support::post_json(
        &crate::support::json_client(),
        &app.url("/admin/canary/demo"),
        r#"{"error_rate":0.1,"added_latency_ms":0,"hang":false}"#,
    )
    .await;
    assert_eq!(code, 404, "{body}");
    assert!(body.contains("only `canary demo`"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_runs_its_traffic_through_a_real_haproxy_or_nginx_that_canary_steers() {
    for router in ["haproxy", "nginx"] {
        let dir = tempfile::tempdir().unwrap();
        let demo = start_demo_with(dir.path(), &["--router", router]);
        let client = json_client();
        let (code, body) = post_json(
            &client,
            &format!("{}/start", demo.console),
            r#"{"image_tag":"v2.8.0","traffic_percent":25}"#,
        )
        .await;
        assert_eq!(code, 200, "{router}: {body}");
        // The demo's deploy script takes a few seconds.
        eventually("the rollout to take traffic", async || {
            (status(&demo).await.phase == Phase::Progressing).then_some(())
        })
        .await;
        let state = eventually("the split to be confirmed and measured", async || {
            let state = status(&demo).await;
            (state.router.confirmed
                && state.router.effective_percent.percent() == 25.0
                && state.canary.request_count > 0
                && state.production.request_count > 0)
                .then_some(state)
        })
        .await;
        assert_eq!(state.router.kind, router);
        assert_eq!(state.phase, Phase::Progressing);
    }
}
