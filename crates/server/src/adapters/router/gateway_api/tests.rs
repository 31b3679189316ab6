//! The Gateway API router against kube-rs's mock service: every answer of
//! the API server is scripted here (GET, PUT, 409 Conflict, a Gateway that
//! lags a generation then catches up, 403, 404), and every request the
//! router sends is checked: path, verb, the `resourceVersion` it writes at,
//! and that nothing but the two weights changed.
//!
//! What this proves: the wire exchange and the router's reading of it. What
//! it does not: RBAC, admission, a real Gateway controller's timing, or
//! that a data plane splits as told (`docs/router-gateway-api.md`).

use std::time::Duration;

use canary_shared::CanaryShare;
use hyper::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tower_test::mock::{self, Handle};

use super::GatewayRouter;
use crate::config::{ConfigDuration, GatewayApiConfig, GatewayServices, KubeName};
use crate::domain::roles::{Routing, UpstreamSlot};
use crate::domain::router::InstanceReading;
use crate::events::Event;
use crate::ports::Router;

const PATH: &str = "/apis/gateway.networking.k8s.io/v1/namespaces/web/httproutes/shop";

fn config() -> GatewayApiConfig {
    GatewayApiConfig {
        route: KubeName("shop".to_owned()),
        namespace: Some(KubeName("web".to_owned())),
        services: GatewayServices {
            production: KubeName("shop-stable".to_owned()),
            canary: KubeName("shop-canary".to_owned()),
        },
        kubeconfig: None,
        context: None,
        accept_timeout: ConfigDuration(Duration::from_secs(60)),
        log_listen: None,
    }
}

fn routing(percent: f64) -> Routing {
    Routing {
        share: CanaryShare::from_percent(percent).unwrap(),
        production: UpstreamSlot::ListedAsProduction,
    }
}

/// The route as the API server has it at `resource_version` and
/// `generation`, with weights `(production, canary)`, and a Gateway that
/// has accepted `observed`. An annotation another tool set, and a field of
/// a newer Gateway API, must survive canary's writes.
fn route(resource_version: u32, generation: i64, weights: (u64, u64), observed: i64) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "HTTPRoute",
        "metadata": {
            "name": "shop", "namespace": "web",
            "resourceVersion": resource_version.to_string(), "generation": generation,
            "annotations": { "argocd.argoproj.io/tracking-id": "shop:gateway.networking.k8s.io/HTTPRoute:web/shop" }
        },
        "spec": {
            "parentRefs": [{ "name": "edge" }],
            "hostnames": ["shop.example.com"],
            "rules": [{
                "backendRefs": [
                    { "name": "shop-stable", "port": 8080, "weight": weights.0 },
                    { "name": "shop-canary", "port": 8080, "weight": weights.1 }
                ],
                "timeouts": { "request": "10s" },
                "futureField": { "kept": true }
            }]
        },
        "status": { "parents": [{
            "parentRef": { "name": "edge" },
            "controllerName": "example.com/gateway-controller",
            "conditions": [{ "type": "Accepted", "status": "True", "observedGeneration": observed, "reason": "Accepted" }]
        }]}
    })
}

fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message })
}

type ApiServer = Handle<Request<Body>, Response<Body>>;

/// Starts the router on a scripted API server.
fn start(
    initial: Routing,
) -> (
    std::sync::Arc<GatewayRouter>,
    ApiServer,
    mpsc::Receiver<Event>,
) {
    let (service, handle) = mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "web");
    let (events, readings) = mpsc::channel(16);
    let router =
        GatewayRouter::spawn_with(&config(), Some((client, "web".to_owned())), initial, events);
    (router, handle, readings)
}

