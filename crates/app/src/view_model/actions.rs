//! The operator's controls: whether each may be used now and why not, and
//! the share a slider or a typed number stands for.

use canary_shared::{ActionKind, CanaryShare, CanaryState, Role};

/// A button's state: enabled, or disabled with the server's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionView {
    /// Whether the control may be used.
    pub enabled: bool,
    /// Why not, when it may not.
    pub reason: Option<String>,
}

/// How the control for `action` looks, from the signed-in role and what the
/// server allows now.
pub fn action_view(state: Option<&CanaryState>, action: ActionKind, role: Role) -> ActionView {
    if !role.allows(Role::Operator) {
        return ActionView {
            enabled: false,
            reason: Some(format!(
                "signed in as a {role}: you can watch; operators and admins act"
            )),
        };
    }
    match state {
        None => ActionView {
            enabled: false,
            reason: Some("waiting for the server".to_owned()),
        },
        Some(state) if state.allows(action) => ActionView {
            enabled: true,
            reason: None,
        },
        Some(state) => ActionView {
            enabled: false,
            reason: Some(
                state
                    .blocked_reason(action)
                    .unwrap_or("not possible now")
                    .to_owned(),
            ),
        },
    }
}

/// A share from a slider or a typed number: clamped to 0–100 % and rounded
/// to the 0.01 % resolution, so whatever the control holds is a valid share.
pub fn clamp_share(percent: f64) -> CanaryShare {
    let percent = if percent.is_finite() {
        percent.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let basis_points = (percent * 100.0).round() as u16;
    CanaryShare::from_basis_points(basis_points).unwrap_or(CanaryShare::ZERO)
}

/// The confirmation that states a move of the share.
pub fn share_move_question(from: CanaryShare, to: CanaryShare) -> String {
    format!("Move canary from {from} to {to}?")
}

/// One line of what an operator reviews before promoting: a badge and words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewLine {
    /// The badge's CSS classes.
    pub class: &'static str,
    /// The badge's text (`Safe`, `Breach`, `Pass`, …).
    pub badge: &'static str,
    /// What it concerns and why, in words.
    pub words: String,
}

/// What the promote confirmation shows beside its question: how long the
/// canary has been at its share, every safety check, and the judge's verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromotionReview {
    /// `At 50 % for 12 min`.
    pub at_share: String,
    /// Each check, then each judged metric.
    pub lines: Vec<ReviewLine>,
}

/// The review of `state` before a promotion.
pub fn promotion_review(state: &CanaryState) -> PromotionReview {
    use canary_shared::{JudgeConclusion, StepStatus};
    let share = state.traffic.canary();
    let since = state
        .steps
        .iter()
        .find(|step| {
            step.status == StepStatus::InProgress
                && matches!(step.kind, canary_shared::StepKind::Traffic { .. })
        })
        .and_then(|step| step.started_at);
    let at_share = match since {
        Some(since) => format!(
            "At {share} for {}",
            canary_shared::words::duration(state.updated_at.0.saturating_sub(since.0))
        ),
        None => format!("At {share}"),
    };
    let mut lines: Vec<ReviewLine> = state
        .safety_checks
        .iter()
        .map(|check| ReviewLine {
            class: crate::view_model::check_class(check.status),
            badge: check.status.label(),
            words: match &check.reason {
                Some(reason) => format!("{}: {reason}", check.name),
                None => check.name.clone(),
            },
        })
        .collect();
    lines.extend(state.judge.iter().map(|judged| {
        let (class, badge) = match judged.conclusion {
            JudgeConclusion::Fail => ("badge badge--bad", "Fail"),
            JudgeConclusion::Pass => ("badge badge--good", "Pass"),
            JudgeConclusion::Inconclusive => ("badge badge--neutral", "Undecided"),
        };
        ReviewLine {
            class,
            badge,
            words: format!("Statistical judge: {}", judged.words),
        }
    }));
    PromotionReview { at_share, lines }
}

/// What the router card shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouterView {
    /// `HAProxy`.
    pub title: String,
    /// `Confirmed` or `Waiting` / `Not applied`.
    pub badge: &'static str,
    /// The badge's CSS classes.
    pub badge_class: &'static str,
    /// The share in force, and why not when it is not.
    pub headline: String,
    /// Each instance and its reading.
    pub instances: Vec<(String, String)>,
    /// What the router's counters say its access log misses.
    pub measurement: Option<String>,
    /// How it changes the split, its granularity and stickiness.
    pub about: String,
}

/// The router card for `router`; nothing for the built-in proxy, which
/// applies every change at once.
pub fn router_view(router: &canary_shared::RouterStatus) -> Option<RouterView> {
    let title = match router.kind.as_str() {
        "" | "builtin" => return None,
        "haproxy" => "HAProxy".to_owned(),
        "gateway_api" => "Gateway API".to_owned(),
        other => other.to_owned(),
    };
    let (badge, badge_class) = match (router.confirmed, &router.detail) {
        (true, _) => ("Confirmed", "badge badge--good"),
        (false, Some(detail)) if detail.starts_with("waiting") => {
            ("Waiting", "badge badge--neutral")
        }
        (false, _) => ("Not applied", "badge badge--bad"),
    };
    let instances = router.instances.len();
    let headline = match (&router.detail, router.confirmed) {
        (_, true) => format!(
            "{} to the canary, in force on {} instance{}",
            router.effective_percent,
            instances,
            if instances == 1 { "" } else { "s" }
        ),
        (Some(detail), false) => format!("{} asked for; {detail}", router.effective_percent),
        (None, false) => format!("{} asked for", router.effective_percent),
    };
    Some(RouterView {
        title,
        badge,
        badge_class,
        headline,
        measurement: router.measurement.clone(),
        about: router.about.clone(),
        instances: router
            .instances
            .iter()
            .map(|instance| {
                let reading = match (&instance.error, instance.canary_percent) {
                    (Some(error), _) => error.clone(),
                    (None, _) if instance.waiting.is_some() => {
                        instance.waiting.clone().unwrap_or_default()
                    }
                    (None, Some(share)) => format!("{share} to the canary"),
                    (None, None) => "nothing read back".to_owned(),
                };
                (instance.name.clone(), reading)
            })
            .collect(),
    })
}

