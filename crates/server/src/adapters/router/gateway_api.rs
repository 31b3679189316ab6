//! A Kubernetes Gateway API `HTTPRoute` as the router, through the API
//! server with kube-rs: read the route, change only the two Services'
//! weights (`domain::router::httproute`), write it back with the
//! `resourceVersion` it was read at (a concurrent writer's change gives 409
//! Conflict: read again and retry), then read it back every second. Each
//! Gateway in `status.parents` is an instance: the split counts as in force
//! there once its `Accepted` condition is true for the route's current
//! `generation`.
//!
//! The route stays JSON (`DynamicObject`) rather than generated types, so a
//! field this build does not know (a newer Gateway API version's, an
//! implementation's extension) goes back to the API server as it came.
//!
//! What this proves and what not (`docs/router-gateway-api.md`): the API
//! server has the weights and the Gateway's controller says it took them;
//! whether the data plane splits as told shows only in the measurements.

use std::sync::Arc;
use std::time::Duration;

use canary_shared::CanaryShare;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::config::GatewayApiConfig;
use crate::domain::roles::Routing;
use crate::domain::router::httproute::{
    ParentState, RouteServices, route_parents, route_routing, set_route_weights,
};
use crate::domain::router::{InstanceReading, RouterCapabilities};
use crate::events::Event;
use crate::ports::Router;

/// How often the route is read back.
const READ_EVERY: Duration = Duration::from_secs(1);
/// The longest wait between two attempts at a write that failed.
const MAX_BACKOFF: Duration = Duration::from_secs(8);
/// How long one call to the API server may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Writes that meet another writer's change in a row before the attempt
/// counts as failed (client-go's `RetryOnConflict` tries 5 times too).
const CONFLICT_RETRIES: usize = 5;
/// Who writes, for the API server's audit log and managed fields.
const FIELD_MANAGER: &str = "canary";

/// An `HTTPRoute` whose weights canary sets.
#[derive(Debug)]
pub struct GatewayRouter {
    wanted: watch::Sender<Routing>,
}

impl GatewayRouter {
    /// Starts the task that applies and reads back routings on the route
    /// of `config`, connecting with its kubeconfig (or the pod's service
    /// account), reporting to `events`.
    pub fn spawn(
        config: &GatewayApiConfig,
        initial: Routing,
        events: mpsc::Sender<Event>,
    ) -> Arc<GatewayRouter> {
        GatewayRouter::spawn_with(config, None, initial, events)
    }

    /// The same, through `client` (tests script the API server's answers).
    pub fn spawn_with(
        config: &GatewayApiConfig,
        client: Option<(kube::Client, String)>,
        initial: Routing,
        events: mpsc::Sender<Event>,
    ) -> Arc<GatewayRouter> {
        let (wanted, wanted_rx) = watch::channel(initial);
        tokio::spawn(converge(config.clone(), client, wanted_rx, events));
        Arc::new(GatewayRouter { wanted })
    }
}

impl Router for GatewayRouter {
    fn capabilities(&self) -> RouterCapabilities {
        RouterCapabilities {
            kind: "gateway_api",
            applies_at_once: false,
            // Weight 0 is "no traffic should be forwarded" (Gateway API);
            // session persistence, where implemented, is the Gateway's.
            exact_zero: true,
            change: "the HTTPRoute's backendRefs weights, confirmed by the Gateways' Accepted condition",
            granularity: "every 0.01 % (one weight per basis point)",
            stickiness: "as the Gateway's session persistence says, where it has it",
        }
    }

    fn effective(&self, routing: Routing) -> CanaryShare {
        // Basis points map onto the weights exactly.
        routing.share
    }

    fn request(&self, routing: Routing) {
        self.wanted.send_replace(routing);
    }
}

/// The route's API, in the namespace canary steers.
pub fn route_api(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    let kind = GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute");
    let resource = ApiResource::from_gvk_with_plural(&kind, "httproutes");
    Api::namespaced_with(client, namespace, &resource)
}

