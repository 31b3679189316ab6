//! The Gateway API as the router, whole: canary with the config of
//! `docs/router-gateway-api.md`, reaching through a kubeconfig a small fake
//! Kubernetes API server on loopback that holds the page's `HTTPRoute`,
//! enforces the page's Role and the `resourceVersion` rule, and has a
//! "Gateway controller" that accepts each new generation a moment later.
//! A stand-in data plane splits requests by the accepted weights between
//! two fake upstreams and sends canary's access-log lines, as the page's
//! log shipper would.
//!
//! What this proves: the requests canary makes through kube-rs's real
//! client and transport, that the documented Role is enough, `canary
//! check`'s findings, and a rollout's confirmation, drift correction,
//! measurement and rollback through the router. What it does not: a real
//! API server's admission and validation, a real controller, a real data
//! plane (the page says so too).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use canary_server::config::{Config, RouterConfig, RouterKind};
use canary_shared::{AuditPage, CanaryShare, Command as Action, Phase};
use serde_json::{Value, json};

use crate::router::{app_with_router, doc_block_with, free_udp_port};
use crate::support::{FakeUpstream, eventually, http_get};

const PAGE: &str = "router-gateway-api.md";

/// The fake API server's state.
struct Cluster {
    /// The route as stored, with `metadata.resourceVersion` and `generation`.
    route: Option<Value>,
    /// The verbs the page's Role grants on httproutes (and for which names).
    verbs: Vec<String>,
    names: Vec<String>,
    /// How long the "controller" takes to accept a new generation.
    accept_after: Duration,
    /// When the current generation was written.
    written_at: tokio::time::Instant,
    /// The spec of the generation the Gateway accepted last: what the data plane serves.
    serving: Option<Value>,
}

/// The fake API server, stopped when dropped.
struct FakeApiServer {
    address: SocketAddr,
    cluster: Arc<Mutex<Cluster>>,
    _tasks: AbortOnDrop,
}

struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The page's documents of one kind.
fn documents(kind: &str) -> Vec<Value> {
    let mut found = Vec::new();
    for lang_block in ["kind: HTTPRoute", "kind: Role"] {
        let block = doc_block_with(PAGE, "yaml", lang_block);
        for document in serde_yaml_ng::Deserializer::from_str(&block) {
            let value: Value = serde::Deserialize::deserialize(document).unwrap();
            if value["kind"] == kind {
                found.push(value);
            }
        }
    }
    found
}