/// What the console offers after a promotion while the previous version
/// stands by: the words beside *Undo promotion* and its confirmation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UndoOffer {
    /// `v2.6.0 stands by on http://…:9001 for 59 min more`.
    pub standing_by: String,
    /// `Undo the promotion of v2.7.0: send all traffic back to v2.6.0 now?`
    pub question: String,
}

/// The undo offer of `state`, while the server has an undo window open.
pub fn undo_offer(state: &CanaryState) -> Option<UndoOffer> {
    let window = state.undo_promotion.as_ref()?;
    let previous = window
        .standby_version
        .as_deref()
        .unwrap_or("the previous version");
    let promoted = state
        .image_tag
        .as_deref()
        .or(state.production.version.as_deref())
        .unwrap_or("the promoted version");
    Some(UndoOffer {
        standing_by: format!(
            "{previous} stands by on {} for {} more",
            window.standby_url,
            canary_shared::words::duration(window.left_ms)
        ),
        question: format!(
            "Undo the promotion of {promoted}: send all traffic back to {previous} now? {promoted} is then rolled back."
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::{promotion_review, router_view, undo_offer};

    #[test]
    fn the_undo_offer_names_both_versions_and_the_time_left() {
        let state: canary_shared::CanaryState = serde_json::from_str(include_str!(
            "../../../shared/src/snapshots/canary_state_promoted.json"
        ))
        .unwrap();
        let offer = undo_offer(&state).unwrap();
        assert_eq!(
            offer.standing_by,
            "v2.6.0 stands by on http://127.0.0.1:9001 for 59 min more"
        );
        assert_eq!(
            offer.question,
            "Undo the promotion of v2.7.0: send all traffic back to v2.6.0 now? v2.7.0 is then rolled back."
        );
        let plain: canary_shared::CanaryState = serde_json::from_str(include_str!(
            "../../../shared/src/snapshots/canary_state.json"
        ))
        .unwrap();
        assert_eq!(undo_offer(&plain), None, "no window, no offer");
    }

    #[test]
    fn the_router_card_says_what_is_in_force_and_where_it_is_not() {
        let state: canary_shared::CanaryState = serde_json::from_str(include_str!(
            "../../../shared/src/snapshots/canary_state.json"
        ))
        .unwrap();
        let view = router_view(&state.router).unwrap();
        assert_eq!(view.title, "HAProxy");
        assert_eq!(view.badge, "Not applied");
        assert_eq!(
            view.headline,
            "25 % asked for; 127.0.0.1:9999: cannot reach the stats socket"
        );
        assert_eq!(
            view.instances,
            [
                (
                    "/run/haproxy/admin.sock".to_owned(),
                    "25 % to the canary".to_owned()
                ),
                (
                    "127.0.0.1:9999".to_owned(),
                    "cannot reach the stats socket".to_owned()
                )
            ]
        );
        let mut confirmed = state.router.clone();
        confirmed.confirmed = true;
        confirmed.detail = None;
        assert_eq!(
            router_view(&confirmed).unwrap().headline,
            "25 % to the canary, in force on 2 instances"
        );
        let mut gateway = state.router.clone();
        gateway.kind = "gateway_api".to_owned();
        gateway.detail = Some("waiting for the router to confirm the split".to_owned());
        gateway.instances = vec![canary_shared::RouterInstance {
            name: "Gateway web/edge".to_owned(),
            canary_percent: None,
            error: None,
            waiting: Some("accepting the route's generation 5 (it has 4)".to_owned()),
        }];
        let view = router_view(&gateway).unwrap();
        assert_eq!(
            (view.title.as_str(), view.badge),
            ("Gateway API", "Waiting")
        );
        assert_eq!(
            view.instances[0].1,
            "accepting the route's generation 5 (it has 4)"
        );
        let mut lossy = state.router.clone();
        lossy.measurement =
            Some("server canary answered 1000 requests, its access log brought 700".to_owned());
        assert_eq!(
            router_view(&lossy).unwrap().measurement.as_deref(),
            Some("server canary answered 1000 requests, its access log brought 700")
        );
        let mut builtin = state.router;
        builtin.kind = "builtin".to_owned();
        assert_eq!(router_view(&builtin), None);
    }

    #[test]
    fn the_promotion_review_says_how_long_at_which_share_and_every_verdict() {
        // Progressing at 25 % since 30 s before the state was rendered.
        let state: canary_shared::CanaryState = serde_json::from_str(include_str!(
            "../../../shared/src/snapshots/canary_state.json"
        ))
        .unwrap();
        let review = promotion_review(&state);
        assert_eq!(review.at_share, "At 25 % for 30 s");
        let words: Vec<String> = review
            .lines
            .iter()
            .map(|line| format!("{} ({}): {}", line.badge, line.class, line.words))
            .collect();
        assert_eq!(
            words,
            [
                "Safe (badge badge--good): Total Latency",
                "Undecided (badge badge--neutral): Statistical judge: failure rate: not decided yet"
            ]
        );
    }
}
