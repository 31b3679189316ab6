//! `auth.oidc:` single sign-on with the company's identity provider
//! (OpenID Connect: Okta, Entra ID, Keycloak, Dex, Authelia, Google…),
//! beside passwords and tokens. Groups map to roles as for `auth.proxy`.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize, Serializer};

use crate::config::{GroupRolesConfig, Unmapped};

/// `auth.oidc:`
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL; its discovery document is at
    /// `<issuer>/.well-known/openid-configuration`.
    pub issuer: OidcUrl,
    /// This console's client id at the provider.
    pub client_id: OidcText,
    /// The client secret of a confidential client (PKCE is used either way).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<ClientSecretText>,
    /// Where the provider sends browsers back: this console's
    /// `…/admin/canary/auth/oidc/callback` as browsers reach it (registered
    /// at the provider as a redirect URI).
    pub redirect_url: OidcUrl,
    /// Scopes asked for besides `openid` (`groups` for Dex and Authelia).
    #[serde(default = "default_scopes")]
    pub scopes: Vec<OidcText>,
    /// The ID token claim that names the person (recorded as the actor);
    /// `email`, then `sub` when it is missing.
    #[serde(default = "default_user_claim")]
    pub user_claim: OidcText,
    /// The ID token claim listing the person's groups (an array of strings,
    /// or one string).
    #[serde(default = "default_groups_claim")]
    pub groups_claim: OidcText,
    /// Which groups give which role; the highest role among a person's
    /// groups applies.
    #[serde(default)]
    pub roles: GroupRolesConfig,
    /// The role of a person in no mapped group: `refuse` (the default) or a role.
    #[serde(default)]
    pub unmapped: Unmapped,
    /// The sign-in button's words.
    #[serde(default = "default_label")]
    pub label: OidcText,
    /// A PEM file of the CA that signed the provider's certificate, when
    /// the system's roots do not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
}

fn default_scopes() -> Vec<OidcText> {
    vec![OidcText("profile".to_owned()), OidcText("email".to_owned())]
}

fn default_user_claim() -> OidcText {
    OidcText("preferred_username".to_owned())
}

fn default_groups_claim() -> OidcText {
    OidcText("groups".to_owned())
}

fn default_label() -> OidcText {
    OidcText("Sign in with single sign-on".to_owned())
}

impl OidcConfig {
    /// The rules of the pure core's [`crate::domain::access::GroupRoles`].
    pub fn group_roles(&self) -> crate::domain::access::GroupRoles {
        self.roles.group_roles(self.unmapped)
    }
}

/// An `http(s)://` URL in `auth.oidc`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct OidcUrl(pub String);

impl TryFrom<String> for OidcUrl {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let uri: hyper::Uri = text
            .parse()
            .map_err(|err| format!("invalid URL {text:?}: {err}"))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(format!(
                "invalid URL {text:?}: write it with https:// (http:// only for a provider on this machine)"
            ));
        }
        Ok(OidcUrl(text))
    }
}

/// A short word in `auth.oidc` (a client id, a claim's name, a scope).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "String")]
pub struct OidcText(pub String);

impl TryFrom<String> for OidcText {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.trim().is_empty() || text.len() > 200 || text.chars().any(char::is_control) {
            return Err(format!(
                "must be 1 to 200 characters without control characters, got {text:?}"
            ));
        }
        Ok(OidcText(text))
    }
}

/// `auth.oidc.client_secret`: never printed, logged or served.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ClientSecretText(pub String);

impl fmt::Debug for ClientSecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClientSecretText(<redacted>)")
    }
}

impl Serialize for ClientSecretText {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("<redacted>")
    }
}

impl TryFrom<String> for ClientSecretText {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        if text.is_empty() || text.len() > 1000 || text.chars().any(char::is_control) {
            return Err("must be 1 to 1000 characters without control characters".to_owned());
        }
        Ok(ClientSecretText(text))
    }
}