impl FakeApiServer {
    /// Holds the page's route, with the page's Role's permissions.
    async fn start() -> FakeApiServer {
        let mut route = documents("HTTPRoute").remove(0);
        route["metadata"]["resourceVersion"] = json!("100");
        route["metadata"]["generation"] = json!(1);
        route["metadata"]["annotations"] = json!({ "team": "shop" });
        route["status"] = json!({ "parents": [{
            "parentRef": { "name": "edge" },
            "controllerName": "example.com/gateway",
            "conditions": [{ "type": "Accepted", "status": "True", "observedGeneration": 1, "reason": "Accepted" }]
        }]});
        let role = documents("Role").remove(0);
        let rule = &role["rules"][0];
        assert_eq!(rule["resources"], json!(["httproutes"]));
        let strings = |value: &Value| -> Vec<String> {
            value
                .as_array()
                .unwrap()
                .iter()
                .map(|item| item.as_str().unwrap().to_owned())
                .collect()
        };
        let cluster = Arc::new(Mutex::new(Cluster {
            serving: Some(route["spec"].clone()),
            route: Some(route),
            verbs: strings(&rule["verbs"]),
            names: strings(&rule["resourceNames"]),
            accept_after: Duration::from_millis(1500),
            written_at: tokio::time::Instant::now(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route(
                "/apis/gateway.networking.k8s.io/v1/namespaces/{namespace}/httproutes/{name}",
                axum::routing::get(route_call).put(route_call),
            )
            .with_state(Arc::clone(&cluster));
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let controller = {
            let cluster = Arc::clone(&cluster);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    accept_when_due(&mut cluster.lock().unwrap());
                }
            })
        };
        let both = tokio::spawn(async move {
            let _ = server.await;
            controller.abort();
        });
        FakeApiServer {
            address,
            cluster,
            _tasks: AbortOnDrop(both.abort_handle()),
        }
    }

    /// A kubeconfig for it, in `dir`.
    fn kubeconfig(&self, dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("kubeconfig");
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: http://{}\n\
             users:\n- name: canary\n  user:\n    token: fake-token\ncontexts:\n- name: fake\n  context:\n    \
             cluster: fake\n    user: canary\n    namespace: web\ncurrent-context: fake\n",
            self.address
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn route(&self) -> Value {
        self.cluster.lock().unwrap().route.clone().unwrap()
    }

    /// The weights of (shop-stable, shop-canary) in the stored route.
    fn weights(&self) -> (u64, u64) {
        weights_of(&self.route()["spec"])
    }

    /// Someone changes the weights with kubectl.
    fn set_weights(&self, production: u64, canary: u64) {
        let mut cluster = self.cluster.lock().unwrap();
        let route = cluster.route.as_mut().unwrap();
        route["spec"]["rules"][0]["backendRefs"][0]["weight"] = json!(production);
        route["spec"]["rules"][0]["backendRefs"][1]["weight"] = json!(canary);
        bump(route, true);
        cluster.written_at = tokio::time::Instant::now();
    }
}

fn weights_of(spec: &Value) -> (u64, u64) {
    let refs = &spec["rules"][0]["backendRefs"];
    (
        refs[0]["weight"].as_u64().unwrap_or(1),
        refs[1]["weight"].as_u64().unwrap_or(1),
    )
}

/// A new resourceVersion, and a new generation when the spec changed.
fn bump(route: &mut Value, spec_changed: bool) {
    let version: u64 = route["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    route["metadata"]["resourceVersion"] = json!((version + 1).to_string());
    if spec_changed {
        let generation = route["metadata"]["generation"].as_i64().unwrap();
        route["metadata"]["generation"] = json!(generation + 1);
    }
}

/// The "Gateway controller": accepts the current generation once it is due.
fn accept_when_due(cluster: &mut Cluster) {
    let due = cluster.written_at + cluster.accept_after;
    let Some(route) = cluster.route.as_mut() else {
        return;
    };
    let generation = route["metadata"]["generation"].clone();
    let condition = &mut route["status"]["parents"][0]["conditions"][0];
    if condition["observedGeneration"] != generation && tokio::time::Instant::now() >= due {
        condition["observedGeneration"] = generation;
        let spec = route["spec"].clone();
        cluster.serving = Some(spec);
    }
}

fn api_status(code: StatusCode, reason: &str, message: String) -> Response {
    let body = json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure",
        "code": code.as_u16(), "reason": reason, "message": message });
    (code, axum::Json(body)).into_response()
}

async fn route_call(
    State(cluster): State<Arc<Mutex<Cluster>>>,
    Path((namespace, name)): Path<(String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
    method: Method,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let mut cluster = cluster.lock().unwrap();
    assert_eq!(
        headers.get("authorization").unwrap(),
        "Bearer fake-token",
        "the kubeconfig's credentials"
    );
    let verb = if method == Method::GET {
        "get"
    } else {
        "update"
    };
    if namespace != "web"
        || !cluster.verbs.iter().any(|granted| granted == verb)
        || !cluster.names.contains(&name)
    {
        return api_status(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "httproutes.gateway.networking.k8s.io \"{name}\" is forbidden: User \"canary\" cannot {verb} resource \"httproutes\" in the namespace \"{namespace}\""
            ),
        );
    }
    let Some(stored) = cluster
        .route
        .clone()
        .filter(|route| route["metadata"]["name"] == name)
    else {
        return api_status(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("httproutes.gateway.networking.k8s.io \"{name}\" not found"),
        );
    };
    if method == Method::GET {
        return axum::Json(stored).into_response();
    }
    let sent: Value = serde_json::from_slice(&body).unwrap();
    if sent["metadata"]["resourceVersion"] != stored["metadata"]["resourceVersion"] {
        return api_status(
            StatusCode::CONFLICT,
            "Conflict",
            "Operation cannot be fulfilled on httproutes.gateway.networking.k8s.io: the object has been modified; please apply your changes to the latest version and try again".to_owned(),
        );
    }
    let valid = sent["spec"]["rules"].as_array().is_some_and(|rules| {
        rules.iter().all(|rule| {
            rule["backendRefs"].as_array().is_none_or(|refs| {
                refs.len() <= 16
                    && refs.iter().all(|backend| {
                        backend["weight"]
                            .as_u64()
                            .is_none_or(|weight| weight <= 1_000_000)
                    })
            })
        })
    });
    if !valid {
        return api_status(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Invalid",
            "spec.rules: Invalid value".to_owned(),
        );
    }
    if query.get("dryRun").is_some_and(|dry| dry == "All") {
        return axum::Json(stored).into_response();
    }
    let mut updated = stored.clone();
    let spec_changed = sent["spec"] != stored["spec"];
    updated["spec"] = sent["spec"].clone();
    updated["metadata"]["annotations"] = sent["metadata"]["annotations"].clone();
    bump(&mut updated, spec_changed);
    cluster.route = Some(updated.clone());
    if spec_changed {
        cluster.written_at = tokio::time::Instant::now();
    }
    axum::Json(updated).into_response()
}

/// `count` requests through the stand-in data plane: each to the Service
/// the accepted weights pick (a smooth weighted round robin, so the split
/// is exact), answered by the fake upstream, and logged to canary in the
/// page's line format. How many went to the canary.
async fn through_gateway(
    api: &FakeApiServer,
    production: &FakeUpstream,
    canary: &FakeUpstream,
    log_port: u16,
    count: usize,
) -> usize {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (production_weight, canary_weight) =
        weights_of(api.cluster.lock().unwrap().serving.as_ref().unwrap());
    let total = production_weight + canary_weight;
    let mut credit = 0u64;
    let mut to_canary = 0;
    for _ in 0..count {
        credit += canary_weight;
        let (service, upstream) = if credit >= total && total > 0 {
            credit -= total;
            to_canary += 1;
            ("shop-canary", canary)
        } else {
            ("shop-stable", production)
        };
        let started = tokio::time::Instant::now();
        let (status, _, _) = http_get(&upstream.url(), "*/*").await;
        let seconds = started.elapsed().as_secs_f64();
        let line = format!(
            "<134>Dec  6 10:00:00 gw canary1 shop {service} {} {seconds:.3} ----",
            status.as_u16()
        );
        socket
            .send_to(line.as_bytes(), ("127.0.0.1", log_port))
            .await
            .unwrap();
    }
    to_canary
}

/// The page's canary config, with the fake cluster's kubeconfig and a free log port.
fn router_config(kubeconfig: &std::path::Path, log_port: u16) -> RouterConfig {
    let yaml = doc_block_with(PAGE, "yaml", "router:")
        .replace("127.0.0.1:5140", &format!("127.0.0.1:{log_port}"))
        .replace(
            "    route: shop\n",
            &format!(
                "    route: shop\n    kubeconfig: {}\n",
                kubeconfig.display()
            ),
        );
    let seed = include_str!("../../../../canary-config.yaml");
    let seed = &seed[seed.find("\ncanary:\n").unwrap() + 1..];
    let config = Config::from_yaml(&format!("{yaml}{seed}")).unwrap_or_else(|err| panic!("{err}"));
    assert_eq!(config.router.kind, RouterKind::GatewayApi);
    config.router
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_through_an_httproute_is_written_accepted_measured_kept_and_rolled_back() {
    let api = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log_port = free_udp_port();
    let production = FakeUpstream::named("production").await;
    let canary = FakeUpstream::named("canary").await;
    let router = router_config(&api.kubeconfig(dir.path()), log_port);
    let app = app_with_router(&production, &canary, router).await;
    crate::promotion::start(&app, "v2.7.0", 5.0).await;

    // Written at once, but in force only once the Gateway accepted it.
    let waiting = eventually("the Gateway to be seen accepting the change", async || {
        let router = app.controller.state.borrow().router.clone();
        router.instances.first()?.waiting.clone()
    })
    .await;
    // (Generation 2 is the 0 % the server asked for when it started.)
    assert!(
        waiting.starts_with("accepting the route's generation ") && waiting.ends_with("(it has 1)"),
        "{waiting}"
    );
    assert!(!app.controller.state.borrow().router.confirmed);
    assert_eq!(api.weights(), (9500, 500));
    crate::support::until_confirmed(&app, None).await;
    let state = app.controller.state.borrow().clone();
    assert_eq!(state.router.kind, "gateway_api");
    assert_eq!(state.router.instances[0].name, "Gateway web/edge");
    assert!(
        state
            .router
            .about
            .contains("Shares: every 0.01 % (one weight per basis point)"),
        "{}",
        state.router.about
    );
    assert_eq!(
        state.router.instances[0].canary_percent,
        Some(CanaryShare::from_percent(5.0).unwrap())
    );
    assert_eq!(
        api.route()["metadata"]["annotations"],
        json!({ "team": "shop" }),
        "the rest of the route is kept"
    );

    // Every request measured per side from the log lines.
    let to_canary = through_gateway(&api, &production, &canary, log_port, 400).await;
    assert_eq!(to_canary, 20);
    let snapshot = app
        .metrics_where(|metrics| {
            metrics.canary.last_1m.requests >= 20 && metrics.production.last_1m.requests >= 380
        })
        .await;
    assert_eq!(snapshot.canary.last_1m.requests, 20);
    assert_eq!(snapshot.production.last_1m.requests, 380);

    // A new step: 25 % is 7500/2500.
    let quarter = CanaryShare::from_percent(25.0).unwrap();
    app.controller
        .command("ops".to_owned(), Action::Scale { percent: quarter }, None)
        .await
        .unwrap();
    crate::support::until_confirmed(&app, Some(quarter)).await;
    assert_eq!(api.weights(), (7500, 2500));

    // Weights changed behind canary's back: audited and set again.
    api.set_weights(1, 1);
    let trail = eventually("the drift to be corrected", async || {
        let (_, _, body) = http_get(
            &app.url("/admin/canary/audit?action=router_drift"),
            "application/json",
        )
        .await;
        let page: AuditPage = serde_json::from_str(&body).unwrap();
        (!page.events.is_empty() && api.weights() == (7500, 2500)).then_some(page)
    })
    .await;
    let reason = trail.events[0].reason.as_deref().unwrap();
    assert!(
        reason.contains("Gateway web/edge has 50 % to the canary (asked for 25 %)"),
        "{reason}"
    );

    // A canary failing every request is rolled back through the route.
    canary.set_status(500);
    for _ in 0..40 {
        if app.controller.state.borrow().phase == Phase::RolledBack {
            break;
        }
        through_gateway(&api, &production, &canary, log_port, 200).await;
    }
    app.wait_for_phase(Phase::RolledBack).await;
    crate::support::until_confirmed(&app, Some(CanaryShare::ZERO)).await;
    assert_eq!(api.weights(), (10000, 0));
    assert_eq!(
        through_gateway(&api, &production, &canary, log_port, 100).await,
        0,
        "nothing reaches the canary afterwards"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_names_a_missing_route_a_missing_verb_and_a_route_canary_cannot_split() {
    let api = FakeApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = api.kubeconfig(dir.path());
    let assets = tempfile::tempdir().unwrap();
    std::fs::write(assets.path().join("index.html"), "<!doctype html>").unwrap();
    let assets = assets.path().to_owned();
    let check = |router: RouterConfig| {
        let mut config =
            crate::support::test_config("http://127.0.0.1:1", "http://127.0.0.1:2", &assets);
        config.router = router;
        async move {
            tokio::task::spawn_blocking(move || {
                canary_server::preflight::check(&config, None).map_err(|err| err.to_string())
            })
            .await
            .unwrap()
        }
    };
    let good = router_config(&kubeconfig, free_udp_port());
    let warnings = check(good.clone()).await.unwrap();
    assert!(
        !warnings
            .iter()
            .any(|warning| warning.contains("log_listen")),
        "{warnings:?}"
    );
    let mut unmeasured = good.clone();
    unmeasured.gateway_api.as_mut().unwrap().log_listen = None;
    let warnings = check(unmeasured).await.unwrap();
    assert!(
        warnings
            .iter()
            .any(|warning| warning.contains("no log_listen")),
        "{warnings:?}"
    );
    assert_eq!(
        api.route()["metadata"]["resourceVersion"],
        "100",
        "the check's write was a dry run"
    );

    let mut other = good.clone();
    other.gateway_api.as_mut().unwrap().route.0 = "shop-old".to_owned();
    let err = check(other).await.unwrap_err();
    assert!(
        err.contains("router.gateway_api.route") && err.contains("forbidden"),
        "{err}"
    );

    let mut wrong_service = good.clone();
    wrong_service
        .gateway_api
        .as_mut()
        .unwrap()
        .services
        .canary
        .0 = "shop-next".to_owned();
    let err = check(wrong_service).await.unwrap_err();
    assert!(
        err.contains("no rule sends to both Service shop-stable and Service shop-next"),
        "{err}"
    );

    api.cluster
        .lock()
        .unwrap()
        .verbs
        .retain(|verb| verb != "update");
    let err = check(good.clone()).await.unwrap_err();
    assert!(
        err.contains("a dry-run write failed: forbidden")
            && err.contains("canary needs get and update"),
        "{err}"
    );

    api.cluster.lock().unwrap().route = None;
    let err = check(good).await.unwrap_err();
    assert!(
        err.contains("HTTPRoute web/shop: the HTTPRoute does not exist"),
        "{err}"
    );
}