/// Takes the router's next request, checks its verb and path, answers it
/// with `code` and `body`, and gives back what it sent (`Null` for none).
async fn answer(api: &mut ApiServer, verb: &str, code: u16, body: Value) -> (String, Value) {
    let (request, respond) = tokio::time::timeout(Duration::from_secs(10), api.next_request())
        .await
        .unwrap_or_else(|_| panic!("no {verb} came"))
        .expect("the router is running");
    assert_eq!(request.method().as_str(), verb, "{}", request.uri());
    assert_eq!(request.uri().path(), PATH);
    let query = request.uri().query().unwrap_or_default().to_owned();
    let sent = request.into_body().collect_bytes().await.unwrap();
    let sent = if sent.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&sent).unwrap()
    };
    respond.send_response(
        Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    (query, sent)
}

/// The router's next report.
async fn next_readings(events: &mut mpsc::Receiver<Event>) -> (Routing, Vec<InstanceReading>) {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(Event::RouterRead { routing, readings })) => (routing, readings),
        other => panic!("expected the router's readings, got {other:?}"),
    }
}

#[tokio::test]
async fn a_share_is_written_at_the_read_version_and_confirmed_once_the_gateway_accepts_it() {
    let (router, mut api, mut events) = start(routing(25.0));
    // The write: read, then PUT with the version read and only the weights changed.
    answer(&mut api, "GET", 200, route(812, 4, (1, 0), 4)).await;
    let (query, sent) = answer(&mut api, "PUT", 200, route(813, 5, (7500, 2500), 4)).await;
    assert!(query.contains("fieldManager=canary"), "{query}");
    assert_eq!(sent["metadata"]["resourceVersion"], "812");
    let mut expected = route(812, 4, (7500, 2500), 4);
    expected["status"] = sent["status"].clone();
    assert_eq!(sent, expected, "nothing but the two weights changed");
    // The read-back: the Gateway still has generation 4.
    answer(&mut api, "GET", 200, route(813, 5, (7500, 2500), 4)).await;
    let (asked, readings) = next_readings(&mut events).await;
    assert_eq!(asked, routing(25.0));
    assert_eq!(
        readings,
        [InstanceReading::waiting(
            "Gateway web/edge",
            "accepting the route's generation 5 (it has 4)"
        )]
    );
    // A second later it has caught up.
    answer(&mut api, "GET", 200, route(813, 5, (7500, 2500), 5)).await;
    let (_, readings) = next_readings(&mut events).await;
    assert_eq!(
        readings,
        [InstanceReading::in_force(
            "Gateway web/edge",
            Some(routing(25.0))
        )]
    );
    assert_eq!(
        router.effective(routing(0.01)),
        routing(0.01).share,
        "basis points are exact"
    );
}

#[tokio::test]
async fn a_conflicting_write_is_read_again_and_written_at_the_new_version() {
    let (_router, mut api, mut events) = start(routing(5.0));
    answer(&mut api, "GET", 200, route(812, 4, (1, 0), 4)).await;
    answer(
        &mut api,
        "PUT",
        409,
        status(409, "Conflict", "the object has been modified; please apply your changes to the latest version and try again"),
    )
    .await;
    answer(&mut api, "GET", 200, route(820, 6, (1, 0), 6)).await;
    let (_, sent) = answer(&mut api, "PUT", 200, route(821, 7, (9500, 500), 6)).await;
    assert_eq!(
        sent["metadata"]["resourceVersion"], "820",
        "written at the version read again"
    );
    assert_eq!(sent["spec"]["rules"][0]["backendRefs"][1]["weight"], 500);
    answer(&mut api, "GET", 200, route(821, 7, (9500, 500), 7)).await;
    let (_, readings) = next_readings(&mut events).await;
    assert_eq!(
        readings,
        [InstanceReading::in_force(
            "Gateway web/edge",
            Some(routing(5.0))
        )]
    );
}

#[tokio::test]
async fn a_route_that_already_has_the_split_is_not_written_again() {
    let (_router, mut api, mut events) = start(routing(50.0));
    answer(&mut api, "GET", 200, route(812, 4, (5000, 5000), 4)).await;
    // The next request is the read-back, not a PUT.
    answer(&mut api, "GET", 200, route(812, 4, (5000, 5000), 4)).await;
    let (_, readings) = next_readings(&mut events).await;
    assert_eq!(
        readings,
        [InstanceReading::in_force(
            "Gateway web/edge",
            Some(routing(50.0))
        )]
    );
}

