//! Which of the two configured upstreams serves production, and at which
//! version: the roles promotion changes.
//!
//! The config lists two upstreams, under `upstreams.production` and
//! `upstreams.canary`. They are *slots*: by default a promotion swaps their
//! roles (the slot that ran the canary now serves production with the
//! promoted version, and the next canary deploys to the other one), so a
//! promoted version keeps serving after the next `start`. A team whose
//! promote hook redeploys production itself keeps the roles and only the
//! version label moves. Either way the deployment persists the roles, and
//! the ones before the last promotion, which an undo needs.

use canary_shared::{CanaryShare, Side};
use serde::{Deserialize, Serialize};

/// One of the two upstreams of the config, named by the key it is listed under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamSlot {
    /// The upstream listed as `upstreams.production`.
    ListedAsProduction,
    /// The upstream listed as `upstreams.canary`.
    ListedAsCanary,
}

impl UpstreamSlot {
    /// Both, in the config's order.
    pub const BOTH: [UpstreamSlot; 2] = [
        UpstreamSlot::ListedAsProduction,
        UpstreamSlot::ListedAsCanary,
    ];

    /// The other slot.
    pub fn other(self) -> UpstreamSlot {
        match self {
            UpstreamSlot::ListedAsProduction => UpstreamSlot::ListedAsCanary,
            UpstreamSlot::ListedAsCanary => UpstreamSlot::ListedAsProduction,
        }
    }

    /// Its place in the config's order, to index per-slot arrays.
    pub fn index(self) -> usize {
        match self {
            UpstreamSlot::ListedAsProduction => 0,
            UpstreamSlot::ListedAsCanary => 1,
        }
    }

    /// The config key it is listed under: `production` or `canary`.
    pub fn config_key(self) -> &'static str {
        match self {
            UpstreamSlot::ListedAsProduction => "production",
            UpstreamSlot::ListedAsCanary => "canary",
        }
    }
}

/// What a promotion does to the upstreams (`upstreams.on_promotion`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Promotion {
    /// The canary's slot becomes production; the next canary deploys to the
    /// other slot.
    SwapRoles,
    /// The promote hook redeploys production with the new version (its
    /// success is required); the slots keep their roles.
    HookRedeploysProduction,
}

/// Who serves production now.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roles {
    /// The slot serving production.
    pub production: UpstreamSlot,
    /// The version it serves, once a promotion has put one there; `None`
    /// means the config's label for that slot still holds.
    pub production_version: Option<String>,
}

impl Default for Roles {
    /// As the config lists them, before any promotion.
    fn default() -> Roles {
        Roles {
            production: UpstreamSlot::ListedAsProduction,
            production_version: None,
        }
    }
}

impl Roles {
    /// The slot playing `side`.
    pub fn slot_of(&self, side: Side) -> UpstreamSlot {
        match side {
            Side::Production => self.production,
            Side::Canary => self.production.other(),
        }
    }

    /// The side `slot` plays.
    pub fn side_of(&self, slot: UpstreamSlot) -> Side {
        if slot == self.production {
            Side::Production
        } else {
            Side::Canary
        }
    }

    /// The version label of the upstream playing `side`: what a promotion
    /// put on production, else the config's label (`listed`) while the
    /// upstreams still play the roles they are listed under.
    pub fn version_of(&self, side: Side, listed: Option<&str>) -> Option<String> {
        match side {
            Side::Production => self
                .production_version
                .clone()
                .or_else(|| listed.map(str::to_owned)),
            Side::Canary => (*self == Roles::default())
                .then(|| listed.map(str::to_owned))
                .flatten(),
        }
    }

    /// The roles after promoting `version` with `promotion`.
    pub fn promoted(&self, version: Option<String>, promotion: Promotion) -> Roles {
        Roles {
            production: match promotion {
                Promotion::SwapRoles => self.production.other(),
                Promotion::HookRedeploysProduction => self.production,
            },
            production_version: version.or_else(|| self.production_version.clone()),
        }
    }
}

/// Everything a router needs to send a request: the share and which slot
/// plays which side. Set as one value, so no request sees a new share with
/// the old roles (a promotion moves both at once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routing {
    /// The canary's share.
    pub share: CanaryShare,
    /// The slot serving production.
    pub production: UpstreamSlot,
}

impl Routing {
    /// The slot that serves `side`.
    pub fn slot_of(self, side: Side) -> UpstreamSlot {
        match side {
            Side::Production => self.production,
            Side::Canary => self.production.other(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_makes_the_canary_slot_production_and_a_second_swap_undoes_it() {
        let before = Roles::default();
        let once = before.promoted(Some("v2".to_owned()), Promotion::SwapRoles);
        assert_eq!(once.production, UpstreamSlot::ListedAsCanary);
        assert_eq!(once.slot_of(Side::Canary), UpstreamSlot::ListedAsProduction);
        assert_eq!(once.side_of(UpstreamSlot::ListedAsCanary), Side::Production);
        assert_eq!(once.production_version.as_deref(), Some("v2"));
        let twice = once.promoted(Some("v3".to_owned()), Promotion::SwapRoles);
        assert_eq!(twice.production, UpstreamSlot::ListedAsProduction);
        assert_eq!(twice.production_version.as_deref(), Some("v3"));
    }

    #[test]
    fn a_promote_hook_keeps_the_slots_and_moves_the_version() {
        let after =
            Roles::default().promoted(Some("v2".to_owned()), Promotion::HookRedeploysProduction);
        assert_eq!(after.production, UpstreamSlot::ListedAsProduction);
        assert_eq!(after.production_version.as_deref(), Some("v2"));
    }
}
