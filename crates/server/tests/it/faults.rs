//! Upstream faults between the proxy and the canary, injected by a small
//! TCP relay of the test's own: added latency, a bandwidth limit, a reset
//! mid-body, a server that accepts and never answers, headers that trickle
//! in, garbage instead of HTTP, and keep-alive connections closed at
//! random. For each: the client's answer is the documented one within the
//! configured timeouts, the failure is counted against the canary under
//! its kind (production's counts do not move), and the `canary` process
//! (the real binary, so its descriptors and threads are its own) ends with
//! no more file descriptors or threads than the fault's requests could
//! explain by pooling.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{FakeUpstream, Served, json_client, post_json, serve_binary};

/// What the relay does to the upstream's answers.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    /// Passes bytes through untouched.
    Clean,
    /// Holds every chunk of the answer back this long.
    Latency(Duration),
    /// At most this many bytes of the answer per 100 ms.
    Bandwidth(usize),
    /// Passes the head and part of the body, then resets the connection.
    ResetMidBody,
    /// Accepts, reads, and never answers.
    Blackhole,
    /// One byte of the answer every 100 ms.
    SlowHeaders,
    /// Answers with bytes that are not HTTP, then closes.
    Garbage,
    /// Closes each connection 20–80 ms after an answer, while it is idle
    /// in the proxy's pool (as servers with short keep-alive timeouts do).
    RandomClose,
}

/// A TCP relay in front of `target` whose fault a test changes at will.
struct FaultRelay {
    address: SocketAddr,
    fault: Arc<Mutex<Fault>>,
    /// Bumped at every change: open connections close (as a restarted
    /// server's would), so the next requests meet the new fault.
    generation: tokio::sync::watch::Sender<u64>,
}

impl FaultRelay {
    async fn start(target: SocketAddr) -> FaultRelay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let fault = Arc::new(Mutex::new(Fault::Clean));
        let shared = Arc::clone(&fault);
        let (generation, _) = tokio::sync::watch::channel(0);
        let changes = generation.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = *shared.lock().unwrap();
                let mut changed = changes.subscribe();
                tokio::spawn(async move {
                    tokio::select! {
                        () = relay(client, target, fault) => {}
                        _ = changed.changed() => {}
                    }
                });
            }
        });
        FaultRelay {
            address,
            fault,
            generation,
        }
    }

    /// From now on connections get `fault`; open ones are closed.
    fn set(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
        self.generation.send_modify(|generation| *generation += 1);
    }

    fn url(&self) -> String {
        format!("http://{}", self.address)
    }
}

async fn relay(mut client: TcpStream, target: SocketAddr, fault: Fault) {
    let mut request = vec![0u8; 64 * 1024];
    match fault {
        Fault::Blackhole => {
            // Read whatever comes and never answer, until the proxy gives up.
            while matches!(client.read(&mut request).await, Ok(read) if read > 0) {}
            return;
        }
        Fault::Garbage => {
            let _ = client.read(&mut request).await;
            let _ = client
                .write_all(b"SSH-2.0-OpenSSH_9.2\r\n\x00\xff garbage\r\n\r\n")
                .await;
            return;
        }
        _ => {}
    }
    let Ok(upstream) = TcpStream::connect(target).await else {
        return;
    };
    if fault == Fault::ResetMidBody {
        // Closing then sends RST, not FIN.
        client.set_zero_linger().unwrap();
    }
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let requests = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut upstream_write).await;
    });
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let read = match upstream_read.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let bytes = &chunk[..read];
        let written = match fault {
            Fault::Latency(delay) => {
                tokio::time::sleep(delay).await;
                client_write.write_all(bytes).await
            }
            Fault::Bandwidth(per_100ms) => {
                let mut result = Ok(());
                for piece in bytes.chunks(per_100ms) {
                    result = client_write.write_all(piece).await;
                    if result.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result
            }
            Fault::ResetMidBody => {
                // The head and a few bytes of the body, then a reset (RST,
                // not FIN: linger 0 on close).
                let _ = client_write.write_all(&bytes[..bytes.len() - 3]).await;
                // No FIN from the write half; the read half closes the socket.
                client_write.forget();
                requests.abort();
                return;
            }
            Fault::SlowHeaders => {
                let mut result = Ok(());
                for byte in bytes {
                    result = client_write.write_all(std::slice::from_ref(byte)).await;
                    if result.is_err() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                result
            }
            Fault::RandomClose => {
                if client_write.write_all(bytes).await.is_ok() {
                    let idle = Duration::from_millis(20 + fastrand::u64(0..60));
                    tokio::time::sleep(idle).await;
                }
                break;
            }
            Fault::Clean | Fault::Blackhole | Fault::Garbage => client_write.write_all(bytes).await,
        };
        if written.is_err() {
            break;
        }
    }
    requests.abort();
}

