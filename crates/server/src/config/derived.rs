//! What the rest of the program reads off a loaded config: the rules the
//! state machine follows, the settings anyone may see, the checks with
//! whether anything provides their metrics, and what `canary check` warns
//! about. Pure, like the parsing.

use crate::config::{BuiltInMetric, Config};

impl Config {
    /// The rules the deployment state machine follows.
    pub fn rules(&self) -> crate::domain::deployment::Rules {
        let mut rules = self.canary.rules(
            self.upstreams.promotion(&self.hooks),
            self.upstreams.undo_window.0,
            self.validation
                .test_runs
                .0
                .iter()
                .map(|run| run.name.0.clone())
                .collect(),
        );
        rules.shadow =
            self.validation
                .shadow
                .as_ref()
                .map(|shadow| crate::domain::deployment::ShadowRules {
                    share: shadow.share.0,
                    duration_ms: u64::try_from(shadow.duration.0.as_millis()).unwrap_or(u64::MAX),
                });
        rules
    }

    /// The rules a rollout follows, as shown to anyone who may watch.
    pub fn rollout_settings(&self) -> canary_shared::RolloutSettings {
        let mut settings = self.canary.rollout_settings(&self.proxy, self.rules());
        settings.promotion = self.promotion_words();
        settings.promotion_warning = self.promotion_warning();
        settings
    }

    /// Every safety check, each knowing whether anything provides its metric.
    pub fn check_specs(&self) -> Vec<crate::domain::analysis::CheckSpec> {
        let mut specs = self.canary.check_specs();
        for spec in &mut specs {
            spec.has_source = BuiltInMetric::from_name(&spec.metric).is_some()
                || (spec.metric == crate::domain::shadow::MISMATCH_RATE_METRIC
                    && self.validation.shadow.is_some())
                || self
                    .metrics
                    .custom
                    .iter()
                    .any(|metric| metric.name == spec.metric);
        }
        specs
    }

    /// What `canary check` warns about: things that load but will not do
    /// what an operator expects.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .check_specs()
            .iter()
            .filter(|spec| !spec.has_source)
            .map(|spec| {
                if spec.metric == crate::domain::shadow::MISMATCH_RATE_METRIC {
                    return format!(
                        "safety check \"{}\" reads `{}`, which only shadow traffic provides: it shows \
                         NO SOURCE and is not judged; add validation.shadow",
                        spec.name, spec.metric
                    );
                }
                format!(
                    "safety check \"{}\" reads `{}`, which nothing provides: it shows NO SOURCE and is \
                     not judged; define `{}` under metrics.custom (scrape, prometheus or push)",
                    spec.name, spec.metric, spec.metric
                )
            })
            .collect();
        warnings.extend(self.promotion_warning());
        // Served over HTTPS, so tablets and phones can subscribe: Apple's
        // push service takes no message without a contact.
        if self.push.enabled && self.push.contact.is_none() && self.server.tls.is_some() {
            warnings.push(
                "push.contact is not set: Apple's push service refuses alerts without one, so iPads \
                 and iPhones would get none; set a mailto: address or an https: URL"
                    .to_owned(),
            );
        }
        if self.hooks.retire.is_some()
            && self.upstreams.promotion(&self.hooks)
                == crate::domain::roles::Promotion::HookRedeploysProduction
        {
            warnings.push(
                "hooks.retire never runs: the promote hook redeploys production in place, so no \
                 previous version stands by to retire (set upstreams.on_promotion: swap_roles to \
                 keep one for an undo)"
                    .to_owned(),
            );
        }
        warnings
    }

    /// What a promotion does, in words, for the console and the CLI.
    pub fn promotion_words(&self) -> String {
        use crate::domain::roles::Promotion;
        match self.upstreams.promotion(&self.hooks) {
            Promotion::SwapRoles => {
                let standby = match self.rules().undo_window_ms {
                    0 => {
                        "the previous version is retired at once (the retire hook runs)".to_owned()
                    }
                    window => format!(
                        "the previous version stands by there for {} (Undo promotion sends all \
                         traffic back to it; then the retire hook runs)",
                        crate::domain::deployment::human_duration(window)
                    ),
                };
                format!(
                    "the canary's upstream becomes production with the promoted version, and the \
                     next canary deploys to the other upstream; {standby}"
                )
            }
            Promotion::HookRedeploysProduction => "the promote hook redeploys production with \
                the promoted version (a failed hook rolls back), and the canary's share goes to 0"
                .to_owned(),
        }
    }

    /// Why a promotion might not leave production on the new version, if
    /// nothing in the config moves versions: no deploy hook puts the next
    /// version on the slot that a swap frees, and no promote hook redeploys
    /// production.
    pub fn promotion_warning(&self) -> Option<String> {
        use crate::domain::roles::Promotion;
        let deploys = self.hooks.deploy.is_some() || self.hooks.wait_for_webhooks;
        match self.upstreams.promotion(&self.hooks) {
            Promotion::SwapRoles if !deploys => Some(
                "no deploy hook: after a promotion the former production upstream becomes the \
                 canary's, still running the old version; deploy each new version there \
                 (`canary status` shows the canary's URL) before the next start, or set \
                 hooks.deploy"
                    .to_owned(),
            ),
            _ => None,
        }
    }
}
