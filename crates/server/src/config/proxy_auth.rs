//! `auth.proxy:` signing people in through an authenticating reverse proxy
//! in front of the console (oauth2-proxy, Pomerium, a company SSO gateway):
//! its user and groups headers are believed only from the configured peer
//! networks, optionally with a shared secret, and the groups map to roles.

use canary_shared::Role;
use serde::{Deserialize, Serialize};

use crate::config::{HeaderName, IpNetwork, TokenHash};

/// `auth.proxy:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyAuthConfig {
    /// The proxy's own addresses: only a connection whose peer address is
    /// in one of these networks is believed (never `X-Forwarded-For`).
    pub trusted_networks: Vec<IpNetwork>,
    /// The header naming the signed-in person.
    #[serde(default = "default_user_header")]
    pub user_header: HeaderName,
    /// The header listing their groups, comma-separated.
    #[serde(default = "default_groups_header")]
    pub groups_header: HeaderName,
    /// A header the proxy adds with a shared secret, checked against
    /// `secret_hash` (`sha256:<hex>`, as `canary new-token` prints it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_header: Option<HeaderName>,
    /// The secret's hash, with `secret_header`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hash: Option<TokenHash>,
    /// Which groups give which role; the highest role among a person's
    /// groups applies.
    #[serde(default)]
    pub roles: GroupRolesConfig,
    /// The role of a person in no mapped group: `refuse` (the default) or
    /// a role.
    #[serde(default)]
    pub unmapped: Unmapped,
    /// Where the console's *Sign out* goes (the proxy's own sign-out, such
    /// as `/oauth2/sign_out`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_out_url: Option<String>,
}

fn default_user_header() -> HeaderName {
    HeaderName("x-forwarded-user".to_owned())
}

fn default_groups_header() -> HeaderName {
    HeaderName("x-forwarded-groups".to_owned())
}

/// `auth.proxy.roles:` the groups of each role.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct GroupRolesConfig {
    /// Groups whose people may do everything.
    pub admin: Vec<String>,
    /// Groups whose people run rollouts.
    pub operator: Vec<String>,
    /// Groups whose people watch.
    pub viewer: Vec<String>,
}

/// `auth.proxy.unmapped:`
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unmapped {
    /// Refused with 403 and audited.
    #[default]
    Refuse,
    /// Signed in as a viewer.
    Viewer,
    /// Signed in as an operator.
    Operator,
}

impl ProxyAuthConfig {
    /// The rules of the pure core's [`crate::domain::access::GroupRoles`].
    pub fn group_roles(&self) -> crate::domain::access::GroupRoles {
        self.roles.group_roles(self.unmapped)
    }
}

impl GroupRolesConfig {
    /// These groups' roles, with `unmapped` for a person in none of them
    /// (the same rules for the proxy's headers and an ID token's groups).
    pub fn group_roles(&self, unmapped: Unmapped) -> crate::domain::access::GroupRoles {
        crate::domain::access::GroupRoles {
            by_role: vec![
                (Role::Admin, self.admin.clone()),
                (Role::Operator, self.operator.clone()),
                (Role::Viewer, self.viewer.clone()),
            ],
            unmapped: match unmapped {
                Unmapped::Refuse => None,
                Unmapped::Viewer => Some(Role::Viewer),
                Unmapped::Operator => Some(Role::Operator),
            },
        }
    }
}