/// The `canary` binary serving a held rollout at 50 % in front of
/// production directly and of the canary through `relay`; faults are
/// aimed at the canary with the override header, so no request of the
/// test reaches production and its counts must stay at zero errors.
async fn serve(production: &FakeUpstream, relay: &FaultRelay) -> (Served, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::support::binary_config(
        dir.path(),
        &production.url(),
        &relay.url(),
        r#"proxy:
  stickiness: { mode: none }
  override: { trusted_networks: ["127.0.0.0/8"] }
  upstream_connect_timeout: 1s
  upstream_response_timeout: 1s
canary:
  auto_progression: { enabled: false, wait_time: "24h", thresholds: { max_latency: "10000ms", min_success_rate: 0.0, max_error_rate: 1.0 } }
  auto_rollback: { enabled: false }
  traffic_steps: [50, 100]
"#,
    );
    let served = serve_binary(&config);
    let client = json_client();
    let started = post_json(
        &client,
        &format!("{}start", served.console),
        r#"{"image_tag":"v2.7.0","traffic_percent":50}"#,
    )
    .await;
    assert_eq!(started.0, 200, "{}", started.1);
    crate::support::eventually("the canary to take traffic", async || {
        let state = get_json(&format!("{}status", served.console)).await;
        (state["phase"] == "progressing").then_some(())
    })
    .await;
    (served, dir)
}

async fn get_json(url: &str) -> serde_json::Value {
    let (_, _, body) = crate::support::http_get(url, "application/json").await;
    serde_json::from_str(&body).unwrap()
}

/// Open file descriptors and threads of the process.
fn descriptors_and_threads(pid: u32) -> (usize, usize) {
    let descriptors = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .count();
    (descriptors, threads)
}

/// One request through the proxy to the canary: its status (0 when the
/// connection failed, before or during the body), and how long it took.
async fn through_canary(proxy: &str) -> (u16, Duration) {
    let started = tokio::time::Instant::now();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let request = hyper::Request::get(format!("{proxy}fault"))
        .header("x-canary", "always")
        .body(Full::default())
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), async {
        let response = client.request(request).await.ok()?;
        let status = response.status().as_u16();
        response.into_body().collect().await.ok()?;
        Some(status)
    })
    .await
    .expect("the proxy answers within its timeouts");
    (outcome.unwrap_or(0), started.elapsed())
}