#[tokio::test]
async fn forbidden_and_missing_routes_say_what_to_do_and_are_retried() {
    let (_router, mut api, mut events) = start(routing(5.0));
    answer(
        &mut api,
        "GET",
        403,
        status(403, "Forbidden", "httproutes.gateway.networking.k8s.io \"shop\" is forbidden: User \"system:serviceaccount:web:canary\" cannot get resource \"httproutes\""),
    )
    .await;
    answer(
        &mut api,
        "GET",
        404,
        status(
            404,
            "NotFound",
            "httproutes.gateway.networking.k8s.io \"shop\" not found",
        ),
    )
    .await;
    let (_, readings) = next_readings(&mut events).await;
    let error = readings[0].error.clone().unwrap();
    assert!(
        error.starts_with("the new weights are not written yet: forbidden:")
            && error
                .contains("canary needs get and update on httproutes.gateway.networking.k8s.io"),
        "{error}"
    );
    // Retried after a backoff: now the route is there.
    answer(&mut api, "GET", 200, route(812, 4, (1, 0), 4)).await;
    answer(&mut api, "PUT", 200, route(813, 5, (9500, 500), 5)).await;
    answer(&mut api, "GET", 200, route(813, 5, (9500, 500), 5)).await;
    let (_, readings) = next_readings(&mut events).await;
    assert_eq!(
        readings,
        [InstanceReading::in_force(
            "Gateway web/edge",
            Some(routing(5.0))
        )]
    );
}

#[tokio::test]
async fn weights_changed_behind_canary_s_back_show_and_a_new_request_writes_them_again() {
    let (router, mut api, mut events) = start(routing(5.0));
    answer(&mut api, "GET", 200, route(812, 4, (9500, 500), 4)).await;
    answer(&mut api, "GET", 200, route(812, 4, (9500, 500), 4)).await;
    next_readings(&mut events).await;
    // Someone sets 50/50 with kubectl.
    answer(&mut api, "GET", 200, route(830, 5, (1, 1), 5)).await;
    let (_, readings) = next_readings(&mut events).await;
    assert_eq!(
        readings,
        [InstanceReading::in_force(
            "Gateway web/edge",
            Some(routing(50.0))
        )]
    );
    // The controller asks again (it saw the drift): written again.
    router.request(routing(5.0));
    answer(&mut api, "GET", 200, route(830, 5, (1, 1), 5)).await;
    let (_, sent) = answer(&mut api, "PUT", 200, route(831, 6, (9500, 500), 6)).await;
    assert_eq!(sent["metadata"]["resourceVersion"], "830");
    assert_eq!(sent["spec"]["rules"][0]["backendRefs"][0]["weight"], 9500);
}

#[tokio::test]
async fn a_gateway_that_refuses_the_route_is_a_failure_with_its_reason() {
    let (_router, mut api, mut events) = start(routing(5.0));
    let mut refused = route(812, 4, (9500, 500), 4);
    refused["status"]["parents"][0]["conditions"][0] = json!({
        "type": "Accepted", "status": "False", "observedGeneration": 4,
        "reason": "NotAllowedByListeners", "message": "the listener allows routes from its own namespace only"
    });
    answer(&mut api, "GET", 200, refused.clone()).await;
    answer(&mut api, "GET", 200, refused).await;
    let (_, readings) = next_readings(&mut events).await;
    assert_eq!(
        readings,
        [InstanceReading::failed(
            "Gateway web/edge",
            "not accepted: NotAllowedByListeners the listener allows routes from its own namespace only"
        )]
    );
    let mut orphan = route(812, 4, (9500, 500), 4);
    orphan["status"] = json!({});
    answer(&mut api, "GET", 200, orphan).await;
    let (_, readings) = next_readings(&mut events).await;
    assert!(
        readings[0]
            .error
            .as_deref()
            .is_some_and(|error| error.starts_with("no Gateway has taken the route")),
        "{readings:?}"
    );
}
