//! A Kubernetes Gateway API `HTTPRoute` as canary reads and edits it: the
//! weights of the two Services' `backendRefs`, and what the Gateways that
//! carry the route say of it in `status.parents`. Pure: the route is the
//! JSON the API server sent, and it goes back as JSON with nothing but the
//! weights changed, so fields canary does not know (a newer Gateway API
//! version's, an implementation's) survive the write.
//!
//! Weights are relative integers from 0 to 1,000,000 (Gateway API's
//! `BackendRef.weight`), so a share in basis points maps onto them exactly:
//! the canary's Service gets the share's basis points, production's the
//! rest of 10,000.

use canary_shared::CanaryShare;
use serde_json::Value;

use crate::domain::roles::{Routing, UpstreamSlot};

/// The weights' sum canary writes: one per basis point.
const WEIGHT_TOTAL: u64 = 10_000;

/// The Services the two upstreams are, by name, in the route's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteServices {
    /// The Service that is the upstream listed as production.
    pub production: String,
    /// The Service that is the upstream listed as canary.
    pub canary: String,
}

/// The weights for `routing`, as (slot, weight): exact for every share.
pub fn route_weights(routing: Routing) -> [(UpstreamSlot, u64); 2] {
    let canary = u64::from(routing.share.basis_points());
    [
        (routing.production, WEIGHT_TOTAL - canary),
        (routing.production.other(), canary),
    ]
}

/// The rules canary steers: those that send to both Services. Each as its
/// index and the indexes of the two refs (listed as production, as canary).
fn steered_rules(route: &Value, services: &RouteServices) -> Result<Vec<SteeredRule>, String> {
    let rules = route
        .pointer("/spec/rules")
        .and_then(Value::as_array)
        .ok_or_else(|| "the route has no spec.rules".to_owned())?;
    let namespace = route
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut steered = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let refs = rule
            .get("backendRefs")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let find = |name: &str| -> Result<Option<usize>, String> {
            let mut found = refs
                .iter()
                .enumerate()
                .filter(|(_, backend)| is_service(backend, name, namespace))
                .map(|(at, _)| at);
            let first = found.next();
            if found.next().is_some() {
                return Err(format!(
                    "rule {index} lists Service {name} twice: canary cannot tell which weight is its share"
                ));
            }
            Ok(first)
        };
        let (Some(production), Some(canary)) =
            (find(&services.production)?, find(&services.canary)?)
        else {
            // A rule that sends to one of them only (a header match that
            // always reaches the canary, say) is the team's: left alone.
            continue;
        };
        for (at, other) in refs.iter().enumerate() {
            if at != production && at != canary && weight_of(other)? > 0 {
                return Err(format!(
                    "rule {index} also sends to {} (weight {}): canary can split a rule only \
                     between its two Services; give the other backend weight 0 or move it to a \
                     rule of its own",
                    other
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or("a backend"),
                    weight_of(other)?
                ));
            }
        }
        steered.push(SteeredRule {
            index,
            production,
            canary,
        });
    }
    if steered.is_empty() {
        return Err(format!(
            "no rule sends to both Service {} and Service {}: add both to the backendRefs of the \
             rule whose traffic canary splits",
            services.production, services.canary
        ));
    }
    Ok(steered)
}

struct SteeredRule {
    index: usize,
    production: usize,
    canary: usize,
}

impl SteeredRule {
    fn at(&self, slot: UpstreamSlot) -> usize {
        match slot {
            UpstreamSlot::ListedAsProduction => self.production,
            UpstreamSlot::ListedAsCanary => self.canary,
        }
    }
}

/// Whether a `backendRef` is the Service `name` of the route's namespace.
fn is_service(backend: &Value, name: &str, namespace: &str) -> bool {
    let text = |key: &str| backend.get(key).and_then(Value::as_str);
    text("name") == Some(name)
        && text("kind").is_none_or(|kind| kind == "Service")
        && text("group").is_none_or(str::is_empty)
        && text("namespace").is_none_or(|ns| ns == namespace)
}