/// The canary's last-minute requests and transport errors by kind, and
/// production's error count.
async fn counts(console: &str) -> (u64, serde_json::Value, u64) {
    let metrics = get_json(&format!("{console}metrics")).await;
    let canary = &metrics["canary"]["last_1m"];
    let production = &metrics["production"]["last_1m"];
    let production_errors = production["errors_5xx"].as_u64().unwrap()
        + ["refused", "reset", "timeout", "overloaded", "other"]
            .iter()
            .map(|kind| production["transport_errors"][kind].as_u64().unwrap())
            .sum::<u64>();
    (
        canary["requests"].as_u64().unwrap(),
        canary["transport_errors"].clone(),
        production_errors,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_upstream_fault_gets_its_documented_answer_is_counted_against_the_canary_and_leaks_nothing()
 {
    let production = FakeUpstream::named("production").await;
    let canary = FakeUpstream::named("canary").await;
    let relay =
        FaultRelay::start(canary.url().trim_start_matches("http://").parse().unwrap()).await;
    let (served, _dir) = serve(&production, &relay).await;
    let pid = served.child.id();

    // Warm up: the pools and the runtime's threads as a normal load leaves them.
    for _ in 0..20 {
        assert_eq!(through_canary(&served.proxy).await.0, 200);
    }
    let (descriptors_before, threads_before) = descriptors_and_threads(pid);

    // (fault, the answers the client may get, the transport error kind counted)
    let cases: [(Fault, &[u16], Option<&str>); 7] = [
        (Fault::Latency(Duration::from_millis(150)), &[200], None),
        (Fault::Bandwidth(64), &[200], None),
        // The head was already sent: the client's connection breaks (0),
        // unless the reset came before the head was read (502).
        (Fault::ResetMidBody, &[0, 502], Some("reset")),
        (Fault::Blackhole, &[504], Some("timeout")),
        (Fault::SlowHeaders, &[504], Some("timeout")),
        (Fault::Garbage, &[502], Some("other")),
        // A pooled connection the server closed is not a failure of the
        // canary's: every request is answered.
        (Fault::RandomClose, &[200], None),
    ];
    for (fault, answers, kind) in cases {
        relay.set(fault);
        let (requests_before, errors_before, _) = counts(&served.console).await;
        let answers_got = if fault == Fault::RandomClose {
            // One after another, some just as the relay closes the pooled
            // connection they would reuse.
            let mut got = Vec::new();
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(fastrand::u64(0..100))).await;
                got.push(through_canary(&served.proxy).await);
            }
            got
        } else {
            let handles: Vec<_> = (0..10)
                .map(|_| {
                    let proxy = served.proxy.clone();
                    tokio::spawn(async move { through_canary(&proxy).await })
                })
                .collect();
            let mut got = Vec::new();
            for handle in handles {
                got.push(handle.await.unwrap());
            }
            got
        };
        for (status, took) in answers_got {
            assert!(
                answers.contains(&status),
                "{fault:?}: the client got {status}, expected one of {answers:?}"
            );
            // Within the 1 s response timeout (plus scheduling), or the
            // time the fault itself takes to pass a whole answer.
            assert!(took < Duration::from_secs(8), "{fault:?}: {took:?}");
        }
        let by_kind =
            crate::support::eventually(&format!("{fault:?} to be recorded"), async || {
                let (requests, by_kind, _) = counts(&served.console).await;
                (requests >= requests_before + 10).then_some(by_kind)
            })
            .await;
        if let Some(kind) = kind {
            let before = errors_before[kind].as_u64().unwrap();
            let after = by_kind[kind].as_u64().unwrap();
            assert!(
                after >= before + 10,
                "{fault:?}: {kind} went from {before} to {after} for 10 failed requests: {by_kind}"
            );
        } else {
            assert_eq!(
                by_kind, errors_before,
                "{fault:?}: no transport error counted for answered requests"
            );
        }
    }
    let (_, _, production_errors) = counts(&served.console).await;
    assert_eq!(
        production_errors, 0,
        "nothing was counted against production"
    );

    // Clean again: the proxy serves, and holds no more than it did.
    relay.set(Fault::Clean);
    for _ in 0..20 {
        assert_eq!(through_canary(&served.proxy).await.0, 200);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (descriptors_after, threads_after) = descriptors_and_threads(pid);
    // 70 faulty requests: a leak of one descriptor per failure would show
    // as dozens; pooled idle connections account for a few.
    assert!(
        descriptors_after <= descriptors_before + 8,
        "descriptors went from {descriptors_before} to {descriptors_after}"
    );
    assert!(
        threads_after <= threads_before + 2,
        "threads went from {threads_before} to {threads_after}"
    );
}