/// A client from the config's kubeconfig and context, or what kube-rs
/// infers (`KUBECONFIG`, `~/.kube/config`, the pod's service account), and
/// the namespace the route is in.
pub async fn connect(config: &GatewayApiConfig) -> Result<(kube::Client, String), String> {
    use kube::config::{KubeConfigOptions, Kubeconfig};
    let options = KubeConfigOptions {
        context: config.context.clone(),
        ..KubeConfigOptions::default()
    };
    let kube_config = match (&config.kubeconfig, &config.context) {
        (Some(path), _) => {
            let file = Kubeconfig::read_from(path)
                .map_err(|err| format!("cannot read the kubeconfig {}: {err}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &options)
                .await
                .map_err(|err| format!("the kubeconfig {} cannot be used: {err}", path.display()))?
        }
        (None, Some(_)) => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|err| format!("the kubeconfig cannot be used: {err}"))?,
        (None, None) => kube::Config::infer().await.map_err(|err| {
            format!("no Kubernetes credentials (no kubeconfig, not in a pod): {err}")
        })?,
    };
    let namespace = config
        .namespace
        .as_ref()
        .map_or_else(|| kube_config.default_namespace.clone(), |ns| ns.0.clone());
    let client = kube::Client::try_from(kube_config)
        .map_err(|err| format!("cannot make a Kubernetes client: {err}"))?;
    Ok((client, namespace))
}

fn services(config: &GatewayApiConfig) -> RouteServices {
    RouteServices {
        production: config.services.production.0.clone(),
        canary: config.services.canary.0.clone(),
    }
}

/// Writes the wanted routing until the route has it, and reads it back
/// every second, until the router is dropped.
async fn converge(
    config: GatewayApiConfig,
    mut client: Option<(kube::Client, String)>,
    mut wanted: watch::Receiver<Routing>,
    events: mpsc::Sender<Event>,
) {
    let services = services(&config);
    let mut pending = true;
    let mut last_error: Option<String> = None;
    let mut backoff = Duration::ZERO;
    let mut next_attempt = tokio::time::Instant::now();
    // The generation some Gateway was first seen behind on, and when.
    let mut behind_since: Option<(i64, tokio::time::Instant)> = None;
    loop {
        let routing = *wanted.borrow_and_update();
        let now = tokio::time::Instant::now();
        if client.is_none() && now >= next_attempt {
            match connect(&config).await {
                Ok(connected) => client = Some(connected),
                Err(err) => last_error = Some(err),
            }
        }
        let readings = match &client {
            None => {
                let label = format!("HTTPRoute {}", config.route.0);
                vec![InstanceReading::failed(
                    label,
                    last_error.clone().unwrap_or_default(),
                )]
            }
            Some((client, namespace)) => {
                let api = route_api(client.clone(), namespace);
                let label = format!("HTTPRoute {namespace}/{}", config.route.0);
                if pending && now >= next_attempt {
                    match write(&api, &config.route.0, &services, routing).await {
                        Ok(()) => {
                            pending = false;
                            last_error = None;
                        }
                        Err(err) => {
                            tracing::warn!(route = %label, %err, "gateway api: cannot set the weights");
                            last_error = Some(err);
                        }
                    }
                }
                let mut readings =
                    read(&api, &config, &services, routing, &label, &mut behind_since).await;
                if pending {
                    let why = last_error.clone().unwrap_or_default();
                    readings = vec![InstanceReading::failed(
                        label,
                        format!("the new weights are not written yet: {why}"),
                    )];
                }
                readings
            }
        };
        if pending || client.is_none() {
            backoff = (backoff * 2).clamp(Duration::from_millis(500), MAX_BACKOFF);
            next_attempt = tokio::time::Instant::now() + backoff;
        } else {
            backoff = Duration::ZERO;
        }
        if events
            .send(Event::RouterRead { routing, readings })
            .await
            .is_err()
        {
            return;
        }
        tokio::select! {
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                pending = true;
                backoff = Duration::ZERO;
                next_attempt = tokio::time::Instant::now();
            }
            () = tokio::time::sleep(READ_EVERY) => {}
        }
    }
}

/// Reads the route, sets the two weights, and writes it back at the
/// `resourceVersion` it was read at; on a conflict, all of it again.
pub async fn write(
    api: &Api<DynamicObject>,
    name: &str,
    services: &RouteServices,
    routing: Routing,
) -> Result<(), String> {
    let params = PostParams {
        dry_run: false,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    for _ in 0..CONFLICT_RETRIES {
        let route = call(api.get(name)).await?;
        let mut edited = serde_json::to_value(&route)
            .map_err(|err| format!("the route cannot be read as JSON: {err}"))?;
        if !set_route_weights(&mut edited, services, routing)? {
            return Ok(());
        }
        let edited: DynamicObject = serde_json::from_value(edited)
            .map_err(|err| format!("the edited route is not an object: {err}"))?;
        match api.replace(name, &params, &edited).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                tracing::info!(
                    route = name,
                    "gateway api: the route changed meanwhile; reading it again"
                );
            }
            Err(err) => return Err(describe(&err)),
        }
    }
    Err(format!(
        "the route changed under every one of {CONFLICT_RETRIES} writes in a row (409 Conflict): \
         another controller keeps writing it"
    ))
}