/// A ref's weight (Gateway API's default is 1).
fn weight_of(backend: &Value) -> Result<u64, String> {
    match backend.get("weight") {
        None | Some(Value::Null) => Ok(1),
        Some(weight) => weight
            .as_u64()
            .filter(|weight| *weight <= 1_000_000)
            .ok_or_else(|| format!("weight {weight} is not between 0 and 1,000,000")),
    }
}

/// Sets the two Services' weights for `routing` in every rule that sends to
/// both, leaving everything else as it is. Whether anything changed (an
/// unchanged route need not be written).
pub fn set_route_weights(
    route: &mut Value,
    services: &RouteServices,
    routing: Routing,
) -> Result<bool, String> {
    let steered = steered_rules(route, services)?;
    let mut changed = false;
    for rule in steered {
        for (slot, weight) in route_weights(routing) {
            let pointer = format!("/spec/rules/{}/backendRefs/{}", rule.index, rule.at(slot));
            let backend = route
                .pointer_mut(&pointer)
                .and_then(Value::as_object_mut)
                .ok_or_else(|| format!("{pointer} is not an object"))?;
            if backend.get("weight").and_then(Value::as_u64) != Some(weight) {
                backend.insert("weight".to_owned(), Value::from(weight));
                changed = true;
            }
        }
    }
    Ok(changed)
}

/// The routing the route's weights give, read against `wanted`: when the
/// steered rules disagree, the first one that differs from `wanted` (so a
/// change to any of them shows); `None` when a rule sends to neither.
pub fn route_routing(
    route: &Value,
    services: &RouteServices,
    wanted: Routing,
) -> Result<Option<Routing>, String> {
    let steered = steered_rules(route, services)?;
    let mut in_force = Vec::with_capacity(steered.len());
    for rule in steered {
        let weight = |slot: UpstreamSlot| -> Result<u64, String> {
            let pointer = format!("/spec/rules/{}/backendRefs/{}", rule.index, rule.at(slot));
            weight_of(route.pointer(&pointer).unwrap_or(&Value::Null))
        };
        let production = weight(wanted.production)?;
        let canary = weight(wanted.production.other())?;
        let total = production + canary;
        if total == 0 {
            return Ok(None);
        }
        let share = (canary * WEIGHT_TOTAL + total / 2) / total;
        in_force.push(Routing {
            share: CanaryShare::from_basis_points(share as u16).expect("within 0–100 %"),
            production: wanted.production,
        });
    }
    Ok(in_force
        .iter()
        .find(|routing| routing.share != wanted.share)
        .or(in_force.first())
        .copied())
}

/// What one Gateway that carries the route says of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentReading {
    /// The Gateway (and listener), as `namespace/name[/section]`.
    pub parent: String,
    /// Whether it has taken the route as it is now.
    pub state: ParentState,
}

/// A Gateway's `Accepted` condition against the route's `generation`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParentState {
    /// `Accepted` is true for the route's current generation (or the
    /// controller does not say which generation it saw: some never do).
    Accepted,
    /// It has not seen the current generation yet.
    Behind {
        /// The generation it last took.
        observed: i64,
        /// The route's.
        generation: i64,
    },
    /// `Accepted` is false or missing: why, in the controller's words.
    Refused {
        /// Its reason and message.
        reason: String,
    },
}