/// What the route and its Gateways have in force.
async fn read(
    api: &Api<DynamicObject>,
    config: &GatewayApiConfig,
    services: &RouteServices,
    wanted: Routing,
    label: &str,
    behind_since: &mut Option<(i64, tokio::time::Instant)>,
) -> Vec<InstanceReading> {
    let route = match call(api.get(&config.route.0)).await {
        Ok(route) => route,
        Err(err) => return vec![InstanceReading::failed(label, err)],
    };
    let route = match serde_json::to_value(&route) {
        Ok(route) => route,
        Err(err) => return vec![InstanceReading::failed(label, err.to_string())],
    };
    let in_force = match route_routing(&route, services, wanted) {
        Ok(in_force) => in_force,
        Err(err) => return vec![InstanceReading::failed(label, err)],
    };
    let parents = route_parents(&route);
    if parents.is_empty() {
        return vec![InstanceReading::failed(
            label,
            "no Gateway has taken the route (its status.parents is empty): check its parentRefs \
             and that a Gateway API controller runs",
        )];
    }
    let now = tokio::time::Instant::now();
    let mut any_behind = false;
    let readings = parents
        .into_iter()
        .map(|parent| {
            let name = format!("Gateway {}", parent.parent);
            match parent.state {
                ParentState::Accepted => InstanceReading::in_force(name, in_force),
                ParentState::Refused { reason } => InstanceReading::failed(name, reason),
                ParentState::Behind {
                    observed,
                    generation,
                } => {
                    any_behind = true;
                    let since = match *behind_since {
                        Some((seen, since)) if seen == generation => since,
                        _ => {
                            *behind_since = Some((generation, now));
                            now
                        }
                    };
                    let waited = now.duration_since(since);
                    if waited > config.accept_timeout.0 {
                        InstanceReading::failed(
                            name,
                            format!(
                                "has not accepted the route's generation {generation} within {} \
                                 (it has {observed})",
                                config.accept_timeout
                            ),
                        )
                    } else {
                        InstanceReading::waiting(
                            name,
                            format!(
                                "accepting the route's generation {generation} (it has {observed})"
                            ),
                        )
                    }
                }
            }
        })
        .collect();
    if !any_behind {
        *behind_since = None;
    }
    readings
}

/// One call, with a time limit, its error in words.
async fn call<T>(
    request: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(CALL_TIMEOUT, request).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(err)) => Err(describe(&err)),
        Err(_) => Err(format!(
            "the Kubernetes API did not answer within {} s",
            CALL_TIMEOUT.as_secs()
        )),
    }
}

/// An error from the API server, in words that say what to do.
pub fn describe(err: &kube::Error) -> String {
    match err {
        kube::Error::Api(status) => match status.code {
            404 => format!(
                "the HTTPRoute does not exist (or the Gateway API's CRDs are not installed): {}",
                status.message
            ),
            403 => format!(
                "forbidden: {}; canary needs get and update on httproutes.gateway.networking.k8s.io \
                 in the route's namespace (docs/router-gateway-api.md, RBAC)",
                status.message
            ),
            401 => format!(
                "the Kubernetes API did not accept canary's credentials: {}",
                status.message
            ),
            422 => format!(
                "the API server refused the changed route: {}",
                status.message
            ),
            code => format!(
                "the Kubernetes API answered {code} {}: {}",
                status.reason, status.message
            ),
        },
        other => format!("cannot reach the Kubernetes API: {other}"),
    }
}

/// Checks, for `canary check`: the route exists, canary can split it, and
/// may write it (a dry-run write of the route as it is).
pub async fn check_route(config: &GatewayApiConfig) -> Result<(), String> {
    let (client, namespace) = connect(config).await?;
    let api = route_api(client, &namespace);
    let route = call(api.get(&config.route.0))
        .await
        .map_err(|err| format!("HTTPRoute {namespace}/{}: {err}", config.route.0))?;
    let value: Value = serde_json::to_value(&route).map_err(|err| err.to_string())?;
    let probe = Routing {
        share: CanaryShare::ZERO,
        production: crate::domain::roles::UpstreamSlot::ListedAsProduction,
    };
    set_route_weights(&mut value.clone(), &services(config), probe)
        .map_err(|err| format!("HTTPRoute {namespace}/{}: {err}", config.route.0))?;
    let dry_run = PostParams {
        dry_run: true,
        field_manager: Some(FIELD_MANAGER.to_owned()),
    };
    call(api.replace(&config.route.0, &dry_run, &route))
        .await
        .map_err(|err| {
            format!(
                "HTTPRoute {namespace}/{}: a dry-run write failed: {err}",
                config.route.0
            )
        })?;
    Ok(())
}

#[cfg(test)]
mod tests;