/// Every Gateway's word on the route, from `status.parents`.
pub fn route_parents(route: &Value) -> Vec<ParentReading> {
    let generation = route
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let namespace = route
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let parents = route
        .pointer("/status/parents")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    parents
        .iter()
        .map(|parent| {
            let text = |key: &str| parent.pointer(key).and_then(Value::as_str);
            let mut name = format!(
                "{}/{}",
                text("/parentRef/namespace").unwrap_or(namespace),
                text("/parentRef/name").unwrap_or("?")
            );
            if let Some(section) = text("/parentRef/sectionName") {
                name = format!("{name}/{section}");
            }
            let accepted =
                parent
                    .get("conditions")
                    .and_then(Value::as_array)
                    .and_then(|conditions| {
                        conditions.iter().find(|condition| {
                            condition.get("type") == Some(&Value::from("Accepted"))
                        })
                    });
            let state = match accepted {
                None => ParentState::Refused {
                    reason: "no Accepted condition yet".to_owned(),
                },
                Some(condition) => {
                    let observed = condition.get("observedGeneration").and_then(Value::as_i64);
                    match observed {
                        Some(observed) if observed < generation => ParentState::Behind {
                            observed,
                            generation,
                        },
                        _ if condition.get("status") == Some(&Value::from("True")) => {
                            ParentState::Accepted
                        }
                        _ => {
                            let field = |key: &str| {
                                condition
                                    .get(key)
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                            };
                            ParentState::Refused {
                                reason: format!(
                                    "not accepted: {} {}",
                                    field("reason"),
                                    field("message")
                                )
                                .trim_end()
                                .to_owned(),
                            }
                        }
                    }
                }
            };
            ParentReading {
                parent: name,
                state,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use canary_shared::CanaryShare;
    use serde_json::{Value, json};

    use super::*;

    fn services() -> RouteServices {
        RouteServices {
            production: "shop-stable".to_owned(),
            canary: "shop-canary".to_owned(),
        }
    }

    fn routing(percent: f64, production: UpstreamSlot) -> Routing {
        Routing {
            share: CanaryShare::from_percent(percent).unwrap(),
            production,
        }
    }

    /// The Gateway API's traffic-splitting example, with a header rule that
    /// reaches the canary only and a field canary does not know.
    fn route() -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": { "name": "shop", "namespace": "web", "generation": 4, "resourceVersion": "812" },
            "spec": {
                "parentRefs": [{ "name": "edge" }],
                "rules": [
                    {
                        "matches": [{ "headers": [{ "name": "x-canary", "value": "always" }] }],
                        "backendRefs": [{ "name": "shop-canary", "port": 8080 }]
                    },
                    {
                        "backendRefs": [
                            { "name": "shop-stable", "port": 8080, "weight": 1 },
                            { "name": "shop-canary", "port": 8080, "weight": 0 }
                        ],
                        "sessionPersistence": { "sessionName": "shop" }
                    }
                ]
            },
            "status": { "parents": [{
                "parentRef": { "name": "edge", "sectionName": "https" },
                "controllerName": "example.com/gateway",
                "conditions": [{ "type": "Accepted", "status": "True", "observedGeneration": 4, "reason": "Accepted" }]
            }]}
        })
    }

    #[test]
    fn weights_carry_basis_points_exactly_and_only_the_steered_rule_changes() {
        let mut edited = route();
        let quarter = routing(25.0, UpstreamSlot::ListedAsProduction);
        assert_eq!(
            set_route_weights(&mut edited, &services(), quarter),
            Ok(true)
        );
        let refs = &edited["spec"]["rules"][1]["backendRefs"];
        assert_eq!(refs[0]["weight"], 7500);
        assert_eq!(refs[1]["weight"], 2500);
        assert_eq!(
            edited["spec"]["rules"][0],
            route()["spec"]["rules"][0],
            "the header rule is the team's"
        );
        assert_eq!(
            edited["spec"]["rules"][1]["sessionPersistence"],
            json!({ "sessionName": "shop" })
        );
        assert_eq!(
            set_route_weights(&mut edited, &services(), quarter),
            Ok(false),
            "nothing to write the second time"
        );
        assert_eq!(
            route_routing(&edited, &services(), quarter),
            Ok(Some(quarter))
        );
        let tiny = routing(0.01, UpstreamSlot::ListedAsProduction);
        set_route_weights(&mut edited, &services(), tiny).unwrap();
        assert_eq!(route_routing(&edited, &services(), tiny), Ok(Some(tiny)));
    }

    #[test]
    fn a_swap_of_roles_gives_the_other_service_production_s_weight() {
        let mut edited = route();
        let promoted = routing(0.0, UpstreamSlot::ListedAsCanary);
        set_route_weights(&mut edited, &services(), promoted).unwrap();
        let refs = &edited["spec"]["rules"][1]["backendRefs"];
        assert_eq!(
            (refs[0]["weight"].clone(), refs[1]["weight"].clone()),
            (json!(0), json!(10000))
        );
        assert_eq!(
            route_routing(&edited, &services(), promoted),
            Ok(Some(promoted))
        );
    }

    #[test]
    fn a_route_canary_cannot_split_is_refused_with_the_reason() {
        let missing = RouteServices {
            canary: "shop-next".to_owned(),
            ..services()
        };
        let err = set_route_weights(
            &mut route(),
            &missing,
            routing(5.0, UpstreamSlot::ListedAsProduction),
        );
        assert_eq!(
            err,
            Err("no rule sends to both Service shop-stable and Service shop-next: add both to the backendRefs of the rule whose traffic canary splits".to_owned())
        );
        let mut third = route();
        third["spec"]["rules"][1]["backendRefs"]
            .as_array_mut()
            .unwrap()
            .push(json!({ "name": "legacy", "port": 80 }));
        let err = set_route_weights(
            &mut third,
            &services(),
            routing(5.0, UpstreamSlot::ListedAsProduction),
        )
        .unwrap_err();
        assert!(
            err.starts_with("rule 1 also sends to legacy (weight 1)"),
            "{err}"
        );
        let mut zero = third.clone();
        zero["spec"]["rules"][1]["backendRefs"][2]["weight"] = json!(0);
        assert!(
            set_route_weights(
                &mut zero,
                &services(),
                routing(5.0, UpstreamSlot::ListedAsProduction)
            )
            .is_ok()
        );
        let mut elsewhere = route();
        elsewhere["spec"]["rules"][1]["backendRefs"][1]["namespace"] = json!("other");
        assert!(
            set_route_weights(
                &mut elsewhere,
                &services(),
                routing(5.0, UpstreamSlot::ListedAsProduction)
            )
            .is_err(),
            "a Service of another namespace is not canary's"
        );
    }

    #[test]
    fn a_rule_changed_behind_canary_s_back_shows_even_when_another_is_right() {
        let mut two = route();
        let second = two["spec"]["rules"][1].clone();
        two["spec"]["rules"].as_array_mut().unwrap().push(second);
        let wanted = routing(5.0, UpstreamSlot::ListedAsProduction);
        set_route_weights(&mut two, &services(), wanted).unwrap();
        two["spec"]["rules"][2]["backendRefs"][1]["weight"] = json!(5000);
        two["spec"]["rules"][2]["backendRefs"][0]["weight"] = json!(5000);
        let in_force = route_routing(&two, &services(), wanted).unwrap().unwrap();
        assert_eq!(in_force.share.percent(), 50.0);
    }

    #[test]
    fn gateways_say_whether_they_took_the_current_generation() {
        let mut route = route();
        assert_eq!(
            route_parents(&route),
            [ParentReading {
                parent: "web/edge/https".to_owned(),
                state: ParentState::Accepted
            }]
        );
        route["metadata"]["generation"] = json!(5);
        assert_eq!(
            route_parents(&route)[0].state,
            ParentState::Behind {
                observed: 4,
                generation: 5
            }
        );
        route["status"]["parents"][0]["conditions"][0] = json!({
            "type": "Accepted", "status": "False", "observedGeneration": 5,
            "reason": "NotAllowedByListeners", "message": "no listener matches"
        });
        assert_eq!(
            route_parents(&route)[0].state,
            ParentState::Refused {
                reason: "not accepted: NotAllowedByListeners no listener matches".to_owned()
            }
        );
        route["status"]["parents"][0]["conditions"][0] =
            json!({ "type": "Accepted", "status": "True" });
        assert_eq!(
            route_parents(&route)[0].state,
            ParentState::Accepted,
            "a controller that never says the generation"
        );
        route["status"] = json!({});
        assert!(route_parents(&route).is_empty());
    }
}
